//! The machine's transitions, each driven with a made-up clock and made-up facts, and
//! named after the promise it checks. The rig plays the keeper's loop: it feeds inputs
//! at a time it moves by hand, collects the effects, and answers what it is asked as a
//! test says.

mod checks;
mod end;
mod start;
mod stop;

use std::time::Duration;

use super::*;
use crate::config::tests_support::minimal;
use crate::config::units::Signal;
use crate::config::ReadyCheck;
use crate::keeper::core::adoption::Leftovers;
use crate::keeper::core::handover::Processes;
use crate::keeper::report::Report;
use crate::memory::{MemoryEvents, Usage};

/// Made-up facts: what the machine reads of the processes around the keeper.
#[derive(Debug, Default)]
pub(super) struct World {
    /// The keeper's children.
    pub(super) children: Vec<ProcId>,
    /// What the daemon's own pidfile names.
    pub(super) named: Option<i32>,
    /// Whether anything of the daemon's is left (the main process aside).
    pub(super) left: bool,
    /// What its processes use.
    pub(super) usage: Usage,
    /// Its cgroup's `memory.events` counters.
    pub(super) counters: Option<MemoryEvents>,
    /// Processes a pidfile may name: `(pid, the daemon's own, the keeper's child)`.
    pub(super) processes: Vec<(i32, bool, bool)>,
}

impl Processes for World {
    fn identity(&self, pid: i32) -> Option<ProcId> {
        self.processes
            .iter()
            .any(|p| p.0 == pid)
            .then_some(ProcId { pid, start: 7 })
    }
    fn is_own(&self, pid: i32) -> bool {
        self.processes.iter().any(|p| p.0 == pid && p.1)
    }
    fn is_child(&self, pid: i32) -> bool {
        self.processes.iter().any(|p| p.0 == pid && p.2)
    }
}

impl Leftovers for World {
    fn children(&self) -> Vec<ProcId> {
        self.children.clone()
    }
    fn named_pid(&self) -> Option<i32> {
        self.named
    }
}

impl Facts for World {
    fn tree_is_empty(&self) -> bool {
        !self.left
    }
    fn anything_live(&self) -> bool {
        self.left
    }
    fn memory_usage(&self, _: Option<i32>) -> Usage {
        self.usage
    }
    fn memory_events(&self) -> Option<MemoryEvents> {
        self.counters
    }
}

/// The daemon's process in the tests.
pub(super) const DAEMON: ProcId = ProcId { pid: 100, start: 1 };

/// A keeper's loop around a machine, with a clock the test moves.
pub(super) struct Rig {
    pub(super) m: Machine,
    pub(super) now: Now,
    pub(super) world: World,
}

impl Rig {
    /// The machine of `daemon`, which a `dmgr start` waits for.
    pub(super) fn new(daemon: Daemon) -> Rig {
        Rig::with_memory(daemon, None)
    }

    /// The same, with memory watched as `memory` says.
    pub(super) fn with_memory(daemon: Daemon, memory: Option<MemoryMode>) -> Rig {
        Rig {
            m: Machine::new(&daemon, true, memory),
            now: Now {
                at: crate::keeper::test_epoch(),
                wall_ms: 1_000_000,
            },
            world: World::default(),
        }
    }

    /// Feeds `input` now; returns what the machine asks for.
    pub(super) fn feed(&mut self, input: Input) -> Vec<Effect> {
        self.m.handle(input, self.now, &self.world);
        std::iter::from_fn(|| self.m.poll_effect()).collect()
    }

    /// A wake-up `ms` later.
    pub(super) fn tick_after(&mut self, ms: u64) -> Vec<Effect> {
        self.now = self.now.after(Duration::from_millis(ms));
        self.feed(Input::Tick)
    }

    /// The keeper's first start, answered: the daemon runs as `pid`. Returns what the
    /// spawn's answers asked for.
    pub(super) fn start(&mut self, pid: i32) -> Vec<Effect> {
        let effects = self.feed(Input::Start { recorded: Ok(()) });
        assert_eq!(effects, [Effect::SpawnDaemon { again: false }]);
        self.spawned(pid)
    }

    /// The spawn asked for, answered: the daemon runs as `pid`.
    pub(super) fn spawned(&mut self, pid: i32) -> Vec<Effect> {
        let id = ProcId { pid, start: 1 };
        let mut effects = self.feed(Input::Forked { id });
        effects.extend(self.feed(Input::Spawned));
        effects
    }

    /// A simple daemon started as `DAEMON` and up (past its `start_wait`).
    pub(super) fn up(&mut self) -> Vec<Effect> {
        let mut effects = self.start(DAEMON.pid);
        let wait = self.m.s.start_wait;
        effects.extend(self.tick_after(millis(wait)));
        assert_eq!(self.m.status(), Status::Running);
        effects
    }

    /// The process `pid` reaped, having ended so.
    pub(super) fn reaped(&mut self, pid: i32, exit: Exit) -> Vec<Effect> {
        self.feed(Input::Reaped {
            pid,
            exit,
            output: Vec::new(),
        })
    }

    /// The record the machine would write now.
    pub(super) fn record(&self) -> StateRecord {
        let mut record = crate::keeper::initial_record(&minimal("web"));
        self.m.write_record(&mut record);
        record
    }
}

/// An exit with `code`.
pub(super) fn code(code: i32) -> Exit {
    Exit {
        code: Some(code),
        signal: None,
    }
}

/// Death by the signal named `name`.
pub(super) fn killed_by(name: &str) -> Exit {
    Exit {
        code: None,
        signal: Some(name.to_string()),
    }
}

/// The events among `effects`, in order.
pub(super) fn events(effects: &[Effect]) -> Vec<&Event> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Record(event) | Effect::RecordExit { event, .. } => Some(event),
            _ => None,
        })
        .collect()
}

/// The kinds of the events among `effects`, in order.
pub(super) fn kinds(effects: &[Effect]) -> Vec<Kind> {
    events(effects).into_iter().map(|e| e.event).collect()
}

/// The event of `kind` among `effects`; panics if there is none.
pub(super) fn event(effects: &[Effect], kind: Kind) -> &Event {
    events(effects)
        .into_iter()
        .find(|e| e.event == kind)
        .unwrap_or_else(|| panic!("no {kind:?} event in {effects:?}"))
}

/// A daemon with the default keys but these: `start_wait` 500 ms, `ready_timeout` 5 s,
/// `stop_timeout` 2 s.
pub(super) fn daemon() -> Daemon {
    let mut daemon = minimal("web");
    daemon.supervision.start_wait = Duration::from_millis(500);
    daemon.supervision.ready_timeout = Duration::from_secs(5);
    daemon.supervision.stop_timeout = Duration::from_secs(2);
    daemon
}

/// The status follows from the phase: it is never stored apart from it.
#[test]
fn the_status_is_derived_from_the_phase() {
    let t0 = crate::keeper::test_epoch();
    let s = Supervision::default();
    let phases = [
        (Phase::NotStarted, Status::Starting),
        (Phase::spawned(DaemonType::Simple, t0, &s), Status::Starting),
        (
            Phase::spawned(DaemonType::Forking, t0, &s),
            Status::Starting,
        ),
        (Phase::Running, Status::Running),
        (
            Phase::Backoff {
                until: t0,
                next_restart_ms: None,
            },
            Status::Backoff,
        ),
        (Phase::stop_command(7, t0, &s), Status::Stopping),
        (
            Phase::Draining {
                escalation: Escalation::Nothing,
                next: Next::stopped(),
                shown: Status::Running,
            },
            Status::Stopping,
        ),
        (
            Phase::Draining {
                escalation: Escalation::Nothing,
                next: Next::Restart(Duration::ZERO),
                shown: Status::Running,
            },
            Status::Running,
        ),
        (
            Phase::Finished {
                status: Status::Failed,
                reason: Reason::GaveUp,
            },
            Status::Failed,
        ),
    ];
    for (phase, status) in phases {
        assert_eq!(phase.status(), status, "{phase:?}");
    }
}

/// Promise 10: an idle keeper sleeps with no timeout; every timer it does set is in
/// the one table.
#[test]
fn an_idle_keeper_has_no_timer() {
    let mut rig = Rig::new(daemon());
    rig.up();
    assert_eq!(rig.m.poll_timeout(), None);
    assert!(rig.m.timers().iter().all(|(_, at)| at.is_none()));
}

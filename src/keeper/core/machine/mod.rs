//! The keeper's state machine: everything a keeper knows and decides about its daemon,
//! with no IO. The loop in `keeper/mod.rs` turns what happens (a child reaped, a
//! signal, a timer due, an answer to something it was asked to do) into an [`Input`]
//! for [`Machine::handle`], reads the time once per wake-up ([`Now`]), and carries out
//! each [`Effect`] that [`Machine::poll_effect`] hands back: a spawn, a signal, a
//! probe, a record or event written, a report to `dmgr start`. [`Machine::poll_timeout`]
//! says when to wake it next, from one table of timers ([`Machine::timers`]); the
//! record's status is derived from the phase ([`Machine::status`]), never stored.
//!
//! What the machine needs to know of the processes around it (the keeper's children,
//! what a pidfile names, whether anything of the daemon's is left, how much memory it
//! uses) it reads through [`Facts`], which the loop implements with reads of `/proc`
//! and the tests with made-up values. Nothing under `keeper/core/` makes a system
//! call or reads the clock (see the purity test in `tests/architecture.rs`).
//!
//! What the daemon says of itself (a notify message, `ready = { fd | log }`) is an
//! [`Input`] too, and the notify protocol's timers (a watchdog, a reload's verdict)
//! one row of the table (`notify`). Room for what comes next: a socket event and a
//! hook's end are more [`Input`]s; a schedule one more row of the timer table; a
//! start-first restart a second generation beside [`Machine::main`], matched by PID in
//! [`Machine::role_of`] as the probe and the commands the keeper runs are now.

mod checks;
mod end;
mod generations;
#[cfg(test)]
mod generations_tests;
#[cfg(test)]
mod generations_triggers_tests;
pub(crate) mod hooks;
mod interface;
pub(crate) mod jobs;
mod notify;
mod reload;
mod start;
mod steps;
mod stop;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub(crate) use interface::{Command, Effect, Exit, Facts, Input, MemoryMode, Now, TakeOver};
use steps::{
    drain_begins, drain_step, on_exit, on_stop, on_timer, probe_failed, DrainStep, ExitStep,
    FirstSignal, StartStep, StopStep, Tick,
};
pub(crate) use steps::{Escalation, Next, Phase, Starting, PROBE_INTERVAL};

use super::health::HealthWatch;
use super::memory::MemoryWatch;
use super::policy::Tally;
use crate::config::{Daemon, DaemonType, Supervision};
use crate::events::{Event, Kind};
use crate::procinfo::ProcId;
use crate::state::{ChecksSeen, ExitRecord, MemoryMechanism, Reason, StateRecord, Status};

/// How soon a restart that could not be recorded (a full run disk) is tried again.
const RECORD_RETRY: Duration = Duration::from_secs(1);

/// The daemon's main process: the daemon, or for a forking daemon the command that
/// daemonizes until the process it leaves behind is adopted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Child {
    pub(crate) id: ProcId,
    /// For a forking daemon, false while this is the command, not the daemon.
    pub(crate) adopted: bool,
    pub(crate) started: Instant,
    /// Set once it has been reaped.
    pub(crate) exited: bool,
}

/// A probe that was asked for: `id` once its process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProbeRun {
    id: Option<ProcId>,
    deadline: Instant,
    /// Killed: its end says nothing about the daemon.
    killed: bool,
}

/// A `reload_command` that runs, or a reload being asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reloading {
    /// `reload_signal` is being sent to `pid`.
    Signal { pid: i32, request: Option<u32> },
    /// `reload_command` is being started.
    Starting { request: Option<u32> },
    /// It runs as `pid`, killed at `deadline`.
    Running {
        pid: i32,
        request: Option<u32>,
        deadline: Instant,
        killed: bool,
    },
}

/// The kinds of timer in the table, in the order they are looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The liveness check's next probe, or its running probe's deadline.
    Health,
    /// The next memory sample.
    Memory,
    /// `reload_command`'s deadline.
    Reload,
    /// The notify protocol's: a watchdog ping due, a reload's verdict due.
    Notify,
    /// The running probe's deadline.
    Probe,
    /// The phase's own: start-up window, adoption, hand-over, backoff, stop.
    Phase,
    /// The running hook's `hook_timeout`.
    Hook,
}

/// The keeper's state of its daemon. See the module documentation.
#[derive(Debug)]
pub(crate) struct Machine {
    name: String,
    kind: DaemonType,
    s: Supervision,
    /// The daemon's own pidfile (`type = "forking"`), which it names in messages.
    forking_pidfile: Option<PathBuf>,
    phase: Phase,
    main: Option<Child>,
    tally: Tally,
    /// The restarts the record shows: the tally's, as of the last backoff.
    restarts: u32,
    started_at_ms: Option<u64>,
    last_exit: Option<ExitRecord>,
    history: Vec<ExitRecord>,
    error: Option<String>,
    probe: Option<ProbeRun>,
    health: Option<HealthWatch>,
    memory: Option<MemoryWatch>,
    memory_mode: Option<MemoryMode>,
    seen: ChecksSeen,
    reload: Option<Reloading>,
    /// A stop's `stopping` event, while `stop_command` is being started.
    stopping: Option<Event>,
    /// Who stopped the daemon when it was not `dmgr stop` (an outside stop).
    stopped_by: Option<String>,
    /// Whether `dmgr start` still waits for the outcome of the first start.
    reporting: bool,
    /// Why the daemon runs without a cgroup, for the next `started` event.
    cgroup_note: Option<String>,
    /// The notify protocol, for a `type = "notify"` daemon.
    notify: Option<notify::Notify>,
    /// Whether the daemon wrote `ready = { fd }`'s newline or `ready = { log }`'s line
    /// in this run.
    said_ready: bool,
    /// The hook that runs, if one does.
    hook: Option<hooks::HookRun>,
    /// A process of the daemon ran since the last `post_stop`.
    ran: bool,
    /// Why the run that ends failed, for `on_failure` (`unhealthy`, ...).
    failure_cause: Option<String>,
    /// The `gave-up` event was recorded before `on_failure` ran.
    gave_up_told: bool,
    /// `schedule` or `restart_schedule`, once the loop set it up.
    scheduled: Option<jobs::Scheduled>,
    effects: VecDeque<Effect>,
    /// The effects of the input being handled, which go before those still queued.
    new: Vec<Effect>,
    /// A start-first restart's other generations (see `generations`).
    gens: generations::Generations,
}

impl Machine {
    /// The machine of `daemon`'s keeper, before its first start; `reporting` when a
    /// `dmgr start` waits for its report, `memory` how `memory_max` can be watched.
    pub(crate) fn new(daemon: &Daemon, reporting: bool, memory: Option<MemoryMode>) -> Machine {
        let mut machine = Machine {
            name: daemon.name.clone(),
            kind: daemon.kind,
            s: daemon.supervision.clone(),
            forking_pidfile: daemon.forking_pidfile.clone(),
            phase: Phase::NotStarted,
            main: None,
            tally: Tally::default(),
            restarts: 0,
            started_at_ms: None,
            last_exit: None,
            history: Vec::new(),
            error: None,
            probe: None,
            health: None,
            memory: None,
            memory_mode: None,
            seen: ChecksSeen::default(),
            reload: None,
            stopping: None,
            stopped_by: None,
            reporting,
            cgroup_note: None,
            notify: (daemon.kind == DaemonType::Notify).then(|| {
                notify::Notify::new(
                    daemon.process.watchdog,
                    daemon.supervision.ready_timeout,
                    daemon.supervision.notify_access,
                )
            }),
            said_ready: false,
            hook: None,
            ran: false,
            failure_cause: None,
            gave_up_told: false,
            scheduled: None,
            effects: VecDeque::new(),
            new: Vec::new(),
            gens: generations::Generations::default(),
        };
        machine.build_checks(memory);
        machine
    }

    /// Acts on `input` at `now`, reading what it needs through `facts`.
    pub(crate) fn handle(&mut self, input: Input, now: Now, facts: &impl Facts) {
        match input {
            Input::Start { recorded } => self.on_start(recorded, now),
            Input::Tick => self.on_tick(now, facts),
            Input::Forked { id } => self.on_forked(id, now),
            Input::Spawned => self.on_spawned(now, facts),
            Input::SpawnFailed { reason, unrecorded } => {
                self.on_spawn_failed(reason, unrecorded, now, facts)
            }
            Input::Reaped { pid, exit, output } => self.on_reaped(pid, exit, output, now, facts),
            Input::Stop { outside } => self.on_stop(outside, now, facts),
            Input::Reload { request } => self.on_reload(request, now),
            Input::ReloadSignalled { result } => self.on_reload_signalled(result, now),
            Input::CommandStarted { command, pid } => match command {
                Command::Stop => self.on_stop_command_started(pid, now),
                Command::Reload => self.on_reload_command_started(pid, now),
            },
            Input::CommandFailed { command, reason } => match command {
                Command::Stop => self.on_stop_command_failed(reason, now, facts),
                Command::Reload => self.on_reload_command_failed(reason, now),
            },
            Input::ProbeStarted { id } => self.on_probe_started(id),
            Input::ProbeAnswered { passed } => {
                self.probe = None;
                self.on_probe_result(Some(passed), now, facts);
            }
            Input::TakeOver(change) => self.on_take_over(change, now, facts),
            Input::MemoryEvents(counters) => self.on_memory_events(counters, now, facts),
            Input::HookStarted { pid } => self.on_hook_started(pid),
            Input::HookFailed { reason } => self.on_hook_failed(reason, now, facts),
            Input::ClockChanged => self.on_clock_changed(now),
            Input::Restart { request } => self.on_restart(request, now, facts),
            Input::CgroupLost { note, memory } => {
                self.cgroup_note = Some(note);
                if memory.is_some() {
                    self.build_checks(memory);
                }
            }
            Input::Notify { pid, message } => self.on_notify(pid, message, now, facts),
            Input::SaidReady => self.on_said_ready(now, facts),
        }
        // Depth first: what this input asks for comes before what was asked before it,
        // as if each step had been carried out where it was decided.
        for effect in self.new.drain(..).rev() {
            self.effects.push_front(effect);
        }
    }

    /// The next thing to do, if any.
    pub(crate) fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// How many effects wait to be carried out.
    pub(crate) fn pending(&self) -> usize {
        self.effects.len()
    }

    /// When the loop must wake the machine next (with [`Input::Tick`]); `None` when only
    /// a signal or output can change anything, so that an idle keeper sleeps.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let generation = self.gens.poll_timeout();
        self.timers()
            .into_iter()
            .filter_map(|(_, at)| at)
            .chain(generation)
            .min()
    }

    /// The table of timers: each kind and when it is due, if it is set.
    pub(crate) fn timers(&self) -> [(Timer, Option<Instant>); 7] {
        let probe = self.probe.filter(|p| !p.killed).map(|p| p.deadline);
        let reload = match &self.reload {
            Some(Reloading::Running {
                deadline,
                killed: false,
                ..
            }) => Some(*deadline),
            _ => None,
        };
        [
            (
                Timer::Health,
                self.health.as_ref().and_then(HealthWatch::poll_timeout),
            ),
            (
                Timer::Memory,
                self.memory.as_ref().and_then(MemoryWatch::poll_timeout),
            ),
            (Timer::Reload, reload),
            (Timer::Notify, self.notify_deadline()),
            (Timer::Probe, probe),
            (Timer::Phase, self.phase_deadline()),
            (
                Timer::Hook,
                self.hook.filter(|h| !h.killed).map(|h| h.deadline),
            ),
        ]
    }

    /// The phase's own timer; while a start waits for the daemon's own word
    /// (`READY=1`, a line, a newline), only its end (`ready_timeout`) is.
    fn phase_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Starting(starting) if self.awaits_own_word() => Some(starting.ready_by),
            phase => phase.deadline(self.probe.map(|p| p.deadline)),
        }
    }

    /// The status the record shows: a function of the phase.
    pub(crate) fn status(&self) -> Status {
        self.phase.status()
    }

    /// Returns true if and only if the keeper's work is done.
    pub(crate) fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished { .. })
    }

    /// The daemon's main process while it runs (or, during a hand-over, the one that
    /// exited, until the keeper knows who took over).
    pub(crate) fn daemon(&self) -> Option<ProcId> {
        match &self.phase {
            Phase::Finished { .. } => None,
            Phase::HandingOver(w) => Some(w.old),
            _ => self.main.filter(|c| !c.exited).map(|c| c.id),
        }
    }

    /// The process a reaped PID was.
    pub(crate) fn role_of(&self, pid: i32) -> Role {
        if self.main.is_some_and(|c| c.id.pid == pid && !c.exited) {
            return Role::Main;
        }
        if matches!(self.reload, Some(Reloading::Running { pid: p, .. }) if p == pid) {
            return Role::ReloadCommand;
        }
        if self
            .probe
            .and_then(|p| p.id)
            .is_some_and(|id| id.pid == pid)
        {
            return Role::Probe;
        }
        if matches!(self.phase, Phase::StopCommand { pid: Some(p), .. } if p == pid) {
            return Role::StopCommand;
        }
        if self.hook.is_some_and(|h| h.pid == Some(pid)) {
            return Role::Hook;
        }
        if let Some(role) = self.gens.role_of(pid) {
            return role;
        }
        Role::Other
    }

    /// Writes what the machine knows into `record`: status, main process, exits,
    /// restarts, errors, the probe and the checks, the supervision keys.
    pub(crate) fn write_record(&self, record: &mut StateRecord) {
        record.status = self.status();
        record.daemon = self.daemon();
        record.started_at_ms = self.started_at_ms;
        record.restarts = self.restarts;
        record.last_exit = self.last_exit.clone();
        record.history = self.history.clone();
        record.error = self.error.clone();
        record.probe = self.probe.and_then(|p| p.id);
        record.checks = self.seen.clone();
        self.write_notify(&mut record.notify);
        record.next_run_ms = self.next_run_ms();
        (record.reason, record.next_restart_ms) = match &self.phase {
            Phase::Finished { reason, .. } => (Some(*reason), None),
            Phase::Backoff {
                next_restart_ms, ..
            } => (None, *next_restart_ms),
            _ => (None, None),
        };
        if record.supervision != self.s {
            record.supervision = self.s.clone();
        }
    }

    /// An event of this daemon (the loop stamps its time as it records it).
    fn event(&self, kind: Kind) -> Event {
        Event::new(&self.name, kind)
    }

    fn emit(&mut self, effect: Effect) {
        self.new.push(effect);
    }

    fn record(&mut self, event: Event) {
        self.emit(Effect::Record(event));
    }

    fn save(&mut self) {
        self.emit(Effect::SaveRecord);
    }

    /// The main process, if it runs (for a forking daemon: once adopted).
    fn main_running(&self) -> Option<Child> {
        self.main.filter(|c| c.adopted && !c.exited)
    }

    /// The unreaped main process's PID, whose group a signal to everything reaches.
    fn unreaped_main(&self) -> Option<i32> {
        self.main.filter(|c| !c.exited).map(|c| c.id.pid)
    }

    /// The first start, once the keeper is set up: a scheduled oneshot waits for its
    /// first time.
    fn on_start(&mut self, recorded: Result<(), String>, now: Now) {
        match recorded {
            // A daemon that no record names could be neither listed nor stopped:
            // without a record, nothing starts.
            Err(reason) => self.finish(Status::Failed, Some(reason), Reason::StartFailed),
            Ok(()) if self.runs_on_schedule() => self.start_waiting(),
            Ok(()) => self.begin_run(false, now),
        }
    }
}

/// What a reaped process was to the keeper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The daemon's main process (or a forking daemon's command).
    Main,
    /// A readiness or liveness probe.
    Probe,
    /// `stop_command`.
    StopCommand,
    /// `reload_command`.
    ReloadCommand,
    /// A hook.
    Hook,
    /// Something the daemon started: a drain looks at what is left.
    Other,
    /// The old generation, serving while a start-first restart's new one starts.
    Serving,
    /// A generation being stopped beside the main process.
    Retiring,
}

/// `duration` in whole milliseconds.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `duration` rounded down to whole milliseconds.
fn round_ms(duration: Duration) -> Duration {
    Duration::from_millis(millis(duration))
}

/// The kind of daemon whose spawned process is its main process from the start.
fn is_adopted_at_spawn(kind: DaemonType) -> bool {
    kind != DaemonType::Forking
}

/// What memory a measurement says, for the record: moved by 1 % of the ceiling or
/// more since the last one recorded.
fn memory_moved(seen: &ChecksSeen, used: u64, max: u64) -> bool {
    seen.memory
        .as_ref()
        .is_none_or(|m| m.used_bytes.abs_diff(used).saturating_mul(100) >= max)
}

/// The mechanism `mode` stands for, in the record.
fn mechanism(mode: &Option<MemoryMode>) -> (MemoryMechanism, Option<String>) {
    match mode {
        Some(MemoryMode::Events) => (MemoryMechanism::CgroupEvents, None),
        Some(MemoryMode::Sampled { reason }) => (MemoryMechanism::Sampled, reason.clone()),
        None => (MemoryMechanism::Sampled, None),
    }
}

#[cfg(test)]
mod tests;

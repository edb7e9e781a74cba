//! Start-first restarts (`restart_mode = "start-first"`, issue 27): two generations
//! of the daemon at once, on the sockets the keeper holds. A restart moves the running
//! main process aside as the serving generation N and starts N+1 as the main process;
//! once N+1 is up (`start_wait`, `ready`), N gets `stop_signal` and `stop_timeout` to
//! finish what it serves, then SIGKILL, as a retiring generation. If N+1 dies, cannot
//! be spawned or misses `ready_timeout`, it is the one that retires and N becomes the
//! main process again: a `rollback`. Each generation's signals go to its own process
//! group only, never to every process of the daemon.
//!
//! `dmgr restart` asks with a request number; the answer is the event that carries it:
//! `stopping` (the old generation is being stopped, the new one is up) or `rollback`.
//!
//! If generation N ends while N+1 starts, there is nothing left to roll back to: N+1
//! carries on alone as the daemon's start, and the restart is [`Awaiting`] its
//! verdict. Once N+1 is up, its `ready` event answers; if it fails, the restart policy
//! judges it as any failed start, and the `restarting` or `gave-up` that follows
//! answers.

use std::time::Instant;

use super::{Child, Effect, Facts, Machine, Now, Phase, Role};
use crate::config::units::{format_duration, Signal};
use crate::config::RestartMode;
use crate::events::{Event, Kind};
use crate::procinfo::ProcId;

/// The generations beside the main process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Generations {
    /// The main process's generation, counted from 1 by this keeper.
    number: u32,
    /// Generation N, which still serves while N+1 (the main process) starts.
    serving: Option<Serving>,
    /// Generations being stopped beside the main process (a restart may follow the
    /// last before its old generation has finished).
    retiring: Vec<Retiring>,
    /// A restart whose new generation starts with no old one beside it.
    awaiting: Option<Awaiting>,
}

/// A restart that waits for the verdict on its new generation, which starts alone:
/// the old one ended meanwhile. `note` says what became of the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Awaiting {
    /// The request of `dmgr restart` to answer, if one asked.
    pub(super) request: Option<u32>,
    /// What became of the old generation, for the answer's message.
    pub(super) note: String,
    /// Whether the new generation was spawned: its failure is the restart's.
    pub(super) spawned: bool,
}

/// The old generation while the new one starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Serving {
    child: Child,
    started_at_ms: Option<u64>,
    /// The request of `dmgr restart` to answer, if one asked.
    request: Option<u32>,
    /// What it gets once the new generation is up: `stop_signal`, or for a watchdog
    /// restart `watchdog_signal`.
    retire_with: Signal,
}

/// A generation being stopped: `stop_signal` was sent to its group, SIGKILL follows at
/// `kill_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Retiring {
    id: ProcId,
    number: u32,
    kill_at: Instant,
    killed: bool,
}

impl Generations {
    /// The retiring generation's SIGKILL, when one is due.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.retiring
            .iter()
            .filter(|r| !r.killed)
            .map(|r| r.kill_at)
            .min()
    }

    /// What `pid` is to the generations, if anything.
    pub(super) fn role_of(&self, pid: i32) -> Option<Role> {
        if self.retiring.iter().any(|r| r.id.pid == pid) {
            return Some(Role::Retiring);
        }
        if self.serving.is_some_and(|s| s.child.id.pid == pid) {
            return Some(Role::Serving);
        }
        None
    }

    /// The new generation of a restart that waits for it was spawned.
    pub(super) fn on_spawned(&mut self) {
        if let Some(awaiting) = &mut self.awaiting {
            awaiting.spawned = true;
        }
    }

    /// While a start-first restart runs: which generation the main process is, beside
    /// which, for its events (`generation 2, beside generation 1 (pid 100)`).
    pub(super) fn next_beside(&self) -> Option<String> {
        self.serving.map(|s| {
            format!(
                "generation {}, beside generation {} (pid {})",
                self.number + 1,
                self.number,
                s.child.id.pid
            )
        })
    }

    /// Returns true if and only if a start-first restart is under way.
    pub(super) fn is_starting_next(&self) -> bool {
        self.serving.is_some()
    }
}

impl Machine {
    /// `dmgr restart` asks (with `request`), or the keeper's own restart does (none):
    /// start-first or stop-first as `restart_mode` says, the sockets held throughout.
    /// Answered at once with a `rollback` when it cannot be done now.
    pub(super) fn on_restart(&mut self, request: Option<u32>, now: Now, facts: &impl Facts) {
        let start_first = self.s.restart_mode == RestartMode::StartFirst;
        let refused = if self.gens.serving.is_some() || self.gens.awaiting.is_some() {
            Some("a restart is under way".to_string())
        } else if start_first && !matches!(self.phase, Phase::Running) {
            Some(format!("the daemon is not up (status {})", self.status()))
        } else if !self.phase.is_up() {
            Some(format!(
                "the daemon is not running (status {})",
                self.status()
            ))
        } else {
            None
        };
        let Some(old) = self.main.filter(|c| refused.is_none() && !c.exited) else {
            let why = refused.unwrap_or_else(|| "no daemon runs".into());
            let event = self.event(Kind::Rollback).request(request);
            return self.record(event.message(format!("not restarted: {why}")));
        };
        let number = self.gens.number.max(1);
        self.gens.number = number;
        if !start_first {
            return self.restart_stop_first(old, request, now, facts);
        }
        let stop_signal = self.s.stop_signal;
        self.start_beside(old, request, "", stop_signal);
    }

    /// Returns true if and only if the keeper's own restart would start the next
    /// generation first: `restart_mode = "start-first"`, the daemon up, no restart
    /// under way.
    pub(super) fn can_start_first(&self) -> bool {
        self.s.restart_mode == RestartMode::StartFirst
            && matches!(self.phase, Phase::Running)
            && self.gens.serving.is_none()
            && self.gens.awaiting.is_none()
            && self.main_running().is_some()
    }

    /// The keeper's own restart for `cause` (`unhealthy`, `memory-exceeded`,
    /// `watchdog`, `restart_schedule`), where [`Machine::can_start_first`]: the next
    /// generation starts beside the one that serves, which gets `retire_with` once the
    /// new one is up.
    pub(super) fn restart_start_first_for(&mut self, cause: &str, retire_with: Signal) {
        let Some(old) = self.main_running().filter(|_| self.can_start_first()) else {
            return;
        };
        self.gens.number = self.gens.number.max(1);
        self.restarts = self.tally.restarts;
        self.start_beside(old, None, &format!(" ({cause})"), retire_with);
        self.save();
    }

    /// Starts generation N+1 beside `old`, generation N, which serves until N+1 is up
    /// and is then sent `retire_with`.
    fn start_beside(&mut self, old: Child, request: Option<u32>, cause: &str, retire_with: Signal) {
        let number = self.gens.number;
        self.gens.serving = Some(Serving {
            child: old,
            started_at_ms: self.started_at_ms,
            request,
            retire_with,
        });
        self.main = None;
        self.kill_probe();
        self.pause_checks();
        let message = format!(
            "start-first{cause}: generation {} starts beside generation {number} (pid {}), which keeps serving",
            number + 1,
            old.id.pid
        );
        self.record(
            self.event(Kind::Restarting)
                .pid(old.id.pid)
                .message(message),
        );
        self.emit(Effect::SpawnDaemon { again: true });
    }

    /// `restart_mode = "stop-first"` in the keeper: generation N is stopped (the drain:
    /// `stop_signal`, SIGKILL after `stop_timeout`), then N+1 starts at once, while the
    /// keeper holds the sockets: clients wait in the kernel's queue meanwhile. The
    /// restart waits for N+1's verdict, as when N ends during a start-first restart.
    fn restart_stop_first(
        &mut self,
        old: Child,
        request: Option<u32>,
        now: Now,
        facts: &impl Facts,
    ) {
        let number = self.gens.number;
        let pid = old.id.pid;
        self.gens.awaiting = Some(Awaiting {
            request,
            note: format!(
                "generation {number} (pid {pid}) was stopped first (restart_mode = \"stop-first\")"
            ),
            spawned: false,
        });
        let message = format!(
            "stop-first: generation {number} stops, then generation {} starts; the keeper holds the sockets meanwhile",
            number + 1
        );
        let stopping = self
            .event(Kind::Stopping)
            .pid(pid)
            .signal(self.s.stop_signal.name());
        self.record(stopping.message(message));
        self.error = None;
        self.drain(super::Next::Restart(std::time::Duration::ZERO), now, facts);
    }

    /// The restart's own start after a stop-first drain, if that is what follows: the
    /// `restarting` event's message. The restart policy counts nothing.
    pub(super) fn planned_restart(&self) -> Option<String> {
        let awaiting = self.gens.awaiting.as_ref().filter(|a| !a.spawned);
        awaiting.map(|_| {
            format!(
                "dmgr restart: generation {} starts, on the sockets the keeper held",
                self.gens.number + 1
            )
        })
    }

    /// The new generation is up: the old one gets `stop_signal` to finish what it
    /// serves, and `dmgr restart` its answer.
    pub(super) fn on_next_generation_up(&mut self, now: Now) {
        let Some(serving) = self.gens.serving.take() else {
            return;
        };
        let new = self.main.map_or(0, |m| m.id.pid);
        let old = self.gens.number;
        self.gens.number = old + 1;
        let message = format!(
            "generation {old}, replaced by generation {} (pid {new}), which is up",
            old + 1
        );
        self.retire(serving.child.id, old, serving.retire_with, now);
        let event = self
            .event(Kind::Stopping)
            .pid(serving.child.id.pid)
            .signal(serving.retire_with.name())
            .request(serving.request);
        self.record(event.message(message));
    }

    /// The new generation failed (`why`) before it was up: it retires if it still runs,
    /// and the old one is the main process again.
    pub(super) fn roll_back(&mut self, why: String, now: Now, facts: &impl Facts) {
        let Some(serving) = self.gens.serving.take() else {
            return;
        };
        self.kill_probe();
        let failed = self.main.take();
        let next = self.gens.number + 1;
        if let Some(new) = failed.filter(|c| !c.exited) {
            let stop_signal = self.s.stop_signal;
            self.retire(new.id, next, stop_signal, now);
        }
        self.main = Some(serving.child);
        self.started_at_ms = serving.started_at_ms;
        self.phase = Phase::Running;
        self.emit(Effect::WritePid {
            pid: serving.child.id.pid,
        });
        self.resume_checks(now, facts);
        self.save();
        let new_pid = failed.map_or(String::new(), |c| format!(" (pid {})", c.id.pid));
        let message = format!(
            "generation {next}{new_pid} {why}; generation {} (pid {}) keeps serving",
            self.gens.number, serving.child.id.pid
        );
        let mut event = self.event(Kind::Rollback).request(serving.request);
        if let Some(new) = failed {
            event = event.pid(new.id.pid);
        }
        self.record(event.message(message));
    }

    /// Sends generation `number`'s group `stop_signal`; SIGKILL after `stop_timeout`.
    fn retire(&mut self, id: ProcId, number: u32, signal: Signal, now: Now) {
        self.gens.retiring.push(Retiring {
            id,
            number,
            kill_at: now.at + self.s.stop_timeout,
            killed: false,
        });
        self.emit(Effect::SignalGroup {
            pid: id.pid,
            signal,
        });
    }

    /// The new generation `pid` is up with no old one beside it: the answer to the
    /// restart that waited for it (the request, and a message for the `ready` event).
    pub(super) fn answer_up(&mut self, pid: i32) -> Option<(Option<u32>, String)> {
        let awaiting = self.gens.awaiting.take_if(|a| a.spawned)?;
        self.gens.number = self.gens.number.max(1) + 1;
        let message = format!(
            "generation {} (pid {pid}) is up; {}",
            self.gens.number, awaiting.note
        );
        Some((awaiting.request, message))
    }

    /// The run of a new generation that started alone failed, and `event` (a
    /// `restarting` or `gave-up`) says what follows: it answers the restart.
    pub(super) fn answer_failed(&mut self, event: Event) -> Event {
        if !self.gens.awaiting.as_ref().is_some_and(|a| a.spawned) {
            return event;
        }
        let Some(awaiting) = self.gens.awaiting.take() else {
            return event;
        };
        let note = format!(
            "generation {} failed, and {}: nothing to roll back to",
            self.gens.number.max(1) + 1,
            awaiting.note
        );
        event.request(awaiting.request).and_message(note)
    }

    /// The retiring generation's `stop_timeout` is over: SIGKILL to its group.
    pub(super) fn retiring_due(&mut self, now: Now) {
        let mut due = Vec::new();
        for retiring in &mut self.gens.retiring {
            if !retiring.killed && now.at >= retiring.kill_at {
                retiring.killed = true;
                due.push((retiring.id.pid, retiring.number));
            }
        }
        for (pid, number) in due {
            self.emit(Effect::SignalGroup {
                pid,
                signal: Signal::KILL,
            });
            let message = format!(
                "generation {number} still running {} after {}",
                format_duration(self.s.stop_timeout),
                self.s.stop_signal
            );
            let event = self.event(Kind::Killed).pid(pid).signal("KILL");
            self.record(event.message(message));
        }
    }

    /// A process of the generations was reaped: the retiring one is gone; the serving
    /// one died while the next started, which then has nothing to roll back to.
    pub(super) fn on_generation_exit(&mut self, pid: i32, role: Role, exit: &super::Exit) {
        let (pid, message) = match role {
            Role::Retiring => {
                let Some(at) = self.gens.retiring.iter().position(|r| r.id.pid == pid) else {
                    return;
                };
                let retiring = self.gens.retiring.remove(at);
                (
                    retiring.id.pid,
                    format!("generation {}, replaced", retiring.number),
                )
            }
            _ => {
                // Nothing to roll back to now: the new generation carries on alone, and
                // the request is answered when it is up or has failed.
                let Some(serving) = self.gens.serving.take() else {
                    return;
                };
                let (old, next) = (self.gens.number, self.gens.number + 1);
                let pid = serving.child.id.pid;
                // What it left (a server's workers) must not serve on beside the new
                // generation: `stop_signal`; the next stop of the daemon gets the rest.
                self.emit(Effect::SignalLeftOfGroup {
                    group: pid,
                    signal: self.s.stop_signal,
                });
                self.gens.awaiting = Some(Awaiting {
                    request: serving.request,
                    note: format!(
                        "generation {old} (pid {pid}) ended ({}) while it started",
                        exit.describe()
                    ),
                    spawned: self.main.is_some(),
                });
                (
                    pid,
                    format!(
                        "generation {old} ended while generation {next} starts; \
                         generation {next} carries on alone, with nothing to roll back to"
                    ),
                )
            }
        };
        let mut event = self.event(Kind::Exited).pid(pid).message(message);
        event.exit_code = exit.code;
        event.signal = exit.signal.clone();
        self.record(event);
    }
}

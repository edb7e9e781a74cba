//! Stopping: a stop request (through `stop_command` where there is one), the drain
//! that stops everything the daemon started (`stop_signal`, then SIGKILL after
//! `stop_timeout`, as `kill_mode` says), and what follows once all of it is gone: a
//! restart after the backoff, or the end.

use super::{
    drain_begins, drain_step, on_stop, DrainStep, Effect, Escalation, Exit, Facts, FirstSignal,
    Machine, Next, Now, Phase, StopStep,
};
use crate::config::units::Signal;
use crate::events::{Event, Kind};
use crate::keeper::report::Report;
use crate::state::{ChecksSeen, Reason, Status};

impl Machine {
    /// SIGTERM, SIGINT or SIGQUIT arrived. Only `dmgr stop`'s (`outside` none) is a stop
    /// by request; any other is an outside stop (a login session's end, `kill`,
    /// `systemctl stop` of a scope), recorded with its sender, which `apply` starts
    /// again. The daemon is stopped either way.
    pub(super) fn on_stop(&mut self, outside: Option<String>, now: Now, facts: &impl Facts) {
        match outside {
            // `dmgr stop` asks too: whoever began the stop, it is a requested one now.
            None => self.stopped_by = None,
            Some(who) if !self.phase.is_stopping() && self.stopped_by.is_none() => {
                self.stopped_by = Some(who);
            }
            Some(_) => {}
        }
        self.stop(now, facts);
    }

    /// Stops the daemon: through `stop_command` where there is one and the daemon runs,
    /// else by the drain.
    fn stop(&mut self, now: Now, facts: &impl Facts) {
        if self.stop_during_hook() {
            return;
        }
        // A stop while the keeper waits for a successor: the main process's exit stands.
        self.give_up_hand_over(now, facts);
        let main = self.main_running();
        let step = on_stop(&self.phase, &self.s, main.is_some());
        if step == StopStep::Ignore {
            return;
        }
        self.kill_probe();
        self.pause_checks();
        let mut stopping = self.event(Kind::Stopping);
        stopping.pid = main.map(|m| m.id.pid);
        stopping.message = self.stopped_by.clone();
        if let (StopStep::StopCommand, Some(argv), Some(main)) =
            (step, self.s.stop_command.clone(), main)
        {
            self.stopping = Some(stopping);
            self.emit(Effect::RunCommand {
                command: super::Command::Stop,
                argv,
                main: main.id.pid,
            });
            return;
        }
        self.stop_by_signal(stopping, now, facts);
    }

    /// `stop_command` runs as `pid`: the keeper waits for it and the daemon to end,
    /// within `stop_timeout`.
    pub(super) fn on_stop_command_started(&mut self, pid: i32, now: Now) {
        let stopping = self
            .stopping
            .take()
            .unwrap_or_else(|| self.event(Kind::Stopping));
        self.record(stopping.and_message(format!("stop_command running (pid {pid})")));
        self.phase = Phase::stop_command(pid, now.at, &self.s);
        self.save();
    }

    /// `stop_command` could not run: the signals stop the daemon.
    pub(super) fn on_stop_command_failed(&mut self, reason: String, now: Now, facts: &impl Facts) {
        let stopping = self
            .stopping
            .take()
            .unwrap_or_else(|| self.event(Kind::Stopping));
        let stopping = stopping.and_message(format!("cannot run stop_command: {reason}"));
        self.stop_by_signal(stopping, now, facts);
    }

    /// Records `stopping` and drains with `stop_signal`; a drain already under way (for
    /// a restart) ends in a stop instead.
    fn stop_by_signal(&mut self, stopping: Event, now: Now, facts: &impl Facts) {
        self.record(stopping.signal(self.s.stop_signal.to_string()));
        match &mut self.phase {
            Phase::Draining { next, .. } => {
                *next = Next::stopped();
                self.save();
            }
            _ => self.drain(Next::stopped(), now, facts),
        }
    }

    /// `stop_command` ended with `exit`. A failure is an event, and the signals follow
    /// at once; after a success, once the daemon has ended too, whatever is left gets
    /// the usual signals, and until then the keeper waits for it, within `stop_timeout`.
    pub(super) fn on_stop_command_exit(&mut self, exit: &Exit, now: Now, facts: &impl Facts) {
        if !exit.is_success() {
            let mut failed = self.event(Kind::Stopping).message(format!(
                "stop_command ended ({}); {} to what is left now",
                exit.describe(),
                self.s.stop_signal
            ));
            failed.exit_code = exit.code;
            self.record(failed.signal(self.s.stop_signal.to_string()));
            self.drain(Next::stopped(), now, facts);
            return;
        }
        if self.main.is_none_or(|c| c.exited) {
            self.drain(Next::stopped(), now, facts);
        } else if let Phase::StopCommand { pid, .. } = &mut self.phase {
            *pid = None;
        }
    }

    /// Stops everything the daemon started (the daemon itself may still run): sends
    /// `stop_signal` now and SIGKILL after `stop_timeout`; carries on with `next` once
    /// all of it is gone (see [`Machine::look_at_drain`]).
    pub(super) fn drain(&mut self, next: Next, now: Now, facts: &impl Facts) {
        // A probe's answer means nothing now; it must not outlive what it checked.
        self.kill_probe();
        self.pause_checks();
        self.emit(Effect::BeginDrain);
        let main = self.unreaped_main();
        let (first, escalation) =
            drain_begins(now.at, &self.s, main.is_some(), facts.tree_is_empty());
        let stop_signal = self.s.stop_signal;
        match (first, main) {
            (FirstSignal::Nothing, _) => {}
            (FirstSignal::StopAll, _) => self.emit(Effect::SignalAll {
                signal: stop_signal,
                main,
            }),
            // Our unreaped child: its PID cannot have been reused.
            (FirstSignal::StopMain, Some(pid)) => self.emit(Effect::SignalMain {
                pid,
                signal: stop_signal,
            }),
            (FirstSignal::StopMain, None) | (FirstSignal::KillAll, _) => {
                self.kill_what_is_left("the main process is gone", facts);
            }
        }
        let shown = self.status();
        self.phase = Phase::Draining {
            escalation,
            next,
            shown,
        };
        self.save();
    }

    /// `kill_mode = "mixed"`: SIGKILL to every process of the daemon that is left, with
    /// a `killed` event saying `why` when there is one.
    fn kill_what_is_left(&mut self, why: &str, facts: &impl Facts) {
        if facts.anything_live() {
            let killed = self.event(Kind::Killed).signal("KILL");
            self.record(killed.message(format!(
                "kill_mode = \"mixed\": {why}; SIGKILL to what is left"
            )));
        }
        let main = self.unreaped_main();
        self.emit(Effect::SignalAll {
            signal: Signal::KILL,
            main,
        });
    }

    /// A drain looks at what is left: processes that showed up since it began get what
    /// the others got; once everything is gone, what it was for follows.
    pub(super) fn look_at_drain(&mut self, now: Now, facts: &impl Facts) {
        let Phase::Draining {
            escalation, next, ..
        } = &self.phase
        else {
            return;
        };
        let (before, next) = (*escalation, next.clone());
        let main = self.unreaped_main();
        let tree_empty = main.is_none() && facts.tree_is_empty();
        match drain_step(before, &next, now.at, &self.s, main.is_some(), tree_empty) {
            DrainStep::Wait => {}
            DrainStep::Signal { kill, escalation } => {
                if kill && before != Escalation::Killed {
                    // `kill_mode = "mixed"`: the main process has exited.
                    self.kill_what_is_left("the main process exited", facts);
                } else {
                    let signal = if kill {
                        Signal::KILL
                    } else {
                        self.s.stop_signal
                    };
                    self.emit(Effect::SignalAll { signal, main });
                }
                if let Phase::Draining { escalation: e, .. } = &mut self.phase {
                    *e = escalation;
                }
            }
            DrainStep::Done(next) => self.drain_done(next, now),
        }
    }

    /// Everything the daemon started is gone: the hooks of a run's end, then a
    /// restart after the delay, the wait for a schedule's next time, or the end.
    pub(super) fn drain_done(&mut self, next: Next, now: Now) {
        if !self.hooks_at_end(&next, now) {
            self.go_on(next, now);
        }
    }

    /// What a run's end was for, once its hooks are done.
    pub(super) fn go_on(&mut self, next: Next, now: Now) {
        match next {
            Next::Wait => self.wait_for_schedule(),
            // Stopped, but not by `dmgr stop`: `apply` starts it again.
            Next::Finish {
                reason: Reason::StoppedByRequest,
                ..
            } if self.stopped_by.is_some() => {
                let by = self.stopped_by.clone();
                self.finish(Status::Stopped, by, Reason::OutsideStop);
            }
            Next::Finish {
                status,
                error,
                reason,
            } => self.finish(status, error, reason),
            Next::Restart(delay) => {
                let mut restarting = self.event(Kind::Restarting);
                restarting.delay_ms = Some(super::millis(delay));
                let n = self.tally.restarts;
                restarting.message = Some(match (&self.error, self.planned_restart()) {
                    (_, Some(planned)) => planned,
                    (Some(why), None) => format!("restart {n}: {why}"),
                    (None, None) => format!("restart {n}"),
                });
                let restarting = self.answer_failed(restarting);
                self.record(restarting);
                self.phase = Phase::Backoff {
                    until: now.at + delay,
                    next_restart_ms: Some(now.wall_ms + super::millis(delay)),
                };
                self.restarts = n;
                self.save();
            }
        }
    }

    /// The keeper's work is done: the last of the log, the event that says how it
    /// ended, the final record, and for a start that never came up, its failure.
    pub(super) fn finish(&mut self, status: Status, error: Option<String>, reason: Reason) {
        self.emit(Effect::PumpLogs);
        match (&error, status) {
            // Stopped by a signal from outside: who sent it is in the message.
            (Some(why), _) if reason == Reason::OutsideStop => {
                self.record(self.event(Kind::Stopped).message(why.clone()))
            }
            // Recorded already, before `on_failure` ran.
            (Some(_), _) if self.gave_up_told => {}
            (Some(why), _) => {
                let gave_up = self.event(Kind::GaveUp).message(why.clone());
                let gave_up = self.answer_failed(gave_up);
                self.record(gave_up)
            }
            (None, Status::Stopped) if reason == Reason::StoppedByRequest => {
                self.record(self.event(Kind::Stopped))
            }
            _ => {}
        }
        self.error = error.clone();
        self.seen = ChecksSeen::default();
        self.phase = Phase::Finished { status, reason };
        // Unlink first, then release the lock by closing: never the other way round.
        // Both before the report, so that a failed `start` returns with no pidfile
        // left (promise 1).
        self.emit(Effect::Finish);
        if self.reporting && status == Status::Done {
            self.reporting = false;
            let ran_ms = self.last_exit.as_ref().map_or(0, |e| e.ran_ms);
            self.emit(Effect::Report(Report::Done { ran_ms }));
        }
        if self.reporting {
            self.reporting = false;
            let last = self.last_exit.as_ref().map(|e| e.describe());
            let reason = match error {
                Some(why) if reason == Reason::OutsideStop => {
                    format!("stopped before it was up, by {why}")
                }
                Some(why) => why,
                // A oneshot's run that failed, with no retry.
                None if status == Status::Failed && last.is_some() => {
                    format!("the run failed ({})", last.unwrap_or_default())
                }
                None => "stopped before it was up".to_string(),
            };
            self.emit(Effect::Report(Report::Failed { reason }));
        }
    }
}

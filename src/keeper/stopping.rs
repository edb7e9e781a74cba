//! The stopping phase of the keeper: the drain that stops everything the daemon
//! started, with `stop_signal` and then SIGKILL, a `stop` request (through
//! `stop_command` where there is one), and what follows once all of it is gone: the
//! end, or a restart after the backoff.

use std::time::Instant;

use nix::sys::signal::Signal;
use nix::sys::signalfd::siginfo;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::core::machine::{self, DrainStep, Escalation, FirstSignal, Next, Phase, StopStep};
use super::request::Request;
use super::{describe_wait, millis, Keeper};
use crate::events::Kind;
use crate::procinfo::{self, Stat};
use crate::state::{self, Reason, Status};

impl Keeper {
    /// Stops everything the daemon started (the daemon itself may still run): sends
    /// `stop_signal` now and SIGKILL after `stop_timeout`; carries on with `next` once
    /// all of it is gone.
    pub(super) fn drain(&mut self, next: Next) {
        // A probe's answer means nothing now; it must not outlive what it checked.
        self.kill_probe();
        self.pause_watches();
        self.tracked.begin_drain();
        let main = self.child.filter(|c| !c.exited);
        let (first, escalation) = machine::drain_begins(
            Instant::now(),
            &self.daemon.supervision,
            main.is_some(),
            self.tracked.tree_is_empty(),
        );
        let stop_signal = self.daemon.supervision.stop_signal.0;
        match (first, main) {
            (FirstSignal::Nothing, _) => {}
            (FirstSignal::StopAll, _) => self.signal_all(stop_signal),
            (FirstSignal::StopMain, Some(main)) => {
                // Our unreaped child: its PID cannot have been reused. SIGCONT after,
                // as for the group: a stopped process acts on it only once continued.
                for signal in [stop_signal, Signal::SIGCONT] {
                    let _ = nix::sys::signal::kill(Pid::from_raw(main.id.pid), signal);
                }
            }
            (FirstSignal::StopMain, None) | (FirstSignal::KillAll, _) => {
                self.kill_what_is_left("the main process is gone");
            }
        }
        if next.is_stop() {
            self.record.status = Status::Stopping;
        }
        self.phase = Phase::Draining { escalation, next };
        self.save();
    }

    /// Returns the final status once the keeper's work is done. While a drain waits,
    /// processes that showed up since it began get what the others got.
    pub(super) fn finished(&mut self) -> Option<(Status, Option<String>, Reason)> {
        let Phase::Draining { escalation, next } = &self.phase else {
            return None;
        };
        let main_runs = self.child.is_some_and(|c| !c.exited);
        let tree_empty = !main_runs && self.tracked.tree_is_empty();
        let now = Instant::now();
        let s = &self.daemon.supervision;
        let before = *escalation;
        let next = match machine::drain_step(before, next, now, s, main_runs, tree_empty) {
            DrainStep::Wait => return None,
            DrainStep::Signal { kill, escalation } => {
                if kill && before != Escalation::Killed {
                    // `kill_mode = "mixed"`: the main process has exited.
                    self.kill_what_is_left("the main process exited");
                    if let Phase::Draining { escalation: e, .. } = &mut self.phase {
                        *e = escalation;
                    }
                    return None;
                }
                let signal = if kill {
                    Signal::SIGKILL
                } else {
                    s.stop_signal.0
                };
                let group = self.live_group();
                self.tracked.signal(signal, group);
                if let Phase::Draining { escalation: e, .. } = &mut self.phase {
                    *e = escalation;
                }
                return None;
            }
            DrainStep::Done(next) => next,
        };
        match next {
            // Stopped, but not by `dmgr stop`: `apply` starts it again.
            Next::Finish {
                reason: Reason::StoppedByRequest,
                ..
            } if self.stopped_by.is_some() => Some((
                Status::Stopped,
                self.stopped_by.clone(),
                Reason::OutsideStop,
            )),
            Next::Finish {
                status,
                error,
                reason,
            } => Some((status, error, reason)),
            Next::Restart(delay) => {
                let mut restarting = self.event(Kind::Restarting);
                restarting.delay_ms = Some(millis(delay));
                restarting.message = Some(match &self.record.error {
                    Some(why) => format!("restart {}: {why}", self.tally.restarts),
                    None => format!("restart {}", self.tally.restarts),
                });
                self.record_event(restarting);
                self.phase = Phase::Backoff {
                    until: Instant::now() + delay,
                };
                self.record.status = Status::Backoff;
                self.record.restarts = self.tally.restarts;
                self.record.next_restart_ms = Some(state::now_ms() + millis(delay));
                self.save();
                None
            }
        }
    }

    /// The main process's group, while the main process is our unreaped child: that
    /// pins the group's ID, so a signal to it cannot reach an unrelated group. Read
    /// afresh: a forking daemon may call setsid(2) after we adopted it.
    pub(super) fn live_group(&self) -> Option<i32> {
        let child = self.child.filter(|c| !c.exited)?;
        // Never the keeper's own group (a main process taken over from a command that
        // did not leave it): a signal to it would reach the keeper.
        let own = nix::unistd::getpgrp().as_raw();
        Stat::read(child.id.pid)
            .map(|s| s.pgrp)
            .filter(|&group| group != own)
    }

    /// `kill_mode = "mixed"`: SIGKILL to every process of the daemon that is left, with
    /// a `killed` event saying `why` when there is one.
    fn kill_what_is_left(&mut self, why: &str) {
        if !self.tracked.live().is_empty() {
            let killed = self.event(Kind::Killed).signal("KILL");
            self.record_event(killed.message(format!(
                "kill_mode = \"mixed\": {why}; SIGKILL to what is left"
            )));
        }
        self.signal_all(Signal::SIGKILL);
    }

    /// Sends `signal` to everything the daemon started (see [`super::tracked`]).
    pub(super) fn signal_all(&mut self, signal: Signal) {
        let group = self.live_group();
        self.tracked.signal(signal, group);
    }

    pub(super) fn stop(&mut self) {
        // A stop while the keeper waits for a successor: the main process's exit stands.
        self.give_up_hand_over();
        let main = self.child.filter(|c| c.adopted && !c.exited);
        let step = machine::on_stop(&self.phase, &self.daemon.supervision, main.is_some());
        if step == StopStep::Ignore {
            return;
        }
        self.kill_probe();
        self.pause_watches();
        let mut stopping = self.event(Kind::Stopping);
        stopping.pid = main.map(|m| m.id.pid);
        stopping.message = self.stopped_by.clone();
        if let (StopStep::StopCommand, Some(argv), Some(main)) =
            (step, self.daemon.supervision.stop_command.clone(), main)
        {
            match self.spawn_command(&argv, main.id.pid, None) {
                Ok(pid) => {
                    let running = format!("stop_command running (pid {pid})");
                    self.record_event(stopping.and_message(running));
                    self.phase = Phase::stop_command(pid, Instant::now(), &self.daemon.supervision);
                    self.record.status = Status::Stopping;
                    self.save();
                    return;
                }
                Err(reason) => {
                    stopping = stopping.and_message(format!("cannot run stop_command: {reason}"));
                }
            }
        }
        self.record_event(stopping.signal(self.daemon.supervision.stop_signal.to_string()));
        match &mut self.phase {
            Phase::Draining { next, .. } => {
                *next = Next::stopped();
                self.record.status = Status::Stopping;
                self.save();
            }
            _ => self.drain(Next::stopped()),
        }
    }

    /// SIGTERM, SIGINT or SIGQUIT arrived. Only `dmgr stop`'s, marked as its request
    /// (see [`super::request`]), is a stop by request; any other is an outside stop (a
    /// login session's end, `kill`, `systemctl stop` of a scope), recorded with its
    /// sender, which `apply` starts again. The daemon is stopped either way.
    pub(super) fn on_stop_signal(&mut self, signal: Signal, info: &siginfo) {
        if matches!(Request::of(info), Some((Request::Stop, _))) {
            // `dmgr stop` asks too: whoever began the stop, it is a requested one now.
            self.stopped_by = None;
        } else if !self.phase.is_stopping() && self.stopped_by.is_none() {
            let sender = info.ssi_pid as i32;
            let who = match procinfo::command_line(sender, 200) {
                _ if sender <= 0 => "the kernel".to_string(),
                Some(command) => format!("pid {sender} ({command})"),
                None => format!("pid {sender}, gone since"),
            };
            let name = signal.as_str().trim_start_matches("SIG");
            self.stopped_by = Some(format!("SIG{name} from {who}, not `dmgr stop`"));
        }
        self.stop();
    }

    /// `stop_command` ended with `status`. A failure is an event, and the signals
    /// follow at once; after a success, once the daemon has ended too, whatever is left
    /// gets the usual signals, and until then the keeper waits for it, within
    /// `stop_timeout`.
    pub(super) fn on_stop_command_exit(&mut self, status: WaitStatus) {
        if !matches!(status, WaitStatus::Exited(_, 0)) {
            let mut failed = self.event(Kind::Stopping).message(format!(
                "stop_command ended ({}); {} to what is left now",
                describe_wait(status),
                self.daemon.supervision.stop_signal
            ));
            if let WaitStatus::Exited(_, code) = status {
                failed.exit_code = Some(code);
            }
            self.record_event(failed.signal(self.daemon.supervision.stop_signal.to_string()));
            self.drain(Next::stopped());
            return;
        }
        if self.child.is_none_or(|c| c.exited) {
            self.drain(Next::stopped());
        } else if let Phase::StopCommand { pid, .. } = &mut self.phase {
            *pid = None;
        }
    }
}

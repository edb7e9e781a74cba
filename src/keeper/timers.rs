//! What the keeper does when a timer is due (the start-up window, a backoff's end, a
//! stop's SIGKILL, a forking daemon's adoption and hand-over, `reload_command`'s
//! deadline), and when a readiness probe answers.

use std::time::Instant;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::core::machine::{self, Escalation, Next, Phase, StartStep, Tick};
use super::report::Report;
use super::Keeper;
use crate::config;
use crate::events::Kind;
use crate::state::Status;

impl Keeper {
    pub(super) fn on_timers(&mut self) {
        let now = Instant::now();
        self.on_watch_timers(now);
        self.on_reload_timer(now);
        if self.probe.is_some_and(|p| now >= p.deadline) {
            self.kill_probe();
        }
        let tick = machine::on_timer(
            &self.phase,
            now,
            &self.daemon.supervision,
            self.probe.is_some(),
        );
        match tick {
            Tick::Nothing | Tick::Start(StartStep::Wait) => {}
            Tick::Look => self.look_for_daemon(now),
            Tick::LookForSuccessor => self.look_for_successor(now),
            Tick::Spawn => self.spawn(),
            Tick::StopCommandOver { pid } => {
                if let Some(pid) = pid {
                    let timeout =
                        config::units::format_duration(self.daemon.supervision.stop_timeout);
                    // Our unreaped child, the leader of a session of its own: neither its
                    // PID nor its group's ID can have been reused.
                    let _ = nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                    let killed = self.event(Kind::Killed).pid(pid).signal("KILL");
                    self.record_event(
                        killed.message(format!("stop_command still running after {timeout}")),
                    );
                }
                self.drain(Next::stopped());
            }
            Tick::Kill => {
                // Look first: what is gone needs nothing, and is no event.
                if !self.tracked.live().is_empty() {
                    let killed = self.event(Kind::Killed).signal("KILL").message(format!(
                        "still running {} after {}",
                        config::units::format_duration(self.daemon.supervision.stop_timeout),
                        self.daemon.supervision.stop_signal
                    ));
                    self.record_event(killed);
                }
                let group = self.live_group();
                self.tracked.signal(Signal::SIGKILL, group);
                if let Phase::Draining { escalation, .. } = &mut self.phase {
                    *escalation = Escalation::Killed;
                }
            }
            Tick::Start(StartStep::Up) => self.on_up(),
            Tick::Start(StartStep::NotReady) => {
                self.kill_probe();
                let reason = format!(
                    "not ready within ready_timeout ({})",
                    config::units::format_duration(self.daemon.supervision.ready_timeout)
                );
                let next = self.fail_run(reason);
                // The daemon is still up: drain sends it stop_signal, then SIGKILL.
                self.drain(next);
            }
            Tick::Start(StartStep::Probe { deadline }) => {
                let Some(check) = self.daemon.supervision.ready.clone() else {
                    return;
                };
                if let Some(ok) = self.start_probe(&check, deadline) {
                    self.on_probe_result(ok);
                }
            }
        }
    }

    /// A readiness probe ended: ready, or another attempt after [`super::probe::PROBE_INTERVAL`].
    pub(super) fn on_probe_result(&mut self, ok: bool) {
        if matches!(self.phase, Phase::Up(None)) {
            self.on_health_result(Some(ok));
            return;
        }
        let Phase::Up(Some(starting)) = &mut self.phase else {
            return;
        };
        if ok {
            self.on_up();
        } else {
            machine::probe_failed(starting, Instant::now());
        }
    }

    /// The daemon is past `start_wait` and ready.
    fn on_up(&mut self) {
        self.phase = Phase::Up(None);
        self.resume_watches(Instant::now());
        self.record.status = Status::Running;
        self.save();
        if let Some(child) = self.child {
            if self.daemon.supervision.ready.is_some() {
                self.record_event(self.event(Kind::Ready).pid(child.id.pid));
            }
            self.reporter.send(&Report::Started { pid: child.id.pid });
        }
    }
}

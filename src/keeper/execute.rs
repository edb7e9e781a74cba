//! The one executor: each [`Effect`] the machine asks for, turned into system calls.
//! Nothing here decides; where an effect has an answer (a spawn, a command, a probe,
//! a signal for a reload), the answer goes back to the machine as an input at once.

use nix::sys::signal::Signal as NixSignal;
use nix::unistd::Pid;

use super::core::machine::{Effect, Input, Now};
use super::probe::kill_group;
use super::Keeper;
use crate::procinfo::Stat;

impl Keeper {
    /// Carries out `effect`, asked for at `now`.
    pub(super) fn execute(&mut self, effect: Effect, now: Now) {
        match effect {
            Effect::SpawnDaemon { again } => {
                self.release_due = true;
                self.spawn_daemon(again, now)
            }
            Effect::RunCommand {
                command,
                argv,
                main,
            } => self.run_command(command, &argv, main, now),
            Effect::KillCommand { pid } => {
                // Our unreaped child, the leader of a session of its own: neither its
                // PID nor its group's ID can have been reused.
                kill_group(pid);
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), NixSignal::SIGKILL);
            }
            Effect::StartProbe { check, deadline } => self.start_probe(&check, deadline, now),
            Effect::KillProbe { pid } => kill_group(pid),
            Effect::BeginDrain => self.tracked.begin_drain(),
            Effect::SignalAll { signal, main } => {
                let group = main.and_then(|pid| self.live_group(pid));
                self.tracked.signal(signal.0, group);
            }
            Effect::SignalGroup { pid, signal } => {
                // Our unreaped child, the leader of its group: neither can be reused.
                for signal in [signal.0, NixSignal::SIGCONT] {
                    let _ = nix::sys::signal::killpg(Pid::from_raw(pid), signal);
                }
            }
            Effect::SignalLeftOfGroup { group, signal } => {
                self.tracked.signal_left_of_group(group, signal.0);
            }
            Effect::SignalMain { pid, signal } => {
                // Our unreaped child: its PID cannot have been reused. SIGCONT after,
                // as for the group: a stopped process acts on it only once continued.
                for signal in [signal.0, NixSignal::SIGCONT] {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
                }
            }
            Effect::SendReloadSignal { pid, signal } => {
                // Our unreaped child: its PID cannot have been reused.
                let result =
                    nix::sys::signal::kill(Pid::from_raw(pid), signal.0).map_err(|e| e.to_string());
                self.feed(Input::ReloadSignalled { result }, now);
            }
            Effect::WritePid { pid } => {
                if let Some(pidfile) = &mut self.pidfile {
                    let _ = pidfile.write_pid(pid);
                }
            }
            Effect::ClearPidfile => {
                if let Some(pidfile) = &mut self.pidfile {
                    pidfile.clear();
                }
            }
            Effect::PumpLogs => self.pump_logs(),
            Effect::EndLogRun => {
                self.out.sink.end_run();
                if let Some(err) = &mut self.err {
                    err.sink.end_run();
                }
            }
            Effect::RecordExit { event, dead } => {
                let event = match dead.and_then(|pid| self.remove_forking_pidfile(pid)) {
                    Some(removed) => event.and_message(removed),
                    None => event,
                };
                self.record_event(event);
            }
            Effect::Record(event) => self.record_event(event),
            Effect::SaveRecord => self.save(),
            Effect::Report(report) => self.reporter.send(&report),
            Effect::RunHook { hook, argv, vars } => self.run_hook(hook, &argv, vars, now),
            Effect::SaveLastRun { ms } => {
                let path = super::jobs::last_run_file(&self.dirs, &self.daemon.name);
                // A failure costs at most a repeated catch-up run: nothing to tell.
                let _ = super::jobs::write_last_run(&path, ms);
            }
            Effect::Finish => self.finish_up(),
        }
    }

    /// The process group of the main process `pid`, while it is our unreaped child:
    /// that pins the group's ID, so a signal to it cannot reach an unrelated group.
    /// Read afresh: a forking daemon may call setsid(2) after it was adopted.
    fn live_group(&self, pid: i32) -> Option<i32> {
        // Never the keeper's own group (a main process taken over from a command that
        // did not leave it): a signal to it would reach the keeper.
        let own = nix::unistd::getpgrp().as_raw();
        Stat::read(pid)
            .map(|s| s.pgrp)
            .filter(|&group| group != own)
    }

    /// A forking daemon's own pidfile still names its dead process `dead`: the program
    /// had no chance to remove it (SIGKILL skips its exit handlers), and the textbook
    /// daemon refuses to start while it exists. Removed as systemd removes `PIDFile=`;
    /// returns what was done, for the `exited` event.
    fn remove_forking_pidfile(&self, dead: i32) -> Option<String> {
        let path = self.daemon.forking_pidfile.as_ref()?;
        if crate::pidfile::read_pid(path) != Some(dead) {
            return None;
        }
        Some(match std::fs::remove_file(path) {
            Ok(()) => format!(
                "removed {}, which named the dead pid {dead}",
                path.display()
            ),
            Err(e) => format!("cannot remove {}: {e}", path.display()),
        })
    }
}

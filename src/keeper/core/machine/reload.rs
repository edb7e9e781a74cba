//! `dmgr reload` in the keeper: a reload request sends `reload_signal` to the daemon's
//! main process, or runs `reload_command` in the daemon's tree, with `MAINPID` set, so
//! that whatever it starts (haproxy's new process after `-sf`) is the daemon's own. Each
//! answer is an event carrying the request's number: `signalled`, or `reloading` then
//! `reloaded` / `reload-failed`. `reload_command` is killed past `stop_timeout`.

use super::{Command, Effect, Exit, Facts, Machine, Now, Phase, Reloading};
use crate::config::units::format_duration;
use crate::events::Kind;

impl Machine {
    /// `dmgr reload` asks, with the request's number.
    pub(super) fn on_reload(&mut self, request: Option<u32>, now: Now) {
        let main = self.main_running().filter(|_| self.phase.is_up());
        let Some(main) = main else {
            let why = match self.phase.is_stopping() {
                true => "it is stopping",
                false => "it is not running",
            };
            return self.refuse(request, format!("nothing to reload: {why}"));
        };
        let pid = main.id.pid;
        if let Some(Reloading::Running { pid: running, .. }) = &self.reload {
            let why = format!("a reload_command runs already (pid {running})");
            return self.refuse(request, why);
        }
        match self.s.reload_command.clone() {
            None => {
                self.reload = Some(Reloading::Signal { pid, request });
                self.emit(Effect::SendReloadSignal {
                    pid,
                    signal: self.s.reload_signal,
                });
            }
            Some(argv) => {
                self.notify_reload_asked(request, true, now);
                self.reload = Some(Reloading::Starting { request });
                self.emit(Effect::RunCommand {
                    command: Command::Reload,
                    argv,
                    main: pid,
                });
            }
        }
    }

    /// A reload that cannot be done: `reload-failed`, saying `why`.
    fn refuse(&mut self, request: Option<u32>, why: String) {
        let failed = self.event(Kind::ReloadFailed).request(request);
        self.record(failed.message(why));
    }

    /// `reload_signal` went to the main process, or could not.
    pub(super) fn on_reload_signalled(&mut self, result: Result<(), String>, now: Now) {
        let Some(Reloading::Signal { pid, request }) = self.reload.take() else {
            return;
        };
        let signal = self.s.reload_signal;
        // A notify daemon's verdict answers the request, not the signal.
        let answered = match result.is_ok() && self.notify_reload_asked(request, false, now) {
            true => None,
            false => request,
        };
        let event = match result {
            Ok(()) => self
                .event(Kind::Signalled)
                .pid(pid)
                .signal(signal.to_string())
                .message("dmgr reload"),
            Err(e) => self
                .event(Kind::ReloadFailed)
                .pid(pid)
                .message(format!("cannot send {signal} to pid {pid}: {e}")),
        };
        self.record(event.request(answered));
    }

    /// `reload_command` runs as `pid`, until `stop_timeout` from now.
    pub(super) fn on_reload_command_started(&mut self, pid: i32, now: Now) {
        let Some(Reloading::Starting { request }) = self.reload.take() else {
            return;
        };
        self.reload = Some(Reloading::Running {
            pid,
            request,
            deadline: now.at + self.s.stop_timeout,
            killed: false,
        });
        let running = self.event(Kind::Reloading).pid(pid).request(request);
        self.record(running.message(format!("reload_command running (pid {pid})")));
    }

    /// `reload_command` could not be started.
    pub(super) fn on_reload_command_failed(&mut self, reason: String, now: Now) {
        let Some(Reloading::Starting { request }) = self.reload.take() else {
            return;
        };
        self.notify_reload_command_ended(false, now);
        self.refuse(request, format!("cannot run reload_command: {reason}"));
    }

    /// `reload_command` is still running at its deadline: killed, with what it started
    /// in its session (its group, pinned while it is our unreaped child).
    pub(super) fn reload_due(&mut self, now: Now) {
        let Some(Reloading::Running {
            pid,
            deadline,
            killed,
            ..
        }) = &mut self.reload
        else {
            return;
        };
        if *killed || now.at < *deadline {
            return;
        }
        *killed = true;
        let pid = *pid;
        self.emit(Effect::KillCommand { pid });
    }

    /// `reload_command` ended with `exit`, having written `output` last: the answer to
    /// its request, naming the main process as it is after the reload.
    pub(super) fn on_reload_exit(
        &mut self,
        exit: &Exit,
        output: Vec<String>,
        now: Now,
        facts: &impl Facts,
    ) {
        let Some(Reloading::Running {
            request, killed, ..
        }) = self.reload.take()
        else {
            return;
        };
        // The main process may have changed with the reload (haproxy `-sf`): settled
        // first, so that the answer names the one that runs now.
        if matches!(self.phase, Phase::HandingOver(_)) {
            self.look_for_successor(now, facts);
        }
        // A notify daemon's verdict answers a reload_command that worked.
        if exit.code == Some(0) && self.notify_reload_command_ended(true, now) {
            let mut ran = self.event(Kind::Reloading).request(request);
            ran.pid = self.unreaped_main();
            self.record(ran.message("reload_command exited 0; waiting for the daemon's verdict"));
            return;
        }
        self.notify_reload_command_ended(false, now);
        let mut event = match exit.code {
            Some(0) => self
                .event(Kind::Reloaded)
                .message("reload_command exited 0"),
            _ if killed => {
                let limit = format_duration(self.s.stop_timeout);
                self.event(Kind::ReloadFailed).message(format!(
                    "reload_command did not finish within stop_timeout ({limit}) and was killed"
                ))
            }
            _ => {
                let ended = match exit.code {
                    Some(code) => format!("exited {code}"),
                    None => format!("ended ({})", exit.describe()),
                };
                let mut failed = self
                    .event(Kind::ReloadFailed)
                    .message(format!("reload_command {ended}"));
                failed.exit_code = exit.code;
                failed.signal = exit.signal.clone();
                failed.output = output;
                failed
            }
        };
        event.pid = self.unreaped_main();
        self.record(event.request(request));
    }
}

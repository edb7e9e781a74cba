//! `dmgr reload` in the keeper: a reload request (see [`super::request`]) sends
//! `reload_signal` to the daemon's main process, or runs `reload_command` in the
//! daemon's tree (the keeper's child, in its own session, in the daemon's cgroup where
//! there is one) with `MAINPID` set, so that whatever it starts (haproxy's new process
//! after `-sf`) is the daemon's own. Each answer is an event carrying the request's
//! number: `signalled`, or `reloading` then `reloaded` / `reload-failed`.
//!
//! The command's output goes into a pipe of its own, which the keeper copies into the
//! daemon's log (its `stderr_log` where it has one) and of which it keeps the last lines
//! for a `reload-failed` event. What the command leaves holding that pipe writes on
//! into the log until it closes it.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::machine::Phase;
use super::request::Request;
use super::{describe_wait, sys, Keeper};
use crate::config::units::format_duration;
use crate::events::Kind;

/// How many of a command's last output lines a `reload-failed` event keeps.
const TAIL_LINES: usize = 10;
/// How much of one output line it keeps.
const LINE_BYTES: usize = 300;

/// A `reload_command` that runs.
#[derive(Debug)]
pub(super) struct Reload {
    pid: i32,
    /// The request it answers; `None` for one the keeper started itself.
    request: Option<u32>,
    /// When it is killed (`stop_timeout` after it started).
    deadline: Instant,
    /// Whether it was killed at its deadline.
    killed: bool,
}

/// A command's output pipe, read by the keeper until every writer closed it.
#[derive(Debug)]
pub(super) struct Capture {
    pub(super) read: OwnedFd,
    /// The command it belongs to, while that one runs.
    pid: Option<i32>,
    tail: Tail,
    /// Every writer closed it; kept only until its command's end is handled.
    closed: bool,
}

impl Capture {
    /// Returns true if and only if the loop should wait for more of it.
    pub(super) fn is_open(&self) -> bool {
        !self.closed
    }
}

/// The last lines of some output.
#[derive(Debug, Default)]
struct Tail {
    lines: std::collections::VecDeque<String>,
    partial: Vec<u8>,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.end_line();
            } else if self.partial.len() < LINE_BYTES {
                self.partial.push(b);
            }
        }
    }

    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    fn finish(mut self) -> Vec<String> {
        if !self.partial.is_empty() {
            self.end_line();
        }
        self.lines.into()
    }
}

impl Keeper {
    /// The request signal arrived: a request of `dmgr reload`, or nothing we know.
    pub(super) fn on_request(&mut self, info: &nix::sys::signalfd::siginfo) {
        if let Some((Request::Reload, number)) = Request::of(info) {
            self.reload(Some(number));
        }
    }

    /// Returns true if and only if a `reload_command` runs.
    pub(super) fn is_reloading(&self) -> bool {
        self.reload.is_some()
    }

    /// When the running `reload_command` is due to be killed.
    pub(super) fn reload_deadline(&self) -> Option<Instant> {
        self.reload
            .as_ref()
            .filter(|r| !r.killed)
            .map(|r| r.deadline)
    }

    /// Reloads the daemon, answering `request`.
    fn reload(&mut self, request: Option<u32>) {
        let main = self
            .child
            .filter(|c| c.adopted && !c.exited)
            .filter(|_| matches!(self.phase, Phase::Up(_)));
        let refuse = |keeper: &mut Keeper, why: String| {
            let failed = keeper.event(Kind::ReloadFailed).request(request);
            keeper.record_event(failed.message(why));
        };
        let Some(main) = main else {
            let why = match self.phase.is_stopping() {
                true => "it is stopping",
                false => "it is not running",
            };
            return refuse(self, format!("nothing to reload: {why}"));
        };
        let pid = main.id.pid;
        if let Some(running) = &self.reload {
            let why = format!("a reload_command runs already (pid {})", running.pid);
            return refuse(self, why);
        }
        let Some(argv) = self.daemon.supervision.reload_command.clone() else {
            let signal = self.daemon.supervision.reload_signal;
            // Our unreaped child: its PID cannot have been reused.
            let sent = nix::sys::signal::kill(Pid::from_raw(pid), signal.0);
            let event = match sent {
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
            return self.record_event(event.request(request));
        };
        let pipe = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK);
        let (read, write) = match pipe {
            Ok(ends) => ends,
            Err(e) => return refuse(self, format!("cannot create a pipe: {e}")),
        };
        match self.spawn_command(&argv, pid, Some(write.as_fd())) {
            Ok(command) => {
                drop(write);
                self.captures.push(Capture {
                    read,
                    pid: Some(command),
                    tail: Tail::default(),
                    closed: false,
                });
                self.reload = Some(Reload {
                    pid: command,
                    request,
                    deadline: Instant::now() + self.daemon.supervision.stop_timeout,
                    killed: false,
                });
                let running = self.event(Kind::Reloading).pid(command).request(request);
                self.record_event(
                    running.message(format!("reload_command running (pid {command})")),
                );
            }
            Err(reason) => refuse(self, format!("cannot run reload_command: {reason}")),
        }
    }

    /// `reload_command` is still running at its deadline: killed, with what it started
    /// in its session (its group, pinned while it is our unreaped child).
    pub(super) fn on_reload_timer(&mut self, now: Instant) {
        let Some(reload) = self
            .reload
            .as_mut()
            .filter(|r| !r.killed && now >= r.deadline)
        else {
            return;
        };
        reload.killed = true;
        let _ = nix::sys::signal::killpg(Pid::from_raw(reload.pid), Signal::SIGKILL);
        let _ = nix::sys::signal::kill(Pid::from_raw(reload.pid), Signal::SIGKILL);
    }

    /// Reaped child `pid`: if it is the `reload_command`, answers its request; returns
    /// whether it was.
    pub(super) fn reload_command_exited(&mut self, pid: i32, status: WaitStatus) -> bool {
        if self.reload.as_ref().is_none_or(|r| r.pid != pid) {
            return false;
        }
        let Some(reload) = self.reload.take() else {
            return false;
        };
        self.pump_captures();
        let tail = self
            .captures
            .iter_mut()
            .find(|c| c.pid == Some(pid))
            .map(|c| {
                c.pid = None;
                std::mem::take(&mut c.tail).finish()
            })
            .unwrap_or_default();
        self.captures.retain(|c| !c.closed);
        // The main process may have changed with the reload (haproxy `-sf`): settled
        // first, so that the answer names the one that runs now.
        if matches!(self.phase, Phase::HandingOver(_)) {
            self.look_for_successor(Instant::now());
        }
        let main = self.child.filter(|c| !c.exited).map(|c| c.id.pid);
        let mut event = match status {
            WaitStatus::Exited(_, 0) => self
                .event(Kind::Reloaded)
                .message("reload_command exited 0"),
            _ if reload.killed => {
                let limit = format_duration(self.daemon.supervision.stop_timeout);
                self.event(Kind::ReloadFailed).message(format!(
                    "reload_command did not finish within stop_timeout ({limit}) and was killed"
                ))
            }
            _ => {
                let ended = match status {
                    WaitStatus::Exited(_, code) => format!("exited {code}"),
                    _ => format!("ended ({})", describe_wait(status)),
                };
                let mut failed = self
                    .event(Kind::ReloadFailed)
                    .message(format!("reload_command {ended}"));
                failed.exit_code = match status {
                    WaitStatus::Exited(_, code) => Some(code),
                    _ => None,
                };
                if let WaitStatus::Signaled(_, signal, _) = status {
                    failed = failed.signal_number(signal as i32);
                }
                failed.output = tail;
                failed
            }
        };
        event.pid = main;
        self.record_event(event.request(reload.request));
        true
    }

    /// Copies what the commands' pipes hold into the daemon's log, keeping the tail of
    /// a running command's; drops a pipe every writer has closed.
    pub(super) fn pump_captures(&mut self) {
        let buffer = &mut self.log_buffer;
        let sink = match &mut self.err {
            Some(err) => &mut err.sink,
            None => &mut self.out.sink,
        };
        self.captures.retain_mut(|capture| loop {
            if capture.closed {
                break true;
            }
            match sys::read_spare(capture.read.as_fd(), buffer) {
                Ok([]) => {}
                Ok(read) => {
                    sink.write_output(read);
                    if capture.pid.is_some() {
                        capture.tail.push(read);
                    }
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {}
            }
            // Every writer closed it (or it broke): its command's tail is still to be
            // taken when the command is reaped.
            capture.closed = true;
            break capture.pid.is_some();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_keeps_the_last_lines_cut_to_size() {
        let mut tail = Tail::default();
        for i in 0..15 {
            tail.push(format!("line {i}\n").as_bytes());
        }
        tail.push(&[b'x'; 1000]);
        let lines = tail.finish();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines[0], "line 6");
        assert_eq!(lines[TAIL_LINES - 1].len(), LINE_BYTES);
    }
}

//! What a daemon says of itself, in the machine: the notify protocol's messages
//! (`type = "notify"`, judged by [`Protocol`] over one run) and the readiness forms
//! the daemon reports on its own (`ready = { fd }`'s newline, `ready = { log }`'s
//! line). Each is an [`Input`](super::Input); what it means becomes the machine's
//! transitions: a start ended, a reload's answer, a stop the daemon began, a main-PID
//! hand-over, a watchdog restart, more time for what is under way.
//!
//! A message is believed only from the daemon's own processes (SPEC promise 12,
//! [`refusal`]); the others are dropped and counted in the record. `MAINPID=` goes
//! through the hand-over judge a forking daemon's pidfile goes through
//! ([`decide`]): followed only to a process of the daemon's own.

use std::time::{Duration, Instant};

use super::super::handover::{decide, NoSuccessor, Patience, Verdict};
use super::{Child, Effect, Facts, Machine, Now, Phase};
use crate::config::units::format_duration;
use crate::config::{NotifyAccess, ReadyCheck};
use crate::events::Kind;
use crate::keeper::sd_notify::message::Notification;
use crate::keeper::sd_notify::protocol::{Protocol, Step};
use crate::keeper::sd_notify::sender::{refusal, Refusal, Sender};
use crate::procinfo::ProcId;
use crate::state::NotifySeen;

/// Every how many refused messages the record is written again while they keep
/// coming (the first ones always are): a stranger that floods the socket must not
/// make the keeper write its record for each datagram.
const REFUSED_SAVE_EVERY: u64 = 64;

/// What the machine keeps of the notify protocol.
#[derive(Debug, Clone)]
pub(super) struct Notify {
    /// The protocol's state over the run.
    pub(super) protocol: Protocol,
    /// What the record shows of it (the socket aside, which the loop sets).
    pub(super) seen: NotifySeen,
    /// The process `MAINPID=` named, not yet followed: the hand-over's candidate once
    /// the main process exits.
    pub(super) named_main: Option<i32>,
    /// `notify_access`.
    pub(super) access: NotifyAccess,
}

impl Notify {
    /// The protocol of a notify daemon with `watchdog`.
    pub(super) fn new(
        watchdog: Option<Duration>,
        ready_timeout: Duration,
        a: NotifyAccess,
    ) -> Notify {
        Notify {
            protocol: Protocol::new(watchdog, ready_timeout),
            seen: NotifySeen::default(),
            named_main: None,
            access: a,
        }
    }
}

/// Returns true if and only if `check` is a readiness the daemon reports (a line, a
/// newline on a pipe) rather than a probe the keeper runs.
pub(super) fn is_own_word(check: &ReadyCheck) -> bool {
    matches!(check, ReadyCheck::Log(_) | ReadyCheck::Fd(_))
}

impl Machine {
    /// Returns true if and only if the start under way still waits for the daemon's own
    /// word: `READY=1`, `ready = { fd }`'s newline or `ready = { log }`'s line.
    pub(crate) fn awaits_own_word(&self) -> bool {
        if !matches!(self.phase, Phase::Starting(_)) {
            return false;
        }
        let notify_says = self.notify.as_ref().is_none_or(|n| n.protocol.is_ready());
        let line_says = !self.s.ready.as_ref().is_some_and(is_own_word) || self.said_ready;
        !(notify_says && line_says)
    }

    /// What the daemon has not said yet, for a start that failed waiting for it.
    pub(super) fn own_word_missing(&self) -> String {
        if self.notify.as_ref().is_some_and(|n| !n.protocol.is_ready()) {
            return "it never said READY=1".to_string();
        }
        match &self.s.ready {
            Some(ReadyCheck::Log(pattern)) => format!("no line of its output matched {pattern:?}"),
            Some(ReadyCheck::Fd(fd)) => format!("it wrote no newline on fd {fd}"),
            _ => "it never said it was ready".to_string(),
        }
    }

    /// Returns true if and only if the start under way waits for `ready = { log }`'s
    /// line, which the loop then matches the daemon's output against.
    pub(crate) fn awaits_log_line(&self) -> bool {
        matches!(self.s.ready, Some(ReadyCheck::Log(_)))
            && matches!(self.phase, Phase::Starting(_))
            && !self.said_ready
    }

    /// When the protocol has something due: a watchdog ping, a reload's end.
    pub(super) fn notify_deadline(&self) -> Option<Instant> {
        self.notify.as_ref().and_then(|n| n.protocol.deadline())
    }

    /// A new run begins: nothing the daemon said before counts.
    pub(super) fn notify_on_spawn(&mut self) {
        self.said_ready = false;
        if let Some(notify) = &mut self.notify {
            notify.protocol.on_spawn();
            notify.seen.status_text = None;
            notify.named_main = None;
        }
    }

    /// The daemon wrote its newline on `ready = { fd }`'s pipe, or a line matching
    /// `ready = { log }`.
    pub(super) fn on_said_ready(&mut self, now: Now, facts: &impl Facts) {
        if !matches!(self.phase, Phase::Starting(_)) || self.said_ready {
            return;
        }
        self.said_ready = true;
        self.timers_due(now, facts);
    }

    /// A datagram from the process `pid` arrived on the notify socket, saying
    /// `message`.
    pub(super) fn on_notify(
        &mut self,
        pid: i32,
        message: Notification,
        now: Now,
        facts: &impl Facts,
    ) {
        let main = self.daemon().map(|id| id.pid);
        let Some(notify) = &mut self.notify else {
            return;
        };
        let own = pid > 0 && facts.is_own(pid);
        let sender = Sender {
            pid,
            in_cgroup: own,
            descends_from_keeper: own,
        };
        if let Some(why) = refusal(notify.access, main, sender) {
            notify.seen.refused += 1;
            notify.seen.last_refused = Some(match why {
                Refusal::Stranger if pid <= 0 => {
                    "a sender with no PID in the keeper's namespace".to_string()
                }
                Refusal::Stranger => format!("pid {pid}, not a process of the daemon's"),
                Refusal::NotMain => format!(
                    "pid {pid}, a process of the daemon's but not its main process (notify_access = \"main\")"
                ),
            });
            let refused = notify.seen.refused;
            if refused <= 8 || refused % REFUSED_SAVE_EVERY == 0 {
                self.save();
            }
            return;
        }
        let malformed = message.malformed > 0;
        notify.seen.malformed += u64::from(message.malformed);
        let steps = notify.protocol.on_message(&message, now.at);
        if malformed {
            self.save();
        }
        for step in steps {
            self.on_notify_step(step, pid, now, facts);
        }
    }

    /// The protocol's timers at `now`: a missed watchdog ping, a reload's end.
    pub(super) fn notify_due(&mut self, now: Now, facts: &impl Facts) {
        let Some(notify) = &mut self.notify else {
            return;
        };
        if notify.protocol.deadline().is_none_or(|at| at > now.at) {
            return;
        }
        let steps = notify.protocol.on_timer(now.at);
        for step in steps {
            self.on_notify_step(step, 0, now, facts);
        }
    }

    /// The run ended: a reload under way failed with it.
    pub(super) fn notify_on_exit(&mut self, now: Now, facts: &impl Facts) {
        let Some(notify) = &mut self.notify else {
            return;
        };
        for step in notify.protocol.on_exit() {
            self.on_notify_step(step, 0, now, facts);
        }
    }

    /// Whether the daemon said `STOPPING=1` in this run.
    pub(super) fn said_stopping(&self) -> bool {
        self.notify
            .as_ref()
            .is_some_and(|n| n.protocol.is_stopping())
    }

    /// The daemon's last `ERRNO=` in this run, in words, for a failed start.
    pub(super) fn said_errno(&self) -> Option<String> {
        let errno = self.notify.as_ref()?.protocol.errno()?;
        Some(crate::keeper::sd_notify::protocol::errno_words(errno))
    }

    /// `dmgr reload` (request `request`) reached a notify daemon at `now`, by its
    /// signal or by a `reload_command` that starts (`command`): its answer waits for
    /// the daemon's verdict. Returns false for another daemon.
    pub(super) fn notify_reload_asked(
        &mut self,
        request: Option<u32>,
        command: bool,
        now: Now,
    ) -> bool {
        let Some(notify) = &mut self.notify else {
            return false;
        };
        let steps = match command {
            true => notify.protocol.on_reload_command_start(request, now.at),
            false => notify.protocol.on_reload_request(request, now.at),
        };
        for step in steps {
            self.on_reload_step(step);
        }
        true
    }

    /// A notify daemon's `reload_command` ended at `now`, well or not: the daemon's
    /// verdict follows it. Returns false for another daemon.
    pub(super) fn notify_reload_command_ended(&mut self, success: bool, now: Now) -> bool {
        let Some(notify) = &mut self.notify else {
            return false;
        };
        // A failed command is answered by the caller, with its output.
        let _ = notify.protocol.on_reload_command_end(success, now.at);
        true
    }

    /// What one of the protocol's steps does, for a message from `sender` (0 for a
    /// timer).
    fn on_notify_step(&mut self, step: Step, sender: i32, now: Now, facts: &impl Facts) {
        match step {
            Step::Ready => {
                if matches!(self.phase, Phase::Starting(_)) {
                    self.timers_due(now, facts);
                }
            }
            Step::MainPid(pid) => self.on_main_pid(pid, sender, now, facts),
            Step::Status {
                text,
                event,
                unrecorded,
            } => {
                if let Some(notify) = &mut self.notify {
                    notify.seen.status_text = Some(text.clone());
                }
                self.save();
                if event {
                    let mut message = text;
                    if unrecorded > 0 {
                        message = format!("{message} ({unrecorded} changes since the last status event not recorded)");
                    }
                    let pid = self.daemon().map(|id| id.pid);
                    let mut status = self.event(Kind::Status).message(message);
                    status.pid = pid;
                    self.record(status);
                }
            }
            Step::Stopping => {
                // Its answer to a stop under way is no news of its own.
                let message = match self.phase.is_stopping() {
                    true => "the daemon said STOPPING=1",
                    false => "the daemon said STOPPING=1: it stops by itself, and is not restarted",
                };
                let mut stopping = self.event(Kind::Stopping).message(message);
                stopping.pid = self.daemon().map(|id| id.pid);
                self.record(stopping);
            }
            Step::Extend(more) => self.extend(now.at + more),
            Step::Watchdog { triggered } => self.on_watchdog(triggered, now, facts),
            reload => self.on_reload_step(reload),
        }
    }

    /// What a step of a reload answers.
    fn on_reload_step(&mut self, step: Step) {
        let main = self.daemon().map(|id| id.pid);
        let event = match step {
            Step::Reloading(request) => self
                .event(Kind::Reloading)
                .request(request)
                .message("the daemon said RELOADING=1"),
            Step::Reloaded(request) => self
                .event(Kind::Reloaded)
                .request(request)
                .message("the daemon said READY=1 after RELOADING=1"),
            Step::ReloadFailed(request, why) => {
                self.event(Kind::ReloadFailed).request(request).message(why)
            }
            Step::ReloadUnconfirmed(request) => self
                .event(Kind::Signalled)
                .request(request)
                .signal(self.s.reload_signal.to_string())
                .message(
                    "dmgr reload; the daemon did not say RELOADING=1, so its verdict is unknown",
                ),
            _ => return,
        };
        let mut event = event;
        event.pid = main;
        self.record(event);
    }

    /// `EXTEND_TIMEOUT_USEC=`: the start or stop under way may last until `until`.
    fn extend(&mut self, until: Instant) {
        match &mut self.phase {
            Phase::Starting(starting) => starting.ready_by = starting.ready_by.max(until),
            Phase::StopCommand { until: at, .. } => *at = (*at).max(until),
            Phase::Draining {
                escalation: super::Escalation::Stop { kill_at },
                ..
            } => *kill_at = (*kill_at).max(until),
            _ => {}
        }
    }

    /// A watchdog ping was missed, or the daemon asked for the watchdog's action:
    /// `watchdog_signal` to the main process, then the run ends as a failure (the stop
    /// sequence for what is left, then the restart policy), as systemd's
    /// `WatchdogSec=` does.
    fn on_watchdog(&mut self, triggered: bool, now: Now, facts: &impl Facts) {
        if self.main_running().filter(|_| self.phase.is_up()).is_none() {
            return;
        }
        let signal = self.s.watchdog_signal;
        let message = match triggered {
            true => "the daemon said WATCHDOG=trigger".to_string(),
            false => {
                let period = self.notify.as_ref().and_then(|n| n.protocol.period());
                let period =
                    period.map_or_else(String::new, |p| format!(" within {}", format_duration(p)));
                format!("no WATCHDOG=1{period}")
            }
        };
        self.end_run_with(Kind::Watchdog, message, Some(signal), now, facts);
    }

    /// `MAINPID=pid` from `sender`: another process is the daemon's main process. A
    /// process of the daemon's own that is the keeper's child is followed at once; one
    /// whose parent still runs, once the main process exits (the keeper, a child
    /// subreaper, then inherits it); a stranger never.
    fn on_main_pid(&mut self, pid: i32, sender: i32, now: Now, facts: &impl Facts) {
        let Some(old) = self.main_running() else {
            return;
        };
        if pid == old.id.pid {
            if let Some(notify) = &mut self.notify {
                notify.named_main = None;
            }
            return;
        }
        let patience = Patience {
            in_grace: false,
            reload_running: false,
        };
        let source = format!("MAINPID= from pid {sender}");
        match decide(Some(pid), old.id, facts, patience) {
            Verdict::Adopt(id) => self.follow_main_pid(id, old, &source),
            Verdict::Exit(NoSuccessor::NotAChild(_)) | Verdict::Wait => {
                if let Some(notify) = &mut self.notify {
                    notify.named_main = Some(pid);
                }
            }
            Verdict::Exit(why) => {
                let refused = self.event(Kind::MainPidChanged).pid(old.id.pid);
                self.record(refused.message(format!(
                    "not followed: {}; pid {} stays the main process",
                    why.describe(&source),
                    old.id.pid
                )));
            }
        }
        let _ = now;
    }

    /// `id`, which `MAINPID=` named, is the main process from now on, in place of the
    /// running `old`, which is one more process of the daemon's.
    fn follow_main_pid(&mut self, id: ProcId, old: Child, source: &str) {
        self.main = Some(Child {
            id,
            adopted: true,
            started: old.started,
            exited: false,
        });
        if let Some(notify) = &mut self.notify {
            notify.named_main = None;
        }
        self.emit(Effect::WritePid { pid: id.pid });
        self.save();
        let message = format!(
            "{source} names pid {}, which takes over from pid {}",
            id.pid, old.id.pid
        );
        self.record(
            self.event(Kind::MainPidChanged)
                .pid(id.pid)
                .message(message),
        );
    }

    /// The process `MAINPID=` named and the keeper has not followed yet, for the
    /// hand-over when the main process exits.
    pub(super) fn named_main(&self) -> Option<i32> {
        self.notify.as_ref().and_then(|n| n.named_main)
    }

    /// What the record shows of the notify socket (its address aside).
    pub(super) fn write_notify(&self, seen: &mut NotifySeen) {
        if let Some(notify) = &self.notify {
            seen.status_text = notify.seen.status_text.clone();
            seen.refused = notify.seen.refused;
            seen.malformed = notify.seen.malformed;
            seen.last_refused = notify.seen.last_refused.clone();
        }
    }
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;

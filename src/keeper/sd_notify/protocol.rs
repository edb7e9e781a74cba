//! What a notify daemon's believed messages mean over one run, as a small pure state
//! machine for the keeper's core to own: readiness, a reload and its verdict, a stop
//! the daemon began, its status line (and how often that becomes an event), the
//! watchdog, and more time asked for. Messages and timers in ([`Protocol::on_message`],
//! [`Protocol::on_timer`], [`Protocol::on_reload_request`]), [`Step`]s out, the clock
//! passed in; the core turns the steps into its own transitions and effects (a start
//! reported, a restart, a hand-over checked, an event recorded).
//!
//! As systemd does: `RELOADING=1` before the daemon is ready is ignored (HAProxy sends
//! one at start-up), a second `RELOADING=1` during a reload too (HAProxy sends two),
//! watchdog pings count only once the daemon is ready, and `READY=1` when nothing
//! waits for it is nothing. Unlike systemd, a daemon that never says `RELOADING=1`
//! after `dmgr reload`'s signal (PostgreSQL, which reloads silently) is not a failed
//! reload: after [`RELOADING_GRACE`] the reload is answered as a signal sent.

use std::time::{Duration, Instant};

use super::message::{Notification, Watchdog};

/// How long `dmgr reload` waits for a notify daemon's `RELOADING=1` after the signal
/// before it takes the daemon for one that reloads without saying so.
pub(crate) const RELOADING_GRACE: Duration = Duration::from_secs(2);

/// The least time between two `status` events: a daemon that reports counters every
/// second (php-fpm) must not push the rest out of the history.
pub(crate) const STATUS_EVENT_EVERY: Duration = Duration::from_secs(60);

/// Which `dmgr reload` asked, when one did (its request number, see `request`).
pub(crate) type Request = Option<u32>;

/// What a message or a timer means for the keeper's core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// `READY=1`: the start is done.
    Ready,
    /// Another process is the main process now (still to be checked as the daemon's).
    MainPid(i32),
    /// The daemon's status line changed; `event` when it is to be recorded as an
    /// event, with `unrecorded` the changes since the last recorded one.
    Status {
        text: String,
        event: bool,
        unrecorded: u32,
    },
    /// A reload began (`RELOADING=1`).
    Reloading(Request),
    /// The reload ended well (`READY=1` after `RELOADING=1`).
    Reloaded(Request),
    /// The reload failed: `ERRNO=`, or no `READY=1` in time; why, in words.
    ReloadFailed(Request, String),
    /// The daemon said nothing of the reload `dmgr reload` asked for within
    /// [`RELOADING_GRACE`]: the signal was sent, and that is all that is known.
    ReloadUnconfirmed(Request),
    /// The daemon began to stop by itself (`STOPPING=1`): no restart follows its exit.
    Stopping,
    /// The start or stop under way may take this much longer from now.
    Extend(Duration),
    /// The watchdog fired: a ping missed, or `WATCHDOG=trigger`.
    Watchdog { triggered: bool },
}

/// A reload under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reload {
    request: Request,
    /// Whether the daemon said `RELOADING=1` yet.
    begun: bool,
    /// When it fails (or, before `RELOADING=1`, is answered as unconfirmed).
    until: Instant,
    /// A `reload_command` runs for it: until it ends (or the daemon says
    /// `RELOADING=1`), no grace runs out.
    command: bool,
}

impl Reload {
    /// When its timer is due, unless it waits for a `reload_command`.
    fn due(&self) -> Option<Instant> {
        (!self.command || self.begun).then_some(self.until)
    }
}

/// The protocol's state over one run of the daemon.
#[derive(Debug, Clone)]
pub(crate) struct Protocol {
    /// `watchdog` as the file sets it.
    watchdog: Option<Duration>,
    /// How long a reload may take (`ready_timeout`).
    reload_timeout: Duration,
    /// The watchdog period of this run (`WATCHDOG_USEC=` changes it).
    period: Option<Duration>,
    /// When the next ping is due; set once the daemon is ready.
    ping_due: Option<Instant>,
    ready: bool,
    stopping: bool,
    reload: Option<Reload>,
    status: Option<String>,
    status_event_at: Option<Instant>,
    unrecorded: u32,
    errno: Option<i32>,
}

impl Protocol {
    /// The protocol of a daemon with `watchdog` and `reload_timeout` (its
    /// `ready_timeout`), before its first run.
    pub(crate) fn new(watchdog: Option<Duration>, reload_timeout: Duration) -> Protocol {
        Protocol {
            watchdog,
            reload_timeout,
            period: watchdog,
            ping_due: None,
            ready: false,
            stopping: false,
            reload: None,
            status: None,
            status_event_at: None,
            unrecorded: 0,
            errno: None,
        }
    }

    /// A new run of the daemon begins: nothing it said before counts.
    pub(crate) fn on_spawn(&mut self) {
        *self = Protocol {
            status_event_at: self.status_event_at,
            ..Protocol::new(self.watchdog, self.reload_timeout)
        };
    }

    /// Whether the daemon said `READY=1` in this run.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready
    }

    /// Whether the daemon said `STOPPING=1` in this run.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// The last `ERRNO=` of this run, for the words of a failed start.
    pub(crate) fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// The watchdog period of this run, if there is one.
    pub(crate) fn period(&self) -> Option<Duration> {
        self.period
    }

    /// The daemon's status line in this run.
    #[cfg(test)]
    pub(crate) fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// When [`Protocol::on_timer`] has something to do: a ping due, a reload's end.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        [self.ping_due, self.reload.and_then(|r| r.due())]
            .into_iter()
            .flatten()
            .min()
    }

    /// `dmgr reload` sent the reload signal (request `request`) at `now`: its answer
    /// waits for the daemon's verdict.
    pub(crate) fn on_reload_request(&mut self, request: Request, now: Instant) -> Vec<Step> {
        self.asked(request, now, false)
    }

    /// `dmgr reload` (request `request`) started a `reload_command` at `now`: the
    /// daemon's grace runs from the command's end ([`Protocol::on_reload_command_end`]).
    pub(crate) fn on_reload_command_start(&mut self, request: Request, now: Instant) -> Vec<Step> {
        self.asked(request, now, true)
    }

    fn asked(&mut self, request: Request, now: Instant, command: bool) -> Vec<Step> {
        let mut steps = Vec::new();
        // A reload the daemon did not finish is superseded; its asker gets an answer.
        if let Some(old) = self.reload.take() {
            steps.push(Step::ReloadFailed(
                old.request,
                "superseded by another reload before the daemon said READY=1".into(),
            ));
        }
        self.reload = Some(Reload {
            request,
            begun: false,
            until: now + RELOADING_GRACE,
            command,
        });
        steps
    }

    /// A `reload_command` that `dmgr reload` ran (after [`Protocol::on_reload_request`])
    /// ended at `now`: its failure is the reload's; after its success the daemon has
    /// [`RELOADING_GRACE`] from now to say `RELOADING=1`, unless it said it already.
    pub(crate) fn on_reload_command_end(&mut self, success: bool, now: Instant) -> Vec<Step> {
        let Some(reload) = &mut self.reload else {
            return Vec::new();
        };
        if !success {
            let request = reload.request;
            self.reload = None;
            return vec![Step::ReloadFailed(request, "reload_command failed".into())];
        }
        reload.command = false;
        if !reload.begun {
            reload.until = now + RELOADING_GRACE;
        }
        Vec::new()
    }

    /// What the believed message `n` means at `now`, in systemd's order: the main
    /// PID first, then the status, the error, more time, readiness, reloading,
    /// stopping and the watchdog.
    pub(crate) fn on_message(&mut self, n: &Notification, now: Instant) -> Vec<Step> {
        let mut steps = Vec::new();
        if let Some(pid) = n.main_pid {
            steps.push(Step::MainPid(pid));
        }
        if let Some(text) = &n.status {
            if self.status.as_ref() != Some(text) {
                self.status = Some(text.clone());
                let event = self
                    .status_event_at
                    .is_none_or(|at| now.saturating_duration_since(at) >= STATUS_EVENT_EVERY);
                let unrecorded = self.unrecorded;
                if event {
                    self.status_event_at = Some(now);
                    self.unrecorded = 0;
                } else {
                    self.unrecorded += 1;
                }
                steps.push(Step::Status {
                    text: text.clone(),
                    event,
                    unrecorded,
                });
            }
        }
        if let Some(errno) = n.errno {
            self.errno = Some(errno);
            if let Some(reload) = self.reload.take() {
                steps.push(Step::ReloadFailed(reload.request, errno_words(errno)));
            }
        }
        if let Some(more) = n.extend_timeout {
            match &mut self.reload {
                Some(reload) if reload.begun => reload.until = now + more,
                _ => steps.push(Step::Extend(more)),
            }
        }
        if n.reloading && self.ready {
            match &mut self.reload {
                Some(reload) if reload.begun => {}
                Some(reload) => {
                    reload.begun = true;
                    reload.until = now + self.reload_timeout;
                    steps.push(Step::Reloading(reload.request));
                }
                None => {
                    // The daemon reloads on its own (or on a signal from elsewhere).
                    self.reload = Some(Reload {
                        request: None,
                        begun: true,
                        until: now + self.reload_timeout,
                        command: false,
                    });
                    steps.push(Step::Reloading(None));
                }
            }
        }
        if n.ready {
            if !self.ready {
                self.ready = true;
                self.ping_due = self.period.map(|p| now + p);
                steps.push(Step::Ready);
            } else if let Some(reload) = self.reload.filter(|r| r.begun) {
                self.reload = None;
                steps.push(Step::Reloaded(reload.request));
            }
        }
        if n.stopping && !self.stopping {
            self.stopping = true;
            steps.push(Step::Stopping);
        }
        if let Some(period) = n.watchdog_period {
            self.period = Some(period);
            if self.ready {
                self.ping_due = Some(now + period);
            }
        }
        match n.watchdog {
            Some(Watchdog::Ping) if self.ready => self.ping_due = self.period.map(|p| now + p),
            Some(Watchdog::Trigger) => {
                self.ping_due = None;
                steps.push(Step::Watchdog { triggered: true });
            }
            _ => {}
        }
        steps
    }

    /// What is due at `now`: a missed ping, a reload that took too long or that the
    /// daemon never spoke of.
    pub(crate) fn on_timer(&mut self, now: Instant) -> Vec<Step> {
        let mut steps = Vec::new();
        if self.ping_due.is_some_and(|due| due <= now) {
            self.ping_due = None;
            steps.push(Step::Watchdog { triggered: false });
        }
        if let Some(reload) = self.reload.filter(|r| r.due().is_some_and(|at| at <= now)) {
            self.reload = None;
            steps.push(if reload.begun {
                Step::ReloadFailed(
                    reload.request,
                    format!(
                        "no READY=1 within {} of RELOADING=1",
                        crate::config::units::format_duration(self.reload_timeout)
                    ),
                )
            } else {
                Step::ReloadUnconfirmed(reload.request)
            });
        }
        steps
    }

    /// The daemon's run ended: a reload under way failed with it.
    pub(crate) fn on_exit(&mut self) -> Vec<Step> {
        self.ping_due = None;
        self.reload
            .take()
            .map(|r| Step::ReloadFailed(r.request, "the daemon exited".into()))
            .into_iter()
            .collect()
    }
}

/// `ERRNO=n` in words: "ERRNO=2 (No such file or directory)".
pub(crate) fn errno_words(errno: i32) -> String {
    let words = std::io::Error::from_raw_os_error(errno).to_string();
    let words = words
        .strip_suffix(&format!(" (os error {errno})"))
        .unwrap_or(&words);
    if words.is_empty() || words.starts_with("Unknown error") {
        format!("ERRNO={errno}")
    } else {
        format!("ERRNO={errno} ({words})")
    }
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;

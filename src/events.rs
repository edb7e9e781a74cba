//! The event history of a daemon (`RUN_DIR/NAME.events`): what its keeper saw happen,
//! one JSON object a line, as `dmgr events` and `dmgr status` show it (SPEC "Events").
//! The daemon's log holds only what the daemon wrote; dmgr's own notes are here.
//!
//! Writes are cheap: one `write(2)` of one line to a file opened with `O_APPEND`. The
//! history is bounded: the holder of the daemon's pidfile lock (its keeper, or `dmgr
//! run`) counts the lines it appends and, once the file holds more than twice
//! [`BOUND`], keeps the newest [`BOUND`] lines in a new file renamed over the old, so
//! readers see the old file or the new one, and lines are dropped whole. Others that
//! append while no keeper runs (`dmgr stop`, `dmgr kill`) hold a shared `flock` on the
//! file they write, the compaction an exclusive one, and an appender that finds the
//! path renamed under it writes again to the new file: no line is lost to a compaction.

mod history;

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub(crate) use history::{append, merge, merged, History};

/// The newest events a history keeps at least.
pub(crate) const BOUND: usize = 1000;

/// What happened, as the `event` key names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Kind {
    /// A process of the daemon was started (or, for `type = "forking"`, adopted).
    Started,
    /// Its `ready` check passed.
    Ready,
    /// The daemon's process ended.
    Exited,
    /// The keeper starts it again after `delay_ms`.
    Restarting,
    /// The keeper gave up on it: too many quick failures, or a failed first start.
    GaveUp,
    /// A stop began.
    Stopping,
    /// SIGKILL went to what was left after `stop_timeout`.
    Killed,
    /// A requested stop is done: nothing of the daemon runs.
    Stopped,
    /// `dmgr reload` or `dmgr kill` signalled it (or ran `reload_command`).
    Signalled,
    /// `dmgr apply` handed changed supervision keys to the keeper.
    Updated,
    /// Its liveness check failed `health_failures` times in a row.
    Unhealthy,
    /// Its processes used more than `memory_max`.
    MemoryExceeded,
    /// Its log could not be written.
    LogError,
    /// Its log can be written again; `dropped_lines` lines were dropped whole meanwhile.
    LogResumed,
    /// Another process of the daemon's took over as its main process.
    MainPidChanged,
    /// The keeper runs `reload_command`.
    Reloading,
    /// A reload is done (`reload_command` exited 0).
    Reloaded,
    /// A reload failed (`reload_command` failed, or the daemon was not running).
    ReloadFailed,
    /// Its state record could not be written (the previous one stays), or can be
    /// again.
    RecordError,
    /// A notify daemon's status line (`STATUS=`) changed.
    Status,
    /// A notify daemon missed a watchdog ping, or asked for the watchdog's action
    /// (`WATCHDOG=trigger`).
    Watchdog,
    /// A hook (`pre_start`, `post_stop`, `on_failure`) ended: its name and exit status.
    Hook,
    /// A run of a `schedule` began (or `restart_schedule` restarts the daemon).
    Scheduled,
    /// A scheduled time came while the last run was still going: not started twice.
    Skipped,
    /// A `type = "oneshot"` run exited 0.
    Done,
}

impl Kind {
    /// The name as stored (`gave-up`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Started => "started",
            Kind::Ready => "ready",
            Kind::Exited => "exited",
            Kind::Restarting => "restarting",
            Kind::GaveUp => "gave-up",
            Kind::Stopping => "stopping",
            Kind::Killed => "killed",
            Kind::Stopped => "stopped",
            Kind::Signalled => "signalled",
            Kind::Updated => "updated",
            Kind::Unhealthy => "unhealthy",
            Kind::MemoryExceeded => "memory-exceeded",
            Kind::LogError => "log-error",
            Kind::LogResumed => "log-resumed",
            Kind::MainPidChanged => "main-pid-changed",
            Kind::Reloading => "reloading",
            Kind::Reloaded => "reloaded",
            Kind::ReloadFailed => "reload-failed",
            Kind::RecordError => "record-error",
            Kind::Status => "status",
            Kind::Watchdog => "watchdog",
            Kind::Hook => "hook",
            Kind::Scheduled => "scheduled",
            Kind::Skipped => "skipped",
            Kind::Done => "done",
        }
    }
}

/// One event, as one line of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Event {
    /// When, RFC 3339 UTC with milliseconds (these sort as text).
    pub(crate) time: String,
    /// The daemon's name.
    pub(crate) daemon: String,
    /// What happened.
    pub(crate) event: Kind,
    /// The process concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pid: Option<i32>,
    /// How it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) exit_code: Option<i32>,
    /// A signal by name (`"KILL"`): what killed it, or what was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) signal: Option<String>,
    /// How long until the restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) delay_ms: Option<u64>,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
    /// For `log-resumed`: how many lines of the daemon's output were dropped whole
    /// while its log could not be written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dropped_lines: Option<u64>,
    /// The number of the request (`dmgr reload`) this event answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) request: Option<u32>,
    /// The last lines a command wrote (a failed `reload_command`'s).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) output: Vec<String>,
}

impl Event {
    /// An event of `daemon` happening now, with no details yet.
    pub(crate) fn now(daemon: &str, event: Kind) -> Event {
        Event::new(daemon, event).stamped()
    }

    /// An event of `daemon` with no time yet: the keeper's core decides on events, and
    /// its loop stamps each with the time as it records it ([`Event::stamped`]).
    pub(crate) fn new(daemon: &str, event: Kind) -> Event {
        Event {
            time: String::new(),
            daemon: daemon.to_string(),
            event,
            pid: None,
            exit_code: None,
            signal: None,
            delay_ms: None,
            message: None,
            dropped_lines: None,
            request: None,
            output: Vec::new(),
        }
    }

    /// The event at the time now.
    pub(crate) fn stamped(mut self) -> Event {
        self.time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        self
    }

    /// With the process `pid`.
    pub(crate) fn pid(mut self, pid: i32) -> Event {
        self.pid = Some(pid);
        self
    }

    /// With the signal `signal` (a name without `SIG`).
    pub(crate) fn signal(mut self, signal: impl Into<String>) -> Event {
        self.signal = Some(signal.into());
        self
    }

    /// Answering the request numbered `request`, if any.
    pub(crate) fn request(mut self, request: Option<u32>) -> Event {
        self.request = request;
        self
    }

    /// With `message` after the message it has, if any (`; ` between).
    pub(crate) fn and_message(mut self, message: impl Into<String>) -> Event {
        let message = message.into();
        self.message = Some(match self.message.take() {
            Some(first) => format!("{first}; {message}"),
            None => message,
        });
        self
    }

    /// With a message.
    pub(crate) fn message(mut self, message: impl Into<String>) -> Event {
        self.message = Some(message.into());
        self
    }

    /// The line as stored, with its newline.
    fn to_line(&self) -> Vec<u8> {
        // Serialising plain strings and numbers cannot fail.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// The details after the event's name in the text form: `pid 42, signal KILL`.
    pub(crate) fn details(&self) -> String {
        let mut parts = Vec::new();
        if let Some(pid) = self.pid {
            parts.push(format!("pid {pid}"));
        }
        if let Some(code) = self.exit_code {
            parts.push(format!("exit {code}"));
        }
        if let Some(signal) = &self.signal {
            parts.push(format!("signal {signal}"));
        }
        if let Some(ms) = self.delay_ms {
            let delay = std::time::Duration::from_millis(ms);
            parts.push(format!(
                "in {}",
                crate::config::units::format_duration(delay)
            ));
        }
        if let Some(message) = &self.message {
            parts.push(message.clone());
        }
        parts.join(", ")
    }
}

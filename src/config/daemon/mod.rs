//! The validated daemon: every key of the file resolved (paths absolute, durations,
//! sizes and signals parsed, defaults filled in). Built from `raw` by `load_file`, which
//! collects every problem in the file instead of stopping at the first, and locates
//! them all in one pass over the file at the end.
//!
//! Values that would defeat their purpose are refused with the reason: numbers out of
//! their bounds, a stop signal that cannot stop, a reload signal that kills, a pidfile
//! or log that would overwrite a daemon file, dmgr's own files or another path of the
//! same daemon (other daemons' paths are `validate`'s, which sees every file).
//!
//! This module holds the types and their defaults; `load` reads the config directory
//! and its files, `builder` turns one file's table into a [`Daemon`] (its value
//! parsers in `values`).

mod builder;
mod instances;
mod jobs;
mod keys;
mod load;
mod notify;
#[cfg(test)]
mod notify_tests;
mod paths;
mod production;
use production::{NICE_RANGE, OOM_SCORE_ADJ_RANGE};
#[cfg(test)]
mod tests;
mod values;

pub use instances::{instance_name, split_instance_name, Instance, MAX_INSTANCES, PLACEHOLDER};
pub(crate) use keys::Key;
#[cfg(test)]
use keys::KeyGroup;
pub use keys::KEYS;
pub use load::load_bytes;
pub(super) use load::unsafe_owner;
pub(super) use load::{
    config_dir_problem, file_id, file_names, is_same_path, load_dir, load_file, rotation_of,
    LoadedFile, Places,
};
pub use notify::compile_log_pattern;
pub(super) use values::is_env_name;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::env_file::EnvFile;
use crate::config::limits::Limits;
use crate::config::units::{self, Signal, Size};
// The submodules share their helpers through this module.
use builder::*;
use load::*;

/// Declares a group of daemon keys: the struct, with each field named after its TOML
/// key, plus `KEYS` (those names, in order) and `changed` (the keys whose values
/// differ), so that no list of key names is kept in step by hand.
macro_rules! key_group {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl $name {
            /// The TOML keys of this group, in declaration order.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// The keys whose values differ between `self` and `other`, sorted by
            /// name (as `apply` prints them).
            pub fn changed(&self, other: &Self) -> Vec<&'static str> {
                let mut keys = Vec::new();
                $( if self.$field != other.$field { keys.push(stringify!($field)); } )*
                keys.sort_unstable();
                keys
            }
        }
    };
}

/// One daemon, as dmgr runs it: what identifies it and orders it among the others,
/// and its keys grouped by what a change to them means.
#[derive(Debug, Clone, PartialEq)]
pub struct Daemon {
    /// The file stem, a valid daemon name.
    pub name: String,
    /// The absolute path of the TOML file.
    pub file: PathBuf,
    /// Free text shown by `status`.
    pub description: Option<String>,
    /// The pidfile dmgr locks and writes the daemon's PID to (absolute): the `pidfile`
    /// key, except for `type = "forking"`, where that key names the daemon's own file
    /// ([`Daemon::forking_pidfile`]) and this is `RUN_DIR/NAME.pid`.
    pub pidfile: PathBuf,
    /// For `type = "forking"` with `pidfile` set: the pidfile the daemon writes itself,
    /// which dmgr only reads (absolute).
    pub forking_pidfile: Option<PathBuf>,
    /// Whether `--all` and `apply` include this daemon.
    pub autostart: bool,
    /// Daemons to start before this one.
    pub after: Vec<String>,
    /// `simple`, `forking`, `notify` or `oneshot`.
    pub kind: DaemonType,
    /// For a copy of a daemon with `instances`: which copy, of how many.
    pub instance: Option<Instance>,
    /// What the process is: a change restarts it on `apply`.
    pub process: ProcessSpec,
    /// How the keeper looks after it: a change is handed to the running keeper.
    pub supervision: Supervision,
    /// How its logs are rotated and stamped.
    pub logs: LogSpec,
}

key_group! {
    /// The keys that make up the daemon's process: `apply` restarts the daemon when
    /// any of them changed since it started (see `man dmgr.toml`, WHAT APPLY RESTARTS).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ProcessSpec {
        /// The argv to exec; never empty once loaded.
        pub command: Vec<String>,
        /// Variables added to (or, with `clear_env`, making up) the environment.
        pub env: BTreeMap<String, String>,
        /// Whether the environment is exactly `env`.
        pub clear_env: bool,
        /// The daemon's working directory (absolute).
        #[serde(with = "crate::text::path_bytes")]
        pub working_dir: PathBuf,
        /// The user to run as (root only).
        pub user: Option<String>,
        /// The group to run as (root only).
        pub group: Option<String>,
        /// The daemon's umask.
        pub umask: u32,
        /// The log for stdout, and stderr unless `stderr_log` is set (absolute): its
        /// descriptors are the process's, so a new path needs a new process.
        #[serde(with = "crate::text::path_bytes")]
        pub log: PathBuf,
        /// A separate log for stderr (absolute).
        #[serde(with = "crate::text::path_bytes::option")]
        pub stderr_log: Option<PathBuf>,
        /// Files of variables read at each start, in order, before `env` (which wins).
        #[serde(default)]
        pub env_file: Vec<EnvFile>,
        /// Resource limits, soft and hard alike.
        #[serde(default)]
        pub limits: Limits,
        /// The scheduling priority, -20..19.
        #[serde(default)]
        pub nice: Option<i32>,
        /// The daemon's `/proc/PID/oom_score_adj`, -1000..1000.
        #[serde(default)]
        pub oom_score_adj: Option<i32>,
        /// `type = "notify"`: how often the daemon must send `WATCHDOG=1` once ready.
        /// A process key: the daemon learns it from `WATCHDOG_USEC` when it starts.
        #[serde(rename = "watchdog_ms", with = "units::millis_option", default)]
        pub watchdog: Option<Duration>,
    }
}

impl Default for ProcessSpec {
    /// No command and no log yet (the loader always sets both: the log's default
    /// depends on the run directory), everything else at its documented default.
    fn default() -> ProcessSpec {
        ProcessSpec {
            command: Vec::new(),
            env: BTreeMap::new(),
            clear_env: false,
            working_dir: PathBuf::from("/"),
            user: None,
            group: None,
            umask: 0o022,
            log: PathBuf::new(),
            stderr_log: None,
            env_file: Vec::new(),
            limits: Limits::new(),
            nice: None,
            oom_score_adj: None,
            watchdog: None,
        }
    }
}

key_group! {
    /// The keys a running keeper takes over without restarting the daemon (`apply`
    /// hands them over with SIGUSR1). Durations are stored as `*_ms` in the record.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Supervision {
        /// When the keeper restarts the daemon.
        pub restart: RestartPolicy,
        /// The first restart delay; doubles per quick failure up to 60 s.
        #[serde(rename = "restart_delay_ms", with = "units::millis")]
        pub restart_delay: Duration,
        /// Quick failures in a row before the keeper gives up.
        pub max_restarts: u32,
        /// How long the process must stay up for `start` to succeed.
        #[serde(rename = "start_wait_ms", with = "units::millis")]
        pub start_wait: Duration,
        /// The readiness check `start` waits for.
        pub ready: Option<ReadyCheck>,
        /// How long `start` waits for `ready`.
        #[serde(rename = "ready_timeout_ms", with = "units::millis")]
        pub ready_timeout: Duration,
        /// Sent by `stop` to the daemon's processes, as `kill_mode` says.
        pub stop_signal: Signal,
        /// Which processes get `stop_signal`: all of the daemon's, or the main one.
        #[serde(default)]
        pub kill_mode: KillMode,
        /// How long after `stop_signal` before SIGKILL.
        #[serde(rename = "stop_timeout_ms", with = "units::millis")]
        pub stop_timeout: Duration,
        /// Sent by `reload`, unless `reload_command` is set.
        pub reload_signal: Signal,
        /// Run by `reload` instead of sending `reload_signal`.
        #[serde(default)]
        pub reload_command: Option<Vec<String>>,
        /// Run by a requested stop before the stop signal goes to what is left.
        #[serde(default)]
        pub stop_command: Option<Vec<String>>,
        /// Above this much memory (all the daemon's processes together) the keeper
        /// records `memory-exceeded` and restarts the daemon.
        #[serde(default)]
        pub memory_max: Option<Size>,
        /// The liveness check run every `health_interval` once the daemon is up.
        #[serde(default)]
        pub health: Option<ReadyCheck>,
        /// How often the liveness check runs.
        #[serde(rename = "health_interval_ms", with = "units::millis", default = "default_health_interval")]
        pub health_interval: Duration,
        /// How long one liveness check may take.
        #[serde(rename = "health_timeout_ms", with = "units::millis", default = "default_health_timeout")]
        pub health_timeout: Duration,
        /// Failed checks in a row that make the daemon unhealthy.
        #[serde(default = "default_health_failures")]
        pub health_failures: u32,
        /// Sent to the daemon's main process when a watchdog ping is missed, before
        /// the stop sequence of the restart.
        #[serde(default = "default_watchdog_signal")]
        pub watchdog_signal: Signal,
        /// Which of the daemon's processes are believed on its notify socket.
        #[serde(default)]
        pub notify_access: NotifyAccess,
        /// `type = "oneshot"`: the times to run the command at.
        #[serde(default)]
        pub schedule: Option<crate::schedule::Cron>,
        /// With `schedule`: a time missed while the keeper was not there runs once.
        #[serde(default)]
        pub catch_up: bool,
        /// The times to restart a long-running daemon at.
        #[serde(default)]
        pub restart_schedule: Option<crate::schedule::Cron>,
        /// Run before every start; a failure stops the start.
        #[serde(default)]
        pub pre_start: Option<Vec<String>>,
        /// Run after every end of the daemon, a crash included.
        #[serde(default)]
        pub post_stop: Option<Vec<String>>,
        /// Run when the keeper gives up, and on `unhealthy`, `memory-exceeded`.
        #[serde(default)]
        pub on_failure: Option<Vec<String>>,
        /// How long a hook may run before its process group is killed.
        #[serde(rename = "hook_timeout_ms", with = "units::millis", default = "jobs::default_hook_timeout")]
        pub hook_timeout: Duration,
    }
}

impl Default for Supervision {
    fn default() -> Supervision {
        Supervision {
            restart: RestartPolicy::OnFailure,
            restart_delay: Duration::from_secs(1),
            max_restarts: 10,
            start_wait: Duration::from_millis(500),
            ready: None,
            ready_timeout: Duration::from_secs(30),
            stop_signal: Signal(nix::sys::signal::Signal::SIGTERM),
            kill_mode: KillMode::Group,
            stop_timeout: Duration::from_secs(10),
            reload_signal: Signal(nix::sys::signal::Signal::SIGHUP),
            reload_command: None,
            stop_command: None,
            memory_max: None,
            health: None,
            health_interval: default_health_interval(),
            health_timeout: default_health_timeout(),
            health_failures: default_health_failures(),
            watchdog_signal: default_watchdog_signal(),
            notify_access: NotifyAccess::Main,
            schedule: None,
            catch_up: false,
            restart_schedule: None,
            pre_start: None,
            post_stop: None,
            on_failure: None,
            hook_timeout: jobs::default_hook_timeout(),
        }
    }
}

fn default_health_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_health_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_health_failures() -> u32 {
    3
}

fn default_watchdog_signal() -> Signal {
    Signal(nix::sys::signal::Signal::SIGABRT)
}

key_group! {
    /// How the keeper rotates and stamps the logs. The paths are in [`ProcessSpec`]:
    /// a change to them restarts the daemon, a change to these does neither.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LogSpec {
        /// Rotate when a log reaches this size; 0 never rotates.
        pub log_max_size: Size,
        /// How many rotated files to keep.
        pub log_keep: u32,
        /// Whether each line is prefixed with an RFC 3339 UTC time at capture.
        pub log_timestamps: bool,
    }
}

impl Default for LogSpec {
    fn default() -> LogSpec {
        LogSpec {
            log_max_size: Size(10 << 20),
            log_keep: 5,
            log_timestamps: false,
        }
    }
}

/// When the keeper restarts the daemon after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never.
    No,
    /// After a non-zero exit or a death by signal.
    OnFailure,
    /// After any exit.
    Always,
}

/// Which of the daemon's processes a stop sends `stop_signal` to (systemd's
/// `KillMode=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KillMode {
    /// Every process of the daemon (systemd's `control-group`).
    #[default]
    Group,
    /// The main process alone; what is left once it has exited, or at
    /// `stop_timeout`, gets SIGKILL (systemd's `mixed`).
    Mixed,
}

impl KillMode {
    /// The word the file uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            KillMode::Group => "group",
            KillMode::Mixed => "mixed",
        }
    }
}

/// How the command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DaemonType {
    /// The command is the daemon.
    Simple,
    /// The command daemonizes itself; the process it leaves behind is the daemon.
    Forking,
    /// The command is the daemon, and reports its readiness, status, reloads and
    /// watchdog pings over the notify protocol (sd_notify(3)).
    Notify,
    /// The command runs to completion (a migration, a backup); exit 0 is success.
    Oneshot,
}

impl DaemonType {
    /// The word the file uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            DaemonType::Simple => "simple",
            DaemonType::Forking => "forking",
            DaemonType::Notify => "notify",
            DaemonType::Oneshot => "oneshot",
        }
    }
}

/// Which processes a notify daemon's keeper believes on its notify socket (systemd's
/// `NotifyAccess=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyAccess {
    /// The daemon's main process only.
    #[default]
    Main,
    /// Any process of the daemon: in its cgroup, or a descendant of the keeper.
    All,
}

impl NotifyAccess {
    /// The word the file uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyAccess::Main => "main",
            NotifyAccess::All => "all",
        }
    }
}

/// A readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadyCheck {
    /// A TCP connection to `host:port` succeeds.
    Tcp(String),
    /// The file exists (absolute path).
    File(#[serde(with = "crate::text::path_bytes")] PathBuf),
    /// The command exits 0.
    Exec(Vec<String>),
    /// A GET of `http://host:port/path` answers 2xx or 3xx.
    Http(String),
    /// A line of the daemon's stdout or stderr matches this regular expression
    /// (checked when the file is loaded).
    Log(String),
    /// The daemon writes a newline to this descriptor, a pipe the keeper passes it
    /// (s6's readiness notification).
    Fd(i32),
}

/// Returns true if and only if `name` is a valid daemon name:
/// `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 64 characters.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The most rotated files a daemon may keep: rotation renames each of them, and
/// `dmgr logs` reads back through at most this many.
pub const MAX_LOG_KEEP: u32 = 1000;
/// The most quick failures in a row before the keeper gives up: at the 60 s backoff
/// cap this many take almost two years, so a larger number is a typo.
pub const MAX_RESTARTS: u32 = 1_000_000;
/// The smallest `log_max_size` but 0: a smaller log would rotate at nearly every line.
pub const MIN_LOG_SIZE: u64 = 4 << 10;
/// The largest `log_max_size`: a log this big is never rotated in practice.
pub const MAX_LOG_SIZE: u64 = 1 << 40;

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A daemon with every key at its default, running `sleep 1`.
    pub(crate) fn minimal(name: &str) -> Daemon {
        Daemon {
            name: name.to_string(),
            file: PathBuf::from(format!("/nonexistent/{name}.toml")),
            description: None,
            pidfile: PathBuf::from(format!("/nonexistent/{name}.pid")),
            forking_pidfile: None,
            autostart: true,
            after: Vec::new(),
            kind: DaemonType::Simple,
            instance: None,
            process: ProcessSpec {
                command: vec!["sleep".into(), "1".into()],
                log: PathBuf::from(format!("/nonexistent/{name}.log")),
                ..ProcessSpec::default()
            },
            supervision: Supervision::default(),
            logs: LogSpec::default(),
        }
    }
}

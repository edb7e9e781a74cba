//! The key table: every key a daemon file may hold, named once, with the group that
//! says what a change to it means. The builder looks each key up by its [`Key`], the
//! unknown-key suggestions and the man page's check read [`KEYS`], and each export
//! target lists the [`Key`]s of its mappings; a key's name is written only here (its
//! field, of the same name, is in the group's struct in `daemon/mod.rs`).

use std::fmt;

/// What a change to a key means, as the group of [`super::Daemon`] it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyGroup {
    /// On [`super::Daemon`] itself: what identifies and orders the daemon.
    Identity,
    /// [`super::ProcessSpec`]: `apply` restarts the daemon when one changed.
    Process,
    /// [`super::Supervision`]: handed to the running keeper.
    Supervision,
    /// [`super::LogSpec`]: how the logs are rotated and stamped.
    Logs,
}

/// Declares [`Key`], its names and groups, and [`KEYS`], from one row per key.
macro_rules! key_table {
    ($( $key:ident = $name:literal in $group:ident, )*) => {
        /// A key of a daemon file.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub(crate) enum Key {
            $( $key, )*
        }

        impl Key {
            /// Every key, in the order the man page lists them.
            #[cfg_attr(not(test), allow(dead_code))]
            pub(crate) const ALL: &'static [Key] = &[$(Key::$key),*];

            /// The key as a file writes it: `stop_timeout`.
            pub(crate) const fn name(self) -> &'static str {
                match self {
                    $( Key::$key => $name, )*
                }
            }

            /// The group it belongs to.
            #[cfg_attr(not(test), allow(dead_code))]
            pub(crate) const fn group(self) -> KeyGroup {
                match self {
                    $( Key::$key => KeyGroup::$group, )*
                }
            }
        }

        /// Every key a daemon file may hold, in the order the man page lists them.
        pub const KEYS: &[&str] = &[$($name),*];
    };
}

key_table! {
    Command = "command" in Process,
    Description = "description" in Identity,
    WorkingDir = "working_dir" in Process,
    Env = "env" in Process,
    ClearEnv = "clear_env" in Process,
    User = "user" in Process,
    Group = "group" in Process,
    Umask = "umask" in Process,
    Pidfile = "pidfile" in Identity,
    Log = "log" in Process,
    StderrLog = "stderr_log" in Process,
    LogMaxSize = "log_max_size" in Logs,
    LogKeep = "log_keep" in Logs,
    LogTimestamps = "log_timestamps" in Logs,
    Autostart = "autostart" in Identity,
    Restart = "restart" in Supervision,
    RestartDelay = "restart_delay" in Supervision,
    MaxRestarts = "max_restarts" in Supervision,
    StartWait = "start_wait" in Supervision,
    Ready = "ready" in Supervision,
    ReadyTimeout = "ready_timeout" in Supervision,
    StopSignal = "stop_signal" in Supervision,
    StopTimeout = "stop_timeout" in Supervision,
    KillMode = "kill_mode" in Supervision,
    ReloadSignal = "reload_signal" in Supervision,
    ReloadCommand = "reload_command" in Supervision,
    StopCommand = "stop_command" in Supervision,
    After = "after" in Identity,
    Type = "type" in Identity,
    EnvFile = "env_file" in Process,
    Limits = "limits" in Process,
    Nice = "nice" in Process,
    OomScoreAdj = "oom_score_adj" in Process,
    MemoryMax = "memory_max" in Supervision,
    Health = "health" in Supervision,
    HealthInterval = "health_interval" in Supervision,
    HealthTimeout = "health_timeout" in Supervision,
    HealthFailures = "health_failures" in Supervision,
    Watchdog = "watchdog" in Process,
    WatchdogSignal = "watchdog_signal" in Supervision,
    NotifyAccess = "notify_access" in Supervision,
    Instances = "instances" in Identity,
    Schedule = "schedule" in Supervision,
    CatchUp = "catch_up" in Supervision,
    RestartSchedule = "restart_schedule" in Supervision,
    PreStart = "pre_start" in Supervision,
    PostStop = "post_stop" in Supervision,
    OnFailure = "on_failure" in Supervision,
    HookTimeout = "hook_timeout" in Supervision,
}

impl Key {
    /// The key named `name`, if it is one.
    pub(crate) fn named(name: &str) -> Option<Key> {
        Key::ALL.iter().copied().find(|k| k.name() == name)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each key has one name, and no two keys share it.
    #[test]
    fn each_key_is_named_once() {
        let mut names = KEYS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Key::ALL.len());
        for key in Key::ALL {
            assert_eq!(Key::named(key.name()), Some(*key));
        }
        assert_eq!(Key::named("stop_timout"), None);
    }
}

//! The JSON shapes printed by `list --json` and `status --json`. Keys are stable: add
//! keys, never rename or remove them. Absent facts are `null`, never missing.

use serde::Serialize;

use crate::config::Daemon;
use crate::state::{ExitRecord, HealthSeen, MemorySeen, Observed, Reason, Status};

/// One daemon in `list --json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ListEntry {
    /// The daemon name.
    pub(crate) name: String,
    /// One of running, starting, backoff, stopping, stopped, failed, orphaned, invalid,
    /// unknown.
    pub(crate) status: Status,
    /// The daemon's main PID, or null.
    pub(crate) pid: Option<i32>,
    /// Seconds since the current process started, or null.
    pub(crate) uptime_secs: Option<u64>,
    /// Restarts by the current keeper.
    pub(crate) restarts: u32,
    /// Resident memory of the main process in bytes, or null.
    pub(crate) memory_bytes: Option<u64>,
    /// The command as a shell would read it.
    pub(crate) command: Option<String>,
    /// How the last run ended, or null.
    pub(crate) last_exit: Option<LastExit>,
    /// Why the file is invalid, the last start failed, or the state record cannot be
    /// used (status unknown), or null.
    pub(crate) error: Option<String>,
    /// The `description` key, or null.
    pub(crate) description: Option<String>,
    /// False when the daemon runs but its keeper is gone.
    pub(crate) supervised: bool,
    /// Why it is not running (or runs without a keeper), or null: one of
    /// stopped-by-request, exited, gave-up, start-failed, host-restarted, keeper-lost.
    pub(crate) reason: Option<Reason>,
    /// The liveness check's last outcome while it runs under a keeper, or null.
    pub(crate) health: Option<HealthSeen>,
    /// The memory against `memory_max` while it runs under a keeper, or null.
    pub(crate) memory: Option<MemorySeen>,
    /// The unit of `dmgr export systemd` that runs the daemon, when systemd runs it
    /// rather than dmgr (`status` is then `running`, `supervised` false), or null.
    pub(crate) systemd_unit: Option<String>,
    /// The PIDs of the daemon's processes that outlived both its keeper and its main
    /// process (orphaned workers that may still serve); `dmgr stop` stops them.
    pub(crate) left_behind: Vec<i32>,
    /// For a copy of a daemon with `instances` (`web@2`): its number, or null.
    pub(crate) instance: Option<u32>,
    /// A notify daemon's own status line (its last `STATUS=`) while its keeper runs
    /// it, or null.
    pub(crate) status_text: Option<String>,
    /// A `schedule`'s next time (RFC 3339 UTC) while its keeper waits for it, or null.
    pub(crate) next_run: Option<String>,
    /// The same in ms since the epoch, for the table.
    #[serde(skip)]
    pub(crate) next_run_ms: Option<u64>,
    /// When the last run ended (ms since the epoch), for the table.
    #[serde(skip)]
    pub(crate) last_exit_ms: Option<u64>,
}

impl ListEntry {
    /// The list facts of one daemon.
    pub(crate) fn new(name: &str, daemon: Option<&Daemon>, observed: &Observed) -> ListEntry {
        let record = observed.record.as_ref();
        let pid = observed.daemon.map(|p| p.pid);
        // Only a keeper that lives keeps them up to date.
        let watch = record
            .filter(|_| observed.keeper.is_some() && observed.status == Status::Running)
            .map(|r| &r.checks);
        let command = daemon
            .map(|d| d.process.command.clone())
            .or_else(|| record.map(|r| r.command.clone()))
            .map(|argv| {
                shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
            });
        ListEntry {
            name: name.to_string(),
            status: observed.status,
            pid,
            uptime_secs: observed.uptime().map(|d| d.as_secs()),
            restarts: record.map_or(0, |r| r.restarts),
            memory_bytes: observed.memory_bytes,
            command,
            last_exit: record
                .and_then(|r| r.last_exit.as_ref())
                .map(LastExit::from),
            error: record
                .and_then(|r| r.error.clone())
                .or_else(|| observed.problem.clone()),
            description: daemon.and_then(|d| d.description.clone()),
            supervised: observed.keeper.is_some() || pid.is_none(),
            reason: observed.reason,
            health: watch.and_then(|w| w.health.clone()),
            memory: watch.and_then(|w| w.memory.clone()),
            systemd_unit: None,
            status_text: record
                .filter(|_| observed.keeper.is_some() && pid.is_some())
                .and_then(|r| r.notify.status_text.clone()),
            // Looked for only where keeper and main process are both gone unasked.
            left_behind: record
                .filter(|_| observed.reason == Some(Reason::KeeperLost) && pid.is_none())
                .map(|r| {
                    crate::state::left_behind(r)
                        .into_iter()
                        .map(|p| p.pid)
                        .collect()
                })
                .unwrap_or_default(),
            next_run_ms: record
                .filter(|_| observed.keeper.is_some())
                .and_then(|r| r.next_run_ms),
            next_run: record
                .filter(|_| observed.keeper.is_some())
                .and_then(|r| r.next_run_ms)
                .map(crate::text::rfc3339_ms),
            last_exit_ms: record.and_then(|r| r.last_exit.as_ref()).map(|e| e.at_ms),
            instance: daemon
                .and_then(|d| d.instance.as_ref().map(|i| i.number))
                .or_else(|| crate::config::split_instance_name(name).map(|(_, n)| n)),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LastExit {
    /// The exit code, or null when a signal killed it.
    pub(crate) code: Option<i32>,
    /// The signal name (`KILL`), or null.
    pub(crate) signal: Option<String>,
    /// When, as RFC 3339 UTC.
    pub(crate) at: String,
    /// How long the run lasted, in seconds.
    pub(crate) ran_secs: f64,
}

impl From<&ExitRecord> for LastExit {
    fn from(exit: &ExitRecord) -> Self {
        LastExit {
            code: exit.code,
            signal: exit.signal.clone(),
            at: crate::text::rfc3339_ms(exit.at_ms),
            ran_secs: exit.ran_ms as f64 / 1000.0,
        }
    }
}

/// One daemon in `status --json`: everything in [`ListEntry`] plus details.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatusEntry {
    /// The list facts.
    #[serde(flatten)]
    pub(crate) list: ListEntry,
    /// The keeper's PID, or null.
    pub(crate) keeper_pid: Option<i32>,
    /// The pidfile path.
    pub(crate) pidfile: Option<String>,
    /// The log path.
    pub(crate) log: Option<String>,
    /// The separate stderr log path, or null.
    pub(crate) stderr_log: Option<String>,
    /// For `type = "forking"` with its own `pidfile`: the file dmgr locks in the run
    /// directory (`pidfile` is then the daemon's own), or null.
    pub(crate) lock_file: Option<String>,
    /// The daemon's cgroup, where the keeper made one, or null.
    pub(crate) cgroup: Option<String>,
    /// Why a running daemon has no cgroup of its own (its processes are tracked as
    /// its keeper's descendants), or null.
    pub(crate) no_cgroup: Option<String>,
    /// True when `dmgr run` runs the daemon in the foreground.
    pub(crate) foreground: bool,
    /// The config file, or null for an orphan.
    pub(crate) file: Option<String>,
    /// When the next restart is due during backoff (RFC 3339), or null.
    pub(crate) next_restart: Option<String>,
    /// Seconds until then, or null.
    pub(crate) next_restart_in_secs: Option<f64>,
    /// The last exits, oldest first.
    pub(crate) history: Vec<LastExit>,
    /// A log write problem the keeper noticed, or null.
    pub(crate) log_error: Option<String>,
    /// A pidfile that nothing backs, or null.
    pub(crate) stale_pidfile: Option<String>,
    /// The last log lines.
    pub(crate) log_tail: Vec<String>,
    /// The last lines of the separate stderr log; empty when there is none.
    pub(crate) stderr_tail: Vec<String>,
    /// The last five events, oldest first, as `dmgr events --json` prints them.
    pub(crate) events: Vec<crate::events::Event>,
    /// A notify daemon's socket (`NOTIFY_SOCKET` as the daemon finds it) while its
    /// keeper lives, or null.
    pub(crate) notify_socket: Option<String>,
    /// What its keeper dropped on that socket while it lives, or null when nothing.
    pub(crate) notify_dropped: Option<NotifyDropped>,
}

/// What a notify daemon's keeper dropped on its socket.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NotifyDropped {
    /// Messages from senders it does not believe (`notify_access`).
    pub(crate) refused: u64,
    /// Malformed lines or datagrams.
    pub(crate) malformed: u64,
    /// The last refused sender and why, or null.
    pub(crate) last_refused: Option<String>,
}

impl NotifyDropped {
    /// What `seen` says was dropped; `None` when nothing was.
    pub(crate) fn of(seen: &crate::state::NotifySeen) -> Option<NotifyDropped> {
        (seen.refused > 0 || seen.malformed > 0).then(|| NotifyDropped {
            refused: seen.refused,
            malformed: seen.malformed,
            last_refused: seen.last_refused.clone(),
        })
    }

    /// In words, for `status`: "2 from senders not believed (last: ...), 1 malformed".
    pub(crate) fn describe(&self) -> String {
        let mut words = Vec::new();
        if self.refused > 0 {
            let last = self
                .last_refused
                .as_ref()
                .map_or(String::new(), |l| format!(" (last: {l})"));
            words.push(format!("{} from senders not believed{last}", self.refused));
        }
        if self.malformed > 0 {
            words.push(format!("{} malformed", self.malformed));
        }
        words.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_notify_keeper_dropped_is_said_in_words() {
        let mut seen = crate::state::NotifySeen::default();
        assert!(NotifyDropped::of(&seen).is_none());
        seen.refused = 2;
        seen.last_refused = Some("pid 4711, not a process of the daemon".into());
        seen.malformed = 1;
        assert_eq!(
            NotifyDropped::of(&seen).unwrap().describe(),
            "2 from senders not believed (last: pid 4711, not a process of the daemon), 1 malformed"
        );
        seen.refused = 0;
        assert_eq!(NotifyDropped::of(&seen).unwrap().describe(), "1 malformed");
    }
}

//! The keeper's state record (`RUN_DIR/NAME.state`, JSON) and how readers turn it into
//! the truth about a daemon without taking any lock.
//!
//! Only the keeper writes the record while it lives, each time whole, through a
//! temporary file swapped with the record (see [`StateFile`]); when the keeper is gone
//! (it exited, or was SIGKILLed), `stop` may write a final record. Readers open it
//! without following a symlink and check that it is whole and its daemon's own
//! ([`read_checked`]); they trust it only while the recorded identities (PID plus
//! start time) still match live processes: that is what makes `list` truthful after
//! a keeper is killed and immune to PID reuse ([`observe()`]). A record that cannot be
//! used makes the daemon `unknown`, never "stopped".

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::{Dirs, ProcessSpec, Supervision};
use crate::procinfo::{self, ProcId};
use crate::text::path_bytes;

mod brief;
mod checks;
mod left_behind;
mod notify;
mod observe;
mod record_file;
mod summary;

pub use checks::{ChecksSeen, HealthSeen, MemoryMechanism, MemorySeen};
pub(crate) use left_behind::left_behind;
pub use notify::NotifySeen;
pub use observe::{observe, observe_brief, Observed};
#[cfg(test)]
use record_file::{decode, encode, fnv1a, Decoded};
pub use record_file::{read, read_brief, read_checked, write, Reading, StateFile};

/// How many exits the crash history keeps.
pub const HISTORY_LEN: usize = 10;

/// A daemon's status as `list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Up, past `start_wait` and readiness.
    Running,
    /// Started, not yet past `start_wait` or readiness.
    Starting,
    /// Exited; the keeper waits to restart it.
    Backoff,
    /// A stop is under way.
    Stopping,
    /// Never started, stopped, or exited 0 with no restart due.
    Stopped,
    /// Exited with an error and no restart is due.
    Failed,
    /// Running, but its file was removed from the config directory.
    Orphaned,
    /// Its file does not load.
    Invalid,
    /// A `type = "oneshot"` whose last run exited 0.
    Done,
    /// A keeper with a `schedule`, between runs (`next_run_ms` says when the next is).
    Waiting,
    /// Its state record cannot be used (a symlink, another file's hard link, torn,
    /// garbled, another daemon's): dmgr cannot tell, and says so rather than guess.
    Unknown,
}

impl Status {
    /// Every status, in the order SPEC lists them.
    pub const ALL: [Status; 11] = [
        Status::Running,
        Status::Starting,
        Status::Backoff,
        Status::Stopping,
        Status::Stopped,
        Status::Failed,
        Status::Orphaned,
        Status::Invalid,
        Status::Done,
        Status::Waiting,
        Status::Unknown,
    ];

    /// The word `list` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Starting => "starting",
            Status::Backoff => "backoff",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
            Status::Failed => "failed",
            Status::Orphaned => "orphaned",
            Status::Invalid => "invalid",
            Status::Done => "done",
            Status::Waiting => "waiting",
            Status::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = ();

    /// The status whose word is `word`, as [`Status::as_str`] writes it.
    fn from_str(word: &str) -> Result<Status, ()> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str() == word)
            .ok_or(())
    }
}

/// How one run of the daemon ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit code, when it exited.
    pub code: Option<i32>,
    /// The signal name (`KILL`), when a signal killed it.
    pub signal: Option<String>,
    /// When it ended, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// How long it ran, in milliseconds.
    pub ran_ms: u64,
}

impl ExitRecord {
    /// Returns true if and only if the run ended with exit code 0.
    pub fn is_success(&self) -> bool {
        self.code == Some(0)
    }

    /// `exit 3` or `signal KILL`.
    pub fn describe(&self) -> String {
        match (&self.code, &self.signal) {
            (_, Some(signal)) => format!("signal {signal}"),
            (Some(code), None) => format!("exit {code}"),
            (None, None) => "unknown".to_string(),
        }
    }
}

/// What a keeper records about its daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// The daemon's name.
    pub name: String,
    /// The keeper's identity.
    pub keeper: ProcId,
    /// The daemon's identity while a process runs.
    pub daemon: Option<ProcId>,
    /// The status as the keeper sees it.
    pub status: Status,
    /// When the current daemon process started (ms since the epoch).
    pub started_at_ms: Option<u64>,
    /// Restarts by this keeper.
    pub restarts: u32,
    /// How the last run ended.
    pub last_exit: Option<ExitRecord>,
    /// The last [`HISTORY_LEN`] exits, oldest first.
    pub history: Vec<ExitRecord>,
    /// When the next restart is due during backoff (ms since the epoch).
    pub next_restart_ms: Option<u64>,
    /// Why the last start failed or the keeper gave up.
    pub error: Option<String>,
    /// A problem writing the log, reported once.
    pub log_error: Option<String>,
    /// The pidfile the keeper locks.
    #[serde(with = "path_bytes")]
    pub pidfile: PathBuf,
    /// The log paths.
    #[serde(with = "path_bytes")]
    pub log: PathBuf,
    /// The separate stderr log, if any.
    #[serde(with = "path_bytes::option")]
    pub stderr_log: Option<PathBuf>,
    /// The command, for `list` of orphans.
    pub command: Vec<String>,
    /// The process-affecting keys the daemon was started with.
    pub process: ProcessSpec,
    /// The supervision keys the keeper uses now: `stop_signal` and `stop_timeout`
    /// among them, so that what a dead keeper left can be stopped without its file.
    /// Records of earlier versions also hold copies of those two at the top
    /// level, which are ignored.
    pub supervision: Supervision,
    /// The inodes of the pipes the keeper gave the daemon as standard output and error.
    /// Every process that still writes to one was started by this keeper's daemons, and
    /// an inode cannot be reused while a process holds it: after the keeper and the
    /// main process died, this is how `stop` and `start` tell what they left behind.
    #[serde(default)]
    pub output_pipes: Vec<u64>,
    /// The boot the record was written in (`/proc/sys/kernel/random/boot_id`): process
    /// identities of another boot name nothing now.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// Why the daemon is not running, once the keeper (or `stop`) recorded an end.
    #[serde(default)]
    pub reason: Option<Reason>,
    /// The cgroup the keeper put the daemon in, where it could create one.
    #[serde(default, with = "path_bytes::option")]
    pub cgroup: Option<PathBuf>,
    /// Why the daemon has no cgroup of its own (see `cgroup`): its processes
    /// are then tracked as the keeper's descendants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_cgroup: Option<String>,
    /// For `type = "forking"`: the pidfile the daemon writes itself.
    #[serde(default, with = "path_bytes::option")]
    pub daemon_pidfile: Option<PathBuf>,
    /// True when the keeper is `dmgr run`, in the foreground.
    #[serde(default)]
    pub foreground: bool,
    /// The digest of the `env_file` files the daemon was started with (see
    /// `config::env_file::Loaded::digest`); `apply` restarts it when they changed.
    #[serde(default)]
    pub env_file_digest: Option<u64>,
    /// The probe process that runs (a `ready` check), leader of its own process group.
    #[serde(default)]
    pub probe: Option<ProcId>,
    /// The keeper's holder (its parent, see `launcher::holder`): once the keeper is gone,
    /// every process of the daemon is the holder's descendant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<ProcId>,
    /// What the keeper's liveness check and memory ceiling saw last while the daemon
    /// is up; empty otherwise.
    #[serde(default, rename = "watch")]
    pub checks: ChecksSeen,
    /// The definition file as the keeper loaded it, so that `list` can skip reading
    /// a file that has not changed since (issue 15). `None` in older records, and
    /// then `list` reads the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<Definition>,
    /// With a `schedule`: the next time it runs (ms since the epoch), while its keeper
    /// waits for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_ms: Option<u64>,
    /// What a notify daemon's keeper heard on its socket; empty for other daemons.
    #[serde(default, skip_serializing_if = "NotifySeen::is_empty")]
    pub notify: NotifySeen,
}

/// What `list` needs of a definition file that it does not read: the file's identity
/// when its keeper loaded it, and the keys `list` shows or checks across files that
/// the rest of the record lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    /// The file's identity, taken before the keeper read it.
    pub file: FileIdentity,
    /// The `after` key.
    pub after: Vec<String>,
    /// The `description` key.
    pub description: Option<String>,
}

impl Definition {
    /// The definition of `daemon`, loaded from the file whose identity is `file`.
    pub fn new(file: FileIdentity, daemon: &crate::config::Daemon) -> Definition {
        Definition {
            file,
            after: daemon.after.clone(),
            description: daemon.description.clone(),
        }
    }
}

/// How coarse file timestamps can be: the kernel stamps files from a clock that
/// advances once a tick (10 ms at HZ=100, the coarsest Linux uses), so two writes
/// within one tick may leave the same mtime and ctime.
pub const TIMESTAMP_GRANULARITY_NS: i64 = 20_000_000;

/// A file's identity as git's index records it: device, inode, size, and modification
/// and change time in nanoseconds, plus when it was taken. A write to the file, a
/// rename over it, `chmod` or `chown` changes at least one of them, except for a write
/// within the timestamps' granularity of the last one: git's "racy" case, which
/// [`FileIdentity::is_trusted`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_mtime` in nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// `st_ctime` in nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// The clock just before the file was looked at, in nanoseconds since the epoch.
    pub taken_ns: i64,
}

impl FileIdentity {
    /// The identity of the file at `path` (following symlinks, as the loader opens it)
    /// now; `None` if it cannot be looked at. For a keeper's record, take it before
    /// reading the file: then no write after the read can leave it unchanged.
    pub fn of(path: &Path) -> Option<FileIdentity> {
        use std::os::unix::fs::MetadataExt;
        let taken_ns = now_ns();
        // std's metadata is one statx(2) on Linux, with nanosecond times.
        let meta = std::fs::metadata(path).ok()?;
        Some(FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
            ctime_ns: meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec(),
            taken_ns,
        })
    }

    /// Returns true if and only if a file that still shows this identity cannot have
    /// changed since it was taken: its last change is older than the moment it was
    /// taken by more than the timestamps' granularity, so any later write stamps a
    /// later time (git's racy-git rule).
    pub fn is_trusted(&self) -> bool {
        self.mtime_ns.max(self.ctime_ns) < self.taken_ns - TIMESTAMP_GRANULARITY_NS
    }

    /// Returns true if and only if `now`, taken later, shows the same file unchanged.
    pub fn is_same_file(&self, now: &FileIdentity) -> bool {
        (self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns)
            == (now.dev, now.ino, now.size, now.mtime_ns, now.ctime_ns)
    }
}

/// Nanoseconds since the Unix epoch now.
fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl StateRecord {
    /// Returns true if and only if the record was written in this boot of the host (or
    /// by a dmgr that did not record boots): only then do its process identities, pipe
    /// inodes and cgroup name anything.
    pub fn is_this_boot(&self) -> bool {
        self.boot_id.is_none() || self.boot_id.as_deref() == procinfo::boot_id()
    }
}

/// Why a daemon is not running (or runs without its keeper), as `--json` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// `dmgr stop` stopped it; `apply` leaves it stopped.
    StoppedByRequest,
    /// It exited and its `restart` policy did not start it again.
    Exited,
    /// It failed `max_restarts` times in a row.
    GaveUp,
    /// It never came up: exec failed, it died within `start_wait`, or was not ready.
    StartFailed,
    /// The record is from an earlier boot of the host.
    HostRestarted,
    /// Its keeper vanished (killed) without recording an end.
    KeeperLost,
    /// A signal from outside dmgr stopped it (not `dmgr stop`): `apply` starts it again.
    OutsideStop,
}

impl Reason {
    /// Every reason, in declaration order.
    pub const ALL: [Reason; 7] = [
        Reason::StoppedByRequest,
        Reason::Exited,
        Reason::GaveUp,
        Reason::StartFailed,
        Reason::HostRestarted,
        Reason::KeeperLost,
        Reason::OutsideStop,
    ];

    /// The reason whose [`Reason::as_str`] name is `word`.
    pub fn from_name(word: &[u8]) -> Option<Reason> {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str().as_bytes() == word)
    }

    /// The machine-readable name, as in `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::StoppedByRequest => "stopped-by-request",
            Reason::Exited => "exited",
            Reason::GaveUp => "gave-up",
            Reason::StartFailed => "start-failed",
            Reason::HostRestarted => "host-restarted",
            Reason::KeeperLost => "keeper-lost",
            Reason::OutsideStop => "outside-stop",
        }
    }

    /// The words `list` puts in brackets after the status, for the reasons that the
    /// status word alone would hide.
    pub fn short(self) -> Option<&'static str> {
        match self {
            Reason::HostRestarted => Some("host restarted"),
            Reason::KeeperLost => Some("keeper lost"),
            Reason::OutsideStop => Some("outside stop"),
            _ => None,
        }
    }

    /// A sentence for `status`.
    pub fn explain(self) -> &'static str {
        match self {
            Reason::StoppedByRequest => {
                "stopped by request (`dmgr stop`); `apply` leaves it stopped, `start` starts it"
            }
            Reason::Exited => "it exited and its restart policy did not start it again",
            Reason::GaveUp => "it failed max_restarts times in a row and its keeper gave up",
            Reason::StartFailed => "its last start failed",
            Reason::HostRestarted => {
                "the host restarted since this record was written; nothing of it runs"
            }
            Reason::KeeperLost => {
                "its keeper vanished (killed?) without recording how the daemon ended"
            }
            Reason::OutsideStop => {
                "a signal from outside dmgr stopped it, not `dmgr stop`; `apply` starts it again"
            }
        }
    }
}

/// Milliseconds since the Unix epoch now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Returns true if and only if the daemon `name` has a state record, usable or not.
pub fn has_record(dirs: &Dirs, name: &str) -> bool {
    !matches!(read_checked(&dirs.state_file(name), name), Reading::Absent)
}

/// The names of every daemon with a state record in the run directory.
pub fn recorded_names(dirs: &Dirs) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(&dirs.run_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".state")
                .filter(|stem| !stem.is_empty() && !stem.starts_with('.'))
                .map(str::to_string)
        })
        .collect();
    names.sort_unstable();
    names
}

#[cfg(test)]
mod tests;

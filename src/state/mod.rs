//! The keeper's state record (`RUN_DIR/NAME.state`, JSON) and how readers turn it into
//! the truth about a daemon without taking any lock.
//!
//! Only the keeper writes the record while it lives; it rewrites the file in place
//! (see [`StateFile`]), and the checksum that ends each record tells a reader that
//! caught a write half done to read again, so readers act on whole records only.
//! When the keeper is gone (it exited, or was SIGKILLed), `stop` may write a final
//! record. Readers trust the record only while the recorded identities (PID plus start
//! time) still match live processes: that is what makes `list` truthful after a keeper
//! is killed and immune to PID reuse.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::units::Signal;
use crate::config::{Dirs, ProcessSpec, Supervision};
use crate::procinfo::{self, ProcId, Stat};

mod watch;
pub use watch::{HealthSeen, MemoryMechanism, MemorySeen, Watch};

/// Paths in the record as the bytes they are: a path that is valid UTF-8 is a JSON
/// string as before, any other an array of its bytes. serde's own `PathBuf` refuses
/// to serialise a path that is not UTF-8, and a record that cannot be written loses
/// the daemon (issue 16: a run directory whose name is not UTF-8).
pub mod path_bytes {
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::{Path, PathBuf};

    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// How a path is written: text, or the bytes of one that is not UTF-8.
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Form<'a> {
        Text(&'a str),
        Bytes(&'a [u8]),
    }

    fn form(path: &Path) -> Form<'_> {
        match path.to_str() {
            Some(text) => Form::Text(text),
            None => Form::Bytes(path.as_os_str().as_bytes()),
        }
    }

    /// Reads either form straight into a path. (A derived untagged enum would buffer
    /// each value and copy it once more: `list` reads several paths a record.)
    struct PathVisitor;

    impl<'de> Visitor<'de> for PathVisitor {
        type Value = PathBuf;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a path: a string, or an array of its bytes")
        }

        fn visit_str<E: Error>(self, text: &str) -> Result<PathBuf, E> {
            Ok(PathBuf::from(text))
        }

        fn visit_string<E: Error>(self, text: String) -> Result<PathBuf, E> {
            Ok(PathBuf::from(text))
        }

        fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<PathBuf, E> {
            Ok(PathBuf::from(OsString::from_vec(bytes.to_vec())))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PathBuf, A::Error> {
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(byte) = seq.next_element::<u8>()? {
                bytes.push(byte);
            }
            Ok(PathBuf::from(OsString::from_vec(bytes)))
        }
    }

    /// A path read by [`PathVisitor`], for `Option`.
    struct Read(PathBuf);

    impl<'de> Deserialize<'de> for Read {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Read, D::Error> {
            deserializer.deserialize_any(PathVisitor).map(Read)
        }
    }

    /// Serialises a path.
    pub fn serialize<S: Serializer>(value: &Path, serializer: S) -> Result<S::Ok, S::Error> {
        form(value).serialize(serializer)
    }

    /// Deserialises a path.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
        deserializer.deserialize_any(PathVisitor)
    }

    /// The same for an optional path.
    pub mod option {
        use super::*;

        /// Serialises an optional path.
        pub fn serialize<S: Serializer>(
            value: &Option<PathBuf>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            value.as_deref().map(form).serialize(serializer)
        }

        /// Deserialises an optional path.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<PathBuf>, D::Error> {
            Option::<Read>::deserialize(deserializer).map(|read| read.map(|Read(path)| path))
        }
    }
}

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
}

impl Status {
    /// Every status, in the order SPEC lists them.
    pub const ALL: [Status; 8] = [
        Status::Running,
        Status::Starting,
        Status::Backoff,
        Status::Stopping,
        Status::Stopped,
        Status::Failed,
        Status::Orphaned,
        Status::Invalid,
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
    /// The signal `stop` uses, so an orphan can be stopped without its file.
    pub stop_signal: Signal,
    /// The stop timeout in milliseconds, likewise.
    pub stop_timeout_ms: u64,
    /// The process-affecting keys the daemon was started with.
    pub process: ProcessSpec,
    /// The supervision keys the keeper uses now.
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
    /// Why the daemon has no cgroup of its own (see `keeper::cgroup`): its processes
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
    /// What the keeper's liveness check and memory ceiling saw last while the daemon
    /// is up; empty otherwise.
    #[serde(default)]
    pub watch: Watch,
    /// The definition file as the keeper loaded it, so that `list` can skip reading
    /// a file that has not changed since (issue 15). `None` in older records, and
    /// then `list` reads the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<Definition>,
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
}

impl Reason {
    /// The machine-readable name, as in `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::StoppedByRequest => "stopped-by-request",
            Reason::Exited => "exited",
            Reason::GaveUp => "gave-up",
            Reason::StartFailed => "start-failed",
            Reason::HostRestarted => "host-restarted",
            Reason::KeeperLost => "keeper-lost",
        }
    }

    /// The words `list` puts in brackets after the status, for the reasons that the
    /// status word alone would hide.
    pub fn short(self) -> Option<&'static str> {
        match self {
            Reason::HostRestarted => Some("host restarted"),
            Reason::KeeperLost => Some("keeper lost"),
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
        }
    }
}

/// Reads a state record; `None` when there is none or it does not parse.
///
/// The keeper rewrites its record in place (see [`StateFile`]), so a read may catch a
/// write half done; the checksum line tells, and the read is retried.
pub fn read(path: &Path) -> Option<StateRecord> {
    for _ in 0..100 {
        let bytes = crate::files::read(path).ok()?;
        match decode(&bytes) {
            Decoded::Record(record) => return Some(*record),
            Decoded::Torn => std::thread::yield_now(),
            Decoded::Invalid => return None,
        }
    }
    None
}

enum Decoded {
    Record(Box<StateRecord>),
    Torn,
    Invalid,
}

/// The record is one JSON object whose last key, `sum`, is a checksum of every byte
/// before it: `{...,"sum":"0123456789abcdef"}`. The sequence `,"sum":"` cannot occur
/// earlier (a quote inside a JSON string is escaped, and no record field is named
/// `sum`). Anything after the object is the tail of a longer, older record not yet
/// truncated away.
fn decode(bytes: &[u8]) -> Decoded {
    const KEY: &[u8] = b",\"sum\":\"";
    // The key, the 16 digits, then `"}`.
    const TAIL: usize = KEY.len() + 16 + 2;
    let checked = |at: usize| {
        let (body, rest) = bytes.split_at(at);
        let sum = rest.get(KEY.len()..KEY.len() + 16)?;
        let ok = sum == format!("{:016x}", fnv1a(body)).as_bytes()
            && rest.get(KEY.len() + 16..TAIL) == Some(b"\"}".as_slice());
        ok.then_some(at + TAIL)
    };
    // Most reads find the record alone in the file, its key a fixed distance from the
    // end; a file with an older record's tail after it is searched from the start.
    let at_end = bytes
        .trim_ascii_end()
        .len()
        .checked_sub(TAIL)
        .filter(|&at| bytes[at..].starts_with(KEY));
    let end = at_end.and_then(checked).or_else(|| {
        let at = bytes.windows(KEY.len()).position(|w| w == KEY)?;
        checked(at)
    });
    let Some(end) = end else {
        return Decoded::Torn;
    };
    // The object as it stands, `sum` and all: the record's fields ignore unknown keys.
    match serde_json::from_slice(&bytes[..end]) {
        Ok(record) => Decoded::Record(Box::new(record)),
        Err(_) => Decoded::Invalid,
    }
}

fn encode(record: &StateRecord) -> std::io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    bytes.pop(); // the closing brace; `sum` goes before it
    let sum = fnv1a(&bytes);
    bytes.extend_from_slice(format!(",\"sum\":\"{sum:016x}\"}}\n").as_bytes());
    Ok(bytes)
}

/// FNV-1a, 64 bits: enough to tell a torn read from a whole one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A state record file held open by its one writer, rewritten in place: after the
/// first write no directory entry changes, so hundreds of keepers saving at once do not
/// contend for the run directory's lock.
#[derive(Debug)]
pub struct StateFile {
    file: std::fs::File,
}

impl StateFile {
    /// Opens (creating) the record at `path`, refusing a symlink.
    pub fn open(path: &Path) -> std::io::Result<StateFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = crate::files::open_planted_safe(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644),
            path,
        )?;
        Ok(StateFile { file })
    }

    /// Replaces the record.
    pub fn write(&mut self, record: &StateRecord) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let bytes = encode(record)?;
        self.file.write_all_at(&bytes, 0)?;
        self.file.set_len(bytes.len() as u64)
    }
}

/// Writes a state record (for `stop` of a daemon whose keeper is gone).
pub fn write(path: &Path, record: &StateRecord) -> std::io::Result<()> {
    StateFile::open(path)?.write(record)
}

/// Milliseconds since the Unix epoch now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The truth about one daemon, worked out from its record and `/proc`.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The status to show.
    pub status: Status,
    /// The record, if any.
    pub record: Option<StateRecord>,
    /// The live keeper, if any.
    pub keeper: Option<ProcId>,
    /// The live daemon process, if any.
    pub daemon: Option<ProcId>,
    /// Its resident memory.
    pub memory_bytes: Option<u64>,
    /// A pidfile that no live keeper or daemon backs (reported as stale).
    pub stale_pidfile: Option<PathBuf>,
    /// Why it is not running, or runs without a keeper.
    pub reason: Option<Reason>,
}

impl Observed {
    /// How long the daemon process has been up.
    pub fn uptime(&self) -> Option<Duration> {
        let started = self.record.as_ref()?.started_at_ms?;
        self.daemon?;
        Some(Duration::from_millis(now_ms().saturating_sub(started)))
    }

    /// Returns true if and only if a daemon process is alive.
    pub fn is_running(&self) -> bool {
        self.daemon.is_some()
    }

    /// Returns true if and only if the daemon runs but no keeper looks after it.
    pub fn is_unsupervised(&self) -> bool {
        self.daemon.is_some() && self.keeper.is_none()
    }
}

/// Observes the daemon `name`; `pidfile` is the configured pidfile when the file is
/// known (the record names it otherwise). Takes no lock and changes nothing.
pub fn observe(dirs: &Dirs, name: &str, pidfile: Option<&Path>) -> Observed {
    let record = read(&dirs.state_file(name));
    // Start times count from boot: the identities of an earlier boot may match
    // unrelated processes of this one, so such a record is history only.
    let earlier_boot = record.as_ref().is_some_and(|r| !r.is_this_boot());
    let live = record.as_ref().filter(|_| !earlier_boot);
    // One read of the daemon's /proc stat tells most: whether it is the process
    // recorded, its memory, and, through its parent PID, whether its keeper lives (a
    // live process's parent cannot be a recycled PID: orphans are reparented when their
    // parent exits). Only without a live daemon is the keeper looked up itself.
    let daemon_stat = live
        .and_then(|r| r.daemon)
        .and_then(|id| Stat::read(id.pid).filter(|s| s.start == id.start && !s.is_dead()));
    let daemon = daemon_stat.and(live.and_then(|r| r.daemon));
    let keeper = live.map(|r| r.keeper).filter(|k| match daemon_stat {
        Some(stat) => stat.ppid == k.pid,
        None => k.is_alive(),
    });
    let ended = |r: &StateRecord| matches!(r.status, Status::Stopped | Status::Failed);
    let (status, reason) = match (&record, keeper, daemon) {
        (None, _, _) => (Status::Stopped, None),
        (Some(_), _, _) if earlier_boot => (Status::Stopped, Some(Reason::HostRestarted)),
        (Some(r), Some(_), _) => (r.status, r.reason.filter(|_| ended(r))),
        // The keeper died without recording an end: nobody saw how it ended.
        (Some(r), None, Some(_)) => (Status::Running, (!ended(r)).then_some(Reason::KeeperLost)),
        (Some(r), None, None) if ended(r) => (r.status, r.reason),
        (Some(_), None, None) => (Status::Failed, Some(Reason::KeeperLost)),
    };
    let pidfile = pidfile
        .map(Path::to_path_buf)
        .or_else(|| record.as_ref().map(|r| r.pidfile.clone()));
    let stale_pidfile = match (keeper, daemon, pidfile) {
        (None, None, Some(path)) if path.exists() => Some(path),
        _ => None,
    };
    Observed {
        status,
        record,
        keeper,
        daemon,
        memory_bytes: daemon_stat.map(|s| s.rss_bytes()),
        stale_pidfile,
        reason,
    }
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

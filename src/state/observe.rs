//! The truth about one daemon, worked out from its state record and `/proc` without
//! taking any lock (`list` and `status` never wait and never make a concurrent `start`
//! or `stop` fail).
//!
//! A record is trusted only while the identities it names (PID plus start time) match
//! live processes. A record that cannot be used (see [`Reading::Unknown`]) says
//! nothing, so nothing is concluded from it: the daemon is `unknown`, and what can
//! still be known is found without it: the process that holds the daemon's pidfile
//! lock (from `/proc/locks`, which takes no lock), if it is a dmgr of this user (its
//! keeper or `dmgr run`), and the PID in the pidfile if that process is its child.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::record_file::{read_brief, read_checked, Reading};
use super::{now_ms, Reason, StateRecord, Status};
use crate::config::Dirs;
use crate::procinfo::{ProcId, Stat};

/// The truth about one daemon, worked out from its record and `/proc`.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The status to show.
    pub status: Status,
    /// The record, if any (boxed: an `Observed` without one is small, and `list` of
    /// many daemons keeps one each).
    pub record: Option<Box<StateRecord>>,
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
    /// For status `unknown`: why the record could not be used ("its state record is a
    /// symlink, ...").
    pub problem: Option<String>,
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
    observe_reading(
        dirs,
        name,
        pidfile,
        read_checked(&dirs.state_file(name), name),
    )
}

/// [`observe`] for `list`, from the record as [`read_brief`] decodes it: the same
/// truth, but `record` holds no supervision keys and no history.
pub fn observe_brief(dirs: &Dirs, name: &str, pidfile: Option<&Path>) -> Observed {
    observe_reading(
        dirs,
        name,
        pidfile,
        read_brief(&dirs.state_file(name), name),
    )
}

/// [`observe`] from what reading the record found.
fn observe_reading(dirs: &Dirs, name: &str, pidfile: Option<&Path>, reading: Reading) -> Observed {
    let record = match reading {
        Reading::Absent => None,
        Reading::Record(record) => Some(record),
        Reading::Unknown(why) => {
            let pidfile = pidfile.map_or_else(|| dirs.pidfile(name), Path::to_path_buf);
            return without_record(&pidfile, format!("its state record {why}"));
        }
    };
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
    let ended =
        |r: &StateRecord| matches!(r.status, Status::Stopped | Status::Failed | Status::Done);
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
        problem: None,
    }
}

/// A daemon whose record cannot be used (`problem` says why): status `unknown`, its
/// keeper the dmgr process of this user that holds its pidfile lock, if one does, and
/// its main process the PID in the pidfile if that is the keeper's child.
fn without_record(pidfile: &Path, problem: String) -> Observed {
    let keeper = crate::pidfile::lock_holders(pidfile)
        .into_iter()
        .find(|&pid| is_own_dmgr(pid))
        .and_then(ProcId::of);
    let daemon_stat = keeper.and_then(|k| {
        let pid = crate::pidfile::read_pid(pidfile)?;
        let stat = Stat::read(pid).filter(|s| s.ppid == k.pid && !s.is_dead())?;
        Some((
            ProcId {
                pid,
                start: stat.start,
            },
            stat,
        ))
    });
    Observed {
        status: Status::Unknown,
        record: None,
        keeper,
        daemon: daemon_stat.map(|(id, _)| id),
        memory_bytes: daemon_stat.map(|(_, s)| s.rss_bytes()),
        stale_pidfile: None,
        reason: None,
        problem: Some(problem),
    }
}

/// Returns true if and only if the process `pid` is a dmgr (a keeper, `dmgr run`) of
/// the user this one runs as: only such a holder of a pidfile lock is asked to stop.
/// It runs this very binary, or one named `dmgr` (an older binary replaced since).
pub(crate) fn is_own_dmgr(pid: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let own =
        std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == crate::files::euid());
    let identity = |path: &str| std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let same_binary = identity(&format!("/proc/{pid}/exe"))
        .is_some_and(|exe| Some(exe) == identity("/proc/self/exe"));
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    own && (same_binary || comm.trim_end() == "dmgr")
}

//! The only code that opens, locks, reads or removes a pidfile, and the per-daemon
//! operation lock that `start`, `stop` and `restart` hold.
//!
//! A keeper holds an exclusive `flock` on its daemon's pidfile for its whole life.
//! Three traps shape this file:
//! - a lock taken on a file that someone unlinked meanwhile protects nothing, so after
//!   locking we check that the path still names the inode we locked, and retry if not;
//! - the keeper unlinks the pidfile *before* it releases the lock (by closing), so an
//!   exiting keeper never deletes its successor's file;
//! - `LOCK_UN` from any holder of the open file description releases the lock for all
//!   of them, so nothing here ever unlocks explicitly: locks end when the fd closes.
//!
//! Files are opened with `O_NOFOLLOW` and `O_CLOEXEC`: a symlink planted where a
//! pidfile goes is refused, and no lock fd leaks into a daemon.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::os::unix::fs::PermissionsExt;

use nix::fcntl::OFlag;

use crate::trusted_dir::{LastLink, TrustedDir};
use crate::Error;

/// How long a lock held by a process of another user is waited for before the
/// operation fails naming it. A process of our own user is a `dmgr` at work (or our
/// own doing) and is waited for as long as it holds the lock: each `start` and `stop`
/// ends within its daemon's timeouts.
const FOREIGN_PATIENCE: Duration = Duration::from_secs(5);

/// How long a lock whose holder cannot be found (no `/proc/locks`) is waited for.
const UNKNOWN_PATIENCE: Duration = Duration::from_secs(60);

/// A pidfile this process holds the exclusive lock on.
#[derive(Debug)]
pub(crate) struct LockedPidfile {
    file: File,
    dir: TrustedDir,
    name: OsString,
    path: PathBuf,
}

/// Why a pidfile could not be locked.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another process holds the lock.
    Held,
    /// The file could not be opened or locked.
    Io(Error),
}

impl LockedPidfile {
    /// Opens (creating) and locks the pidfile without waiting.
    pub(crate) fn try_lock(path: &Path) -> Result<LockedPidfile, LockError> {
        let (dir, name) = open_parent(path).map_err(LockError::Io)?;
        // A successor may unlink and recreate the file between our open and our lock;
        // a handful of tries is plenty, as each retry means another process made
        // progress.
        for _ in 0..8 {
            let file =
                create_in(&dir, &name, path, 0o644, "open the pidfile").map_err(LockError::Io)?;
            match fs2::FileExt::try_lock_exclusive(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(LockError::Held),
                Err(source) => {
                    return Err(LockError::Io(Error::Io {
                        action: "lock the pidfile",
                        path: path.to_path_buf(),
                        source,
                    }))
                }
            }
            if dir.holds(&name, &file) {
                return Ok(LockedPidfile {
                    file,
                    dir,
                    name,
                    path: path.to_path_buf(),
                });
            }
        }
        Err(LockError::Held)
    }

    /// Replaces the content with `pid` and a newline.
    pub(crate) fn write_pid(&mut self, pid: i32) -> Result<(), Error> {
        let io_err = |source| Error::Io {
            action: "write the pidfile",
            path: self.path.clone(),
            source,
        };
        self.file.set_len(0).map_err(io_err)?;
        let line = format!("{pid}\n");
        std::os::unix::fs::FileExt::write_all_at(&self.file, line.as_bytes(), 0).map_err(io_err)?;
        Ok(())
    }

    /// Empties the file: the daemon is not running but the keeper still is.
    pub(crate) fn clear(&mut self) {
        let _ = self.file.set_len(0);
    }

    /// Unlinks the pidfile, then releases the lock by closing it, in that order.
    pub(crate) fn remove(self) {
        if self.dir.holds(&self.name, &self.file) {
            let _ = self.dir.remove(&self.name);
        }
        drop(self.file);
    }
}

/// Reads the PID recorded on the first line of a pidfile, if there is a well-formed
/// one. Only the first line counts, as systemd reads `PIDFile=`: PostgreSQL's
/// `postmaster.pid` goes on with its data directory, port and more.
pub(crate) fn read_pid(path: &Path) -> Option<i32> {
    let mut bytes = Vec::new();
    open_nofollow(path)
        .ok()?
        .take(64)
        .read_to_end(&mut bytes)
        .ok()?;
    let first = bytes.split(|&b| b == b'\n').next()?;
    std::str::from_utf8(first)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|&pid: &i32| pid > 0)
}

/// Returns true if and only if some process holds a lock on the pidfile right now.
///
/// Probing takes a shared lock for an instant, which would make a keeper's
/// `try_lock` fail at that instant: only callers holding the daemon's
/// [`OperationLock`] may probe, because keepers are started under it.
pub(crate) fn is_locked(path: &Path) -> bool {
    let Ok(file) = open_nofollow(path) else {
        return false;
    };
    fs2::FileExt::try_lock_shared(&file).is_err()
}

/// The processes that hold a lock on the file at `path` now, as `/proc/locks` shows
/// them (waiters left out), without taking any lock: readers may ask.
pub(crate) fn lock_holders(path: &Path) -> Vec<i32> {
    match open_nofollow(path) {
        Ok(file) => holders_of(&file),
        Err(_) => Vec::new(),
    }
}

/// The holders of locks on the open `file`, from `/proc/locks`.
fn holders_of(file: &File) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = file.metadata() else {
        return Vec::new();
    };
    let wanted = format!(
        "{:02x}:{:02x}:{}",
        libc::major(meta.dev()),
        libc::minor(meta.dev()),
        meta.ino()
    );
    let Ok(table) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = table
        .lines()
        .filter_map(|line| {
            // `1: FLOCK  ADVISORY  WRITE 1234 00:2a:56789 0 EOF`; a waiter has `->`
            // before its type.
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(1) == Some(&"->") || fields.get(5) != Some(&wanted.as_str()) {
                return None;
            }
            fields.get(4)?.parse().ok().filter(|&pid: &i32| pid > 0)
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The processes that hold the lock on `path`, for an error message: `pid 1234
/// (sleep, uid 65534)`, or `holder unknown`.
pub(crate) fn describe_holders(path: &Path) -> String {
    let holders: Vec<String> = lock_holders(path)
        .into_iter()
        .map(describe_holder)
        .collect();
    match holders.is_empty() {
        true => "holder unknown".into(),
        false => holders.join(", "),
    }
}

/// `pid 1234 (sleep, uid 65534)`: a lock holder, for an error message.
pub(crate) fn describe_holder(pid: i32) -> String {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let comm = crate::text::escape(comm.trim_end()).into_owned();
    match owner_of(pid) {
        Some(uid) if !comm.is_empty() => format!("pid {pid} ({comm}, uid {uid})"),
        Some(uid) => format!("pid {pid} (uid {uid})"),
        None => format!("pid {pid}"),
    }
}

/// The user that owns the process `pid`, if it lives.
fn owner_of(pid: i32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

/// Removes a pidfile that no live keeper holds; returns true if one was removed.
/// Callers hold the daemon's [`OperationLock`].
pub(crate) fn remove_stale(path: &Path) -> bool {
    match LockedPidfile::try_lock(path) {
        Ok(locked) => {
            locked.remove();
            true
        }
        Err(_) => false,
    }
}

/// The per-daemon lock that serialises `start`, `stop` and `restart` of one daemon
/// (`RUN_DIR/NAME.lock`). Readers never take it.
#[derive(Debug)]
pub(crate) struct OperationLock {
    _file: File,
}

impl OperationLock {
    /// Takes the lock, waiting for a concurrent operation on the same daemon. A lock
    /// held by a process of another user (who could open the file) is waited for
    /// [`FOREIGN_PATIENCE`] only; the error names that process, so that nobody can
    /// make `start` or `stop` hang (issue 22, finding 1).
    pub(crate) fn acquire(path: &Path) -> Result<OperationLock, Error> {
        let (dir, name) = open_parent(path)?;
        // Only its user needs the file: another user who can open it can lock it.
        let file = create_in(&dir, &name, path, 0o600, "open the operation lock")?;
        // One an older dmgr made readable by everyone is closed to them now.
        if file
            .metadata()
            .is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
        {
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
        }
        let began = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match fs2::FileExt::try_lock_exclusive(&file) {
                Ok(()) => return Ok(OperationLock { _file: file }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(source) => {
                    return Err(Error::Io {
                        action: "lock",
                        path: path.to_path_buf(),
                        source,
                    })
                }
            }
            let holders = holders_of(&file);
            let me = crate::files::euid();
            let foreign = holders
                .iter()
                .copied()
                .find(|&pid| owner_of(pid).is_some_and(|uid| uid != me));
            let patience = match (foreign, holders.is_empty()) {
                (Some(_), _) => FOREIGN_PATIENCE,
                (None, true) => UNKNOWN_PATIENCE,
                (None, false) => Duration::MAX,
            };
            if began.elapsed() >= patience {
                let who = match foreign {
                    Some(pid) => describe_holder(pid),
                    None => "a process that /proc/locks does not show".to_string(),
                };
                return Err(Error::Io {
                    action: "lock",
                    path: path.to_path_buf(),
                    source: io::Error::other(format!(
                        "held for {}s by {who}, which is no dmgr of this user; stop that process",
                        began.elapsed().as_secs()
                    )),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

/// The trusted directory that holds `path` (created if missing) and the file's name
/// in it.
fn open_parent(path: &Path) -> Result<(TrustedDir, OsString), Error> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::Io {
            action: "use",
            path: path.to_path_buf(),
            source: io::Error::other("it names no file in a directory"),
        });
    };
    let dir = TrustedDir::open(dir, true, LastLink::Refuse)?;
    Ok((dir, name.to_os_string()))
}

fn open_nofollow(path: &Path) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    options.read(true);
    crate::files::open_planted_safe(&mut options, path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// Opens (creating, with `mode`) a pidfile or lock `name` in `dir` for writing;
/// `action` names which in the error ("open the operation lock"), so that a read-only
/// run directory is reported as what it stops.
fn create_in(
    dir: &TrustedDir,
    name: &OsStr,
    path: &Path,
    mode: u32,
    action: &'static str,
) -> Result<File, Error> {
    dir.open_file(name, OFlag::O_RDWR | OFlag::O_CREAT, mode)
        .map_err(|source| Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs;

    #[test]
    fn lock_is_exclusive_and_removal_unlinks_before_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/web.pid");
        let mut held = LockedPidfile::try_lock(&path).unwrap();
        held.write_pid(1234).unwrap();
        assert_eq!(read_pid(&path), Some(1234));
        assert!(matches!(
            LockedPidfile::try_lock(&path),
            Err(LockError::Held)
        ));
        assert!(is_locked(&path));
        assert_eq!(lock_holders(&path), [std::process::id() as i32]);
        held.remove();
        assert!(!path.exists());
        assert!(LockedPidfile::try_lock(&path).is_ok());
    }

    #[test]
    fn symlinked_pidfile_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        fs::write(&target, "precious").unwrap();
        let path = dir.path().join("web.pid");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(matches!(
            LockedPidfile::try_lock(&path),
            Err(LockError::Io(_))
        ));
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
    }

    #[test]
    fn symlinked_run_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("elsewhere");
        fs::create_dir(&real).unwrap();
        let link = dir.path().join("run");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(LockedPidfile::try_lock(&link.join("web.pid")).is_err());
        assert!(LockedPidfile::try_lock(&dir.path().join("new/run/web.pid")).is_ok());
    }

    #[test]
    fn garbage_pidfiles_read_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.pid");
        for text in ["", "abc", "-5", "0", "99999999999999", "\n42\n"] {
            fs::write(&path, text).unwrap();
            assert_eq!(read_pid(&path), None, "{text:?}");
        }
        fs::write(&path, "4242\n/srv/pg/data\n1700000000\n5432\n").unwrap();
        assert_eq!(
            read_pid(&path),
            Some(4242),
            "the first line of postmaster.pid"
        );
    }
}

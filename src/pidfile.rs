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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::Error;

/// A pidfile this process holds the exclusive lock on.
#[derive(Debug)]
pub struct LockedPidfile {
    file: File,
    path: PathBuf,
}

/// Why a pidfile could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock.
    Held,
    /// The file could not be opened or locked.
    Io(Error),
}

impl LockedPidfile {
    /// Opens (creating) and locks the pidfile without waiting.
    pub fn try_lock(path: &Path) -> Result<LockedPidfile, LockError> {
        create_parent(path).map_err(LockError::Io)?;
        // A successor may unlink and recreate the file between our open and our lock;
        // a handful of tries is plenty, as each retry means another process made
        // progress.
        for _ in 0..8 {
            let file = create_nofollow(path, "open the pidfile").map_err(LockError::Io)?;
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
            if is_same_file(&file, path) {
                return Ok(LockedPidfile {
                    file,
                    path: path.to_path_buf(),
                });
            }
        }
        Err(LockError::Held)
    }

    /// Replaces the content with `pid` and a newline.
    pub fn write_pid(&mut self, pid: i32) -> Result<(), Error> {
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
    pub fn clear(&mut self) {
        let _ = self.file.set_len(0);
    }

    /// The pidfile's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unlinks the pidfile, then releases the lock by closing it, in that order.
    pub fn remove(self) {
        if is_same_file(&self.file, &self.path) {
            let _ = fs::remove_file(&self.path);
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
pub struct OperationLock {
    _file: File,
}

impl OperationLock {
    /// Takes the lock, waiting for a concurrent operation on the same daemon.
    pub fn acquire(path: &Path) -> Result<OperationLock, Error> {
        create_parent(path)?;
        let file = create_nofollow(path, "open the operation lock")?;
        fs2::FileExt::lock_exclusive(&file).map_err(|source| Error::Io {
            action: "lock",
            path: path.to_path_buf(),
            source,
        })?;
        Ok(OperationLock { _file: file })
    }
}

/// Creates the directory that will hold `path` (see [`secure_dir`]).
pub(crate) fn create_parent(path: &Path) -> Result<(), Error> {
    match path.parent() {
        Some(dir) => secure_dir(dir),
        None => Ok(()),
    }
}

/// Creates `dir` (and its parents) with mode 0755 if it is missing, then checks that
/// it is a real directory, not a symlink, owned by us, and, when we are root, owned
/// by root and not writable by group or others: otherwise another user could plant
/// or swap the files dmgr creates in it.
pub(crate) fn secure_dir(dir: &Path) -> Result<(), Error> {
    let refuse = |why: String| Error::Io {
        action: "use the directory",
        path: dir.to_path_buf(),
        source: io::Error::other(why),
    };
    if fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|source| Error::Io {
                action: "create the directory",
                path: dir.to_path_buf(),
                source,
            })?;
    }
    let meta = fs::symlink_metadata(dir).map_err(|source| Error::Io {
        action: "inspect the directory",
        path: dir.to_path_buf(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(refuse(
            "it is a symlink, which dmgr refuses to follow".into(),
        ));
    }
    if !meta.is_dir() {
        return Err(refuse("it is not a directory".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(refuse(format!(
            "it is owned by uid {}, not by uid {me}; remove it or pass another --run-dir",
            meta.uid()
        )));
    }
    if me == 0 && meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0 {
        return Err(refuse(
            "it is writable by group or others; run `chmod go-w` on it".into(),
        ));
    }
    Ok(())
}

use std::os::unix::fs::DirBuilderExt;

fn open_nofollow(path: &Path) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    options.read(true);
    crate::files::open_planted_safe(&mut options, path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// Opens (creating) a pidfile or lock for writing; `action` names which in the error
/// ("open the operation lock"), so that a read-only run directory is reported as
/// what it stops.
fn create_nofollow(path: &Path, action: &'static str) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).mode(0o644);
    crate::files::open_planted_safe(&mut options, path).map_err(|source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    })
}

fn is_same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(secure_dir(&link).is_err());
        assert!(LockedPidfile::try_lock(&link.join("web.pid")).is_err());
        assert!(secure_dir(&dir.path().join("new/run")).is_ok());
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

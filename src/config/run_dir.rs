//! What a call checks of its run directory before it reads anything in it: that it
//! can be trusted (see [`crate::trusted_dir`]), and that it belongs to this call's
//! config directory.
//!
//! A run directory belongs to one config directory: the first call that starts a
//! keeper there writes the config directory's path into `RUN_DIR/config-dir`, and
//! every later call with another config directory is refused (issue 22, finding 11).
//! Two config directories sharing one run directory (a global `DMGR_RUN_DIR`) would
//! each take the other's daemons for orphans: B's `apply` stopped A's daemon, B's
//! `list` called it orphaned. A run directory without the file (made by an older
//! dmgr) is claimed by the first call that starts something there.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

use super::Dirs;
use crate::trusted_dir::{LastLink, TrustedDir};
use crate::Error;

/// The file in a run directory that names the config directory it belongs to.
pub const OWNER_FILE: &str = "config-dir";

impl Dirs {
    /// Checks the run directory, if there is one yet, before anything in it is read:
    /// as root, it and every directory above it must be root's alone, or a record
    /// planted there by another user would be acted on (issue 22, finding 1); and it
    /// must not belong to another config directory.
    pub fn check_run_dir(&self) -> Result<(), Error> {
        if std::fs::symlink_metadata(&self.run_dir).is_err() {
            return Ok(());
        }
        let dir = self.open_run_dir(false)?;
        match read_owner(&dir) {
            Some(owner) if owner != self.owner() => Err(self.foreign(&owner)),
            _ => Ok(()),
        }
    }

    /// Checks the run directory as [`Dirs::check_run_dir`] does, creating it if
    /// needed, and claims it for this config directory if no config directory has
    /// yet: for the commands that start keepers there. Only an existing config
    /// directory claims one, and a claim that cannot be written (a read-only or full
    /// disk) is not made: what fails then is the operation, which says why.
    pub fn claim_run_dir(&self) -> Result<(), Error> {
        if !self.config_dir.is_dir() {
            return self.check_run_dir();
        }
        let dir = self.open_run_dir(true)?;
        let mine = self.owner();
        if let Some(owner) = read_owner(&dir) {
            return match owner == mine {
                true => Ok(()),
                false => Err(self.foreign(&owner)),
            };
        }
        // Written whole under another name, then linked into place: link(2) fails if
        // the name exists, so of two first calls at once, one claims it and the other
        // reads the claim.
        let temporary = format!(".{OWNER_FILE}.{}.tmp", std::process::id());
        let temporary = OsStr::new(&temporary);
        let mut bytes = mine.into_os_string().into_vec();
        bytes.push(b'\n');
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC;
        let written = dir.open_file(temporary, flags, 0o644).and_then(|mut file| {
            std::io::Write::write_all(&mut file, &bytes)?;
            file.sync_data()
        });
        let linked = written.and_then(|()| dir.link(temporary, OsStr::new(OWNER_FILE)));
        let _ = dir.remove(temporary);
        match linked {
            Ok(()) => {
                let _ = dir.sync();
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match read_owner(&dir) {
                Some(owner) if owner != self.owner() => Err(self.foreign(&owner)),
                _ => Ok(()),
            },
            Err(_) => Ok(()),
        }
    }

    /// The run directory, opened as a trusted directory, or why it cannot be used.
    fn open_run_dir(&self, create: bool) -> Result<TrustedDir, Error> {
        TrustedDir::open(&self.run_dir, create, LastLink::Refuse).map_err(|err| Error::RunDir {
            path: self.run_dir.clone(),
            reason: match err {
                Error::Io { source, .. } => format!("cannot be used: {source}"),
                other => other.to_string(),
            },
            hint: format!(
                "nothing in it was read; give dmgr a directory that only {} can write \
                 (--run-dir DIR or DMGR_RUN_DIR)",
                if crate::files::euid() == 0 {
                    "root"
                } else {
                    "you"
                }
            ),
        })
    }

    /// The config directory as the owner file names it: its canonical path, so that
    /// a symlink to it or a relative `--config-dir` is the same directory.
    fn owner(&self) -> PathBuf {
        std::fs::canonicalize(&self.config_dir).unwrap_or_else(|_| self.config_dir.clone())
    }

    /// The error for a run directory that belongs to the config directory `owner`.
    fn foreign(&self, owner: &Path) -> Error {
        Error::RunDir {
            path: self.run_dir.clone(),
            reason: format!(
                "belongs to the config directory {}, not to {}: two config directories \
                 sharing a run directory would take each other's daemons for orphans and \
                 stop them",
                crate::text::show_path(owner),
                crate::text::show_path(&self.owner())
            ),
            hint: format!(
                "give this config directory a run directory of its own: pass --run-dir, \
                 or unset DMGR_RUN_DIR for the default, which is one per config directory; \
                 if {} is gone for good, remove {}",
                crate::text::show_path(owner),
                crate::text::show_path(&self.run_dir.join(OWNER_FILE))
            ),
        }
    }
}

/// The config directory named by the run directory's owner file, if it has one.
fn read_owner(dir: &TrustedDir) -> Option<PathBuf> {
    let mut file = dir
        .open_file(OsStr::new(OWNER_FILE), OFlag::O_RDONLY, 0)
        .ok()?;
    let mut bytes = Vec::new();
    file.by_ref().take(64 * 1024).read_to_end(&mut bytes).ok()?;
    let line = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    (!line.is_empty()).then(|| PathBuf::from(OsStr::from_bytes(line)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(root: &Path, config: &str) -> Dirs {
        let config_dir = root.join(config);
        std::fs::create_dir_all(&config_dir).unwrap();
        Dirs {
            config_dir,
            run_dir: root.join("run"),
            log_dir: root.join("run/log"),
        }
    }

    #[test]
    fn a_run_directory_is_claimed_by_the_first_config_directory_and_refused_to_others() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (dirs(root.path(), "a"), dirs(root.path(), "b"));
        assert!(a.check_run_dir().is_ok(), "no run directory yet");
        a.claim_run_dir().unwrap();
        a.claim_run_dir().unwrap();
        a.check_run_dir().unwrap();
        let owner = std::fs::read_to_string(root.path().join("run/config-dir")).unwrap();
        assert_eq!(owner, format!("{}\n", a.owner().display()));
        for err in [
            b.check_run_dir().unwrap_err(),
            b.claim_run_dir().unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(text.contains("belongs to the config directory"), "{text}");
            assert!(err.hint().unwrap().contains("--run-dir"));
        }
        // The same directory through a symlink is the same owner.
        std::os::unix::fs::symlink(root.path().join("a"), root.path().join("link")).unwrap();
        let link = Dirs {
            config_dir: root.path().join("link"),
            ..a.clone()
        };
        link.claim_run_dir().unwrap();
        // An old run directory without the file is claimed by the first that starts.
        std::fs::remove_file(root.path().join("run/config-dir")).unwrap();
        b.check_run_dir().unwrap();
        b.claim_run_dir().unwrap();
        assert!(a.check_run_dir().is_err());
        let names: Vec<_> = std::fs::read_dir(root.path().join("run"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OWNER_FILE], "a temporary file was left");
    }
}

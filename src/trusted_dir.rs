//! Directories dmgr writes into (the run directory, log directories, pidfile
//! directories), opened so that no other user can redirect what dmgr does in them.
//!
//! As root, a directory is trusted when it and every directory above it up to `/`
//! belongs to root and cannot be written by group or others, as sshd's `StrictModes`
//! and sudo check the path to a file they are about to trust: whoever can write a
//! directory on the way can rename an entry below it and put a symlink or a directory
//! of their own in its place (issue 22, findings 1 and 4). The directory itself must
//! not be writable by group or others even when it is sticky (`/tmp`'s mode 1777):
//! others could still create the files dmgr reads (a forged state record) or hold
//! their locks. A sticky directory above it is let through, because in a sticky
//! directory only an entry's owner (and the directory's) can rename or remove that
//! entry (rename(2), unlink(2): `EPERM`), and every entry on the way must belong to
//! root anyway: `/tmp/x/run` is trusted when `/tmp/x` and `/tmp/x/run` are root's.
//!
//! The walk opens each component relative to the one above it with `O_NOFOLLOW` and
//! `O_DIRECTORY` (openat(2)) and checks what it opened (fstat(2)), so the directory
//! checked is the directory used: no path is resolved twice. Files below a
//! [`TrustedDir`] are then opened, renamed and removed relative to its descriptor,
//! never by a path that someone could change between a check and a use. A symlink
//! on the way is followed only where it lies in a directory already found trusted
//! (only root could have put it there; in a sticky directory it must also belong to
//! root, as `fs.protected_symlinks` requires), at most 40 of them, as the kernel does.
//!
//! Other users than root get the check that was always there: the directory itself
//! belongs to them (or to root). Their own files are what is at stake, and a home
//! directory shared with a group is common.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

use crate::Error;

/// How many symlinks one walk follows at most (the kernel's own limit).
const MAX_SYMLINKS: usize = 40;

/// What the walk does when the directory's own last component is a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LastLink {
    /// Refuse it: the run directory (dmgr(1) has always said so).
    Refuse,
    /// Follow it where a symlink may be followed: a log directory.
    Follow,
}

/// A directory opened by [`TrustedDir::open`], and the files below it, by name.
#[derive(Debug)]
pub(crate) struct TrustedDir {
    fd: OwnedFd,
}

/// One directory the walk went through.
struct Step {
    fd: OwnedFd,
    stat: FileStat,
    path: PathBuf,
}

impl TrustedDir {
    /// Opens the directory `path` (absolute), creating missing components with mode
    /// 0755 when `create` is set, and checks it and every directory above it (see the
    /// module documentation). The error names the directory that is not trusted and
    /// what to do about it.
    pub(crate) fn open(path: &Path, create: bool, last: LastLink) -> Result<TrustedDir, Error> {
        let refuse = |why: String| Error::Io {
            action: "use the directory",
            path: path.to_path_buf(),
            source: io::Error::other(why),
        };
        let os = |action: &'static str, at: &Path, errno: Errno| Error::Io {
            action,
            path: at.to_path_buf(),
            source: io::Error::from(errno),
        };
        if !path.is_absolute() {
            return Err(refuse("it is not an absolute path".into()));
        }
        let root_fd = nix::fcntl::open("/", path_flags(), Mode::empty())
            .map_err(|e| os("open", Path::new("/"), e))?;
        let root_stat =
            nix::sys::stat::fstat(&root_fd).map_err(|e| os("inspect", Path::new("/"), e))?;
        let mut stack = vec![Step {
            fd: root_fd,
            stat: root_stat,
            path: PathBuf::from("/"),
        }];
        check_component(&stack[0], path == Path::new("/")).map_err(refuse)?;
        let mut todo: Vec<OsString> = components(path);
        todo.reverse();
        let mut links = 0;
        while let Some(name) = todo.pop() {
            let is_last = todo.is_empty();
            if name == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let Some(current) = stack.last() else {
                break;
            };
            let here = current.path.join(&name);
            let opened =
                nix::fcntl::openat(&current.fd, name.as_os_str(), path_flags(), Mode::empty());
            let fd = match opened {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    let mode = Mode::from_bits_truncate(0o755);
                    match nix::sys::stat::mkdirat(&current.fd, name.as_os_str(), mode) {
                        // Exactly 0755, whatever the caller's umask: a umask of 002
                        // would otherwise make a directory that the check refuses.
                        Ok(()) => {
                            let _ = nix::sys::stat::fchmodat(
                                &current.fd,
                                name.as_os_str(),
                                mode,
                                nix::sys::stat::FchmodatFlags::FollowSymlink,
                            );
                        }
                        Err(Errno::EEXIST) => {}
                        Err(e) => return Err(os("create the directory", &here, e)),
                    }
                    todo.push(name);
                    continue;
                }
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    let stat = nix::sys::stat::fstatat(
                        &current.fd,
                        name.as_os_str(),
                        AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| os("inspect", &here, e))?;
                    if !is_kind(&stat, SFlag::S_IFLNK) {
                        return Err(refuse(format!("{} is not a directory", here.display())));
                    }
                    if is_last && last == LastLink::Refuse {
                        return Err(refuse(
                            "it is a symlink, which dmgr refuses to follow".into(),
                        ));
                    }
                    may_follow(current, &stat, &here).map_err(refuse)?;
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(os("resolve", path, Errno::ELOOP));
                    }
                    let target = nix::fcntl::readlinkat(&current.fd, name.as_os_str())
                        .map_err(|e| os("read the symlink", &here, e))?;
                    let target = Path::new(&target);
                    if target.is_absolute() {
                        stack.truncate(1);
                    }
                    let mut more = components(target);
                    more.reverse();
                    todo.extend(more);
                    continue;
                }
                Err(e) => return Err(os("open the directory", &here, e)),
            };
            let stat = nix::sys::stat::fstat(&fd).map_err(|e| os("inspect", &here, e))?;
            let step = Step {
                fd,
                stat,
                path: here,
            };
            check_component(&step, is_last).map_err(refuse)?;
            stack.push(step);
        }
        let Some(last_step) = stack.pop() else {
            return Err(refuse("nothing to open".into()));
        };
        // The walk used O_PATH descriptors, which need no read permission on the
        // directories above; the directory itself is opened for real, for fsync(2).
        let fd = nix::fcntl::openat(
            &last_step.fd,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .unwrap_or(last_step.fd);
        Ok(TrustedDir { fd })
    }

    /// Opens the file `name` in the directory with `flags` (and `mode` when it is
    /// created): a symlink is refused (`O_NOFOLLOW`), and so is anything but a
    /// regular file (`O_NONBLOCK` keeps a FIFO from blocking the open).
    pub(crate) fn open_file(&self, name: &OsStr, flags: OFlag, mode: u32) -> io::Result<File> {
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let fd = nix::fcntl::openat(&self.fd, name, flags, Mode::from_bits_truncate(mode))
            .map_err(|e| match e {
                Errno::ELOOP => io::Error::other(crate::files::SYMLINK_REFUSED),
                Errno::ENXIO => io::Error::other(crate::files::NOT_REGULAR),
                other => io::Error::from(other),
            })?;
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(io::Error::other(crate::files::NOT_REGULAR));
        }
        Ok(file)
    }

    /// The status of the entry `name` itself (a symlink is not followed).
    pub(crate) fn stat(&self, name: &OsStr) -> io::Result<FileStat> {
        nix::sys::stat::fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(io::Error::from)
    }

    /// Renames the entry `from` to `to`, replacing `to` (never following it).
    pub(crate) fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        nix::fcntl::renameat(&self.fd, from, &self.fd, to).map_err(io::Error::from)
    }

    /// Swaps the entries `a` and `b` atomically (renameat2's `RENAME_EXCHANGE`);
    /// `EINVAL` where the file system cannot, `ENOENT` where one is missing.
    pub(crate) fn exchange(&self, a: &OsStr, b: &OsStr) -> io::Result<()> {
        nix::fcntl::renameat2(
            &self.fd,
            a,
            &self.fd,
            b,
            nix::fcntl::RenameFlags::RENAME_EXCHANGE,
        )
        .map_err(io::Error::from)
    }

    /// Gives the file `from` the second name `to`; fails (`AlreadyExists`) if `to`
    /// exists.
    pub(crate) fn link(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        nix::unistd::linkat(&self.fd, from, &self.fd, to, AtFlags::empty()).map_err(io::Error::from)
    }

    /// Makes the directory's entries durable (fsync(2) of the directory), so that a
    /// rename survives a crash of the host.
    pub(crate) fn sync(&self) -> io::Result<()> {
        nix::unistd::fsync(&self.fd).map_err(io::Error::from)
    }

    /// Removes the entry `name` (a file or a symlink, never what it points to).
    pub(crate) fn remove(&self, name: &OsStr) -> io::Result<()> {
        nix::unistd::unlinkat(&self.fd, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
            .map_err(io::Error::from)
    }

    /// Returns true if and only if the open `file` is the entry `name` of this
    /// directory now (same device and inode).
    pub(crate) fn holds(&self, name: &OsStr, file: &File) -> bool {
        match (nix::sys::stat::fstat(file.as_fd()), self.stat(name)) {
            (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
            _ => false,
        }
    }
}

/// The flags each directory on the way is opened with: `O_PATH` needs no read
/// permission (a non-root user may cross a directory of mode 0711).
fn path_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// The names in `path`, without `.` and the root.
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn is_kind(stat: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == kind
}

/// Why the directory `step` (the one asked for when `is_last`, else one above it)
/// cannot be trusted, if it cannot.
fn check_component(step: &Step, is_last: bool) -> Result<(), String> {
    let me = crate::files::euid();
    let (uid, mode) = (step.stat.st_uid, step.stat.st_mode);
    let shown = step.path.display();
    if me != 0 {
        if is_last && uid != me && uid != 0 {
            return Err(format!(
                "it is owned by uid {uid}, not by uid {me}; remove it or pass another --run-dir"
            ));
        }
        return Ok(());
    }
    if uid != 0 {
        let whose = if is_last {
            "it".to_string()
        } else {
            shown.to_string()
        };
        return Err(format!(
            "{whose} is owned by uid {uid}, not root, and dmgr runs as root: that user could \
             put files of their own (or, above it, a directory of their own) in its place; \
             run `chown root {shown}` or choose a directory that only root can write"
        ));
    }
    if mode & 0o022 != 0 {
        let sticky = mode & 0o1000 != 0;
        if is_last {
            return Err(format!(
                "it is writable by group or others (mode {:04o}){}, and dmgr runs as root: \
                 another user could plant the files dmgr reads there; run `chmod go-w {shown}` \
                 or choose a directory that only root can write",
                mode & 0o7777,
                if sticky { ", sticky or not" } else { "" }
            ));
        }
        if !sticky {
            return Err(format!(
                "{shown} is writable by group or others (mode {:04o}), and dmgr runs as root: \
                 another user could put a directory of their own in place of the one below it; \
                 run `chmod go-w {shown}` or choose a directory that only root can write",
                mode & 0o7777
            ));
        }
    }
    Ok(())
}

/// Why the symlink `link` (whose status is `stat`) in the trusted directory `parent`
/// may not be followed, if it may not.
fn may_follow(parent: &Step, stat: &FileStat, link: &Path) -> Result<(), String> {
    let me = crate::files::euid();
    let shared = parent.stat.st_mode & 0o022 != 0;
    if me == 0 && shared && stat.st_uid != 0 {
        return Err(format!(
            "{} is a symlink owned by uid {} in the shared directory {}, which dmgr refuses to follow",
            link.display(),
            stat.st_uid,
            parent.path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn creates_missing_directories_and_opens_files_below_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("a/b/run");
        let trusted = TrustedDir::open(&run, true, LastLink::Refuse).unwrap();
        assert!(run.is_dir());
        let file = trusted
            .open_file(OsStr::new("x"), OFlag::O_RDWR | OFlag::O_CREAT, 0o644)
            .unwrap();
        assert!(trusted.holds(OsStr::new("x"), &file));
        trusted.rename(OsStr::new("x"), OsStr::new("y")).unwrap();
        assert!(run.join("y").is_file());
        trusted.sync().unwrap();
        trusted.remove(OsStr::new("y")).unwrap();
        assert!(!run.join("y").exists());
        assert!(TrustedDir::open(&dir.path().join("missing"), false, LastLink::Refuse).is_err());
    }

    #[test]
    fn symlinked_files_below_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("victim"), "precious").unwrap();
        std::os::unix::fs::symlink(dir.path().join("victim"), dir.path().join("link")).unwrap();
        let trusted = TrustedDir::open(dir.path(), false, LastLink::Refuse).unwrap();
        let err = trusted
            .open_file(OsStr::new("link"), OFlag::O_WRONLY | OFlag::O_TRUNC, 0o644)
            .unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("victim")).unwrap(),
            "precious"
        );
    }

    #[test]
    fn a_symlinked_last_component_is_refused_or_followed_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(TrustedDir::open(&link, false, LastLink::Refuse).is_err());
        assert!(TrustedDir::open(&link, false, LastLink::Follow).is_ok());
        // A symlink above the directory, in a trusted directory, is followed.
        std::fs::create_dir(real.join("run")).unwrap();
        assert!(TrustedDir::open(&link.join("run"), false, LastLink::Refuse).is_ok());
    }

    /// As root: a directory writable by others is refused, sticky or not, and so is
    /// one below a directory others may write that is not sticky.
    #[test]
    fn as_root_shared_directories_and_their_children_are_refused() {
        if crate::files::euid() != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        let run = shared.join("run");
        std::fs::create_dir(&run).unwrap();
        chmod(&run, 0o755);
        for mode in [0o777, 0o1777, 0o775] {
            chmod(&shared, mode);
            let err = TrustedDir::open(&shared, false, LastLink::Refuse).unwrap_err();
            assert!(
                err.to_string().contains("writable by group or others"),
                "{err}"
            );
        }
        // Below a sticky directory (like /tmp): fine, only root can rename `run`.
        chmod(&shared, 0o1777);
        assert!(TrustedDir::open(&run, false, LastLink::Refuse).is_ok());
        // Below one that is not sticky: anyone could swap `run` for their own.
        chmod(&shared, 0o777);
        let err = TrustedDir::open(&run, false, LastLink::Refuse).unwrap_err();
        assert!(err.to_string().contains("shared is writable"), "{err}");
        // Owned by another user, above or at the directory.
        chmod(&shared, 0o755);
        nix::unistd::chown(&shared, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let err = TrustedDir::open(&run, false, LastLink::Refuse).unwrap_err();
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
    }
}

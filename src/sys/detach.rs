//! How keepers come to be: `dmgr start` execs one launcher (a fresh, single-threaded
//! `dmgr`), and the launcher forks one holder per daemon, which forks its keeper (the
//! classic double fork, its middle process staying on as the holder), each then
//! running Rust code without an exec of its own (see `launcher` and
//! `launcher::holder`). Also the fd hygiene of a process that inherits descriptors,
//! and the keeper's name in ps(1).

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::SingleThreaded;

/// Starts `exe args...` as the launcher, a direct child of the caller with its
/// standard streams on `/dev/null`, in a session of its own (a ^C at the terminal of
/// `dmgr start` cannot cut it short halfway), with the open-file limit `dmgr` found
/// at start-up, and with the descriptors `inherit` (opened close-on-exec) kept open
/// across the exec. The caller reaps the returned child.
pub(crate) fn spawn_launcher(
    exe: &Path,
    args: &[OsString],
    inherit: &[RawFd],
) -> io::Result<Child> {
    let limit = crate::files::original_fd_limit().map(|(soft, hard)| libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    });
    let inherit = inherit.to_vec();
    let mut command = Command::new(exe);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the forked child of a possibly multi-threaded
    // process and calls only setsid(2), fcntl(2) and setrlimit(2), which are
    // async-signal-safe, on values moved in before the fork (`inherit` is only read,
    // never allocated or freed, in the child).
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            for &fd in &inherit {
                // The notify pipes were opened close-on-exec; the launcher must
                // inherit them.
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            // The caller's open-file limit, which `dmgr` raised for itself.
            if let Some(limit) = &limit {
                libc::setrlimit(libc::RLIMIT_NOFILE, limit);
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Which side of [`fork`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forked {
    /// The caller, with the child's PID.
    Parent(i32),
    /// The child.
    Child,
}

/// fork(2) in a single-threaded process (the launcher, a keeper's holder), whose child
/// then runs on in ordinary Rust code: the launcher's child becomes a keeper's holder,
/// and the holder's child the keeper (see `launcher::holder`).
pub(crate) fn fork(_single: &SingleThreaded) -> io::Result<Forked> {
    // SAFETY: fork(2) in a single-threaded process (the witness `_single`): no other
    // thread can hold a lock or be mid-allocation, so the child may go on running
    // ordinary Rust code, as the parent does.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// The argument area the kernel set up at exec, where ps(1) and `/proc/PID/cmdline`
/// read a process's command line: `arg_start` and `arg_end` of `/proc/self/stat`
/// (fields 48 and 49, Linux 3.5). A fork has the same area at the same address, so the
/// launcher finds it once for every keeper.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArgumentArea {
    start: usize,
    len: usize,
}

impl ArgumentArea {
    /// This process's area; `None` where it cannot be read or is empty.
    pub(crate) fn find() -> Option<ArgumentArea> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold anything.
        let rest = &stat[stat.rfind(')')? + 2..];
        let mut fields = rest.split(' ').skip(48 - 3);
        let start: usize = fields.next()?.parse().ok()?;
        let end: usize = fields.next()?.parse().ok()?;
        let len = end.checked_sub(start).filter(|&len| len > 0)?;
        Some(ArgumentArea { start, len })
    }

    /// Sets every byte from `from` on to NUL. The launcher does it once before it
    /// forks: its argv names every keeper, and a keeper that blanked the whole area
    /// itself would copy each page of it (at N = 1000, about 30 KB a keeper), where
    /// now it writes only the prefix that holds its own title.
    pub(crate) fn blank_from(self, _single: &SingleThreaded, from: usize) {
        if from < self.len {
            // SAFETY: [start + from, start + len) is part of this process's argument
            // area, as in `set_title`; the area still ends in a NUL afterwards, and
            // every argv string that starts before `from` now ends at or before it.
            unsafe { std::ptr::write_bytes((self.start + from) as *mut u8, 0, self.len - from) };
        }
    }

    /// Rewrites the command line in place: the words of `args`, each ended by a NUL,
    /// then NULs (which ps drops) up to `prefix` bytes from the start. Bytes past
    /// `prefix` are left as they are, so they must have been blanked
    /// ([`ArgumentArea::blank_from`]); `args` longer than the area are cut short.
    pub(crate) fn set_title(self, _single: &SingleThreaded, args: &[OsString], prefix: usize) {
        let len = self.len;
        let mut title: Vec<u8> = Vec::with_capacity(prefix.min(len));
        for arg in args {
            title.extend_from_slice(arg.as_bytes());
            title.push(0);
        }
        title.resize(title.len().max(prefix).min(len), 0);
        // The area must end in a NUL, or the kernel reads on into the environment.
        if title.len() == len {
            title[len - 1] = 0;
        }
        // SAFETY: [start, start + title.len()) lies in this process's argument area:
        // the strings of argv, which the kernel copied onto the process's stack at
        // exec (a fork has them at the same address) and which stay mapped and
        // writable for its whole life. No Rust reference points into it: std and
        // glibc keep only raw `argv` pointers, which still point at NUL-terminated
        // bytes inside the area afterwards (it ends in a NUL), and argv[0] keeps its
        // place. The witness `_single` rules out another thread reading them meanwhile.
        unsafe {
            std::ptr::copy_nonoverlapping(title.as_ptr(), self.start as *mut u8, title.len());
        }
    }
}

/// Returns true if and only if `fd` is an open descriptor of this process. A raw
/// query of the descriptor table, with no Rust I/O: safe to call before `main`, while
/// std is not set up yet.
pub(crate) fn is_open_fd(fd: RawFd) -> bool {
    // SAFETY: fcntl(F_GETFD) only queries the descriptor table; an invalid number
    // gives EBADF and no effect.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Takes ownership of the inherited descriptor `fd`; `None` if it is not an open
/// descriptor. Marks it close-on-exec so the daemon never inherits it.
pub(crate) fn take_inherited_fd(fd: RawFd) -> Option<File> {
    if fd <= 2 {
        return None;
    }
    if !is_open_fd(fd) {
        return None;
    }
    // SAFETY: the fd is open (checked above) and nothing else in this freshly exec'd
    // process owns it: only the launcher knows its number, from argv, and it takes
    // each number once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    set_cloexec(owned.as_raw_fd());
    Some(File::from(owned))
}

/// Closes every descriptor above 2 except those in `keep`: whatever the caller of
/// `dmgr start` leaked without close-on-exec must not live on in the keepers.
pub(crate) fn close_inherited_fds(keep: &[RawFd]) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    for fd in fds {
        // SAFETY: the launcher has just been exec'd and is single-threaded; nothing in
        // it owns these inherited descriptors (the read_dir fd is already closed, and
        // a stale number only yields EBADF).
        unsafe { libc::close(fd) };
    }
}

/// Closes the file of each item of `items` that has one, then forgets the items
/// without freeing their memory. A keeper just forked from the launcher calls it on
/// the launcher's list of the other keepers' pipes: a free would write to each heap
/// page the list lies in, and every page written is copied into this keeper alone.
pub(crate) fn close_all_and_leak<T>(items: Vec<T>, file: impl Fn(&T) -> Option<&File>) {
    for item in &items {
        if let Some(file) = file(item) {
            // SAFETY: `items` owns this descriptor and is forgotten below, unused
            // after this loop: no `File` can close or use the number again.
            unsafe { libc::close(file.as_raw_fd()) };
        }
    }
    std::mem::forget(items);
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl(F_SETFD) on a descriptor we own changes only its flags.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_argument_area_of_this_process_holds_its_argv() {
        let area = ArgumentArea::find().expect("arg_start and arg_end in /proc/self/stat");
        let cmdline = std::fs::read("/proc/self/cmdline").unwrap();
        assert_eq!(area.len, cmdline.len());
    }
}

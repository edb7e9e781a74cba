//! Every `unsafe` call of dmgr: fork, setsid, exec set-up, fd hygiene and pidfd
//! signalling. The rest of the code sees a small safe API with spawn options as plain
//! data.
//!
//! Both spawns go through `std::process::Command`, which does the fork, reports exec
//! errors through its own close-on-exec pipe, and resets the signal mask and SIGPIPE
//! in the child. Our `pre_exec` closures add what it lacks. They run in the forked
//! child of a possibly multi-threaded process, so they make only async-signal-safe
//! calls (signal-safety(7)): raw `libc` calls on data prepared before the fork, no
//! allocation, no locks, no Rust I/O.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::procinfo::ProcId;

/// Starts `exe args...` as a detached keeper with the classic double fork: the child
/// calls setsid(2) and forks again; the grandchild, no session leader and so never
/// able to acquire a controlling terminal, execs the keeper while the child exits at
/// once. Standard streams are `/dev/null`. `notify` stays open across the exec.
///
/// Returns once the keeper has been exec'd (or exec failed) and the middle process
/// has been reaped.
pub fn spawn_keeper(exe: &Path, args: &[OsString], notify: BorrowedFd<'_>) -> io::Result<()> {
    let notify_fd = notify.as_raw_fd();
    let limit = crate::files::original_fd_limit().map(|(soft, hard)| libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    });
    let mut command = Command::new(exe);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure only calls setsid(2), fork(2), _exit(2), fcntl(2) and
    // setrlimit(2), all async-signal-safe, on values captured by copy before the fork. The middle
    // process leaves with `_exit`, skipping atexit handlers and Rust destructors that
    // belong to the parent. fork(2) in the child of a multi-threaded parent is safe
    // here because the child is single-threaded and glibc re-initialised its fork
    // locks in it; the grandchild returns into std, which only execs.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            match libc::fork() {
                -1 => return Err(io::Error::last_os_error()),
                0 => {}
                _ => libc::_exit(0),
            }
            // The notify pipe was opened close-on-exec; the keeper must inherit it.
            if libc::fcntl(notify_fd, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            // The caller's open-file limit, which `dmgr` raised for itself.
            if let Some(limit) = &limit {
                libc::setrlimit(libc::RLIMIT_NOFILE, limit);
            }
            Ok(())
        });
    }
    let mut middle = command.spawn()?;
    middle.wait()?;
    Ok(())
}

/// Takes ownership of the notify fd the keeper was started with; `None` if it is not
/// an open descriptor. Marks it close-on-exec so the daemon never inherits it.
pub fn take_inherited_fd(fd: RawFd) -> Option<File> {
    if fd <= 2 {
        return None;
    }
    // SAFETY: fcntl(F_GETFD) only queries the descriptor table; an invalid number
    // gives EBADF and no effect.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return None;
    }
    // SAFETY: the fd is open (checked above) and nothing else in this freshly exec'd
    // process owns it: the keeper is the only code that knows its number, from argv.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    set_cloexec(owned.as_raw_fd());
    Some(File::from(owned))
}

/// Closes every descriptor above 2 except those in `keep`: whatever the caller of
/// `dmgr start` leaked without close-on-exec must not live on in the keeper.
pub fn close_inherited_fds(keep: &[RawFd]) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    for fd in fds {
        // SAFETY: the keeper has just been exec'd and is single-threaded; nothing in it
        // owns these inherited descriptors (the read_dir fd is already closed, and a
        // stale number only yields EBADF).
        unsafe { libc::close(fd) };
    }
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl(F_SETFD) on a descriptor we own changes only its flags.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
}

/// Credentials to drop to before exec.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user ID.
    pub uid: u32,
    /// The primary group ID.
    pub gid: u32,
    /// The supplementary groups.
    pub groups: Vec<libc::gid_t>,
}

/// How to start a daemon process, as plain data.
#[derive(Debug)]
pub struct SpawnOptions<'a> {
    /// The absolute path of the program.
    pub program: &'a Path,
    /// argv, including argv\[0\].
    pub argv: &'a [String],
    /// The whole environment of the new process.
    pub env: &'a [(String, String)],
    /// The working directory.
    pub working_dir: &'a Path,
    /// The umask.
    pub umask: u32,
    /// Whom to run as, when dropping privileges.
    pub credentials: Option<&'a Credentials>,
    /// Where stdout goes; `None` inherits.
    pub stdout: Option<BorrowedFd<'a>>,
    /// Where stderr goes; `None` inherits.
    pub stderr: Option<BorrowedFd<'a>>,
    /// Whether the process gets a session (and process group) of its own.
    pub new_session: bool,
}

/// Starts a daemon process in a clean state: its own session and process group (when
/// asked), default dispositions for every signal, an empty signal mask, only fds 0-2,
/// stdin from `/dev/null`, the given umask, credentials and working directory.
pub fn spawn_daemon(options: &SpawnOptions<'_>) -> io::Result<u32> {
    let mut command = Command::new(options.program);
    command
        .arg0(options.argv.first().map_or("", String::as_str))
        .args(options.argv.iter().skip(1))
        .env_clear()
        .envs(options.env.iter().map(|(k, v)| (k, v)))
        .current_dir(options.working_dir)
        .stdin(Stdio::null());
    if let Some(fd) = options.stdout {
        command.stdout(Stdio::from(fd.try_clone_to_owned()?));
    }
    if let Some(fd) = options.stderr {
        command.stderr(Stdio::from(fd.try_clone_to_owned()?));
    }
    let new_session = options.new_session;
    let umask = options.umask as libc::mode_t;
    let credentials = options.credentials.cloned();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // calls (setsid, umask, setgroups, setgid, setuid, sigaction, sigprocmask) on data
    // that was allocated before the fork (`credentials` is moved in whole; reading
    // its Vec does not allocate). Order matters: supplementary groups and the gid
    // must change while we are still root, the uid last.
    unsafe {
        command.pre_exec(move || {
            if new_session && libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            libc::umask(umask);
            if let Some(creds) = &credentials {
                if libc::setgroups(creds.groups.len() as _, creds.groups.as_ptr()) == -1
                    || libc::setgid(creds.gid) == -1
                    || libc::setuid(creds.uid) == -1
                {
                    return Err(io::Error::last_os_error());
                }
            }
            reset_signals();
            Ok(())
        });
    }
    let child = command.spawn()?;
    Ok(child.id())
}

/// Restores the default disposition of every signal and empties the mask.
///
/// Through the raw rt_sigaction(2) system call rather than glibc's sigaction(3): glibc
/// refuses to touch the two real-time signals it reserves (32 and 33), yet a caller
/// may have left them ignored, and an ignored disposition survives exec.
///
/// # Safety
/// Async-signal-safe; meant for the child between fork and exec.
unsafe fn reset_signals() {
    // An all-zero kernel `struct sigaction` is SIG_DFL with no flags and an empty mask
    // on every architecture, whatever the field order; 32 bytes covers the largest
    // layout with an 8-byte signal set.
    let default = [0u64; 4];
    for signal in 1..=64 {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction(2) reads `default`, a live, fully initialised buffer at
        // least as large as the kernel's struct sigaction, and writes nothing (null
        // old-action pointer); 8 is the size of the kernel's signal set. A number the
        // kernel does not know only returns EINVAL.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                default.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            );
        }
    }
    // SAFETY: sigemptyset(3) and sigprocmask(2) are async-signal-safe; `empty` is a
    // stack value initialised by sigemptyset before use.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// A handle on one process that cannot be confused with a later process reusing its
/// PID: a pidfd where the kernel has them (Linux 5.3 and later), else the PID plus its
/// start time, checked before each use.
#[derive(Debug)]
pub struct ProcessHandle {
    id: ProcId,
    pidfd: Option<OwnedFd>,
}

impl ProcessHandle {
    /// Opens a handle on `target` if it is still that very process (same PID and start
    /// time); `None` if it is gone.
    pub fn open(target: ProcId) -> io::Result<Option<ProcessHandle>> {
        // SAFETY: pidfd_open(2) takes a PID and flags and returns a new descriptor or
        // -1; it touches no memory of ours.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, target.pid, 0) };
        let pidfd = if raw >= 0 {
            // SAFETY: `raw` is a new descriptor returned to us by pidfd_open and owned
            // by nobody else.
            Some(unsafe { OwnedFd::from_raw_fd(raw as RawFd) })
        } else {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ESRCH) => return Ok(None),
                Some(libc::ENOSYS) | Some(libc::EPERM) => None,
                _ => return Err(err),
            }
        };
        // With a pidfd open, the process it names cannot be replaced: if the start time
        // matches now, the pidfd refers to the process we mean for good.
        if !target.is_alive() {
            return Ok(None);
        }
        Ok(Some(ProcessHandle { id: target, pidfd }))
    }

    /// The process's identity.
    pub fn id(&self) -> ProcId {
        self.id
    }

    /// The pidfd, readable once the process has exited; `None` on old kernels.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(AsFd::as_fd)
    }

    /// Sends `signal`; `Ok(false)` if the process is gone.
    pub fn signal(&self, signal: i32) -> io::Result<bool> {
        let result = match &self.pidfd {
            Some(pidfd) => {
                // SAFETY: pidfd_send_signal(2) with a valid pidfd, a signal number, a
                // null siginfo and no flags reads no memory of ours.
                let rc = unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        pidfd.as_raw_fd(),
                        signal,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    )
                };
                if rc == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            }
            None if !self.id.is_alive() => return Ok(false),
            None => {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.id.pid), signal_of(signal)?)
                    .map_err(io::Error::from)
            }
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Sends `signal` to the process `target`, but only if it is still that very process.
/// Returns `Ok(false)` if it is gone.
pub fn signal_process(target: ProcId, signal: i32) -> io::Result<bool> {
    match ProcessHandle::open(target)? {
        Some(handle) => handle.signal(signal),
        None => Ok(false),
    }
}

fn signal_of(signal: i32) -> io::Result<Option<nix::sys::signal::Signal>> {
    if signal == 0 {
        return Ok(None);
    }
    nix::sys::signal::Signal::try_from(signal)
        .map(Some)
        .map_err(io::Error::from)
}

/// Resolves `program` the way execvp(3) would, with the daemon's `PATH`.
pub fn resolve_program(program: &str, path_var: Option<&str>) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path_var = path_var.unwrap_or("/usr/local/bin:/usr/bin:/bin");
    path_var
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Returns freed heap pages to the kernel. The keeper allocates most of what it ever
/// needs while parsing arguments and its file, then idles for days: without this,
/// those freed pages stay resident in every keeper.
pub fn release_free_memory() {
    // SAFETY: malloc_trim(3) only walks glibc's own allocator state under its lock and
    // releases free pages; it has no preconditions.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}

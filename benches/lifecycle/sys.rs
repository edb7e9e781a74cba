//! The few raw system calls the bench makes, each behind a safe function.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A pidfd for `pid` (Linux 5.3+).
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a PID and flags by value and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sends `signal` to the process a pidfd refers to.
pub fn pidfd_send_signal(fd: &OwnedFd, signal: i32) -> io::Result<()> {
    // SAFETY: a valid fd, a signal number, a null siginfo (allowed) and no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until `fd` is readable (a pidfd: its process has exited) or `ms` pass.
pub fn poll_readable(fd: &impl AsRawFd, ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, and its count.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc >= 0 {
            return Ok(rc > 0);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Tries a lock on an open file without blocking; `Ok(false)` if another holds it.
pub fn try_flock(fd: &impl AsRawFd, operation: i32) -> io::Result<bool> {
    // SAFETY: flock on an fd the caller keeps open for the duration of the call.
    if unsafe { libc::flock(fd.as_raw_fd(), operation | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// Sends `signal` to a PID; errors (it is gone) are ignored.
pub fn kill(pid: i32, signal: i32) {
    if pid > 1 {
        // SAFETY: kill(2) takes plain integers; a positive PID > 1 addresses one process.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Sends `signal` to a process group; errors are ignored.
pub fn killpg(pgrp: i32, signal: i32) {
    if pgrp > 1 {
        // SAFETY: killpg(3) takes plain integers; pgrp > 1 never means "every process".
        unsafe { libc::killpg(pgrp, signal) };
    }
}

/// A close-on-exec pipe: (read end, raw write end kept open for good).
pub fn pipe_cloexec() -> io::Result<(OwnedFd, i32)> {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 writes two fds into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok((unsafe { OwnedFd::from_raw_fd(fds[0]) }, fds[1]))
}

/// The kernel's clock tick rate (`USER_HZ`).
pub fn clock_ticks_per_sec() -> i64 {
    // SAFETY: sysconf takes a constant and returns a value.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }
}

/// Raises the soft open-file limit to the hard one.
pub fn raise_nofile_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass; setrlimit reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Makes this process a child subreaper: orphans below it are reparented to it.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reaps any child, blocking; returns its PID and wait status.
pub fn wait_any() -> io::Result<(i32, i32)> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status into the int we pass.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid > 0 {
            return Ok((pid, status));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Formats `n` in decimal into `buf` and returns the length; no allocation, so it
/// may run between fork and exec.
pub fn format_decimal(mut n: u32, buf: &mut [u8; 16]) -> usize {
    let mut tmp = [0u8; 16];
    let mut len = 0;
    loop {
        tmp[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[i] = tmp[len - 1 - i];
    }
    buf[len] = b'\n';
    len + 1
}

/// In the child of a fork, before exec: `setsid`, fork again (the first child
/// `_exit`s), then lock `pidfile` exclusively and write our PID into it. The lock's
/// fd is left open, without close-on-exec, so the exec'd program holds the lock.
///
/// # Safety
///
/// Only to be called between fork and exec (a `pre_exec` closure): it calls
/// `_exit` in the first child. It allocates nothing and makes only
/// async-signal-safe calls (signal-safety(7)).
pub unsafe fn detach_and_lock(pidfile: &CStr) -> io::Result<()> {
    // SAFETY: setsid, fork, _exit, open, flock, getpid, ftruncate and write are all
    // async-signal-safe; the path was built before the fork and the pid is
    // formatted into a stack buffer.
    unsafe {
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        match libc::fork() {
            -1 => return Err(io::Error::last_os_error()),
            0 => {}
            _ => libc::_exit(0),
        }
        let fd = libc::open(
            pidfile.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW,
            0o644,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 16];
        let len = format_decimal(libc::getpid() as u32, &mut buf);
        if libc::ftruncate(fd, 0) != 0 || libc::write(fd, buf.as_ptr().cast(), len) != len as isize
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

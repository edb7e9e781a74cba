//! Every `unsafe` call of dmgr: fork, setsid, exec set-up, fd hygiene and pidfd
//! signalling. The rest of the code sees a small safe API with spawn options as plain
//! data. `detach` makes the launcher and, by double forks, the keepers.
//!
//! Two kinds of child are made here. The launcher is spawned through
//! `std::process::Command` from a possibly multi-threaded `dmgr`, so its `pre_exec`
//! closure makes only async-signal-safe calls (signal-safety(7)): raw `libc` calls
//! on data prepared before the fork, no allocation, no locks, no Rust I/O. The keepers
//! and the daemons' and probes' processes are forked by single-threaded processes (the
//! launcher, a keeper), which a [`SingleThreaded`] witness proves; a keeper then runs
//! ordinary Rust code, while a daemon's process still makes only async-signal-safe
//! calls on memory prepared before the fork, until its exec.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

pub(crate) use detach::{
    close_all_and_leak, close_inherited_fds, fork, is_open_fd, spawn_launcher, take_inherited_fd,
    ArgumentArea, Forked,
};
pub(crate) use memory::{release_free_memory, release_mappings, PageBuffer};
#[allow(unused_imports)]
pub(crate) use notify_socket::{abstract_name, Datagram, NotifyAddress, NotifySocket};
pub(crate) use queue::{request_signal, with_request_signal};
pub(crate) use spawn::{spawn_gated, Credentials, Resources, SingleThreaded, SpawnOptions};
pub(crate) use spawn_step::{SpawnError, SpawnStep};

use crate::procinfo::ProcId;

mod child_calls;
mod detach;
mod memory;
pub(crate) mod notify_socket;
mod queue;
mod spawn;
mod spawn_step;
pub(crate) mod xattr;

/// A handle on one process that cannot be confused with a later process reusing its
/// PID: a pidfd where the kernel has them (Linux 5.3 and later), else the PID plus its
/// start time, checked before each use.
#[derive(Debug)]
pub(crate) struct ProcessHandle {
    id: ProcId,
    pidfd: Option<OwnedFd>,
}

impl ProcessHandle {
    /// Opens a handle on `target` if it is still that very process (same PID and start
    /// time); `None` if it is gone.
    pub(crate) fn open(target: ProcId) -> io::Result<Option<ProcessHandle>> {
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
    pub(crate) fn id(&self) -> ProcId {
        self.id
    }

    /// The pidfd, readable once the process has exited; `None` on old kernels.
    pub(crate) fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(AsFd::as_fd)
    }

    /// Sends `signal`; `Ok(false)` if the process is gone.
    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) -> io::Result<bool> {
        let result = match &self.pidfd {
            Some(pidfd) => {
                // SAFETY: pidfd_send_signal(2) with a valid pidfd, a signal number, a
                // null siginfo and no flags reads no memory of ours.
                let rc = unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        pidfd.as_raw_fd(),
                        signal as libc::c_int,
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
            None => nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.id.pid), signal)
                .map_err(io::Error::from),
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
pub(crate) fn signal_process(target: ProcId, signal: nix::sys::signal::Signal) -> io::Result<bool> {
    match ProcessHandle::open(target)? {
        Some(handle) => handle.signal(signal),
        None => Ok(false),
    }
}

/// Reads from `fd` into `buffer`'s spare capacity, which need not be initialised (so
/// only the pages the kernel writes are ever touched), and returns what was read.
pub(crate) fn read_spare<'a>(fd: BorrowedFd<'_>, buffer: &'a mut Vec<u8>) -> io::Result<&'a [u8]> {
    buffer.clear();
    let spare = buffer.spare_capacity_mut();
    // SAFETY: read(2) writes at most `spare.len()` bytes into `spare`, memory this
    // function holds exclusively through `buffer`.
    let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel initialised the first `n` bytes, `n <= capacity`.
    unsafe { buffer.set_len(n as usize) };
    Ok(buffer)
}

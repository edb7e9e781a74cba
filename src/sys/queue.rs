//! Signals that carry a value, as sigqueue(3) sends them: how `dmgr` marks its own
//! stop of a keeper (SIGTERM with a value) and asks a keeper for a reload (the request
//! signal), see `keeper::request`. The receiver reads the value, the sender's PID and
//! `SI_QUEUE` from its signalfd.

use std::io;
use std::os::fd::AsRawFd;

use nix::sys::signal::SigSet;

use super::ProcessHandle;

/// The real-time signal a keeper reads requests on: `SIGRTMIN + 2` as the C library
/// counts (glibc keeps the first two for itself). A keeper blocks it for its whole
/// life; a process that does not (an older keeper, `dmgr run`) would die of it, so the
/// sender checks first (`procinfo::blocks_signal`).
pub(crate) fn request_signal() -> i32 {
    libc::SIGRTMIN() + 2
}

/// `mask` with the request signal added.
pub(crate) fn with_request_signal(mask: &SigSet) -> SigSet {
    let mut raw: libc::sigset_t = *mask.as_ref();
    // SAFETY: sigaddset(3) writes into `raw`, a signal set we own, initialised as a
    // copy of a valid one; the signal number is a valid real-time signal.
    unsafe {
        libc::sigaddset(&mut raw, request_signal());
    }
    // SAFETY: `raw` is a valid, initialised signal set: a valid one plus one signal.
    unsafe { SigSet::from_sigset_t_unchecked(raw) }
}

/// `union sigval` as C declares it: the int sits at the union's first bytes on every
/// byte order.
#[repr(C)]
#[derive(Clone, Copy)]
union Value {
    int: libc::c_int,
    ptr: *mut libc::c_void,
}

/// The `_rt` member of the kernel's siginfo: sender, and value. Its pointer-sized
/// value gives it the alignment (8 on 64-bit hosts) that puts it where the kernel's
/// union of fields starts.
#[repr(C)]
#[derive(Clone, Copy)]
struct Rt {
    pid: libc::pid_t,
    uid: libc::uid_t,
    value: Value,
}

/// A siginfo of `SI_QUEUE`, as sigqueue(3) fills it in.
#[repr(C)]
#[derive(Clone, Copy)]
struct Queued {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    rt: Rt,
}

/// The siginfo handed to the kernel: [`Queued`] over the whole size it reads.
#[repr(C)]
union Info {
    queued: Queued,
    raw: libc::siginfo_t,
}

fn info(signal: i32, value: i32) -> Info {
    // SAFETY: an all-zero siginfo_t is valid (plain integers and a pointer).
    let mut info: Info = unsafe { std::mem::zeroed() };
    info.queued = Queued {
        signo: signal,
        errno: 0,
        code: libc::SI_QUEUE,
        rt: Rt {
            pid: std::process::id() as libc::pid_t,
            uid: nix::unistd::getuid().as_raw(),
            value: Value { int: value },
        },
    };
    info
}

impl ProcessHandle {
    /// Sends `signal` with `value`, as sigqueue(3) does (`SI_QUEUE`, with our PID);
    /// `Ok(false)` if the process is gone.
    pub(crate) fn queue(&self, signal: i32, value: i32) -> io::Result<bool> {
        let info = info(signal, value);
        let rc = match &self.pidfd {
            // SAFETY: pidfd_send_signal(2) with a valid pidfd reads the siginfo at
            // `&info`, a live, initialised buffer of siginfo_t's full size; no flags.
            Some(pidfd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    signal,
                    &info as *const Info,
                    0,
                )
            },
            None if !self.id.is_alive() => return Ok(false),
            // SAFETY: rt_sigqueueinfo(2) reads the siginfo at `&info` as above.
            None => unsafe {
                libc::syscall(
                    libc::SYS_rt_sigqueueinfo,
                    self.id.pid,
                    signal,
                    &info as *const Info,
                )
            },
        };
        if rc == 0 {
            return Ok(true);
        }
        match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            e => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value and sender land where the kernel's siginfo has them (`si_pid`,
    /// `si_value`), which libc's accessors read.
    #[test]
    fn the_siginfo_is_laid_out_as_the_kernels() {
        let info = info(libc::SIGTERM, 0x1234_5678);
        // SAFETY: `raw` covers the bytes `queued` initialised, and the rest are zero.
        let raw = unsafe { info.raw };
        assert_eq!(raw.si_signo, libc::SIGTERM);
        assert_eq!(raw.si_code, libc::SI_QUEUE);
        // SAFETY: the siginfo is of SI_QUEUE, whose fields these accessors read.
        unsafe {
            assert_eq!(raw.si_pid(), std::process::id() as libc::pid_t);
            #[cfg(target_endian = "little")]
            assert_eq!(raw.si_value().sival_ptr as usize as u32, 0x1234_5678);
        }
        assert_eq!(
            std::mem::size_of::<Info>(),
            std::mem::size_of::<libc::siginfo_t>()
        );
    }
}

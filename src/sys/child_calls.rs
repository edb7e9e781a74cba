//! Two calls the child of [`super::spawn`]'s fork makes between fork and exec, each
//! async-signal-safe and allocation-free: writing its own PID into a variable prepared
//! before the fork (`LISTEN_PID`, `WATCHDOG_PID`), and resetting every signal.

/// Room for a PID in decimal and the NUL after it.
pub(super) const PID_DIGITS: usize = 12;

/// Writes `pid` in decimal at `slot`, followed by a NUL: [`PID_DIGITS`] bytes at most.
///
/// # Safety
/// `slot` points at [`PID_DIGITS`] writable bytes. Async-signal-safe: no allocation.
pub(super) unsafe fn write_pid(slot: *mut u8, pid: libc::pid_t) {
    let mut digits = [0u8; PID_DIGITS];
    let mut n = pid.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 || len == PID_DIGITS - 1 {
            break;
        }
    }
    for i in 0..len {
        // SAFETY: `i` and `len` are below PID_DIGITS, the room at `slot`.
        unsafe { *slot.add(i) = digits[len - 1 - i] };
    }
    // SAFETY: as above.
    unsafe { *slot.add(len) = 0 };
}

/// Restores the default disposition of every signal and empties the mask.
///
/// Through the raw rt_sigaction(2) system call rather than glibc's sigaction(3): glibc
/// refuses to touch the two real-time signals it reserves (32 and 33), yet a caller
/// may have left them ignored, and an ignored disposition survives exec.
///
/// # Safety
/// Async-signal-safe; meant for the child between fork and exec.
pub(super) unsafe fn reset_signals() {
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

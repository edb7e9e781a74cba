//! The one way dmgr starts a daemon's (or a probe's, or a command's) process: fork in
//! a single-threaded process, set the child up with async-signal-safe calls only, hold
//! it at a start gate until the caller has recorded it, then exec.

use std::ffi::{CStr, CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::child_calls::{reset_signals, write_pid, PID_DIGITS};
use super::{SpawnError, SpawnStep};

/// How long a spawned process may take to get to its start gate, and from the gate
/// to its exec. Each is a few system calls, but a working directory or a program on a
/// hung network file system could block them for ever, and with them the keeper's
/// loop, which also answers `dmgr stop`: past the bound the process is killed and the
/// spawn fails.
const SPAWN_BOUND: Duration = Duration::from_secs(10);

/// What the child sets before exec (`limits`, `nice`, `oom_score_adj`), as plain values
/// checked beforehand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Resources {
    /// `(resource, value)` for setrlimit(2): soft and hard are the same.
    pub(crate) limits: Vec<(libc::__rlimit_resource_t, libc::rlim_t)>,
    /// The nice value for setpriority(2).
    pub(crate) nice: Option<libc::c_int>,
    /// The text written to `/proc/self/oom_score_adj` (`-500\n`), and its length.
    pub(crate) oom_score_adj: Option<([u8; 8], usize)>,
}

/// Credentials to drop to before exec.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    /// The user ID.
    pub(crate) uid: u32,
    /// The primary group ID.
    pub(crate) gid: u32,
    /// The supplementary groups.
    pub(crate) groups: Vec<libc::gid_t>,
}

/// How to start a daemon process, as plain data.
#[derive(Debug)]
pub(crate) struct SpawnOptions<'a> {
    /// The absolute path of the program.
    pub(crate) program: &'a Path,
    /// argv, including argv\[0\].
    pub(crate) argv: &'a [String],
    /// The whole environment of the new process.
    pub(crate) env: &'a [(OsString, OsString)],
    /// The working directory.
    pub(crate) working_dir: &'a Path,
    /// The umask.
    pub(crate) umask: u32,
    /// Whom to run as, when dropping privileges.
    pub(crate) credentials: Option<&'a Credentials>,
    /// Where stdout goes; `None` inherits.
    pub(crate) stdout: Option<BorrowedFd<'a>>,
    /// Where stderr goes; `None` inherits.
    pub(crate) stderr: Option<BorrowedFd<'a>>,
    /// Whether the process gets a session (and process group) of its own.
    pub(crate) new_session: bool,
    /// Whether stdin stays as it is (`dmgr run`) instead of `/dev/null`.
    pub(crate) keep_stdin: bool,
    /// Resource limits, nice value and OOM score to set, checked beforehand.
    pub(crate) resources: Option<&'a Resources>,
    /// Held sockets, passed at fds 3, 4, ... in this order; with any, the child sets
    /// `LISTEN_PID` to its own PID (systemd's socket-activation protocol; the caller
    /// puts `LISTEN_FDS` and `LISTEN_FDNAMES` in `env`).
    pub(crate) sockets: &'a [BorrowedFd<'a>],
    /// A variable the child sets to its own PID (`WATCHDOG_PID`), so that it names the
    /// process that execs the command, which the caller cannot know before the fork.
    pub(crate) pid_variable: Option<&'a str>,
    /// A descriptor the command gets at a number of its own (`ready = { fd = N }`'s
    /// pipe): `(descriptor, number)`; every other beyond 0-2 is closed at exec.
    pub(crate) pass_fd: Option<(BorrowedFd<'a>, RawFd)>,
}

/// The most sockets a process can be given (see `config::MAX_SOCKETS`).
const MAX_PASSED: usize = 64;

/// A daemon process that has been forked and set up, and waits at its start gate:
/// it execs the command only once [`Gated::release`] is called. If the keeper dies
/// first, the gate reads end-of-file and the child exits without ever running the
/// command, so no daemon runs that the keeper has not recorded.
#[derive(Debug)]
pub(crate) struct Gated {
    pid: i32,
    gate: Option<OwnedFd>,
    report: File,
}

/// The byte the child writes when it is set up and waits at the gate.
const READY: u8 = 0xff;

/// A witness that the process had a single thread when it was made, required by
/// [`spawn_gated`]: the child of a fork runs Rust code on memory prepared before it
/// (no exec between), which is sound only when no other thread could have held a
/// lock or been mid-allocation at the fork. It is neither `Send` nor `Sync`, so it
/// stays on the thread that checked; a process that starts threads later must not
/// keep one (the keeper never does; `dmgr run` and `reload` start none).
#[derive(Debug)]
pub(crate) struct SingleThreaded(std::marker::PhantomData<*const ()>);

impl SingleThreaded {
    /// The witness, if `/proc/self/task` lists exactly one thread now.
    pub(crate) fn check() -> Option<SingleThreaded> {
        let threads = std::fs::read_dir("/proc/self/task").ok()?.count();
        (threads == 1).then_some(SingleThreaded(std::marker::PhantomData))
    }
}

impl Gated {
    /// The child's PID.
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Opens the gate and waits until the child has exec'd (or failed to).
    pub(crate) fn release(mut self) -> Result<(), SpawnError> {
        if let Some(gate) = self.gate.take() {
            let _ = nix::unistd::write(&gate, b"g");
        }
        if !readable_within(&self.report, SPAWN_BOUND) {
            kill_hung(self.pid);
            return Err(SpawnError {
                step: SpawnStep::Exec,
                error: io::Error::other(format!(
                    "did not exec within {}s of its start gate, and was killed",
                    SPAWN_BOUND.as_secs()
                )),
            });
        }
        match read_report(&mut self.report) {
            None => Ok(()),
            Some(err) => Err(err),
        }
    }
}

/// Forks a daemon process and sets it up: its own session and process group (when
/// asked), stdin from `/dev/null`, stdout and stderr as given, the working directory,
/// umask, credentials, default dispositions for every signal and an empty mask. The
/// child then waits at its start gate. Only fds 0-2 survive the exec: everything the
/// keeper holds is close-on-exec.
pub(crate) fn spawn_gated(
    _single: &SingleThreaded,
    options: &SpawnOptions<'_>,
) -> Result<Gated, SpawnError> {
    let prep = |error: io::Error| SpawnError {
        step: SpawnStep::SetUp,
        error,
    };
    let cstring = |bytes: &[u8]| {
        CString::new(bytes)
            .map_err(|_| prep(io::Error::other("a NUL byte in the command or environment")))
    };
    // Everything the child needs is allocated here, before fork(2): the child makes
    // only async-signal-safe calls on these buffers.
    let program = cstring(options.program.as_os_str().as_bytes())?;
    let argv: Vec<CString> = options
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<Result<_, _>>()?;
    if options.sockets.len() > MAX_PASSED {
        return Err(prep(io::Error::other(format!(
            "{} sockets; at most {MAX_PASSED} can be passed",
            options.sockets.len()
        ))));
    }
    let envp: Vec<CString> = options
        .env
        .iter()
        .filter(|(k, _)| options.sockets.is_empty() || k != "LISTEN_PID")
        .map(|(k, v)| cstring(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    // `NAME=` and room for the PID the child writes in (zeros: an empty value until
    // then).
    let mut pid_variable: Vec<u8> = Vec::new();
    let pid_slot = match options.pid_variable {
        Some(name) => {
            if name.as_bytes().contains(&0) {
                return Err(prep(io::Error::other("a NUL byte in a variable's name")));
            }
            pid_variable.extend_from_slice(name.as_bytes());
            pid_variable.push(b'=');
            let at = pid_variable.len();
            pid_variable.resize(at + PID_DIGITS, 0);
            envp_ptrs.push(pid_variable.as_ptr().cast());
            // SAFETY: `at` is within the buffer, which lives (unmoved) until the fork.
            Some(unsafe { pid_variable.as_mut_ptr().add(at) })
        }
        None => None,
    };
    // `LISTEN_PID=` and room for the PID the child writes in, likewise.
    let mut listen_pid_variable: Vec<u8> = b"LISTEN_PID=".to_vec();
    let listen_pid = match options.sockets.is_empty() {
        true => None,
        false => {
            let at = listen_pid_variable.len();
            listen_pid_variable.resize(at + PID_DIGITS, 0);
            envp_ptrs.push(listen_pid_variable.as_ptr().cast());
            // SAFETY: `at` is within the buffer, which lives (unmoved) until the fork.
            Some(unsafe { listen_pid_variable.as_mut_ptr().add(at) })
        }
    };
    envp_ptrs.push(std::ptr::null());
    let mut sockets = [-1 as RawFd; MAX_PASSED];
    for (slot, fd) in sockets.iter_mut().zip(options.sockets) {
        *slot = fd.as_raw_fd();
    }
    let cwd = cstring(options.working_dir.as_os_str().as_bytes())?;
    let devnull = File::open("/dev/null").map_err(prep)?;
    let (gate_read, gate_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| prep(e.into()))?;
    let (report_read, mut report_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| prep(e.into()))?;
    // The child reports an exec failure after it placed the passed descriptor: the
    // report pipe must not sit at that number.
    if let Some((_, number)) = options.pass_fd {
        if report_write.as_raw_fd() == number {
            let moved = nix::fcntl::fcntl(
                &report_write,
                nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(number + 1),
            )
            .map_err(|e| prep(e.into()))?;
            // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
            report_write = unsafe { OwnedFd::from_raw_fd(moved) };
        }
    }
    let stdout = options.stdout.map_or(1, |fd| fd.as_raw_fd());
    let stderr = options.stderr.map_or(2, |fd| fd.as_raw_fd());
    let child = ChildPlan {
        new_session: options.new_session,
        devnull: if options.keep_stdin {
            0
        } else {
            devnull.as_raw_fd()
        },
        stdout,
        stderr,
        cwd: &cwd,
        umask: options.umask as libc::mode_t,
        credentials: options.credentials,
        resources: options.resources,
        gate: gate_read.as_raw_fd(),
        report: report_write.as_raw_fd(),
        pid_slot,
        pass_fd: options.pass_fd.map(|(fd, number)| (fd.as_raw_fd(), number)),
        parent_ends: [gate_write.as_raw_fd(), report_read.as_raw_fd()],
        program: &program,
        argv: &argv_ptrs,
        envp: &envp_ptrs,
        sockets: &sockets[..options.sockets.len()],
        listen_pid,
    };
    // SAFETY: fork(2) in a single-threaded process (the witness `_single`); in the child,
    // `run_child` makes only async-signal-safe calls on memory allocated above and
    // never returns (it execs or `_exit`s).
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        return Err(prep(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above; we are the child of a single-threaded process.
        unsafe { run_child(&child) }
    }
    drop(gate_read);
    drop(report_write);
    let mut report = File::from(report_read);
    if !readable_within(&report, SPAWN_BOUND) {
        kill_hung(pid);
        return Err(prep(io::Error::other(format!(
            "did not get to its start gate within {}s, and was killed",
            SPAWN_BOUND.as_secs()
        ))));
    }
    let mut first = [0u8; 1];
    match read_exact_or_eof(&mut report, &mut first) {
        Some(()) if first[0] == READY => Ok(Gated {
            pid,
            gate: Some(gate_write),
            report,
        }),
        Some(()) => {
            let mut errno = [0u8; 4];
            let _ = read_exact_or_eof(&mut report, &mut errno);
            reap_failed(pid);
            Err(SpawnError {
                step: SpawnStep::from_byte(first[0]),
                error: io::Error::from_raw_os_error(i32::from_ne_bytes(errno)),
            })
        }
        None => {
            reap_failed(pid);
            Err(prep(io::Error::other(
                "the child exited before it was set up",
            )))
        }
    }
}

/// Reaps a child that reported failure and exits at once, so no zombie is left.
fn reap_failed(pid: i32) {
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
}

/// Returns true if and only if `file` (the report pipe) becomes readable, with bytes or
/// end-of-file, within `bound`.
fn readable_within(file: &File, bound: Duration) -> bool {
    use std::os::fd::AsFd;
    let deadline = Instant::now() + bound;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Rounded up: a wait of 0 ms would spin until the deadline.
        let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, timeout) {
            Ok(0) if Instant::now() >= deadline => return false,
            Ok(0) => continue,
            Err(Errno::EINTR) => continue,
            // Readable, or an error the read that follows reports.
            _ => return true,
        }
    }
}

/// SIGKILL to a child stuck before its exec. Our unreaped child: its PID cannot have
/// been reused. It is not waited for here (in uninterruptible sleep it would not die
/// yet): whoever reaps the caller's children reaps it.
fn kill_hung(pid: i32) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
}

fn read_exact_or_eof(file: &mut File, buf: &mut [u8]) -> Option<()> {
    use std::io::Read;
    file.read_exact(buf).ok()
}

/// Reads the child's report after the gate: end-of-file means it exec'd.
fn read_report(report: &mut File) -> Option<SpawnError> {
    let mut step = [0u8; 1];
    read_exact_or_eof(report, &mut step)?;
    let mut errno = [0u8; 4];
    let _ = read_exact_or_eof(report, &mut errno);
    Some(SpawnError {
        step: SpawnStep::from_byte(step[0]),
        error: io::Error::from_raw_os_error(i32::from_ne_bytes(errno)),
    })
}

/// What the child does between fork and exec, as plain data prepared beforehand.
struct ChildPlan<'a> {
    new_session: bool,
    devnull: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    cwd: &'a CStr,
    umask: libc::mode_t,
    credentials: Option<&'a Credentials>,
    resources: Option<&'a Resources>,
    gate: RawFd,
    report: RawFd,
    /// Where the child writes its PID in decimal (see [`SpawnOptions::pid_variable`]).
    pid_slot: Option<*mut u8>,
    /// A descriptor to place at a number of its own before exec.
    pass_fd: Option<(RawFd, RawFd)>,
    /// The keeper's ends of the two pipes: the child must not hold them, or the
    /// gate would never read end-of-file when the keeper dies.
    parent_ends: [RawFd; 2],
    program: &'a CStr,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    /// The held sockets, to move to fds 3, 4, ...
    sockets: &'a [RawFd],
    /// Where the digits of `LISTEN_PID` go ([`PID_DIGITS`] bytes), when sockets are
    /// passed: a buffer `envp` points into.
    listen_pid: Option<*mut u8>,
}

/// The forked child: set up, wait at the gate, exec. Never returns.
///
/// # Safety
/// Call only in the child of fork(2) of a single-threaded process. Makes only
/// async-signal-safe calls (signal-safety(7)) and allocates nothing.
unsafe fn run_child(plan: &ChildPlan<'_>) -> ! {
    // SAFETY: every call below is async-signal-safe and works on descriptors and
    // buffers prepared before the fork; `fail` writes fixed-size bytes and _exits.
    // setgroups(2), setrlimit(2) and setpriority(2) are not on POSIX's list, but glibc
    // implements each as a bare system call, with no lock and no allocation. The
    // limits are read from a Vec filled before the fork (reading allocates nothing),
    // the oom_score_adj text is a fixed array and its path a static C string.
    unsafe {
        // The gate and the report move above the sockets' numbers (see below).
        let report = std::cell::Cell::new(plan.report);
        let mut gate = plan.gate;
        let mut pass_fd = plan.pass_fd;
        let fail = |step: u8| -> ! {
            let errno = *libc::__errno_location();
            let mut message = [0u8; 5];
            message[0] = step;
            message[1..].copy_from_slice(&errno.to_ne_bytes());
            libc::write(report.get(), message.as_ptr().cast(), message.len());
            libc::_exit(127)
        };
        for fd in plan.parent_ends {
            libc::close(fd);
        }
        if plan.new_session && libc::setsid() == -1 {
            fail(SpawnStep::Setsid as u8);
        }
        if libc::dup2(plan.devnull, 0) == -1
            || libc::dup2(plan.stdout, 1) == -1
            || libc::dup2(plan.stderr, 2) == -1
        {
            fail(SpawnStep::Dup2 as u8);
        }
        if !plan.sockets.is_empty() {
            // Fds 3 .. 3+n are the sockets' places: whatever of ours is there (the
            // gate, the report, a socket itself) first moves above them, then each
            // socket is duplicated into its place, where it survives the exec (dup2
            // leaves the copy without close-on-exec; the originals close).
            // Above the passed descriptor's number too, which it takes at the end.
            let above = match pass_fd {
                Some((_, number)) => (3 + plan.sockets.len() as libc::c_int).max(number + 1),
                None => 3 + plan.sockets.len() as libc::c_int,
            };
            let moved_report = libc::fcntl(report.get(), libc::F_DUPFD_CLOEXEC, above);
            let moved_gate = libc::fcntl(gate, libc::F_DUPFD_CLOEXEC, above);
            if moved_report == -1 || moved_gate == -1 {
                fail(SpawnStep::Dup2 as u8);
            }
            report.set(moved_report);
            gate = moved_gate;
            if let Some((fd, number)) = pass_fd {
                let moved = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, above);
                if moved == -1 {
                    fail(SpawnStep::Dup2 as u8);
                }
                pass_fd = Some((moved, number));
            }
            let mut moved = [-1 as RawFd; MAX_PASSED];
            for (slot, &fd) in moved.iter_mut().zip(plan.sockets) {
                *slot = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, above);
                if *slot == -1 {
                    fail(SpawnStep::Dup2 as u8);
                }
            }
            for (i, &fd) in moved[..plan.sockets.len()].iter().enumerate() {
                if libc::dup2(fd, 3 + i as libc::c_int) == -1 {
                    fail(SpawnStep::Dup2 as u8);
                }
            }
        }
        if let Some(digits) = plan.listen_pid {
            write_pid(digits, libc::getpid());
        }
        if libc::chdir(plan.cwd.as_ptr()) == -1 {
            fail(SpawnStep::Chdir as u8);
        }
        libc::umask(plan.umask);
        // Limits, priority and OOM score while still privileged: raising a hard limit,
        // a negative nice and a lower oom_score_adj all need root's capabilities.
        if let Some(resources) = plan.resources {
            for &(resource, value) in &resources.limits {
                let limit = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                if libc::setrlimit(resource, &limit) == -1 {
                    fail(SpawnStep::Setrlimit as u8);
                }
            }
            if let Some(nice) = resources.nice {
                if libc::setpriority(libc::PRIO_PROCESS, 0, nice) == -1 {
                    fail(SpawnStep::Setpriority as u8);
                }
            }
            if let Some((text, len)) = &resources.oom_score_adj {
                let fd = libc::open(
                    c"/proc/self/oom_score_adj".as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                );
                if fd == -1 || libc::write(fd, text.as_ptr().cast(), *len) != *len as isize {
                    fail(SpawnStep::OomScoreAdj as u8);
                }
                libc::close(fd);
            }
        }
        if let Some(creds) = plan.credentials {
            // Supplementary groups and the gid while still root, the uid last.
            if libc::setgroups(creds.groups.len() as _, creds.groups.as_ptr()) == -1 {
                fail(SpawnStep::Setgroups as u8);
            }
            if libc::setgid(creds.gid) == -1 {
                fail(SpawnStep::Setgid as u8);
            }
            if libc::setuid(creds.uid) == -1 {
                fail(SpawnStep::Setuid as u8);
            }
        }
        reset_signals();
        libc::write(report.get(), [READY].as_ptr().cast(), 1);
        let mut go = [0u8; 1];
        loop {
            match libc::read(gate, go.as_mut_ptr().cast(), 1) {
                1 => break,
                -1 if *libc::__errno_location() == libc::EINTR => continue,
                // The keeper is gone before it recorded us: never run the command.
                _ => libc::_exit(126),
            }
        }
        if let Some(slot) = plan.pid_slot {
            write_pid(slot, libc::getpid());
        }
        if let Some((fd, number)) = pass_fd {
            // dup2(2) leaves the copy open across exec; the same number keeps its
            // descriptor, which only needs its close-on-exec flag cleared.
            let placed = match fd == number {
                true => libc::fcntl(fd, libc::F_SETFD, 0),
                false => libc::dup2(fd, number),
            };
            if placed == -1 {
                fail(SpawnStep::Dup2 as u8);
            }
        }
        libc::execve(
            plan.program.as_ptr(),
            plan.argv.as_ptr(),
            plan.envp.as_ptr(),
        );
        fail(SpawnStep::Exec as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spawn_step_round_trips_through_its_byte() {
        for byte in 0..=8u8 {
            assert_eq!(SpawnStep::from_byte(byte) as u8, byte);
        }
        assert_eq!(SpawnStep::from_byte(READY - 1), SpawnStep::SetUp);
    }

    /// The wait for a child's report is bounded: a silent pipe gives up at the bound,
    /// a written one or one whose writer is gone answers at once.
    #[test]
    fn the_wait_for_a_report_is_bounded() {
        use std::io::Write;
        let (read, write) = nix::unistd::pipe().unwrap();
        let (read, mut write) = (File::from(read), File::from(write));
        let start = Instant::now();
        assert!(!readable_within(&read, Duration::from_millis(50)));
        assert!(start.elapsed() >= Duration::from_millis(50));
        write.write_all(b"g").unwrap();
        assert!(readable_within(&read, Duration::from_secs(60)));
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(write);
        assert!(readable_within(&File::from(read), Duration::from_secs(60)));
    }

    #[test]
    fn a_test_thread_is_not_alone() {
        // The test harness runs tests on threads of its own.
        let alone = std::fs::read_dir("/proc/self/task").unwrap().count() == 1;
        assert_eq!(SingleThreaded::check().is_some(), alone);
    }
}

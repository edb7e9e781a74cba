//! The command-line side of the keeper: start a keeper and wait for its report, ask a
//! keeper to stop and wait until it has, and stop a daemon whose keeper was killed.
//!
//! Every operation here that changes a daemon runs under that daemon's
//! [`OperationLock`], so two `dmgr start web` never race each other: the second waits
//! for the first to finish, then finds the daemon running and succeeds.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use super::sys;
use crate::config::{Daemon, Dirs};
use crate::pidfile::{self, OperationLock};
use crate::procinfo::{self, ProcId};
use crate::state::{self, Status};
use crate::{Error, Result};

/// How many log lines a failed start shows.
const TAIL_LINES: usize = 10;
/// Extra time granted to a keeper beyond the daemon's own timeouts.
const GRACE: Duration = Duration::from_secs(10);

/// What `start` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// A new keeper started the daemon.
    Now(i32),
    /// It was already running (`supervised` false when its keeper is gone).
    Already {
        /// The daemon's PID.
        pid: i32,
        /// Whether a keeper looks after it.
        supervised: bool,
    },
    /// Its keeper is alive and will start it again after a backoff.
    Pending,
}

/// What `stop` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was running and is now gone.
    Now,
    /// Nothing was running.
    Already,
    /// Nothing was running, and a stale pidfile was removed.
    RemovedStale,
}

/// Takes the daemon's operation lock, waiting for any concurrent start or stop.
pub fn lock(dirs: &Dirs, name: &str) -> Result<OperationLock> {
    OperationLock::acquire(&dirs.op_lock_file(name))
}

/// Starts `daemon` unless it runs; the caller holds its operation lock.
pub fn start(dirs: &Dirs, daemon: &Daemon) -> Result<Started> {
    let observed = state::observe(dirs, &daemon.name, Some(&daemon.pidfile));
    if let Some(process) = observed.daemon {
        return Ok(Started::Already {
            pid: process.pid,
            supervised: observed.keeper.is_some(),
        });
    }
    // Under the operation lock the pidfile's lock is the authority on whether a
    // keeper lives: an exiting keeper releases it before /proc shows it dead.
    if observed.keeper.is_some() && pidfile::is_locked(&daemon.pidfile) {
        return Ok(Started::Pending);
    }
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| Error::daemon(&daemon.name, format!("cannot create a pipe: {e}")))?;
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        action: "find the dmgr executable",
        path: "/proc/self/exe".into(),
        source,
    })?;
    let args: Vec<OsString> = vec![
        "--config-dir".into(),
        dirs.config_dir.clone().into(),
        "--run-dir".into(),
        dirs.run_dir.clone().into(),
        "__keeper".into(),
        "--name".into(),
        daemon.name.clone().into(),
        "--notify-fd".into(),
        write.as_raw_fd().to_string().into(),
    ];
    sys::spawn_keeper(&exe, &args, write.as_fd())
        .map_err(|e| Error::daemon(&daemon.name, format!("cannot start a keeper: {e}")))?;
    drop(write);
    let budget = daemon.start_wait + daemon.ready_timeout + GRACE;
    let report = read_report(File::from(read), budget);
    match report.as_deref() {
        Some(text) if text.starts_with("ok ") => {
            let pid = text[3..].trim().parse().unwrap_or(0);
            Ok(Started::Now(pid))
        }
        Some(text) => {
            let reason = text.strip_prefix("err ").unwrap_or(text).trim_end();
            Err(Error::Daemon {
                name: daemon.name.clone(),
                message: format!("cannot start: {reason}"),
                log_tail: crate::logfile::tail(&daemon.log, TAIL_LINES),
            })
        }
        None => Err(Error::Daemon {
            name: daemon.name.clone(),
            message: "cannot start: the keeper exited without reporting".to_string(),
            log_tail: crate::logfile::tail(&daemon.log, TAIL_LINES),
        }),
    }
}

/// Reads the keeper's one-line report, waiting at most `budget`.
fn read_report(file: File, budget: Duration) -> Option<String> {
    let deadline = Instant::now() + budget;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => return None,
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
    let text = super::read_all(file);
    (!text.is_empty()).then_some(text)
}

/// Stops the daemon `name` (defined by `daemon`, or an orphan known only by its state
/// record); the caller holds its operation lock.
pub fn stop(dirs: &Dirs, name: &str, daemon: Option<&Daemon>) -> Result<Stopped> {
    let pidfile = daemon.map(|d| d.pidfile.as_path());
    let observed = state::observe(dirs, name, pidfile);
    let mut acted = false;
    if let (Some(keeper), Some(record)) = (observed.keeper, &observed.record) {
        acted = true;
        // Open the pidfile before signalling: the keeper unlinks it before it exits,
        // and the lock we wait on belongs to the inode we hold.
        let probe = pidfile::open_existing(&record.pidfile);
        let timeout = Duration::from_millis(record.stop_timeout_ms) + GRACE;
        sys::signal_process(keeper, Signal::SIGTERM as i32).map_err(|e| {
            Error::daemon(
                name,
                format!("cannot signal its keeper (pid {}): {e}", keeper.pid),
            )
        })?;
        let released = match probe {
            Some(file) => pidfile::wait_released(file, timeout),
            None => wait_until(timeout, || !keeper.is_alive()),
        };
        if !released {
            // A keeper that does not finish within the daemon's own stop timeout is
            // stuck; kill it and stop the daemon ourselves below.
            let _ = sys::signal_process(keeper, Signal::SIGKILL as i32);
            wait_until(GRACE, || !keeper.is_alive());
        }
    }
    let observed = state::observe(dirs, name, pidfile);
    if let (Some(process), Some(record)) = (observed.daemon, observed.record.clone()) {
        acted = true;
        let timeout = Duration::from_millis(record.stop_timeout_ms);
        stop_unsupervised(process, record.stop_signal, timeout);
        let mut record = record;
        record.status = Status::Stopped;
        record.daemon = None;
        let _ = state::write(&dirs.state_file(name), &record);
        pidfile::remove_stale(&record.pidfile);
        if process.is_alive() || !procinfo::group_members(process.pid, process.pid).is_empty() {
            return Err(Error::daemon(
                name,
                format!("pid {} survived SIGKILL", process.pid),
            ));
        }
    }
    let after = state::observe(dirs, name, pidfile);
    if let Some(stale) = &after.stale_pidfile {
        if pidfile::remove_stale(stale) && !acted {
            return Ok(Stopped::RemovedStale);
        }
    }
    Ok(if acted {
        Stopped::Now
    } else {
        Stopped::Already
    })
}

/// Stops a daemon whose keeper is gone: `stop_signal` to its process group, SIGKILL
/// after `timeout`. Not our child, so we cannot wait(2) for it; we watch `/proc`, where
/// a zombie counts as dead (PID 1 may reap it late).
fn stop_unsupervised(process: ProcId, stop_signal: i32, timeout: Duration) {
    let group = nix::unistd::Pid::from_raw(process.pid);
    let gone =
        || !process.is_alive() && procinfo::group_members(process.pid, process.pid).is_empty();
    let signal_group = |signal: Signal| {
        // The leader's identity pins the group ID: while it lives (or any member does),
        // the kernel cannot hand that number to another group.
        if process.is_alive() || !procinfo::group_members(process.pid, process.pid).is_empty() {
            let _ = nix::sys::signal::killpg(group, signal);
        }
    };
    if let Ok(signal) = Signal::try_from(stop_signal) {
        signal_group(signal);
        signal_group(Signal::SIGCONT);
    }
    if !wait_until(timeout, gone) {
        signal_group(Signal::SIGKILL);
        wait_until(GRACE, gone);
    }
}

/// Polls `done` every 10 ms until it holds or `timeout` passes; returns whether it held.
/// Only for processes that are not ours to wait(2) on.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` to the daemon's main process, identity-checked; `Ok(None)` if it
/// is not running.
pub fn signal_daemon(
    dirs: &Dirs,
    name: &str,
    daemon: Option<&Daemon>,
    signal: i32,
) -> Result<Option<i32>> {
    let observed = state::observe(dirs, name, daemon.map(|d| d.pidfile.as_path()));
    let Some(process) = observed.daemon else {
        return Ok(None);
    };
    match sys::signal_process(process, signal) {
        Ok(true) => Ok(Some(process.pid)),
        Ok(false) => Ok(None),
        Err(e) => Err(Error::daemon(
            name,
            format!("cannot signal pid {}: {e}", process.pid),
        )),
    }
}

/// Asks the keeper of `name` to do something by signal (rotate logs, take over
/// changed keys); returns false when no keeper runs.
pub fn signal_keeper(dirs: &Dirs, name: &str, signal: Signal) -> Result<bool> {
    let observed = state::observe(dirs, name, None);
    let Some(keeper) = observed.keeper else {
        return Ok(false);
    };
    sys::signal_process(keeper, signal as i32).map_err(|e| {
        Error::daemon(
            name,
            format!("cannot signal its keeper (pid {}): {e}", keeper.pid),
        )
    })
}

//! The command-line side of the keeper: start a keeper and wait for its report, ask a
//! keeper to stop and wait until it has, and stop a daemon whose keeper was killed.
//!
//! Every operation here that changes a daemon runs under that daemon's
//! [`OperationLock`], so two `dmgr start web` never race each other: the second waits
//! for the first to finish, then finds the daemon running and succeeds.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
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

/// A keeper that was spawned and has not reported yet.
#[derive(Debug)]
pub struct Pending {
    name: String,
    log: PathBuf,
    pipe: File,
    deadline: Instant,
    _lock: Option<OperationLock>,
}

/// What [`begin_start`] did.
#[derive(Debug)]
pub enum Begun {
    /// Nothing to wait for.
    Done(Started),
    /// A keeper was spawned; [`await_starts`] collects its report.
    Waiting(Pending),
}

/// Starts `daemon` unless it runs, and waits for the outcome; the caller holds its
/// operation lock.
pub fn start(dirs: &Dirs, daemon: &Daemon) -> Result<Started> {
    match begin_start(dirs, daemon, None)? {
        Begun::Done(started) => Ok(started),
        Begun::Waiting(pending) => {
            let mut outcome = None;
            await_starts(vec![pending], |_, result| outcome = Some(result));
            outcome.unwrap_or_else(|| Err(Error::daemon(&daemon.name, "cannot start: no report")))
        }
    }
}

/// Spawns a keeper for `daemon` unless it runs. `lock` is the daemon's operation lock,
/// held until the keeper reports (`None` when the caller holds it).
pub fn begin_start(dirs: &Dirs, daemon: &Daemon, lock: Option<OperationLock>) -> Result<Begun> {
    let observed = state::observe(dirs, &daemon.name, Some(&daemon.pidfile));
    if let Some(process) = observed.daemon {
        return Ok(Begun::Done(Started::Already {
            pid: process.pid,
            supervised: observed.keeper.is_some(),
        }));
    }
    // Under the operation lock the pidfile's lock is the authority on whether a
    // keeper lives: an exiting keeper releases it before /proc shows it dead.
    if observed.keeper.is_some() && pidfile::is_locked(&daemon.pidfile) {
        return Ok(Begun::Done(Started::Pending));
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
        "--log-dir".into(),
        dirs.log_dir.clone().into(),
        "--notify-fd".into(),
        write.as_raw_fd().to_string().into(),
    ];
    sys::spawn_keeper(&exe, &args, write.as_fd())
        .map_err(|e| Error::daemon(&daemon.name, format!("cannot start a keeper: {e}")))?;
    drop(write);
    Ok(Begun::Waiting(Pending {
        name: daemon.name.clone(),
        log: daemon.log.clone(),
        pipe: File::from(read),
        deadline: Instant::now() + daemon.start_wait + daemon.ready_timeout + GRACE,
        _lock: lock,
    }))
}

/// Waits for the reports of spawned keepers, all at once in one poll(2), and hands
/// each outcome to `done` as it arrives.
pub fn await_starts(mut pending: Vec<Pending>, mut done: impl FnMut(&str, Result<Started>)) {
    while !pending.is_empty() {
        let now = Instant::now();
        let (late, waiting): (Vec<Pending>, Vec<Pending>) =
            pending.into_iter().partition(|p| p.deadline <= now);
        pending = waiting;
        for p in late {
            done(
                &p.name,
                Err(failure(
                    &p.name,
                    &p.log,
                    "the keeper did not report in time",
                )),
            );
        }
        let Some(deadline) = pending.iter().map(|p| p.deadline).min() else {
            break;
        };
        let ms = deadline
            .saturating_duration_since(now)
            .as_millis()
            .saturating_add(1);
        let timeout = PollTimeout::try_from(i32::try_from(ms).unwrap_or(i32::MAX))
            .unwrap_or(PollTimeout::MAX);
        let mut fds: Vec<PollFd> = pending
            .iter()
            .map(|p| PollFd::new(p.pipe.as_fd(), PollFlags::POLLIN))
            .collect();
        if let Err(e) = nix::poll::poll(&mut fds, timeout) {
            if e != nix::errno::Errno::EINTR {
                drop(fds);
                for p in pending.drain(..) {
                    let reason = format!("cannot wait for the keeper: {e}");
                    done(&p.name, Err(failure(&p.name, &p.log, &reason)));
                }
                break;
            }
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut still = Vec::with_capacity(pending.len());
        for (p, is_ready) in pending.into_iter().zip(ready) {
            if is_ready {
                let text = super::read_all(p.pipe);
                done(&p.name, outcome(&p.name, &p.log, &text));
            } else {
                still.push(p);
            }
        }
        pending = still;
    }
}

fn outcome(name: &str, log: &Path, text: &str) -> Result<Started> {
    if let Some(pid) = text.strip_prefix("ok ") {
        return Ok(Started::Now(pid.trim().parse().unwrap_or(0)));
    }
    match text.strip_prefix("err ") {
        Some(reason) => Err(failure(name, log, reason.trim_end())),
        None => Err(failure(name, log, "the keeper exited without reporting")),
    }
}

fn failure(name: &str, log: &Path, reason: &str) -> Error {
    Error::Daemon {
        name: name.to_string(),
        message: format!("cannot start: {reason}"),
        log_tail: crate::logfile::tail(log, TAIL_LINES),
    }
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

//! `dmgr start`'s side of a keeper: launch keepers, wait for their reports, and clean
//! up after a keeper that never reported; and `dmgr run`'s claim on a daemon.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::leftovers::clear_leftovers;
use super::log_mark::LogMark;
use crate::config::{Daemon, Dirs};
use crate::escalation::{wait_until, GRACE};
use crate::keeper::report::{self, Report};
use crate::launcher::argv::LauncherArgv;
use crate::pidfile::{self, OperationLock};
use crate::procinfo;
use crate::state;
use crate::sys;
use crate::{Error, Result};

/// How many log lines a failed start shows.
const TAIL_LINES: usize = 10;

/// What `start` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Started {
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
    /// A oneshot ran to completion (exit 0) in `ran_ms`.
    Done { ran_ms: u64 },
    /// A scheduled oneshot's keeper waits for its next time (ms since the epoch).
    Waiting { next_ms: u64 },
}

/// Takes the daemon's operation lock, waiting for any concurrent start or stop.
pub(crate) fn lock(dirs: &Dirs, name: &str) -> Result<OperationLock> {
    OperationLock::acquire(&dirs.op_lock_file(name))
}

/// A keeper that was spawned and has not reported yet.
#[derive(Debug)]
pub(crate) struct Pending {
    name: String,
    /// The log as it was before the start: a failure shows what came after.
    log: LogMark,
    pidfile: PathBuf,
    pipe: File,
    /// The pipe's write end, for the keeper, until the launcher has it.
    notify: Option<OwnedFd>,
    deadline: Instant,
    _lock: Option<OperationLock>,
}

/// How often [`await_starts`] says which daemons it still waits for: at boot its
/// lines in the journal name the daemon that holds the start up.
pub(crate) const NOTE_EVERY: Duration = Duration::from_secs(5);

/// The daemons [`await_starts`] still waits for.
pub(crate) struct Waiting<'a> {
    /// How long it has waited.
    pub(crate) since: Duration,
    /// Each daemon, and the most it waits for it still.
    pub(crate) names: &'a [(&'a str, Duration)],
}

/// What [`begin_start`] did.
#[derive(Debug)]
pub(crate) enum Begun {
    /// Nothing to wait for.
    Done(Started),
    /// A keeper is to be made: [`await_starts`] launches it and collects its report.
    Waiting(Pending),
}

/// Prepares a keeper for `daemon` unless it runs. `lock` is the daemon's operation
/// lock, held until the keeper reports (`None` when the caller holds it).
pub(crate) fn begin_start(
    dirs: &Dirs,
    daemon: &Daemon,
    lock: Option<OperationLock>,
) -> Result<Begun> {
    let observed = state::observe(dirs, &daemon.name, Some(&daemon.pidfile));
    if let Some(process) = observed.daemon {
        return Ok(Begun::Done(Started::Already {
            pid: process.pid,
            supervised: observed.keeper.is_some(),
        }));
    }
    // Under the operation lock the pidfile's lock is the authority on whether a
    // keeper lives: an exiting keeper releases it before /proc shows it dead. One
    // that was SIGKILLed holds it until the kernel has run it into its exit, which
    // on a loaded machine takes a while: wait for that rather than report a keeper
    // that will never start the daemon.
    if let Some(keeper) = observed.keeper {
        let unlocked = || !pidfile::is_locked(&daemon.pidfile);
        let gone = unlocked() || (procinfo::is_dying(keeper) && wait_until(GRACE, unlocked));
        if !gone {
            return Ok(Begun::Done(Started::Pending));
        }
    }
    // No keeper holds the lock: what a dead (or dying) keeper's daemon left behind is
    // nobody's once the new keeper's record replaces the old one.
    clear_leftovers(dirs, &daemon.name, &observed);
    if pidfile::is_locked(&daemon.pidfile) {
        return Err(Error::daemon(
            &daemon.name,
            format!(
                "cannot start: its pidfile {} is locked by a process that is no keeper of this run directory ({})",
                daemon.pidfile.display(),
                pidfile::describe_holders(&daemon.pidfile)
            ),
        ));
    }
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| Error::cannot(&daemon.name, "create a pipe", e))?;
    Ok(Begun::Waiting(Pending {
        name: daemon.name.clone(),
        log: LogMark::now(&daemon.process.log),
        pidfile: daemon.pidfile.clone(),
        pipe: File::from(read),
        notify: Some(write),
        deadline: Instant::now() + start_deadline(daemon),
        _lock: lock,
    }))
}

/// How long `start` waits for the keeper's report: for a oneshot, until it has run
/// (its end, or its keeper's, closes the pipe; a day bounds a keeper that hangs).
fn start_deadline(daemon: &Daemon) -> Duration {
    let s = &daemon.supervision;
    match daemon.kind {
        crate::config::DaemonType::Oneshot => Duration::from_secs(24 * 3600),
        _ => s.start_wait + s.ready_timeout + GRACE,
    }
}

/// Takes the daemon for `dmgr run`: its operation lock (for the caller to release
/// once the record names the new process) and its pidfile lock (held while it runs).
/// Refuses while the daemon runs, under a keeper, without one, or under another
/// `dmgr run`; stops what a dead keeper's daemon left behind, as `start` does.
pub(crate) fn claim_for_foreground(
    dirs: &Dirs,
    daemon: &Daemon,
) -> Result<(OperationLock, pidfile::LockedPidfile)> {
    let lock = lock(dirs, &daemon.name)?;
    let observed = state::observe(dirs, &daemon.name, Some(&daemon.pidfile));
    let running = |pid: i32| Error::Running {
        name: daemon.name.clone(),
        pid,
    };
    if let Some(process) = observed.daemon {
        return Err(running(process.pid));
    }
    if let Some(keeper) = observed.keeper {
        return Err(Error::daemon(
            &daemon.name,
            format!(
                "its keeper (pid {}) restarts it after a backoff; stop it first with `dmgr stop {}`",
                keeper.pid, daemon.name
            ),
        ));
    }
    clear_leftovers(dirs, &daemon.name, &observed);
    match pidfile::LockedPidfile::try_lock(&daemon.pidfile) {
        Ok(locked) => Ok((lock, locked)),
        Err(pidfile::LockError::Held) => {
            Err(running(pidfile::read_pid(&daemon.pidfile).unwrap_or(0)))
        }
        Err(pidfile::LockError::Io(e)) => Err(e),
    }
}

/// Makes the keepers of `pending` with one launcher (see [`crate::launcher`]), waits
/// for their reports, all at once in one poll(2), and hands each outcome to `done` as
/// it arrives.
pub(crate) fn await_starts(
    dirs: &Dirs,
    mut pending: Vec<Pending>,
    mut done: impl FnMut(&str, Result<Started>),
    mut still_waiting: impl FnMut(&Waiting<'_>),
) {
    crate::session::warn_if_in_scope(!pending.is_empty());
    let began = Instant::now();
    let mut next_note = began + NOTE_EVERY;
    let mut launcher = match launch(dirs, &mut pending) {
        Ok(launcher) => launcher,
        Err(e) => {
            for p in pending {
                let reason = format!("cannot start a keeper: {e}");
                done(&p.name, Err(failure(&p.name, &p.log, &reason)));
            }
            return;
        }
    };
    while !pending.is_empty() {
        let now = Instant::now();
        let (late, waiting): (Vec<Pending>, Vec<Pending>) =
            pending.into_iter().partition(|p| p.deadline <= now);
        pending = waiting;
        for p in late {
            let why = "its keeper did not report in time";
            let reason = super::interrupted::clean_up(dirs, &p.name, &p.pidfile, why);
            done(&p.name, Err(failure(&p.name, &p.log, &reason)));
        }
        let Some(deadline) = pending.iter().map(|p| p.deadline).min() else {
            break;
        };
        if now >= next_note {
            let names: Vec<(&str, Duration)> = pending
                .iter()
                .map(|p| (p.name.as_str(), p.deadline.saturating_duration_since(now)))
                .collect();
            still_waiting(&Waiting {
                since: now - began,
                names: &names,
            });
            next_note = now + NOTE_EVERY;
        }
        let deadline = deadline.min(next_note);
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
                let report = report::read_report(p.pipe).ok_or_else(|| {
                    let why = "its keeper died before the daemon was up";
                    super::interrupted::clean_up(dirs, &p.name, &p.pidfile, why)
                });
                done(&p.name, outcome(&p.name, &p.log, report));
            } else {
                still.push(p);
            }
        }
        pending = still;
    }
    if let Some(launcher) = &mut launcher {
        // It exits once every keeper is made, long before most of them report.
        let _ = launcher.wait();
    }
}

/// Execs the launcher of every keeper in `pending`, handing it their notify pipes'
/// write ends (ours are closed once it has them); `None` when there is nothing to
/// launch.
fn launch(dirs: &Dirs, pending: &mut [Pending]) -> std::io::Result<Option<Child>> {
    let notify: Vec<(String, OwnedFd)> = pending
        .iter_mut()
        .filter_map(|p| Some((p.name.clone(), p.notify.take()?)))
        .collect();
    if notify.is_empty() {
        return Ok(None);
    }
    // In a unit that delegated its cgroup (the boot unit), the launcher and keepers
    // live in its keepers' leaf, beside the daemons' cgroups.
    crate::cgroup::enter_keepers_leaf();
    let exe = std::env::current_exe()?;
    let args = LauncherArgv {
        dirs: dirs.clone(),
        keepers: notify
            .iter()
            .map(|(name, fd)| (name.clone(), fd.as_raw_fd()))
            .collect(),
    };
    let fds: Vec<RawFd> = notify.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
    sys::spawn_launcher(&exe, &args.to_args(), &fds).map(Some)
}

/// What a keeper's report (or, when it sent none, what its `start` found and
/// cleaned up) means for `start`.
fn outcome(name: &str, log: &LogMark, report: Result<Report, String>) -> Result<Started> {
    match report {
        Ok(Report::Started { pid }) => Ok(Started::Now(pid)),
        Ok(Report::Done { ran_ms }) => Ok(Started::Done { ran_ms }),
        Ok(Report::Waiting { next_ms }) => Ok(Started::Waiting { next_ms }),
        Ok(Report::Failed { reason }) | Err(reason) => Err(failure(name, log, &reason)),
    }
}

fn failure(name: &str, log: &LogMark, reason: &str) -> Error {
    Error::Failed {
        name: name.to_string(),
        action: "start".to_string(),
        cause: reason.to_string(),
        log_tail: log.tail(TAIL_LINES),
    }
}

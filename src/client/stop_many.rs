//! `stop_many`: the stop of many daemons at once, for `stop`, `restart` and `apply`.
//! Every keeper is asked from this one thread and waited for in one poll(2) on their
//! pidfds, and each daemon's outcome is reported as its keeper exits (issue 24: at
//! boot and shutdown, a line in the journal as it happens); a daemon that outlived
//! its keeper is stopped at the end, in parallel threads.

use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use super::leftovers::signal_stop;
use super::stop::{finish_stop, Stopped};
use crate::config::{Daemon, Dirs};
use crate::escalation::{wait_until, GRACE};
use crate::pidfile::OperationLock;
use crate::state;
use crate::sys;
use crate::{Error, Result};

/// One daemon on its way down.
struct Stopping<'a> {
    name: String,
    daemon: Option<&'a Daemon>,
    _lock: Option<OperationLock>,
    keeper: Option<sys::ProcessHandle>,
    deadline: Instant,
    acted: bool,
    error: Option<Error>,
    /// When a daemon without a keeper was sent its stop signal.
    signalled_at: Option<Instant>,
}

/// Stops many daemons at once: asks every keeper to stop from this one thread, waits
/// for all of them in one poll(2) on their pidfds (readable once a keeper has exited,
/// after it closed its pidfile lock), and finishes each as its keeper exits, so that
/// `done` gets each outcome as it comes (at boot, each line reaches the journal when
/// it happens, also when systemd's stop timeout cuts the rest short). Each target is a
/// name, its definition if it has one, and its operation lock (`None` when the caller
/// holds it).
pub(crate) fn stop_many<'a>(
    dirs: &Dirs,
    targets: Vec<(String, Option<&'a Daemon>, Option<OperationLock>)>,
    mut done: impl FnMut(&str, Result<Stopped>),
) {
    let mut all: Vec<Stopping<'a>> = targets
        .into_iter()
        .map(|(name, daemon, lock)| ask_keeper_to_stop(dirs, name, daemon, lock))
        .collect();
    let mut reported = vec![false; all.len()];
    // What is left once a keeper is gone is quick unless its daemon runs on: those
    // are stopped at the end in parallel threads, each bounded by its own
    // stop_timeout.
    let mut finish = |s: &mut Stopping<'a>, reported: &mut bool| {
        let result = match s.error.take() {
            Some(err) => Err(err),
            None => {
                let outlived = state::observe(dirs, &s.name, s.daemon.map(|d| d.pidfile.as_path()))
                    .is_running();
                if outlived {
                    return;
                }
                finish_stop(dirs, &s.name, s.daemon, s.acted, s.signalled_at)
            }
        };
        *reported = true;
        done(&s.name, result);
    };
    for (s, reported) in all.iter_mut().zip(reported.iter_mut()) {
        if s.keeper.is_none() {
            finish(s, reported);
        }
    }
    wait_for_keepers(&mut all, |s, i| finish(s, &mut reported[i]));
    let mut results: Vec<Option<Result<Stopped>>> = all.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = all
            .iter()
            .zip(results.iter_mut())
            .zip(&reported)
            .filter(|(_, &r)| !r)
            .map(|((s, r), _)| {
                (
                    scope.spawn(|| finish_stop(dirs, &s.name, s.daemon, s.acted, s.signalled_at)),
                    r,
                )
            })
            .collect();
        for (handle, slot) in handles {
            *slot = Some(
                handle
                    .join()
                    .unwrap_or_else(|_| Err(Error::daemon("dmgr", "a stop thread panicked"))),
            );
        }
    });
    for (s, result) in all.iter().zip(results) {
        if let Some(result) = result {
            done(&s.name, result);
        }
    }
}

fn ask_keeper_to_stop<'a>(
    dirs: &Dirs,
    name: String,
    daemon: Option<&'a Daemon>,
    lock: Option<OperationLock>,
) -> Stopping<'a> {
    let observed = state::observe(dirs, &name, daemon.map(|d| d.pidfile.as_path()));
    let mut stopping = Stopping {
        name,
        daemon,
        _lock: lock,
        keeper: None,
        deadline: Instant::now(),
        acted: false,
        error: None,
        signalled_at: None,
    };
    if let (None, Some(_), Some(record)) = (observed.keeper, observed.daemon, &observed.record) {
        // Its keeper is gone: signal it now, so its stop_timeout runs alongside the
        // others' rather than after them.
        signal_stop(dirs, record, record.supervision.stop_signal);
        stopping.signalled_at = Some(Instant::now());
        stopping.acted = true;
        return stopping;
    }
    let Some(keeper) = observed.keeper else {
        return stopping;
    };
    // Without a usable record, the keeper is the dmgr holding the pidfile lock (see
    // `state::observe`), and the file, if there is one, says how long it may take.
    let supervision = match (&observed.record, daemon) {
        (Some(record), _) => record.supervision.clone(),
        (None, Some(daemon)) => daemon.supervision.clone(),
        (None, None) => crate::config::Supervision::default(),
    };
    stopping.acted = true;
    // With a stop_command, the keeper may wait stop_timeout for it and the daemon to
    // end, then stop_timeout for the signals.
    let rounds = if supervision.stop_command.is_some() {
        2
    } else {
        1
    };
    stopping.deadline = Instant::now() + supervision.stop_timeout * rounds + GRACE;
    let signalled = sys::ProcessHandle::open(keeper).and_then(|handle| {
        // Marked as `dmgr stop`'s: any other SIGTERM is an outside stop.
        let sent = match &handle {
            Some(h) => super::request::send_stop(h)?,
            None => false,
        };
        Ok(handle.filter(|_| sent))
    });
    match signalled {
        Ok(handle) => stopping.keeper = handle,
        Err(e) => {
            let action = format!("signal its keeper (pid {})", keeper.pid);
            stopping.error = Some(Error::cannot(&stopping.name, action, e));
        }
    }
    stopping
}

/// Waits until every signalled keeper has exited, calling `gone` with each (and its
/// index) as it does; a keeper still there at its deadline is stuck, gets SIGKILL,
/// and its daemon is stopped by `finish_stop`.
fn wait_for_keepers<'a>(all: &mut [Stopping<'a>], mut gone: impl FnMut(&mut Stopping<'a>, usize)) {
    loop {
        let now = Instant::now();
        for (i, s) in all
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| s.deadline <= now)
        {
            if let Some(keeper) = s.keeper.take() {
                let _ = keeper.signal(Signal::SIGKILL);
                wait_until(GRACE, || !keeper.id().is_alive());
                gone(s, i);
            }
        }
        // Without pidfds (old kernels) look at /proc every 10 ms instead.
        for (i, s) in all.iter_mut().enumerate() {
            if s.keeper
                .as_ref()
                .is_some_and(|k| k.pidfd().is_none() && !k.id().is_alive())
            {
                s.keeper = None;
                gone(s, i);
            }
        }
        let waiting: Vec<usize> = (0..all.len())
            .filter(|&i| all[i].keeper.is_some())
            .collect();
        let Some(deadline) = waiting.iter().map(|&i| all[i].deadline).min() else {
            return;
        };
        let mut wait = deadline.saturating_duration_since(now);
        if waiting
            .iter()
            .any(|&i| all[i].keeper.as_ref().is_some_and(|k| k.pidfd().is_none()))
        {
            wait = wait.min(Duration::from_millis(10));
        }
        let polled: Vec<usize> = waiting
            .iter()
            .copied()
            .filter(|&i| all[i].keeper.as_ref().is_some_and(|k| k.pidfd().is_some()))
            .collect();
        let mut fds: Vec<PollFd> = polled
            .iter()
            .filter_map(|&i| all[i].keeper.as_ref().and_then(|k| k.pidfd()))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        let ms = i32::try_from(wait.as_millis().saturating_add(1)).unwrap_or(i32::MAX);
        let _ = nix::poll::poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        );
        let exited: Vec<usize> = polled
            .iter()
            .zip(&fds)
            .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(&i, _)| i)
            .collect();
        drop(fds);
        for i in exited {
            all[i].keeper = None;
            gone(&mut all[i], i);
        }
    }
}

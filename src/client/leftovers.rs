//! A daemon whose keeper is gone (SIGKILLed, or lost with a crash): what it left
//! behind, found by identity from its state record (or, when the record is lost or
//! cannot be used, in the cgroup named after the daemon), and how `stop` and `start`
//! stop it without being its parent. Used by [`start`](super::start) and [`stop`](super::stop) only.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::stop::{while_no_keeper, Stopped};
use crate::config::{units, Dirs};
use crate::escalation::{empty_cgroup, wait_until, GRACE};
use crate::events::{self, Event, Kind};
use crate::pidfile;
use crate::procinfo::{self, ProcId, Stat};
use crate::state::{self, left_behind};
use crate::sys;

/// Stops what a dead keeper's daemon left behind before a new keeper takes over: the
/// new keeper's record replaces this one, after which nothing would know those
/// processes were the daemon's.
pub(super) fn clear_leftovers(dirs: &Dirs, name: &str, observed: &state::Observed) {
    let Some(record) = &observed.record else {
        // A record that is lost or cannot be used names nothing; the cgroup can still
        // be found, and what runs in it is a copy that a new keeper must not double.
        if observed.keeper.is_none() {
            let _ = stop_derived_cgroup(dirs, name);
        }
        return;
    };
    if !record.is_this_boot() {
        return;
    }
    if !left_behind(record).is_empty() {
        stop_unsupervised(dirs, record, None);
        let stopped = Event::now(&record.name, Kind::Stopped);
        let stopped = stopped.message("what the daemon of a dead keeper left behind");
        events::append(&dirs.events_file(&record.name), &stopped);
    }
    wait_for_holder(record);
    if let Some(cgroup) = record
        .cgroup
        .as_deref()
        .and_then(crate::cgroup::Cgroup::open)
    {
        cgroup.remove();
    }
    // One that a keeper killed before its first record made, where this process
    // would make it: empty (whatever ran in it was the keeper's own), or now stopped.
    if let Some(cgroup) = crate::cgroup::Cgroup::planned(name, &dirs.run_dir)
        .ok()
        .as_deref()
        .and_then(crate::cgroup::Cgroup::open)
    {
        cgroup.remove();
    }
    remove_daemon_pidfile(record);
}

/// Stops a daemon whose record cannot be used and that no keeper holds (any more):
/// nothing names its processes but its cgroup, which the keeper names after the
/// daemon and the run directory (see [`crate::cgroup::Cgroup::find`]); then the
/// unusable record is removed, under the pidfile lock, so that the next `start`
/// begins afresh rather than trip over it again.
pub(super) fn finish_unknown(
    dirs: &Dirs,
    name: &str,
    pidfile: Option<&Path>,
    observed: &state::Observed,
    acted: bool,
) -> crate::Result<Stopped> {
    let problem = observed.problem.clone().unwrap_or_default();
    let lock = pidfile.map_or_else(|| dirs.pidfile(name), Path::to_path_buf);
    if pidfile::is_locked(&lock) {
        return Err(crate::Error::daemon(
            name,
            format!(
                "{problem}, and its pidfile {} is locked by a process that is no keeper of this user ({}); nothing was stopped",
                lock.display(),
                pidfile::describe_holders(&lock)
            ),
        ));
    }
    let stopped = stop_derived_cgroup(dirs, name)?;
    let removed = while_no_keeper(&lock, || {
        let _ = std::fs::remove_file(dirs.state_file(name));
    });
    if removed.is_none() {
        return Err(crate::Error::daemon(
            name,
            format!("{problem}; a keeper started meanwhile, run `dmgr stop {name}` again"),
        ));
    }
    let event = Event::now(name, Kind::Stopped).message(format!(
        "{problem}: removed it{}",
        if stopped {
            " after stopping its cgroup"
        } else {
            ""
        }
    ));
    events::append(&dirs.events_file(name), &event);
    Ok(match acted || stopped {
        true => Stopped::Now,
        false => Stopped::Unknown(problem),
    })
}

/// Stops every process in the cgroup of the daemon `name`, found from its name and
/// the run directory alone (see [`crate::cgroup::Cgroup::find`]), for a daemon whose
/// record is lost or cannot be used: `stop_signal` is unknown, so SIGTERM, then
/// SIGKILL to the whole cgroup after the default `stop_timeout`; then removes the
/// cgroup. Returns whether any process was there, or an error if some survived
/// SIGKILL.
pub(super) fn stop_derived_cgroup(dirs: &Dirs, name: &str) -> Result<bool, crate::Error> {
    let Some(cgroup) = crate::cgroup::Cgroup::find(name, &dirs.run_dir) else {
        return Ok(false);
    };
    let timeout = crate::config::Supervision::default().stop_timeout;
    let stopped = empty_cgroup(
        dirs,
        name,
        &cgroup,
        Signal::SIGTERM,
        timeout,
        "found without its state record",
    )
    .map_err(|why| crate::Error::daemon(name, why))?;
    cgroup.remove();
    Ok(stopped > 0)
}

/// Removes what a finished daemon without a keeper leaves on disk: its cgroup, and a
/// forking daemon's own pidfile while it names the dead main process.
pub(super) fn remove_cgroup(record: &mut state::StateRecord) {
    if let Some(cgroup) = record
        .cgroup
        .take()
        .as_deref()
        .and_then(crate::cgroup::Cgroup::open)
    {
        cgroup.remove();
    }
    remove_daemon_pidfile(record);
}

/// Removes a forking daemon's own pidfile if it names the recorded main process and
/// that process is dead (SIGKILLed with its keeper, it never ran its exit handlers).
fn remove_daemon_pidfile(record: &state::StateRecord) {
    let (Some(path), Some(main)) = (&record.daemon_pidfile, record.daemon) else {
        return;
    };
    if pidfile::read_pid(path) == Some(main.pid) && !main.is_alive() {
        let _ = std::fs::remove_file(path);
    }
}

/// Stops a daemon whose keeper is gone: `stop_signal`, then SIGKILL after its
/// `stop_timeout`. Not our children, so we cannot wait(2) for them; we watch `/proc`,
/// where a zombie counts as dead (PID 1 may reap it late).
pub(super) fn stop_unsupervised(
    dirs: &Dirs,
    record: &state::StateRecord,
    signalled_at: Option<Instant>,
) {
    let mut targets = Unsupervised::new(record);
    if signalled_at.is_none() {
        record_stopping(dirs, record, &targets);
        targets.signal(record.supervision.stop_signal.0);
    }
    let timeout = record
        .supervision
        .stop_timeout
        .saturating_sub(signalled_at.map_or(Duration::ZERO, |at| at.elapsed()));
    if !wait_until(timeout, || targets.are_gone()) {
        let killed = Event::now(&record.name, Kind::Killed).signal("KILL");
        let limit = record.supervision.stop_timeout;
        let limit = units::format_duration(limit);
        let killed = killed.message(format!("still running {limit} after the stop signal"));
        events::append(&dirs.events_file(&record.name), &killed);
        targets.signal(Signal::SIGKILL);
        wait_until(GRACE, || targets.are_gone());
    }
    wait_for_holder(record);
}

/// Waits (within [`GRACE`]) until the keeper's holder has written the last of the
/// daemon's output and exited, as it does once the daemon's processes are gone: the
/// log is whole when `stop` returns, and a new keeper never writes it alongside.
pub(super) fn wait_for_holder(record: &state::StateRecord) {
    if let Some(holder) = record.holder.filter(|_| record.is_this_boot()) {
        wait_until(GRACE, || !holder.is_alive());
    }
}

/// Sends `stop_signal` (and SIGCONT) to a daemon whose keeper is gone.
pub(super) fn signal_stop(dirs: &Dirs, record: &state::StateRecord, stop_signal: units::Signal) {
    let mut targets = Unsupervised::new(record);
    record_stopping(dirs, record, &targets);
    targets.signal(stop_signal.0);
}

/// Records the `stopping` event of a daemon whose keeper is gone.
fn record_stopping(dirs: &Dirs, record: &state::StateRecord, targets: &Unsupervised<'_>) {
    let mut event =
        Event::now(&record.name, Kind::Stopping).signal(record.supervision.stop_signal.to_string());
    event.pid = targets.main.map(|m| m.pid);
    let event = event.message("its keeper is gone");
    events::append(&dirs.events_file(&record.name), &event);
}

/// The processes of a daemon whose keeper is gone, each by identity: its main process
/// while it lives; the members of its process group seen while the live main process
/// pinned the group's ID (an ID is freed once its group is empty, and may then name
/// an unrelated group: every dmgr daemon leads one); and what it left behind (see
/// [`left_behind`]).
struct Unsupervised<'a> {
    record: &'a state::StateRecord,
    main: Option<ProcId>,
    members: Vec<ProcId>,
}

impl<'a> Unsupervised<'a> {
    fn new(record: &'a state::StateRecord) -> Self {
        let mut targets = Unsupervised {
            record,
            main: record.daemon.filter(ProcId::is_alive),
            members: Vec::new(),
        };
        targets.refresh();
        targets
    }

    /// Looks again: new group members while the main process lives, and who is gone.
    fn refresh(&mut self) {
        if let Some(main) = self.main.filter(ProcId::is_alive) {
            let seen: Vec<ProcId> = procinfo::group_members(main.pid, main.pid)
                .into_iter()
                .filter_map(ProcId::of)
                .collect();
            // Alive before and after the read, the main process pinned its group ID
            // throughout, so `seen` are its members; if it died meanwhile they may not be.
            if main.is_alive() {
                for id in seen {
                    if !self.members.contains(&id) {
                        self.members.push(id);
                    }
                }
            } else {
                self.main = None;
            }
        } else {
            self.main = None;
        }
        for id in left_behind(self.record) {
            if !self.members.contains(&id) {
                self.members.push(id);
            }
        }
        self.members.retain(ProcId::is_alive);
    }

    fn are_gone(&mut self) -> bool {
        self.refresh();
        self.main.is_none() && self.members.is_empty()
    }

    fn signal(&mut self, signal: Signal) {
        let signals: &[Signal] = if signal == Signal::SIGKILL {
            &[Signal::SIGKILL]
        } else {
            &[signal, Signal::SIGCONT]
        };
        self.refresh();
        if signal == Signal::SIGKILL {
            if let Some(cgroup) = self
                .record
                .cgroup
                .as_deref()
                .and_then(crate::cgroup::Cgroup::open)
            {
                cgroup.kill();
            }
        }
        let group = self.main.map(|main| main.pid);
        // A live probe leads its own group and pins its ID, as the main process does.
        let probe = self.record.probe.filter(ProcId::is_alive).map(|p| p.pid);
        for group in group.into_iter().chain(probe) {
            for &signal in signals {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), signal);
            }
        }
        // The group signal reached its members; each other process gets the signal
        // once too (a second SIGTERM means "hurry" to some programs).
        for &process in &self.members {
            let in_group = Stat::read(process.pid).is_some_and(|s| Some(s.pgrp) == group);
            if !in_group {
                for &signal in signals {
                    let _ = sys::signal_process(process, signal);
                }
            }
        }
    }
}

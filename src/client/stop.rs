//! `dmgr stop`'s side of a keeper, once the keeper is gone: stop what outlived it
//! (see [`super::leftovers`]) and leave the record saying the daemon was stopped.

use std::path::Path;
use std::time::Instant;

use super::leftovers::{finish_unknown, remove_cgroup, stop_derived_cgroup, stop_unsupervised};
use crate::config::{Daemon, Dirs};
use crate::events::{self, Event, Kind};
use crate::pidfile;
use crate::procinfo::{self, ProcId};
use crate::state::left_behind;
use crate::state::{self, Status};
use crate::{Error, Result};

/// What `stop` found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// It was running and is now gone.
    Now,
    /// Nothing was running.
    Already,
    /// Nothing was running, and a stale pidfile was removed.
    RemovedStale,
    /// Its record could not be used (why), no keeper held its lock and nothing of it
    /// was found; the record was removed.
    Unknown(String),
}

/// After the keeper is gone: stop a daemon that outlived it, and clean up.
pub(crate) fn finish_stop(
    dirs: &Dirs,
    name: &str,
    daemon: Option<&Daemon>,
    acted: bool,
    signalled_at: Option<Instant>,
) -> Result<Stopped> {
    let pidfile = daemon.map(|d| d.pidfile.as_path());
    let mut acted = acted;
    let observed = state::observe(dirs, name, pidfile);
    if let (Status::Unknown, None) = (observed.status, observed.keeper) {
        return finish_unknown(dirs, name, pidfile, &observed, acted);
    }
    // A record lost with its keeper: what ran is still in its cgroup.
    if observed.record.is_none() && observed.keeper.is_none() && stop_derived_cgroup(dirs, name)? {
        acted = true;
        events::append(&dirs.events_file(name), &Event::now(name, Kind::Stopped));
    }
    // Its keeper and main process may both be dead while processes it started live on.
    let leftovers = observed.keeper.is_none()
        && observed.daemon.is_none()
        && observed
            .record
            .as_ref()
            .is_some_and(|r| !left_behind(r).is_empty());
    let unsupervised = observed.keeper.is_none()
        && (observed.daemon.is_some() || signalled_at.is_some() || leftovers);
    if let (true, Some(mut record)) = (unsupervised, observed.record.clone()) {
        // Its keeper is gone, so the record and the pidfile are ours to finish.
        acted = true;
        stop_unsupervised(dirs, &record, signalled_at);
        let main_alive = record.daemon.is_some_and(|p| p.is_alive());
        if main_alive || !left_behind(&record).is_empty() {
            return Err(Error::daemon(
                name,
                "processes of the daemon survived SIGKILL",
            ));
        }
        record.status = Status::Stopped;
        record.reason = Some(state::Reason::StoppedByRequest);
        record.daemon = None;
        record.output_pipes.clear();
        remove_cgroup(&mut record);
        events::append(&dirs.events_file(name), &Event::now(name, Kind::Stopped));
        let lock = pidfile.unwrap_or(&record.pidfile).to_path_buf();
        while_no_keeper(&lock, || {
            let _ = state::write(&dirs.state_file(name), &record);
        });
    } else if let Some(mut record) = observed
        .record
        .clone()
        .filter(|r| observed.keeper.is_none() && r.reason != Some(state::Reason::StoppedByRequest))
    {
        // Not running, but asked to stop: `apply` leaves it stopped from now on.
        record.status = match record.status {
            Status::Failed => Status::Failed,
            _ => Status::Stopped,
        };
        record.reason = Some(state::Reason::StoppedByRequest);
        if record.is_this_boot() {
            remove_cgroup(&mut record);
        }
        record.daemon = None;
        if !record.is_this_boot() {
            // A record of an earlier boot becomes one of this boot, naming no live
            // process: its identities could match unrelated processes now. Its keeper
            // is this `dmgr stop`, which is about to exit.
            record.boot_id = procinfo::boot_id().map(str::to_string);
            let me = std::process::id() as i32;
            record.keeper = ProcId::of(me).unwrap_or(ProcId { pid: me, start: 0 });
            record.output_pipes.clear();
            record.cgroup = None;
        }
        let lock = pidfile.unwrap_or(&record.pidfile).to_path_buf();
        let removed = while_no_keeper(&lock, || {
            let _ = state::write(&dirs.state_file(name), &record);
        });
        if removed == Some(true) && !acted {
            return Ok(Stopped::RemovedStale);
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

/// Runs `write` (of the record of a daemon whose keeper is gone) holding the daemon's
/// pidfile lock, then removes the pidfile. Every keeper takes that lock before it
/// writes a record, so a keeper starting meanwhile (one whose `dmgr start` was killed
/// runs without the operation lock) never has its record overwritten: it finds the
/// lock taken and gives up, or `write` is skipped because it holds the lock. Returns
/// whether a (stale) pidfile was there, or `None` when a keeper holds the lock.
pub(crate) fn while_no_keeper(lock: &Path, write: impl FnOnce()) -> Option<bool> {
    let existed = lock.exists();
    let locked = pidfile::LockedPidfile::try_lock(lock).ok()?;
    write();
    locked.remove();
    Some(existed)
}

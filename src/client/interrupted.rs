//! A start whose keeper never reported: it died (SIGKILLed while `start` waited for
//! `ready`, say) or hung past every timeout. The `start` that made it, still holding
//! the daemon's operation lock, stops what that keeper left (the daemon, whatever it
//! started, the pidfile), so a failed start leaves nothing behind (promise 1). Used by
//! [`start`](super::start) only.

use std::path::Path;

use nix::sys::signal::Signal;

use super::leftovers::{remove_cgroup, stop_unsupervised};
use crate::config::Dirs;
use crate::escalation::{wait_until, GRACE};
use crate::events::{self, Event, Kind};
use crate::pidfile;
use crate::state::left_behind;
use crate::state::{self, Reason, Status};
use crate::sys;

/// Stops what the keeper of `name` left when it failed to report its start, and
/// records the failed start; `why` says what happened to the keeper. Returns the
/// reason for `start` to print.
pub(super) fn clean_up(dirs: &Dirs, name: &str, pidfile: &Path, why: &str) -> String {
    let observed = state::observe(dirs, name, Some(pidfile));
    if let Some(keeper) = observed.keeper {
        // Alive but silent past every timeout: stuck, and no longer trusted with it.
        if let Ok(Some(handle)) = sys::ProcessHandle::open(keeper) {
            let _ = handle.signal(Signal::SIGKILL);
            wait_until(GRACE, || !handle.id().is_alive());
        }
    }
    let observed = state::observe(dirs, name, Some(pidfile));
    let Some(mut record) = observed.record.filter(|_| observed.keeper.is_none()) else {
        return why.to_string();
    };
    let mut reason = why.to_string();
    if observed.daemon.is_some() || !left_behind(&record).is_empty() {
        stop_unsupervised(dirs, &record, None);
        reason = format!("{why}; stopped what it left");
    }
    if !record.is_this_boot() {
        return reason;
    }
    record.status = Status::Failed;
    record.reason = Some(Reason::StartFailed);
    record.error = Some(reason.clone());
    record.daemon = None;
    record.output_pipes.clear();
    remove_cgroup(&mut record);
    // Under the pidfile's lock, which every keeper takes before it writes a record:
    // a keeper started meanwhile by a `start` that holds no operation lock keeps its
    // own record. The pidfile goes with the lock.
    if let Ok(locked) = pidfile::LockedPidfile::try_lock(pidfile) {
        let _ = state::write(&dirs.state_file(name), &record);
        let gave_up = Event::now(name, Kind::GaveUp).message(reason.clone());
        events::append(&dirs.events_file(name), &gave_up);
        locked.remove();
    }
    reason
}

//! Stopping processes that are not this process's children, so that it cannot wait(2)
//! for them: a signal to each by identity, then SIGKILL once a timeout has passed,
//! watching `/proc` (where a zombie counts as gone: PID 1 may reap it late). The CLI
//! stops a dead keeper's leftovers so (`client::leftovers`), and a new keeper so
//! empties a cgroup an earlier keeper of its daemon left behind ([`take_cgroup`]).

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::cgroup::Cgroup;
use crate::config::{Daemon, Dirs};
use crate::events::{self, Event, Kind};
use crate::procinfo::ProcId;
use crate::sys;

/// Extra time granted to a keeper beyond the daemon's own timeouts, and to processes
/// after SIGKILL to be gone.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// The daemon's cgroup at `path` for a new keeper of it: created, or, where an
/// earlier keeper of the same daemon left processes in it (it was killed, and its
/// record lost), emptied first with the daemon's `stop_signal` and `stop_timeout`.
/// Only keepers of this daemon put processes there, so whatever runs in it is a copy
/// of this daemon that nothing else would stop: a new copy never runs beside it.
pub(crate) fn take_cgroup(dirs: &Dirs, daemon: &Daemon, path: &Path) -> Result<Cgroup, String> {
    if let Some(left) = Cgroup::open(path).filter(|c| c.is_populated()) {
        let s = &daemon.supervision;
        let why = "left in its cgroup by an earlier keeper";
        let _ = empty_cgroup(
            dirs,
            &daemon.name,
            &left,
            s.stop_signal.0,
            s.stop_timeout,
            why,
        );
    }
    Cgroup::create(path)
}

/// Sends `signal` (and SIGCONT) to every process in `cgroup`, then SIGKILL to the
/// whole cgroup if some are still there after `timeout`, with a `stopping` event that
/// says `why` they were found. Returns how many processes there were, or why some
/// survived SIGKILL.
pub(crate) fn empty_cgroup(
    dirs: &Dirs,
    name: &str,
    cgroup: &Cgroup,
    signal: Signal,
    timeout: Duration,
    why: &str,
) -> Result<usize, String> {
    let members = || -> Vec<ProcId> {
        cgroup
            .members()
            .into_iter()
            .filter_map(ProcId::of)
            .collect()
    };
    let found = members();
    if found.is_empty() {
        return Ok(0);
    }
    let signal_name = signal.as_str().trim_start_matches("SIG");
    let mut event = Event::now(name, Kind::Stopping).signal(signal_name);
    event.message = Some(format!(
        "{} processes in its cgroup {}, {why}",
        found.len(),
        cgroup.path().display()
    ));
    events::append(&dirs.events_file(name), &event);
    for process in &found {
        let _ = sys::signal_process(*process, signal);
        let _ = sys::signal_process(*process, Signal::SIGCONT);
    }
    if !wait_until(timeout, || !cgroup.is_populated()) {
        if !cgroup.kill() {
            for process in members() {
                let _ = sys::signal_process(process, Signal::SIGKILL);
            }
        }
        if !wait_until(GRACE, || !cgroup.is_populated()) {
            return Err(format!(
                "processes in its cgroup {} survived SIGKILL",
                cgroup.path().display()
            ));
        }
    }
    Ok(found.len())
}

/// Polls `done` every 10 ms until it holds or `timeout` passes; returns whether it held.
/// Only for processes that are not ours to wait(2) on.
pub(crate) fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
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

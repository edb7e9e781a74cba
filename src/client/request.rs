//! `dmgr`'s side of a request to a running keeper (see [`crate::keeper::request`]):
//! send it, and wait for the answer.
//!
//! The keeper answers a reload with an event in `NAME.events` that carries the
//! request's number (`request`): `signalled` (the reload signal was sent), `reloaded`
//! or `reload-failed`. `dmgr reload` follows the history from before it sends (inotify,
//! as `events -f` does), until that event, the keeper's end or its deadline. The notify
//! protocol (a later issue) answers the reload of a `type = "notify"` daemon the same
//! way, once the daemon said `READY=1` or failed.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::events::{Event, Kind};
use crate::follow::{Follower, Replaced, Waker};
use crate::keeper::request::{Request, MAX_NUMBER};
use crate::procinfo::{self, ProcId};
use crate::sys;

/// A request number that no other `dmgr` running now is likely to pick: from our PID
/// and the clock.
pub(crate) fn new_number() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    ((std::process::id() << 13) ^ nanos) & MAX_NUMBER
}

/// Sends SIGTERM marked as `dmgr stop`'s to the keeper behind `handle`; `Ok(false)` if
/// it is gone.
pub(crate) fn send_stop(handle: &sys::ProcessHandle) -> std::io::Result<bool> {
    let value = Request::Stop.encode(new_number());
    handle.queue(Signal::SIGTERM as i32, value)
}

/// Returns true if and only if the keeper `keeper` reads requests (it blocks the
/// request signal, which would kill a process that does not: a keeper of an older
/// dmgr, or `dmgr run`).
pub(crate) fn understands_requests(keeper: ProcId) -> bool {
    procinfo::blocks_signal(keeper.pid, sys::request_signal())
}

/// How a request ended, as `dmgr` saw it.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The keeper's answer.
    Event(Event),
    /// The keeper exited before it answered.
    KeeperGone,
    /// No answer within the time allowed.
    TimedOut,
}

/// The events that answer a reload.
const ANSWERS: [Kind; 3] = [Kind::Signalled, Kind::Reloaded, Kind::ReloadFailed];

/// Asks `keeper` (which must [`understand requests`](understands_requests)) to reload
/// its daemon and waits for its answer in the history at `events`, at most `timeout`.
pub(crate) fn reload(keeper: ProcId, events: &Path, timeout: Duration) -> std::io::Result<Answer> {
    ask(keeper, events, timeout, Request::Reload, &ANSWERS)
}

/// The events that answer a restart in the keeper: the old generation's `stopping`
/// (the new one is up) or a `rollback`; where the new generation started alone (the
/// old one ended meanwhile), its `ready`, or the `restarting` or `gave-up` that
/// follows its failure.
pub(crate) const RESTART_ANSWERS: [Kind; 5] = [
    Kind::Stopping,
    Kind::Rollback,
    Kind::Ready,
    Kind::Restarting,
    Kind::GaveUp,
];

/// Asks `keeper` for a start-first restart of its daemon and waits for its answer
/// ([`RESTART_ANSWERS`]), at most `timeout`.
pub(crate) fn restart(keeper: ProcId, events: &Path, timeout: Duration) -> std::io::Result<Answer> {
    ask(keeper, events, timeout, Request::Restart, &RESTART_ANSWERS)
}

/// Sends `request` to `keeper` and waits for the event among `answers` that carries
/// its number.
fn ask(
    keeper: ProcId,
    events: &Path,
    timeout: Duration,
    request: Request,
    answers: &[Kind],
) -> std::io::Result<Answer> {
    let number = new_number();
    // From before the request: the answer cannot be missed.
    let mut follower = Follower::at_end(events.to_path_buf(), Replaced::AfterLastSeen);
    let waker = Waker::watching(std::iter::once(&events.to_path_buf()));
    let Some(handle) = sys::ProcessHandle::open(keeper)? else {
        return Ok(Answer::KeeperGone);
    };
    if !handle.queue(sys::request_signal(), request.encode(number))? {
        return Ok(Answer::KeeperGone);
    }
    let deadline = Instant::now() + timeout;
    loop {
        for line in follower.new_lines() {
            let Ok(event) = serde_json::from_slice::<Event>(&line) else {
                continue;
            };
            if event.request == Some(number) && answers.contains(&event.event) {
                return Ok(Answer::Event(event));
            }
        }
        if !keeper.is_alive() {
            // Its last words may have come with its end.
            let answered = follower.new_lines().into_iter().find_map(|line| {
                serde_json::from_slice::<Event>(&line)
                    .ok()
                    .filter(|e| e.request == Some(number) && answers.contains(&e.event))
            });
            return Ok(answered.map_or(Answer::KeeperGone, Answer::Event));
        }
        if Instant::now() >= deadline {
            return Ok(Answer::TimedOut);
        }
        waker.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_number_fits_its_bits() {
        assert!(new_number() <= MAX_NUMBER);
    }
}

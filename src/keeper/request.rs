//! Requests from `dmgr` to a running keeper, and their answers.
//!
//! A request is a signal that carries a value (sigqueue(3), `SI_QUEUE`): the kind of
//! request and a number. `dmgr stop` sends SIGTERM with [`Request::Stop`], so that the
//! keeper tells its own stop from any other SIGTERM (an outside stop: a session's end,
//! `kill`, `systemctl stop` of a scope); `dmgr reload` sends the request signal
//! ([`sys::request_signal`], a real-time signal, queued rather than merged) with
//! [`Request::Reload`].
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
use crate::procinfo::{self, ProcId};
use crate::sys;
use crate::watch::{Follower, Replaced, Waker};

/// What `dmgr` asks a keeper for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// Stop, as `dmgr stop` asks (a SIGTERM that carries this).
    Stop,
    /// Reload the daemon (the request signal).
    Reload,
}

/// The low bits of a request's value say which request it is; the rest its number.
const KIND_BITS: u32 = 4;
/// The largest request number (27 bits: the value stays a positive `int`).
const MAX_NUMBER: u32 = (1 << (31 - KIND_BITS)) - 1;

impl Request {
    fn code(self) -> u32 {
        match self {
            Request::Stop => 1,
            Request::Reload => 2,
        }
    }

    /// The signal value for request number `number`.
    pub(crate) fn encode(self, number: u32) -> i32 {
        (((number & MAX_NUMBER) << KIND_BITS) | self.code()) as i32
    }

    /// The request and its number in a signal value, if it is one.
    pub(crate) fn decode(value: i32) -> Option<(Request, u32)> {
        let value = u32::try_from(value).ok()?;
        let kind = match value & ((1 << KIND_BITS) - 1) {
            1 => Request::Stop,
            2 => Request::Reload,
            _ => return None,
        };
        Some((kind, value >> KIND_BITS))
    }

    /// The request a signal read from a signalfd carries, if it was queued with one.
    pub(crate) fn of(info: &nix::sys::signalfd::siginfo) -> Option<(Request, u32)> {
        (info.ssi_code == libc::SI_QUEUE)
            .then(|| Request::decode(info.ssi_int))
            .flatten()
    }
}

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
    let number = new_number();
    // From before the request: the answer cannot be missed.
    let mut follower = Follower::at_end(events.to_path_buf(), Replaced::AfterLastSeen);
    let waker = Waker::watching(std::iter::once(&events.to_path_buf()));
    let Some(handle) = sys::ProcessHandle::open(keeper)? else {
        return Ok(Answer::KeeperGone);
    };
    if !handle.queue(sys::request_signal(), Request::Reload.encode(number))? {
        return Ok(Answer::KeeperGone);
    }
    let deadline = Instant::now() + timeout;
    loop {
        for line in follower.new_lines() {
            let Ok(event) = serde_json::from_slice::<Event>(&line) else {
                continue;
            };
            if event.request == Some(number) && ANSWERS.contains(&event.event) {
                return Ok(Answer::Event(event));
            }
        }
        if !keeper.is_alive() {
            // Its last words may have come with its end.
            let answered = follower.new_lines().into_iter().find_map(|line| {
                serde_json::from_slice::<Event>(&line)
                    .ok()
                    .filter(|e| e.request == Some(number) && ANSWERS.contains(&e.event))
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
    fn a_request_round_trips_through_its_signal_value() {
        for request in [Request::Stop, Request::Reload] {
            for number in [0, 1, 77, MAX_NUMBER] {
                let value = request.encode(number);
                assert!(value >= 0);
                assert_eq!(Request::decode(value), Some((request, number)));
            }
        }
        assert_eq!(Request::decode(0), None);
        assert_eq!(Request::decode(-1), None);
        assert_eq!(Request::decode(0x30), None, "kind 0 is no request");
        assert!(new_number() <= MAX_NUMBER);
    }
}

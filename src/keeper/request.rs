//! Requests from `dmgr` to a running keeper: what they are, and how they travel.
//!
//! A request is a signal that carries a value (sigqueue(3), `SI_QUEUE`): the kind of
//! request and a number. `dmgr stop` sends SIGTERM with [`Request::Stop`], so that the
//! keeper tells its own stop from any other SIGTERM (an outside stop: a session's end,
//! `kill`, `systemctl stop` of a scope); `dmgr reload` sends the request signal
//! ([`crate::sys::request_signal`], a real-time signal, queued rather than merged) with
//! [`Request::Reload`]. The sender's side is `client::request`.

/// What `dmgr` asks a keeper for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// Stop, as `dmgr stop` asks (a SIGTERM that carries this).
    Stop,
    /// Reload the daemon (the request signal).
    Reload,
    /// Restart the daemon start-first, on the sockets the keeper holds (the request
    /// signal).
    Restart,
}

/// The low bits of a request's value say which request it is; the rest its number.
const KIND_BITS: u32 = 4;
/// The largest request number (27 bits: the value stays a positive `int`).
pub(crate) const MAX_NUMBER: u32 = (1 << (31 - KIND_BITS)) - 1;

impl Request {
    fn code(self) -> u32 {
        match self {
            Request::Stop => 1,
            Request::Reload => 2,
            Request::Restart => 3,
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
            3 => Request::Restart,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_through_its_signal_value() {
        for request in [Request::Stop, Request::Reload, Request::Restart] {
            for number in [0, 1, 77, MAX_NUMBER] {
                let value = request.encode(number);
                assert!(value >= 0);
                assert_eq!(Request::decode(value), Some((request, number)));
            }
        }
        assert_eq!(Request::decode(0), None);
        assert_eq!(Request::decode(-1), None);
        assert_eq!(Request::decode(0x30), None, "kind 0 is no request");
    }
}

//! One datagram of the notify protocol, parsed: sd_notify(3)'s newline-separated
//! `KEY=VALUE` assignments, taken together as systemd takes them (a datagram is one
//! notification; where a key appears twice, the first wins, as in systemd's
//! `strv_find_startswith`). Pure: bytes in, a [`Notification`] out.
//!
//! What is wrong is dropped and counted, never fatal: a line without `=`, a value
//! that is not what its key takes, a datagram with a NUL byte or cut short by the
//! receive buffer. Keys dmgr does not act on (`FDSTORE=1`, `FDNAME=`, `BUSERROR=`,
//! `NOTIFYACCESS=`, `X_*` and whatever later systemd versions add) are ignored
//! silently, as systemd ignores keys it does not know.

use std::time::Duration;

/// The largest datagram the keeper reads, as systemd's `NOTIFY_BUFFER_MAX` (PIPE_BUF):
/// longer ones arrive cut short and are dropped.
pub(crate) const MAX_DATAGRAM: usize = 4096;

/// The most characters of a `STATUS=` line that are kept (a line is for a person to
/// read in `status`; php-fpm's, the longest in common use, is under 200).
pub(crate) const MAX_STATUS_CHARS: usize = 512;

/// What a `WATCHDOG=` assignment asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watchdog {
    /// `WATCHDOG=1`: the daemon is alive.
    Ping,
    /// `WATCHDOG=trigger`: the daemon asks for the watchdog's action now.
    Trigger,
}

/// Everything one datagram says. Each field is `None` or false when the datagram
/// does not say it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Notification {
    /// `READY=1`: start-up, or a reload, is done.
    pub(crate) ready: bool,
    /// `RELOADING=1`: a reload began.
    pub(crate) reloading: bool,
    /// `STOPPING=1`: the daemon began to stop by itself.
    pub(crate) stopping: bool,
    /// `STATUS=`: a line for a person (at most [`MAX_STATUS_CHARS`] characters).
    pub(crate) status: Option<String>,
    /// `ERRNO=`: why a start or reload failed (an errno(3) number).
    pub(crate) errno: Option<i32>,
    /// `MAINPID=`: another process is the daemon's main process now.
    pub(crate) main_pid: Option<i32>,
    /// `WATCHDOG=1` or `WATCHDOG=trigger`.
    pub(crate) watchdog: Option<Watchdog>,
    /// `WATCHDOG_USEC=`: a new watchdog period, from now on.
    pub(crate) watchdog_period: Option<Duration>,
    /// `EXTEND_TIMEOUT_USEC=`: the start, reload or stop under way may take this
    /// much longer from now.
    pub(crate) extend_timeout: Option<Duration>,
    /// `MONOTONIC_USEC=`: when the daemon sent it (`CLOCK_MONOTONIC`), which pairs a
    /// `RELOADING=1` with the reload that caused it.
    pub(crate) monotonic_usec: Option<u64>,
    /// `BARRIER=1`: the sender waits until the descriptor it passed is closed, which
    /// the keeper does once it has handled every message before.
    pub(crate) barrier: bool,
    /// Lines or values dropped as malformed (a whole datagram counts once).
    pub(crate) malformed: u32,
}

impl Notification {
    /// Returns true if and only if the datagram said nothing dmgr acts on.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        *self
            == Notification {
                malformed: self.malformed,
                ..Notification::default()
            }
    }
}

/// Parses one datagram of `bytes`; `truncated` when it did not fit the buffer.
pub(crate) fn parse(bytes: &[u8], truncated: bool) -> Notification {
    let mut n = Notification::default();
    // systemd drops these whole: a message cut short, or with a NUL in it, may say
    // something other than what was meant.
    if truncated || bytes.contains(&0) {
        n.malformed = 1;
        return n;
    }
    let mut seen: Vec<&[u8]> = Vec::new();
    for line in bytes.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            n.malformed += 1;
            continue;
        };
        let (key, value) = (&line[..eq], &line[eq + 1..]);
        if key.is_empty() {
            n.malformed += 1;
            continue;
        }
        // The first assignment of a key wins; later ones are not malformed.
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        if !assign(&mut n, key, value) {
            n.malformed += 1;
        }
    }
    n
}

/// Sets what `key=value` says in `n`; false when the value is not one `key` takes.
/// An unknown key is ignored (true).
fn assign(n: &mut Notification, key: &[u8], value: &[u8]) -> bool {
    let text = std::str::from_utf8(value).ok();
    match key {
        b"READY" => flag(&mut n.ready, value),
        b"RELOADING" => flag(&mut n.reloading, value),
        b"STOPPING" => flag(&mut n.stopping, value),
        b"BARRIER" => flag(&mut n.barrier, value),
        b"STATUS" => match text {
            Some(text) => {
                n.status = Some(status_line(text));
                true
            }
            None => false,
        },
        b"ERRNO" => set(&mut n.errno, text.and_then(|t| t.parse::<i32>().ok())),
        b"MAINPID" => set(
            &mut n.main_pid,
            text.and_then(|t| t.parse::<i32>().ok()).filter(|&p| p > 1),
        ),
        b"WATCHDOG" => set(
            &mut n.watchdog,
            match value {
                b"1" => Some(Watchdog::Ping),
                b"trigger" => Some(Watchdog::Trigger),
                _ => None,
            },
        ),
        b"WATCHDOG_USEC" => set(&mut n.watchdog_period, usec(text).filter(|d| !d.is_zero())),
        b"EXTEND_TIMEOUT_USEC" => set(&mut n.extend_timeout, usec(text)),
        b"MONOTONIC_USEC" => set(
            &mut n.monotonic_usec,
            text.and_then(|t| t.parse::<u64>().ok()),
        ),
        _ => true,
    }
}

/// `KEY=1` sets the flag; `KEY=0` is allowed and says nothing; anything else is
/// malformed.
fn flag(field: &mut bool, value: &[u8]) -> bool {
    match value {
        b"1" => {
            *field = true;
            true
        }
        b"0" => true,
        _ => false,
    }
}

fn set<T>(field: &mut Option<T>, value: Option<T>) -> bool {
    match value {
        Some(value) => {
            *field = Some(value);
            true
        }
        None => false,
    }
}

/// A number of microseconds (digits only, as systemd's `safe_atou64`).
fn usec(text: Option<&str>) -> Option<Duration> {
    let text = text?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok().map(Duration::from_micros)
}

/// A `STATUS=` value as shown: control characters as spaces (a status is one line of
/// a table), at most [`MAX_STATUS_CHARS`] characters.
fn status_line(text: &str) -> String {
    text.chars()
        .take(MAX_STATUS_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Notification {
        parse(text.as_bytes(), false)
    }

    #[test]
    fn ready_ends_a_start_and_is_one_line_of_several() {
        let n = parsed("READY=1\nSTATUS=Processing requests...\nMAINPID=4711\n");
        assert!(n.ready);
        assert_eq!(n.status.as_deref(), Some("Processing requests..."));
        assert_eq!(n.main_pid, Some(4711));
        assert_eq!(n.malformed, 0);
        // sd_notify(3) allows the last line without its newline.
        assert!(parsed("READY=1").ready);
        let zero = parsed("READY=0");
        assert!(!zero.ready && zero.is_empty() && zero.malformed == 0);
    }

    #[test]
    fn each_kind_the_spec_lists_is_read() {
        assert!(parsed("RELOADING=1\n").reloading);
        assert!(parsed("STOPPING=1\n").stopping);
        assert!(parsed("BARRIER=1\n").barrier);
        assert_eq!(parsed("ERRNO=2\n").errno, Some(2));
        assert_eq!(parsed("WATCHDOG=1\n").watchdog, Some(Watchdog::Ping));
        assert_eq!(
            parsed("WATCHDOG=trigger\n").watchdog,
            Some(Watchdog::Trigger)
        );
        assert_eq!(
            parsed("WATCHDOG_USEC=20000000\n").watchdog_period,
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            parsed("EXTEND_TIMEOUT_USEC=5000000\n").extend_timeout,
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parsed("RELOADING=1\nMONOTONIC_USEC=123456789\n").monotonic_usec,
            Some(123_456_789)
        );
        assert_eq!(parsed("STATUS=\n").status.as_deref(), Some(""));
    }

    #[test]
    fn keys_dmgr_does_not_act_on_are_ignored_not_malformed() {
        let n = parsed("FDSTORE=1\nFDNAME=db\nX_NGINX=up\nBUSERROR=org.x.Y\nNOTIFYACCESS=all\n");
        assert!(n.is_empty());
        assert_eq!(n.malformed, 0);
    }

    #[test]
    fn malformed_lines_are_dropped_and_counted_and_the_rest_kept() {
        let n = parsed(
            "READY=1\ngarbage\n=1\nMAINPID=abc\nMAINPID=1\nERRNO=x\nWATCHDOG=2\nREADY=yes\n",
        );
        // The first READY wins; the second is neither read nor counted.
        assert!(n.ready);
        // garbage, =1, MAINPID=abc (the first MAINPID; the second is ignored),
        // ERRNO=x, WATCHDOG=2.
        assert_eq!(n.malformed, 5);
        assert_eq!(n.main_pid, None);
        assert_eq!(parsed("EXTEND_TIMEOUT_USEC=-5\n").malformed, 1);
        assert_eq!(parsed("EXTEND_TIMEOUT_USEC=+5\n").malformed, 1);
        assert_eq!(parsed("WATCHDOG_USEC=0\n").malformed, 1);
        assert_eq!(parsed("STATUS=\u{7f}").malformed, 0);
        // PID 1 is never a daemon's main process.
        assert_eq!(parsed("MAINPID=1\n").malformed, 1);
        assert_eq!(parsed("MAINPID=0\n").malformed, 1);
    }

    #[test]
    fn a_datagram_with_a_nul_or_cut_short_is_dropped_whole() {
        let n = parse(b"READY=1\nSTATUS=a\0b\n", false);
        assert!(!n.ready);
        assert_eq!(n.malformed, 1);
        let n = parse(b"READY=1\n", true);
        assert!(!n.ready);
        assert_eq!(n.malformed, 1);
    }

    #[test]
    fn a_status_is_one_bounded_line_and_must_be_utf8() {
        let n = parsed("STATUS=two\tlines\rhere\n");
        assert_eq!(n.status.as_deref(), Some("two lines here"));
        let long = "x".repeat(5000);
        let n = parsed(&format!("STATUS={long}\n"));
        assert_eq!(n.status.map(|s| s.chars().count()), Some(MAX_STATUS_CHARS));
        let n = parse(b"STATUS=\xff\xfe\n", false);
        assert_eq!(n.status, None);
        assert_eq!(n.malformed, 1);
    }
}

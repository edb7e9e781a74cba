//! Everything printed: colour decisions (`style`), tables (`table`), the stable JSON
//! shapes (`json`) and error reports, each line escaped by [`crate::text::escape`].
//! Results go to standard output, errors and hints to standard error.

pub(crate) mod json;
pub(crate) mod style;
pub(crate) mod table;

use std::io::{self, Write};

use crate::Error;

pub(crate) use style::Style;

use crate::text::escape;

/// Whether standard output was closed when the process started.
static STDOUT_WAS_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Notes whether standard output is closed. The `dmgr` binary calls it before std's
/// start-up, which reopens a closed standard output as `/dev/null` (so that writes to
/// it cannot hit a file opened later), and a later look would see a fine descriptor.
/// So it asks the descriptor table itself: std's `stdout()` is not to be used before
/// `main`.
pub extern "C" fn note_closed_stdout() {
    if !crate::sys::is_open_fd(libc::STDOUT_FILENO) {
        STDOUT_WAS_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Prints an error (and its hint) to standard error as `dmgr: MESSAGE`.
pub fn print_error(err: &Error) {
    let style = Style::for_stderr();
    let mut stderr = io::stderr().lock();
    let text = err.to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    // Messages quote paths, names and log lines: each line is escaped, so that none
    // can send a control sequence to the terminal.
    let _ = writeln!(stderr, "{} {}", style.error("dmgr:"), escape(first));
    for line in lines {
        let _ = writeln!(stderr, "{}", escape(line));
    }
    if let Some(hint) = err.hint() {
        let _ = writeln!(stderr, "{} {}", style.hint("hint:"), escape(&hint));
    }
}

/// Prints a line to standard error, escaped.
pub(crate) fn print_stderr_line(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{}", escape(line));
}

/// Prints a line to standard output, escaped, ignoring a closed pipe
/// (`dmgr list | head`).
pub(crate) fn print_line(line: &str) {
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "{}", escape(line));
}

/// Writes `text`, which the caller has escaped where it must be, to standard output;
/// a broken pipe counts as success (ripgrep's rule: `dmgr list | head` is fine).
pub(crate) fn print_raw(text: &str) -> crate::Result<()> {
    print_bytes(text.as_bytes())
}

/// Writes bytes to standard output as [`print_raw`] does.
pub(crate) fn print_bytes(bytes: &[u8]) -> crate::Result<()> {
    let closed = || Error::Io {
        action: "write to",
        path: "standard output".into(),
        source: io::Error::from_raw_os_error(libc::EBADF),
    };
    // A closed standard output would print nothing and exit 0 (see
    // `note_closed_stdout`): the output was the point, so it is an error.
    if STDOUT_WAS_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
        || !crate::sys::is_open_fd(libc::STDOUT_FILENO)
    {
        return Err(closed());
    }
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::Io {
            action: "write to",
            path: "standard output".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// `42s`, `5m12s`, `3h04m`, `2d05h`.
pub(crate) fn format_uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `812K`, `12.3M`, `1.1G` (binary units).
pub(crate) fn format_bytes(bytes: u64) -> String {
    const UNITS: [(&str, f64); 3] = [("G", 1073741824.0), ("M", 1048576.0), ("K", 1024.0)];
    for (unit, scale) in UNITS {
        let value = bytes as f64 / scale;
        if value >= 1.0 {
            return if value < 10.0 {
                format!("{value:.1}{unit}")
            } else {
                format!("{value:.0}{unit}")
            };
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_and_bytes_are_short() {
        assert_eq!(format_uptime(42), "42s");
        assert_eq!(format_uptime(312), "5m12s");
        assert_eq!(format_uptime(3 * 3600 + 240), "3h04m");
        assert_eq!(format_uptime(2 * 86_400 + 5 * 3600), "2d05h");
        assert_eq!(format_bytes(812 * 1024), "812K");
        assert_eq!(format_bytes(12_900_000), "12M");
        assert_eq!(format_bytes(1_500_000), "1.4M");
        assert_eq!(format_bytes(100), "100B");
    }
}

//! `ready = { log = "regex" }`: the daemon is ready once a line it writes to stdout or
//! stderr matches. A pure matcher fed the bytes as the log pipes deliver them, which
//! split lines anywhere: it keeps each stream's unfinished line (up to
//! [`MAX_LINE`] bytes) until its end arrives. Lines are matched as the daemon wrote
//! them, without the line end and without a `log_timestamps` prefix, as bytes (a
//! line that is not UTF-8 is matched, not dropped).

use regex::bytes::Regex;

/// The longest line kept for matching; the rest of a longer line is not looked at.
pub(crate) const MAX_LINE: usize = 64 << 10;

/// Matches the daemon's output lines against the `ready.log` pattern, per stream.
#[derive(Debug)]
pub(crate) struct ReadyLine {
    pattern: Regex,
    /// The unfinished line of stdout and of stderr.
    partial: [Vec<u8>; 2],
}

/// Which output stream bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// The daemon's stdout.
    Out = 0,
    /// The daemon's stderr.
    Err = 1,
}

impl ReadyLine {
    /// A matcher for `pattern` (compiled as `dmgr check` checks it).
    pub(crate) fn new(pattern: &str) -> Option<ReadyLine> {
        let pattern = crate::config::compile_log_pattern(pattern).ok()?;
        Some(ReadyLine {
            pattern,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Feeds bytes the daemon wrote on `stream`; returns true if and only if a line
    /// they finish matches.
    pub(crate) fn feed(&mut self, stream: Stream, bytes: &[u8]) -> bool {
        let partial = &mut self.partial[stream as usize];
        let mut matched = false;
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (piece, after) = (&rest[..end], &rest[end + 1..]);
            let line: &[u8] = if partial.is_empty() {
                piece
            } else {
                keep(partial, piece);
                partial
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            matched = matched || self.pattern.is_match(line);
            partial.clear();
            rest = after;
        }
        keep(partial, rest);
        matched
    }

    /// The streams ended: returns true if and only if a last line without its line
    /// end matches.
    #[cfg(test)]
    pub(crate) fn finish(&mut self) -> bool {
        let matched = self
            .partial
            .iter()
            .any(|line| !line.is_empty() && self.pattern.is_match(line));
        self.partial = [Vec::new(), Vec::new()];
        matched
    }

    /// Forgets unfinished lines (a new run of the daemon begins).
    pub(crate) fn reset(&mut self) {
        self.partial = [Vec::new(), Vec::new()];
    }
}

/// Appends to `line` what still fits in [`MAX_LINE`].
fn keep(line: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_LINE.saturating_sub(line.len());
    line.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_line_that_matches_is_ready() {
        let mut m = ReadyLine::new("ready to accept connections$").unwrap();
        assert!(!m.feed(Stream::Out, b"starting\nloading data\n"));
        assert!(m.feed(
            Stream::Out,
            b"2026-12-07 LOG:  database system is ready to accept connections\n"
        ));
        // \r\n line ends too.
        assert!(m.feed(Stream::Err, b"x ready to accept connections\r\n"));
    }

    #[test]
    fn a_line_split_across_reads_is_matched_whole_and_streams_are_apart() {
        let mut m = ReadyLine::new("^Listening on port [0-9]+$").unwrap();
        assert!(!m.feed(Stream::Out, b"Listening on "));
        // stderr's bytes do not finish stdout's line.
        assert!(!m.feed(Stream::Err, b"port 80\n"));
        assert!(!m.feed(Stream::Out, b"port 8"));
        assert!(m.feed(Stream::Out, b"080\nmore"));
        // Not yet a line: nothing matched until it ends, or the output does.
        let mut m = ReadyLine::new("^up$").unwrap();
        assert!(!m.feed(Stream::Out, b"up"));
        assert!(m.finish());
        assert!(!m.finish());
    }

    #[test]
    fn bytes_that_are_not_utf8_are_matched_not_dropped() {
        let mut m = ReadyLine::new("ready").unwrap();
        assert!(m.feed(Stream::Out, b"\xff\xfe ready\n"));
    }

    #[test]
    fn a_huge_line_is_bounded_and_a_new_run_starts_clean() {
        let mut m = ReadyLine::new("^x+READY$").unwrap();
        let huge = vec![b'x'; MAX_LINE * 2];
        assert!(!m.feed(Stream::Out, &huge));
        // Its end is past what was kept: READY is not seen.
        assert!(!m.feed(Stream::Out, b"READY\n"));
        let mut m = ReadyLine::new("^ready$").unwrap();
        m.feed(Stream::Out, b"rea");
        m.reset();
        assert!(!m.feed(Stream::Out, b"dy\n"));
        assert!(m.feed(Stream::Out, b"ready\n"));
    }
}

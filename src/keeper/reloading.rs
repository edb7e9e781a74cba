//! The output of `reload_command` (see `core::machine::reload` for the reload
//! itself): it goes into a pipe of its own, which the keeper copies into the daemon's
//! log (its `stderr_log` where it has one) and of which it keeps the last lines for a
//! `reload-failed` event. What the command leaves holding that pipe writes on into the
//! log until it closes it.

use std::os::fd::{AsFd, OwnedFd};

use super::Keeper;

/// How many of a command's last output lines a `reload-failed` event keeps.
const TAIL_LINES: usize = 10;
/// How much of one output line it keeps.
const LINE_BYTES: usize = 300;

/// A command's output pipe, read by the keeper until every writer closed it.
#[derive(Debug)]
pub(super) struct Capture {
    pub(super) read: OwnedFd,
    /// The command it belongs to, while that one runs.
    pid: Option<i32>,
    tail: Tail,
    /// Every writer closed it; kept only until its command's end is handled.
    closed: bool,
    /// What goes before each of its lines in the log (a hook's name), if anything.
    prefix: Option<Vec<u8>>,
    /// The next byte begins a line.
    line_start: bool,
}

impl Capture {
    /// The read end `read` of the output pipe of the command `pid`.
    pub(super) fn new(read: OwnedFd, pid: i32) -> Capture {
        Capture {
            read,
            pid: Some(pid),
            tail: Tail::default(),
            closed: false,
            prefix: None,
            line_start: true,
        }
    }

    /// The same, with `prefix` before each of its lines in the log.
    pub(super) fn with_prefix(mut self, prefix: Vec<u8>) -> Capture {
        self.prefix = Some(prefix);
        self
    }

    /// `read` with the prefix before each line that begins in it.
    fn prefixed(&mut self, read: &[u8]) -> Option<Vec<u8>> {
        let prefix = self.prefix.as_ref()?;
        let mut out = Vec::with_capacity(read.len() + prefix.len() * 2);
        for &b in read {
            if self.line_start {
                out.extend_from_slice(prefix);
            }
            out.push(b);
            self.line_start = b == b'\n';
        }
        Some(out)
    }

    /// Returns true if and only if the loop should wait for more of it.
    pub(super) fn is_open(&self) -> bool {
        !self.closed
    }
}

/// The last lines of some output.
#[derive(Debug, Default)]
struct Tail {
    lines: std::collections::VecDeque<String>,
    partial: Vec<u8>,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.end_line();
            } else if self.partial.len() < LINE_BYTES {
                self.partial.push(b);
            }
        }
    }

    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    fn finish(mut self) -> Vec<String> {
        if !self.partial.is_empty() {
            self.end_line();
        }
        self.lines.into()
    }
}

impl Keeper {
    /// What the command `pid`, just reaped, wrote last, if the keeper read its output
    /// (`reload_command`): for the `reload-failed` event. Its pipe stays while some
    /// process it started still writes to it.
    pub(super) fn take_output(&mut self, pid: i32) -> Vec<String> {
        if !self.captures.iter().any(|c| c.pid == Some(pid)) {
            return Vec::new();
        }
        self.pump_captures();
        let tail = self
            .captures
            .iter_mut()
            .find(|c| c.pid == Some(pid))
            .map(|c| {
                c.pid = None;
                std::mem::take(&mut c.tail).finish()
            })
            .unwrap_or_default();
        self.captures.retain(|c| !c.closed);
        tail
    }

    /// Copies what the commands' pipes hold into the daemon's log, keeping the tail of
    /// a running command's; drops a pipe every writer has closed.
    #[inline(never)]
    pub(super) fn pump_captures(&mut self) {
        let buffer = &mut self.log_buffer;
        let sink = match &mut self.err {
            Some(err) => &mut err.sink,
            None => &mut self.out.sink,
        };
        self.captures.retain_mut(|capture| loop {
            if capture.closed {
                break true;
            }
            match buffer.read(capture.read.as_fd()) {
                Ok([]) => {}
                Ok(read) => {
                    match capture.prefixed(read) {
                        Some(prefixed) => sink.write_output(&prefixed),
                        None => sink.write_output(read),
                    }
                    if capture.pid.is_some() {
                        capture.tail.push(read);
                    }
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {}
            }
            // Every writer closed it (or it broke): its command's tail is still to be
            // taken when the command is reaped.
            capture.closed = true;
            break capture.pid.is_some();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_keeps_the_last_lines_cut_to_size() {
        let mut tail = Tail::default();
        for i in 0..15 {
            tail.push(format!("line {i}\n").as_bytes());
        }
        tail.push(&[b'x'; 1000]);
        let lines = tail.finish();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines[0], "line 6");
        assert_eq!(lines[TAIL_LINES - 1].len(), LINE_BYTES);
    }
}

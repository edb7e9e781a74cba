//! The keeper's side of a daemon's log: bytes from the daemon's pipe appended to the
//! log file, optional per-line timestamps and rotation at line boundaries. Nothing
//! else goes into it: the keeper's own notes are events (`crate::events`).
//!
//! The file is opened with `O_APPEND` and never truncated by rotation. Rotation
//! renames `NAME.log.(K-1)` to `NAME.log.K` down to `NAME.log` to `NAME.log.1`, then
//! opens a fresh `NAME.log`; it happens only at a line boundary, so no line is split
//! across files, and the keeper owns the pipe, so no line is lost while it rotates.
//!
//! A log that cannot be written (a full disk, a quota) never stops the daemon, and
//! never holds a line the daemon did not write: a line is written whole or dropped
//! whole. A write that fails part-way is cut back ([`File::set_len`], which needs no
//! space) to the start of the line it tore, the rest of that line is dropped as it
//! arrives, and the next write starts at a line boundary, so no two lines are ever
//! fused. Dropped lines are counted, and the sink tells its keeper ([`Notice`]) when
//! writing first fails and, with the count, when a write succeeds again, as
//! journald reports the messages it suppressed.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::logfile::rotated as numbered;
use std::time::SystemTime;

/// What a log sink has to tell its keeper, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// Writing failed, after it had worked: the reason, with the path.
    Failed(String),
    /// A write succeeded again after failures; `dropped` lines were not written.
    Resumed {
        /// The lines dropped whole since writing failed.
        dropped: u64,
        /// Why writing had failed.
        error: String,
    },
}

/// One log file the keeper appends to.
#[derive(Debug)]
pub(crate) struct LogSink {
    path: PathBuf,
    file: Option<File>,
    /// Bytes in the file, as far as this writer knows.
    size: u64,
    max_size: u64,
    keep: u32,
    timestamps: bool,
    at_line_start: bool,
    /// Bytes of the current line written so far, when it is not ended.
    line_len: u64,
    /// Where the current line begins in the file (once what is buffered is written).
    line_start: u64,
    /// Where the line of the buffer's first byte begins in the file: a write that
    /// fails before the buffer's first newline is cut back to it.
    buffer_line_start: u64,
    /// The current line was dropped: the rest of it is dropped as it arrives.
    dropping: bool,
    /// `rotate` was asked for in the middle of a line: rotate when it ends.
    rotation_due: bool,
    buffer: Vec<u8>,
    /// Why writing fails, from the first failure until a write succeeds again.
    error: Option<String>,
    /// Lines dropped whole since writing failed.
    dropped: u64,
    notices: Vec<Notice>,
    /// Tests only: the size past which the file cannot grow, as on a full disk.
    #[cfg(test)]
    disk: Option<u64>,
}

impl LogSink {
    /// Opens (creating) the log at `path` for appending.
    pub(crate) fn open(
        path: &Path,
        max_size: u64,
        keep: u32,
        timestamps: bool,
    ) -> std::io::Result<LogSink> {
        let file = open_append(path)?;
        let size = file.metadata().map_or(0, |m| m.len());
        Ok(LogSink {
            path: path.to_path_buf(),
            file: Some(file),
            size,
            max_size,
            keep,
            timestamps,
            at_line_start: true,
            line_len: 0,
            line_start: size,
            buffer_line_start: size,
            dropping: false,
            rotation_due: false,
            buffer: Vec::new(),
            error: None,
            dropped: 0,
            notices: Vec::new(),
            #[cfg(test)]
            disk: None,
        })
    }

    /// Opens the log at `path` as [`LogSink::open`] does, to go on with the line its
    /// last writer left unfinished (a holder taking over from its dead keeper): what
    /// comes next is that line's rest, neither stamped nor cut from it.
    pub(crate) fn open_continuing(
        path: &Path,
        max_size: u64,
        keep: u32,
        timestamps: bool,
    ) -> std::io::Result<LogSink> {
        let mut sink = LogSink::open(path, max_size, keep, timestamps)?;
        // The sink's own file is opened for appending only.
        let start = crate::files::open_regular(path)
            .and_then(|(file, _)| last_line_start(&file, sink.size));
        if let Ok(start) = start {
            if start < sink.size {
                sink.at_line_start = false;
                sink.line_start = start;
                sink.buffer_line_start = start;
                sink.line_len = sink.size - start;
            }
        }
        Ok(sink)
    }

    /// The words of a `log-resumed` event.
    pub(crate) fn resumed_message(dropped: u64, error: &str) -> String {
        let s = if dropped == 1 { "" } else { "s" };
        format!("{dropped} line{s} dropped whole: {error}")
    }

    /// Appends the daemon's output, stamping and rotating line by line.
    pub(crate) fn write_output(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let end = data
                .iter()
                .position(|&b| b == b'\n')
                .map_or(data.len(), |i| i + 1);
            let (segment, rest) = data.split_at(end);
            data = rest;
            let ends_line = segment.ends_with(b"\n");
            if self.dropping {
                // The rest of a line whose start could not be written: dropped too
                // (and counted once, when it was dropped).
                if ends_line {
                    self.dropping = false;
                    self.at_line_start = true;
                    if self.rotation_due {
                        self.rotate_now();
                    }
                }
                continue;
            }
            if self.at_line_start {
                let stamp_len = if self.timestamps { 25 } else { 0 };
                // What the file holds once the buffer is flushed; a line always goes
                // into an empty file, however long it is.
                let pending = self.size + self.buffer.len() as u64;
                let incoming = (segment.len() + stamp_len) as u64;
                if self.max_size > 0 && pending > 0 && pending + incoming > self.max_size {
                    self.rotate_now();
                }
                self.line_len = 0;
                self.line_start = self.size + self.buffer.len() as u64;
                if self.buffer.is_empty() {
                    self.buffer_line_start = self.line_start;
                }
                if self.timestamps {
                    self.buffer.extend_from_slice(stamp().as_bytes());
                    self.buffer.push(b' ');
                    self.line_len = stamp_len as u64;
                }
            } else if self.buffer.is_empty() {
                self.buffer_line_start = self.line_start;
            }
            self.buffer.extend_from_slice(segment);
            self.line_len += segment.len() as u64;
            self.at_line_start = ends_line;
            if self.at_line_start {
                if self.rotation_due {
                    self.rotate_now();
                }
            } else if self.max_size > 0 && self.line_len > self.max_size {
                // A line longer than a whole file cannot be kept whole; it goes on in
                // the next file, so that output without newlines cannot grow one log
                // without bound. Nothing is lost or added.
                self.rotate_now();
                self.line_len = 0;
            }
        }
        self.flush();
    }

    /// A run of the daemon is over. With `log_timestamps`, a last line it left
    /// unfinished is ended, so that the next run's first line starts with its own
    /// time; without, the file keeps exactly the bytes the daemon wrote.
    pub(crate) fn end_run(&mut self) {
        if self.dropping {
            // The next run's first line starts a line of its own.
            self.dropping = !self.timestamps;
            self.at_line_start = self.timestamps;
        } else if self.timestamps && !self.at_line_start {
            self.write_output_raw(b"\n");
        }
    }

    fn write_output_raw(&mut self, bytes: &[u8]) {
        let timestamps = std::mem::replace(&mut self.timestamps, false);
        self.write_output(bytes);
        self.timestamps = timestamps;
    }

    /// Rotates now, or at the end of the current line if one is half written, so that
    /// `dmgr rotate` never splits a line. An empty log is left as it is: rotating it
    /// would only push the oldest kept file out for an empty one.
    pub(crate) fn rotate(&mut self) {
        if self.is_empty() {
            return;
        }
        if self.at_line_start {
            self.rotate_now();
        } else {
            self.rotation_due = true;
        }
    }

    /// Returns true if and only if the log file holds nothing and nothing waits to go
    /// into it.
    fn is_empty(&self) -> bool {
        let len = match &self.file {
            Some(file) => file.metadata().map(|m| m.len()),
            None => fs::metadata(&self.path).map(|m| m.len()),
        };
        self.at_line_start && self.buffer.is_empty() && len.map_or(true, |len| len == 0)
    }

    fn rotate_now(&mut self) {
        self.rotation_due = false;
        self.flush();
        self.file = None;
        // Only the files that are there are renamed: `NAME.log.1` up to the first one
        // missing, at most `keep - 1` of them (the oldest is replaced by the rename
        // onto it). A loop over `keep` would make billions of failing renames for a
        // huge `log_keep` (issue 16).
        let present = (1..self.keep)
            .take_while(|&index| fs::symlink_metadata(numbered(&self.path, index)).is_ok())
            .count() as u32;
        for index in (1..=present).rev() {
            let _ = fs::rename(numbered(&self.path, index), numbered(&self.path, index + 1));
        }
        if self.keep > 0 {
            let _ = fs::rename(&self.path, numbered(&self.path, 1));
        } else {
            let _ = fs::remove_file(&self.path);
        }
        match open_append(&self.path) {
            Ok(file) => {
                self.size = file.metadata().map_or(0, |m| m.len());
                self.file = Some(file);
            }
            Err(e) => {
                self.size = 0;
                self.fail(&e);
            }
        }
        // A line cut by the size limit goes on at the new file's start.
        self.line_start = self.size;
        self.buffer_line_start = self.size;
    }

    /// Why writing fails now; `None` once a write has succeeded again.
    pub(crate) fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// What happened since the last call, oldest first.
    pub(crate) fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// Writes the buffer: every line in it whole, or each line it cannot write dropped
    /// whole and counted.
    fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        if self.file.is_none() {
            // A previous failure closed it: try again, the disk may have room now.
            match open_append(&self.path) {
                Ok(file) => {
                    self.size = file.metadata().map_or(0, |m| m.len());
                    self.file = Some(file);
                }
                Err(e) => {
                    let lost = std::mem::take(&mut self.buffer);
                    self.drop_lines(&lost);
                    self.fail(&e);
                    return;
                }
            }
        }
        let room = self.room();
        let Some(file) = &mut self.file else {
            return;
        };
        let (written, result) = write_counted(file, &self.buffer, room);
        match result {
            Ok(()) => {
                self.size += self.buffer.len() as u64;
                self.buffer.clear();
                self.succeeded();
            }
            Err(e) => {
                // Where the buffer went in the file: at its end, as far as it got.
                let end = file
                    .metadata()
                    .map_or(self.size + written as u64, |m| m.len());
                let at = end.saturating_sub(written as u64);
                let boundary = match self.buffer[..written].iter().rposition(|&b| b == b'\n') {
                    Some(last) => at + last as u64 + 1,
                    None => self.buffer_line_start.min(at),
                };
                if end > boundary {
                    // A truncate frees space: it cannot fail for want of it.
                    let _ = file.set_len(boundary);
                }
                self.size = boundary;
                let from = usize::try_from(boundary.saturating_sub(at)).unwrap_or(usize::MAX);
                let lost = std::mem::take(&mut self.buffer);
                self.drop_lines(lost.get(from..).unwrap_or_default());
                self.fail(&e);
            }
        }
    }

    /// Counts the lines of `lost`, bytes that were not written, as dropped; the last
    /// one, if unfinished, is dropped to its end as the rest of it arrives.
    fn drop_lines(&mut self, lost: &[u8]) {
        if lost.is_empty() {
            return;
        }
        let ended = lost.iter().filter(|&&b| b == b'\n').count() as u64;
        let unfinished = !lost.ends_with(b"\n");
        self.dropped += ended + u64::from(unfinished);
        self.dropping = unfinished;
    }

    /// How many bytes the file may still grow by (see [`LogSink::disk`]).
    #[cfg(not(test))]
    fn room(&self) -> usize {
        usize::MAX
    }

    #[cfg(test)]
    fn room(&self) -> usize {
        let len = self
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        self.disk
            .map_or(usize::MAX, |disk| disk.saturating_sub(len) as usize)
    }

    fn succeeded(&mut self) {
        if let Some(error) = self.error.take() {
            let dropped = std::mem::take(&mut self.dropped);
            self.notices.push(Notice::Resumed { dropped, error });
        }
    }

    fn fail(&mut self, err: &std::io::Error) {
        if self.error.is_none() {
            let error = format!("cannot write {}: {err}", self.path.display());
            self.notices.push(Notice::Failed(error.clone()));
            self.error = Some(error);
        }
    }
}

/// Where the last line of `file`, `len` bytes long, begins: `len` when it ends in a
/// newline (or is empty), else just after the last newline before it.
fn last_line_start(file: &File, len: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut end = len;
    let mut chunk = [0u8; 512];
    while end > 0 {
        let from = end.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..(end - from) as usize];
        file.read_exact_at(part, from)?;
        if let Some(last) = part.iter().rposition(|&b| b == b'\n') {
            let start = from + last as u64 + 1;
            return Ok(start);
        }
        end = from;
    }
    Ok(0)
}

/// Writes all of `bytes` with as many write(2) calls as it takes, and returns how
/// many bytes were written before an error, if one stopped it. Past `room` bytes a
/// write fails as on a full disk (tests only: `usize::MAX` otherwise).
fn write_counted(file: &mut File, bytes: &[u8], room: usize) -> (usize, std::io::Result<()>) {
    let mut written = 0;
    while written < bytes.len() {
        if written >= room {
            return (
                written,
                Err(std::io::Error::from_raw_os_error(libc::ENOSPC)),
            );
        }
        let end = bytes.len().min(room);
        match file.write(&bytes[written..end]) {
            Ok(0) => return (written, Err(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (written, Err(e)),
        }
    }
    (written, Ok(()))
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        check_dir(dir)?;
    }
    crate::files::open_planted_safe(
        OpenOptions::new().append(true).create(true).mode(0o644),
        path,
    )
}

/// Creates the log directory if it is missing and, as root, refuses one that a user
/// other than root owns or that group or others may write to, sticky or not, and one
/// below a directory that is not root's alone (see [`crate::trusted_dir`]): whoever
/// can write there can swap the log for a hard link to a file of root's, a FIFO, or a
/// file of their own between two rotations (logrotate refuses such directories for
/// the same reason), and whoever can write a directory above it can swap the log
/// directory itself for a symlink to `/var/log` (issue 22, finding 4). A symlink to
/// the directory is followed where only root could have made it.
fn check_dir(dir: &Path) -> std::io::Result<()> {
    if crate::files::euid() != 0 {
        return fs::create_dir_all(dir);
    }
    crate::trusted_dir::TrustedDir::open(dir, true, crate::trusted_dir::LastLink::Follow)
        .map(drop)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

fn stamp() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests;

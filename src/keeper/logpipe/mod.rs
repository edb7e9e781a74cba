//! The keeper's side of a daemon's log: bytes from the daemon's pipe appended to the
//! log file, optional per-line timestamps and rotation at line boundaries. Nothing
//! else goes into it: the keeper's own notes are events (`crate::events`).
//!
//! The file is opened with `O_APPEND` and never truncated. Rotation renames
//! `NAME.log.(K-1)` to `NAME.log.K` down to `NAME.log` to `NAME.log.1`, then opens a
//! fresh `NAME.log`; it happens only at a line boundary, so no line is split across
//! files, and the keeper owns the pipe, so no line is lost while it rotates.
//! A log that cannot be written never stops the daemon: the first error is kept for
//! the state record and output is dropped until writing works again.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::logfile::rotated as numbered;
use std::time::SystemTime;

/// One log file the keeper appends to.
#[derive(Debug)]
pub(super) struct LogSink {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_size: u64,
    keep: u32,
    timestamps: bool,
    at_line_start: bool,
    /// Bytes of the current line written so far, when it is not ended.
    line_len: u64,
    /// `rotate` was asked for in the middle of a line: rotate when it ends.
    rotation_due: bool,
    buffer: Vec<u8>,
    error: Option<String>,
}

impl LogSink {
    /// Opens (creating) the log at `path` for appending.
    pub(super) fn open(
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
            rotation_due: false,
            buffer: Vec::new(),
            error: None,
        })
    }

    /// Appends the daemon's output, stamping and rotating line by line.
    pub(super) fn write_output(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let end = data
                .iter()
                .position(|&b| b == b'\n')
                .map_or(data.len(), |i| i + 1);
            let (segment, rest) = data.split_at(end);
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
                if self.timestamps {
                    self.buffer.extend_from_slice(stamp().as_bytes());
                    self.buffer.push(b' ');
                    self.line_len = stamp_len as u64;
                }
            }
            self.buffer.extend_from_slice(segment);
            self.line_len += segment.len() as u64;
            self.at_line_start = segment.ends_with(b"\n");
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
            data = rest;
        }
        self.flush();
    }

    /// A run of the daemon is over. With `log_timestamps`, a last line it left
    /// unfinished is ended, so that the next run's first line starts with its own
    /// time; without, the file keeps exactly the bytes the daemon wrote.
    pub(super) fn end_run(&mut self) {
        if self.timestamps && !self.at_line_start {
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
    pub(super) fn rotate(&mut self) {
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
            Err(e) => self.fail(&e),
        }
    }

    /// The first write error, if any.
    pub(super) fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        if self.file.is_none() {
            // A previous failure closed it: try again, the disk may have room now.
            match open_append(&self.path) {
                Ok(file) => self.file = Some(file),
                Err(_) => {
                    self.buffer.clear();
                    return;
                }
            }
        }
        let result = self.file.as_mut().map(|f| f.write_all(&self.buffer));
        match result {
            Some(Ok(())) => self.size += self.buffer.len() as u64,
            Some(Err(e)) => self.fail(&e),
            None => {}
        }
        self.buffer.clear();
    }

    fn fail(&mut self, err: &std::io::Error) {
        if self.error.is_none() {
            self.error = Some(format!("cannot write {}: {err}", self.path.display()));
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
        check_dir(dir)?;
    }
    crate::files::open_planted_safe(
        OpenOptions::new().append(true).create(true).mode(0o644),
        path,
    )
}

/// As root, refuses a log directory that a user other than root owns or that group or
/// others may write to, sticky or not: whoever can write there can swap the log for a
/// hard link to a file of root's, a FIFO, or a file of their own between two
/// rotations (logrotate refuses such directories for the same reason). The directory
/// is checked where a symlink to it leads, since that is where the files go.
fn check_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if crate::files::euid() != 0 {
        return Ok(());
    }
    let meta = fs::metadata(dir)?;
    let why = if meta.uid() != 0 {
        format!(
            "its directory {} is owned by uid {}, not root; give it to root \
             (`chown root`) or log elsewhere",
            dir.display(),
            meta.uid()
        )
    } else if meta.mode() & 0o022 != 0 {
        format!(
            "its directory {} is writable by group or others; run `chmod go-w` on it \
             or log elsewhere",
            dir.display()
        )
    } else {
        return Ok(());
    };
    Err(std::io::Error::other(why))
}

fn stamp() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests;

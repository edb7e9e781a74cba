//! Where a daemon's log stood when a start began, so that a failed start shows the
//! lines this start wrote and none of an earlier run's (an old "Address already in
//! use" is no reason for today's failure).

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The most of a log a failed start reads back.
const READ_BACK: u64 = 64 << 10;

/// A log file and its identity and length at one moment.
#[derive(Debug, Clone)]
pub(crate) struct LogMark {
    path: PathBuf,
    /// The file's inode and length then; `None` when it did not exist.
    at: Option<(u64, u64)>,
}

impl LogMark {
    /// The log at `path` as it is now.
    pub(crate) fn now(path: &Path) -> LogMark {
        LogMark {
            path: path.to_path_buf(),
            at: std::fs::symlink_metadata(path)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| (m.ino(), m.len())),
        }
    }

    /// The last `n` lines written to the log since the mark (all of a file that is
    /// not the one marked: created, or rotated in, since).
    pub(crate) fn tail(&self, n: usize) -> Vec<String> {
        // Never blocks on a FIFO planted where the log should be.
        let Ok((mut file, meta)) = crate::files::open_regular(&self.path) else {
            return Vec::new();
        };
        let from = match self.at {
            Some((inode, len)) if inode == meta.ino() && len <= meta.len() => len,
            _ => 0,
        };
        let from = from.max(meta.len().saturating_sub(READ_BACK));
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut bytes).is_err() {
            return Vec::new();
        }
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
            .collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn only_the_lines_written_since_the_mark_are_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.log");
        std::fs::write(&path, "Address already in use\n").unwrap();
        let mark = LogMark::now(&path);
        assert!(mark.tail(10).is_empty());
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        log.write_all(b"starting\nno such file: /etc/web.conf\n")
            .unwrap();
        assert_eq!(mark.tail(10), ["starting", "no such file: /etc/web.conf"]);
        assert_eq!(mark.tail(1), ["no such file: /etc/web.conf"]);
        // A log that did not exist then is all this start's.
        let fresh = LogMark::now(&dir.path().join("new.log"));
        std::fs::write(dir.path().join("new.log"), "one\n").unwrap();
        assert_eq!(fresh.tail(10), ["one"]);
    }
}

//! Following files, for the `-f` of `dmgr logs` and `dmgr events`: waiting for them to
//! change (inotify on the files' directories where the kernel has it, else polling),
//! and reading the lines added since, across a file replaced at its path.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// How long `-f` sleeps between looks when the kernel cannot tell it of changes: no
/// inotify, or a directory that does not exist yet.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// The longest `-f` waits on inotify: a safety net for file systems whose changes
/// inotify does not see (NFS, FUSE), as GNU `tail -F` has.
const SAFETY_NET: Duration = Duration::from_secs(1);

/// Wakes `-f` when a followed log may have changed: inotify on the logs' directories
/// reports a write to a file in them, and the rename and create of a rotation, so new
/// lines show at once and an idle follower sleeps. Where a directory cannot be watched
/// (it does not exist yet, or inotify is unavailable) it falls back to polling.
pub(crate) struct Waker {
    inotify: Option<Inotify>,
    timeout: Duration,
}

impl Waker {
    /// Watches the directories of `paths`.
    pub(crate) fn watching<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> Waker {
        let Ok(inotify) = Inotify::init(InitFlags::IN_CLOEXEC) else {
            return Waker {
                inotify: None,
                timeout: POLL_INTERVAL,
            };
        };
        let mask = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_DELETE;
        let mut all_watched = true;
        for path in paths {
            let dir = path.parent().unwrap_or(Path::new("/"));
            all_watched &= inotify.add_watch(dir, mask).is_ok();
        }
        Waker {
            inotify: Some(inotify),
            timeout: if all_watched {
                SAFETY_NET
            } else {
                POLL_INTERVAL
            },
        }
    }

    /// Returns after a change or the timeout, having consumed the pending events.
    pub(crate) fn wait(&self) {
        let Some(inotify) = &self.inotify else {
            std::thread::sleep(self.timeout);
            return;
        };
        let ms = u16::try_from(self.timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(ms)).is_ok_and(|ready| ready > 0) {
            let _ = inotify.read_events();
        }
    }
}

/// What a follower reads of a file that replaced the one it followed (a new inode at
/// the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replaced {
    /// All of it: a rotated log starts afresh.
    ReadFromStart,
    /// What follows the last line already read: a compacted event history starts
    /// with the newest lines of the old one.
    AfterLastSeen,
}

/// Follows one file across replacement and truncation.
#[derive(Debug)]
pub(crate) struct Follower {
    path: PathBuf,
    file: Option<File>,
    inode: u64,
    partial: Vec<u8>,
    replaced: Replaced,
    /// The last complete line read, for [`Replaced::AfterLastSeen`].
    last: Option<Vec<u8>>,
}

impl Follower {
    /// Follows `path` from its current end.
    pub(crate) fn at_end(path: PathBuf, replaced: Replaced) -> Follower {
        let mut follower = Follower {
            path,
            file: None,
            inode: 0,
            partial: Vec::new(),
            replaced,
            last: None,
        };
        if let Ok((mut file, meta)) = crate::files::open_regular(&follower.path) {
            if replaced == Replaced::AfterLastSeen {
                let mut bytes = Vec::new();
                let _ = file.read_to_end(&mut bytes);
                follower.last = complete_lines(&bytes).pop();
            }
            let _ = file.seek(SeekFrom::End(0));
            follower.inode = meta.ino();
            follower.file = Some(file);
        }
        follower
    }

    /// Complete lines written since the last call, without their newlines.
    pub(crate) fn new_lines(&mut self) -> Vec<Vec<u8>> {
        let mut bytes = std::mem::take(&mut self.partial);
        if let Some(file) = &mut self.file {
            let _ = file.read_to_end(&mut bytes);
        }
        let current = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        if current.is_some() && current != Some(self.inode) {
            // Replaced: the old file is finished (read above); go on with the new one.
            if let Ok((mut file, meta)) = crate::files::open_regular(&self.path) {
                let mut fresh = Vec::new();
                let _ = file.read_to_end(&mut fresh);
                let start = match self.replaced {
                    Replaced::ReadFromStart => 0,
                    Replaced::AfterLastSeen => {
                        // A line the old file had not finished is in the new one whole.
                        bytes
                            .truncate(bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1));
                        let seen = complete_lines(&bytes).pop().or(self.last.clone());
                        seen.and_then(|line| after_line(&fresh, &line)).unwrap_or(0)
                    }
                };
                bytes.extend_from_slice(&fresh[start..]);
                self.inode = meta.ino();
                self.file = Some(file);
            }
        } else if let Some(file) = &mut self.file {
            let len = file.metadata().map_or(0, |m| m.len());
            if file.stream_position().is_ok_and(|pos| pos > len) {
                let _ = file.seek(SeekFrom::Start(0));
            }
        }
        let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.partial = bytes.split_off(end);
        let lines = complete_lines(&bytes);
        if let Some(line) = lines.last() {
            self.last = Some(line.clone());
        }
        lines
    }
}

/// The complete lines of `bytes`, without their newlines.
fn complete_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    match bytes[..end].strip_suffix(b"\n") {
        Some(lines) => lines.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect(),
        None => Vec::new(),
    }
}

/// Where what follows the last occurrence of the whole line `line` in `bytes` starts.
fn after_line(bytes: &[u8], line: &[u8]) -> Option<usize> {
    let mut needle = line.to_vec();
    needle.push(b'\n');
    bytes
        .windows(needle.len())
        .rposition(|w| w == needle.as_slice())
        .map(|at| at + needle.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compacted_file_is_read_on_after_the_last_line_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.events");
        std::fs::write(&path, "a\nb\n").unwrap();
        let mut follower = Follower::at_end(path.clone(), Replaced::AfterLastSeen);
        let mut rotated = Follower::at_end(path.clone(), Replaced::ReadFromStart);
        std::fs::write(dir.path().join("new"), "b\nc\n").unwrap();
        std::fs::rename(dir.path().join("new"), &path).unwrap();
        assert_eq!(follower.new_lines(), [b"c".to_vec()]);
        assert_eq!(rotated.new_lines(), [b"b".to_vec(), b"c".to_vec()]);
    }
}

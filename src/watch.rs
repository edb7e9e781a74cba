//! Waiting for files to change, for the `-f` of `dmgr logs` and `dmgr events`: inotify
//! on the files' directories where the kernel has it, else polling.

use std::os::fd::AsFd;
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
pub struct Waker {
    inotify: Option<Inotify>,
    timeout: Duration,
}

impl Waker {
    /// Watches the directories of `paths`.
    pub fn watching<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> Waker {
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
    pub fn wait(&self) {
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

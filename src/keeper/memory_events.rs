//! `memory_max` without polling: where the daemon's cgroup has the memory controller,
//! the keeper writes the ceiling to its `memory.high` and sleeps until the kernel
//! changes `memory.events`, which it watches with inotify (`IN_MODIFY`: the kernel
//! notifies a change of a cgroup's event file as a modification). The inotify
//! descriptor is one more fd in the keeper's poll(2); there is no timer.
//!
//! Over `memory.high` the kernel reclaims the cgroup's memory and throttles its
//! processes, and counts a `high` event. `memory.max` is left alone, at no limit: at
//! `memory.max` the kernel's OOM killer would kill one of the daemon's processes
//! behind the keeper's back, with no `memory-exceeded` event and no stop sequence.
//! The decision stays in the keeper's core (`MemoryWatch`); this module owns the
//! descriptor and the reads. Where any step fails, the keeper samples instead (`keeper::checks`).
//! Safe code only: nix wraps inotify.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::cgroup;
use crate::memory::{CgroupMemory, MemoryEvents};

/// The inotify watch on one cgroup's `memory.events`, with the ceiling in place.
#[derive(Debug)]
pub(crate) struct MemoryEventsWatcher {
    inotify: Inotify,
    memory: CgroupMemory,
}

impl MemoryEventsWatcher {
    /// Makes the cgroup `dir` enforce the ceiling `max` bytes through `memory.high`
    /// and watches its `memory.events`; the error says why that cannot be, for the
    /// record of a keeper that samples instead. The watch comes first, so that a
    /// failure leaves `memory.high` as it was.
    pub(crate) fn set_up(dir: &Path, max: u64) -> Result<MemoryEventsWatcher, String> {
        cgroup::enable_memory(dir)?;
        let memory = CgroupMemory::open(dir)
            .ok_or_else(|| format!("{} has no memory.current", dir.display()))?;
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| format!("inotify: {e}"))?;
        let events = memory.events_file();
        inotify
            .add_watch(&events, AddWatchFlags::IN_MODIFY)
            .map_err(|e| format!("cannot watch {}: {e}", events.display()))?;
        memory
            .events()
            .map_err(|e| format!("{}: {e}", events.display()))?;
        memory
            .set_high(Some(max))
            .map_err(|e| format!("cannot write {}/memory.high: {e}", dir.display()))?;
        Ok(MemoryEventsWatcher { inotify, memory })
    }

    /// Takes the ceiling away again (`memory.high` back to `max`): `memory_max` was
    /// removed from the file, or can no longer be enforced this way.
    pub(crate) fn lift(&self) {
        let _ = self.memory.set_high(None);
    }

    /// The counters of `memory.events` now.
    pub(crate) fn counters(&self) -> Option<MemoryEvents> {
        self.memory.events().ok()
    }

    /// The descriptor was readable: drains the notifications (until none is left, or
    /// poll(2) would wake at once again) and reads `memory.events`, for the machine to
    /// judge whether a counter grew (see [`crate::keeper::core::memory::MemoryWatch`]).
    pub(crate) fn on_wake(&self) -> Option<MemoryEvents> {
        loop {
            match self.inotify.read_events() {
                Ok(events) if !events.is_empty() => {}
                Err(Errno::EINTR) => {}
                _ => break,
            }
        }
        self.counters()
    }
}

impl AsFd for MemoryEventsWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::Duration;

    use nix::poll::{PollFd, PollFlags, PollTimeout};

    use super::*;
    use crate::keeper::core::memory::{Exceeded, MemoryWatch};
    use crate::memory::Usage;

    /// A wake-up as the keeper's machine handles it: the counters, judged by `watch`,
    /// and where a counter grew, the cgroup's usage measured and judged.
    fn wake(
        watcher: &MemoryEventsWatcher,
        watch: &mut MemoryWatch,
        dir: &Path,
    ) -> Option<(Usage, Option<Exceeded>)> {
        let counters = watcher.on_wake()?;
        if !watch.on_events(counters) {
            return None;
        }
        let usage = CgroupMemory::open(dir)?.usage().ok()?;
        Some((usage, watch.on_sample(crate::keeper::test_epoch(), usage)))
    }

    /// Returns true if and only if `fd` becomes readable within `deadline`.
    fn readable_within(fd: BorrowedFd<'_>, deadline: Duration) -> bool {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(deadline.as_millis() as i32).unwrap();
        nix::poll::poll(&mut fds, ms).unwrap() == 1
    }

    /// A directory of regular files standing in for a cgroup with the memory
    /// controller, below `memory_max` for now.
    fn fake_cgroup() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let write = |f: &str, text: &str| fs::write(dir.path().join(f), text).unwrap();
        write("memory.high", "max\n");
        write("memory.max", "max\n");
        write("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
        write("memory.current", "1048576\n");
        write("memory.stat", "anon 1048576\ninactive_file 0\n");
        write("cgroup.procs", "4242\n");
        dir
    }

    /// The ceiling goes to memory.high, memory.max stays at no limit, and the watcher
    /// sleeps until memory.events changes: then it wakes, the counters say `high`
    /// grew, and the decision reads memory.current, less the inactive page cache.
    #[test]
    fn a_high_event_wakes_the_watcher_and_the_usage_above_the_ceiling_is_reported() {
        let cgroup = fake_cgroup();
        let write = |f: &str, text: &str| fs::write(cgroup.path().join(f), text).unwrap();
        let max = 64 << 20;
        let watcher = MemoryEventsWatcher::set_up(cgroup.path(), max).unwrap();
        let read = |f: &str| fs::read_to_string(cgroup.path().join(f)).unwrap();
        assert_eq!(read("memory.high"), format!("{max}\n"));
        assert_eq!(read("memory.max"), "max\n");

        let mut watch = MemoryWatch::on_kernel_events(max);
        watch.resume(crate::keeper::test_epoch());
        watch.on_events(watcher.counters().unwrap());
        assert!(!readable_within(watcher.as_fd(), Duration::ZERO));

        // Over memory.high, and the kernel could not take it back.
        write("memory.current", &format!("{}\n", 80 << 20));
        write(
            "memory.stat",
            &format!("anon {}\ninactive_file {}\n", 70 << 20, 10 << 20),
        );
        write("memory.events", "low 0\nhigh 1\nmax 0\noom 0\noom_kill 0\n");
        assert!(readable_within(watcher.as_fd(), Duration::from_secs(10)));
        let measured = wake(&watcher, &mut watch, cgroup.path()).unwrap();
        assert_eq!(
            measured,
            (
                Usage {
                    bytes: 70 << 20,
                    processes: 1
                },
                Some(Exceeded {
                    used: 70 << 20,
                    max
                }),
            )
        );
        // Drained: poll(2) sleeps again.
        assert!(!readable_within(watcher.as_fd(), Duration::ZERO));

        watcher.lift();
        assert_eq!(read("memory.high"), "max\n");
    }

    /// A wake-up whose counters did not grow (another change of the file), or that
    /// comes while the daemon is not up, measures nothing; a `high` event after which
    /// the kernel reclaimed the cache below the ceiling reports nothing.
    #[test]
    fn a_wake_up_without_growth_or_below_the_ceiling_reports_nothing() {
        let cgroup = fake_cgroup();
        let write = |f: &str, text: &str| fs::write(cgroup.path().join(f), text).unwrap();
        let max = 64 << 20;
        let watcher = MemoryEventsWatcher::set_up(cgroup.path(), max).unwrap();
        let mut watch = MemoryWatch::on_kernel_events(max);

        // Paused (the daemon is starting or stopping): drained and ignored.
        write("memory.events", "high 3\n");
        assert!(readable_within(watcher.as_fd(), Duration::from_secs(10)));
        assert_eq!(wake(&watcher, &mut watch, cgroup.path()), None);
        assert!(!readable_within(watcher.as_fd(), Duration::ZERO));

        watch.resume(crate::keeper::test_epoch());
        watch.on_events(watcher.counters().unwrap());
        write("memory.events", "high 3\n");
        assert!(readable_within(watcher.as_fd(), Duration::from_secs(10)));
        assert_eq!(wake(&watcher, &mut watch, cgroup.path()), None);

        // Over memory.high in page cache, which the kernel reclaims.
        write("memory.current", &format!("{}\n", 66 << 20));
        write("memory.stat", &format!("inactive_file {}\n", 30 << 20));
        write("memory.events", "high 4\n");
        assert!(readable_within(watcher.as_fd(), Duration::from_secs(10)));
        let (usage, exceeded) = wake(&watcher, &mut watch, cgroup.path()).unwrap();
        assert_eq!(usage.bytes, 36 << 20);
        assert_eq!(exceeded, None);
        assert_eq!(watch.poll_timeout(), None, "no timer");
    }

    /// Without the controller's files nothing is written and the reason is given.
    #[test]
    fn a_cgroup_without_the_memory_controller_is_not_set_up() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("dmgr-web-1");
        fs::create_dir(&dir).unwrap();
        let why = MemoryEventsWatcher::set_up(&dir, 1 << 30).unwrap_err();
        assert!(why.contains("memory controller is not available"), "{why}");
        assert!(!dir.join("memory.high").exists());
    }
}

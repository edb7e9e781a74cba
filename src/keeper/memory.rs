//! The decisions and measurements of `memory_max`: how much memory a set of
//! processes uses, the memory of a cgroup, and a sans-IO watch that says when to sample
//! and when the ceiling is crossed, with the clock passed in. `keeper::liveness` runs
//! it. Safe code only.
//!
//! [`MemoryWatch`] asks for a sample every [`SAMPLE_INTERVAL`] while the daemon is up
//! and reports a sum above the ceiling once, with the figure (`memory-exceeded`); it
//! pauses while the daemon stops or waits in backoff, so a keeper without
//! `memory_max` has no timer at all. The sample is [`usage_of`] the daemon's processes
//! (their proportional set sizes), or [`CgroupMemory::current`] where the keeper made a
//! cgroup whose memory controller is enabled. Both are sampled: the cgroup's
//! `memory.high` and `memory.events`, which would let the kernel wake the keeper
//! instead, are not used yet.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::procinfo;

/// How often the memory of a daemon without a cgroup is sampled: a 200 MB burst is
/// caught within this, and the cost is one read of `smaps_rollup` per process.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// How much memory a set of processes uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Bytes: the sum of each process's proportional set size (a page shared by `n`
    /// of them counts `1/n` for each, so shared memory is counted once), or of its
    /// resident set size where the kernel gives no `smaps_rollup`.
    pub bytes: u64,
    /// How many of the processes could be read (the others exited meanwhile).
    pub processes: usize,
}

/// The memory the processes `pids` use now.
pub fn usage_of(pids: &[i32]) -> Usage {
    let mut usage = Usage::default();
    for &pid in pids {
        if let Some(bytes) = procinfo::proportional_memory(pid) {
            usage.bytes += bytes;
            usage.processes += 1;
        }
    }
    usage
}

/// A ceiling crossed: what was used, against what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    /// Bytes in use at the sample.
    pub used: u64,
    /// The ceiling, `memory_max`.
    pub max: u64,
}

/// When to sample a daemon's memory and what a sample means, with the clock passed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryWatch {
    max: u64,
    interval: Duration,
    /// The next sample is due then; `None` while paused.
    next_at: Option<Instant>,
}

impl MemoryWatch {
    /// A watch of the ceiling `max` bytes, paused until [`MemoryWatch::resume`].
    pub fn new(max: u64, interval: Duration) -> MemoryWatch {
        MemoryWatch {
            max,
            interval,
            next_at: None,
        }
    }

    /// Starts sampling (the daemon runs): the first sample is due at once.
    pub fn resume(&mut self, now: Instant) {
        self.next_at = Some(now);
    }

    /// Stops sampling (stopping, backoff, or the ceiling was reported).
    pub fn pause(&mut self) {
        self.next_at = None;
    }

    /// When the keeper must wake for the next sample; `None` while paused.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_at
    }

    /// Returns true if and only if a sample is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.next_at.is_some_and(|at| now >= at)
    }

    /// Takes a sample made at `now`: above the ceiling, reports it and pauses (the
    /// keeper restarts the daemon and resumes the watch for the new run); else
    /// schedules the next one.
    pub fn on_sample(&mut self, now: Instant, usage: Usage) -> Option<Exceeded> {
        if usage.bytes > self.max {
            self.pause();
            return Some(Exceeded {
                used: usage.bytes,
                max: self.max,
            });
        }
        self.next_at = Some(now + self.interval);
        None
    }
}

/// The memory files of one cgroup v2 directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMemory {
    dir: PathBuf,
}

impl CgroupMemory {
    /// The memory files of the cgroup `dir`, if its memory controller is enabled
    /// (the parent lists `memory` in `cgroup.subtree_control`, so the files exist).
    pub fn open(dir: &Path) -> Option<CgroupMemory> {
        dir.join("memory.max").is_file().then(|| CgroupMemory {
            dir: dir.to_path_buf(),
        })
    }

    /// The bytes the cgroup uses now (`memory.current`).
    pub fn current(&self) -> io::Result<u64> {
        fs::read_to_string(self.dir.join("memory.current"))?
            .trim()
            .parse()
            .map_err(|_| io::Error::other("memory.current is not a number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usage_of_live_processes_is_counted_and_the_gone_skipped() {
        let me = std::process::id() as i32;
        let usage = usage_of(&[me, i32::MAX]);
        assert_eq!(usage.processes, 1);
        // This test binary has touched more than a megabyte.
        assert!(usage.bytes > 1 << 20, "{usage:?}");
    }

    /// The keeper samples at a fixed interval while the daemon runs, never while it is
    /// paused, and reports a ceiling crossed once, with the figure.
    #[test]
    fn the_watch_samples_at_its_interval_and_reports_a_crossing_once() {
        let start = Instant::now();
        let mut watch = MemoryWatch::new(64 << 20, SAMPLE_INTERVAL);
        assert_eq!(watch.poll_timeout(), None);
        assert!(!watch.is_due(start + Duration::from_secs(3600)));
        watch.resume(start);
        assert!(watch.is_due(start));
        let below = Usage {
            bytes: 10 << 20,
            processes: 2,
        };
        assert_eq!(watch.on_sample(start, below), None);
        assert_eq!(watch.poll_timeout(), Some(start + SAMPLE_INTERVAL));
        assert!(!watch.is_due(start + Duration::from_secs(1)));
        let later = start + SAMPLE_INTERVAL;
        assert!(watch.is_due(later));
        let above = Usage {
            bytes: 200 << 20,
            processes: 1,
        };
        assert_eq!(
            watch.on_sample(later, above),
            Some(Exceeded {
                used: 200 << 20,
                max: 64 << 20
            })
        );
        // Paused until the restarted daemon runs.
        assert_eq!(watch.poll_timeout(), None);
        watch.resume(later + Duration::from_secs(5));
        assert!(watch.is_due(later + Duration::from_secs(5)));
    }

    /// A cgroup's memory is read from `memory.current`, where its memory controller
    /// is on (here a directory that stands in for the cgroup).
    #[test]
    fn a_cgroup_with_the_memory_controller_reports_memory_current() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(CgroupMemory::open(dir.path()), None);
        fs::write(dir.path().join("memory.max"), "max\n").unwrap();
        fs::write(dir.path().join("memory.current"), "12345\n").unwrap();
        let memory = CgroupMemory::open(dir.path()).unwrap();
        assert_eq!(memory.current().unwrap(), 12345);
        fs::write(dir.path().join("memory.current"), "garbage\n").unwrap();
        assert!(memory.current().is_err());
    }
}

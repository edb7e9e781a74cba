//! The pieces of `memory_max` (issue 14, item 3) that do not depend on the keeper's
//! loop: how much memory a set of processes uses, a sans-IO watch that says when to
//! sample and when the ceiling is crossed, and the cgroup v2 files that replace the
//! sampling where the keeper made a cgroup for the daemon. Safe code only.
//!
//! Not wired in yet: `memory_max` is not a key of the daemon file until the keeper's
//! state machine (issue 13) can run a timer and a stop-then-start for it. What is here
//! is what that wiring calls:
//!
//! - without a cgroup, [`MemoryWatch`] asks for a sample every [`SAMPLE_INTERVAL`],
//!   [`usage_of`] sums the processes' proportional set size, and a sum above the
//!   ceiling is reported once with the figure (`memory-exceeded`); the watch pauses
//!   while the daemon is stopping or in backoff, so an idle keeper without
//!   `memory_max` has no timer at all;
//! - with a cgroup, [`CgroupMemory::set_ceiling`] writes `memory.high` (the ceiling:
//!   the kernel throttles and reclaims there, and counts a `high` event) and
//!   `memory.max` (a backstop above it, where the kernel's OOM killer acts), and the
//!   keeper waits for `memory.events` to change (inotify), with no polling.

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

/// The counters of `memory.events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryEvents {
    /// Times usage went over `memory.high`.
    pub high: u64,
    /// Times usage hit `memory.max`.
    pub max: u64,
    /// Times the cgroup ran out of memory.
    pub oom: u64,
    /// Processes of the cgroup the OOM killer killed.
    pub oom_kill: u64,
}

impl MemoryEvents {
    /// Parses the text of `memory.events` (`high 3` lines; unknown ones are skipped).
    pub fn parse(text: &str) -> MemoryEvents {
        let mut events = MemoryEvents::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(name), Some(Ok(count))) = (words.next(), words.next().map(str::parse)) else {
                continue;
            };
            match name {
                "high" => events.high = count,
                "max" => events.max = count,
                "oom" => events.oom = count,
                "oom_kill" => events.oom_kill = count,
                _ => {}
            }
        }
        events
    }

    /// Returns true if and only if `self`, read after `before`, shows the ceiling was
    /// crossed in between.
    pub fn crossed_since(&self, before: &MemoryEvents) -> bool {
        self.high > before.high || self.max > before.max || self.oom_kill > before.oom_kill
    }
}

/// How far above the ceiling (`memory.high`) the backstop `memory.max` sits: room for
/// the keeper to stop the daemon in order before the kernel's OOM killer acts.
pub const BACKSTOP_PERCENT: u64 = 125;

impl CgroupMemory {
    /// The memory files of the cgroup `dir`, if its memory controller is enabled
    /// (the parent lists `memory` in `cgroup.subtree_control`, so the files exist).
    pub fn open(dir: &Path) -> Option<CgroupMemory> {
        dir.join("memory.max").is_file().then(|| CgroupMemory {
            dir: dir.to_path_buf(),
        })
    }

    /// The file the keeper watches for changes (inotify `IN_MODIFY`).
    pub fn events_file(&self) -> PathBuf {
        self.dir.join("memory.events")
    }

    /// Sets the ceiling: `memory.high` to `max` bytes, `memory.max` to the backstop
    /// [`BACKSTOP_PERCENT`] of it.
    pub fn set_ceiling(&self, max: u64) -> io::Result<()> {
        let backstop = max.saturating_mul(BACKSTOP_PERCENT) / 100;
        fs::write(self.dir.join("memory.max"), format!("{backstop}\n"))?;
        fs::write(self.dir.join("memory.high"), format!("{max}\n"))
    }

    /// The bytes the cgroup uses now (`memory.current`).
    pub fn current(&self) -> io::Result<u64> {
        fs::read_to_string(self.dir.join("memory.current"))?
            .trim()
            .parse()
            .map_err(|_| io::Error::other("memory.current is not a number"))
    }

    /// The counters of `memory.events` now.
    pub fn events(&self) -> io::Result<MemoryEvents> {
        Ok(MemoryEvents::parse(&fs::read_to_string(
            self.events_file(),
        )?))
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

    #[test]
    fn memory_events_are_parsed_and_compared() {
        let before =
            MemoryEvents::parse("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n");
        assert_eq!(before, MemoryEvents::default());
        let after = MemoryEvents::parse("low 0\nhigh 4\nmax 0\noom 0\noom_kill 0\n");
        assert_eq!(after.high, 4);
        assert!(after.crossed_since(&before));
        assert!(!before.crossed_since(&after));
        assert!(!after.crossed_since(&after));
        assert_eq!(
            MemoryEvents::parse("garbage\nhigh x\n"),
            MemoryEvents::default()
        );
    }

    /// The ceiling goes to memory.high and a backstop above it to memory.max, as plain
    /// files (here in a directory that stands in for the cgroup).
    #[test]
    fn the_ceiling_is_written_to_memory_high_with_a_backstop_in_memory_max() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(CgroupMemory::open(dir.path()), None);
        for file in [
            "memory.max",
            "memory.high",
            "memory.current",
            "memory.events",
        ] {
            fs::write(dir.path().join(file), "max\n").unwrap();
        }
        let memory = CgroupMemory::open(dir.path()).unwrap();
        memory.set_ceiling(64 << 20).unwrap();
        let read = |f: &str| fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(read("memory.high"), format!("{}\n", 64 << 20));
        assert_eq!(read("memory.max"), format!("{}\n", 80 << 20));
        fs::write(dir.path().join("memory.current"), "12345\n").unwrap();
        assert_eq!(memory.current().unwrap(), 12345);
        fs::write(memory.events_file(), "high 1\nmax 0\noom 0\noom_kill 0\n").unwrap();
        assert_eq!(memory.events().unwrap().high, 1);
    }
}

//! The decisions and measurements of `memory_max`: how much memory a set of
//! processes or a cgroup uses, and a sans-IO watch that says when to measure and
//! when the ceiling is crossed, with the clock and the kernel's counters passed in.
//! `keeper::liveness` runs it. Safe code only.
//!
//! [`MemoryWatch`] works one of two ways, chosen when the keeper starts (see
//! `keeper::memory_events` for the choice):
//!
//! - sampled: a measurement every [`SAMPLE_INTERVAL`] while the daemon is up, of
//!   [`usage_of`] its processes (their proportional set sizes), or of
//!   [`CgroupMemory::usage`] where its cgroup has the memory controller;
//! - kernel events: where the keeper could write the ceiling to the cgroup's
//!   `memory.high`, the kernel counts a `high` event in `memory.events` each time the
//!   cgroup goes over it, and the keeper measures only when a counter grew (it is
//!   woken by inotify): no timer at all.
//!
//! Either way it measures once as the daemon comes up, reports a measurement above the
//! ceiling once, with the figure (`memory-exceeded`), and pauses while the daemon
//! stops or waits in backoff, so a keeper without `memory_max` has no timer at all.

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
    /// Bytes in use at the measurement.
    pub used: u64,
    /// The ceiling, `memory_max`.
    pub max: u64,
}

/// The counters of a cgroup's `memory.events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryEvents {
    /// Times the cgroup went over `memory.high`.
    pub high: u64,
    /// Times it hit `memory.max`.
    pub max: u64,
    /// Times it ran out of memory.
    pub oom: u64,
    /// Its processes the OOM killer killed.
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

    /// Returns true if and only if `self`, read after `before`, shows that the cgroup
    /// went over a limit in between.
    pub fn grew_since(&self, before: &MemoryEvents) -> bool {
        self.high > before.high
            || self.max > before.max
            || self.oom > before.oom
            || self.oom_kill > before.oom_kill
    }
}

/// When to measure a daemon's memory and what a measurement means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryWatch {
    max: u64,
    /// `Some`: sampled at this interval; `None`: measured on the kernel's events.
    interval: Option<Duration>,
    /// Whether the daemon is up and watched.
    running: bool,
    /// The next measurement is due then; `None` while paused, and between events.
    next_at: Option<Instant>,
    /// The counters at the last look, once read in this run (kernel events).
    seen: Option<MemoryEvents>,
}

impl MemoryWatch {
    /// A watch of the ceiling `max` bytes sampled every `interval`, paused until
    /// [`MemoryWatch::resume`].
    pub fn new(max: u64, interval: Duration) -> MemoryWatch {
        MemoryWatch {
            max,
            interval: Some(interval),
            running: false,
            next_at: None,
            seen: None,
        }
    }

    /// A watch of the ceiling `max` bytes measured when the cgroup's `memory.events`
    /// counters grow ([`MemoryWatch::on_events`]), paused until [`MemoryWatch::resume`].
    pub fn on_kernel_events(max: u64) -> MemoryWatch {
        MemoryWatch {
            interval: None,
            ..MemoryWatch::new(max, Duration::ZERO)
        }
    }

    /// Returns true if and only if the kernel's events, not a timer, trigger it.
    pub fn is_event_driven(&self) -> bool {
        self.interval.is_none()
    }

    /// Starts watching (the daemon is up): a measurement is due at once; with kernel
    /// events, the next counters read are the baseline of this run.
    pub fn resume(&mut self, now: Instant) {
        self.running = true;
        self.next_at = Some(now);
        self.seen = None;
    }

    /// Stops watching (stopping, backoff, or the ceiling was reported).
    pub fn pause(&mut self) {
        self.running = false;
        self.next_at = None;
        self.seen = None;
    }

    /// When the keeper must wake for the next measurement; `None` while paused, and
    /// always `None` after the first measurement with kernel events.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_at
    }

    /// Returns true if and only if a measurement is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.next_at.is_some_and(|at| now >= at)
    }

    /// Takes the `memory.events` counters read after a wake-up; returns true if and
    /// only if the keeper must measure now: a counter grew since the last read of this
    /// run. The first read of a run is the baseline (what grew before, during the last
    /// run or its stop, is not this run's), and a paused watch ignores them.
    pub fn on_events(&mut self, events: MemoryEvents) -> bool {
        if !self.running {
            return false;
        }
        let grew = self.seen.is_some_and(|before| events.grew_since(&before));
        self.seen = Some(events);
        grew
    }

    /// Takes a measurement made at `now`: above the ceiling, reports it and pauses
    /// (the keeper restarts the daemon and resumes the watch for the new run); else
    /// schedules the next sample, if sampled.
    pub fn on_sample(&mut self, now: Instant, usage: Usage) -> Option<Exceeded> {
        if usage.bytes > self.max {
            self.pause();
            return Some(Exceeded {
                used: usage.bytes,
                max: self.max,
            });
        }
        self.next_at = self.interval.map(|interval| now + interval);
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
        dir.join("memory.current").is_file().then(|| CgroupMemory {
            dir: dir.to_path_buf(),
        })
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file whose changes the kernel notifies (inotify `IN_MODIFY`).
    pub fn events_file(&self) -> PathBuf {
        self.dir.join("memory.events")
    }

    /// Sets `memory.high` to `bytes`, or back to no limit (`max`) for `None`.
    pub fn set_high(&self, bytes: Option<u64>) -> io::Result<()> {
        let value = bytes.map_or_else(|| "max".to_string(), |b| b.to_string());
        fs::write(self.dir.join("memory.high"), format!("{value}\n"))
    }

    /// The counters of `memory.events` now.
    pub fn events(&self) -> io::Result<MemoryEvents> {
        fs::read_to_string(self.events_file()).map(|text| MemoryEvents::parse(&text))
    }

    /// The bytes the cgroup uses now (`memory.current`).
    pub fn current(&self) -> io::Result<u64> {
        read_number(&self.dir.join("memory.current"))
    }

    /// What the cgroup's processes use: `memory.current` less the page cache the
    /// kernel reclaims first (`inactive_file` in `memory.stat`), the working set as
    /// the kubelet and `docker stats` count it, plus what of it is in swap
    /// (`memory.swap.current`, where the kernel has it). Over `memory.high` the kernel
    /// takes back cache, and with swap it pushes out the rest, by itself: what is left
    /// and what it pushed out is what the ceiling is about.
    pub fn usage(&self) -> io::Result<Usage> {
        let current = self.current()?;
        let swapped = read_number(&self.dir.join("memory.swap.current")).unwrap_or(0);
        let stat = fs::read_to_string(self.dir.join("memory.stat")).unwrap_or_default();
        let inactive_file = stat
            .lines()
            .find_map(|l| l.strip_prefix("inactive_file "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let processes = fs::read_to_string(self.dir.join("cgroup.procs"))
            .map_or(0, |text| text.lines().count());
        Ok(Usage {
            bytes: current
                .saturating_sub(inactive_file)
                .saturating_add(swapped),
            processes,
        })
    }
}

/// The number in the file `path`.
fn read_number(path: &Path) -> io::Result<u64> {
    fs::read_to_string(path)?
        .trim()
        .parse()
        .map_err(|_| io::Error::other(format!("{} is not a number", path.display())))
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

    #[test]
    fn memory_events_are_parsed_and_compared() {
        let before =
            MemoryEvents::parse("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n");
        assert_eq!(before, MemoryEvents::default());
        let after = MemoryEvents::parse("low 0\nhigh 4\nmax 0\noom 0\noom_kill 0\n");
        assert_eq!(after.high, 4);
        assert!(after.grew_since(&before));
        assert!(!before.grew_since(&after));
        assert!(!after.grew_since(&after));
        let killed = MemoryEvents::parse("high 4\noom_kill 1\n");
        assert!(killed.grew_since(&after));
        assert_eq!(
            MemoryEvents::parse("garbage\nhigh x\n"),
            MemoryEvents::default()
        );
    }

    /// With kernel events the keeper measures once as the daemon comes up, then only
    /// when a counter grew: no timer. The first counters of a run are its baseline,
    /// so what the last run left behind does not count; a paused watch ignores them.
    #[test]
    fn the_event_driven_watch_measures_only_when_a_counter_grew_and_rearms_per_run() {
        let start = Instant::now();
        let mut watch = MemoryWatch::on_kernel_events(64 << 20);
        assert!(watch.is_event_driven());
        let left = MemoryEvents {
            high: 7,
            ..MemoryEvents::default()
        };
        assert!(!watch.on_events(left), "paused");
        watch.resume(start);
        assert!(watch.is_due(start));
        assert!(!watch.on_events(left), "the baseline of this run");
        let below = Usage {
            bytes: 10 << 20,
            processes: 1,
        };
        assert_eq!(watch.on_sample(start, below), None);
        assert_eq!(watch.poll_timeout(), None, "no timer between events");
        assert!(!watch.on_events(left), "nothing grew");
        let high = MemoryEvents { high: 8, ..left };
        assert!(watch.on_events(high));
        assert!(!watch.on_events(high), "already seen");
        // Over memory.high, but the kernel took the cache back: nothing to report.
        assert_eq!(watch.on_sample(start, below), None);
        let oom = MemoryEvents {
            oom_kill: 1,
            ..high
        };
        assert!(watch.on_events(oom));
        let above = Usage {
            bytes: 65 << 20,
            processes: 3,
        };
        assert_eq!(
            watch.on_sample(start, above),
            Some(Exceeded {
                used: 65 << 20,
                max: 64 << 20
            })
        );
        // Paused while the daemon restarts: the stop's events are not the next run's.
        let during_stop = MemoryEvents { high: 20, ..oom };
        assert!(!watch.on_events(during_stop));
        let later = start + Duration::from_secs(5);
        watch.resume(later);
        assert!(watch.is_due(later));
        assert!(!watch.on_events(during_stop));
        assert!(watch.on_events(MemoryEvents {
            high: 21,
            ..during_stop
        }));
    }

    /// The cgroup's usage is memory.current less the inactive page cache plus swap, and the
    /// ceiling goes to memory.high as plain files (here in a stand-in directory).
    #[test]
    fn a_cgroup_usage_leaves_out_inactive_file_cache_and_the_ceiling_is_memory_high() {
        let dir = tempfile::tempdir().unwrap();
        let write = |f: &str, text: &str| fs::write(dir.path().join(f), text).unwrap();
        write("memory.current", "1000000\n");
        write(
            "memory.stat",
            "anon 500000\nfile 450000\ninactive_file 400000\n",
        );
        write("cgroup.procs", "12\n13\n");
        write("memory.high", "max\n");
        let memory = CgroupMemory::open(dir.path()).unwrap();
        assert_eq!(
            memory.usage().unwrap(),
            Usage {
                bytes: 600000,
                processes: 2
            }
        );
        write("memory.swap.current", "5\n");
        assert_eq!(memory.usage().unwrap().bytes, 600005);
        memory.set_high(Some(64 << 20)).unwrap();
        let high = fs::read_to_string(dir.path().join("memory.high")).unwrap();
        assert_eq!(high, format!("{}\n", 64 << 20));
        memory.set_high(None).unwrap();
        let high = fs::read_to_string(dir.path().join("memory.high")).unwrap();
        assert_eq!(high, "max\n");
        write("memory.events", "high 2\nmax 0\n");
        assert_eq!(memory.events().unwrap().high, 2);
    }
}

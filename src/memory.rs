//! How much memory a daemon uses: the proportional set sizes of its processes
//! ([`usage_of`]), or its cgroup's working set ([`CgroupMemory::usage`]) where the
//! cgroup has the memory controller, and the cgroup's `memory.events` counters. Read by
//! the keeper for `memory_max` (see `keeper::core::memory`) and by `top` and `metrics`
//! (see `usage`). Safe code only.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::procinfo;

/// How much memory a set of processes uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Usage {
    /// Bytes: the sum of each process's proportional set size (a page shared by `n`
    /// of them counts `1/n` for each, so shared memory is counted once), or of its
    /// resident set size where the kernel gives no `smaps_rollup`.
    pub(crate) bytes: u64,
    /// How many of the processes could be read (the others exited meanwhile).
    pub(crate) processes: usize,
}

/// The memory the processes `pids` use now.
pub(crate) fn usage_of(pids: &[i32]) -> Usage {
    let mut usage = Usage::default();
    for &pid in pids {
        if let Some(bytes) = procinfo::proportional_memory(pid) {
            usage.bytes += bytes;
            usage.processes += 1;
        }
    }
    usage
}

/// The counters of a cgroup's `memory.events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct MemoryEvents {
    /// Times the cgroup went over `memory.high`.
    pub(crate) high: u64,
    /// Times it hit `memory.max`.
    pub(crate) max: u64,
    /// Times it ran out of memory.
    pub(crate) oom: u64,
    /// Its processes the OOM killer killed.
    pub(crate) oom_kill: u64,
}

impl MemoryEvents {
    /// Parses the text of `memory.events` (`high 3` lines; unknown ones are skipped).
    pub(crate) fn parse(text: &str) -> MemoryEvents {
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
    pub(crate) fn grew_since(&self, before: &MemoryEvents) -> bool {
        self.high > before.high
            || self.max > before.max
            || self.oom > before.oom
            || self.oom_kill > before.oom_kill
    }
}

/// The memory files of one cgroup v2 directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupMemory {
    dir: PathBuf,
}

impl CgroupMemory {
    /// The memory files of the cgroup `dir`, if its memory controller is enabled
    /// (the parent lists `memory` in `cgroup.subtree_control`, so the files exist).
    pub(crate) fn open(dir: &Path) -> Option<CgroupMemory> {
        dir.join("memory.current").is_file().then(|| CgroupMemory {
            dir: dir.to_path_buf(),
        })
    }

    /// The file whose changes the kernel notifies (inotify `IN_MODIFY`).
    pub(crate) fn events_file(&self) -> PathBuf {
        self.dir.join("memory.events")
    }

    /// Sets `memory.high` to `bytes`, or back to no limit (`max`) for `None`.
    pub(crate) fn set_high(&self, bytes: Option<u64>) -> io::Result<()> {
        let value = bytes.map_or_else(|| "max".to_string(), |b| b.to_string());
        fs::write(self.dir.join("memory.high"), format!("{value}\n"))
    }

    /// The counters of `memory.events` now.
    pub(crate) fn events(&self) -> io::Result<MemoryEvents> {
        fs::read_to_string(self.events_file()).map(|text| MemoryEvents::parse(&text))
    }

    /// The bytes the cgroup uses now (`memory.current`).
    pub(crate) fn current(&self) -> io::Result<u64> {
        read_number(&self.dir.join("memory.current"))
    }

    /// What the cgroup's processes use: `memory.current` less the page cache the
    /// kernel reclaims first (`inactive_file` in `memory.stat`), the working set as
    /// the kubelet and `docker stats` count it, plus what of it is in swap
    /// (`memory.swap.current`, where the kernel has it). Over `memory.high` the kernel
    /// takes back cache, and with swap it pushes out the rest, by itself: what is left
    /// and what it pushed out is what the ceiling is about.
    pub(crate) fn usage(&self) -> io::Result<Usage> {
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

//! What a daemon's processes use, CPU time and memory, for `dmgr top` and `dmgr
//! metrics`. Readers only, as `list` is: the daemon's processes are the members of the
//! cgroup its keeper made for it, else every descendant of its keeper (which is a
//! child subreaper, so a daemon's double-forked workers stay below it), else, with
//! the keeper gone, the main process and its descendants.
//!
//! CPU time comes from the cgroup's `cpu.stat` where there is one: it counts processes
//! that have exited too, so it only grows. Without a cgroup it is the sum of
//! `/proc/PID/stat`'s user and system time over the processes alive now, which drops
//! when one of them exits. Memory is what the keeper counts against `memory_max`
//! (`memory`): the cgroup's working set where the memory controller is
//! there, else the sum of the processes' proportional set sizes.

use std::path::Path;
use std::time::Duration;

use crate::cgroup::Cgroup;
use crate::memory::{self, CgroupMemory};
use crate::procinfo::{self, Stat};
use crate::state::Observed;

/// How CPU time was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    /// By the cgroup: monotonic.
    Cgroup,
    /// Over the processes alive now.
    Processes,
}

/// CPU time used by a daemon's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuTime {
    /// User plus system time.
    pub used: Duration,
    /// How it was counted.
    pub counted: Counted,
}

/// The cgroup of the daemon observed, while its keeper or its main process lives.
fn cgroup(observed: &Observed) -> Option<Cgroup> {
    if observed.keeper.is_none() && observed.daemon.is_none() {
        return None;
    }
    let record = observed.record.as_ref()?;
    Cgroup::open(record.cgroup.as_deref()?)
}

/// The PIDs of the daemon's processes now (see the module's paragraph); empty when
/// nothing of it runs.
pub(crate) fn processes(observed: &Observed) -> Vec<i32> {
    if let Some(cgroup) = cgroup(observed) {
        let members = cgroup.members();
        if !members.is_empty() {
            return members;
        }
    }
    match (observed.keeper, observed.daemon) {
        (Some(keeper), _) => procinfo::descendants(keeper.pid)
            .into_iter()
            .map(|p| p.pid)
            .collect(),
        (None, Some(main)) => std::iter::once(main.pid)
            .chain(procinfo::descendants(main.pid).into_iter().map(|p| p.pid))
            .collect(),
        (None, None) => Vec::new(),
    }
}

/// The CPU time the daemon's processes used; `None` when nothing of it runs.
pub(crate) fn cpu_time(observed: &Observed) -> Option<CpuTime> {
    observed.daemon?;
    if let Some(used) = cgroup(observed).and_then(|c| cgroup_cpu(c.path())) {
        return Some(CpuTime {
            used,
            counted: Counted::Cgroup,
        });
    }
    let ticks: u64 = processes(observed)
        .into_iter()
        .filter_map(Stat::read)
        .map(|s| s.cpu_ticks)
        .sum();
    Some(CpuTime {
        used: ticks_to_duration(ticks),
        counted: Counted::Processes,
    })
}

/// The memory the daemon's processes use, in bytes; `None` when nothing of it runs.
pub(crate) fn memory_bytes(observed: &Observed) -> Option<u64> {
    observed.daemon?;
    if let Some(usage) = cgroup(observed)
        .and_then(|c| CgroupMemory::open(c.path()))
        .and_then(|m| m.usage().ok())
    {
        return Some(usage.bytes);
    }
    Some(memory::usage_of(&processes(observed)).bytes)
}

/// `usage_usec` of the cgroup's `cpu.stat` (present in every cgroup v2, with or
/// without the cpu controller).
fn cgroup_cpu(dir: &Path) -> Option<Duration> {
    let text = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
    parse_usage_usec(&text).map(Duration::from_micros)
}

fn parse_usage_usec(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
}

/// Clock ticks as a duration.
pub(crate) fn ticks_to_duration(ticks: u64) -> Duration {
    let per_second = procinfo::clock_ticks_per_second();
    Duration::from_secs(ticks / per_second)
        + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_cpu_time_is_usage_usec() {
        let text = "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n";
        assert_eq!(parse_usage_usec(text), Some(1_234_567));
        assert_eq!(parse_usage_usec("user_usec 1\n"), None);
    }

    #[test]
    fn ticks_are_seconds_at_the_kernels_rate() {
        let per_second = procinfo::clock_ticks_per_second();
        assert_eq!(ticks_to_duration(per_second * 3), Duration::from_secs(3));
        assert_eq!(
            ticks_to_duration(per_second / 2),
            Duration::from_millis(500)
        );
    }
}

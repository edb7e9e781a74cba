//! What the machine reads of the processes around the keeper ([`Facts`]), read from
//! `/proc`, the daemon's cgroup and its own pidfile when the machine asks.

use std::path::Path;

use super::core::adoption::Leftovers;
use super::core::handover::Processes;
use super::core::machine::Facts;
use super::memory_events::MemoryEventsWatcher;
use super::tracked::Tracked;
use crate::memory::{self, CgroupMemory, MemoryEvents, Usage};
use crate::procinfo::{self, ProcId, Stat};

/// The keeper's view of its processes, for one input.
pub(super) struct Seen<'a> {
    /// The keeper's PID: the root of the daemon's tree.
    pub(super) keeper: i32,
    pub(super) tracked: &'a Tracked,
    /// The daemon's own pidfile (`type = "forking"`).
    pub(super) pidfile: Option<&'a Path>,
    pub(super) memory_events: Option<&'a MemoryEventsWatcher>,
}

impl Processes for Seen<'_> {
    fn identity(&self, pid: i32) -> Option<ProcId> {
        ProcId::of(pid)
    }

    fn is_own(&self, pid: i32) -> bool {
        if self
            .tracked
            .cgroup
            .as_ref()
            .is_some_and(|c| c.members().contains(&pid))
        {
            return true;
        }
        // Up the chain of parents: a descendant of the keeper reaches it.
        let mut at = pid;
        for _ in 0..4096 {
            match Stat::read(at).map(|s| s.ppid) {
                Some(parent) if parent == self.keeper => return true,
                Some(parent) if parent > 1 => at = parent,
                _ => return false,
            }
        }
        false
    }

    fn is_child(&self, pid: i32) -> bool {
        Stat::read(pid).is_some_and(|s| s.ppid == self.keeper)
    }
}

impl Leftovers for Seen<'_> {
    fn children(&self) -> Vec<ProcId> {
        procinfo::live_children(self.keeper)
    }

    fn named_pid(&self) -> Option<i32> {
        crate::pidfile::read_pid(self.pidfile?)
    }
}

impl Facts for Seen<'_> {
    fn tree_is_empty(&self) -> bool {
        self.tracked.tree_is_empty()
    }

    fn anything_live(&self) -> bool {
        !self.tracked.live().is_empty()
    }

    /// The cgroup's usage (see [`CgroupMemory::usage`]) where the keeper made a cgroup
    /// with the memory controller, else the sum of the processes' proportional set
    /// sizes.
    fn memory_usage(&self, leave_out: Option<i32>) -> Usage {
        let cgroup = self.tracked.cgroup.as_ref();
        if let Some(memory) = cgroup.and_then(|c| CgroupMemory::open(c.path())) {
            if let Ok(usage) = memory.usage() {
                return usage;
            }
        }
        let pids: Vec<i32> = self
            .tracked
            .live()
            .into_iter()
            .map(|id| id.pid)
            .filter(|&pid| Some(pid) != leave_out)
            .collect();
        memory::usage_of(&pids)
    }

    fn memory_events(&self) -> Option<MemoryEvents> {
        self.memory_events?.counters()
    }
}

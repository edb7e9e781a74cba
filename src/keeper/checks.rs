//! The IO side of the keeper's checks of a daemon that is up: how `memory_max` can be
//! watched. Where the daemon's cgroup has the memory controller, through the kernel's
//! `memory.events` (see [`super::memory_events`]), one more fd in poll(2) and no timer;
//! else by a sample every few seconds, and the record says why. The decisions (when
//! to measure, when the ceiling or the liveness check ends a run) are the machine's
//! (`core::machine::checks`).

use std::path::Path;

use super::core::machine::MemoryMode;
use super::memory_events::MemoryEventsWatcher;
use crate::config::Supervision;

/// How the keeper can watch the memory ceiling `s` asks for, for the daemon's cgroup
/// `cgroup`: the kernel's events where they can be set up (with the watcher), else
/// sampled, saying why. `None` without `memory_max`.
pub(super) fn watch_memory(
    s: &Supervision,
    cgroup: Option<&Path>,
) -> (Option<MemoryEventsWatcher>, Option<MemoryMode>) {
    let Some(max) = s.memory_max.map(|m| m.0) else {
        return (None, None);
    };
    let events = match cgroup {
        Some(dir) => MemoryEventsWatcher::set_up(dir, max),
        None => Err(NO_CGROUP.to_string()),
    };
    match events {
        Ok(watcher) => (Some(watcher), Some(MemoryMode::Events)),
        Err(why) => (None, Some(MemoryMode::Sampled { reason: Some(why) })),
    }
}

/// Why memory is sampled for a daemon that has no cgroup.
pub(super) const NO_CGROUP: &str = "the daemon has no cgroup v2 of its own";

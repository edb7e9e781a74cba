//! The decisions of `memory_max`, sans IO: a watch that says when to measure and when
//! the ceiling is crossed, with the clock and the kernel's counters passed in. The
//! keeper measures ([`crate::memory`]) and feeds it the figures.
//!
//! [`MemoryWatch`] works one of two ways, chosen when the keeper starts (see
//! `keeper::memory_events` for the choice):
//!
//! - sampled: a measurement every [`SAMPLE_INTERVAL`] while the daemon is up, of
//!   the proportional set sizes of its processes, or of its cgroup's working set where
//!   the cgroup has the memory controller;
//! - kernel events: where the keeper could write the ceiling to the cgroup's
//!   `memory.high`, the kernel counts a `high` event in `memory.events` each time the
//!   cgroup goes over it, and the keeper measures only when a counter grew (it is
//!   woken by inotify): no timer at all.
//!
//! Either way it measures once as the daemon comes up, reports a measurement above the
//! ceiling once, with the figure (`memory-exceeded`), and pauses while the daemon
//! stops or waits in backoff, so a keeper without `memory_max` has no timer at all.

use std::time::{Duration, Instant};

use crate::memory::{MemoryEvents, Usage};

/// How often the memory of a daemon without a cgroup is sampled: a 200 MB burst is
/// caught within this, and the cost is one read of `smaps_rollup` per process.
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// A ceiling crossed: what was used, against what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exceeded {
    /// Bytes in use at the measurement.
    pub(crate) used: u64,
    /// The ceiling, `memory_max`.
    pub(crate) max: u64,
}

/// When to measure a daemon's memory and what a measurement means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemoryWatch {
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
    pub(crate) fn new(max: u64, interval: Duration) -> MemoryWatch {
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
    pub(crate) fn on_kernel_events(max: u64) -> MemoryWatch {
        MemoryWatch {
            interval: None,
            ..MemoryWatch::new(max, Duration::ZERO)
        }
    }

    /// Starts watching (the daemon is up): a measurement is due at once; with kernel
    /// events, the next counters read are the baseline of this run.
    pub(crate) fn resume(&mut self, now: Instant) {
        self.running = true;
        self.next_at = Some(now);
        self.seen = None;
    }

    /// Stops watching (stopping, backoff, or the ceiling was reported).
    pub(crate) fn pause(&mut self) {
        self.running = false;
        self.next_at = None;
        self.seen = None;
    }

    /// When the keeper must wake for the next measurement; `None` while paused, and
    /// always `None` after the first measurement with kernel events.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.next_at
    }

    /// Returns true if and only if a measurement is due at `now`.
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        self.next_at.is_some_and(|at| now >= at)
    }

    /// Takes the `memory.events` counters read after a wake-up; returns true if and
    /// only if the keeper must measure now: a counter grew since the last read of this
    /// run. The first read of a run is the baseline (what grew before, during the last
    /// run or its stop, is not this run's), and a paused watch ignores them.
    pub(crate) fn on_events(&mut self, events: MemoryEvents) -> bool {
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
    pub(crate) fn on_sample(&mut self, now: Instant, usage: Usage) -> Option<Exceeded> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_samples_at_its_interval_and_reports_a_crossing_once() {
        let start = crate::keeper::test_epoch();
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
    fn the_event_driven_watch_measures_only_when_a_counter_grew_and_rearms_per_run() {
        let start = crate::keeper::test_epoch();
        let mut watch = MemoryWatch::on_kernel_events(64 << 20);
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
}

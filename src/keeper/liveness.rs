//! The keeper's watch over a daemon that is up: the liveness check (`health`, see
//! [`health::HealthWatch`]) and the memory ceiling (`memory_max`, see
//! [`memory::MemoryWatch`]). Neither is ever a blocking call in the loop: a health
//! check is a timer and a probe process (see [`super::probe`]); the memory ceiling is
//! either the kernel's `memory.events`, one more fd in poll(2), where the daemon's
//! cgroup has the memory controller (see [`super::memory_events`]), or else a timer
//! and a few reads of `/proc`. A daemon with neither has no timer, and its keeper
//! sleeps with no timeout. Both begin once the daemon is up (past `start_wait` and
//! `ready`) and pause while it stops or waits in backoff.
//!
//! Either verdict (`unhealthy`, `memory-exceeded`) is recorded as an event and ends
//! the run as a failure: the normal stop sequence (`stop_signal`, then SIGKILL after
//! `stop_timeout`), then the restart policy and its backoff decide what follows.

use std::path::Path;
use std::time::Instant;

use super::health::{self, HealthWatch};
use super::memory::{self, Exceeded, MemoryWatch, Usage};
use super::memory_events::MemoryEventsWatcher;
use super::Keeper;
use crate::config::units::Size;
use crate::config::Supervision;
use crate::events::Kind;
use crate::state;

/// The watches of one daemon, built from its supervision keys.
#[derive(Debug, Default)]
pub(super) struct Watches {
    pub(super) health: Option<HealthWatch>,
    pub(super) memory: Option<MemoryWatch>,
    /// The kernel's memory events, where they drive `memory` (no timer then).
    pub(super) memory_events: Option<MemoryEventsWatcher>,
    /// Why `memory` is sampled instead, where it is.
    sampling_reason: Option<String>,
}

impl Watches {
    /// The watches `s` asks for, paused; the memory ceiling through the kernel's
    /// events of the daemon's cgroup `cgroup` where it can be, else sampled.
    pub(super) fn of(s: &Supervision, cgroup: Option<&Path>) -> Watches {
        let health = s
            .health
            .as_ref()
            .map(|_| HealthWatch::new(s.health_interval, s.health_timeout, s.health_failures));
        let Some(max) = s.memory_max.map(|m| m.0) else {
            return Watches {
                health,
                ..Watches::default()
            };
        };
        let events = match cgroup {
            Some(dir) => MemoryEventsWatcher::set_up(dir, max),
            None => Err("the daemon has no cgroup v2 of its own".to_string()),
        };
        match events {
            Ok(watcher) => Watches {
                health,
                memory: Some(MemoryWatch::on_kernel_events(max)),
                memory_events: Some(watcher),
                sampling_reason: None,
            },
            Err(why) => Watches {
                health,
                memory: Some(MemoryWatch::new(max, memory::SAMPLE_INTERVAL)),
                memory_events: None,
                sampling_reason: Some(why),
            },
        }
    }

    /// The next time one of them needs the keeper awake.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let health = self.health.as_ref().and_then(HealthWatch::poll_timeout);
        let memory = self.memory.as_ref().and_then(MemoryWatch::poll_timeout);
        match (health, memory) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Keeper {
    /// The daemon is up: the checks begin.
    pub(super) fn resume_watches(&mut self, now: Instant) {
        if let Some(h) = &mut self.watches.health {
            h.resume(now);
        }
        if let Some(m) = &mut self.watches.memory {
            m.resume(now);
            if let Some(events) = &self.watches.memory_events {
                events.rearm(m);
            }
        }
    }

    /// The daemon stops, exited or waits in backoff: no checks until it is up again.
    pub(super) fn pause_watches(&mut self) {
        self.record.watch = state::Watch::default();
        if let Some(h) = &mut self.watches.health {
            h.pause();
        }
        if let Some(m) = &mut self.watches.memory {
            m.pause();
        }
    }

    /// `apply` handed over new supervision keys: the watches follow them, running at
    /// once if the daemon is up. A ceiling no longer enforced through `memory.high`
    /// is taken away from it.
    pub(super) fn rebuild_watches(&mut self) {
        let cgroup = self.tracked.cgroup.as_ref().map(|c| c.path());
        let old = std::mem::replace(
            &mut self.watches,
            Watches::of(&self.daemon.supervision, cgroup),
        );
        if let (Some(old), None) = (old.memory_events, &self.watches.memory_events) {
            old.lift();
        }
        if matches!(self.phase, super::machine::Phase::Up(None)) {
            self.resume_watches(Instant::now());
        }
    }

    /// The daemon's cgroup is gone (the kernel refused to move its process there):
    /// the memory ceiling is sampled from now on.
    pub(super) fn watch_without_cgroup(&mut self) {
        if self.watches.memory_events.is_some() {
            self.watches = Watches::of(&self.daemon.supervision, None);
        }
    }

    /// Runs what is due of the checks at `now`.
    pub(super) fn on_watch_timers(&mut self, now: Instant) {
        if !matches!(self.phase, super::machine::Phase::Up(None)) {
            return;
        }
        let due = self.watches.memory.as_ref().is_some_and(|m| m.is_due(now));
        if due {
            let usage = self.memory_usage();
            let exceeded = self
                .watches
                .memory
                .as_mut()
                .and_then(|m| m.on_sample(now, usage));
            if self.on_memory_measured(usage, exceeded) {
                return;
            }
        }
        let action = self.watches.health.as_mut().and_then(|h| h.on_timer(now));
        match action {
            Some(health::Action::StartProbe) => {
                let Some(check) = self.daemon.supervision.health.clone() else {
                    return;
                };
                let deadline = now + self.daemon.supervision.health_timeout;
                if let Some(ok) = self.start_probe(&check, deadline) {
                    self.on_health_result(Some(ok));
                }
            }
            Some(health::Action::KillProbe) => self.kill_probe(),
            None => {}
        }
    }

    /// The kernel changed the cgroup's `memory.events`: measures if a counter grew.
    pub(super) fn on_memory_events(&mut self) {
        let (Some(events), Some(watch)) =
            (&self.watches.memory_events, self.watches.memory.as_mut())
        else {
            return;
        };
        if let Some(measured) = events.on_wake(watch, Instant::now()) {
            self.on_memory_measured(measured.usage, measured.exceeded);
        }
    }

    /// Records a measurement and, above the ceiling, ends the run for it; returns
    /// true if and only if it did.
    fn on_memory_measured(&mut self, usage: Usage, exceeded: Option<Exceeded>) -> bool {
        self.note_memory(usage.bytes);
        let Some(exceeded) = exceeded else {
            return false;
        };
        let message = format!(
            "{} in use, above memory_max {} ({} process{})",
            in_unit_of(exceeded.used, Size(exceeded.max)),
            Size(exceeded.max),
            usage.processes,
            if usage.processes == 1 { "" } else { "es" }
        );
        self.end_run_for(Kind::MemoryExceeded, message);
        true
    }

    /// A health probe ended: `Some(passed)`, or `None` when it was killed at its
    /// deadline. Ignored unless a health check runs (a readiness probe's end is not).
    pub(super) fn on_health_result(&mut self, passed: Option<bool>) {
        let result = match passed {
            Some(true) => Ok(()),
            Some(false) => Err(self.health_failure()),
            None => Err(format!(
                "no answer within health_timeout ({})",
                crate::config::units::format_duration(self.daemon.supervision.health_timeout)
            )),
        };
        let last_error = result.as_ref().err().cloned();
        let verdict = self
            .watches
            .health
            .as_mut()
            .and_then(|h| h.on_result(Instant::now(), result));
        if let Some(h) = &self.watches.health {
            self.record.watch.health = Some(state::HealthSeen {
                failures_in_row: verdict.as_ref().map_or(h.streak(), |u| u.streak),
                failures_allowed: self.daemon.supervision.health_failures,
                last_at_ms: state::now_ms(),
                last_error,
            });
            self.save();
        }
        if let Some(unhealthy) = verdict {
            let message = format!(
                "{} failed checks in a row, the last: {}",
                unhealthy.streak, unhealthy.reason
            );
            self.end_run_for(Kind::Unhealthy, message);
        }
    }

    /// Records a memory sample for `list` and `status` when it moved by 1 % of the
    /// ceiling or more since the last one recorded: most samples write nothing.
    fn note_memory(&mut self, used: u64) {
        let Some(max) = self.daemon.supervision.memory_max.map(|m| m.0) else {
            return;
        };
        let moved = self
            .record
            .watch
            .memory
            .as_ref()
            .is_none_or(|m| m.used_bytes.abs_diff(used).saturating_mul(100) >= max);
        if moved {
            self.record.watch.memory = Some(state::MemorySeen {
                used_bytes: used,
                max_bytes: max,
                at_ms: state::now_ms(),
                mechanism: match self.watches.memory_events {
                    Some(_) => state::MemoryMechanism::CgroupEvents,
                    None => state::MemoryMechanism::Sampled,
                },
                sampling_reason: self.watches.sampling_reason.clone(),
            });
            self.save();
        }
    }

    /// Why a check that ended failed, in words for the event.
    fn health_failure(&self) -> String {
        match &self.daemon.supervision.health {
            Some(crate::config::ReadyCheck::Tcp(address)) => format!("cannot connect to {address}"),
            Some(crate::config::ReadyCheck::Http(url)) => {
                format!("GET {url} did not answer 2xx or 3xx")
            }
            Some(crate::config::ReadyCheck::Exec(argv)) => {
                format!(
                    "{} exited non-zero",
                    argv.first().map_or("", String::as_str)
                )
            }
            _ => "failed".to_string(),
        }
    }

    /// The memory the daemon's processes use now: the cgroup's (see
    /// [`memory::CgroupMemory::usage`]) where the keeper made a cgroup with the memory
    /// controller, else the sum of their proportional set sizes (the probe left out).
    fn memory_usage(&self) -> Usage {
        let cgroup = self.tracked.cgroup.as_ref();
        if let Some(memory) = cgroup.and_then(|c| memory::CgroupMemory::open(c.path())) {
            if let Ok(usage) = memory.usage() {
                return usage;
            }
        }
        let probe = self.probe.map(|p| p.id.pid);
        let pids: Vec<i32> = self
            .tracked
            .live()
            .into_iter()
            .map(|id| id.pid)
            .filter(|&pid| Some(pid) != probe)
            .collect();
        memory::usage_of(&pids)
    }

    /// Records `kind` with `message` and ends the run as a failure: the stop sequence,
    /// then the restart policy.
    fn end_run_for(&mut self, kind: Kind, message: String) {
        let pid = self.child.map(|c| c.id.pid);
        let mut event = self.event(kind).message(message.clone());
        event.pid = pid;
        self.record_event(event);
        let ran = self
            .child
            .map_or(std::time::Duration::ZERO, |c| c.started.elapsed());
        self.record.error = Some(format!("{}: {message}", kind.as_str()));
        let next = self.decide(false, ran);
        self.drain(next);
    }
}

/// `bytes` in the unit `max` is written in (`64MiB`: MiB), to one decimal where it is
/// not whole, so that the two read side by side: `148.7MiB in use, above memory_max
/// 64MiB`.
fn in_unit_of(bytes: u64, max: Size) -> String {
    let shown = max.to_string();
    let unit = shown.trim_start_matches(|c: char| c.is_ascii_digit());
    let scale: u64 = match unit {
        "TiB" => 1 << 40,
        "GiB" => 1 << 30,
        "MiB" => 1 << 20,
        "KiB" => 1 << 10,
        _ => return Size(bytes).to_string(),
    };
    match bytes.is_multiple_of(scale) {
        true => format!("{}{unit}", bytes / scale),
        false => format!("{:.1}{unit}", bytes as f64 / scale as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 23: the memory event gave `152228KiB in use, above memory_max 64MiB`.
    #[test]
    fn the_usage_is_written_in_the_unit_of_memory_max() {
        assert_eq!(in_unit_of(152228 << 10, Size(64 << 20)), "148.7MiB");
        assert_eq!(in_unit_of(128 << 20, Size(64 << 20)), "128MiB");
        assert_eq!(in_unit_of(3 << 30, Size(2 << 30)), "3GiB");
        assert_eq!(in_unit_of(1500, Size(1000)), "1500B");
    }
}

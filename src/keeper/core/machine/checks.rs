//! The machine's watch over a daemon that is up: the liveness check (`health`, see
//! [`HealthWatch`]) and the memory ceiling (`memory_max`, see [`MemoryWatch`]). Both
//! begin once the daemon is up (past `start_wait` and `ready`) and pause while it stops
//! or waits in backoff. A health check is a timer and a probe process; the memory
//! ceiling is either the kernel's `memory.events` (an input, no timer) or a timer and
//! a measurement the loop makes ([`Facts::memory_usage`]).
//!
//! Either verdict (`unhealthy`, `memory-exceeded`) is recorded as an event and ends
//! the run as a failure: the normal stop sequence (`stop_signal`, then SIGKILL after
//! `stop_timeout`), then the restart policy and its backoff decide what follows.

use super::super::health::{self, HealthWatch};
use super::super::memory::{Exceeded, MemoryWatch, SAMPLE_INTERVAL};
use super::{mechanism, memory_moved, Facts, Machine, MemoryMode, Now, Phase, TakeOver};
use crate::config::units::{format_duration, Signal, Size};
use crate::config::ReadyCheck;
use crate::events::Kind;
use crate::memory::{MemoryEvents, Usage};
use crate::state::{ChecksSeen, HealthSeen, MemorySeen};

impl Machine {
    /// The checks the supervision keys ask for, paused; `memory` says how the ceiling
    /// is watched.
    pub(super) fn build_checks(&mut self, memory: Option<MemoryMode>) {
        let s = &self.s;
        self.health = s
            .health
            .as_ref()
            .map(|_| HealthWatch::new(s.health_interval, s.health_timeout, s.health_failures));
        self.memory = s.memory_max.map(|max| match memory {
            Some(MemoryMode::Events) => MemoryWatch::on_kernel_events(max.0),
            _ => MemoryWatch::new(max.0, SAMPLE_INTERVAL),
        });
        self.memory_mode = memory;
    }

    /// The daemon is up: the checks begin. With the kernel's events, the counters now
    /// are the baseline of this run.
    pub(super) fn resume_checks(&mut self, now: Now, facts: &impl Facts) {
        if let Some(health) = &mut self.health {
            health.resume(now.at);
        }
        if let Some(memory) = &mut self.memory {
            memory.resume(now.at);
            if self.memory_mode == Some(MemoryMode::Events) {
                if let Some(counters) = facts.memory_events() {
                    memory.on_events(counters);
                }
            }
        }
    }

    /// The daemon stops, exited or waits in backoff: no checks until it is up again.
    pub(super) fn pause_checks(&mut self) {
        self.seen = ChecksSeen::default();
        if let Some(health) = &mut self.health {
            health.pause();
        }
        if let Some(memory) = &mut self.memory {
            memory.pause();
        }
    }

    /// Runs what is due of the checks at `now`.
    pub(super) fn checks_due(&mut self, now: Now, facts: &impl Facts) {
        if !matches!(self.phase, Phase::Running) {
            return;
        }
        if let Some(memory) = self.memory.as_mut().filter(|m| m.is_due(now.at)) {
            let probe = self.probe.and_then(|p| p.id).map(|id| id.pid);
            let usage = facts.memory_usage(probe);
            let exceeded = memory.on_sample(now.at, usage);
            if self.on_memory_measured(usage, exceeded, now, facts) {
                return;
            }
        }
        let action = self.health.as_mut().and_then(|h| h.on_timer(now.at));
        match action {
            Some(health::Action::StartProbe) => {
                if let Some(check) = self.s.health.clone() {
                    let deadline = now.at + self.s.health_timeout;
                    self.start_probe(check, deadline);
                }
            }
            Some(health::Action::KillProbe) => self.kill_probe(),
            None => {}
        }
    }

    /// The kernel changed the cgroup's `memory.events`: measures if a counter grew.
    pub(super) fn on_memory_events(
        &mut self,
        counters: MemoryEvents,
        now: Now,
        facts: &impl Facts,
    ) {
        if self.memory_mode != Some(MemoryMode::Events) {
            return;
        }
        let Some(memory) = self.memory.as_mut() else {
            return;
        };
        if !memory.on_events(counters) {
            return;
        }
        let probe = self.probe.and_then(|p| p.id).map(|id| id.pid);
        let usage = facts.memory_usage(probe);
        let exceeded = memory.on_sample(now.at, usage);
        self.on_memory_measured(usage, exceeded, now, facts);
    }

    /// Records a measurement and, above the ceiling, ends the run for it; returns true
    /// if and only if it did.
    fn on_memory_measured(
        &mut self,
        usage: Usage,
        exceeded: Option<Exceeded>,
        now: Now,
        facts: &impl Facts,
    ) -> bool {
        self.note_memory(usage.bytes, now);
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
        self.end_run_for(Kind::MemoryExceeded, message, now, facts);
        true
    }

    /// Records a memory sample for `list` and `status` when it moved by 1 % of the
    /// ceiling or more since the last one recorded: most samples write nothing.
    fn note_memory(&mut self, used: u64, now: Now) {
        let Some(max) = self.s.memory_max.map(|m| m.0) else {
            return;
        };
        if !memory_moved(&self.seen, used, max) {
            return;
        }
        let (mechanism, sampling_reason) = mechanism(&self.memory_mode);
        self.seen.memory = Some(MemorySeen {
            used_bytes: used,
            max_bytes: max,
            at_ms: now.wall_ms,
            mechanism,
            sampling_reason,
        });
        self.save();
    }

    /// A health probe ended: `Some(passed)`, or `None` when it was killed at its
    /// deadline.
    pub(super) fn on_health_result(&mut self, passed: Option<bool>, now: Now, facts: &impl Facts) {
        let result = match passed {
            Some(true) => Ok(()),
            Some(false) => Err(self.health_failure()),
            None => Err(format!(
                "no answer within health_timeout ({})",
                format_duration(self.s.health_timeout)
            )),
        };
        let last_error = result.as_ref().err().cloned();
        let Some(health) = self.health.as_mut() else {
            return;
        };
        let verdict = health.on_result(now.at, result);
        self.seen.health = Some(HealthSeen {
            failures_in_row: verdict.as_ref().map_or(health.streak(), |u| u.streak),
            failures_allowed: self.s.health_failures,
            last_at_ms: now.wall_ms,
            last_error,
        });
        self.save();
        if let Some(unhealthy) = verdict {
            let message = format!(
                "{} failed checks in a row, the last: {}",
                unhealthy.streak, unhealthy.reason
            );
            self.end_run_for(Kind::Unhealthy, message, now, facts);
        }
    }

    /// Why a check that ended failed, in words for the event.
    fn health_failure(&self) -> String {
        match &self.s.health {
            Some(ReadyCheck::Tcp(address)) => format!("cannot connect to {address}"),
            Some(ReadyCheck::Http(url)) => format!("GET {url} did not answer 2xx or 3xx"),
            Some(ReadyCheck::Exec(argv)) => {
                format!(
                    "{} exited non-zero",
                    argv.first().map_or("", String::as_str)
                )
            }
            _ => "failed".to_string(),
        }
    }

    /// Records `kind` with `message` and ends the run as a failure: the stop sequence,
    /// then the restart policy; where the policy restarts a `start-first` daemon that
    /// is up, the next generation starts beside it instead.
    pub(super) fn end_run_for(
        &mut self,
        kind: Kind,
        message: String,
        now: Now,
        facts: &impl Facts,
    ) {
        self.end_run_with(kind, message, None, now, facts);
    }

    /// [`Machine::end_run_for`] with a `signal` for the main process first (the
    /// watchdog's): sent at once, or, where the next generation starts first, once it
    /// is up, in place of `stop_signal`.
    pub(super) fn end_run_with(
        &mut self,
        kind: Kind,
        message: String,
        signal: Option<Signal>,
        now: Now,
        facts: &impl Facts,
    ) {
        let main = self.main.map(|c| c.id.pid);
        let ran = self.main.map_or(std::time::Duration::ZERO, |c| {
            now.at.saturating_duration_since(c.started)
        });
        let next = self.decide(false, ran);
        let start_first = matches!(next, super::Next::Restart(_)) && self.can_start_first();
        let message = match (signal, main) {
            (Some(signal), _) if start_first => {
                format!("{message}; {signal} once the next generation is up")
            }
            (Some(signal), Some(pid)) => {
                self.emit(super::Effect::SignalMain { pid, signal });
                format!("{message}; {signal} sent")
            }
            _ => message,
        };
        let mut event = self.event(kind).message(message.clone());
        event.pid = main;
        self.record(event);
        self.error = Some(format!("{}: {message}", kind.as_str()));
        if start_first {
            // `restart_mode = "start-first"`: the next generation starts beside this
            // one, which serves until it is up (see `generations`).
            let retire_with = signal.unwrap_or(self.s.stop_signal);
            return self.restart_start_first_for(kind.as_str(), retire_with);
        }
        self.failure_cause = Some(kind.as_str().to_string());
        self.drain(next, now, facts);
    }

    /// `apply` handed over the supervision keys of the file as it is now (`None`: the
    /// file does not load). The checks follow them, running at once if the daemon is
    /// up; the running process is left alone.
    pub(super) fn on_take_over(
        &mut self,
        change: Option<Box<TakeOver>>,
        now: Now,
        facts: &impl Facts,
    ) {
        let Some(change) = change else {
            let skipped = self.event(Kind::Updated);
            self.record(skipped.message("nothing taken over: the file does not load"));
            return;
        };
        let changed = self.s.changed(&change.supervision);
        self.s = change.supervision;
        self.build_checks(change.memory);
        if matches!(self.phase, Phase::Running) {
            self.resume_checks(now, facts);
        }
        let message = match changed.is_empty() {
            true => "no supervision key changed".to_string(),
            false => format!("took over {}", changed.join(", ")),
        };
        self.record(self.event(Kind::Updated).message(message));
        self.save();
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

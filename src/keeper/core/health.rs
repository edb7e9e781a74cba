//! The decisions of a liveness check (`health`) as a sans-IO state
//! machine with the clock passed in: when to start a probe, when to kill a hung one,
//! and when a streak of failures makes the daemon unhealthy. The keeper's loop runs
//! the probe (a TCP connect, an HTTP GET or a command in its own process group) and
//! feeds the result back (`keeper::checks`); nothing here blocks or touches a
//! process. The rules it keeps:
//!
//! - checks begin once the daemon is ready ([`HealthWatch::resume`]) and stop while it
//!   is stopping or in backoff ([`HealthWatch::pause`]);
//! - at most one probe at a time: the next is due `interval` after the last one ended,
//!   so a slow probe never piles up behind itself;
//! - a probe still running `timeout` after it began is killed and counts as failed,
//!   and the next waits until the killed one is reaped;
//! - `failures` failures in a row make the daemon unhealthy, reported once with the
//!   last failure's reason; a success ends the streak.

use std::time::{Duration, Instant};

/// What the keeper must do for the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Start a probe now.
    StartProbe,
    /// Kill the running probe (its process group): it exceeded `timeout`.
    KillProbe,
}

/// The daemon failed `failures` checks in a row: record `unhealthy`, restart it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unhealthy {
    /// How many checks failed in a row.
    pub(crate) streak: u32,
    /// Why the last one failed.
    pub(crate) reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No checks: not ready yet, stopping, backoff, or reported unhealthy.
    Paused,
    /// The next probe starts at `next_at`.
    Waiting { next_at: Instant },
    /// A probe runs; past `deadline` it is killed.
    Probing { deadline: Instant },
    /// The probe was killed; its end is awaited before the next may start.
    Killed,
}

/// One daemon's liveness check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthWatch {
    interval: Duration,
    timeout: Duration,
    failures: u32,
    streak: u32,
    phase: Phase,
}

impl HealthWatch {
    /// A check every `interval`, each bounded by `timeout`, unhealthy after
    /// `failures` (at least 1) in a row; paused until [`HealthWatch::resume`].
    pub(crate) fn new(interval: Duration, timeout: Duration, failures: u32) -> HealthWatch {
        HealthWatch {
            interval,
            timeout,
            failures: failures.max(1),
            streak: 0,
            phase: Phase::Paused,
        }
    }

    /// The daemon is ready: the first check is due one `interval` from `now`, with a
    /// fresh streak. A probe still running (or being killed) is left to finish.
    pub(crate) fn resume(&mut self, now: Instant) {
        self.streak = 0;
        if self.phase == Phase::Paused {
            self.phase = Phase::Waiting {
                next_at: now + self.interval,
            };
        }
    }

    /// No more checks until [`HealthWatch::resume`]. The keeper kills a probe that
    /// still runs with the rest of the daemon's processes.
    pub(crate) fn pause(&mut self) {
        self.phase = Phase::Paused;
    }

    /// When the keeper must wake for this check; `None` when nothing is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Waiting { next_at } => Some(next_at),
            Phase::Probing { deadline } => Some(deadline),
            Phase::Paused | Phase::Killed => None,
        }
    }

    /// The number of failed checks in a row so far.
    pub(crate) fn streak(&self) -> u32 {
        self.streak
    }

    /// A timer fired at `now`: what to do, if anything.
    pub(crate) fn on_timer(&mut self, now: Instant) -> Option<Action> {
        match self.phase {
            Phase::Waiting { next_at } if now >= next_at => {
                self.phase = Phase::Probing {
                    deadline: now + self.timeout,
                };
                Some(Action::StartProbe)
            }
            Phase::Probing { deadline } if now >= deadline => {
                self.phase = Phase::Killed;
                Some(Action::KillProbe)
            }
            _ => None,
        }
    }

    /// The probe ended at `now` with `result` (a killed probe always counts as failed
    /// for its timeout). Returns the verdict once the streak reaches `failures`, and
    /// pauses; else schedules the next check.
    pub(crate) fn on_result(
        &mut self,
        now: Instant,
        result: Result<(), String>,
    ) -> Option<Unhealthy> {
        let result = match self.phase {
            Phase::Killed => Err(format!(
                "no answer within health_timeout ({})",
                crate::config::units::format_duration(self.timeout)
            )),
            Phase::Probing { .. } => result,
            // A probe of an earlier run, ended after a pause: it says nothing now.
            Phase::Paused | Phase::Waiting { .. } => return None,
        };
        match result {
            Ok(()) => {
                self.streak = 0;
            }
            Err(reason) => {
                self.streak += 1;
                if self.streak >= self.failures {
                    self.phase = Phase::Paused;
                    return Some(Unhealthy {
                        streak: self.streak,
                        reason,
                    });
                }
            }
        }
        self.phase = Phase::Waiting {
            next_at: now + self.interval,
        };
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(10);
    const TIMEOUT: Duration = Duration::from_secs(5);

    fn watch() -> (HealthWatch, Instant) {
        (
            HealthWatch::new(INTERVAL, TIMEOUT, 3),
            crate::keeper::test_epoch(),
        )
    }

    /// Checks start once the daemon is ready, one interval later.
    #[test]
    fn checks_begin_an_interval_after_the_daemon_is_ready() {
        let (mut w, t0) = watch();
        assert_eq!(w.poll_timeout(), None);
        assert_eq!(w.on_timer(t0 + INTERVAL * 10), None);
        w.resume(t0);
        assert_eq!(w.poll_timeout(), Some(t0 + INTERVAL));
        assert_eq!(w.on_timer(t0 + Duration::from_secs(9)), None);
        assert_eq!(w.on_timer(t0 + INTERVAL), Some(Action::StartProbe));
    }

    /// A healthy daemon is never reported: each success ends the streak.
    #[test]
    fn a_healthy_daemon_is_never_unhealthy() {
        let (mut w, mut now) = watch();
        w.resume(now);
        for i in 0..100 {
            now += INTERVAL;
            assert_eq!(w.on_timer(now), Some(Action::StartProbe));
            let result = if i % 3 == 2 {
                Ok(())
            } else {
                Err("refused".to_string())
            };
            assert_eq!(w.on_result(now, result), None);
        }
        assert!(w.streak() < 3);
    }

    /// After `health_failures` failures in a row the daemon is unhealthy, once, with
    /// the last failure's reason, and the checks pause until the next run is ready.
    #[test]
    fn failures_in_a_row_make_it_unhealthy_once() {
        let (mut w, mut now) = watch();
        w.resume(now);
        let mut verdicts = Vec::new();
        for i in 0..3 {
            now += INTERVAL;
            assert_eq!(w.on_timer(now), Some(Action::StartProbe));
            verdicts.extend(w.on_result(now, Err(format!("exit {i}"))));
        }
        assert_eq!(
            verdicts,
            [Unhealthy {
                streak: 3,
                reason: "exit 2".into()
            }]
        );
        assert_eq!(w.poll_timeout(), None);
        w.resume(now);
        assert_eq!(w.streak(), 0);
        assert_eq!(w.poll_timeout(), Some(now + INTERVAL));
    }

    /// A hung probe is killed at its timeout and counts as failed; the next one waits
    /// until the killed one has ended, so probes never pile up.
    #[test]
    fn a_hung_probe_is_killed_at_its_timeout_and_none_piles_up() {
        let (mut w, t0) = watch();
        w.resume(t0);
        let started = t0 + INTERVAL;
        assert_eq!(w.on_timer(started), Some(Action::StartProbe));
        assert_eq!(w.poll_timeout(), Some(started + TIMEOUT));
        assert_eq!(w.on_timer(started + Duration::from_secs(4)), None);
        assert_eq!(w.on_timer(started + TIMEOUT), Some(Action::KillProbe));
        // Until the killed probe is reaped, nothing else is due, however long.
        assert_eq!(w.poll_timeout(), None);
        assert_eq!(w.on_timer(started + INTERVAL * 100), None);
        let reaped = started + TIMEOUT + Duration::from_millis(5);
        // Killed by SIGKILL, whatever its exit said: a failure for its timeout.
        assert_eq!(w.on_result(reaped, Ok(())), None);
        assert_eq!(w.streak(), 1);
        assert_eq!(w.poll_timeout(), Some(reaped + INTERVAL));
    }

    /// While stopping or in backoff there are no checks, and a probe of the earlier
    /// run that ends late counts for nothing.
    #[test]
    fn checks_pause_while_stopping_and_a_late_result_is_ignored() {
        let (mut w, t0) = watch();
        w.resume(t0);
        assert_eq!(w.on_timer(t0 + INTERVAL), Some(Action::StartProbe));
        w.pause();
        assert_eq!(w.poll_timeout(), None);
        assert_eq!(w.on_result(t0 + INTERVAL, Err("refused".into())), None);
        assert_eq!(w.streak(), 0);
    }

    /// A probe killed at `health_timeout` fails for that, whatever its exit said.
    #[test]
    fn a_killed_probe_fails_for_its_timeout() {
        let mut w = HealthWatch::new(INTERVAL, TIMEOUT, 1);
        let t0 = crate::keeper::test_epoch();
        w.resume(t0);
        assert_eq!(w.on_timer(t0 + INTERVAL), Some(Action::StartProbe));
        assert_eq!(w.on_timer(t0 + INTERVAL + TIMEOUT), Some(Action::KillProbe));
        let verdict = w.on_result(t0 + INTERVAL + TIMEOUT, Ok(()));
        assert_eq!(
            verdict,
            Some(Unhealthy {
                streak: 1,
                reason: "no answer within health_timeout (5s)".into()
            })
        );
    }
}

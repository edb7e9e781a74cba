//! The restart policy as a pure function: given how a run ended and the tally so far,
//! restart (after what delay), or finish (stopped or failed). No processes, no clocks:
//! the keeper feeds it facts, and the tests below feed it made-up ones.

use std::time::Duration;

use crate::config::RestartPolicy;

/// A run longer than this is not a quick failure, and resets the backoff.
pub(crate) const RESET_AFTER: Duration = Duration::from_secs(60);
/// The longest restart delay.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(60);
/// The delays after the first double from at least this, so that a `restart_delay`
/// of `"0"` still backs off: 0, 20 ms, 40 ms, ... instead of a restart loop as fast
/// as the daemon can fail (issue 16: 1,381 restarts of `false` in 4 s).
pub(crate) const BACKOFF_FLOOR: Duration = Duration::from_millis(10);

/// The supervision settings the policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// When to restart.
    pub(crate) restart: RestartPolicy,
    /// The first delay.
    pub(crate) restart_delay: Duration,
    /// Quick failures in a row before giving up.
    pub(crate) max_restarts: u32,
}

/// What the keeper counts across runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Restarts so far.
    pub(crate) restarts: u32,
    /// Quick failures in a row.
    pub(crate) quick_failures: u32,
}

/// How a run ended, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunEnd {
    /// Exit code 0.
    pub(crate) success: bool,
    /// How long it ran.
    pub(crate) ran: Duration,
}

/// What to do after a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Start again after this delay.
    Restart(Duration),
    /// Done: no restart is due. `failed` when the run ended in failure.
    Finish {
        /// Whether the end counts as a failure (status `failed`).
        failed: bool,
    },
    /// Too many quick failures in a row: status `failed`.
    GiveUp,
}

/// Decides what follows the end of a run, and updates the tally.
pub(crate) fn on_exit(policy: &Policy, tally: &mut Tally, end: RunEnd) -> Decision {
    let due = match policy.restart {
        RestartPolicy::No => false,
        RestartPolicy::OnFailure => !end.success,
        RestartPolicy::Always => true,
    };
    if !due {
        return Decision::Finish {
            failed: !end.success,
        };
    }
    if end.ran >= RESET_AFTER {
        tally.quick_failures = 0;
    } else {
        tally.quick_failures += 1;
        if tally.quick_failures > policy.max_restarts {
            return Decision::GiveUp;
        }
    }
    tally.restarts += 1;
    Decision::Restart(delay_for(policy.restart_delay, tally.quick_failures))
}

/// The delay before the next start: the first delay, then for each quick failure
/// after the first that delay (or [`BACKOFF_FLOOR`] if it is shorter) doubled, at
/// most [`MAX_DELAY`] (but never less than the configured delay).
pub(crate) fn delay_for(first: Duration, quick_failures: u32) -> Duration {
    if quick_failures <= 1 {
        return first;
    }
    let doublings = (quick_failures - 1).min(16);
    let delay = first.max(BACKOFF_FLOOR).saturating_mul(1 << doublings);
    delay.min(MAX_DELAY.max(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(restart: RestartPolicy) -> Policy {
        Policy {
            restart,
            restart_delay: Duration::from_secs(1),
            max_restarts: 3,
        }
    }

    const QUICK_FAIL: RunEnd = RunEnd {
        success: false,
        ran: Duration::from_secs(1),
    };

    #[test]
    fn on_failure_restarts_failures_only() {
        let p = policy(RestartPolicy::OnFailure);
        let mut tally = Tally::default();
        let ok = RunEnd {
            success: true,
            ran: Duration::from_secs(5),
        };
        assert_eq!(
            on_exit(&p, &mut tally, ok),
            Decision::Finish { failed: false }
        );
        assert!(matches!(
            on_exit(&p, &mut tally, QUICK_FAIL),
            Decision::Restart(_)
        ));
        assert_eq!(tally.restarts, 1);
    }

    #[test]
    fn no_never_restarts_and_reports_failure() {
        let p = policy(RestartPolicy::No);
        let mut tally = Tally::default();
        assert_eq!(
            on_exit(&p, &mut tally, QUICK_FAIL),
            Decision::Finish { failed: true }
        );
        assert_eq!(tally.restarts, 0);
    }

    #[test]
    fn quick_failures_double_the_delay_then_give_up() {
        let p = policy(RestartPolicy::Always);
        let mut tally = Tally::default();
        let delays: Vec<Decision> = (0..4)
            .map(|_| on_exit(&p, &mut tally, QUICK_FAIL))
            .collect();
        assert_eq!(
            delays,
            vec![
                Decision::Restart(Duration::from_secs(1)),
                Decision::Restart(Duration::from_secs(2)),
                Decision::Restart(Duration::from_secs(4)),
                Decision::GiveUp,
            ]
        );
        assert_eq!(tally.restarts, 3);
    }

    #[test]
    fn a_long_run_resets_the_backoff() {
        let p = policy(RestartPolicy::Always);
        let mut tally = Tally::default();
        for _ in 0..3 {
            on_exit(&p, &mut tally, QUICK_FAIL);
        }
        let long = RunEnd {
            success: false,
            ran: RESET_AFTER,
        };
        assert_eq!(
            on_exit(&p, &mut tally, long),
            Decision::Restart(Duration::from_secs(1))
        );
        assert_eq!(tally.quick_failures, 0);
        assert!(matches!(
            on_exit(&p, &mut tally, QUICK_FAIL),
            Decision::Restart(_)
        ));
    }

    /// Issue 16: `restart_delay = "0"` restarts at once the first time, then backs off
    /// from the floor like any other delay.
    #[test]
    fn a_zero_delay_still_backs_off() {
        let delays: Vec<Duration> = (1..=4).map(|k| delay_for(Duration::ZERO, k)).collect();
        assert_eq!(delays, [0, 20, 40, 80].map(Duration::from_millis).to_vec());
        assert_eq!(delay_for(Duration::ZERO, 100), MAX_DELAY);
        assert_eq!(
            delay_for(Duration::from_millis(1), 2),
            Duration::from_millis(20)
        );
        assert_eq!(
            delay_for(Duration::from_millis(100), 2),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn delay_is_capped() {
        assert_eq!(delay_for(Duration::from_secs(1), 30), MAX_DELAY);
        assert_eq!(
            delay_for(Duration::from_millis(100), 1),
            Duration::from_millis(100)
        );
        assert_eq!(
            delay_for(Duration::from_secs(90), 3),
            Duration::from_secs(90)
        );
    }
}

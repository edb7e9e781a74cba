//! Oneshots and schedules in the machine: a oneshot's end (`done`, or the restart
//! policy's retry), the schedule of a oneshot (the keeper waits between runs, in the
//! phase [`Phase::Waiting`], and a time that comes while a run is still going is
//! skipped), and `restart_schedule`, which restarts a long-running daemon that is up.
//!
//! A schedule's times are on the wall clock: the machine says when it must be woken
//! for them ([`Machine::wall_deadline`]), which the loop arms as a timer on the wall
//! clock that also wakes it when the clock is set ([`Input::ClockChanged`](super::Input)).

use std::time::Duration;

use jiff::Timestamp;

use super::{Facts, Machine, Next, Now, Phase};
use crate::config::units::format_duration;
use crate::events::Kind;
use crate::keeper::report::Report;
use crate::schedule::{Clock, Fire};
use crate::state::{ExitRecord, Reason, Status};

/// What a schedule's times are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `schedule`: a run of the oneshot.
    Run,
    /// `restart_schedule`: a restart of the daemon, by `restart_mode`.
    Restart,
}

/// A schedule the keeper keeps.
#[derive(Debug, Clone)]
pub(crate) struct Scheduled {
    pub(crate) clock: Clock,
    pub(crate) purpose: Purpose,
}

/// `ms` since the epoch as a timestamp.
pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX)).unwrap_or(Timestamp::MAX)
}

/// `at` in ms since the epoch (0 for a time before it).
pub(crate) fn wall_ms(at: Timestamp) -> u64 {
    u64::try_from(at.as_millisecond()).unwrap_or(0)
}

impl Machine {
    /// The schedule (`schedule` or `restart_schedule`) this keeper keeps, set up by the
    /// loop with the host's time zone and the last time accounted for.
    pub(crate) fn set_schedule(&mut self, clock: Clock, purpose: Purpose) {
        self.scheduled = Some(Scheduled { clock, purpose });
    }

    /// Returns true if and only if this is a oneshot that runs at set times.
    pub(super) fn runs_on_schedule(&self) -> bool {
        self.scheduled
            .as_ref()
            .is_some_and(|s| s.purpose == Purpose::Run)
    }

    /// When the loop must wake the machine for its schedule, on the wall clock (ms
    /// since the epoch; 0 for at once), while one is kept.
    pub(crate) fn wall_deadline(&self) -> Option<u64> {
        if self.phase.is_stopping() || self.is_finished() {
            return None;
        }
        self.scheduled
            .as_ref()
            .and_then(|s| s.clock.deadline())
            .map(wall_ms)
    }

    /// The next scheduled time, for the record.
    pub(super) fn next_run_ms(&self) -> Option<u64> {
        match self.phase {
            Phase::Finished { .. } => None,
            _ => self
                .scheduled
                .as_ref()
                .and_then(|s| s.clock.next_time())
                .map(wall_ms),
        }
    }

    /// The wall clock was set: the next time is worked out again.
    pub(super) fn on_clock_changed(&mut self, now: Now) {
        if let Some(s) = &mut self.scheduled {
            s.clock.clock_changed(timestamp(now.wall_ms));
            self.save();
        }
    }

    /// The first start of a scheduled oneshot's keeper: it waits for the first time
    /// (a time `catch_up` owes is due at once), and `dmgr start` is told so.
    pub(super) fn start_waiting(&mut self) {
        self.wait_for_schedule();
        if self.reporting {
            self.reporting = false;
            let next_ms = self.next_run_ms().unwrap_or(0);
            self.emit(super::Effect::Report(Report::Waiting { next_ms }));
        }
    }

    /// Between runs: the schedule's timer wakes the keeper.
    pub(super) fn wait_for_schedule(&mut self) {
        self.phase = Phase::Waiting;
        self.save();
    }

    /// Acts on the schedule if one of its times is due at `now`.
    pub(super) fn schedule_due(&mut self, now: Now, facts: &impl Facts) {
        if self.wall_deadline().is_none_or(|at| at > now.wall_ms) {
            return;
        }
        let Some(s) = &mut self.scheduled else {
            return;
        };
        let purpose = s.purpose;
        let busy = match purpose {
            Purpose::Run => !matches!(self.phase, Phase::Waiting),
            Purpose::Restart => !matches!(self.phase, Phase::Running),
        };
        let Some(fire) = s.clock.fire(timestamp(now.wall_ms), busy) else {
            return;
        };
        let due = match &fire {
            Fire::Run { due, .. } | Fire::Skip { due } => *due,
        };
        self.emit(super::Effect::SaveLastRun { ms: wall_ms(due) });
        let at = crate::text::rfc3339_ms(wall_ms(due));
        match (fire, purpose) {
            (Fire::Skip { .. }, Purpose::Run) => {
                let skipped = self.event(Kind::Skipped);
                self.record(skipped.message(format!(
                    "the run for {at} is not started: the last run is still going"
                )));
                self.save();
            }
            (Fire::Skip { .. }, Purpose::Restart) => {
                let skipped = self.event(Kind::Skipped);
                self.record(skipped.message(format!(
                    "restart_schedule: no restart for {at}: the daemon is not up"
                )));
                self.save();
            }
            (Fire::Run { missed, .. }, Purpose::Run) => {
                let message = match missed {
                    0 => format!("the run for {at}"),
                    1 => {
                        format!("catch_up: the run for {at}, missed while the keeper was not there")
                    }
                    n => format!("catch_up: one run for {n} missed times, the last {at}"),
                };
                self.record(self.event(Kind::Scheduled).message(message));
                // A new run, not a restart: it has its own retries.
                self.tally = Default::default();
                self.error = None;
                let again = self.started_at_ms.is_some();
                self.begin_run(again, now);
            }
            (Fire::Run { .. }, Purpose::Restart) => {
                let start_first = self.can_start_first();
                let how = match start_first {
                    true => "start-first: the next generation beside this one",
                    false => "stop, then start",
                };
                let scheduled = self.event(Kind::Scheduled);
                let mut scheduled =
                    scheduled.message(format!("restart_schedule: restart for {at} ({how})"));
                scheduled.pid = self.main.map(|c| c.id.pid);
                self.record(scheduled);
                self.error = None;
                if start_first {
                    let stop_signal = self.s.stop_signal;
                    return self.restart_start_first_for("restart_schedule", stop_signal);
                }
                self.drain(Next::Restart(Duration::ZERO), now, facts);
            }
        }
    }

    /// A oneshot's run ended as `record` says, after `ran`: `done` on exit 0 (or the
    /// wait for the next time of its schedule); otherwise the restart policy's
    /// verdict, and with a schedule the next time after a last failure.
    pub(super) fn oneshot_end(&mut self, record: &ExitRecord, pid: i32, ran: Duration) -> Next {
        if record.is_success() {
            self.tally = Default::default();
            let done = self.event(Kind::Done).pid(pid);
            self.record(done.message(format!(
                "exit 0 after {}",
                format_duration(super::round_ms(ran))
            )));
            return match self.runs_on_schedule() {
                true => Next::Wait,
                false => Next::Finish {
                    status: Status::Done,
                    error: None,
                    reason: Reason::Exited,
                },
            };
        }
        let next = self.decide(false, ran);
        match next {
            Next::Finish { error, reason, .. } if self.runs_on_schedule() => {
                // The schedule goes on: `on_failure` hears of the failed run.
                self.error = error;
                self.failure_cause = Some(reason.as_str().to_string());
                Next::Wait
            }
            other => other,
        }
    }
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;

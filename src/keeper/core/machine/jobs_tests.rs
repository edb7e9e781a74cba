//! Oneshots, schedules and `restart_schedule` in the machine, on a made-up clock.

use std::time::Duration;

use jiff::tz::TimeZone;

use super::super::tests::{code, daemon, event, kinds, Rig, DAEMON};
use super::*;
use crate::config::{Daemon, DaemonType, RestartPolicy};
use crate::keeper::core::machine::{Effect, Input};
use crate::schedule::Cron;

/// A oneshot with the defaults of one (`restart = "no"`).
fn oneshot() -> Daemon {
    let mut d = daemon();
    d.kind = DaemonType::Oneshot;
    d.supervision.restart = RestartPolicy::No;
    d
}

/// `text` (RFC 3339) in ms since the epoch.
fn ms(text: &str) -> u64 {
    wall_ms(text.parse().unwrap())
}

/// A rig whose wall clock reads `at`, with `daemon`'s schedule set up as the loop
/// does, `last` being the time kept in the run directory.
fn scheduled(daemon: Daemon, at: &str, last: Option<&str>) -> Rig {
    let mut rig = Rig::new(daemon.clone());
    rig.now.wall_ms = ms(at);
    let s = &daemon.supervision;
    let (cron, purpose) = match (&s.schedule, &s.restart_schedule) {
        (Some(c), _) => (c.clone(), Purpose::Run),
        (None, Some(c)) => (c.clone(), Purpose::Restart),
        _ => panic!("no schedule"),
    };
    let clock = Clock::new(
        cron,
        TimeZone::UTC,
        last.map(|l| l.parse().unwrap()),
        s.catch_up,
        timestamp(ms(at)),
    );
    rig.m.set_schedule(clock, purpose);
    rig
}

/// A oneshot run every minute.
fn every_minute() -> Daemon {
    let mut d = oneshot();
    d.supervision.schedule = Some(Cron::parse("* * * * *").unwrap());
    d
}

/// Moves both clocks on to `at` and wakes the machine.
fn tick_at(rig: &mut Rig, at: &str) -> Vec<Effect> {
    let by = ms(at) - rig.now.wall_ms;
    rig.tick_after(by)
}

/// SPEC `type = "oneshot"`: `start` waits for the exit; exit 0 is `done` (event and
/// status), told to `start` with how long it ran, and the keeper's work is over.
#[test]
fn a_oneshot_that_exits_0_is_done() {
    let mut rig = Rig::new(oneshot());
    rig.start(DAEMON.pid);
    assert_eq!(rig.m.status(), Status::Running, "no start-up window");
    assert!(
        rig.tick_after(10_000).is_empty(),
        "start_wait means nothing"
    );
    let end = rig.reaped(DAEMON.pid, code(0));
    assert_eq!(kinds(&end), [Kind::Exited, Kind::Done]);
    let end = rig.feed(Input::Tick);
    assert!(end.contains(&Effect::Finish));
    assert!(end.contains(&Effect::Report(Report::Done { ran_ms: 10_000 })));
    assert_eq!(rig.m.status(), Status::Done);
    assert_eq!(rig.record().reason, Some(Reason::Exited));
}

/// A oneshot that fails, with no retry: `failed`, and `start` is told how it ended.
#[test]
fn a_oneshot_that_fails_fails_its_start() {
    let mut rig = Rig::new(oneshot());
    rig.start(DAEMON.pid);
    rig.reaped(DAEMON.pid, code(1));
    let end = rig.feed(Input::Tick);
    let failed = Report::Failed {
        reason: "the run failed (exit 1)".into(),
    };
    assert!(end.contains(&Effect::Report(failed)), "{end:?}");
    assert_eq!(rig.m.status(), Status::Failed);
}

/// `restart = "on-failure"` retries a failed oneshot after the backoff; `start` waits
/// on until a run succeeds.
#[test]
fn a_failed_oneshot_is_retried_on_failure_and_start_waits_for_it() {
    let mut d = oneshot();
    d.supervision.restart = RestartPolicy::OnFailure;
    let mut rig = Rig::new(d);
    rig.start(DAEMON.pid);
    rig.reaped(DAEMON.pid, code(1));
    let next = rig.feed(Input::Tick);
    assert!(kinds(&next).contains(&Kind::Restarting));
    assert!(!next.iter().any(|e| matches!(e, Effect::Report(_))));
    assert_eq!(rig.m.status(), Status::Backoff);
    assert_eq!(rig.tick_after(1000), [Effect::SpawnDaemon { again: true }]);
    rig.spawned(101);
    rig.reaped(101, code(0));
    let end = rig.feed(Input::Tick);
    assert!(end
        .iter()
        .any(|e| matches!(e, Effect::Report(Report::Done { .. }))));
    assert_eq!(rig.m.status(), Status::Done);
}

/// SPEC `schedule`: the keeper waits for the next time (status `waiting`, the time in
/// the record, `start` told at once), with a timer on the wall clock and none on the
/// monotonic one; at the time a run begins with a `scheduled` event; exit 0 is `done`
/// and the keeper waits again, for the next time.
#[test]
fn a_scheduled_oneshot_waits_runs_at_its_time_and_waits_again() {
    let mut rig = scheduled(every_minute(), "2026-12-07T10:00:30Z", None);
    let first = rig.feed(Input::Start { recorded: Ok(()) });
    let next_ms = ms("2026-12-07T10:01:00Z");
    assert!(first.contains(&Effect::Report(Report::Waiting { next_ms })));
    assert_eq!(rig.m.status(), Status::Waiting);
    assert_eq!(rig.record().next_run_ms, Some(next_ms));
    assert_eq!(rig.m.wall_deadline(), Some(next_ms));
    assert_eq!(rig.m.poll_timeout(), None, "no wake-up but the schedule's");
    assert!(tick_at(&mut rig, "2026-12-07T10:00:59.999Z").is_empty());
    let run = tick_at(&mut rig, "2026-12-07T10:01:00Z");
    let scheduled = event(&run, Kind::Scheduled);
    assert!(scheduled.message.as_deref().unwrap().contains("10:01:00"));
    assert!(run.contains(&Effect::SaveLastRun { ms: next_ms }));
    assert!(run.contains(&Effect::SpawnDaemon { again: false }));
    rig.spawned(DAEMON.pid);
    assert_eq!(rig.m.status(), Status::Running);
    rig.reaped(DAEMON.pid, code(0));
    rig.feed(Input::Tick);
    assert_eq!(rig.m.status(), Status::Waiting);
    assert!(!rig.m.is_finished());
    assert_eq!(rig.record().next_run_ms, Some(ms("2026-12-07T10:02:00Z")));
}

/// SPEC `schedule`: a time that comes while the last run is still going is not
/// started twice: a `skipped` event, and the run goes on.
#[test]
fn a_time_that_comes_during_a_run_is_skipped() {
    let mut rig = scheduled(every_minute(), "2026-12-07T10:00:30Z", None);
    rig.feed(Input::Start { recorded: Ok(()) });
    tick_at(&mut rig, "2026-12-07T10:01:00Z");
    rig.spawned(DAEMON.pid);
    let skip = tick_at(&mut rig, "2026-12-07T10:02:00Z");
    assert_eq!(kinds(&skip), [Kind::Skipped]);
    assert!(!skip.iter().any(|e| matches!(e, Effect::SpawnDaemon { .. })));
    assert_eq!(rig.m.status(), Status::Running);
}

/// SPEC `catch_up`: times missed while the keeper was not there (three here) run once,
/// at once, when it is back; then the schedule goes on.
#[test]
fn catch_up_runs_three_missed_times_once() {
    let mut d = every_minute();
    d.supervision.schedule = Some(Cron::parse("0 * * * *").unwrap());
    d.supervision.catch_up = true;
    let mut rig = scheduled(d, "2026-12-07T10:30:00Z", Some("2026-12-07T07:00:00Z"));
    rig.feed(Input::Start { recorded: Ok(()) });
    assert_eq!(rig.m.wall_deadline(), Some(0), "due at once");
    let run = rig.feed(Input::Tick);
    let scheduled = event(&run, Kind::Scheduled);
    assert!(
        scheduled.message.as_deref().unwrap().contains("3 missed"),
        "{scheduled:?}"
    );
    assert!(run.contains(&Effect::SpawnDaemon { again: false }));
    rig.spawned(DAEMON.pid);
    rig.reaped(DAEMON.pid, code(0));
    rig.feed(Input::Tick);
    assert_eq!(rig.m.wall_deadline(), Some(ms("2026-12-07T11:00:00Z")));
    assert!(rig.tick_after(1).is_empty(), "once only");
}

/// Without `catch_up`, the missed times are not run.
#[test]
fn without_catch_up_missed_times_are_not_run() {
    let mut rig = scheduled(
        every_minute(),
        "2026-12-07T10:30:30Z",
        Some("2026-12-07T07:00:00Z"),
    );
    rig.feed(Input::Start { recorded: Ok(()) });
    assert!(rig.feed(Input::Tick).is_empty());
    assert_eq!(rig.m.wall_deadline(), Some(ms("2026-12-07T10:31:00Z")));
}

/// A scheduled run that fails with no retry: the keeper waits for the next time, and
/// the list shows the failure beside it.
#[test]
fn a_failed_scheduled_run_waits_for_the_next_time() {
    let mut rig = scheduled(every_minute(), "2026-12-07T10:00:30Z", None);
    rig.feed(Input::Start { recorded: Ok(()) });
    tick_at(&mut rig, "2026-12-07T10:01:00Z");
    rig.spawned(DAEMON.pid);
    rig.reaped(DAEMON.pid, code(3));
    rig.feed(Input::Tick);
    assert_eq!(rig.m.status(), Status::Waiting);
    assert_eq!(rig.record().last_exit.unwrap().code, Some(3));
}

/// The wall clock set forward: the next time is worked out again from the new time,
/// and nothing is run for the times jumped over.
#[test]
fn a_clock_change_moves_the_next_time() {
    let mut rig = scheduled(every_minute(), "2026-12-07T10:00:30Z", None);
    rig.feed(Input::Start { recorded: Ok(()) });
    rig.now.wall_ms = ms("2026-12-07T15:00:10Z");
    rig.feed(Input::ClockChanged);
    assert_eq!(rig.m.wall_deadline(), Some(ms("2026-12-07T15:01:00Z")));
}

/// A stop while the keeper waits: stopped at once, and no timer is left.
#[test]
fn a_waiting_keeper_stops_at_once() {
    let mut rig = scheduled(every_minute(), "2026-12-07T10:00:30Z", None);
    rig.feed(Input::Start { recorded: Ok(()) });
    rig.feed(Input::Stop { outside: None });
    let end = rig.feed(Input::Tick);
    assert!(end.contains(&Effect::Finish));
    assert_eq!(rig.m.status(), Status::Stopped);
    assert_eq!(rig.m.wall_deadline(), None);
}

/// SPEC `restart_schedule`: at its time a daemon that is up is restarted (stop, then
/// start) with a `scheduled` event; one that is not up is left alone (`skipped`).
#[test]
fn restart_schedule_restarts_a_daemon_that_is_up() {
    let mut d = daemon();
    d.supervision.restart_schedule = Some(Cron::parse("0 4 * * *").unwrap());
    let mut rig = scheduled(d, "2026-12-07T03:59:00Z", None);
    rig.up();
    let restart = tick_at(&mut rig, "2026-12-07T04:00:00Z");
    assert_eq!(kinds(&restart), [Kind::Scheduled]);
    assert!(restart
        .iter()
        .any(|e| matches!(e, Effect::SignalAll { .. })));
    rig.reaped(DAEMON.pid, code(0));
    let next = rig.feed(Input::Tick);
    assert!(kinds(&next).contains(&Kind::Restarting));
    assert_eq!(rig.tick_after(0), [Effect::SpawnDaemon { again: true }]);
    assert_eq!(rig.record().next_run_ms, Some(ms("2026-12-08T04:00:00Z")));
    // The next day it is in backoff: nothing to restart.
    rig.now.wall_ms = ms("2026-12-08T03:59:59Z");
    rig.m.phase = Phase::Backoff {
        until: rig.now.at + Duration::from_secs(60),
        next_restart_ms: None,
    };
    let skip = tick_at(&mut rig, "2026-12-08T04:00:00Z");
    assert_eq!(kinds(&skip), [Kind::Skipped]);
}

/// Issue 27: `restart_schedule` of a start-first daemon starts the next generation
/// beside the one that serves, which is stopped once the new one is up.
#[test]
fn restart_schedule_of_a_start_first_daemon_starts_the_next_generation_first() {
    let mut d = daemon();
    d.supervision.restart_mode = crate::config::RestartMode::StartFirst;
    d.supervision.restart_schedule = Some(Cron::parse("0 4 * * *").unwrap());
    let mut rig = scheduled(d, "2026-12-07T03:59:00Z", None);
    rig.up();
    let restart = tick_at(&mut rig, "2026-12-07T04:00:00Z");
    assert_eq!(kinds(&restart), [Kind::Scheduled, Kind::Restarting]);
    assert!(event(&restart, Kind::Scheduled)
        .message
        .as_deref()
        .is_some_and(|m| m.ends_with("(start-first: the next generation beside this one)")));
    assert!(restart.contains(&Effect::SpawnDaemon { again: true }));
    assert!(!restart
        .iter()
        .any(|e| matches!(e, Effect::SignalAll { .. } | Effect::SignalGroup { .. })));
    rig.spawned(200);
    let up = rig.tick_after(500);
    assert!(up.contains(&Effect::SignalGroup {
        pid: DAEMON.pid,
        signal: rig.m.s.stop_signal
    }));
    assert_eq!(rig.m.daemon().map(|d| d.pid), Some(200));
    assert_eq!(rig.record().next_run_ms, Some(ms("2026-12-08T04:00:00Z")));
}

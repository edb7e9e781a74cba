//! Start-first restarts, each transition driven with a made-up clock (see
//! `generations`): the next generation beside the serving one, the old one retired
//! once the new one is up, and every way the new one can fail rolling back.

use super::tests::{code, daemon, event, events, killed_by, kinds, Rig, DAEMON};
use super::*;
use crate::config::units::Signal;
use crate::config::{ReadyCheck, RestartMode};

const NEXT: i32 = 200;

/// A start-first daemon up as `DAEMON`, its ready check a file.
fn rig() -> Rig {
    let mut d = daemon();
    d.supervision.restart_mode = RestartMode::StartFirst;
    d.supervision.ready = Some(ReadyCheck::File("/nonexistent/ready".into()));
    let mut rig = Rig::new(d);
    rig.start(DAEMON.pid);
    rig.tick_after(500);
    rig.feed(Input::ProbeAnswered { passed: true });
    assert_eq!(rig.m.status(), Status::Running);
    rig
}

/// `dmgr restart` asks (request 7), and the next generation is spawned as `NEXT`.
fn restart(rig: &mut Rig) -> Vec<Effect> {
    let mut effects = rig.feed(Input::Restart { request: Some(7) });
    assert!(
        effects.contains(&Effect::SpawnDaemon { again: true }),
        "{effects:?}"
    );
    effects.extend(rig.spawned(NEXT));
    effects
}

#[test]
fn a_restart_starts_the_next_generation_while_the_old_one_keeps_serving() {
    let mut rig = rig();
    let effects = restart(&mut rig);
    assert_eq!(kinds(&effects), [Kind::Restarting, Kind::Started]);
    // While both run, the new one's events say which generation they are of.
    assert_eq!(
        event(&effects, Kind::Started).message.as_deref(),
        Some("generation 2, beside generation 1 (pid 100)")
    );
    // Nothing is signalled: generation 1 serves until generation 2 is ready.
    assert!(
        !effects.iter().any(|e| matches!(
            e,
            Effect::SignalAll { .. } | Effect::SignalGroup { .. } | Effect::SignalMain { .. }
        )),
        "{effects:?}"
    );
    assert_eq!(rig.m.daemon().map(|d| d.pid), Some(NEXT));
    assert_eq!(rig.m.status(), Status::Starting);
}

#[test]
fn once_the_new_generation_is_ready_the_old_one_gets_stop_signal_and_the_answer_is_stopping() {
    let mut rig = rig();
    restart(&mut rig);
    rig.tick_after(500);
    let effects = rig.feed(Input::ProbeAnswered { passed: true });
    assert!(effects.contains(&Effect::SignalGroup {
        pid: DAEMON.pid,
        signal: Supervision::default().stop_signal
    }));
    let stopping = event(&effects, Kind::Stopping);
    assert_eq!(stopping.pid, Some(DAEMON.pid));
    assert_eq!(stopping.request, Some(7));
    assert_eq!(
        stopping.message.as_deref(),
        Some("generation 1, replaced by generation 2 (pid 200), which is up")
    );
    assert_eq!(rig.m.status(), Status::Running);
    assert_eq!(rig.m.daemon().map(|d| d.pid), Some(NEXT));
    // Its end is the retired generation's, not the daemon's: no restart follows.
    let effects = rig.reaped(DAEMON.pid, code(0));
    assert_eq!(kinds(&effects), [Kind::Exited]);
    assert!(!effects.contains(&Effect::SpawnDaemon { again: true }));
    assert_eq!(rig.m.status(), Status::Running);
}

#[test]
fn an_old_generation_still_running_at_stop_timeout_gets_sigkill_to_its_group() {
    let mut rig = rig();
    restart(&mut rig);
    rig.tick_after(500);
    rig.feed(Input::ProbeAnswered { passed: true });
    assert!(rig.m.poll_timeout().is_some());
    let effects = rig.tick_after(2000);
    assert!(effects.contains(&Effect::SignalGroup {
        pid: DAEMON.pid,
        signal: Signal::KILL
    }));
    assert_eq!(kinds(&effects), [Kind::Killed]);
    // Only once.
    assert!(rig.tick_after(2000).is_empty());
}

#[test]
fn a_new_generation_that_misses_ready_timeout_is_stopped_and_the_old_one_serves_on() {
    let mut rig = rig();
    restart(&mut rig);
    rig.tick_after(500);
    rig.feed(Input::ProbeAnswered { passed: false });
    let effects = rig.tick_after(4600);
    assert!(effects.contains(&Effect::SignalGroup {
        pid: NEXT,
        signal: Supervision::default().stop_signal
    }));
    assert!(effects.contains(&Effect::WritePid { pid: DAEMON.pid }));
    let rollback = event(&effects, Kind::Rollback);
    assert_eq!(rollback.request, Some(7));
    assert_eq!(
        rollback.message.as_deref(),
        Some("generation 2 (pid 200) was not ready within ready_timeout (5s); generation 1 (pid 100) keeps serving")
    );
    assert_eq!(rig.m.daemon().map(|d| d.pid), Some(DAEMON.pid));
    assert_eq!(rig.m.status(), Status::Running);
    // The failed generation's end starts nothing.
    let effects = rig.reaped(NEXT, code(1));
    assert_eq!(kinds(&effects), [Kind::Exited]);
    assert_eq!(rig.m.status(), Status::Running);
}

#[test]
fn a_new_generation_that_dies_before_it_is_ready_rolls_back_without_signalling_the_old_one() {
    let mut rig = rig();
    restart(&mut rig);
    let effects = rig.reaped(NEXT, code(3));
    let rollback = event(&effects, Kind::Rollback);
    assert!(
        rollback.message.as_deref().is_some_and(
            |m| m.starts_with("generation 2 (pid 200) ended (exit 3) before it was ready")
        ),
        "{rollback:?}"
    );
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::SignalAll { .. } | Effect::SignalGroup { .. })));
    assert_eq!(rig.m.daemon().map(|d| d.pid), Some(DAEMON.pid));
}

#[test]
fn a_new_generation_that_cannot_be_spawned_rolls_back() {
    let mut rig = rig();
    rig.feed(Input::Restart { request: None });
    let effects = rig.feed(Input::SpawnFailed {
        reason: "cannot exec x".into(),
        unrecorded: false,
    });
    assert!(event(&effects, Kind::Rollback)
        .message
        .as_deref()
        .is_some_and(|m| m.contains("could not be started: cannot exec x")));
    assert_eq!(rig.m.daemon().map(|d| d.pid), Some(DAEMON.pid));
    assert_eq!(rig.m.status(), Status::Running);
}

#[test]
fn a_restart_that_cannot_be_done_now_is_answered_with_a_rollback_at_once() {
    let mut rig = rig();
    restart(&mut rig);
    // A second one while the first runs.
    let effects = rig.feed(Input::Restart { request: Some(8) });
    let refused = event(&effects, Kind::Rollback);
    assert_eq!(refused.request, Some(8));
    assert_eq!(
        refused.message.as_deref(),
        Some("not restarted: a restart is under way")
    );
    // A daemon in backoff has nothing to restart.
    let mut down = Rig::new(daemon());
    down.up();
    down.reaped(DAEMON.pid, code(1));
    down.tick_after(0);
    assert_eq!(down.m.status(), Status::Backoff);
    let effects = down.feed(Input::Restart { request: Some(9) });
    assert_eq!(kinds(&effects), [Kind::Rollback]);
    assert!(event(&effects, Kind::Rollback)
        .message
        .as_deref()
        .is_some_and(|m| m.starts_with("not restarted: the daemon is not running")));
}

/// A stop-first daemon up as `DAEMON` (start_wait 500 ms, no ready check).
fn stop_first() -> Rig {
    let mut rig = Rig::new(daemon());
    rig.up();
    rig
}

#[test]
fn a_stop_first_restart_in_the_keeper_stops_the_old_generation_then_starts_the_next_at_once() {
    let mut rig = stop_first();
    let effects = rig.feed(Input::Restart { request: Some(7) });
    let stopping = event(&effects, Kind::Stopping);
    assert_eq!(stopping.pid, Some(DAEMON.pid));
    assert_eq!(stopping.request, None, "the answer is the new generation's");
    assert!(effects.contains(&Effect::SignalAll {
        signal: Supervision::default().stop_signal,
        main: Some(DAEMON.pid)
    }));
    assert!(!effects.contains(&Effect::SpawnDaemon { again: true }));
    // Once it is gone, the next starts with no delay, and no restart is counted.
    let mut effects = rig.reaped(DAEMON.pid, code(0));
    effects.extend(rig.tick_after(0));
    let restarting = event(&effects, Kind::Restarting);
    assert_eq!(restarting.request, None);
    assert_eq!(restarting.delay_ms, Some(0));
    assert_eq!(
        restarting.message.as_deref(),
        Some("dmgr restart: generation 2 starts, on the sockets the keeper held")
    );
    let effects = rig.tick_after(0);
    assert!(
        effects.contains(&Effect::SpawnDaemon { again: true }),
        "{effects:?}"
    );
    rig.spawned(NEXT);
    let effects = rig.tick_after(500);
    let ready = event(&effects, Kind::Ready);
    assert_eq!(ready.request, Some(7));
    assert_eq!(
        ready.message.as_deref(),
        Some("generation 2 (pid 200) is up; generation 1 (pid 100) was stopped first (restart_mode = \"stop-first\")")
    );
    assert_eq!(rig.m.status(), Status::Running);
    assert_eq!(rig.record().restarts, 0);
}

#[test]
fn a_stop_first_restart_whose_new_generation_dies_is_answered_by_the_restart_policy() {
    let mut rig = stop_first();
    rig.feed(Input::Restart { request: Some(7) });
    rig.reaped(DAEMON.pid, code(0));
    rig.tick_after(0);
    rig.tick_after(0);
    rig.spawned(NEXT);
    let mut effects = rig.reaped(NEXT, code(2));
    effects.extend(rig.tick_after(0));
    let restarting = event(&effects, Kind::Restarting);
    assert_eq!(restarting.request, Some(7));
    assert!(restarting.message.as_deref().is_some_and(
        |m| m.contains("generation 2 failed, and generation 1 (pid 100) was stopped first")
    ));
    assert_eq!(rig.m.status(), Status::Backoff);
}

#[test]
fn a_restart_while_the_last_old_generation_still_finishes_is_taken() {
    let mut rig = rig();
    restart(&mut rig);
    rig.tick_after(500);
    rig.feed(Input::ProbeAnswered { passed: true });
    // Generation 1 still finishes its requests; generation 3 starts beside 2.
    let effects = rig.feed(Input::Restart { request: Some(9) });
    assert!(effects.contains(&Effect::SpawnDaemon { again: true }));
    rig.spawned(300);
    rig.tick_after(500);
    let effects = rig.feed(Input::ProbeAnswered { passed: true });
    assert!(effects.contains(&Effect::SignalGroup {
        pid: NEXT,
        signal: Supervision::default().stop_signal
    }));
    // Each retiring generation's end is its own.
    assert_eq!(kinds(&rig.reaped(DAEMON.pid, code(0))), [Kind::Exited]);
    assert_eq!(kinds(&rig.reaped(NEXT, code(0))), [Kind::Exited]);
    assert_eq!(rig.m.daemon().map(|d| d.pid), Some(300));
    assert_eq!(rig.m.poll_timeout(), None);
}

#[test]
fn an_old_generation_that_dies_while_the_new_one_starts_leaves_the_new_one_to_carry_on() {
    let mut rig = rig();
    restart(&mut rig);
    let effects = rig.reaped(DAEMON.pid, killed_by("KILL"));
    assert_eq!(kinds(&effects), [Kind::Exited]);
    // What it left behind in its group gets stop_signal, by identity.
    assert!(effects.contains(&Effect::SignalLeftOfGroup {
        group: DAEMON.pid,
        signal: Supervision::default().stop_signal
    }));
    assert!(event(&effects, Kind::Exited)
        .message
        .as_deref()
        .is_some_and(|m| m.contains("generation 2 carries on alone")));
    // Nothing restarts it and nothing is signalled: generation 2 is the daemon's start.
    assert!(!effects.iter().any(|e| matches!(
        e,
        Effect::SpawnDaemon { .. } | Effect::SignalAll { .. } | Effect::SignalGroup { .. }
    )));
    assert_eq!(rig.m.daemon().map(|d| d.pid), Some(NEXT));
    assert_eq!(rig.m.status(), Status::Starting);
    // Up: its `ready` answers the restart at once.
    rig.tick_after(500);
    let effects = rig.feed(Input::ProbeAnswered { passed: true });
    let ready = event(&effects, Kind::Ready);
    assert_eq!(ready.request, Some(7));
    assert_eq!(ready.pid, Some(NEXT));
    assert_eq!(
        ready.message.as_deref(),
        Some("generation 2 (pid 200) is up; generation 1 (pid 100) ended (signal KILL) while it started")
    );
    assert!(!kinds(&effects).contains(&Kind::Stopping));
    assert_eq!(rig.m.status(), Status::Running);
    assert_eq!(rig.m.poll_timeout(), None);
}

#[test]
fn a_new_generation_alone_that_then_fails_is_judged_by_the_restart_policy_which_answers() {
    let mut rig = rig();
    restart(&mut rig);
    rig.reaped(DAEMON.pid, code(1));
    // Generation 2 dies too: no rollback, the policy restarts the daemon.
    let mut effects = rig.reaped(NEXT, code(3));
    // Once what is left of it is gone.
    effects.extend(rig.tick_after(0));
    assert!(!kinds(&effects).contains(&Kind::Rollback), "{effects:?}");
    let restarting = event(&effects, Kind::Restarting);
    assert_eq!(restarting.request, Some(7));
    assert!(
        restarting.message.as_deref().is_some_and(|m| m.ends_with(
            "generation 2 failed, and generation 1 (pid 100) ended (exit 1) while it started: nothing to roll back to"
        )),
        "{restarting:?}"
    );
    assert_eq!(rig.m.status(), Status::Backoff);
    // The next start is the policy's, and answers nothing.
    let effects = rig.tick_after(1000);
    assert!(effects.contains(&Effect::SpawnDaemon { again: true }));
    rig.spawned(300);
    let mut effects = rig.tick_after(500);
    effects.extend(rig.feed(Input::ProbeAnswered { passed: true }));
    assert!(kinds(&effects).contains(&Kind::Ready));
    assert!(events(&effects).iter().all(|e| e.request.is_none()));
    assert_eq!(rig.m.status(), Status::Running);
}

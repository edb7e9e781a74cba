//! The keeper's decisions, driven with a made-up clock.

use super::*;
use crate::config::ReadyCheck;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn supervision() -> Supervision {
    Supervision {
        start_wait: ms(500),
        ready_timeout: ms(5000),
        stop_timeout: ms(2000),
        ..Supervision::default()
    }
}

fn with_ready() -> Supervision {
    Supervision {
        ready: Some(ReadyCheck::Tcp("127.0.0.1:8080".into())),
        ..supervision()
    }
}

fn draining(next: Next) -> Phase {
    Phase::Draining {
        escalation: Escalation::Nothing,
        next,
        shown: Status::Running,
    }
}

/// Promise 1: `start` returns once the process has stayed up `start_wait`.
#[test]
fn the_start_gate_opens_after_start_wait() {
    let t0 = crate::keeper::test_epoch();
    let s = supervision();
    let phase = Phase::spawned(DaemonType::Simple, t0, &s);
    assert_eq!(phase.deadline(None), Some(t0 + ms(500)));
    assert_eq!(
        on_timer(&phase, t0 + ms(499), &s, false),
        Tick::Start(StartStep::Wait)
    );
    assert_eq!(
        on_timer(&phase, t0 + ms(500), &s, false),
        Tick::Start(StartStep::Up)
    );
    assert!(
        Phase::Running.deadline(None).is_none(),
        "an idle keeper sleeps"
    );
}

/// With `ready`, probes start after `start_wait`, one at a time, every 100 ms, and
/// past `ready_timeout` the start fails.
#[test]
fn readiness_is_probed_until_ready_timeout() {
    let t0 = crate::keeper::test_epoch();
    let s = with_ready();
    let Phase::Starting(mut starting) = Phase::spawned(DaemonType::Simple, t0, &s) else {
        panic!("a simple daemon starts up");
    };
    let ready_by = t0 + ms(5000);
    assert_eq!(
        start_step(&starting, t0 + ms(100), &s, false),
        StartStep::Wait
    );
    let probe = StartStep::Probe { deadline: ready_by };
    assert_eq!(start_step(&starting, t0 + ms(500), &s, false), probe);
    assert_eq!(
        start_step(&starting, t0 + ms(600), &s, true),
        StartStep::Wait
    );
    let phase = Phase::Starting(starting);
    assert_eq!(phase.deadline(Some(ready_by)), Some(ready_by));
    probe_failed(&mut starting, t0 + ms(700));
    assert_eq!(
        start_step(&starting, t0 + ms(750), &s, false),
        StartStep::Wait
    );
    assert_eq!(start_step(&starting, t0 + ms(800), &s, false), probe);
    assert_eq!(Phase::Starting(starting).deadline(None), Some(t0 + ms(800)));
    assert_eq!(
        start_step(&starting, ready_by, &s, true),
        StartStep::NotReady
    );
}

/// Promise 1: a process that dies within `start_wait` fails the start that waits
/// for it; once that start is reported, an exit is judged by the restart policy.
#[test]
fn an_early_death_fails_the_start_and_a_later_one_is_judged() {
    let t0 = crate::keeper::test_epoch();
    let phase = Phase::spawned(DaemonType::Simple, t0, &supervision());
    assert_eq!(on_exit(&phase, true), ExitStep::FailStart);
    assert_eq!(on_exit(&phase, false), ExitStep::Judge);
    assert_eq!(on_exit(&Phase::Running, true), ExitStep::Judge);
}

/// A backoff ends in a new start at its end, and nothing before.
#[test]
fn a_backoff_ends_in_a_spawn() {
    let t0 = crate::keeper::test_epoch();
    let s = supervision();
    let phase = Phase::Backoff {
        until: t0 + ms(1000),
        next_restart_ms: None,
    };
    assert_eq!(phase.deadline(None), Some(t0 + ms(1000)));
    assert_eq!(on_timer(&phase, t0 + ms(999), &s, false), Tick::Nothing);
    assert_eq!(on_timer(&phase, t0 + ms(1000), &s, false), Tick::Spawn);
    // Giving up is the policy's (policy.rs); what follows it is a drain to a finish.
    let gave_up = Next::Finish {
        status: Status::Failed,
        error: Some("gave up".into()),
        reason: Reason::GaveUp,
    };
    let step = drain_step(Escalation::Nothing, &gave_up, t0, &s, false, true);
    assert_eq!(step, DrainStep::Done(gave_up));
}

/// Promise 4: `stop_signal`, then SIGKILL once `stop_timeout` has passed; the stop
/// is done when the main process is reaped and nothing else is left.
#[test]
fn a_stop_sends_sigkill_after_stop_timeout() {
    let t0 = crate::keeper::test_epoch();
    let s = supervision();
    assert_eq!(on_stop(&Phase::Running, &s, true), StopStep::Drain);
    let phase = Phase::Draining {
        escalation: Escalation::stop_sent(t0, &s),
        next: Next::stopped(),
        shown: Status::Running,
    };
    assert!(phase.is_stopping());
    assert_eq!(phase.deadline(None), Some(t0 + ms(2000)));
    assert_eq!(on_timer(&phase, t0 + ms(1999), &s, false), Tick::Nothing);
    assert_eq!(on_timer(&phase, t0 + ms(2000), &s, false), Tick::Kill);
    let Phase::Draining {
        escalation, next, ..
    } = &phase
    else {
        unreachable!()
    };
    let now = t0 + ms(100);
    assert_eq!(
        drain_step(*escalation, next, now, &s, true, false),
        DrainStep::Wait
    );
    let again = DrainStep::Signal {
        kill: false,
        escalation: *escalation,
    };
    assert_eq!(drain_step(*escalation, next, now, &s, false, false), again);
    let killed = drain_step(Escalation::Killed, next, now, &s, false, false);
    assert!(matches!(killed, DrainStep::Signal { kill: true, .. }));
    let done = drain_step(*escalation, next, now, &s, false, true);
    assert_eq!(done, DrainStep::Done(Next::stopped()));
    assert_eq!(on_stop(&phase, &s, false), StopStep::Ignore);
}

/// `kill_mode = "group"`: a drain sends `stop_signal` to every process of the
/// daemon, whether the main process runs or not.
#[test]
fn kill_mode_group_sends_stop_signal_to_every_process() {
    let t0 = crate::keeper::test_epoch();
    let s = supervision();
    let stop = Escalation::stop_sent(t0, &s);
    assert_eq!(
        drain_begins(t0, &s, true, false),
        (FirstSignal::StopAll, stop)
    );
    assert_eq!(
        drain_begins(t0, &s, false, false),
        (FirstSignal::StopAll, stop)
    );
    let nothing = (FirstSignal::Nothing, Escalation::Nothing);
    assert_eq!(drain_begins(t0, &s, false, true), nothing);
}

/// `kill_mode = "mixed"` (SPEC): `stop_signal` goes to the main process alone, and
/// what is left once it has exited, or at `stop_timeout`, gets SIGKILL.
#[test]
fn kill_mode_mixed_signals_the_main_process_and_kills_what_it_leaves() {
    let t0 = crate::keeper::test_epoch();
    let s = Supervision {
        kill_mode: KillMode::Mixed,
        ..supervision()
    };
    let stop = Escalation::stop_sent(t0, &s);
    assert_eq!(
        drain_begins(t0, &s, true, false),
        (FirstSignal::StopMain, stop)
    );
    let next = Next::stopped();
    let now = t0 + ms(100);
    // While the main process runs, its workers are left to it.
    assert_eq!(
        drain_step(stop, &next, now, &s, true, false),
        DrainStep::Wait
    );
    // Once it is gone, what is left is killed at once, not after stop_timeout.
    let killed = DrainStep::Signal {
        kill: true,
        escalation: Escalation::Killed,
    };
    assert_eq!(drain_step(stop, &next, now, &s, false, false), killed);
    assert_eq!(
        drain_step(stop, &next, now, &s, false, true),
        DrainStep::Done(Next::stopped())
    );
    // At stop_timeout, SIGKILL to everything, the main process included.
    let phase = Phase::Draining {
        escalation: stop,
        next,
        shown: Status::Running,
    };
    assert_eq!(on_timer(&phase, t0 + ms(2000), &s, false), Tick::Kill);
    // A drain after the main process died (a crash, a restart) kills what is left.
    assert_eq!(
        drain_begins(t0, &s, false, false),
        (FirstSignal::KillAll, Escalation::Killed)
    );
}

/// A process that shows up after a drain found nothing gets `stop_signal` and a
/// `stop_timeout` of its own.
#[test]
fn a_latecomer_gets_the_stop_signal_and_its_own_timeout() {
    let t0 = crate::keeper::test_epoch();
    let s = supervision();
    let step = drain_step(Escalation::Nothing, &Next::stopped(), t0, &s, false, false);
    let escalation = Escalation::Stop {
        kill_at: t0 + ms(2000),
    };
    assert_eq!(
        step,
        DrainStep::Signal {
            kill: false,
            escalation
        }
    );
}

/// A stop during backoff drains (nothing runs) and finishes stopped; one during a
/// drain for a restart turns that drain into a stop.
#[test]
fn a_stop_during_backoff_or_a_restart_drain_ends_stopped() {
    let t0 = crate::keeper::test_epoch();
    let s = supervision();
    let backoff = Phase::Backoff {
        until: t0 + ms(1000),
        next_restart_ms: None,
    };
    assert!(!backoff.is_stopping());
    assert_eq!(on_stop(&backoff, &s, false), StopStep::Drain);
    let restarting = draining(Next::Restart(ms(1000)));
    assert!(!restarting.is_stopping());
    assert_eq!(on_stop(&restarting, &s, false), StopStep::Redirect);
    assert_eq!(on_exit(&restarting, false), ExitStep::Decided);
}

/// A stop while the start waits for readiness drains at once; the start fails.
#[test]
fn a_stop_during_readiness_drains() {
    let t0 = crate::keeper::test_epoch();
    let s = with_ready();
    let phase = Phase::spawned(DaemonType::Simple, t0, &s);
    assert_eq!(on_stop(&phase, &s, true), StopStep::Drain);
    let with_command = Supervision {
        stop_command: Some(vec!["halt".into()]),
        ..s
    };
    assert_eq!(on_stop(&phase, &with_command, true), StopStep::StopCommand);
    assert_eq!(on_stop(&phase, &with_command, false), StopStep::Drain);
}

/// `stop_command` runs within `stop_timeout`; if the daemon ends with it, the drain
/// that follows finds little; if not, the command is killed and the signals follow.
#[test]
fn stop_command_is_bounded_by_stop_timeout() {
    let t0 = crate::keeper::test_epoch();
    let s = supervision();
    let phase = Phase::stop_command(42, t0, &s);
    assert!(phase.is_stopping());
    assert_eq!(on_exit(&phase, false), ExitStep::Decided);
    let over = Tick::StopCommandOver { pid: Some(42) };
    assert_eq!(on_timer(&phase, t0 + ms(2000), &s, false), over);
    let ended = Phase::StopCommand {
        pid: None,
        until: t0 + ms(2000),
    };
    assert_eq!(on_exit(&ended, false), ExitStep::DrainStopped);
}

/// A live update of the supervision keys changes what the next decisions use: a
/// new `stop_timeout` sets the next SIGKILL time.
#[test]
fn a_live_update_changes_the_next_deadlines() {
    let t0 = crate::keeper::test_epoch();
    let longer = Supervision {
        stop_timeout: ms(30_000),
        ..supervision()
    };
    let Escalation::Stop { kill_at } = Escalation::stop_sent(t0, &longer) else {
        unreachable!()
    };
    assert_eq!(kill_at, t0 + ms(30_000));
}

/// `type = "forking"`: the command's window is `ready_timeout`, during which the
/// keeper looks for the daemon; once adopted, the daemon gets its own start window.
#[test]
fn a_forking_command_is_looked_after_until_adoption() {
    let t0 = crate::keeper::test_epoch();
    let s = supervision();
    let phase = Phase::spawned(DaemonType::Forking, t0, &s);
    assert_eq!(phase.deadline(None), Some(t0 + ms(5000)));
    assert_eq!(on_timer(&phase, t0 + ms(10), &s, false), Tick::Look);
    assert_eq!(on_exit(&phase, true), ExitStep::Judge);
    let adopted = Starting::new(t0 + ms(300), t0 + ms(5000), &s);
    assert_eq!(adopted.settle_at, t0 + ms(800));
    assert_eq!(adopted.next_probe, adopted.settle_at);
    let late = Starting::new(t0 + ms(4800), t0 + ms(5000), &s);
    assert_eq!(late.ready_by, t0 + ms(5300), "start_wait is always granted");
}

//! The keeper's own restarts of a `restart_mode = "start-first"` daemon (issue 27):
//! a failed health check, `memory_max`, a missed watchdog ping each start the next
//! generation beside the one that serves, which is only stopped once the new one is
//! up. (`restart_schedule` is in `jobs_tests`, `apply` goes through `dmgr restart`'s
//! request.)

use std::time::Duration;

use super::tests::{code, daemon, event, kinds, Rig, DAEMON};
use super::*;
use crate::config::units::{Signal, Size};
use crate::config::{DaemonType, ReadyCheck, RestartMode};
use crate::keeper::sd_notify::parse;
use crate::memory::Usage;

const NEXT: i32 = 200;

/// The rig's daemon, start-first.
fn start_first() -> Daemon {
    let mut d = daemon();
    d.supervision.restart_mode = RestartMode::StartFirst;
    d
}

/// Returns true if and only if `effects` signal any process.
fn signals(effects: &[Effect]) -> bool {
    effects.iter().any(|e| {
        matches!(
            e,
            Effect::SignalAll { .. } | Effect::SignalGroup { .. } | Effect::SignalMain { .. }
        )
    })
}

/// The restart just began start-first: nothing is signalled, the next generation is
/// spawned as `NEXT` and comes up past `start_wait`, and only then does the old one
/// get `signal`.
fn next_generation_takes_over(rig: &mut Rig, effects: &[Effect], cause: &str, signal: Signal) {
    assert!(!signals(effects), "{effects:?}");
    assert!(effects.contains(&Effect::SpawnDaemon { again: true }));
    let restarting = event(effects, Kind::Restarting);
    assert_eq!(
        restarting.message.as_deref(),
        Some(
            format!(
                "start-first ({cause}): generation 2 starts beside generation 1 (pid 100), which keeps serving"
            )
            .as_str()
        )
    );
    rig.spawned(NEXT);
    assert_eq!(rig.m.status(), Status::Starting);
    let up = rig.tick_after(500);
    assert!(up.contains(&Effect::SignalGroup {
        pid: DAEMON.pid,
        signal
    }));
    assert_eq!(kinds(&up), [Kind::Stopping]);
    assert_eq!(rig.m.status(), Status::Running);
    assert_eq!(rig.m.daemon().map(|d| d.pid), Some(NEXT));
    assert_eq!(kinds(&rig.reaped(DAEMON.pid, code(0))), [Kind::Exited]);
    assert_eq!(rig.m.status(), Status::Running);
}

#[test]
fn failed_health_checks_of_a_start_first_daemon_start_the_next_generation_first() {
    let mut d = start_first();
    d.supervision.health = Some(ReadyCheck::Exec(vec!["check".into()]));
    d.supervision.health_interval = Duration::from_secs(10);
    d.supervision.health_timeout = Duration::from_secs(5);
    d.supervision.health_failures = 1;
    let mut rig = Rig::new(d);
    rig.up();
    rig.tick_after(10_000);
    let probe = ProcId { pid: 600, start: 1 };
    rig.feed(Input::ProbeStarted { id: probe });
    let effects = rig.reaped(probe.pid, code(1));
    assert_eq!(
        kinds(&effects),
        [Kind::Unhealthy, Kind::Restarting],
        "{effects:?}"
    );
    let stop_signal = rig.m.s.stop_signal;
    next_generation_takes_over(&mut rig, &effects, "unhealthy", stop_signal);
    // Counted as a restart, and the checks watch the new generation.
    assert_eq!(rig.record().restarts, 1);
    assert_eq!(
        rig.m.poll_timeout(),
        Some(rig.now.at + Duration::from_secs(10)),
        "the next check, of the new generation"
    );
}

#[test]
fn a_start_first_daemon_above_memory_max_is_replaced_by_the_next_generation_first() {
    let mut d = start_first();
    d.supervision.memory_max = Some(Size(64 << 20));
    let sampled = MemoryMode::Sampled { reason: None };
    let mut rig = Rig::with_memory(d, Some(sampled));
    rig.up();
    rig.world.usage = Usage {
        bytes: 100 << 20,
        processes: 1,
    };
    let effects = rig.tick_after(2000);
    assert_eq!(kinds(&effects), [Kind::MemoryExceeded, Kind::Restarting]);
    rig.world.usage = Usage {
        bytes: 10 << 20,
        processes: 1,
    };
    let stop_signal = rig.m.s.stop_signal;
    next_generation_takes_over(&mut rig, &effects, "memory-exceeded", stop_signal);
}

#[test]
fn a_missed_watchdog_ping_of_a_start_first_daemon_signals_it_only_once_the_next_is_up() {
    let mut d = start_first();
    d.kind = DaemonType::Notify;
    d.process.watchdog = Some(Duration::from_millis(200));
    let mut rig = Rig::new(d);
    rig.start(DAEMON.pid);
    rig.tick_after(500);
    let ready = |rig: &mut Rig, pid: i32| {
        rig.feed(Input::Notify {
            pid,
            message: parse(b"READY=1", false),
        })
    };
    ready(&mut rig, DAEMON.pid);
    let effects = rig.tick_after(300);
    let watchdog = event(&effects, Kind::Watchdog);
    assert_eq!(
        watchdog.message.as_deref(),
        Some("no WATCHDOG=1 within 200ms; ABRT once the next generation is up")
    );
    assert!(!signals(&effects), "{effects:?}");
    rig.spawned(NEXT);
    rig.tick_after(500);
    let up = ready(&mut rig, NEXT);
    assert!(up.contains(&Effect::SignalGroup {
        pid: DAEMON.pid,
        signal: rig.m.s.watchdog_signal
    }));
    assert_eq!(event(&up, Kind::Stopping).signal.as_deref(), Some("ABRT"));
    assert_eq!(rig.m.daemon().map(|d| d.pid), Some(NEXT));
}

#[test]
fn a_start_first_daemon_whose_policy_gives_up_is_stopped_as_before() {
    let mut d = start_first();
    d.supervision.restart = crate::config::RestartPolicy::No;
    d.supervision.memory_max = Some(Size(64 << 20));
    let mut rig = Rig::with_memory(d, Some(MemoryMode::Sampled { reason: None }));
    rig.up();
    rig.world.usage = Usage {
        bytes: 100 << 20,
        processes: 1,
    };
    let effects = rig.tick_after(2000);
    assert!(!effects.contains(&Effect::SpawnDaemon { again: true }));
    assert!(effects.contains(&Effect::BeginDrain));
}

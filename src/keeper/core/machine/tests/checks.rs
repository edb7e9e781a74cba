//! The checks of a daemon that is up (`health`, `memory_max`), `dmgr reload`, and the
//! take-over of supervision keys by `apply`.

use super::*;

fn with_health() -> Daemon {
    let mut daemon = daemon();
    daemon.supervision.health = Some(ReadyCheck::Exec(vec!["check".into()]));
    daemon.supervision.health_interval = Duration::from_secs(10);
    daemon.supervision.health_timeout = Duration::from_secs(5);
    daemon.supervision.health_failures = 2;
    daemon
}

/// SPEC `health`: a check every `health_interval` once the daemon is up; after
/// `health_failures` failures in a row the keeper records `unhealthy` and restarts the
/// daemon (the stop sequence, then the restart policy).
#[test]
fn failed_health_checks_in_a_row_restart_the_daemon() {
    let mut rig = Rig::new(with_health());
    rig.up();
    assert_eq!(
        rig.m.poll_timeout(),
        Some(rig.now.at + Duration::from_secs(10))
    );
    for round in 1..=2 {
        let probe = rig.tick_after(10_000);
        assert!(
            matches!(probe[..], [Effect::StartProbe { .. }]),
            "{probe:?}"
        );
        let id = ProcId {
            pid: 600 + round,
            start: 1,
        };
        rig.feed(Input::ProbeStarted { id });
        let ended = rig.reaped(id.pid, code(1));
        if round == 1 {
            let seen = rig.record().checks.health.unwrap();
            assert_eq!(seen.failures_in_row, 1);
            assert_eq!(seen.last_error.as_deref(), Some("check exited non-zero"));
        } else {
            // The run ends: what the checks saw goes with it.
            assert_eq!(rig.record().checks.health, None);
            let unhealthy = event(&ended, Kind::Unhealthy);
            assert_eq!(
                unhealthy.message.as_deref(),
                Some("2 failed checks in a row, the last: check exited non-zero")
            );
            assert!(ended.contains(&Effect::SignalAll {
                signal: daemon().supervision.stop_signal,
                main: Some(DAEMON.pid)
            }));
        }
    }
    rig.reaped(DAEMON.pid, killed_by("TERM"));
    let next = rig.feed(Input::Tick);
    let restarting = event(&next, Kind::Restarting);
    assert_eq!(
        restarting.message.as_deref(),
        Some("restart 1: unhealthy: 2 failed checks in a row, the last: check exited non-zero")
    );
}

/// A health probe still running at `health_timeout` is killed and counts as failed.
#[test]
fn a_hung_health_probe_is_killed_and_fails() {
    let mut rig = Rig::new(with_health());
    rig.up();
    rig.tick_after(10_000);
    let id = ProcId { pid: 601, start: 1 };
    rig.feed(Input::ProbeStarted { id });
    let kill = rig.tick_after(5000);
    assert!(kill.contains(&Effect::KillProbe { pid: 601 }));
    rig.reaped(601, killed_by("KILL"));
    let seen = rig.record().checks.health.unwrap();
    assert_eq!(
        seen.last_error.as_deref(),
        Some("no answer within health_timeout (5s)")
    );
}

fn with_memory_max() -> Daemon {
    let mut daemon = daemon();
    daemon.supervision.memory_max = Some(crate::config::units::Size(64 << 20));
    daemon
}

/// SPEC `memory_max`, sampled: a measurement as the daemon comes up and every 2 s;
/// above the ceiling the keeper records `memory-exceeded` and restarts the daemon.
#[test]
fn a_sampled_daemon_above_memory_max_is_restarted() {
    let sampled = MemoryMode::Sampled {
        reason: Some("the daemon has no cgroup v2 of its own".into()),
    };
    let mut rig = Rig::with_memory(with_memory_max(), Some(sampled));
    rig.world.usage = Usage {
        bytes: 10 << 20,
        processes: 1,
    };
    let up = rig.up();
    assert!(up.contains(&Effect::SaveRecord));
    // Measured at once as it came up: the next one is due 2 s later.
    rig.feed(Input::Tick);
    let seen = rig.record().checks.memory.unwrap();
    assert_eq!(seen.used_bytes, 10 << 20);
    assert_eq!(seen.mechanism, MemoryMechanism::Sampled);
    assert_eq!(
        rig.m.poll_timeout(),
        Some(rig.now.at + Duration::from_secs(2))
    );
    rig.world.usage = Usage {
        bytes: 100 << 20,
        processes: 2,
    };
    let over = rig.tick_after(2000);
    let exceeded = event(&over, Kind::MemoryExceeded);
    assert_eq!(
        exceeded.message.as_deref(),
        Some("100MiB in use, above memory_max 64MiB (2 processes)")
    );
    assert!(over.contains(&Effect::BeginDrain));
}

/// SPEC `memory_max` with the kernel's events: no timer at all; a wake-up whose
/// counters grew is measured, and above the ceiling it ends the run.
#[test]
fn with_the_kernels_memory_events_no_timer_runs() {
    let mut rig = Rig::with_memory(with_memory_max(), Some(MemoryMode::Events));
    rig.world.counters = Some(MemoryEvents::default());
    rig.up();
    rig.feed(Input::Tick);
    assert_eq!(rig.m.poll_timeout(), None);
    rig.world.usage = Usage {
        bytes: 65 << 20,
        processes: 1,
    };
    let same = rig.feed(Input::MemoryEvents(MemoryEvents::default()));
    assert!(kinds(&same).is_empty(), "no counter grew");
    let grew = MemoryEvents {
        high: 1,
        ..MemoryEvents::default()
    };
    let over = rig.feed(Input::MemoryEvents(grew));
    assert_eq!(kinds(&over), [Kind::MemoryExceeded]);
}

/// `dmgr reload` without `reload_command`: `reload_signal` to the main process, and a
/// `signalled` event that answers the request.
#[test]
fn a_reload_sends_reload_signal_and_answers_the_request() {
    let mut rig = Rig::new(daemon());
    rig.up();
    let ask = rig.feed(Input::Reload { request: Some(7) });
    let hup = daemon().supervision.reload_signal;
    assert_eq!(
        ask,
        [Effect::SendReloadSignal {
            pid: DAEMON.pid,
            signal: hup
        }]
    );
    let sent = rig.feed(Input::ReloadSignalled { result: Ok(()) });
    let signalled = event(&sent, Kind::Signalled);
    assert_eq!(signalled.request, Some(7));
    assert_eq!(signalled.signal.as_deref(), Some("HUP"));
}

/// SPEC `reload_command`: run in the daemon's tree; its end answers the request
/// (`reloaded`, or `reload-failed` with its last output lines); past `stop_timeout` it
/// is killed. A reload with nothing running is refused.
#[test]
fn a_reload_command_is_answered_by_its_end() {
    let mut daemon = daemon();
    daemon.supervision.reload_command = Some(vec!["web-ctl".into(), "reload".into()]);
    let mut rig = Rig::new(daemon);
    let refused = rig.feed(Input::Reload { request: Some(1) });
    assert_eq!(
        event(&refused, Kind::ReloadFailed).message.as_deref(),
        Some("nothing to reload: it is not running")
    );
    rig.up();
    rig.feed(Input::Reload { request: Some(2) });
    let running = rig.feed(Input::CommandStarted {
        command: Command::Reload,
        pid: 700,
    });
    assert_eq!(event(&running, Kind::Reloading).request, Some(2));
    let busy = rig.feed(Input::Reload { request: Some(3) });
    assert_eq!(
        event(&busy, Kind::ReloadFailed).message.as_deref(),
        Some("a reload_command runs already (pid 700)")
    );
    let done = rig.feed(Input::Reaped {
        pid: 700,
        exit: code(4),
        output: vec!["bad config".into()],
    });
    let failed = event(&done, Kind::ReloadFailed);
    assert_eq!(failed.message.as_deref(), Some("reload_command exited 4"));
    assert_eq!(failed.output, ["bad config"]);
    assert_eq!(failed.pid, Some(DAEMON.pid));
    assert_eq!(failed.request, Some(2));
    rig.feed(Input::Reload { request: Some(4) });
    rig.feed(Input::CommandStarted {
        command: Command::Reload,
        pid: 701,
    });
    let kill = rig.tick_after(2000);
    assert_eq!(kill, [Effect::KillCommand { pid: 701 }]);
    let done = rig.reaped(701, killed_by("KILL"));
    assert_eq!(
        event(&done, Kind::ReloadFailed).message.as_deref(),
        Some("reload_command did not finish within stop_timeout (2s) and was killed")
    );
}

/// SPEC `apply`: changed supervision keys are handed to the running keeper, which
/// takes them over without restarting the daemon and says which.
#[test]
fn apply_hands_over_supervision_keys_without_a_restart() {
    let mut rig = Rig::new(daemon());
    rig.up();
    let mut supervision = daemon().supervision;
    supervision.stop_timeout = Duration::from_secs(30);
    let change = TakeOver {
        supervision,
        memory: None,
    };
    let taken = rig.feed(Input::TakeOver(Some(Box::new(change))));
    assert_eq!(
        event(&taken, Kind::Updated).message.as_deref(),
        Some("took over stop_timeout")
    );
    assert!(taken.contains(&Effect::SaveRecord));
    assert_eq!(
        rig.record().supervision.stop_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(rig.m.status(), Status::Running);
    // The next stop uses it.
    rig.feed(Input::Stop { outside: None });
    assert_eq!(
        rig.m.poll_timeout(),
        Some(rig.now.at + Duration::from_secs(30))
    );
    let broken = rig.feed(Input::TakeOver(None));
    assert_eq!(
        event(&broken, Kind::Updated).message.as_deref(),
        Some("nothing taken over: the file does not load")
    );
}

/// A reload the keeper cannot carry out answers its request with `reload-failed`,
/// saying why: `reload_signal` could not be sent, the daemon is stopping, or
/// `reload_command` could not be started.
#[test]
fn a_reload_that_cannot_be_done_answers_reload_failed() {
    let mut rig = Rig::new(daemon());
    rig.up();
    rig.feed(Input::Reload { request: Some(1) });
    let sent = rig.feed(Input::ReloadSignalled {
        result: Err("Operation not permitted".into()),
    });
    let failed = event(&sent, Kind::ReloadFailed);
    assert_eq!(
        failed.message.as_deref(),
        Some("cannot send HUP to pid 100: Operation not permitted")
    );
    assert_eq!(failed.request, Some(1));

    let mut daemon = daemon();
    daemon.supervision.reload_command = Some(vec!["web-ctl".into(), "reload".into()]);
    let mut rig = Rig::new(daemon);
    rig.up();
    rig.feed(Input::Reload { request: Some(2) });
    let cannot = rig.feed(Input::CommandFailed {
        command: Command::Reload,
        reason: "web-ctl: not found in PATH".into(),
    });
    let failed = event(&cannot, Kind::ReloadFailed);
    assert_eq!(
        failed.message.as_deref(),
        Some("cannot run reload_command: web-ctl: not found in PATH")
    );
    assert_eq!(failed.request, Some(2));
    assert_eq!(rig.m.status(), Status::Running);

    rig.world.left = true;
    rig.feed(Input::Stop { outside: None });
    let stopping = rig.feed(Input::Reload { request: Some(3) });
    assert_eq!(
        event(&stopping, Kind::ReloadFailed).message.as_deref(),
        Some("nothing to reload: it is stopping")
    );
    assert!(!stopping
        .iter()
        .any(|e| matches!(e, Effect::RunCommand { .. })));
}

/// With `memory_max` watched by samples, a wake-up from the kernel's memory events
/// (which only a cgroup's keeper gets) measures nothing: the samples decide.
#[test]
fn kernel_memory_events_are_ignored_when_memory_is_sampled() {
    let mut rig = Rig::with_memory(
        with_memory_max(),
        Some(MemoryMode::Sampled { reason: None }),
    );
    rig.up();
    rig.world.usage = Usage {
        bytes: 200 << 20,
        processes: 1,
    };
    let woken = rig.feed(Input::MemoryEvents(MemoryEvents {
        high: 1,
        max: 1,
        oom: 0,
        oom_kill: 0,
    }));
    assert!(woken.is_empty(), "{woken:?}");
    assert_eq!(rig.m.status(), Status::Running);
}

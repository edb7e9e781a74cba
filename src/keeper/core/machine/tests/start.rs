//! Starts: the spawn and its answers, `start_wait`, readiness probes, `ready_timeout`,
//! a forking daemon's adoption.

use super::*;

/// Promise 1: `start` returns once the process has stayed up `start_wait`, with
/// `started (pid N)`; the record names the process from before it runs its command.
#[test]
fn a_start_reports_the_pid_once_start_wait_is_over() {
    let mut rig = Rig::new(daemon());
    let spawned = rig.start(DAEMON.pid);
    assert_eq!(kinds(&spawned), [Kind::Started]);
    assert_eq!(rig.m.status(), Status::Starting);
    let record = rig.record();
    assert_eq!(record.daemon, Some(ProcId { pid: 100, start: 1 }));
    assert_eq!(record.started_at_ms, Some(rig.now.wall_ms));
    assert_eq!(
        rig.m.poll_timeout(),
        Some(rig.now.at + daemon().supervision.start_wait)
    );
    assert!(rig.tick_after(499).is_empty(), "not before start_wait");
    let up = rig.tick_after(1);
    assert_eq!(rig.m.status(), Status::Running);
    assert!(up.contains(&Effect::Report(Report::Started { pid: DAEMON.pid })));
    assert!(up.contains(&Effect::SaveRecord));
    assert!(
        kinds(&up).is_empty(),
        "no `ready` event without a ready check"
    );
}

/// A keeper whose first record cannot be written starts nothing: a daemon that no
/// record names could be neither listed nor stopped.
#[test]
fn without_a_first_record_nothing_starts() {
    let mut rig = Rig::new(daemon());
    let effects = rig.feed(Input::Start {
        recorded: Err("disk full".into()),
    });
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::SpawnDaemon { .. })));
    assert_eq!(kinds(&effects), [Kind::GaveUp]);
    let failed = Report::Failed {
        reason: "disk full".into(),
    };
    assert!(effects.contains(&Effect::Report(failed)));
    assert!(effects.contains(&Effect::Finish));
    assert!(rig.m.is_finished());
    assert_eq!(rig.m.status(), Status::Failed);
    assert_eq!(rig.record().reason, Some(Reason::StartFailed));
}

/// Promise 1: a command that cannot be exec'd fails the start with the reason, and
/// leaves no process and no pidfile behind.
#[test]
fn a_command_that_cannot_run_fails_the_start() {
    let mut rig = Rig::new(daemon());
    rig.feed(Input::Start { recorded: Ok(()) });
    let id = DAEMON;
    rig.feed(Input::Forked { id });
    let failed = rig.feed(Input::SpawnFailed {
        reason: "/bin/nope: No such file or directory".into(),
        unrecorded: false,
    });
    assert!(failed.contains(&Effect::ClearPidfile));
    assert_eq!(rig.record().daemon, None);
    // The drain finds nothing left, and the start fails with the reason.
    let end = rig.feed(Input::Tick);
    assert_eq!(kinds(&end), [Kind::GaveUp]);
    let reason = "/bin/nope: No such file or directory".to_string();
    assert!(end.contains(&Effect::Report(Report::Failed { reason })));
    assert!(rig.m.is_finished());
}

/// A restart that cannot be recorded (the run disk is full) is tried again a second
/// later, without counting it as a failure of the daemon: no copy runs that no record
/// names.
#[test]
fn a_restart_that_cannot_be_recorded_is_tried_again_uncounted() {
    let mut rig = Rig::new(daemon());
    rig.up();
    rig.reaped(DAEMON.pid, code(1));
    rig.feed(Input::Tick);
    assert_eq!(rig.m.status(), Status::Backoff);
    let restarts = rig.record().restarts;
    let again = rig.tick_after(1000);
    assert_eq!(again, [Effect::SpawnDaemon { again: true }]);
    rig.feed(Input::Forked { id: DAEMON });
    let failed = rig.feed(Input::SpawnFailed {
        reason: "not started: disk full".into(),
        unrecorded: true,
    });
    assert_eq!(failed, [Effect::ClearPidfile]);
    assert_eq!(rig.m.status(), Status::Backoff);
    assert_eq!(rig.record().restarts, restarts);
    assert_eq!(rig.m.poll_timeout(), Some(rig.now.at + RECORD_RETRY));
    assert_eq!(rig.tick_after(1000), [Effect::SpawnDaemon { again: true }]);
}

fn with_ready() -> Daemon {
    let mut daemon = daemon();
    daemon.supervision.ready = Some(ReadyCheck::Tcp("127.0.0.1:8080".into()));
    daemon
}

/// SPEC `ready`: after `start_wait` a probe runs, one at a time; a failed one is tried
/// again 100 ms later; the one that passes makes the daemon up, with a `ready` event.
#[test]
fn readiness_is_probed_after_start_wait_until_it_passes() {
    let mut rig = Rig::new(with_ready());
    rig.start(DAEMON.pid);
    let ready_by = rig.now.at + Duration::from_secs(5);
    let probe = rig.tick_after(500);
    let check = ReadyCheck::Tcp("127.0.0.1:8080".into());
    assert_eq!(
        probe,
        [Effect::StartProbe {
            check: check.clone(),
            deadline: ready_by
        }]
    );
    let id = ProcId { pid: 200, start: 3 };
    assert_eq!(rig.feed(Input::ProbeStarted { id }), [Effect::SaveRecord]);
    assert_eq!(rig.record().probe, Some(id));
    assert!(rig.tick_after(50).is_empty(), "one probe at a time");
    // It fails: the next is due 100 ms later.
    let failed = rig.reaped(200, code(1));
    assert_eq!(failed, [Effect::SaveRecord]);
    assert_eq!(rig.record().probe, None);
    assert_eq!(rig.m.poll_timeout(), Some(rig.now.at + PROBE_INTERVAL));
    assert!(rig.tick_after(99).is_empty());
    let again = rig.tick_after(1);
    assert!(matches!(again[..], [Effect::StartProbe { .. }]));
    let passed = rig.feed(Input::ProbeAnswered { passed: true });
    assert_eq!(rig.m.status(), Status::Running);
    assert_eq!(kinds(&passed), [Kind::Ready]);
    assert!(passed.contains(&Effect::Report(Report::Started { pid: DAEMON.pid })));
}

/// SPEC `ready_timeout`: past it the start fails, the probe is killed and the daemon
/// stopped; the record shows it starting until the end.
#[test]
fn a_daemon_not_ready_within_ready_timeout_fails_its_start() {
    let mut rig = Rig::new(with_ready());
    rig.start(DAEMON.pid);
    rig.tick_after(500);
    rig.feed(Input::ProbeStarted {
        id: ProcId { pid: 200, start: 3 },
    });
    let over = rig.tick_after(4500);
    assert!(over.contains(&Effect::KillProbe { pid: 200 }));
    assert!(over.contains(&Effect::SignalAll {
        signal: daemon().supervision.stop_signal,
        main: Some(DAEMON.pid)
    }));
    assert_eq!(rig.m.status(), Status::Starting);
    rig.reaped(200, killed_by("KILL"));
    rig.reaped(DAEMON.pid, killed_by("TERM"));
    let end = rig.feed(Input::Tick);
    let reason = "not ready within ready_timeout (5s)".to_string();
    assert!(end.contains(&Effect::Report(Report::Failed { reason })));
    assert_eq!(rig.m.status(), Status::Failed);
}

/// Promise 1: a process that dies within `start_wait` fails the start that waits for
/// it, with how it ended; nothing restarts it.
#[test]
fn a_death_within_start_wait_fails_the_start() {
    let mut rig = Rig::new(daemon());
    rig.start(DAEMON.pid);
    rig.now = rig.now.after(Duration::from_millis(120));
    let exit = rig.reaped(DAEMON.pid, code(3));
    let exited = event(&exit, Kind::Exited);
    assert_eq!(exited.exit_code, Some(3));
    assert_eq!(exited.message.as_deref(), Some("after 120ms"));
    assert!(exit.contains(&Effect::PumpLogs));
    let end = rig.feed(Input::Tick);
    let reason = "exited within start_wait (500ms): exit 3".to_string();
    assert!(end.contains(&Effect::Report(Report::Failed { reason })));
    assert!(!end.iter().any(|e| matches!(e, Effect::SpawnDaemon { .. })));
    let record = rig.record();
    assert_eq!(record.last_exit.map(|e| e.code), Some(Some(3)));
    assert_eq!(record.reason, Some(Reason::StartFailed));
}

fn forking(pidfile: bool) -> Daemon {
    let mut daemon = daemon();
    daemon.kind = DaemonType::Forking;
    if pidfile {
        daemon.forking_pidfile = Some("/run/web.pid".into());
    }
    daemon
}

const LEFT: ProcId = ProcId { pid: 300, start: 9 };

/// SPEC `type = "forking"`: the command exits 0, and the process its own pidfile
/// names, the keeper's child, is adopted as the daemon, with its own start window.
#[test]
fn a_forking_daemon_is_adopted_from_its_pidfile() {
    let mut rig = Rig::new(forking(true));
    let spawned = rig.start(DAEMON.pid);
    assert!(
        kinds(&spawned).is_empty(),
        "`started` waits for the adoption"
    );
    assert_eq!(
        rig.m.poll_timeout(),
        Some(rig.now.at + Duration::from_secs(5))
    );
    rig.world.children = vec![LEFT];
    rig.world.named = Some(LEFT.pid);
    let adopted = rig.reaped(DAEMON.pid, code(0));
    assert!(adopted.contains(&Effect::WritePid { pid: LEFT.pid }));
    let started = event(&adopted, Kind::Started);
    assert_eq!(started.pid, Some(LEFT.pid));
    assert_eq!(
        started.message.as_deref(),
        Some("named by its pidfile /run/web.pid (type = \"forking\")")
    );
    assert_eq!(rig.record().daemon, Some(LEFT));
    assert_eq!(rig.m.status(), Status::Starting);
    let up = rig.tick_after(500);
    assert!(up.contains(&Effect::Report(Report::Started { pid: LEFT.pid })));
}

/// SPEC `type = "forking"` without `pidfile`: the one child left is adopted once it has
/// been the only one for `start_wait`; until then the record names no process.
#[test]
fn a_forking_daemon_without_a_pidfile_is_the_one_child_that_lasts() {
    let mut rig = Rig::new(forking(false));
    rig.start(DAEMON.pid);
    rig.world.children = vec![LEFT];
    let exited = rig.reaped(DAEMON.pid, code(0));
    assert!(exited.contains(&Effect::ClearPidfile));
    assert_eq!(rig.record().daemon, None);
    assert_eq!(rig.m.status(), Status::Starting);
    assert!(kinds(&rig.tick_after(499)).is_empty());
    let adopted = rig.tick_after(1);
    assert_eq!(event(&adopted, Kind::Started).pid, Some(LEFT.pid));
}

/// A forking command that fails, or leaves nothing behind, fails the start with the
/// reason, prefixed `type = "forking"`.
#[test]
fn a_forking_command_that_fails_or_leaves_nothing_fails_the_start() {
    let mut rig = Rig::new(forking(false));
    rig.start(DAEMON.pid);
    let failed = rig.reaped(DAEMON.pid, code(2));
    assert!(failed.contains(&Effect::PumpLogs));
    let end = rig.feed(Input::Tick);
    let reason = "type = \"forking\": the command ended (exit 2) instead of exiting 0 once the daemon was up".to_string();
    assert!(end.contains(&Effect::Report(Report::Failed { reason })));

    let mut rig = Rig::new(forking(false));
    rig.start(DAEMON.pid);
    rig.reaped(DAEMON.pid, code(0));
    let end = rig.feed(Input::Tick);
    let reason = "type = \"forking\": the command exited 0 but left no process behind".to_string();
    assert!(end.contains(&Effect::Report(Report::Failed { reason })));
}

/// A stop while a forking daemon's command still runs: its tree is drained, nothing
/// it leaves is adopted (even a process its pidfile names), and the start that waits
/// for it fails, saying it was stopped before it was up.
#[test]
fn a_stop_during_adoption_adopts_nothing() {
    let mut rig = Rig::new(forking(true));
    rig.start(DAEMON.pid);
    rig.world.left = true;
    let stop = rig.feed(Input::Stop { outside: None });
    assert!(stop.contains(&Effect::SignalAll {
        signal: daemon().supervision.stop_signal,
        main: Some(DAEMON.pid)
    }));
    assert_eq!(rig.m.status(), Status::Stopping);
    rig.world.children = vec![LEFT];
    rig.world.named = Some(LEFT.pid);
    let exit = rig.reaped(DAEMON.pid, code(0));
    assert!(!exit.contains(&Effect::WritePid { pid: LEFT.pid }));
    assert!(!kinds(&exit).contains(&Kind::Started));
    assert_eq!(rig.record().daemon, None);
    // What the command left gets the stop signal as a latecomer would, and once all
    // of it is gone the start fails.
    rig.world.left = false;
    let end = rig.feed(Input::Tick);
    let reason = "stopped before it was up".to_string();
    assert!(end.contains(&Effect::Report(Report::Failed { reason })));
    assert_eq!(rig.record().reason, Some(Reason::StoppedByRequest));
}

/// A daemon that runs without the cgroup it was meant to have says why in its next
/// `started` event: the first one, or the one of the restart after the cgroup was
/// lost.
#[test]
fn a_lost_cgroup_is_named_in_the_next_started_event() {
    let mut rig = Rig::new(daemon());
    rig.up();
    let note = "no cgroup: its directory was removed";
    let lost = rig.feed(Input::CgroupLost {
        note: note.into(),
        memory: None,
    });
    assert!(lost.is_empty(), "nothing to do until the next start");
    rig.reaped(DAEMON.pid, killed_by("KILL"));
    assert!(kinds(&rig.feed(Input::Tick)).contains(&Kind::Restarting));
    let spawn = rig.tick_after(1000);
    assert_eq!(spawn, [Effect::SpawnDaemon { again: true }]);
    let started = rig.spawned(101);
    assert_eq!(
        event(&started, Kind::Started).message.as_deref(),
        Some(note)
    );
    // Only once.
    rig.reaped(101, killed_by("KILL"));
    rig.feed(Input::Tick);
    rig.tick_after(2000);
    let again = rig.spawned(102);
    assert_eq!(event(&again, Kind::Started).message, None);
}

/// A restart whose process cannot be started is counted as a quick failure, and the
/// record says why (the `restarting` event too) until the next process stands.
#[test]
fn a_failed_restart_is_recorded_until_the_next_process_stands() {
    let mut rig = Rig::new(daemon());
    rig.up();
    rig.reaped(DAEMON.pid, killed_by("KILL"));
    rig.feed(Input::Tick);
    assert_eq!(rig.tick_after(1000), [Effect::SpawnDaemon { again: true }]);
    let failed = rig.feed(Input::SpawnFailed {
        reason: "/usr/bin/web: No such file or directory".into(),
        unrecorded: false,
    });
    assert!(failed.contains(&Effect::ClearPidfile));
    let restarting = rig.feed(Input::Tick);
    assert_eq!(
        event(&restarting, Kind::Restarting).message.as_deref(),
        Some("restart 2: /usr/bin/web: No such file or directory")
    );
    assert_eq!(rig.m.status(), Status::Backoff);
    assert_eq!(
        rig.record().error.as_deref(),
        Some("/usr/bin/web: No such file or directory")
    );
    assert_eq!(rig.record().restarts, 2);
    rig.tick_after(2000);
    rig.spawned(102);
    assert_eq!(rig.record().error, None);
    assert_eq!(rig.m.status(), Status::Starting);
}

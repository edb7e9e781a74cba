//! Ends of a run: the restart policy's verdict, backoff, giving up, and the main-PID
//! hand-over of a forking daemon.

use super::*;
use crate::keeper::core::handover::LOOK_INTERVAL;

/// Promise 5: a daemon killed from outside is restarted by its policy after the delay;
/// `list` shows the restart count and the last exit, and `backoff` meanwhile.
#[test]
fn a_daemon_that_dies_is_restarted_after_its_delay() {
    let mut rig = Rig::new(daemon());
    rig.up();
    rig.now = rig.now.after(Duration::from_secs(3));
    let exit = rig.reaped(DAEMON.pid, killed_by("KILL"));
    let exited = event(&exit, Kind::Exited);
    assert_eq!(exited.signal.as_deref(), Some("KILL"));
    assert_eq!(exited.message.as_deref(), Some("after 3s 500ms"));
    assert!(exit.contains(&Effect::ClearPidfile));
    // Nothing else of it is left: the restart follows at the next look.
    assert_eq!(rig.m.status(), Status::Running, "until the drain is done");
    let next = rig.feed(Input::Tick);
    let restarting = event(&next, Kind::Restarting);
    assert_eq!(restarting.delay_ms, Some(1000));
    assert_eq!(restarting.message.as_deref(), Some("restart 1"));
    assert_eq!(rig.m.status(), Status::Backoff);
    let record = rig.record();
    assert_eq!(record.restarts, 1);
    assert_eq!(record.next_restart_ms, Some(rig.now.wall_ms + 1000));
    assert_eq!(record.last_exit.unwrap().signal.as_deref(), Some("KILL"));
    assert_eq!(record.daemon, None);
    assert!(rig.tick_after(999).is_empty());
    assert_eq!(rig.tick_after(1), [Effect::SpawnDaemon { again: true }]);
    let again = rig.spawned(101);
    assert_eq!(event(&again, Kind::Started).pid, Some(101));
    assert_eq!(rig.m.status(), Status::Starting);
    assert_eq!(rig.record().next_restart_ms, None);
}

/// SPEC `restart = "no"`: an exit 0 leaves the daemon stopped, a failure failed; no
/// restart, and the keeper's work is done.
#[test]
fn with_restart_no_an_exit_ends_the_keepers_work() {
    for (exit, status) in [(code(0), Status::Stopped), (code(1), Status::Failed)] {
        let mut daemon = daemon();
        daemon.supervision.restart = crate::config::RestartPolicy::No;
        let mut rig = Rig::new(daemon);
        rig.up();
        rig.reaped(DAEMON.pid, exit);
        let end = rig.feed(Input::Tick);
        assert!(end.contains(&Effect::Finish));
        assert!(kinds(&end).is_empty(), "{end:?}");
        assert_eq!(rig.m.status(), status);
        assert_eq!(rig.record().reason, Some(Reason::Exited));
    }
}

/// SPEC `max_restarts`: that many quick failures in a row and the keeper gives up:
/// status `failed`, with a `gave-up` event that says why.
#[test]
fn too_many_quick_failures_give_up() {
    let mut daemon = daemon();
    daemon.supervision.max_restarts = 1;
    daemon.supervision.restart_delay = Duration::ZERO;
    let mut rig = Rig::new(daemon);
    rig.up();
    rig.reaped(DAEMON.pid, code(1));
    rig.feed(Input::Tick);
    assert_eq!(rig.m.status(), Status::Backoff);
    rig.feed(Input::Tick);
    rig.spawned(101);
    rig.reaped(101, code(1));
    let end = rig.feed(Input::Tick);
    let gave_up = event(&end, Kind::GaveUp);
    assert_eq!(
        gave_up.message.as_deref(),
        Some("gave up after 2 quick failures in a row")
    );
    assert_eq!(rig.m.status(), Status::Failed);
    assert_eq!(rig.record().reason, Some(Reason::GaveUp));
}

/// The drain after an exit waits for what the daemon left: the restart comes only once
/// nothing of it is left.
#[test]
fn a_restart_waits_until_nothing_of_the_daemon_is_left() {
    let mut rig = Rig::new(daemon());
    rig.up();
    rig.world.left = true;
    let exit = rig.reaped(DAEMON.pid, code(1));
    // What is left gets the stop signal, once the main process is gone.
    assert!(exit.contains(&Effect::SignalAll {
        signal: daemon().supervision.stop_signal,
        main: None
    }));
    assert!(!kinds(&rig.feed(Input::Tick)).contains(&Kind::Restarting));
    rig.world.left = false;
    assert!(kinds(&rig.feed(Input::Tick)).contains(&Kind::Restarting));
}

fn forking() -> Daemon {
    let mut daemon = daemon();
    daemon.kind = DaemonType::Forking;
    daemon.forking_pidfile = Some("/run/web.pid".into());
    daemon
}

const FIRST: ProcId = ProcId { pid: 300, start: 9 };
const NEXT: i32 = 400;

/// A forking daemon adopted as `FIRST` and up.
fn forking_up() -> Rig {
    let mut rig = Rig::new(forking());
    rig.start(DAEMON.pid);
    rig.world.children = vec![FIRST];
    rig.world.named = Some(FIRST.pid);
    rig.reaped(DAEMON.pid, code(0));
    rig.tick_after(500);
    assert_eq!(rig.m.status(), Status::Running);
    rig
}

/// SPEC `type = "forking"`: when the main process exits and the pidfile names a new
/// live process of the daemon's own (nginx's binary upgrade), it is adopted with a
/// `main-pid-changed` event and no restart.
#[test]
fn a_main_pid_hand_over_follows_the_pidfile_with_no_restart() {
    let mut rig = forking_up();
    rig.world.named = Some(NEXT);
    rig.world.processes = vec![(NEXT, true, true)];
    let handed = rig.reaped(FIRST.pid, code(0));
    let changed = event(&handed, Kind::MainPidChanged);
    assert_eq!(changed.pid, Some(NEXT));
    assert_eq!(
        changed.message.as_deref(),
        Some("pid 300 ended (exit 0); its pidfile /run/web.pid names pid 400, which took over")
    );
    assert!(handed.contains(&Effect::WritePid { pid: NEXT }));
    assert!(!kinds(&handed).contains(&Kind::Exited));
    assert_eq!(rig.m.status(), Status::Running);
    assert_eq!(
        rig.record().daemon,
        Some(ProcId {
            pid: NEXT,
            start: 7
        })
    );
    assert_eq!(rig.record().restarts, 0);
}

/// Within the grace after the exit, while processes of the daemon's run, the keeper
/// looks again every 50 ms for the pidfile to name the successor (haproxy writes it
/// only after its fork); the record keeps the old process meanwhile.
#[test]
fn a_hand_over_waits_for_the_pidfile_within_its_grace() {
    let mut rig = forking_up();
    rig.world.named = None;
    rig.world.left = true;
    let waiting = rig.reaped(FIRST.pid, code(0));
    assert!(kinds(&waiting).is_empty());
    assert_eq!(rig.record().daemon, Some(FIRST));
    assert_eq!(rig.m.poll_timeout(), Some(rig.now.at + LOOK_INTERVAL));
    rig.world.named = Some(NEXT);
    rig.world.processes = vec![(NEXT, true, true)];
    let handed = rig.tick_after(50);
    assert_eq!(kinds(&handed), [Kind::MainPidChanged]);
}

/// Promise 12: a pidfile that names a stranger is the daemon's exit: the keeper never
/// adopts it, and says so in the `exited` event; the restart policy follows.
#[test]
fn a_stranger_named_by_the_pidfile_is_never_adopted() {
    let mut rig = forking_up();
    rig.world.named = Some(1);
    rig.world.processes = vec![(1, false, false)];
    let exit = rig.reaped(FIRST.pid, killed_by("KILL"));
    let exited = event(&exit, Kind::Exited);
    assert!(exited
        .message
        .as_deref()
        .is_some_and(|m| m.contains("names pid 1, which is not a process of the daemon's")));
    assert!(exit.contains(&Effect::RecordExit {
        event: exited.clone(),
        dead: Some(FIRST.pid)
    }));
    assert!(!exit.contains(&Effect::WritePid { pid: 1 }));
    assert!(kinds(&rig.feed(Input::Tick)).contains(&Kind::Restarting));
}

/// A stop while the keeper waits for a successor: the main process's exit stands, then
/// the stop.
#[test]
fn a_stop_during_a_hand_over_lets_the_exit_stand() {
    let mut rig = forking_up();
    rig.world.named = None;
    rig.world.left = true;
    rig.reaped(FIRST.pid, code(0));
    let stop = rig.feed(Input::Stop { outside: None });
    assert_eq!(kinds(&stop)[..2], [Kind::Exited, Kind::Stopping]);
    assert_eq!(rig.m.status(), Status::Stopping);
    rig.world.left = false;
    let end = rig.feed(Input::Tick);
    assert_eq!(kinds(&end), [Kind::Stopped]);
}

/// A hand-over within the start-up window: the successor is adopted, the daemon is
/// still starting (and `dmgr start` still waits), and once the window is over it is up
/// as the successor.
#[test]
fn a_hand_over_within_the_start_window_keeps_the_daemon_starting() {
    let mut rig = Rig::new(forking());
    rig.start(DAEMON.pid);
    rig.world.children = vec![FIRST];
    rig.world.named = Some(FIRST.pid);
    rig.reaped(DAEMON.pid, code(0));
    assert_eq!(rig.m.status(), Status::Starting);
    rig.now = rig.now.after(Duration::from_millis(100));
    rig.world.named = Some(NEXT);
    rig.world.processes = vec![(NEXT, true, true)];
    let handed = rig.reaped(FIRST.pid, code(0));
    assert_eq!(kinds(&handed), [Kind::MainPidChanged]);
    assert!(!handed.iter().any(|e| matches!(e, Effect::Report(_))));
    assert_eq!(rig.m.status(), Status::Starting);
    // The window is the first process's: 500 ms from its adoption, not from the
    // hand-over.
    assert!(rig.tick_after(399).is_empty());
    let up = rig.tick_after(1);
    assert!(up.contains(&Effect::Report(Report::Started { pid: NEXT })));
    assert_eq!(rig.m.status(), Status::Running);
}

/// SPEC `restart = "on-failure"` (the default): a clean exit is not a failure; the
/// daemon is stopped, its record says it exited, and nothing restarts it.
#[test]
fn with_restart_on_failure_a_clean_exit_ends_stopped() {
    let mut rig = Rig::new(daemon());
    rig.up();
    rig.reaped(DAEMON.pid, code(0));
    let end = rig.feed(Input::Tick);
    assert!(!kinds(&end).contains(&Kind::Restarting));
    assert!(end.contains(&Effect::Finish));
    assert_eq!(rig.m.status(), Status::Stopped);
    assert_eq!(rig.record().reason, Some(Reason::Exited));
    assert_eq!(rig.m.poll_timeout(), None);
}

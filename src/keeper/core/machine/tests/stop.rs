//! Stops: by request and from outside, `stop_signal` then SIGKILL after
//! `stop_timeout`, `kill_mode`, `stop_command`, and a stop during a restart's drain.

use super::*;

fn term() -> Signal {
    daemon().supervision.stop_signal
}

/// Promise 4: `stop` sends `stop_signal` to every process of the daemon; once all of
/// it is gone the keeper records `stopped` and its work is done, its record saying
/// stopped by request.
#[test]
fn a_stop_sends_stop_signal_and_ends_once_everything_is_gone() {
    let mut rig = Rig::new(daemon());
    rig.up();
    let stop = rig.feed(Input::Stop { outside: None });
    let stopping = event(&stop, Kind::Stopping);
    assert_eq!(stopping.pid, Some(DAEMON.pid));
    assert_eq!(stopping.signal.as_deref(), Some("TERM"));
    assert!(stop.contains(&Effect::BeginDrain));
    assert!(stop.contains(&Effect::SignalAll {
        signal: term(),
        main: Some(DAEMON.pid)
    }));
    assert_eq!(rig.m.status(), Status::Stopping);
    assert_eq!(
        rig.m.poll_timeout(),
        Some(rig.now.at + Duration::from_secs(2))
    );
    // A second stop changes nothing.
    assert!(rig.feed(Input::Stop { outside: None }).is_empty());
    let exit = rig.reaped(DAEMON.pid, killed_by("TERM"));
    assert_eq!(kinds(&exit), [Kind::Exited]);
    let end = rig.feed(Input::Tick);
    assert_eq!(kinds(&end), [Kind::Stopped]);
    assert!(end.contains(&Effect::Finish));
    assert_eq!(rig.m.status(), Status::Stopped);
    assert_eq!(rig.record().reason, Some(Reason::StoppedByRequest));
}

/// Promise 4: what is still running `stop_timeout` after `stop_signal` gets SIGKILL,
/// with a `killed` event; the event only when something was left to kill.
#[test]
fn what_outlives_stop_timeout_gets_sigkill() {
    let mut rig = Rig::new(daemon());
    rig.up();
    rig.feed(Input::Stop { outside: None });
    assert!(rig.tick_after(1999).is_empty());
    rig.world.left = true;
    let kill = rig.tick_after(1);
    let killed = event(&kill, Kind::Killed);
    assert_eq!(killed.signal.as_deref(), Some("KILL"));
    assert_eq!(
        killed.message.as_deref(),
        Some("still running 2s after TERM")
    );
    assert!(kill.contains(&Effect::SignalAll {
        signal: Signal::KILL,
        main: Some(DAEMON.pid)
    }));
    assert_eq!(rig.m.poll_timeout(), None, "nothing left to time");
    // Gone meanwhile: SIGKILL all the same, and no event.
    let mut rig = Rig::new(daemon());
    rig.up();
    rig.feed(Input::Stop { outside: None });
    let kill = rig.tick_after(2000);
    assert!(kinds(&kill).is_empty());
    assert!(kill.contains(&Effect::SignalAll {
        signal: Signal::KILL,
        main: Some(DAEMON.pid)
    }));
}

/// A stop that was not `dmgr stop`'s (a session's end, `kill`) is an outside stop: the
/// daemon is stopped all the same, and the record and the `stopped` event say who.
#[test]
fn an_outside_stop_is_recorded_with_its_sender() {
    let mut rig = Rig::new(daemon());
    rig.up();
    let who = "SIGTERM from pid 42 (kill), not `dmgr stop`".to_string();
    let stop = rig.feed(Input::Stop {
        outside: Some(who.clone()),
    });
    assert_eq!(event(&stop, Kind::Stopping).message.as_deref(), Some(&*who));
    rig.reaped(DAEMON.pid, killed_by("TERM"));
    let end = rig.feed(Input::Tick);
    assert_eq!(event(&end, Kind::Stopped).message.as_deref(), Some(&*who));
    let record = rig.record();
    assert_eq!(record.reason, Some(Reason::OutsideStop));
    assert_eq!(record.error, Some(who));
}

/// `kill_mode = "mixed"`: `stop_signal` to the main process alone; once it has exited,
/// what it left gets SIGKILL at once.
#[test]
fn kill_mode_mixed_signals_the_main_process_then_kills_the_rest() {
    let mut daemon = daemon();
    daemon.supervision.kill_mode = crate::config::KillMode::Mixed;
    let mut rig = Rig::new(daemon);
    rig.up();
    let stop = rig.feed(Input::Stop { outside: None });
    assert!(stop.contains(&Effect::SignalMain {
        pid: DAEMON.pid,
        signal: term()
    }));
    assert!(!stop.iter().any(|e| matches!(e, Effect::SignalAll { .. })));
    rig.world.left = true;
    rig.reaped(DAEMON.pid, code(0));
    let rest = rig.feed(Input::Tick);
    let killed = event(&rest, Kind::Killed);
    assert_eq!(
        killed.message.as_deref(),
        Some("kill_mode = \"mixed\": the main process exited; SIGKILL to what is left")
    );
    assert!(rest.contains(&Effect::SignalAll {
        signal: Signal::KILL,
        main: None
    }));
}

/// A process that shows up after a drain found nothing gets `stop_signal` and a
/// `stop_timeout` of its own.
#[test]
fn a_latecomer_gets_the_stop_signal_and_its_own_timeout() {
    let mut rig = Rig::new(daemon());
    rig.up();
    rig.reaped(DAEMON.pid, code(1));
    rig.world.left = true;
    let late = rig.tick_after(300);
    assert!(late.contains(&Effect::SignalAll {
        signal: term(),
        main: None
    }));
    assert_eq!(
        rig.m.poll_timeout(),
        Some(rig.now.at + Duration::from_secs(2))
    );
}

/// A stop during the drain before a restart turns it into a stop: no restart follows.
#[test]
fn a_stop_during_a_restart_drain_ends_stopped() {
    let mut rig = Rig::new(daemon());
    rig.up();
    rig.world.left = true;
    rig.reaped(DAEMON.pid, code(1));
    assert_eq!(rig.m.status(), Status::Running);
    let stop = rig.feed(Input::Stop { outside: None });
    assert_eq!(kinds(&stop), [Kind::Stopping]);
    assert!(stop.contains(&Effect::SaveRecord));
    assert_eq!(rig.m.status(), Status::Stopping);
    rig.world.left = false;
    let end = rig.feed(Input::Tick);
    assert_eq!(kinds(&end), [Kind::Stopped]);
    assert!(!end.iter().any(|e| matches!(e, Effect::SpawnDaemon { .. })));
}

/// A stop during the backoff ends the keeper at once: nothing runs.
#[test]
fn a_stop_during_backoff_ends_at_once() {
    let mut rig = Rig::new(daemon());
    rig.up();
    rig.reaped(DAEMON.pid, code(1));
    rig.feed(Input::Tick);
    assert_eq!(rig.m.status(), Status::Backoff);
    rig.feed(Input::Stop { outside: None });
    let end = rig.feed(Input::Tick);
    assert_eq!(kinds(&end), [Kind::Stopped]);
    assert_eq!(rig.m.status(), Status::Stopped);
}

fn with_stop_command() -> Daemon {
    let mut daemon = daemon();
    daemon.supervision.stop_command = Some(vec!["web-ctl".into(), "stop".into()]);
    daemon
}

/// SPEC `stop_command`: a requested stop runs it (with `MAINPID`) instead of sending
/// `stop_signal`, and waits for it and the daemon to end; then what is left gets the
/// usual signals.
#[test]
fn stop_command_runs_first_and_the_daemon_ends_with_it() {
    let mut rig = Rig::new(with_stop_command());
    rig.up();
    let stop = rig.feed(Input::Stop { outside: None });
    assert_eq!(
        stop.last(),
        Some(&Effect::RunCommand {
            command: Command::Stop,
            argv: vec!["web-ctl".into(), "stop".into()],
            main: DAEMON.pid
        })
    );
    let running = rig.feed(Input::CommandStarted {
        command: Command::Stop,
        pid: 500,
    });
    assert_eq!(
        event(&running, Kind::Stopping).message.as_deref(),
        Some("stop_command running (pid 500)")
    );
    assert_eq!(rig.m.status(), Status::Stopping);
    // It exits 0 while the daemon still runs: the keeper waits for the daemon.
    assert!(kinds(&rig.reaped(500, code(0))).is_empty());
    rig.reaped(DAEMON.pid, code(0));
    let end = rig.feed(Input::Tick);
    assert_eq!(kinds(&end), [Kind::Stopped]);
}

/// A `stop_command` that fails, or still runs at `stop_timeout`, gives way to the
/// signals at once.
#[test]
fn a_failed_or_hung_stop_command_gives_way_to_the_signals() {
    let mut rig = Rig::new(with_stop_command());
    rig.up();
    rig.feed(Input::Stop { outside: None });
    rig.feed(Input::CommandStarted {
        command: Command::Stop,
        pid: 500,
    });
    let failed = rig.reaped(500, code(3));
    let stopping = event(&failed, Kind::Stopping);
    assert_eq!(
        stopping.message.as_deref(),
        Some("stop_command ended (exit 3); TERM to what is left now")
    );
    assert_eq!(stopping.exit_code, Some(3));
    assert!(failed.contains(&Effect::SignalAll {
        signal: term(),
        main: Some(DAEMON.pid)
    }));

    let mut rig = Rig::new(with_stop_command());
    rig.up();
    rig.feed(Input::Stop { outside: None });
    rig.feed(Input::CommandStarted {
        command: Command::Stop,
        pid: 500,
    });
    let over = rig.tick_after(2000);
    assert!(over.contains(&Effect::KillCommand { pid: 500 }));
    assert_eq!(
        event(&over, Kind::Killed).message.as_deref(),
        Some("stop_command still running after 2s")
    );
    assert!(over.contains(&Effect::SignalAll {
        signal: term(),
        main: Some(DAEMON.pid)
    }));

    let mut rig = Rig::new(with_stop_command());
    rig.up();
    rig.feed(Input::Stop { outside: None });
    let cannot = rig.feed(Input::CommandFailed {
        command: Command::Stop,
        reason: "web-ctl: not found in PATH".into(),
    });
    assert_eq!(
        event(&cannot, Kind::Stopping).message.as_deref(),
        Some("cannot run stop_command: web-ctl: not found in PATH")
    );
    assert!(cannot.contains(&Effect::SignalAll {
        signal: term(),
        main: Some(DAEMON.pid)
    }));
}

/// A stop before the daemon was up fails the start that waits for it, saying so.
#[test]
fn a_stop_before_the_daemon_is_up_fails_its_start() {
    let mut rig = Rig::new(daemon());
    rig.start(DAEMON.pid);
    rig.feed(Input::Stop { outside: None });
    rig.reaped(DAEMON.pid, killed_by("TERM"));
    let end = rig.feed(Input::Tick);
    let reason = "stopped before it was up".to_string();
    assert!(end.contains(&Effect::Report(Report::Failed { reason })));
}

/// `dmgr stop` during an outside stop makes it a requested one: the record says
/// stopped by request (so `apply` leaves it stopped), and a second stop changes
/// nothing else: no second `stopping`, no second signal.
#[test]
fn dmgr_stop_during_an_outside_stop_makes_it_requested() {
    let mut rig = Rig::new(daemon());
    rig.up();
    rig.world.left = true;
    let who = "SIGTERM from pid 1 (init), not `dmgr stop`";
    let first = rig.feed(Input::Stop {
        outside: Some(who.into()),
    });
    assert_eq!(event(&first, Kind::Stopping).message.as_deref(), Some(who));
    let second = rig.feed(Input::Stop { outside: None });
    assert!(kinds(&second).is_empty(), "{second:?}");
    assert!(!second.iter().any(|e| matches!(e, Effect::SignalAll { .. })));
    rig.reaped(DAEMON.pid, killed_by("TERM"));
    rig.world.left = false;
    let end = rig.feed(Input::Tick);
    assert_eq!(event(&end, Kind::Stopped).message, None);
    assert_eq!(rig.record().reason, Some(Reason::StoppedByRequest));
}

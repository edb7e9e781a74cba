//! The notify protocol and the daemon's own readiness in the machine, each
//! transition driven with a made-up clock and made-up facts (see `tests/mod.rs`).

use std::time::Duration;

use super::super::tests::{code, daemon, event, kinds, Rig, DAEMON};
use super::super::{Effect, Input, Phase};
use crate::config::{DaemonType, NotifyAccess, ReadyCheck};
use crate::events::Kind;
use crate::keeper::report::Report;
use crate::keeper::sd_notify::parse;
use crate::state::{Reason, Status};

/// A notify daemon with the rig's keys (`start_wait` 500 ms, `ready_timeout` 5 s).
fn notify_daemon() -> crate::config::Daemon {
    let mut d = daemon();
    d.kind = DaemonType::Notify;
    d
}

impl Rig {
    /// A datagram from `pid` saying `text`.
    fn says(&mut self, pid: i32, text: &str) -> Vec<Effect> {
        self.feed(Input::Notify {
            pid,
            message: parse(text.as_bytes(), false),
        })
    }

    /// A notify daemon started as `DAEMON`, past `start_wait`, up once it said
    /// `READY=1`.
    fn ready(&mut self) -> Vec<Effect> {
        let mut effects = self.start(DAEMON.pid);
        effects.extend(self.tick_after(500));
        effects.extend(self.says(DAEMON.pid, "READY=1"));
        assert_eq!(self.m.status(), Status::Running);
        effects
    }
}

/// `READY=1` ends the start: past `start_wait` the start still waits, with only
/// `ready_timeout` as its timer; the message reports it, with a `ready` event.
#[test]
fn ready_ends_a_notify_daemons_start() {
    let mut rig = Rig::new(notify_daemon());
    rig.start(DAEMON.pid);
    let t0 = rig.now.at;
    assert!(rig.tick_after(500).is_empty());
    assert_eq!(rig.m.status(), Status::Starting, "start_wait is not enough");
    assert_eq!(rig.m.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    rig.tick_after(100);
    let up = rig.says(DAEMON.pid, "READY=1");
    assert_eq!(rig.m.status(), Status::Running);
    assert!(up.contains(&Effect::Report(Report::Started { pid: DAEMON.pid })));
    assert_eq!(kinds(&up), [Kind::Ready]);
    assert_eq!(rig.m.poll_timeout(), None, "an idle notify keeper sleeps");
}

/// `READY=1` within `start_wait`: the start still lasts `start_wait`.
#[test]
fn ready_before_start_wait_ends_the_start_at_start_wait() {
    let mut rig = Rig::new(notify_daemon());
    rig.start(DAEMON.pid);
    rig.now = rig.now.after(Duration::from_millis(100));
    assert!(rig.says(DAEMON.pid, "READY=1").is_empty());
    assert_eq!(rig.m.status(), Status::Starting);
    assert_eq!(
        rig.m.poll_timeout(),
        Some(rig.now.at + Duration::from_millis(400))
    );
    rig.tick_after(400);
    assert_eq!(rig.m.status(), Status::Running);
}

/// No `READY=1` within `ready_timeout`: the start fails, saying so, and the daemon is
/// stopped.
#[test]
fn no_ready_within_ready_timeout_fails_the_start() {
    let mut rig = Rig::new(notify_daemon());
    rig.start(DAEMON.pid);
    rig.tick_after(500);
    assert!(rig.tick_after(4_499).is_empty());
    let failed = rig.tick_after(1);
    assert!(
        failed.contains(&Effect::SignalAll {
            signal: rig.m.s.stop_signal,
            main: Some(DAEMON.pid)
        }),
        "{failed:?}"
    );
    rig.reaped(DAEMON.pid, code(0));
    rig.feed(Input::Tick);
    assert_eq!(rig.m.status(), Status::Failed);
    let error = rig.record().error.unwrap_or_default();
    assert!(error.contains("never said READY=1"), "{error}");
}

/// `EXTEND_TIMEOUT_USEC=` moves `ready_timeout`'s end to that much after now, never
/// closer.
#[test]
fn extend_timeout_gives_the_start_more_time() {
    let mut rig = Rig::new(notify_daemon());
    rig.start(DAEMON.pid);
    rig.tick_after(4_000);
    rig.says(DAEMON.pid, "EXTEND_TIMEOUT_USEC=3000000");
    assert_eq!(
        rig.m.poll_timeout(),
        Some(rig.now.at + Duration::from_secs(3))
    );
    // Less than what is left: nothing changes.
    rig.says(DAEMON.pid, "EXTEND_TIMEOUT_USEC=1000");
    assert_eq!(
        rig.m.poll_timeout(),
        Some(rig.now.at + Duration::from_secs(3))
    );
    rig.tick_after(2_000);
    assert_eq!(
        rig.m.status(),
        Status::Starting,
        "past the old ready_timeout"
    );
    rig.says(DAEMON.pid, "READY=1");
    assert_eq!(rig.m.status(), Status::Running);
}

/// Promise 12: a stranger's `READY=1` is dropped and counted, with who sent it; the
/// start goes on waiting for the daemon's own.
#[test]
fn a_strangers_ready_is_dropped_and_counted() {
    let mut rig = Rig::new(notify_daemon());
    rig.start(DAEMON.pid);
    rig.tick_after(500);
    let effects = rig.says(555, "READY=1");
    assert_eq!(effects, [Effect::SaveRecord]);
    assert_eq!(rig.m.status(), Status::Starting);
    let notify = rig.record().notify;
    assert_eq!(notify.refused, 1);
    assert!(
        notify
            .last_refused
            .unwrap()
            .contains("pid 555, not a process"),
        "the sender is named"
    );
    // No PID in our namespace: a stranger too.
    rig.says(0, "READY=1");
    assert_eq!(rig.record().notify.refused, 2);
    assert_eq!(rig.m.status(), Status::Starting);
}

/// `notify_access = "main"` believes the main process alone; `"all"` any process of
/// the daemon's own, never a stranger.
#[test]
fn notify_access_says_which_of_the_daemons_processes_are_believed() {
    for (access, believed) in [(NotifyAccess::Main, false), (NotifyAccess::All, true)] {
        let mut d = notify_daemon();
        d.supervision.notify_access = access;
        let mut rig = Rig::new(d);
        rig.world.processes = vec![(201, true, false)];
        rig.start(DAEMON.pid);
        rig.tick_after(500);
        rig.says(201, "READY=1");
        assert_eq!(rig.m.status() == Status::Running, believed, "{access:?}");
        assert_eq!(rig.record().notify.refused, u64::from(!believed));
    }
}

/// Malformed lines are dropped and counted; what the rest says still counts.
#[test]
fn malformed_lines_are_counted_and_the_rest_believed() {
    let mut rig = Rig::new(notify_daemon());
    rig.start(DAEMON.pid);
    rig.tick_after(500);
    rig.says(DAEMON.pid, "garbage\nREADY=1\nWATCHDOG_USEC=soon\n");
    assert_eq!(rig.m.status(), Status::Running);
    assert_eq!(rig.record().notify.malformed, 2);
}

/// `STATUS=` goes into the record at once, and into the history as a `status` event
/// no more than once a minute; the next event says how many changes it skipped.
#[test]
fn status_lines_are_recorded_and_their_events_rate_limited() {
    let mut rig = Rig::new(notify_daemon());
    rig.ready();
    let first = rig.says(DAEMON.pid, "STATUS=accepting connections");
    assert_eq!(
        event(&first, Kind::Status).message.as_deref(),
        Some("accepting connections")
    );
    assert_eq!(
        rig.record().notify.status_text.as_deref(),
        Some("accepting connections")
    );
    // php-fpm's counters, every second.
    for n in 0..5 {
        rig.now = rig.now.after(Duration::from_secs(1));
        let quiet = rig.says(DAEMON.pid, &format!("STATUS=requests: {n}"));
        assert_eq!(kinds(&quiet), [], "rate-limited");
    }
    assert_eq!(
        rig.record().notify.status_text.as_deref(),
        Some("requests: 4")
    );
    // The same line again is no change at all.
    assert!(rig.says(DAEMON.pid, "STATUS=requests: 4").is_empty());
    rig.now = rig.now.after(Duration::from_secs(60));
    let later = rig.says(DAEMON.pid, "STATUS=requests: 99");
    let message = event(&later, Kind::Status).message.clone().unwrap();
    assert!(message.starts_with("requests: 99 (5 changes"), "{message}");
}

/// `dmgr reload` to a notify daemon: the signal does not answer the request;
/// `RELOADING=1` then `READY=1` does, as `reloaded`.
#[test]
fn a_reload_is_answered_by_the_daemons_ready() {
    let mut rig = Rig::new(notify_daemon());
    rig.ready();
    let asked = rig.feed(Input::Reload { request: Some(3) });
    assert_eq!(
        asked,
        [Effect::SendReloadSignal {
            pid: DAEMON.pid,
            signal: rig.m.s.reload_signal
        }]
    );
    let sent = rig.feed(Input::ReloadSignalled { result: Ok(()) });
    assert_eq!(event(&sent, Kind::Signalled).request, None, "no answer yet");
    let begun = rig.says(DAEMON.pid, "RELOADING=1\nMONOTONIC_USEC=1");
    assert_eq!(event(&begun, Kind::Reloading).request, Some(3));
    rig.now = rig.now.after(Duration::from_millis(300));
    let done = rig.says(DAEMON.pid, "READY=1");
    let reloaded = event(&done, Kind::Reloaded);
    assert_eq!(
        (reloaded.request, reloaded.pid),
        (Some(3), Some(DAEMON.pid))
    );
    assert_eq!(rig.m.poll_timeout(), None);
}

/// `ERRNO=` during a reload fails it, in words; so does no `READY=1` within
/// `ready_timeout` of `RELOADING=1`.
#[test]
fn errno_or_a_timeout_fails_a_reload() {
    let mut rig = Rig::new(notify_daemon());
    rig.ready();
    rig.feed(Input::Reload { request: Some(4) });
    rig.feed(Input::ReloadSignalled { result: Ok(()) });
    rig.says(DAEMON.pid, "RELOADING=1");
    let failed = rig.says(DAEMON.pid, "ERRNO=22");
    let event4 = event(&failed, Kind::ReloadFailed);
    assert_eq!(event4.request, Some(4));
    assert_eq!(
        event4.message.as_deref(),
        Some("ERRNO=22 (Invalid argument)")
    );
    rig.feed(Input::Reload { request: Some(5) });
    rig.feed(Input::ReloadSignalled { result: Ok(()) });
    rig.says(DAEMON.pid, "RELOADING=1");
    assert_eq!(
        rig.m.poll_timeout(),
        Some(rig.now.at + Duration::from_secs(5))
    );
    let late = rig.tick_after(5_000);
    let event5 = event(&late, Kind::ReloadFailed);
    assert_eq!(event5.request, Some(5));
    assert!(event5
        .message
        .as_deref()
        .unwrap()
        .contains("no READY=1 within 5s"));
    assert_eq!(rig.m.status(), Status::Running, "the daemon keeps running");
}

/// A daemon that reloads without saying so (PostgreSQL): after the grace, the request
/// is answered as a signal sent.
#[test]
fn a_silent_reload_is_answered_as_signalled_after_the_grace() {
    let mut rig = Rig::new(notify_daemon());
    rig.ready();
    rig.feed(Input::Reload { request: Some(6) });
    rig.feed(Input::ReloadSignalled { result: Ok(()) });
    let grace = crate::keeper::sd_notify::protocol::RELOADING_GRACE;
    assert_eq!(rig.m.poll_timeout(), Some(rig.now.at + grace));
    let answered = rig.tick_after(u64::try_from(grace.as_millis()).unwrap());
    let signalled = event(&answered, Kind::Signalled);
    assert_eq!(signalled.request, Some(6));
    assert_eq!(signalled.signal.as_deref(), Some("HUP"));
}

/// A `reload_command`'s success waits for the daemon's verdict; its failure answers
/// at once, as for any daemon.
#[test]
fn a_reload_command_hands_over_to_the_daemons_verdict() {
    let mut d = notify_daemon();
    d.supervision.reload_command = Some(vec!["check-and-signal".into()]);
    let mut rig = Rig::new(d);
    rig.ready();
    rig.feed(Input::Reload { request: Some(7) });
    rig.feed(Input::CommandStarted {
        command: super::super::Command::Reload,
        pid: 300,
    });
    // The command takes longer than the grace: no answer while it runs.
    assert!(rig
        .tick_after(3_000)
        .iter()
        .all(|e| !matches!(e, Effect::Record(_))));
    let ended = rig.reaped(300, code(0));
    assert_eq!(event(&ended, Kind::Reloading).request, Some(7));
    assert!(!kinds(&ended).contains(&Kind::Reloaded));
    rig.says(DAEMON.pid, "RELOADING=1");
    let done = rig.says(DAEMON.pid, "READY=1");
    assert_eq!(event(&done, Kind::Reloaded).request, Some(7));
}

/// `STOPPING=1`: the daemon stops by itself, and is not restarted, whatever `restart`
/// says.
#[test]
fn stopping_means_no_restart() {
    let mut d = notify_daemon();
    d.supervision.restart = crate::config::RestartPolicy::Always;
    let mut rig = Rig::new(d);
    rig.ready();
    let said = rig.says(DAEMON.pid, "STOPPING=1");
    assert_eq!(kinds(&said), [Kind::Stopping]);
    rig.now = rig.now.after(Duration::from_secs(10));
    let mut ended = rig.reaped(DAEMON.pid, code(0));
    ended.extend(rig.feed(Input::Tick));
    assert!(!ended
        .iter()
        .any(|e| matches!(e, Effect::SpawnDaemon { .. })));
    assert!(ended.contains(&Effect::Finish));
    assert_eq!(rig.m.status(), Status::Stopped);
    assert_eq!(rig.record().reason, Some(Reason::Exited));
}

/// The watchdog is armed by `READY=1`, not before; each ping moves it; a missed ping
/// is a `watchdog` event, `watchdog_signal` to the main process, and a restart.
#[test]
fn a_missed_watchdog_ping_signals_and_restarts() {
    let mut d = notify_daemon();
    d.process.watchdog = Some(Duration::from_millis(200));
    d.supervision.restart_delay = Duration::from_millis(100);
    let mut rig = Rig::new(d);
    rig.start(DAEMON.pid);
    rig.tick_after(500);
    rig.tick_after(1_000);
    assert_eq!(rig.m.status(), Status::Starting, "not armed before READY=1");
    rig.says(DAEMON.pid, "READY=1");
    assert_eq!(
        rig.m.poll_timeout(),
        Some(rig.now.at + Duration::from_millis(200))
    );
    for _ in 0..100 {
        rig.now = rig.now.after(Duration::from_millis(150));
        assert!(rig.feed(Input::Tick).is_empty(), "not due");
        rig.says(DAEMON.pid, "WATCHDOG=1");
    }
    assert_eq!(rig.m.status(), Status::Running, "pings keep it alive");
    assert_eq!(rig.m.s.watchdog_signal.to_string(), "ABRT");
    let missed = rig.tick_after(200);
    assert_eq!(
        missed.first(),
        Some(&Effect::SignalMain {
            pid: DAEMON.pid,
            signal: rig.m.s.watchdog_signal
        })
    );
    let watchdog = event(&missed, Kind::Watchdog);
    assert!(watchdog
        .message
        .as_deref()
        .unwrap()
        .contains("no WATCHDOG=1 within 200ms"));
    rig.reaped(DAEMON.pid, super::super::tests::killed_by("ABRT"));
    rig.feed(Input::Tick);
    assert_eq!(rig.m.status(), Status::Backoff);
    let again = rig.tick_after(100);
    assert!(again.contains(&Effect::SpawnDaemon { again: true }));
}

/// `WATCHDOG=trigger`: the watchdog's action at once.
#[test]
fn watchdog_trigger_acts_at_once() {
    let mut rig = Rig::new(notify_daemon());
    rig.ready();
    let triggered = rig.says(DAEMON.pid, "WATCHDOG=trigger");
    assert!(event(&triggered, Kind::Watchdog)
        .message
        .as_deref()
        .unwrap()
        .contains("WATCHDOG=trigger"));
    assert!(matches!(rig.m.phase, Phase::Draining { .. }));
}

/// `MAINPID=` to a child of the keeper of the daemon's own: followed at once, with a
/// `main-pid-changed` event and the pidfile; the old process is one more of the
/// daemon's.
#[test]
fn mainpid_to_a_child_of_the_daemons_own_is_followed() {
    let mut rig = Rig::new(notify_daemon());
    rig.world.processes = vec![(201, true, true)];
    rig.ready();
    let moved = rig.says(DAEMON.pid, "MAINPID=201");
    assert!(moved.contains(&Effect::WritePid { pid: 201 }));
    assert_eq!(event(&moved, Kind::MainPidChanged).pid, Some(201));
    assert_eq!(rig.m.daemon().map(|id| id.pid), Some(201));
    // The old one's end is no run's end.
    let old = rig.reaped(DAEMON.pid, code(0));
    assert!(kinds(&old).is_empty());
    assert_eq!(rig.m.status(), Status::Running);
}

/// Promise 12: `MAINPID=` naming a stranger is not followed, and never signalled.
#[test]
fn mainpid_to_a_stranger_is_not_followed() {
    let mut rig = Rig::new(notify_daemon());
    rig.world.processes = vec![(666, false, false)];
    rig.ready();
    let refused = rig.says(DAEMON.pid, "MAINPID=666");
    let message = event(&refused, Kind::MainPidChanged)
        .message
        .clone()
        .unwrap();
    assert!(message.starts_with("not followed"), "{message}");
    assert_eq!(rig.m.daemon().map(|id| id.pid), Some(DAEMON.pid));
    let ended = rig.reaped(DAEMON.pid, code(0));
    assert!(kinds(&ended).contains(&Kind::Exited));
}

/// `MAINPID=` to a process of the daemon's whose parent (the main process) still
/// runs: followed once the main process exits and the keeper inherits it.
#[test]
fn mainpid_to_a_grandchild_is_followed_at_the_main_processs_exit() {
    let mut rig = Rig::new(notify_daemon());
    rig.world.processes = vec![(201, true, false)];
    rig.ready();
    let named = rig.says(DAEMON.pid, "MAINPID=201");
    assert!(kinds(&named).is_empty());
    rig.world.processes = vec![(201, true, true)];
    rig.world.left = true;
    let handed = rig.reaped(DAEMON.pid, code(0));
    assert_eq!(event(&handed, Kind::MainPidChanged).pid, Some(201));
    assert_eq!(rig.m.status(), Status::Running);
}

/// A daemon that exits before `READY=1` after saying `ERRNO=`: the start fails with
/// the error in words.
#[test]
fn errno_before_an_exit_is_the_failed_starts_reason() {
    let mut rig = Rig::new(notify_daemon());
    rig.start(DAEMON.pid);
    rig.says(DAEMON.pid, "ERRNO=98");
    rig.tick_after(600);
    rig.reaped(DAEMON.pid, code(1));
    rig.feed(Input::Tick);
    let error = rig.record().error.unwrap_or_default();
    assert!(error.contains("before it was ready"), "{error}");
    assert!(
        error.contains("ERRNO=98 (Address already in use)"),
        "{error}"
    );
}

/// `ready = { log }` and `ready = { fd }`: the daemon's own word ends the start; no
/// probe ever runs for it.
#[test]
fn a_line_or_a_newline_ends_the_start_without_a_probe() {
    for check in [ReadyCheck::Log("ready".into()), ReadyCheck::Fd(3)] {
        let mut d = daemon();
        d.supervision.ready = Some(check.clone());
        let mut rig = Rig::new(d);
        rig.start(DAEMON.pid);
        let waited = rig.tick_after(500);
        assert!(
            !waited
                .iter()
                .any(|e| matches!(e, Effect::StartProbe { .. })),
            "{check:?}: {waited:?}"
        );
        assert_eq!(rig.m.awaits_log_line(), matches!(check, ReadyCheck::Log(_)));
        let up = rig.feed(Input::SaidReady);
        assert_eq!(rig.m.status(), Status::Running, "{check:?}");
        assert_eq!(kinds(&up), [Kind::Ready]);
        assert!(!rig.m.awaits_log_line());
    }
}

//! Each transition of the notify protocol, on a made-up clock.

use std::time::{Duration, Instant};

use super::*;
use crate::keeper::sd_notify::message::parse;

const READY_TIMEOUT: Duration = Duration::from_secs(30);

fn msg(text: &str) -> Notification {
    parse(text.as_bytes(), false)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A daemon with a 10 s watchdog, in its first run, and the clock's origin.
fn watched() -> (Protocol, Instant) {
    let mut p = Protocol::new(Some(secs(10)), READY_TIMEOUT);
    p.on_spawn();
    (p, Instant::now())
}

/// A daemon without a watchdog, in its first run, and the clock's origin.
fn plain() -> (Protocol, Instant) {
    let mut p = Protocol::new(None, READY_TIMEOUT);
    p.on_spawn();
    (p, Instant::now())
}

#[test]
fn ready_ends_the_start_once() {
    let (mut p, t) = watched();
    assert!(!p.is_ready());
    assert_eq!(p.on_message(&msg("READY=1"), t), [Step::Ready]);
    assert!(p.is_ready());
    // Said again with nothing waiting for it, it is nothing.
    assert_eq!(p.on_message(&msg("READY=1"), t + secs(1)), []);
}

#[test]
fn extend_timeout_asks_the_start_for_more_time() {
    let (mut p, t) = watched();
    assert_eq!(
        p.on_message(&msg("EXTEND_TIMEOUT_USEC=5000000"), t),
        [Step::Extend(secs(5))]
    );
}

#[test]
fn the_watchdog_is_armed_by_ready_and_fed_by_pings() {
    let (mut p, t) = watched();
    // Before READY=1, pings count for nothing and nothing is due.
    p.on_message(&msg("WATCHDOG=1"), t);
    assert_eq!(p.deadline(), None);
    p.on_message(&msg("READY=1"), t + secs(1));
    assert_eq!(p.deadline(), Some(t + secs(11)));
    p.on_message(&msg("WATCHDOG=1"), t + secs(6));
    assert_eq!(p.deadline(), Some(t + secs(16)));
    assert_eq!(p.on_timer(t + secs(15)), []);
    // A missed ping fires it, once.
    assert_eq!(
        p.on_timer(t + secs(16)),
        [Step::Watchdog { triggered: false }]
    );
    assert_eq!(p.deadline(), None);
    assert_eq!(p.on_timer(t + secs(40)), []);
}

#[test]
fn watchdog_trigger_fires_at_once_and_watchdog_usec_changes_the_period() {
    let (mut p, t) = watched();
    p.on_message(&msg("READY=1"), t);
    p.on_message(&msg("WATCHDOG_USEC=2000000"), t + secs(1));
    assert_eq!(p.deadline(), Some(t + secs(3)));
    p.on_message(&msg("WATCHDOG=1"), t + secs(2));
    assert_eq!(p.deadline(), Some(t + secs(4)));
    assert_eq!(
        p.on_message(&msg("WATCHDOG=trigger"), t + secs(2)),
        [Step::Watchdog { triggered: true }]
    );
    // A new run starts with the file's period, unarmed.
    p.on_spawn();
    assert_eq!(p.deadline(), None);
    p.on_message(&msg("READY=1"), t + secs(20));
    assert_eq!(p.deadline(), Some(t + secs(30)));
}

#[test]
fn without_a_watchdog_pings_arm_nothing() {
    let mut p = Protocol::new(None, READY_TIMEOUT);
    let t = Instant::now();
    p.on_message(&msg("READY=1"), t);
    p.on_message(&msg("WATCHDOG=1"), t);
    assert_eq!(p.deadline(), None);
}

#[test]
fn a_reload_asked_for_ends_with_ready_as_its_verdict() {
    let (mut p, t) = plain();
    p.on_message(&msg("READY=1"), t);
    assert_eq!(p.on_reload_request(Some(7), t + secs(1)), []);
    assert_eq!(p.deadline(), Some(t + secs(1) + RELOADING_GRACE));
    assert_eq!(
        p.on_message(&msg("RELOADING=1\nMONOTONIC_USEC=1"), t + secs(2)),
        [Step::Reloading(Some(7))]
    );
    // HAProxy says RELOADING=1 twice: the second is nothing.
    assert_eq!(p.on_message(&msg("RELOADING=1"), t + secs(2)), []);
    assert_eq!(p.deadline(), Some(t + secs(2) + READY_TIMEOUT));
    assert_eq!(
        p.on_message(&msg("READY=1\nMAINPID=42"), t + secs(3)),
        [Step::MainPid(42), Step::Reloaded(Some(7))]
    );
    assert_eq!(p.deadline(), None);
}

#[test]
fn errno_or_a_timeout_fails_a_reload() {
    let (mut p, t) = plain();
    p.on_message(&msg("READY=1"), t);
    p.on_reload_request(Some(1), t);
    p.on_message(&msg("RELOADING=1"), t);
    assert_eq!(
        p.on_message(&msg("ERRNO=22"), t + secs(1)),
        [Step::ReloadFailed(
            Some(1),
            "ERRNO=22 (Invalid argument)".into()
        )]
    );
    p.on_reload_request(Some(2), t + secs(2));
    p.on_message(&msg("RELOADING=1"), t + secs(2));
    // More time asked for during a reload is the reload's.
    assert_eq!(
        p.on_message(&msg("EXTEND_TIMEOUT_USEC=60000000"), t + secs(3)),
        []
    );
    assert_eq!(p.on_timer(t + secs(3) + READY_TIMEOUT), []);
    assert_eq!(
        p.on_timer(t + secs(63)),
        [Step::ReloadFailed(
            Some(2),
            "no READY=1 within 30s of RELOADING=1".into()
        )]
    );
}

#[test]
fn a_daemon_that_reloads_silently_is_answered_after_the_grace() {
    let (mut p, t) = plain();
    p.on_message(&msg("READY=1"), t);
    p.on_reload_request(Some(3), t);
    assert_eq!(p.on_timer(t + RELOADING_GRACE - secs(1)), []);
    assert_eq!(
        p.on_timer(t + RELOADING_GRACE),
        [Step::ReloadUnconfirmed(Some(3))]
    );
}

#[test]
fn reloading_before_ready_is_ignored_and_a_reload_of_its_own_is_reported() {
    let (mut p, t) = watched();
    // HAProxy at start-up: RELOADING=1, then READY=1.
    assert_eq!(p.on_message(&msg("RELOADING=1"), t), []);
    assert_eq!(p.on_message(&msg("READY=1"), t), [Step::Ready]);
    // A reload nobody asked dmgr for (a SIGHUP from elsewhere).
    assert_eq!(
        p.on_message(&msg("RELOADING=1"), t + secs(1)),
        [Step::Reloading(None)]
    );
    assert_eq!(
        p.on_message(&msg("READY=1"), t + secs(2)),
        [Step::Reloaded(None)]
    );
}

#[test]
fn a_reload_under_way_fails_with_the_daemons_exit_or_a_newer_reload() {
    let (mut p, t) = plain();
    p.on_message(&msg("READY=1"), t);
    p.on_reload_request(Some(1), t);
    let superseded = p.on_reload_request(Some(2), t);
    assert!(matches!(&superseded[..], [Step::ReloadFailed(Some(1), _)]));
    assert_eq!(
        p.on_exit(),
        [Step::ReloadFailed(Some(2), "the daemon exited".into())]
    );
    assert_eq!(p.deadline(), None);
}

#[test]
fn stopping_is_a_stop_the_daemon_began() {
    let (mut p, t) = watched();
    p.on_message(&msg("READY=1"), t);
    assert_eq!(p.on_message(&msg("STOPPING=1"), t), [Step::Stopping]);
    assert!(p.is_stopping());
    assert_eq!(p.on_message(&msg("STOPPING=1"), t), []);
    p.on_spawn();
    assert!(!p.is_stopping());
}

#[test]
fn status_changes_become_events_at_most_once_a_minute() {
    let (mut p, t) = watched();
    let status = |text: &str, event: bool, unrecorded: u32| Step::Status {
        text: text.into(),
        event,
        unrecorded,
    };
    assert_eq!(
        p.on_message(&msg("STATUS=idle: 2"), t),
        [status("idle: 2", true, 0)]
    );
    // The same line again is no change.
    assert_eq!(p.on_message(&msg("STATUS=idle: 2"), t + secs(1)), []);
    assert_eq!(
        p.on_message(&msg("STATUS=idle: 1"), t + secs(2)),
        [status("idle: 1", false, 0)]
    );
    assert_eq!(
        p.on_message(&msg("STATUS=idle: 0"), t + secs(3)),
        [status("idle: 0", false, 1)]
    );
    assert_eq!(p.status(), Some("idle: 0"));
    assert_eq!(
        p.on_message(&msg("STATUS=idle: 3"), t + secs(60)),
        [status("idle: 3", true, 2)]
    );
    // A restart does not reset the limit: a crash loop is no flood either.
    p.on_spawn();
    assert_eq!(p.status(), None);
    assert_eq!(
        p.on_message(&msg("STATUS=starting"), t + secs(61)),
        [status("starting", false, 0)]
    );
}

#[test]
fn errno_is_kept_for_a_failed_start() {
    let (mut p, t) = watched();
    assert_eq!(p.on_message(&msg("ERRNO=2"), t), []);
    assert_eq!(p.errno(), Some(2));
    assert_eq!(errno_words(2), "ERRNO=2 (No such file or directory)");
    assert_eq!(errno_words(99999), "ERRNO=99999");
}

#[test]
fn a_reload_command_fails_the_reload_or_gives_the_daemon_its_grace_from_its_end() {
    let (mut p, t) = plain();
    p.on_message(&msg("READY=1"), t);
    // haproxy -c first, which takes a while; then the signal.
    p.on_reload_request(Some(1), t);
    assert_eq!(p.on_reload_command_end(true, t + secs(5)), []);
    assert_eq!(p.deadline(), Some(t + secs(5) + RELOADING_GRACE));
    assert_eq!(
        p.on_message(&msg("RELOADING=1"), t + secs(6)),
        [Step::Reloading(Some(1))]
    );
    assert_eq!(
        p.on_message(&msg("READY=1"), t + secs(6)),
        [Step::Reloaded(Some(1))]
    );
    // The command itself failed (a broken config): the reload did.
    p.on_reload_request(Some(2), t + secs(10));
    assert_eq!(
        p.on_reload_command_end(false, t + secs(11)),
        [Step::ReloadFailed(Some(2), "reload_command failed".into())]
    );
    assert_eq!(p.deadline(), None);
}

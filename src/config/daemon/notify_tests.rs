//! The notify keys and the readiness forms the daemon reports itself, as `check` sees
//! them.

use std::time::Duration;

use super::tests::{load_text, problem, problems};
use super::*;

#[test]
fn a_notify_daemon_has_a_watchdog_its_signal_and_an_access_rule() {
    let d = load_text(
        "command = \"a\"\ntype = \"notify\"\nwatchdog = \"30s\"\nwatchdog_signal = \"QUIT\"\nnotify_access = \"all\"\n",
    )
    .unwrap();
    assert_eq!(d.kind, DaemonType::Notify);
    assert_eq!(d.process.watchdog, Some(Duration::from_secs(30)));
    assert_eq!(d.supervision.watchdog_signal.name(), "QUIT");
    assert_eq!(d.supervision.notify_access, NotifyAccess::All);
    // The defaults: no watchdog, ABRT as systemd's WatchdogSignal=, the main process.
    let d = load_text("command = \"a\"\ntype = \"notify\"\n").unwrap();
    assert_eq!(d.process.watchdog, None);
    assert_eq!(d.supervision.watchdog_signal.name(), "ABRT");
    assert_eq!(d.supervision.notify_access, NotifyAccess::Main);
}

#[test]
fn notify_keys_on_another_type_name_the_fix() {
    for key in [
        "watchdog = \"1s\"",
        "watchdog_signal = \"ABRT\"",
        "notify_access = \"all\"",
    ] {
        let message = problem(key);
        let name = key.split(' ').next().unwrap();
        assert_eq!(
            message,
            format!("`{name}` is for type = \"notify\" only: only a notify daemon has a socket to report on; set type = \"notify\" or leave `{name}` out")
        );
    }
    // A mistyped type is one problem, not one more per notify key.
    let found = problems("command = \"a\"\ntype = \"notfy\"\nwatchdog = \"1s\"\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("\"notify\""), "{found:?}");
}

#[test]
fn notify_values_that_defeat_their_purpose_are_refused() {
    let notify = |extra: &str| problem(&format!("type = \"notify\"\n{extra}"));
    assert!(notify("watchdog = \"5ms\"").starts_with("`watchdog` is 5ms: the shortest is 20ms"));
    assert_eq!(
        notify("notify_access = \"none\""),
        "expected \"main\" (the daemon's main process) or \"all\" (any process of the daemon), found \"none\""
    );
    assert!(notify("watchdog_signal = \"STOP\"").contains("pauses a process"));
    // Without a watchdog its signal does nothing: a warning, the file stays valid.
    let d = load_text("command = \"a\"\ntype = \"notify\"\nwatchdog_signal = \"QUIT\"\n");
    assert!(d.is_ok());
}

#[test]
fn a_log_pattern_is_compiled_and_its_mistake_located() {
    let d =
        load_text("command = \"a\"\nready = { log = 'ready to accept connections$' }\n").unwrap();
    assert_eq!(
        d.supervision.ready,
        Some(ReadyCheck::Log("ready to accept connections$".into()))
    );
    // The place is the mistake's within the pattern: line 2, column of the `(`.
    let line = "ready = { log = 'ready (to' }";
    let found = problems(&format!("command = \"a\"\n{line}\n"));
    let col = line.find('(').unwrap() + 1;
    assert_eq!(
        found,
        [format!(
            "2:{col}: invalid regular expression in `ready.log`: unclosed group"
        )]
    );
    // Written with escapes, the string and the pattern no longer line up: the
    // string's start.
    let line = "ready = { log = \"\\\\d+ (\" }";
    let found = problems(&format!("command = \"a\"\n{line}\n"));
    let col = line.find('"').unwrap() + 1;
    assert!(found[0].starts_with(&format!("2:{col}: ")), "{found:?}");
    assert!(problem("ready = { log = '' }").starts_with("`ready.log` is empty"));
    assert!(problem("ready = { log = 3 }").starts_with("expected a string"));
}

#[test]
fn a_readiness_descriptor_is_one_the_daemon_can_be_given() {
    let d = load_text("command = \"a\"\nready = { fd = 3 }\n").unwrap();
    assert_eq!(d.supervision.ready, Some(ReadyCheck::Fd(3)));
    for fd in ["2", "-1", "1024", "99999999999"] {
        assert_eq!(
            problem(&format!("ready = {{ fd = {fd} }}")),
            format!("expected a descriptor from 3 to 1023, found {fd}: 0, 1 and 2 are the daemon's stdin, stdout and stderr")
        );
    }
    assert!(problem("ready = { fd = \"3\" }").starts_with("expected a descriptor number"));
    // A liveness check has neither: the daemon reports readiness once.
    for check in ["log = 'x'", "fd = 3"] {
        let found = problems(&format!("command = \"a\"\nhealth = {{ {check} }}\n"));
        let key = check.split(' ').next().unwrap();
        assert!(
            found
                .iter()
                .any(|p| p.ends_with(&format!("unknown key `health.{key}`"))),
            "{found:?}"
        );
    }
}

//! How a daemon is stopped: `kill_mode`, `stop_command` run by the keeper, and who
//! stopped it (a `dmgr stop`, or a signal from someone else).

use std::time::{Duration, Instant};

use crate::support::{marker, processes_with, wait_until, TestEnv};

/// A daemon whose main process (a shell) runs a worker; each writes a line to `file`
/// when it gets SIGTERM, and the worker says it is ready first. The main process exits
/// on SIGTERM without waiting for its worker.
fn main_and_worker(file: &std::path::Path, mark: &str, extra: &str) -> String {
    let f = file.display();
    format!(
        "command = [\"sh\", \"-c\", \"sh -c 'trap \\\"echo worker-term >> {f}; exit 0\\\" TERM; echo worker-ready >> {f}; while :; do sleep 0.05; done' & trap 'echo main-term >> {f}; exit 0' TERM; while :; do sleep 0.05; done\", \"{mark}\"]\nstart_wait = \"100ms\"\nstop_timeout = \"20s\"\n{extra}"
    )
}

fn lines(file: &std::path::Path) -> String {
    std::fs::read_to_string(file).unwrap_or_default()
}

/// `kill_mode = "mixed"` (SPEC): `stop_signal` goes to the main process alone, and
/// what it leaves once it has exited gets SIGKILL at once, not after `stop_timeout`.
#[test]
fn kill_mode_mixed_signals_the_main_process_alone_and_kills_the_rest() {
    let env = TestEnv::new();
    let mark = marker("mixed");
    let file = env.root().join("signals");
    env.write(
        "db",
        &main_and_worker(&file, &mark, "kill_mode = \"mixed\"\n"),
    );
    env.dmgr(&["start", "db"]).success();
    wait_until("the worker is ready", Duration::from_secs(10), || {
        lines(&file).contains("worker-ready")
    });
    let began = Instant::now();
    env.dmgr(&["stop", "db"]).success();
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "the stop waited for stop_timeout ({:?})",
        began.elapsed()
    );
    let seen = lines(&file);
    assert!(seen.contains("main-term"), "{seen}");
    assert!(
        !seen.contains("worker-term"),
        "the worker got SIGTERM: {seen}"
    );
    assert!(processes_with(&mark).is_empty(), "something was left");
    let events = env.events("db");
    assert!(events.contains("kill_mode = \"mixed\""), "{events}");
}

/// `kill_mode = "group"` (the default): every process of the daemon gets
/// `stop_signal`, the worker as well as the main process.
#[test]
fn kill_mode_group_signals_every_process() {
    let env = TestEnv::new();
    let mark = marker("group");
    let file = env.root().join("signals");
    env.write("db", &main_and_worker(&file, &mark, ""));
    env.dmgr(&["start", "db"]).success();
    wait_until("the worker is ready", Duration::from_secs(10), || {
        lines(&file).contains("worker-ready")
    });
    env.dmgr(&["stop", "db"]).success();
    let seen = lines(&file);
    assert!(
        seen.contains("main-term") && seen.contains("worker-term"),
        "{seen}"
    );
    assert!(processes_with(&mark).is_empty(), "something was left");
}

/// Issue 23, point 5: a `stop_command` that fails at once is an event with its exit
/// status, and the signals follow at once, not after `stop_timeout`.
#[test]
fn a_failing_stop_command_is_an_event_and_the_signals_follow_at_once() {
    let mark = marker("failing-stop-command");
    let env = TestEnv::new().daemon(
        "cache",
        &format!(
            "command = [\"sh\", \"-c\", \"sleep 1000; true\", \"{mark}\"]\nstart_wait = \"100ms\"\nstop_timeout = \"20s\"\nstop_command = [\"sh\", \"-c\", \"echo no such server >&2; exit 1\"]\n"
        ),
    );
    env.dmgr(&["start", "cache"]).success();
    let began = Instant::now();
    env.dmgr(&["stop", "cache"]).success();
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "the stop took {:?} of its 20s stop_timeout",
        began.elapsed()
    );
    assert!(processes_with(&mark).is_empty(), "the daemon was left");
    let json = env.dmgr(&["events", "--json", "cache"]).success().stdout();
    let failed = json
        .lines()
        .find(|l| l.contains("stop_command ended"))
        .unwrap_or_else(|| panic!("no event for the failed stop_command:\n{json}"));
    assert!(failed.contains("\"exit_code\":1"), "{failed}");
    assert!(failed.contains("exit 1"), "{failed}");
}

/// Issue 23, point 6: a SIGTERM that another process sends the keeper stops the
/// daemon, but is no `dmgr stop`: the record names the sender and is not "stopped by
/// request", and `apply` starts the daemon again. A `dmgr stop` still is one.
#[test]
fn an_outside_sigterm_is_not_a_stop_by_request_and_apply_starts_it_again() {
    let (env, _) = crate::support::sleeper_env("web");
    env.dmgr(&["start", "web"]).success();
    let keeper = env.keeper_pid("web").expect("a keeper");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(keeper),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_until("the keeper is gone", Duration::from_secs(10), || {
        !env.pidfile_is_locked("web") && env.entry("web")["status"] == "stopped"
    });
    let record = std::fs::read_to_string(env.run_dir().join("web.state")).unwrap();
    assert!(!record.contains("stopped-by-request"), "{record}");
    assert!(record.contains("outside-stop"), "{record}");
    let me = std::process::id();
    assert!(
        record.contains(&format!("SIGTERM from pid {me}")),
        "{record}"
    );
    env.dmgr(&["status", "web"])
        .stdout_has("a signal from outside dmgr stopped it");
    assert!(env.events("web").contains("not `dmgr stop`"));
    env.dmgr(&["apply"]).success().stdout_has("web: started");
    assert_eq!(env.entry("web")["status"], "running");
    env.dmgr(&["stop", "web"]).success();
    let record = std::fs::read_to_string(env.run_dir().join("web.state")).unwrap();
    assert!(record.contains("stopped-by-request"), "{record}");
    env.dmgr(&["apply"]).success().stdout_has("left stopped");
}

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

//! The event history (SPEC "Events"): what the keeper saw happen is in
//! `RUN_DIR/NAME.events` and `dmgr events`, and the daemon's log holds only what the
//! daemon wrote.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{sigkill, wait_until, TestEnv};

/// Prints two lines, then sleeps until stopped.
const ALPHA_BETA: &str = "command = [\"sh\", \"-c\", \"echo alpha; echo beta; exec sleep 1000\"]\nstart_wait = \"100ms\"\nrestart_delay = \"100ms\"\n";

/// Starts `web`, SIGKILLs it once its two lines are logged, waits for the keeper to
/// restart it and log them again, and stops it.
fn start_kill_restart_stop(env: &TestEnv) {
    env.dmgr(&["start", "web"]).success();
    let lines = |n: usize| move || env.log("web").lines().count() >= n;
    wait_until(
        "the first run's lines are logged",
        Duration::from_secs(10),
        lines(2),
    );
    let pid = env.pid("web").expect("web runs");
    sigkill(pid).unwrap();
    env.wait_for_restart("web", pid);
    wait_until(
        "the second run's lines are logged",
        Duration::from_secs(10),
        lines(4),
    );
    env.dmgr(&["stop", "web"]).success();
}

/// The events of `web` as `dmgr events web --json` prints them.
fn events_json(env: &TestEnv, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["events", "--json"];
    all.extend_from_slice(args);
    env.dmgr(&all)
        .success()
        .stdout()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// Issue 12: the keeper's notes (`[dmgr ...] started (pid N): COMMAND`) are gone from
/// the log, so a daemon that is killed, restarted and stopped leaves exactly its own
/// output, run after run.
#[test]
fn the_log_holds_exactly_what_the_daemon_wrote() {
    let env = TestEnv::new().daemon("web", ALPHA_BETA);
    start_kill_restart_stop(&env);
    assert_eq!(env.log("web"), "alpha\nbeta\nalpha\nbeta\n");
}

/// With `log_timestamps`, every line of the file starts with its time: nothing of
/// dmgr's comes between.
#[test]
fn with_log_timestamps_every_line_starts_with_its_time() {
    let env = TestEnv::new().daemon("web", &format!("{ALPHA_BETA}log_timestamps = true\n"));
    start_kill_restart_stop(&env);
    let log = env.log("web");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4, "{log}");
    for (line, want) in lines.iter().zip(["alpha", "beta", "alpha", "beta"]) {
        let (time, text) = line.split_once(' ').unwrap_or_default();
        assert!(
            humantime::parse_rfc3339(time).is_ok() && time.len() == 24,
            "{line:?} does not start with an RFC 3339 time"
        );
        assert_eq!(text, want);
    }
}

/// The "Done when" of issue 12: start, SIGKILL, restart by policy and stop, as events
/// in order, each with its time and daemon.
#[test]
fn events_json_tells_start_kill_restart_and_stop_in_order() {
    let env = TestEnv::new().daemon("web", ALPHA_BETA);
    start_kill_restart_stop(&env);
    let events = events_json(&env, &["web"]);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    // The exit on stop_signal is recorded too: how the stopped run ended.
    assert_eq!(
        names,
        [
            "started",
            "exited",
            "restarting",
            "started",
            "stopping",
            "exited",
            "stopped"
        ],
        "{events:#?}"
    );
    assert_eq!(events[1]["signal"], "KILL");
    assert_eq!(events[1]["pid"], events[0]["pid"]);
    assert_eq!(events[2]["delay_ms"], 100);
    assert_eq!(events[4]["signal"], "TERM");
    assert_eq!(events[5]["signal"], "TERM");
    let mut times = Vec::new();
    for event in &events {
        assert_eq!(event["daemon"], "web");
        let time = event["time"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
        times.push(time.to_string());
    }
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // The stored file is what --json printed.
    let stored = std::fs::read_to_string(env.run_dir().join("web.events")).unwrap();
    assert_eq!(stored.lines().count(), events.len());
}

/// Several daemons' events are merged by time, `-n` keeps the newest, and the text
/// form escapes what came from a file: a program name cannot drive the terminal.
#[test]
fn events_of_several_daemons_merge_by_time_and_are_escaped() {
    let env = TestEnv::new()
        .daemon("bad", "command = [\"/nonexistent/\\u001b[31mred\"]\n")
        .daemon(
            "web",
            "command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\n",
        );
    env.dmgr(&["start", "bad"]).code(1);
    env.dmgr(&["start", "web"]).success();
    let all = events_json(&env, &[]);
    let order: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e["daemon"].as_str().unwrap(), e["event"].as_str().unwrap()))
        .collect();
    assert_eq!(order, [("bad", "gave-up"), ("web", "started")], "{all:#?}");
    let last = events_json(&env, &["-n", "1", "bad", "web"]);
    assert_eq!(last.len(), 1);
    assert_eq!(last[0]["daemon"], "web");
    let text = env.dmgr(&["events", "bad"]).success().stdout();
    assert!(
        text.contains("gave-up") && text.contains("\\e[31mred"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text:?}");
    env.dmgr(&["events", "nosuch"]).code(2);
}

/// `status` shows the newest five events; `kill` and `apply` record theirs.
#[test]
fn status_shows_the_last_five_events_including_kill_and_apply() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\n",
    );
    env.dmgr(&["start", "web"]).success();
    env.dmgr(&["kill", "-s", "CONT", "web"]).success();
    env.write(
        "web",
        "command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\nstop_timeout = \"3s\"\n",
    );
    env.dmgr(&["apply"]).success();
    wait_until(
        "the keeper took over the key",
        Duration::from_secs(10),
        || events_json(&env, &["web"]).len() == 3,
    );
    let events = events_json(&env, &["web"]);
    assert_eq!(events[1]["event"], "signalled");
    assert_eq!(events[1]["signal"], "CONT");
    assert_eq!(events[2]["event"], "updated");
    assert!(events[2]["message"]
        .as_str()
        .unwrap()
        .contains("stop_timeout"));
    for _ in 0..3 {
        env.dmgr(&["kill", "-s", "CONT", "web"]).success();
    }
    let status = env.dmgr(&["status", "web"]).success().stdout();
    let shown: Vec<&str> = status
        .lines()
        .skip_while(|l| !l.contains("recent events:"))
        .skip(1)
        .take_while(|l| l.starts_with("    ") && !l.contains('|'))
        .collect();
    assert_eq!(shown.len(), 5, "{status}");
    assert!(
        shown[0].contains("signalled") && shown[1].contains("updated"),
        "{status}"
    );
    let json: Value =
        serde_json::from_str(&env.dmgr(&["status", "web", "--json"]).success().stdout()).unwrap();
    assert_eq!(json[0]["events"].as_array().map(Vec::len), Some(5));
}

/// `events -f` prints new events as they are recorded.
#[test]
fn events_follow_prints_new_events() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\n",
    );
    env.dmgr(&["start", "web"]).success();
    let (_follower, rx) = env.follow(&["events", "-f", "web"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let next = || {
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("events -f printed no more lines")
    };
    assert!(next().contains("started"));
    env.dmgr(&["stop", "web"]).success();
    let mut seen = Vec::new();
    while !seen.last().is_some_and(|l: &String| l.contains("stopped")) {
        seen.push(next());
    }
    assert!(seen[0].contains("stopping"), "{seen:?}");
}

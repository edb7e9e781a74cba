//! Logs lose nothing (promise 6): appended, rotated at line boundaries keeping
//! `log_keep` files, the last words before a crash kept, followed across rotation.

use std::time::Duration;

use crate::support::{wait_until, TestEnv};

/// The lines of `text`.
fn lines_of(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// All lines of a log and its rotated files, oldest first.
fn all_lines(env: &TestEnv, name: &str, keep: u32) -> Vec<String> {
    let log = env.run_dir().join(format!("log/{name}.log"));
    let mut lines = Vec::new();
    for index in (1..=keep).rev() {
        let rotated = format!("{}.{index}", log.display());
        lines.extend(
            std::fs::read_to_string(rotated)
                .unwrap_or_default()
                .lines()
                .map(str::to_string),
        );
    }
    lines.extend(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string),
    );
    lines
}

/// Every line of a numbered sequence is present exactly once, in order, across the
/// kept files, no file exceeds the limit by more than one line, and no line is split.
#[test]
fn rotation_keeps_every_line_once_and_whole() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sh\", \"-c\", \"i=0; while [ $i -lt 3000 ]; do echo line-$i-padding-padding; i=$((i+1)); done; exec sleep 1000\"]\nlog_max_size = \"8KiB\"\nlog_keep = 20\nstart_wait = \"0s\"\n",
    );
    env.dmgr(&["start", "web"]).success();
    wait_until("all 3000 lines are logged", Duration::from_secs(20), || {
        all_lines(&env, "web", 20)
            .last()
            .is_some_and(|l| l.starts_with("line-2999-"))
    });
    let lines = all_lines(&env, "web", 20);
    let expected: Vec<String> = (0..3000)
        .map(|i| format!("line-{i}-padding-padding"))
        .collect();
    assert_eq!(
        lines, expected,
        "lines lost, duplicated, reordered or split"
    );
    for index in 1..=20 {
        let rotated = env.run_dir().join(format!("log/web.log.{index}"));
        if let Ok(text) = std::fs::read_to_string(&rotated) {
            assert!(
                text.len() <= 8 * 1024,
                "{} holds {} bytes",
                rotated.display(),
                text.len()
            );
            assert!(text.ends_with('\n'), "{} ends mid-line", rotated.display());
        }
    }
}

/// Only log_keep rotated files are kept.
#[test]
fn rotation_keeps_log_keep_files() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sh\", \"-c\", \"i=0; while [ $i -lt 2000 ]; do echo line-$i-padding-padding; i=$((i+1)); done; exec sleep 1000\"]\nlog_max_size = \"4KiB\"\nlog_keep = 3\nstart_wait = \"0s\"\n",
    );
    env.dmgr(&["start", "web"]).success();
    wait_until("the last line is logged", Duration::from_secs(20), || {
        env.log("web").contains("line-1999-")
    });
    let log_dir = env.run_dir().join("log");
    assert!(log_dir.join("web.log.3").exists());
    assert!(
        !log_dir.join("web.log.4").exists(),
        "more than log_keep files kept"
    );
}

/// What the daemon writes right before it crashes is in the log, exactly, and the
/// exit is an event.
#[test]
fn output_right_before_a_crash_is_kept() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sh\", \"-c\", \"sleep 0.2; printf 'last words'; kill -9 $$\"]\nrestart = \"no\"\nstart_wait = \"50ms\"\n",
    );
    env.dmgr(&["start", "web"]).success();
    wait_until("the crash is recorded", Duration::from_secs(10), || {
        env.entry("web")["status"] == "failed"
    });
    assert_eq!(env.log("web"), "last words");
    let events = env.dmgr(&["events", "web"]).success().stdout();
    assert!(
        events.contains("exited") && events.contains("signal KILL"),
        "{events}"
    );
}

/// A fast writer loses nothing, and logs are appended across restarts, never truncated.
#[test]
fn fast_writer_loses_nothing_and_logs_are_appended() {
    let writer = "command = [\"sh\", \"-c\", \"seq 1 100000; exec sleep 1000\"]\nlog_max_size = \"0\"\nstart_wait = \"0s\"\n";
    let env = TestEnv::new().daemon("web", writer);
    env.dmgr(&["start", "web"]).success();
    wait_until("100000 lines are logged", Duration::from_secs(30), || {
        env.log("web").contains("\n100000\n")
    });
    env.dmgr(&["restart", "web"]).success();
    wait_until(
        "the second run's lines are logged",
        Duration::from_secs(30),
        || env.log("web").matches("\n100000\n").count() == 2,
    );
    let numbers: Vec<String> = all_lines(&env, "web", 0);
    let expected: Vec<String> = (1..=100_000)
        .chain(1..=100_000)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(numbers.len(), expected.len());
    assert!(numbers == expected, "lines lost or reordered");
}

/// log_timestamps stamps each line once, even a line that arrives in several writes.
#[test]
fn timestamps_stamp_whole_lines() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sh\", \"-c\", \"printf 'hel'; sleep 0.2; printf 'lo\\\\nworld\\\\n'; exec sleep 1000\"]\nlog_timestamps = true\nstart_wait = \"0s\"\n",
    );
    env.dmgr(&["start", "web"]).success();
    wait_until("both lines are logged", Duration::from_secs(10), || {
        lines_of(&env.log("web"))
            .iter()
            .any(|l| l.ends_with(" world"))
    });
    let lines = lines_of(&env.log("web"));
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, text) in lines.iter().zip(["hello", "world"]) {
        let (stamp, rest) = line.split_once(' ').unwrap();
        assert_eq!(rest, text);
        assert_eq!(stamp.len(), 24, "{stamp}");
        assert!(stamp.ends_with('Z') && stamp.contains('T'), "{stamp}");
    }
}

/// stderr_log separates the streams.
#[test]
fn stderr_log_gets_standard_error() {
    let env = TestEnv::new();
    let err = env.root().join("web.err");
    env.write(
        "web",
        &format!("command = [\"sh\", \"-c\", \"echo to-out; echo to-err >&2; exec sleep 1000\"]\nstderr_log = \"{}\"\nstart_wait = \"200ms\"\n", err.display()),
    );
    env.dmgr(&["start", "web"]).success();
    wait_until("both streams are logged", Duration::from_secs(5), || {
        std::fs::read_to_string(&err).is_ok_and(|s| s.contains("to-err"))
    });
    assert_eq!(lines_of(&env.log("web")), ["to-out"]);
    assert_eq!(
        lines_of(&std::fs::read_to_string(&err).unwrap()),
        ["to-err"]
    );
    // logs --stderr reads the stderr log; status shows the tails of both.
    let stderr_lines = env.dmgr(&["logs", "--stderr", "web"]).success().stdout();
    assert_eq!(lines_of(&stderr_lines), ["to-err"]);
    let stdout_lines = env.dmgr(&["logs", "web"]).success().stdout();
    assert_eq!(lines_of(&stdout_lines), ["to-out"]);
    let status = env.dmgr(&["status", "--json", "web"]).success().stdout();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status[0]["stderr_tail"], serde_json::json!(["to-err"]));
    env.dmgr(&["status", "web"])
        .success()
        .stdout_has("last stderr log lines:\n    | to-err");
}

/// `logs -n` reads across a rotation; `rotate` rotates now without a restart.
#[test]
fn logs_n_reads_across_rotation_and_rotate_restarts_nothing() {
    let env = TestEnv::new().daemon("web", "command = [\"sh\", \"-c\", \"echo before-1; echo before-2; exec sleep 1000\"]\nstart_wait = \"200ms\"\n");
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web");
    wait_until("output is logged", Duration::from_secs(5), || {
        env.log("web").contains("before-2")
    });
    env.dmgr(&["rotate", "web"])
        .success()
        .stdout_has("web: rotated");
    wait_until("the keeper rotated", Duration::from_secs(5), || {
        env.run_dir().join("log/web.log.1").exists()
    });
    assert_eq!(env.pid("web"), pid, "rotate restarted the daemon");
    let out = env.dmgr(&["logs", "web", "-n", "3"]).success().stdout();
    assert!(
        out.contains("before-1") && out.contains("before-2"),
        "{out}"
    );
}

/// `logs -f` follows new lines across a rotation and a restart; with several names each
/// line carries its name.
#[test]
fn logs_follow_survives_rotation_and_restart() {
    let env = TestEnv::new()
        .daemon("web", "command = [\"sh\", \"-c\", \"echo web-start; while :; do echo web-tick; sleep 0.05; done\"]\nstart_wait = \"0s\"\n")
        .daemon("db", "command = [\"sh\", \"-c\", \"while :; do echo db-tick; sleep 0.05; done\"]\nstart_wait = \"0s\"\n");
    env.dmgr(&["start", "web", "db"]).success();
    let (_follower, rx) = env.follow(&["logs", "-f", "-n", "0", "web", "db"]);
    let mut seen = Vec::new();
    let mut wait_for = |want: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .unwrap_or_else(|_| {
                    let last = &seen[seen.len().saturating_sub(5)..];
                    panic!("logs -f never printed {want:?}; last lines: {last:?}")
                });
            let hit = line.contains(want);
            seen.push(line);
            if hit {
                return;
            }
        }
    };
    wait_for("db  | db-tick");
    wait_for("web | web-tick");
    env.dmgr(&["rotate", "web"]).success();
    wait_for("web | web-tick");
    env.dmgr(&["restart", "web"]).success();
    // A web-start of the first run came before its first web-tick, waited for above.
    wait_for("web | web-start");
    wait_for("web | web-tick");
}

//! Issue 22, logs and interruptions: histories in the order things happened, rotation
//! of an empty log, starts interrupted by a keeper's death, and a keeper's death that
//! leaves its daemon running and logging.

use serde_json::Value;

use crate::support::TestEnv;

/// The events of `names` as `dmgr events --json` prints them.
fn events_json(env: &TestEnv, names: &[&str]) -> Vec<Value> {
    let mut args = vec!["events", "--json"];
    args.extend_from_slice(names);
    env.dmgr(&args)
        .success()
        .stdout()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// Finding 12: the wall clock stepped back while a keeper wrote its history (here the
/// times of a real history rewritten to run backwards, as a clock stepped back an
/// hour before each event would have left them). `dmgr events` and `dmgr status`
/// show it in the order it was written, and a merge with another daemon keeps each
/// daemon's own order.
#[test]
fn events_keep_their_written_order_when_the_clock_steps_back() {
    let env = TestEnv::new()
        .daemon(
            "web",
            "command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\n",
        )
        .daemon(
            "db",
            "command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\n",
        );
    env.dmgr(&["start", "web"]).success();
    env.dmgr(&["stop", "web"]).success();
    let written: Vec<String> = events_json(&env, &["web"])
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(written, ["started", "stopping", "exited", "stopped"]);
    let path = env.run_dir().join("web.events");
    let stored = std::fs::read_to_string(&path).unwrap();
    let backwards: String = stored
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let mut event: Value = serde_json::from_str(line).unwrap();
            event["time"] = format!("2026-01-01T{:02}:00:00.000Z", 12 - i).into();
            format!("{event}\n")
        })
        .collect();
    std::fs::write(&path, backwards).unwrap();
    std::fs::write(
        env.run_dir().join("db.events"),
        "{\"time\":\"2026-01-01T10:30:00.000Z\",\"daemon\":\"db\",\"event\":\"started\"}\n\
         {\"time\":\"2026-01-01T11:30:00.000Z\",\"daemon\":\"db\",\"event\":\"stopped\"}\n",
    )
    .unwrap();

    let order = |events: Vec<Value>| -> Vec<String> {
        events
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["daemon"].as_str().unwrap(),
                    e["event"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        order(events_json(&env, &["web"])),
        ["web started", "web stopping", "web exited", "web stopped"]
    );
    // web's events are at 12:00, 11:00, 10:00 and 09:00; db's at 10:30 and 11:30.
    assert_eq!(
        order(events_json(&env, &["web", "db"])),
        [
            "db started",
            "db stopped",
            "web started",
            "web stopping",
            "web exited",
            "web stopped"
        ]
    );
    let status: Value =
        serde_json::from_str(&env.dmgr(&["status", "web", "--json"]).stdout()).unwrap();
    let shown: Vec<&str> = status[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(shown, ["started", "stopping", "exited", "stopped"]);
}

/// Finding 9 of the smaller ones: `dmgr rotate` of an empty log pushed the oldest kept
/// file out for an empty one. Now it does nothing, and says so.
#[test]
fn rotating_an_empty_log_does_nothing() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\nlog_keep = 2\n",
    );
    env.dmgr(&["start", "web"]).success();
    let log = env.run_dir().join("log/web.log");
    let rotated = |index: u32| std::path::PathBuf::from(format!("{}.{index}", log.display()));
    std::fs::write(rotated(1), "newer\n").unwrap();
    std::fs::write(rotated(2), "older\n").unwrap();
    for _ in 0..3 {
        env.dmgr(&["rotate", "web"])
            .success()
            .stdout_has("web: the log is empty; nothing to rotate");
    }
    // The keeper itself leaves an empty log alone, whoever asks it to rotate.
    let keeper = env.keeper_pid("web").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(keeper),
        nix::sys::signal::Signal::SIGUSR2,
    )
    .unwrap();
    env.dmgr(&["rotate", "--all"]).success();
    // A stop makes the keeper handle every signal it was sent before it exits.
    env.dmgr(&["stop", "web"]).success();
    assert_eq!(std::fs::read_to_string(rotated(1)).unwrap(), "newer\n");
    assert_eq!(std::fs::read_to_string(rotated(2)).unwrap(), "older\n");
    assert!(!rotated(3).exists());
}

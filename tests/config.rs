//! Daemon files: `check` reports every problem (promise 7), broken files do not block
//! the others, orphans whose file was removed are listed and stopped.

use crate::support::{is_alive, TestEnv};

/// Promise 7: check reports every problem in every file as FILE:LINE:COL.
#[test]
fn check_reports_every_problem_in_every_file() {
    let env = TestEnv::new()
        .daemon("good", "command = \"sleep 1\"\n")
        .daemon("two", "comand = \"sleep 1\"\nrestart = \"sometimes\"\n")
        .daemon("syntax", "command = \"sleep 1\"\nx = = 1\n");
    let run = env.dmgr(&["check"]).code(2);
    let dir = env.config_dir();
    let stderr = run.stderr();
    for expected in [
        format!(
            "{}/two.toml:1:1: unknown key `comand`, did you mean `command`?",
            dir.display()
        ),
        format!(
            "{}/two.toml:2:11: expected \"no\", \"on-failure\" or \"always\"",
            dir.display()
        ),
        format!("{}/two.toml:1:1: missing key `command`", dir.display()),
        format!("{}/syntax.toml:2:", dir.display()),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(!stderr.contains("good.toml"));
}

/// check of a valid directory exits 0.
#[test]
fn check_of_a_valid_directory_succeeds() {
    let env = TestEnv::new()
        .daemon("web", "command = \"sleep 1\"\n")
        .daemon("db", "command = \"sleep 1\"\n");
    env.dmgr(&["check"]).success().stdout_has("2 daemons ok");
}

/// Promise 7: start --all starts every valid daemon and reports the broken file.
#[test]
fn broken_file_does_not_block_the_others() {
    let env = TestEnv::new()
        .daemon("web", "command = \"sleep 1000\"\nstart_wait = \"50ms\"\n")
        .daemon("broken", "command = \n");
    env.dmgr(&["start", "--all"])
        .code(1)
        .stderr_has("broken.toml:1:");
    assert!(env.pidfile_is_locked("web"));
    let list = env.list();
    let broken = list.iter().find(|e| e["name"] == "broken").unwrap();
    assert_eq!(broken["status"], "invalid");
    assert!(broken["error"].as_str().unwrap().starts_with("1:"));
    env.dmgr(&["list"]).success().stdout_has("invalid");
}

/// A running daemon whose file is removed is listed as orphaned, and stop --all
/// stops it.
#[test]
fn orphan_is_listed_and_stopped_by_stop_all() {
    let env = TestEnv::new().daemon("old", "command = \"sleep 1000\"\nstart_wait = \"50ms\"\n");
    env.dmgr(&["start", "old"]).success();
    let pid = env.pid("old").unwrap();
    env.remove("old");
    assert_eq!(env.entry("old")["status"], "orphaned");
    env.dmgr(&["stop", "--all"])
        .success()
        .stdout_has("old: stopped");
    assert!(!is_alive(pid));
    assert!(env.list().iter().all(|e| e["name"] != "old"));
}

/// A file broken while its daemon runs: `status` agrees with `list` that it is
/// invalid (also when only its `after` is wrong, which takes the other files to see),
/// `run` refuses it, and `rotate` and `stop` still reach the running daemon.
#[test]
fn broken_file_of_a_running_daemon_is_invalid_everywhere_and_still_stops() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1000\"\nstart_wait = \"50ms\"\n");
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    env.write("web", "command = \"sleep 1000\"\nafter = [\"nosuch\"]\n");
    assert_eq!(env.entry("web")["status"], "invalid");
    let status = env.dmgr(&["status", "--json", "web"]).success();
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap();
    assert_eq!(status[0]["status"], "invalid");
    assert_eq!(status[0]["pid"], pid);
    assert!(status[0]["error"].as_str().unwrap().contains("nosuch"));
    env.dmgr(&["run", "web"]).code(2).stderr_has("nosuch");
    env.dmgr(&["rotate", "web"])
        .success()
        .stdout_has("web: rotated");
    env.dmgr(&["stop", "web"])
        .success()
        .stdout_has("web: stopped");
    assert!(!is_alive(pid));
    // Stopped and still broken: stop is idempotent, status says invalid.
    env.dmgr(&["stop", "web"])
        .success()
        .stdout_has("web: not running");
    env.dmgr(&["status", "web"]).code(3).stdout_has("invalid");
    // Never started and broken: nothing to stop, which is not an error.
    env.write("never", "command = \n");
    env.dmgr(&["stop", "never"])
        .success()
        .stdout_has("never: not running");
}

/// Two daemons on one pidfile could never both run: check reports both files, and
/// status agrees with list that they are invalid.
#[test]
fn daemons_sharing_a_pidfile_are_reported() {
    let shared = "command = \"sleep 1\"\npidfile = \"../shared.pid\"\n";
    let env = TestEnv::new()
        .daemon("a", shared)
        .daemon("b", shared)
        .daemon("c", "command = \"sleep 1\"\n");
    env.dmgr(&["check"])
        .code(2)
        .stderr_has("a.toml:2:11: `pidfile`")
        .stderr_has("is also the pidfile of `b`")
        .stderr_has("is also the pidfile of `a`");
    assert_eq!(env.entry("a")["status"], "invalid");
    assert_eq!(env.entry("c")["status"], "stopped");
    env.dmgr(&["status", "a"]).code(3).stdout_has("invalid");
}

/// Relative paths resolve against the directory that holds the file.
#[test]
fn relative_paths_resolve_against_the_file_directory() {
    let env = TestEnv::new();
    std::fs::create_dir(env.config_dir().join("work")).unwrap();
    env.write("web", "command = [\"sh\", \"-c\", \"pwd > where; exec sleep 1000\"]\nworking_dir = \"work\"\nstart_wait = \"200ms\"\n");
    env.dmgr(&["start", "web"]).success();
    let wrote = std::fs::read_to_string(env.config_dir().join("work/where")).unwrap();
    assert_eq!(
        wrote.trim(),
        env.config_dir().join("work").to_str().unwrap()
    );
}

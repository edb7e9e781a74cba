//! Issue 23, point 6: what a user of systemctl or supervisorctl expects in the first
//! hour: `status` of everything, `list NAME`, `--all` for `logs` and `reload`, a file
//! name typed for a daemon, `check` of users and programs, `apply`'s words, a failed
//! start's own log lines.

use crate::support::{marker, sleeper, TestEnv};

/// `dmgr status` with no name (or `--all`) describes every daemon, as `systemctl
/// status` does; the exit status is the highest LSB code of them (3: one is stopped).
#[test]
fn status_without_a_name_describes_every_daemon() {
    let env = TestEnv::new()
        .daemon("web", &sleeper(&marker("status-all")))
        .daemon("idle", "command = [\"sleep\", \"1000\"]\n");
    env.dmgr(&["start", "web"]).success();
    for args in [&["status"][..], &["status", "--all"][..]] {
        let run = env.dmgr(args).code(3);
        let out = run.stdout();
        assert!(out.contains("web\n") && out.contains("idle\n"), "{out}");
    }
    env.dmgr(&["stop", "web"]).success();
}

/// `dmgr list NAME...` lists those daemons alone; an unknown name is an error (exit 2)
/// that suggests the nearest.
#[test]
fn list_of_names_lists_those_alone() {
    let env = TestEnv::new()
        .daemon("web", "command = [\"sleep\", \"1000\"]\n")
        .daemon("worker", "command = [\"sleep\", \"1000\"]\n");
    let out = env.dmgr(&["list", "worker"]).success().stdout();
    assert!(out.contains("worker") && !out.contains("web"), "{out}");
    let json = env.dmgr(&["list", "--json", "web"]).success().stdout();
    let entries: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(entries.as_array().unwrap().len(), 1);
    env.dmgr(&["list", "wbe"])
        .code(2)
        .stderr_has("wbe: no such daemon")
        .stderr_has("did you mean `web`?");
}

/// A file name typed for a daemon (`dmgr start web.toml`, tab-completed) suggests the
/// daemon's name.
#[test]
fn a_file_name_typed_for_a_daemon_suggests_its_name() {
    let env = TestEnv::new().daemon("web", "command = [\"sleep\", \"1000\"]\n");
    env.dmgr(&["start", "web.toml"])
        .code(2)
        .stderr_has("did you mean `web`?");
    env.dmgr(&["status", "daemons.d/web.toml"])
        .code(4)
        .stderr_has("did you mean `web`?");
}

/// `logs --all` prints every daemon's lines with a name prefix; `reload --all` reloads
/// every daemon that runs and skips the stopped ones; usage lines show `--all`.
#[test]
fn logs_and_reload_take_all() {
    let env = TestEnv::new()
        .daemon(
            "a",
            "command = [\"sh\", \"-c\", \"echo from-a; trap 'echo reloaded-a' HUP; while :; do sleep 0.05; done\"]\nstart_wait = \"100ms\"\n",
        )
        .daemon(
            "b",
            "command = [\"sh\", \"-c\", \"echo from-b; exec sleep 1000\"]\nstart_wait = \"100ms\"\n",
        )
        .daemon("c", "command = [\"sleep\", \"1000\"]\n");
    env.dmgr(&["start", "a", "b"]).success();
    let out = env.dmgr(&["logs", "--all"]).success().stdout();
    assert!(
        out.contains("a | from-a") && out.contains("b | from-b"),
        "{out}"
    );
    let out = env.dmgr(&["reload", "--all"]).success().stdout();
    assert!(
        out.contains("a: sent HUP") && out.contains("b: sent HUP"),
        "{out}"
    );
    assert!(!out.contains("c:"), "{out}");
    crate::support::wait_until("a saw HUP", std::time::Duration::from_secs(5), || {
        env.log("a").contains("reloaded-a")
    });
    env.dmgr(&["reload"])
        .code(2)
        .stderr_has("Usage: dmgr reload <NAME|--all>");
    env.dmgr(&["stop", "--all"]).success();
}

/// `check` warns (exit 0) about what `start` would fail on here: a user that does not
/// exist and a program not in PATH, each at its key.
#[test]
fn check_warns_about_a_missing_user_and_a_program_not_found() {
    let env = TestEnv::new().daemon(
        "web",
        "command = \"ngnix-typo -g x\"\nuser = \"no-such-user-here\"\nreload_command = [\"/nonexistent/reload\"]\n",
    );
    env.dmgr(&["check"])
        .success()
        .stderr_has("web.toml:1:11: warning: `ngnix-typo` is not in PATH")
        .stderr_has("web.toml:2:8: warning: user `no-such-user-here` does not exist on this host")
        .stderr_has("web.toml:3:18: warning: /nonexistent/reload does not exist")
        .stdout_has("(3 warnings)");
}

/// `apply` says why it starts a daemon that is down in words: `was down: it exited 0`,
/// not `started (not running: it exited (exit 0))`.
#[test]
fn apply_says_in_words_why_it_starts_a_daemon() {
    let env = TestEnv::new().daemon(
        "once",
        "command = [\"sh\", \"-c\", \"sleep 0.3\"]\nstart_wait = \"100ms\"\nrestart = \"no\"\n",
    );
    env.dmgr(&["start", "once"]).success();
    crate::support::wait_until("once exited", std::time::Duration::from_secs(5), || {
        env.entry("once")["status"] == "stopped"
    });
    env.dmgr(&["apply", "--dry-run"])
        .success()
        .stdout_has("once: start (down: it exited 0)");
    env.dmgr(&["apply"])
        .success()
        .stdout_has("once: started (was down: it exited 0)");
}

/// A failed start shows the lines that start wrote, not an earlier run's.
#[test]
fn a_failed_start_shows_only_its_own_log_lines() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sh\", \"-c\", \"echo this run failed; exit 1\"]\nstart_wait = \"500ms\"\n",
    );
    let log = env.run_dir().join("log/web.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, "bind: Address already in use\n").unwrap();
    env.dmgr(&["start", "web"])
        .code(1)
        .stderr_has("last log lines:\n  | this run failed")
        .stderr_lacks("Address already in use");
}

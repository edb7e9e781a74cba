//! `dmgr reload` through the keeper: `reload_signal` or `reload_command`, run in the
//! daemon's tree and answered with an event the command waits for.

use crate::support::TestEnv;

/// Issue 23, point 2: `reload_command` is the keeper's child (so what it starts is the
/// daemon's), its output goes to the daemon's log, and its events come in the order
/// things happened, each carrying the request's number.
#[test]
fn reload_command_runs_in_the_daemons_tree_and_is_answered_in_order() {
    let env = TestEnv::new();
    let parent = env.root().join("parent");
    env.write(
        "web",
        &format!(
            "command = [\"sleep\", \"1000\"]\nstart_wait = \"50ms\"\nreload_command = [\"sh\", \"-c\", \"echo $PPID > {}; echo reload-output\"]\n",
            parent.display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let pid = env.entry("web")["pid"].as_i64().unwrap();
    env.dmgr(&["reload", "web"])
        .success()
        .stdout_has(&format!("web: reloaded (pid {pid})"));
    let keeper = env.keeper_pid("web").unwrap();
    assert_eq!(
        std::fs::read_to_string(&parent).unwrap().trim(),
        keeper.to_string(),
        "reload_command is not the keeper's child"
    );
    let json = env.dmgr(&["events", "--json", "web"]).success().stdout();
    let kinds: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["request"].is_number())
        .collect();
    let names: Vec<&str> = kinds.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["reloading", "reloaded"], "{json}");
    assert_eq!(kinds[0]["request"], kinds[1]["request"]);
    crate::support::wait_until(
        "the command's output is in the log",
        std::time::Duration::from_secs(5),
        || env.log("web").contains("reload-output"),
    );
}

/// A reload of a daemon that is not running fails (exit 1), with no command run.
#[test]
fn reload_of_a_stopped_daemon_fails() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sleep\", \"1000\"]\nreload_command = [\"true\"]\n",
    );
    env.dmgr(&["reload", "web"])
        .code(1)
        .stderr_has("not running; nothing to reload");
}

//! `list` and `status` compared whole, plain and `--json`, after normalising what
//! changes from one run to the next: PIDs, times, uptimes, sizes and the test's own
//! directory. A change to what they print shows up here as a diff of the whole output,
//! not as a `contains` that still passes.

use regex::Regex;
use serde_json::{json, Value};

use crate::support::TestEnv;

/// `text` with the run's own values replaced: the test's directory by `[ROOT]`, each of
/// `pids` by `[PID]`, timestamps by `[TIME]`, durations by `[DUR]`, sizes by `[SIZE]`;
/// then the runs of spaces that pad columns (whose widths follow those values) by one
/// space, and trailing spaces cut.
fn normalise(text: &str, root: &str, pids: &[i64]) -> String {
    let mut text = text.replace(root, "[ROOT]");
    for pid in pids {
        let pid = Regex::new(&format!(r"\b{pid}\b")).unwrap();
        text = pid.replace_all(&text, "[PID]").into_owned();
    }
    let rules = [
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[TIME]"),
        (r"\b\d+(\.\d+)?(ms|s|m|h|d)\b", "[DUR]"),
        (r"\b\d+(\.\d+)?[KMGT]\b", "[SIZE]"),
        (r" {2,}", " "),
    ];
    for (pattern, by) in rules {
        text = Regex::new(pattern)
            .unwrap()
            .replace_all(&text, by)
            .into_owned();
    }
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `value` with the run's own values replaced: the numbers of `pid`, `keeper_pid`,
/// `uptime_secs` and `memory_bytes` by `"[..]"`, each `time` by `"[TIME]"`, and the
/// test's directory in any string by `[ROOT]`.
fn normalise_json(value: &mut Value, root: &str) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                match key.as_str() {
                    "pid" | "keeper_pid" | "uptime_secs" | "memory_bytes" if !item.is_null() => {
                        *item = json!("[..]");
                    }
                    "time" => *item = json!("[TIME]"),
                    _ => normalise_json(item, root),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| normalise_json(i, root)),
        Value::String(s) => *s = s.replace(root, "[ROOT]"),
        _ => {}
    }
}

/// Two daemons, one started: the web sleeper (with a description) and a `bad` one
/// that never was.
fn two_daemons() -> (TestEnv, i64, i64) {
    let env = TestEnv::new()
        .without_cgroups()
        .daemon(
            "web",
            "command = \"sleep 300\"\ndescription = \"the web sleeper\"\n",
        )
        .daemon(
            "bad",
            "command = \"false\"\nrestart = \"no\"\nautostart = false\n",
        );
    env.dmgr(&["start", "web"]).success();
    let web = env.entry("web");
    let pid = web["pid"].as_i64().unwrap();
    let status = env.dmgr(&["status", "web", "--json"]).success();
    let status: Value = serde_json::from_str(&status.stdout()).unwrap();
    let keeper = status[0]["keeper_pid"].as_i64().unwrap();
    (env, pid, keeper)
}

/// A daemon's entry in `list --json`, normalised: `running` for the numbers that only
/// a running daemon has.
fn list_entry(name: &str, status: &str, running: bool, command: &str, description: Value) -> Value {
    let number = |v: Value| if running { v } else { Value::Null };
    json!({
        "name": name,
        "status": status,
        "pid": number(json!("[..]")),
        "uptime_secs": number(json!("[..]")),
        "restarts": 0,
        "memory_bytes": number(json!("[..]")),
        "command": command,
        "last_exit": null,
        "error": null,
        "description": description,
        "supervised": true,
        "reason": null,
        "health": null,
        "memory": null,
        "systemd_unit": null,
        "left_behind": [],
        "instance": null,
        "status_text": null,
        "next_run": null
    })
}

/// `dmgr list`: one row per daemon, sorted by name, with the columns SPEC names.
#[test]
fn list_shows_every_daemon_in_one_table() {
    let (env, pid, keeper) = two_daemons();
    let root = env.root().display().to_string();
    let list = env.dmgr(&["list"]).success().stdout();
    assert_eq!(
        normalise(&list, &root, &[pid, keeper]),
        "NAME STATUS PID UPTIME RESTARTS MEM COMMAND
bad stopped - - 0 - false
web running [PID] [DUR] 0 [SIZE] sleep 300"
    );
}

/// `dmgr list --json`: the same facts, every field of the stable shape.
#[test]
fn list_json_has_the_stable_shape() {
    let (env, _, _) = two_daemons();
    let root = env.root().display().to_string();
    let mut list: Value =
        serde_json::from_str(&env.dmgr(&["list", "--json"]).success().stdout()).unwrap();
    normalise_json(&mut list, &root);
    assert_eq!(
        list,
        json!([
            list_entry("bad", "stopped", false, "false", Value::Null),
            list_entry(
                "web",
                "running",
                true,
                "sleep 300",
                json!("the web sleeper")
            ),
        ])
    );
}

/// `dmgr status NAME`: the daemon's facts, one a line, then its recent events.
#[test]
fn status_shows_the_daemon_whole() {
    let (env, pid, keeper) = two_daemons();
    let root = env.root().display().to_string();
    let status = env.dmgr(&["status", "web"]).success().stdout();
    assert_eq!(
        normalise(&status, &root, &[pid, keeper]),
        "web - the web sleeper
 status: running (pid [PID], up [DUR])
 command: sleep 300
 keeper: pid [PID]
 restarts: 0
 memory: [SIZE]
 file: [ROOT]/daemons.d/web.toml
 pidfile: [ROOT]/run/web.pid
 cgroup: none (DMGR_NO_CGROUP is set); the keeper tracks its processes as their subreaper
 log: [ROOT]/run/log/web.log
 recent events:
 [TIME] started pid [PID]"
    );
}

/// `dmgr status NAME --json`: the entry `list --json` has, and the facts only `status`
/// shows: the keeper, the paths, the history, the recent events.
#[test]
fn status_json_has_the_stable_shape() {
    let (env, _, _) = two_daemons();
    let root = env.root().display().to_string();
    let status = env.dmgr(&["status", "web", "--json"]).success().stdout();
    let mut status: Value = serde_json::from_str(&status).unwrap();
    normalise_json(&mut status, &root);
    assert_eq!(
        status,
        json!([merged(
            list_entry(
                "web",
                "running",
                true,
                "sleep 300",
                json!("the web sleeper")
            ),
            json!({
                "keeper_pid": "[..]",
                "pidfile": "[ROOT]/run/web.pid",
                "log": "[ROOT]/run/log/web.log",
                "stderr_log": null,
                "lock_file": null,
                "cgroup": null,
                "no_cgroup": "DMGR_NO_CGROUP is set",
                "foreground": false,
                "file": "[ROOT]/daemons.d/web.toml",
                "next_restart": null,
                "next_restart_in_secs": null,
                "history": [],
                "log_error": null,
                "stale_pidfile": null,
                "log_tail": [],
                "stderr_tail": [],
                "events": [{
                    "time": "[TIME]",
                    "daemon": "web",
                    "event": "started",
                    "pid": "[..]"
                }],
                "notify_socket": null,
                "notify_dropped": null
            })
        )])
    );
}

/// The normalising itself: what changes from run to run goes, what a user reads stays.
#[test]
fn normalising_keeps_what_does_not_change() {
    let text =
        "web   running  4242   12s  1.6M  sleep 300  \n  at 2026-12-07T17:24:30.870Z in /tmp/x/run";
    assert_eq!(
        normalise(text, "/tmp/x", &[4242]),
        "web running [PID] [DUR] [SIZE] sleep 300\n at [TIME] in [ROOT]/run"
    );
}

/// `first` with the keys of `more` added after its own.
fn merged(mut first: Value, more: Value) -> Value {
    if let (Value::Object(first), Value::Object(more)) = (&mut first, more) {
        first.extend(more);
    }
    first
}

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

/// Issue 10, item 3: every problem `check` prints, of every kind, is
/// `FILE:LINE:COL: message` at the start of its line, and a problem with a file as a
/// whole points at 1:1; a warning has the same form.
#[test]
fn every_kind_of_problem_is_printed_as_file_line_col() {
    use std::os::unix::ffi::OsStrExt;
    let env = TestEnv::new()
        .daemon("missing", "restart = \"no\"\n")
        .daemon("syntax", "command = \"a\"\nx = = 1\n")
        .daemon("unknown", "command = \"a\"\ncomand = 1\n")
        .daemon("type", "command = \"a\"\nlog_keep = \"5\"\n")
        .daemon("value", "command = \"a\"\nrestart = \"sometimes\"\n")
        .daemon("bound", "command = \"a\"\nlog_keep = 4294967295\n")
        .daemon("dup", "command = \"a\"\ncommand = \"b\"\n")
        .daemon("path", "command = \"a\"\npidfile = \"path.toml\"\n")
        .daemon("after", "command = \"a\"\nafter = [\"nosuch\"]\n")
        .daemon("cycle1", "command = \"a\"\nafter = [\"cycle2\"]\n")
        .daemon("cycle2", "command = \"a\"\nafter = [\"cycle1\"]\n")
        .daemon("shared1", "command = \"a\"\npidfile = \"../shared.pid\"\n")
        .daemon("shared2", "command = \"a\"\nlog = \"../shared.pid\"\n")
        .daemon("warned", "command = \"a\"\nstop_signal = \"KILL\"\n")
        .daemon("bad name", "command = \"a\"\n");
    let dir = env.config_dir();
    std::fs::write(dir.join("utf8.toml"), b"command = \"\xff\"\n").unwrap();
    std::fs::write(dir.join(std::ffi::OsStr::from_bytes(b"n\xffme.toml")), "x").unwrap();
    std::fs::File::create(dir.join("large.toml"))
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    nix::unistd::mkfifo(
        &dir.join("fifo.toml"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    std::os::unix::fs::symlink("loop.toml", dir.join("loop.toml")).unwrap();
    let run = env.dmgr(&["check"]).code(2);
    let stderr = run.stderr();
    let prefix = format!("{}/", dir.display());
    let mut kinds = Vec::new();
    for line in stderr.lines().filter(|l| !l.starts_with("dmgr: ")) {
        let rest = line
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("not FILE:LINE:COL: {line:?}"));
        let mut parts = rest.splitn(4, ':');
        let (file, line_no, col) = (parts.next(), parts.next(), parts.next());
        let message = parts.next().unwrap_or_default();
        assert!(
            file.is_some_and(|f| f.ends_with(".toml"))
                && line_no.is_some_and(|n| n.parse::<usize>().is_ok_and(|n| n >= 1))
                && col.is_some_and(|n| n.parse::<usize>().is_ok_and(|n| n >= 1))
                && message.starts_with(' '),
            "not FILE:LINE:COL: message: {line:?}"
        );
        kinds.push(format!(
            "{}:{}:{}",
            file.unwrap(),
            line_no.unwrap(),
            col.unwrap()
        ));
    }
    for expected in [
        "missing.toml:1:1",
        "syntax.toml:2:5",
        "unknown.toml:2:1",
        "type.toml:2:12",
        "value.toml:2:11",
        "bound.toml:2:12",
        "dup.toml:2:1",
        "path.toml:2:11",
        "after.toml:2:10",
        "cycle1.toml:2:10",
        "cycle2.toml:2:10",
        "shared1.toml:2:11",
        "shared2.toml:2:7",
        "warned.toml:2:15",
        "bad name.toml:1:1",
        "utf8.toml:1:12",
        "n\\xffme.toml:1:1",
        "large.toml:1:1",
        "fifo.toml:1:1",
        "loop.toml:1:1",
    ] {
        assert!(
            kinds.iter().any(|k| k == expected),
            "no problem at {expected} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("warned.toml:2:15: warning: "));
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
    // An empty log is not rotated: write one first.
    std::fs::write(env.run_dir().join("log/web.log"), "a line\n").unwrap();
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

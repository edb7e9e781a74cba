//! Lifecycle beyond start and stop: readiness, `after` order, `apply`, reload and
//! signals, self-daemonizing commands, and the process environment.

use std::time::{Duration, Instant};

use crate::support::{is_alive, marker, processes_with, stat, wait_until, TestEnv};

/// `start` waits for a readiness check: the file appears only after a while.
#[test]
fn start_waits_for_readiness() {
    let env = TestEnv::new();
    let flag = env.root().join("ready-flag");
    env.write(
        "web",
        &format!(
            "command = [\"sh\", \"-c\", \"sleep 0.4; touch {0}; exec sleep 1000\"]\nready = {{ file = \"{0}\" }}\nstart_wait = \"0s\"\n",
            flag.display()
        ),
    );
    let started = Instant::now();
    env.dmgr(&["start", "web"]).success();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "start returned before the daemon was ready"
    );
    assert!(flag.exists());
    assert_eq!(env.entry("web")["status"], "running");
}

/// A readiness timeout fails the start with the reason and leaves nothing running.
#[test]
fn readiness_timeout_fails_cleanly() {
    let mark = marker("never-ready");
    let env = TestEnv::new().daemon(
        "web",
        &format!("command = [\"sh\", \"-c\", \"sleep 1000; true\", \"{mark}\"]\nready = {{ tcp = \"127.0.0.1:1\" }}\nready_timeout = \"500ms\"\nstart_wait = \"0s\"\n"),
    );
    env.dmgr(&["start", "web"])
        .code(1)
        .stderr_has("not ready within ready_timeout");
    assert!(
        processes_with(&mark).is_empty(),
        "the daemon was left running"
    );
    assert!(!env.pidfile("web").exists());
    assert_eq!(env.entry("web")["status"], "failed");
}

/// An exec readiness check runs until it succeeds.
#[test]
fn exec_readiness_check_passes() {
    let env = TestEnv::new();
    let flag = env.root().join("flag");
    env.write(
        "web",
        &format!(
            "command = [\"sh\", \"-c\", \"sleep 0.2; touch {0}; exec sleep 1000\"]\nready = {{ exec = [\"test\", \"-e\", \"{0}\"] }}\nstart_wait = \"0s\"\n",
            flag.display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    assert!(flag.exists());
}

/// `start --all` starts in `after` order, observed through timestamps the daemons write
/// themselves, and `stop --all` stops in reverse order.
#[test]
fn start_all_follows_after_order_and_stop_all_reverses_it() {
    let env = TestEnv::new();
    let stamp = |name: &str| {
        format!(
            "command = [\"sh\", \"-c\", \"date +%s%N > {0}/{1}.up; trap 'date +%s%N > {0}/{1}.down; exit 0' TERM; while :; do sleep 0.05; done\"]\nstart_wait = \"200ms\"\n",
            env.root().display(),
            name
        )
    };
    env.write("db", &stamp("db"));
    env.write("web", &format!("{}after = [\"db\"]\n", stamp("web")));
    env.write(
        "worker",
        &format!("{}after = [\"web\", \"db\"]\n", stamp("worker")),
    );
    env.dmgr(&["start", "--all"]).success();
    let read = |file: &str| -> u128 {
        std::fs::read_to_string(env.root().join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert!(read("db.up") < read("web.up"), "web started before db");
    assert!(
        read("web.up") < read("worker.up"),
        "worker started before web"
    );
    env.dmgr(&["stop", "--all"]).success();
    assert!(
        read("worker.down") < read("web.down"),
        "web stopped before worker"
    );
    assert!(read("web.down") < read("db.down"), "db stopped before web");
}

/// `start web` starts what web runs after, first.
#[test]
fn start_of_one_daemon_starts_its_dependencies() {
    let env = TestEnv::new()
        .daemon("db", "command = \"sleep 1000\"\nstart_wait = \"50ms\"\n")
        .daemon(
            "web",
            "command = \"sleep 1000\"\nstart_wait = \"50ms\"\nafter = [\"db\"]\n",
        );
    env.dmgr(&["start", "web"])
        .success()
        .stdout_has("db: started")
        .stdout_has("web: started");
    assert!(env.pidfile_is_locked("db"));
}

/// `apply`: a changed command restarts with a new PID, a changed stop_timeout is taken
/// over live with the PID kept, an unchanged daemon keeps its PID, a new file starts,
/// a removed file's daemon stops, and `--dry-run` changes nothing.
#[test]
fn apply_restarts_updates_starts_and_stops_exactly_what_changed() {
    let base = "start_wait = \"50ms\"\n";
    let env = TestEnv::new()
        .daemon(
            "changed",
            &format!("command = [\"sleep\", \"1000\"]\n{base}"),
        )
        .daemon(
            "tuned",
            &format!("command = [\"sleep\", \"1000\"]\nstop_timeout = \"10s\"\n{base}"),
        )
        .daemon("same", &format!("command = [\"sleep\", \"1000\"]\n{base}"))
        .daemon("gone", &format!("command = [\"sleep\", \"1000\"]\n{base}"));
    env.dmgr(&["start", "--all"]).success();
    let pid = |name: &str| env.pid(name).unwrap();
    let (changed, tuned, same, gone) = (pid("changed"), pid("tuned"), pid("same"), pid("gone"));

    env.write(
        "changed",
        &format!("command = [\"sleep\", \"1001\"]\n{base}"),
    );
    env.write(
        "tuned",
        &format!("command = [\"sleep\", \"1000\"]\nstop_timeout = \"3s\"\n{base}"),
    );
    env.write("new", &format!("command = [\"sleep\", \"1000\"]\n{base}"));
    env.remove("gone");

    let plan = env.dmgr(&["apply", "--dry-run"]).success().stdout();
    for line in [
        "changed: restart (changed: command)",
        "tuned: update live",
        "stop_timeout",
        "new: start",
        "gone: stop",
    ] {
        assert!(plan.contains(line), "plan lacks {line:?}:\n{plan}");
    }
    assert!(!plan.contains("same:"), "{plan}");
    assert_eq!(
        (pid("changed"), pid("tuned"), pid("same"), pid("gone")),
        (changed, tuned, same, gone),
        "--dry-run changed something"
    );
    assert!(!env.pidfile("new").exists());

    env.dmgr(&["apply"]).success();
    assert_ne!(pid("changed"), changed);
    assert!(!is_alive(changed));
    assert_eq!(pid("tuned"), tuned);
    assert_eq!(
        env.state("tuned").unwrap()["supervision"]["stop_timeout_ms"],
        3000
    );
    assert_eq!(pid("same"), same);
    assert!(env.pidfile_is_locked("new"));
    assert!(!is_alive(gone));
    // Nothing is left to do.
    env.dmgr(&["apply", "--dry-run"])
        .success()
        .stdout_has("0 to start, 0 to restart, 0 to update live, 0 to stop");
}

/// The live stop_timeout is the one a later stop uses.
#[test]
fn live_updated_stop_timeout_takes_effect() {
    let ignore_term = "command = [\"sh\", \"-c\", \"trap '' TERM; while :; do sleep 0.1; done\"]\nstart_wait = \"100ms\"\n";
    let env = TestEnv::new().daemon("web", &format!("{ignore_term}stop_timeout = \"30s\"\n"));
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    env.write("web", &format!("{ignore_term}stop_timeout = \"300ms\"\n"));
    env.dmgr(&["apply"])
        .success()
        .stdout_has("web: updated live");
    assert_eq!(env.pid("web"), Some(pid));
    let started = Instant::now();
    env.dmgr(&["stop", "web"]).success();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the old 30 s stop_timeout was used"
    );
}

/// A broken file is reported by apply and its running daemon left alone.
#[test]
fn apply_leaves_the_daemon_of_a_broken_file_alone() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1000\"\nstart_wait = \"50ms\"\n");
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    env.write("web", "command = \n");
    env.dmgr(&["apply"]).code(1).stderr_has("web.toml:1:");
    assert!(is_alive(pid));
    assert_eq!(env.pid("web"), Some(pid));
}

/// `reload` sends reload_signal, and the daemon sees it.
#[test]
fn reload_is_seen_by_the_daemon() {
    let env = TestEnv::new();
    let seen = env.root().join("reloaded");
    env.write(
        "web",
        &format!(
            "command = [\"sh\", \"-c\", \"trap 'echo usr1 >> {0}' USR1; while :; do sleep 0.05; done\"]\nreload_signal = \"USR1\"\nstart_wait = \"200ms\"\n",
            seen.display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    env.dmgr(&["reload", "web"])
        .success()
        .stdout_has("sent USR1");
    wait_until("the daemon saw USR1", Duration::from_secs(5), || {
        std::fs::read_to_string(&seen).is_ok_and(|s| s.contains("usr1"))
    });
}

/// `kill -s` signals the daemon, not the keeper, and is refused when it is not running.
#[test]
fn kill_signals_the_daemon_and_refuses_when_stopped() {
    let env = TestEnv::new().daemon(
        "web",
        "command = \"sleep 1000\"\nrestart = \"no\"\nstart_wait = \"50ms\"\n",
    );
    env.dmgr(&["kill", "-s", "TERM", "web"])
        .code(1)
        .stderr_has("not running");
    env.dmgr(&["start", "web"]).success();
    let (pid, keeper) = (env.pid("web").unwrap(), env.keeper_pid("web").unwrap());
    env.dmgr(&["kill", "-s", "9", "web"]).success();
    wait_until("the daemon died", Duration::from_secs(5), || !is_alive(pid));
    wait_until("the keeper recorded it", Duration::from_secs(5), || {
        env.entry("web")["status"] == "failed"
    });
    assert_eq!(env.entry("web")["last_exit"]["signal"], "KILL");
    assert!(!is_alive(keeper) || env.entry("web")["status"] == "failed");
    env.dmgr(&["kill", "-s", "NOSUCH", "web"]).code(2);
}

/// type = "forking": the process a self-daemonizing command leaves behind is adopted,
/// supervised, restarted and stopped like any other.
#[test]
fn forking_daemon_is_adopted_and_stopped() {
    let mark = marker("forking");
    let env = TestEnv::new().daemon(
        "web",
        &format!("command = [\"sh\", \"-c\", \"setsid sh -c 'sleep 1000; true' {mark} & exit 0\"]\ntype = \"forking\"\nstart_wait = \"300ms\"\n"),
    );
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    assert_eq!(
        processes_with(&mark),
        vec![pid],
        "the adopted process is the daemon"
    );
    let keeper = env.keeper_pid("web").unwrap();
    assert_eq!(
        stat(pid).unwrap().ppid,
        keeper,
        "the keeper, a subreaper, is its parent"
    );
    assert_eq!(env.entry("web")["status"], "running");
    env.dmgr(&["stop", "web"]).success();
    assert!(processes_with(&mark).is_empty());
}

/// The daemon gets env, clear_env and umask, and, as root, user and group with the
/// user's supplementary groups.
#[test]
fn daemon_gets_env_umask_and_credentials() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sleep\", \"1000\"]\nclear_env = true\nenv = { GREETING = \"hello world\", PATH = \"/usr/bin:/bin\" }\numask = \"027\"\nstart_wait = \"50ms\"\n",
    );
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mut vars: Vec<String> = environ
        .split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    vars.sort();
    assert_eq!(vars, ["GREETING=hello world", "PATH=/usr/bin:/bin"]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("Umask:\t0027"), "{status}");

    if !nix::unistd::geteuid().is_root() {
        eprintln!("note: not root; user/group drop not tested");
        return;
    }
    env.write(
        "nobody",
        "command = [\"sleep\", \"1000\"]\nuser = \"nobody\"\nstart_wait = \"50ms\"\n",
    );
    env.dmgr(&["start", "nobody"]).success();
    let pid = env.pid("nobody").unwrap();
    let user = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_string()
    };
    let uid = user.uid.as_raw();
    assert!(
        field("Uid:")
            .split_whitespace()
            .skip(1)
            .all(|u| u == uid.to_string()),
        "{}",
        field("Uid:")
    );
    assert!(
        field("Gid:")
            .split_whitespace()
            .skip(1)
            .all(|g| g == user.gid.as_raw().to_string()),
        "{}",
        field("Gid:")
    );
    assert!(
        !field("Groups:")
            .split_whitespace()
            .skip(1)
            .any(|g| g == "0"),
        "root's group kept: {}",
        field("Groups:")
    );
    let environ = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap())
        .into_owned();
    assert!(environ.contains("USER=nobody"));

    // With a group other than the user's primary one, the groups are as
    // initgroups(user, gid) sets them: the user's member groups in /etc/group plus
    // that gid, and not the user's primary group (nogroup for nobody).
    env.write(
        "grouped",
        "command = [\"sleep\", \"1000\"]\nuser = \"nobody\"\ngroup = \"daemon\"\nstart_wait = \"50ms\"\n",
    );
    env.dmgr(&["start", "grouped"]).success();
    let pid = env.pid("grouped").unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let daemon_gid = nix::unistd::Group::from_name("daemon")
        .unwrap()
        .expect("a group named daemon")
        .gid
        .as_raw();
    let mut expected: Vec<u32> = std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let members = fields.get(3)?;
            members
                .split(',')
                .any(|m| m == "nobody")
                .then(|| fields[2].parse().ok())?
        })
        .chain([daemon_gid])
        .collect();
    expected.sort_unstable();
    expected.dedup();
    let mut groups: Vec<u32> = status
        .lines()
        .find(|l| l.starts_with("Groups:"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|g| g.parse().unwrap())
        .collect();
    groups.sort_unstable();
    assert_eq!(groups, expected, "{status}");
    assert!(
        status.lines().any(|l| l.starts_with("Gid:")
            && l.split_whitespace()
                .skip(1)
                .all(|g| g == daemon_gid.to_string())),
        "{status}"
    );

    env.write(
        "ghost",
        "command = [\"sleep\", \"1000\"]\nuser = \"no-such-user-xyz\"\n",
    );
    env.dmgr(&["start", "ghost"])
        .code(1)
        .stderr_has("unknown user no-such-user-xyz");
}

/// A variable that is not UTF-8 in the caller's environment is passed on as it is,
/// rather than making the keeper fail.
#[test]
fn non_utf8_environment_is_passed_on() {
    use std::os::unix::ffi::OsStrExt;
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sleep\", \"1000\"]\nstart_wait = \"50ms\"\n",
    );
    let out = env
        .command(&["start", "web"])
        .env(
            std::ffi::OsStr::from_bytes(b"DMGR_ODD"),
            std::ffi::OsStr::from_bytes(b"\xff\xfe"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = env.pid("web").unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(environ
        .split(|&b| b == 0)
        .any(|v| v == b"DMGR_ODD=\xff\xfe"));
}

/// `apply` leaves a daemon that `dmgr stop` stopped alone and says so, starts a new one
/// and one that died unasked, and restarts a changed one; `start` still starts the
/// stopped one.
#[test]
fn apply_leaves_a_daemon_stopped_by_request_stopped() {
    let base = "start_wait = \"50ms\"\n";
    let env = TestEnv::new()
        .daemon("held", &format!("command = [\"sleep\", \"1000\"]\n{base}"))
        .daemon(
            "changed",
            &format!("command = [\"sleep\", \"1000\"]\n{base}"),
        )
        .daemon(
            "crashed",
            &format!("command = [\"sleep\", \"1000\"]\nrestart = \"no\"\n{base}"),
        );
    env.dmgr(&["start", "--all"]).success();
    let changed = env.pid("changed").unwrap();
    env.dmgr(&["stop", "held"]).success();
    let crashed = env.pid("crashed").unwrap();
    crate::support::sigkill(crashed).unwrap();
    wait_until(
        "crashed is recorded as failed",
        Duration::from_secs(5),
        || env.entry("crashed")["status"] == "failed",
    );
    env.write(
        "changed",
        &format!("command = [\"sleep\", \"1001\"]\n{base}"),
    );
    env.write("new", &format!("command = [\"sleep\", \"1000\"]\n{base}"));

    let plan = env.dmgr(&["apply", "--dry-run"]).success().stdout();
    for line in [
        "held: leave stopped (stopped with `dmgr stop`; `dmgr start held` starts it)",
        "changed: restart (changed: command)",
        "crashed: start (down: it was killed by SIGKILL)",
        "new: start (new)",
        "2 to start, 1 to restart, 0 to update live, 0 to stop, 1 left stopped",
    ] {
        assert!(plan.contains(line), "plan lacks {line:?}:\n{plan}");
    }
    env.dmgr(&["apply"])
        .success()
        .stdout_has("held: left stopped");
    assert_eq!(env.entry("held")["status"], "stopped");
    assert_eq!(env.entry("held")["reason"], "stopped-by-request");
    assert!(env.pid("changed").is_some_and(|p| p != changed));
    assert!(env.pidfile_is_locked("crashed") && env.pidfile_is_locked("new"));
    env.dmgr(&["start", "held"])
        .success()
        .stdout_has("held: started");
}

/// `reload_command` and `stop_command` run with the daemon's environment, working
/// directory and `MAINPID`; a stop_command that ends the daemon ends the stop.
#[test]
fn reload_and_stop_commands_run_in_the_daemon_environment() {
    let env = TestEnv::new();
    let seen = env.root().join("seen");
    let record = format!("echo $0 $MAINPID $GREETING $(pwd) >> {}", seen.display());
    env.write(
        "web",
        &format!(
            "command = [\"sleep\", \"1000\"]\nworking_dir = \"/tmp\"\nenv = {{ GREETING = \"hi\" }}\nstart_wait = \"50ms\"\nstop_timeout = \"30s\"\n\
             reload_command = [\"sh\", \"-c\", \"{record}\", \"reload\"]\n\
             stop_command = [\"sh\", \"-c\", \"{record}; kill $MAINPID\", \"stop\"]\n"
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    env.dmgr(&["reload", "web"])
        .success()
        .stdout_has(&format!("web: reloaded (pid {pid})"));
    let started = Instant::now();
    env.dmgr(&["stop", "web"]).success();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stop waited for stop_timeout"
    );
    assert!(!is_alive(pid));
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        format!("reload {pid} hi /tmp\nstop {pid} hi /tmp\n")
    );
    assert!(env.events("web").contains("stop_command running"));
}

/// A stop_command that hangs is killed at stop_timeout, and the usual signals stop the
/// daemon; a failing reload_command fails the reload.
#[test]
fn hanging_stop_command_is_killed_and_the_signals_follow() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sleep\", \"1000\"]\nstart_wait = \"50ms\"\nstop_timeout = \"500ms\"\n\
         stop_command = [\"sleep\", \"1000\"]\nreload_command = [\"sh\", \"-c\", \"echo nope; exit 3\"]\n",
    );
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    env.dmgr(&["reload", "web"])
        .code(1)
        .stderr_has("reload failed: reload_command exited 3")
        .stderr_has("its last output lines:\n  | nope");
    let started = Instant::now();
    env.dmgr(&["stop", "web"]).success();
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(!is_alive(pid));
    let events = env.events("web");
    assert!(
        events.contains("killed") && events.contains("stop_command still running after 500ms"),
        "{events}"
    );
}

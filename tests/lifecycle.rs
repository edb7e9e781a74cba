//! Start, stop, restart, list and status against real processes: SPEC promises 1 to 5
//! and 8, each checked at the source (the pidfile's lock, `/proc`).

use std::time::{Duration, Instant};

use crate::support::{
    copies_of, group_members, is_alive, marker, processes_with, sigkill, sleeper, sleeper_env,
    stat, wait_until, ProcId, TestEnv,
};

/// Promise 1: `start` prints the PID once the command runs; the pidfile names it and is
/// locked, and the process is the command.
#[test]
fn start_returns_after_exec_and_prints_pid() {
    let (env, _) = sleeper_env("web");
    let run = env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").expect("pidfile holds a pid");
    assert_eq!(run.stdout().trim(), format!("web: started (pid {pid})"));
    assert!(is_alive(pid));
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, "sleep\u{0}1000\u{0}");
    assert!(
        env.pidfile_is_locked("web"),
        "the keeper must hold the pidfile lock"
    );
    let entry = env.entry("web");
    assert_eq!(entry["status"], "running");
    assert_eq!(entry["pid"], pid);
}

/// Each keeper of one `start --all` (all forked by one launcher, issue 15) names its
/// daemon in ps(1), is detached by a double fork (no session leader, not the
/// launcher's child, not in the caller's session) and keeps no other daemon's pipe.
#[test]
fn every_keeper_of_one_start_shows_its_name_and_is_detached() {
    let names = ["alpha", "beta", "gamma"];
    let mut env = TestEnv::new();
    for name in names {
        env = env.daemon(name, "command = \"sleep 1000\"\nstart_wait = \"0s\"\n");
    }
    env.dmgr(&["start", "--all"]).success();
    let own_session = stat(std::process::id() as i32).unwrap().session;
    let mut fds = Vec::new();
    for name in names {
        let keeper = env.keeper_pid(name).expect("a keeper");
        let cmdline = std::fs::read(format!("/proc/{keeper}/cmdline")).unwrap();
        let words: Vec<String> = cmdline
            .split(|&b| b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        let config = env.config_dir().display().to_string();
        let tail: Vec<&str> = words.iter().skip(1).take(7).map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "--config-dir",
                &config,
                "--run-dir",
                &env.run_dir().display().to_string(),
                "__keeper",
                "--name",
                name
            ],
            "ps shows the keeper of {name} as {words:?}"
        );
        // Nothing of the launcher's longer argv (every other keeper's name) is left
        // after the title: argv0, then `--config-dir C --run-dir R __keeper --name N
        // --log-dir L --notify-fd F`.
        assert_eq!(
            words.len(),
            12,
            "ps shows the keeper of {name} as {words:?}"
        );
        let keeper_stat = stat(keeper).unwrap();
        assert_ne!(
            keeper_stat.session, keeper,
            "{name}'s keeper is no session leader"
        );
        assert_ne!(
            keeper_stat.session, own_session,
            "{name}'s keeper left the caller's session"
        );
        fds.push(
            std::fs::read_dir(format!("/proc/{keeper}/fd"))
                .unwrap()
                .count(),
        );
    }
    // A keeper that kept the other keepers' notify pipes would hold more descriptors
    // than the ones forked after it.
    assert!(
        fds.windows(2).all(|w| w[0] == w[1]),
        "the keepers hold {fds:?} descriptors"
    );
    env.dmgr(&["stop", "--all"]).success();
}

/// Promise 1: an exec failure is reported precisely and leaves nothing behind.
#[test]
fn start_of_missing_program_fails_cleanly_and_leaves_nothing() {
    let env = TestEnv::new().daemon("web", "command = \"/nonexistent/server --port 1\"\n");
    env.dmgr(&["start", "web"])
        .code(1)
        .stderr_has("web: cannot start: /nonexistent/server: No such file or directory");
    assert!(!env.pidfile("web").exists(), "no pidfile may remain");
    let keeper = env.keeper_pid("web").expect("a failure record remains");
    wait_until("the keeper is gone", Duration::from_secs(5), || {
        !is_alive(keeper)
    });
    assert_eq!(env.entry("web")["status"], "failed");
}

/// Promise 1: a working_dir that does not exist fails the start with its name.
#[test]
fn start_with_bad_working_dir_fails_cleanly() {
    let env = TestEnv::new().daemon(
        "web",
        "command = \"sleep 1000\"\nworking_dir = \"/nonexistent/dir\"\n",
    );
    env.dmgr(&["start", "web"])
        .code(1)
        .stderr_has("/nonexistent/dir: No such file or directory");
    assert!(!env.pidfile("web").exists());
    let keeper = env.keeper_pid("web").expect("a failure record remains");
    wait_until("the keeper is gone", Duration::from_secs(5), || {
        !is_alive(keeper)
    });
}

/// Promise 1: a command that dies within start_wait fails the start, and the error
/// shows what it wrote last.
#[test]
fn start_of_command_that_dies_within_start_wait_fails_with_last_log_lines() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sh\", \"-c\", \"echo boom-123; exit 3\"]\nstart_wait = \"300ms\"\n",
    );
    env.dmgr(&["start", "web"])
        .code(1)
        .stderr_has("exit 3")
        .stderr_has("boom-123");
    assert!(!env.pidfile("web").exists());
    let entry = env.entry("web");
    assert_eq!(entry["status"], "failed");
    assert_eq!(entry["last_exit"]["code"], 3);
}

/// Promise 2: however many starts run at once, one copy runs and all succeed.
#[test]
fn concurrent_starts_run_exactly_one_copy() {
    let mark = marker("conc");
    let env = TestEnv::new().daemon("web", &sleeper(&mark));
    let children: Vec<_> = (0..8)
        .map(|_| env.command(&["start", "web"]).spawn().unwrap())
        .collect();
    for child in children {
        let output =
            crate::support::Run::try_wait(child, Duration::from_secs(60)).expect("start finishes");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    env.dmgr(&["list"]).success();
    assert_eq!(copies_of(&mark).len(), 1, "exactly one copy");
}

/// Promise 2: list and status neither block nor break concurrent starts and stops.
#[test]
fn list_and_status_never_block_a_concurrent_start_or_stop() {
    let (env, _) = sleeper_env("web");
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let output = env.command(&["list", "--json"]).output().unwrap();
                assert!(output.status.success());
                assert!(started.elapsed() < Duration::from_secs(5), "list waited");
                let _ = env.command(&["status", "web"]).output().unwrap();
            }
        });
        for _ in 0..5 {
            env.dmgr(&["start", "web"]).success();
            env.dmgr(&["stop", "web"]).success();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

/// Promise 3: a stale pidfile whose PID now belongs to an unrelated process is
/// reported as stale and cleaned, and that process is never signalled.
#[test]
fn stale_pidfile_with_reused_pid_is_never_signalled() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1000\"\nstart_wait = \"100ms\"\n");
    let mut bystander = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let victim = bystander.id() as i32;
    env.track(victim);
    std::fs::create_dir_all(env.run_dir()).unwrap();
    std::fs::write(env.pidfile("web"), format!("{victim}\n")).unwrap();

    let entry = env.entry("web");
    assert_eq!(entry["status"], "stopped");
    assert!(entry["pid"].is_null());
    env.dmgr(&["status", "web"]).code(1).stdout_has("stale");
    env.dmgr(&["stop", "web"])
        .success()
        .stdout_has("stale pidfile");
    assert!(is_alive(victim), "the unrelated process was signalled");
    assert!(!env.pidfile("web").exists(), "the stale pidfile is cleaned");

    // A state record naming it with another start time is not trusted either.
    env.dmgr(&["start", "web"]).success();
    let mut state = env.state("web").unwrap();
    env.dmgr(&["stop", "web"]).success();
    state["daemon"]["pid"] = victim.into();
    state["keeper"]["pid"] = victim.into();
    env.write_state("web", &state);
    assert_eq!(
        env.entry("web")["status"],
        "failed",
        "the forged record was not read"
    );
    std::fs::write(env.pidfile("web"), format!("{victim}\n")).unwrap();
    env.dmgr(&["stop", "web"]).success();
    env.dmgr(&["start", "web"]).success();
    assert_ne!(env.pid("web"), Some(victim));
    env.dmgr(&["stop", "web"]).success();
    assert!(is_alive(victim), "the unrelated process was signalled");
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

/// Promise 3 after PID reuse: a record naming a dead keeper and a dead daemon whose
/// PID now leads an unrelated session (every dmgr daemon leads one, so the number comes
/// round on a busy host) makes neither `stop` nor `start` signal that session.
#[test]
fn reused_session_id_of_a_dead_daemon_is_never_signalled() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1000\"\nstart_wait = \"100ms\"\n");
    env.dmgr(&["start", "web"]).success();
    let mut state = env.state("web").unwrap();
    env.dmgr(&["stop", "web"]).success();
    // An unrelated session leader, with a child in its group and session.
    let mut bystander = std::process::Command::new("setsid")
        .args(["sh", "-c", "sleep 1000 & wait"])
        .spawn()
        .unwrap();
    let victim = bystander.id() as i32;
    env.track(victim);
    wait_until("the bystander's child runs", Duration::from_secs(5), || {
        group_members(victim).len() == 2
    });
    let start = state["daemon"]["start"].as_u64().unwrap();
    state["daemon"]["pid"] = victim.into();
    state["daemon"]["start"] = (start.saturating_sub(1)).into();
    state["status"] = "running".into();
    env.write_state("web", &state);
    assert_eq!(
        env.entry("web")["status"],
        "failed",
        "the forged record was not read"
    );
    env.dmgr(&["stop", "web"]).success();
    env.dmgr(&["start", "web"]).success();
    env.dmgr(&["stop", "web"]).success();
    assert_eq!(
        group_members(victim).len(),
        2,
        "the unrelated session was signalled"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    for pid in group_members(victim) {
        let _ = sigkill(pid);
    }
}

/// Promise 4: stop returns when every process of the group is gone, and removes the
/// pidfile.
#[test]
fn stop_kills_the_whole_process_group_and_removes_pidfile() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sh\", \"-c\", \"sleep 1000 & sleep 1000 & wait\"]\nstart_wait = \"200ms\"\n",
    );
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    wait_until("both children run", Duration::from_secs(5), || {
        group_members(pid).len() == 3
    });
    env.dmgr(&["stop", "web"])
        .success()
        .stdout_has("web: stopped");
    assert!(
        group_members(pid).is_empty(),
        "group members survived: {:?}",
        group_members(pid)
    );
    assert!(!env.pidfile("web").exists());
    assert!(!env.pidfile_is_locked("web"));
}

/// Promise 4: a daemon that ignores its stop signal is killed after stop_timeout.
#[test]
fn stop_escalates_to_sigkill_after_stop_timeout() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sh\", \"-c\", \"trap '' TERM; sleep 1000 & while :; do sleep 1; done\"]\nstop_timeout = \"500ms\"\nstart_wait = \"200ms\"\n",
    );
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    let started = Instant::now();
    env.dmgr(&["stop", "web"]).success();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "stopped before stop_timeout"
    );
    assert!(group_members(pid).is_empty());
    assert!(env.events("web").contains("killed"));
}

/// Promise 4: stop --all stops daemons in parallel: each gets its stop signal before
/// any of them is killed at its `stop_timeout`. (Stopped one after the other, the
/// second would get its signal only after the first was killed.) An order of events,
/// not a bound on the time, so that a slow machine cannot fail it.
#[test]
fn stop_all_runs_in_parallel() {
    let stubborn = "command = [\"sh\", \"-c\", \"trap '' TERM; while :; do sleep 1; done\"]\nstop_timeout = \"1s\"\nstart_wait = \"100ms\"\n";
    let env = TestEnv::new()
        .daemon("a", stubborn)
        .daemon("b", stubborn)
        .daemon("c", stubborn);
    env.dmgr(&["start", "--all"]).success();
    env.dmgr(&["stop", "--all"]).success();
    let (mut stopping, mut killed) = (Vec::new(), Vec::new());
    for name in ["a", "b", "c"] {
        assert!(!env.pidfile(name).exists());
        let history = env.dmgr(&["events", "--json", "-n", "100", name]).success();
        for line in history.stdout().lines() {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            let time = event["time"].as_str().unwrap().to_string();
            match event["event"].as_str() {
                Some("stopping") => stopping.push((time, name)),
                Some("killed") => killed.push((time, name)),
                _ => {}
            }
        }
    }
    assert_eq!(stopping.len(), 3, "{stopping:?}");
    assert_eq!(killed.len(), 3, "{killed:?}");
    // The same RFC 3339 form in UTC: the strings sort as the times do.
    let last_signalled = stopping.iter().max().unwrap();
    let first_killed = killed.iter().min().unwrap();
    assert!(
        last_signalled.0 < first_killed.0,
        "{} got its stop signal only after {} was killed: {stopping:?} {killed:?}",
        last_signalled.1,
        first_killed.1
    );
}

/// Promise 4 and exit codes: start and stop are idempotent.
#[test]
fn start_and_stop_are_idempotent() {
    let (env, _) = sleeper_env("web");
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    env.dmgr(&["start", "web"])
        .success()
        .stdout_has(&format!("web: already running (pid {pid})"));
    env.dmgr(&["stop", "web"]).success();
    env.dmgr(&["stop", "web"])
        .success()
        .stdout_has("web: not running");
}

/// Promise 5: a daemon killed from outside is restarted by policy, and list shows the
/// restart count and the last exit.
#[test]
fn daemon_killed_from_outside_is_restarted() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1000\"\nrestart = \"always\"\nrestart_delay = \"100ms\"\nstart_wait = \"50ms\"\n");
    env.dmgr(&["start", "web"]).success();
    let first = env.pid("web").unwrap();
    sigkill(first).unwrap();
    wait_until("a new copy runs", Duration::from_secs(10), || {
        env.entry("web")["pid"]
            .as_i64()
            .is_some_and(|p| p as i32 != first)
    });
    let entry = env.entry("web");
    assert_eq!(entry["restarts"], 1);
    assert_eq!(entry["last_exit"]["signal"], "KILL");
    assert!(env.events("web").contains("signal KILL"));
}

/// Promise 5: with its keeper SIGKILLed, list still tells the truth, start does not
/// start a second copy, and stop stops the daemon.
#[test]
fn killed_keeper_still_lets_list_stop_and_start_tell_the_truth() {
    let mark = marker("orphaned-keeper");
    let env = TestEnv::new().daemon("web", &sleeper(&mark));
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    let keeper = env.keeper_pid("web").unwrap();
    sigkill(keeper).unwrap();
    wait_until("the keeper is dead", Duration::from_secs(5), || {
        !is_alive(keeper)
    });

    let entry = env.entry("web");
    assert_eq!(entry["status"], "running");
    assert_eq!(entry["pid"], pid);
    assert_eq!(entry["supervised"], false);
    env.dmgr(&["start", "web"])
        .success()
        .stdout_has(&format!("already running (pid {pid})"));
    assert_eq!(processes_with(&mark), vec![pid], "start made a second copy");
    env.dmgr(&["stop", "web"])
        .success()
        .stdout_has("web: stopped");
    assert!(processes_with(&mark).is_empty());
    assert_eq!(env.entry("web")["status"], "stopped");
}

/// Promise 8: the daemon starts clean: fds 0-2 only, default signal dispositions, an
/// empty mask, its own session and process group, no controlling terminal. The
/// reports come from the programs the keeper execs directly, with no shell between.
#[test]
fn daemon_starts_with_clean_fds_signals_and_session() {
    let once = "restart = \"no\"\nstart_wait = \"0s\"\n";
    let env = TestEnv::new()
        .daemon(
            "fds",
            &format!("command = [\"ls\", \"/proc/self/fd\"]\n{once}"),
        )
        .daemon(
            "sigs",
            &format!(
                "command = [\"grep\", \"-E\", \"^Sig(Blk|Ign)\", \"/proc/self/status\"]\n{once}"
            ),
        )
        .daemon(
            "web",
            "command = [\"sleep\", \"1000\"]\nstart_wait = \"100ms\"\n",
        );
    env.dmgr(&["start", "fds", "sigs", "web"]).success();
    let output =
        |name: &str| -> Vec<String> { env.log(name).lines().map(str::to_string).collect() };
    wait_until(
        "ls and grep wrote their reports",
        Duration::from_secs(10),
        || env.entry("fds")["status"] == "stopped" && env.entry("sigs")["status"] == "stopped",
    );
    // `ls` itself opens the directory it lists, as fd 3.
    assert_eq!(output("fds"), ["0", "1", "2", "3"], "inherited fds");
    let sigs = output("sigs");
    assert_eq!(sigs.len(), 2, "{sigs:?}");
    for line in sigs {
        assert!(
            line.ends_with("0000000000000000"),
            "signal state not clean: {line}"
        );
    }
    let pid = env.pid("web").unwrap();
    let s = stat(pid).unwrap();
    assert_eq!((s.session, s.pgrp), (pid, pid), "own session and group");
    assert_eq!(s.tty_nr, 0, "no controlling terminal");
    // And the keeper holds nothing of the caller's: only its own files.
    let keeper = env.keeper_pid("web").unwrap();
    for fd in std::fs::read_dir(format!("/proc/{keeper}/fd"))
        .unwrap()
        .flatten()
    {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        let target = target.to_string_lossy();
        assert!(
            target.starts_with(env.root().to_str().unwrap())
                || target == "/dev/null"
                || target.starts_with("pipe:")
                || target.starts_with("anon_inode:"),
            "keeper fd {:?} -> {target}",
            fd.file_name()
        );
    }
}

/// Promise 8: `out=$(dmgr start web)` returns as soon as start does: nobody keeps the
/// caller's stdout or stderr open.
#[test]
fn captured_output_ends_when_start_returns() {
    let (env, _) = sleeper_env("web");
    let child = env.command(&["start", "web"]).spawn().unwrap();
    // try_wait reads both pipes to EOF; EOF only comes once no process holds them.
    let output = crate::support::Run::try_wait(child, Duration::from_secs(10))
        .expect("start's output pipes were held open");
    assert!(output.status.success());
    assert!(env.pidfile_is_locked("web"));
}

/// `run` stays in the foreground and exits with the command's status.
#[test]
fn run_foreground_exits_with_command_status() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sh\", \"-c\", \"echo hi-from-run; exit 7\"]\n",
    );
    env.dmgr(&["run", "web"]).code(7).stdout_has("hi-from-run");
    assert!(!env.pidfile("web").exists());
}

/// status follows LSB: 0 running, 1 dead with a failure record, 3 not running, 4 unknown.
#[test]
fn status_follows_lsb_exit_codes() {
    let env = TestEnv::new()
        .daemon("web", "command = \"sleep 1000\"\nstart_wait = \"50ms\"\n")
        .daemon("crash", "command = [\"sh\", \"-c\", \"sleep 0.3; exit 4\"]\nrestart = \"no\"\nstart_wait = \"50ms\"\n");
    env.dmgr(&["status", "web"]).code(3);
    env.dmgr(&["start", "web", "crash"]).success();
    env.dmgr(&["status", "web"]).code(0).stdout_has("running");
    wait_until("crash failed", Duration::from_secs(10), || {
        env.entry("crash")["status"] == "failed"
    });
    env.dmgr(&["status", "crash"]).code(1).stdout_has("exit 4");
    env.dmgr(&["status", "nosuch"]).code(4);
    let json: serde_json::Value =
        serde_json::from_str(&env.dmgr(&["status", "web", "--json"]).success().stdout()).unwrap();
    assert_eq!(json[0]["status"], "running");
    assert!(json[0]["pidfile"].as_str().unwrap().ends_with("web.pid"));
}

/// Usage errors exit 2, and an unknown name suggests the nearest one.
#[test]
fn unknown_name_exits_2_and_suggests() {
    let (env, _) = sleeper_env("web");
    env.dmgr(&["start", "wbe"])
        .code(2)
        .stderr_has("wbe: no such daemon")
        .stderr_has("`web`");
    env.dmgr(&["stop"]).code(2);
}

/// restart gives a new process and uses the file as it is now.
#[test]
fn restart_gives_a_new_pid_and_uses_the_current_file() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sleep\", \"1000\"]\nstart_wait = \"50ms\"\n",
    );
    env.dmgr(&["start", "web"]).success();
    let first = env.pid("web").unwrap();
    env.write(
        "web",
        "command = [\"sleep\", \"1001\"]\nstart_wait = \"50ms\"\n",
    );
    env.dmgr(&["restart", "web"])
        .success()
        .stdout_has("web: restarted");
    let second = env.pid("web").unwrap();
    assert_ne!(first, second);
    assert!(!is_alive(first));
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{second}/cmdline")).unwrap(),
        "sleep\u{0}1001\u{0}"
    );
}
/// Promise 10: an idle keeper sleeps in poll(2) with no timeout, and is not woken.
#[test]
fn idle_keeper_blocks_without_a_timeout_and_uses_no_cpu() {
    let (env, _) = sleeper_env("web");
    env.dmgr(&["start", "web"]).success();
    let keeper = env.keeper_pid("web").unwrap();
    let read =
        |file: &str| std::fs::read_to_string(format!("/proc/{keeper}/{file}")).unwrap_or_default();
    wait_until("the keeper is asleep", Duration::from_secs(5), || {
        stat(keeper).is_some_and(|s| s.state == 'S')
    });
    if cfg!(target_arch = "x86_64") {
        let syscall = read("syscall");
        let fields: Vec<&str> = syscall.split_whitespace().collect();
        // poll(fds, nfds, -1), or ppoll with a null timeout pointer.
        let idle = (fields[0] == "7" && fields[3] == "0xffffffff")
            || (fields[0] == "271" && fields[3] == "0x0");
        assert!(idle, "the keeper waits with a timeout: {syscall}");
    }
    let switches = || {
        read("status")
            .lines()
            .find(|l| l.starts_with("voluntary_ctxt_switches"))
            .map(str::to_string)
    };
    let ticks = || {
        let s = read("stat");
        let f: Vec<String> = s[s.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .map(str::to_string)
            .collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let (before, cpu) = (switches(), ticks());
    // A measurement window, not a synchronisation: a polling keeper would wake in it.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(switches(), before, "the keeper woke up while idle");
    assert_eq!(ticks(), cpu, "the keeper used CPU while idle");
}
/// `run` of a running daemon refuses, naming it and what to do instead; while `run`
/// runs, it holds the lock and record a keeper would, so `start` finds the daemon
/// running and starts no second copy, `list` shows it, and `stop` ends it.
#[test]
fn run_refuses_a_running_daemon_and_start_during_run_starts_no_second_copy() {
    let mark = marker("run");
    let env = TestEnv::new().daemon("web", &sleeper(&mark));
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    env.dmgr(&["run", "web"]).code(1).stderr_has(&format!(
        "web is running (pid {pid}); stop it first or use `dmgr logs -f web`"
    ));
    assert_eq!(processes_with(&mark), vec![pid]);
    env.dmgr(&["stop", "web"]).success();

    let mut run = env.command(&["run", "web"]);
    run.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let run = crate::support::KillOnDrop(run.spawn().unwrap());
    wait_until("run shows in list", Duration::from_secs(10), || {
        env.entry("web")["status"] == "running"
    });
    let pid = processes_with(&mark)[0];
    env.track(pid);
    assert_eq!(env.entry("web")["pid"].as_i64(), Some(pid as i64));
    assert!(env.pidfile_is_locked("web"), "run holds the pidfile lock");
    env.dmgr(&["start", "web"])
        .success()
        .stdout_has(&format!("web: already running (pid {pid})"));
    assert_eq!(
        processes_with(&mark),
        vec![pid],
        "start started a second copy"
    );
    env.dmgr(&["run", "web"])
        .code(1)
        .stderr_has("web is running");
    env.dmgr(&["stop", "web"])
        .success()
        .stdout_has("web: stopped");
    assert!(processes_with(&mark).is_empty());
    let mut run = run;
    let status = run.0.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(128 + 15),
        "run exits as its command did (TERM)"
    );
    assert!(!env.pidfile("web").exists());
    assert_eq!(env.entry("web")["reason"], "stopped-by-request");
}

/// `list` and `status` say why a daemon is not running: `failed (keeper lost)` when the
/// keeper and the daemon were killed; `stopped (host restarted)` for a record of an
/// earlier boot, whose process identities are not trusted even if they match live
/// processes now.
#[test]
fn list_says_keeper_lost_and_host_restarted() {
    let mark = marker("reasons");
    let env = TestEnv::new().daemon("web", &sleeper(&mark));
    env.dmgr(&["start", "web"]).success();
    let (keeper, pid) = (env.keeper_pid("web").unwrap(), env.pid("web").unwrap());
    sigkill(keeper).unwrap();
    wait_until("the keeper is dead", Duration::from_secs(5), || {
        !is_alive(keeper)
    });
    assert_eq!(env.entry("web")["reason"], "keeper-lost");
    assert_eq!(env.entry("web")["supervised"], false);
    sigkill(pid).unwrap();
    wait_until("the daemon is dead", Duration::from_secs(5), || {
        !is_alive(pid)
    });
    let entry = env.entry("web");
    assert_eq!(
        (entry["status"].as_str(), entry["reason"].as_str()),
        (Some("failed"), Some("keeper-lost"))
    );
    // The shell's `sleep` outlived both: `list` says so (issue 23), `status` names it.
    let left: Vec<i32> = serde_json::from_value(entry["left_behind"].clone()).unwrap();
    assert_eq!(left.len(), 1, "{entry}");
    assert!(is_alive(left[0]), "{entry}");
    env.dmgr(&["list"])
        .success()
        .stdout_has("failed (keeper lost, 1 process left)");
    env.dmgr(&["status", "web"])
        .code(1)
        .stdout_has("reason:")
        .stdout_has("keeper vanished")
        .stdout_has(&format!("left:       pid {}, still running", left[0]));
    sigkill(left[0]).unwrap();
    wait_until("the leftover is dead", Duration::from_secs(5), || {
        !is_alive(left[0])
    });
    env.dmgr(&["list"])
        .success()
        .stdout_has("failed (keeper lost) ");

    // The same record from another boot, naming a live process (in a session of its
    // own, which the fixture's cleanup kills): it names nothing now.
    let bystander = crate::support::KillOnDrop(
        std::process::Command::new("setsid")
            .args(["sleep", "1000"])
            .spawn()
            .unwrap(),
    );
    let me = ProcId::of(bystander.0.id() as i32).unwrap();
    wait_until("the bystander runs sleep", Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{}/comm", me.pid)).is_ok_and(|c| c.trim() == "sleep")
    });
    let me = ProcId::of(me.pid).unwrap();
    let mut record = env.state("web").unwrap();
    record["boot_id"] = "00000000-0000-0000-0000-000000000000".into();
    for key in ["keeper", "daemon"] {
        record[key] = serde_json::json!({ "pid": me.pid, "start": me.start });
    }
    env.write_state("web", &record);
    let entry = env.entry("web");
    assert_eq!(
        (
            entry["status"].as_str(),
            entry["reason"].as_str(),
            entry["pid"].as_i64()
        ),
        (Some("stopped"), Some("host-restarted"), None)
    );
    env.dmgr(&["list"])
        .success()
        .stdout_has("stopped (host restarted)");
    env.dmgr(&["stop", "web"])
        .success()
        .stdout_has("web: not running");
    assert!(
        me.is_alive(),
        "stop signalled a process of an earlier boot's record"
    );
    // Asked to stop, it is stopped by request from now on, in this boot.
    assert_eq!(env.entry("web")["reason"], "stopped-by-request");
    assert_ne!(env.state("web").unwrap()["keeper"]["pid"], me.pid);
}

/// Gives `name`'s record a definition, as a keeper that records its file's identity
/// would, with a command unlike the file's, so that a listing tells which one it read.
fn record_definition(env: &TestEnv, name: &str, after: &[&str]) {
    let file = env.config_dir().join(format!("{name}.toml"));
    wait_until(
        "the file's identity is not racy",
        Duration::from_secs(5),
        || dmgr::state::FileIdentity::of(&file).is_some_and(|id| id.is_trusted()),
    );
    let identity = dmgr::state::FileIdentity::of(&file).unwrap();
    let mut record = env.state(name).unwrap();
    record["command"] = serde_json::json!(["recorded", name]);
    record["definition"] = serde_json::json!({
        "file": identity,
        "after": after,
        "description": "recorded",
    });
    env.write_state(name, &record);
}

/// Issue 15: `list` may show a running daemon from its keeper's record without reading
/// its file, but only while the file is the one the keeper loaded: an edit, here to
/// the same size right after the listing, shows at once.
#[test]
fn list_shows_an_edited_file_at_once_never_the_recorded_definition() {
    let (env, mark) = sleeper_env("web");
    env.dmgr(&["start", "web"]).success();
    record_definition(&env, "web", &[]);
    let entry = env.entry("web");
    assert_eq!(
        (entry["command"].as_str(), entry["description"].as_str()),
        (Some("recorded web"), Some("recorded")),
        "an unchanged file is listed from its record"
    );
    env.dmgr(&["list"]).success().stdout_has("recorded web");

    let file = env.config_dir().join("web.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("1000", "1001")).unwrap();
    env.dmgr(&["list"]).success().stdout_has("sleep 1001");
    let entry = env.entry("web");
    assert_eq!(
        (
            entry["status"].as_str(),
            entry["command"].as_str(),
            entry["description"].as_str()
        ),
        (Some("running"), Some("sleep 1001"), Some(mark.as_str()))
    );
}

/// Issue 15: the records stand in for the files only while the files agree with each
/// other: once the file that a running daemon's `after` names is removed, `list` shows
/// that daemon invalid, as loading every file does.
#[test]
fn list_from_records_still_checks_after_across_files() {
    let env = TestEnv::new()
        .daemon(
            "db",
            "command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\n",
        )
        .daemon(
            "web",
            "command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\nafter = [\"db\"]\n",
        );
    env.dmgr(&["start", "--all"]).success();
    record_definition(&env, "db", &[]);
    record_definition(&env, "web", &["db"]);
    env.dmgr(&["list"])
        .success()
        .stdout_has("recorded db")
        .stdout_has("recorded web");
    // Gone without `stop`, which would stop `web` first; no orphan is left either.
    let (keeper, pid) = (env.keeper_pid("db").unwrap(), env.pid("db").unwrap());
    sigkill(keeper).unwrap();
    sigkill(pid).unwrap();
    wait_until("db and its keeper are dead", Duration::from_secs(5), || {
        !is_alive(keeper) && !is_alive(pid)
    });
    env.remove("db");
    assert!(env.entry("web")["pid"].as_i64().is_some(), "web still runs");
    let entry = env.entry("web");
    assert_eq!(entry["status"], "invalid");
    assert!(
        entry["error"]
            .as_str()
            .unwrap_or_default()
            .contains("`after` names `db`"),
        "{entry}"
    );
}

/// Promise 4 for `dmgr run`: a stop leaves nothing of the daemon, also a process it
/// forked that would outlive the shell the signal reached (found to leak before).
#[test]
fn stop_of_run_leaves_no_descendant() {
    let seconds = crate::support::unique_seconds(1000);
    let env = TestEnv::new().daemon(
        "web",
        &format!("command = [\"sh\", \"-c\", \"sleep {seconds} & wait\"]\nstop_timeout = \"2s\"\n"),
    );
    let mut run = env.command(&["run", "web"]);
    run.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut run = crate::support::KillOnDrop(run.spawn().unwrap());
    wait_until("the daemon's sleep runs", Duration::from_secs(10), || {
        !processes_with(&seconds).is_empty()
    });
    for pid in processes_with(&seconds) {
        env.track(pid);
    }
    env.dmgr(&["stop", "web"]).success();
    let _ = run.0.wait();
    assert!(
        processes_with(&seconds).is_empty(),
        "the daemon's child outlived its stop"
    );
}

/// Issue 15: a keeper records the identity its file had before it read it, and the
/// description and `after` it read, for `list` to stand in for the file.
#[test]
fn the_keeper_records_its_files_identity() {
    let (env, mark) = sleeper_env("web");
    let file = env.config_dir().join("web.toml");
    wait_until(
        "the file's identity is not racy",
        Duration::from_secs(5),
        || dmgr::state::FileIdentity::of(&file).is_some_and(|id| id.is_trusted()),
    );
    env.dmgr(&["start", "web"]).success();
    let record = env.state("web").unwrap();
    let identity = serde_json::to_value(dmgr::state::FileIdentity::of(&file).unwrap()).unwrap();
    let recorded = &record["definition"];
    for key in ["dev", "ino", "size"] {
        assert_eq!(recorded["file"][key], identity[key], "{key} in {recorded}");
    }
    assert_eq!(recorded["description"], mark.as_str());
    assert_eq!(env.entry("web")["command"], "sleep 1000");
}

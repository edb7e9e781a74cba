//! Issue 22, logs and interruptions: histories in the order things happened, rotation
//! of an empty log, starts interrupted by a keeper's death, and a keeper's death that
//! leaves its daemon running and logging.

use std::time::Duration;

use serde_json::Value;

use crate::support::{
    copies_of, is_alive, marker, processes_with, session_members, sigkill, wait_until, Hold, Run,
    TestEnv,
};

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

/// Finding 8: a keeper killed while `start` waits for `ready`. `start` exits 1, and
/// the `start` that made the keeper stops what it left: the daemon, and the pidfile
/// (promise 1: a failed start leaves neither). The record says the start failed.
#[test]
fn a_keeper_killed_while_start_waits_for_ready_leaves_nothing_behind() {
    let mark = marker("readywait");
    let env = TestEnv::new().daemon(
        "web",
        &format!(
            "command = [\"sh\", \"-c\", \"sleep 1000 & sleep 1000; true\", \"{mark}\"]\n\
             ready = {{ file = \"never\" }}\nready_timeout = \"60s\"\nstart_wait = \"0s\"\n"
        ),
    );
    let start = env.command(&["start", "web"]).spawn().unwrap();
    wait_until(
        "the daemon runs, not yet ready",
        Duration::from_secs(10),
        || {
            env.pid("web")
                .is_some_and(|pid| is_alive(pid) && session_members(&[pid]).len() >= 2)
        },
    );
    let pid = env.pid("web").unwrap();
    let keeper = env.keeper_pid("web").unwrap();
    sigkill(keeper).unwrap();
    let out = Run::try_wait(start, Duration::from_secs(30)).expect("start returns");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("its keeper died before the daemon was up; stopped what it left"),
        "{stderr}"
    );
    assert!(processes_with(&mark).is_empty(), "the daemon runs on");
    assert!(
        session_members(&[pid]).is_empty(),
        "what the daemon started runs on"
    );
    assert!(!env.pidfile("web").exists(), "the pidfile is left behind");
    let entry = env.entry("web");
    assert_eq!(entry["status"], "failed", "{entry}");
}

/// The same for a keeper that hangs (here SIGSTOPped) instead of dying: past
/// `start_wait` + `ready_timeout` and a grace of 10 s, `start` kills it and stops what
/// it left. `ready_timeout` leaves the test time to stop the keeper before the keeper
/// itself gives up on readiness, even on a loaded machine.
#[test]
fn a_keeper_that_hangs_while_start_waits_is_killed_and_its_daemon_stopped() {
    let mark = marker("readyhang");
    let env = TestEnv::new().daemon(
        "web",
        &format!(
            "command = [\"sh\", \"-c\", \"sleep 1000; true\", \"{mark}\"]\n\
             ready = {{ file = \"never\" }}\nready_timeout = \"5s\"\nstart_wait = \"0s\"\n"
        ),
    );
    let start = env.command(&["start", "web"]).spawn().unwrap();
    // The daemon's command runs: its process has passed the start gate and exec'd
    // (before that, a keeper stopped now leaves a gated child that exits by itself).
    wait_until(
        "the daemon runs, not yet ready",
        Duration::from_secs(10),
        || {
            env.pid("web")
                .is_some_and(|pid| is_alive(pid) && processes_with(&mark).contains(&pid))
        },
    );
    let keeper = env.keeper_pid("web").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(keeper),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let out = Run::try_wait(start, Duration::from_secs(40)).expect("start returns");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("its keeper did not report in time; stopped what it left"),
        "{stderr}"
    );
    assert!(!is_alive(keeper), "the hung keeper lives on");
    assert!(processes_with(&mark).is_empty(), "the daemon runs on");
    assert!(!env.pidfile("web").exists(), "the pidfile is left behind");
}

/// The numbers of `line-N` lines in `text`, in order.
fn numbered_lines(text: &str) -> Vec<u64> {
    text.lines()
        .map(|line| {
            line.strip_prefix("line-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a line the daemon never wrote: {line:?}"))
        })
        .collect()
}

/// Finding 9: a keeper killed while its daemon writes output. The daemon died of
/// SIGPIPE and the lines in the pipe were lost. Now the keeper's holder keeps the
/// pipe open and writes on to the log: the daemon keeps running and logging, no line
/// is lost, `start` starts no second copy, and `stop` stops it with every line it
/// wrote in the log.
#[test]
fn a_chatty_daemon_outlives_its_keeper_and_keeps_logging() {
    let mark = marker("chatty");
    let env = TestEnv::new().daemon(
        "web",
        &format!(
            "command = [\"sh\", \"-c\", \"i=0; while :; do i=$((i+1)); echo line-$i; sleep 0.005; done\", \"{mark}\"]\nstart_wait = \"50ms\"\n"
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    wait_until("some lines are logged", Duration::from_secs(10), || {
        env.log("web").lines().count() >= 20
    });
    sigkill(env.keeper_pid("web").unwrap()).unwrap();
    let logged = env.log("web").lines().count();
    wait_until(
        "the daemon's lines go on into the log",
        Duration::from_secs(10),
        || env.log("web").lines().count() >= logged + 100,
    );
    assert!(is_alive(pid), "the daemon died with its keeper");
    let entry = env.entry("web");
    assert_eq!(entry["status"], "running", "{entry}");
    assert_eq!(entry["pid"], pid);
    env.dmgr(&["start", "web"])
        .success()
        .stdout_has("without a keeper");
    assert_eq!(processes_with(&mark), [pid], "start started a second copy");
    env.dmgr(&["stop", "web"]).success();
    assert!(processes_with(&mark).is_empty());
    let numbers = numbered_lines(&env.log("web"));
    let expected: Vec<u64> = (1..=numbers.len() as u64).collect();
    assert!(numbers == expected, "lines were lost: {numbers:?}");
    let lines = numbers.len();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(env.log("web").lines().count(), lines, "written after stop");
}

/// A forking daemon that leaves the command's session and closes its output, as
/// real daemons do, and writes its pidfile once `web.hold` is gone: while the test
/// holds it, the command has exited and the keeper waits to adopt the daemon.
/// Returns the pidfile and the hold.
fn slow_forking(env: &TestEnv, mark: &str) -> (std::path::PathBuf, Hold) {
    let dir = env.root().join("var");
    std::fs::create_dir_all(&dir).unwrap();
    let hold = Hold::new(dir.join("web.hold"));
    let inner = "exec >/dev/null 2>&1 </dev/null; while [ -e web.hold ]; do sleep 0.02; done; echo $$ > web.pid; sleep 1000; true";
    env.write(
        "web",
        &format!(
            "type = \"forking\"\ncommand = [\"sh\", \"-c\", \"setsid sh -c '{inner}' {mark} & exit 0\"]\n\
             working_dir = \"{dir}\"\npidfile = \"{dir}/web.pid\"\nstart_wait = \"100ms\"\nstop_timeout = \"2s\"\n",
            dir = dir.display()
        ),
    );
    (dir.join("web.pid"), hold)
}

/// Waits until the forking daemon's command has exited and its keeper waits for the
/// pidfile (the daemon held), then returns the daemon.
fn wait_for_adoption(env: &TestEnv, mark: &str) -> i32 {
    wait_until(
        "the command exited, the daemon runs",
        Duration::from_secs(30),
        || {
            // The held daemon's `sleep`s carry its marker until they exec.
            processes_with(mark).len() == 1
                && env
                    .state("web")
                    .is_some_and(|s| s["daemon"].is_null() && s["status"] == "starting")
        },
    );
    copies_of(mark)[0]
}

/// Starts the held forking daemon, SIGKILLs its keeper while it waits to adopt the
/// daemon: the daemon it left runs, not yet adopted.
fn kill_keeper_during_adoption(env: &TestEnv, mark: &str, pidfile: &std::path::Path) -> i32 {
    let start = env.command(&["start", "web"]).spawn().unwrap();
    let daemon = wait_for_adoption(env, mark);
    assert!(!pidfile.exists(), "the held daemon wrote its pidfile");
    sigkill(env.keeper_pid("web").unwrap()).unwrap();
    let out = Run::try_wait(start, Duration::from_secs(30)).expect("start returns");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    daemon
}

/// Finding 10: a forking daemon without a cgroup, its keeper killed after the command
/// exited and before the daemon was adopted. Nothing recorded the daemon: `start`
/// launched a second copy and `stop` left the first running. Now the daemon is the
/// holder's, which the record names, and the `start` that was waiting stops it.
#[test]
fn a_forking_daemon_whose_keeper_dies_during_adoption_is_stopped_by_its_start() {
    let mark = marker("adopting");
    let env = TestEnv::new().without_cgroups();
    let (pidfile, hold) = slow_forking(&env, &mark);
    let first = kill_keeper_during_adoption(&env, &mark, &pidfile);
    assert!(!is_alive(first), "the daemon left during adoption runs on");
    drop(hold);
    env.dmgr(&["start", "web"]).success();
    assert_eq!(copies_of(&mark).len(), 1, "two copies run");
    env.dmgr(&["stop", "web"]).success();
    assert!(processes_with(&mark).is_empty(), "stop left a copy running");
}

/// The same with the waiting `start` killed too: the next `stop` stops the daemon
/// left during adoption, and the next `start` starts no second copy.
#[test]
fn a_forking_daemon_whose_keeper_and_start_die_during_adoption_is_honoured() {
    let mark = marker("adopting2");
    let env = TestEnv::new().without_cgroups();
    let (pidfile, hold) = slow_forking(&env, &mark);
    let mut start = env.command(&["start", "web"]).spawn().unwrap();
    let first = wait_for_adoption(&env, &mark);
    assert!(!pidfile.exists(), "the held daemon wrote its pidfile");
    start.kill().unwrap();
    start.wait().unwrap();
    sigkill(env.keeper_pid("web").unwrap()).unwrap();
    // The next start stops the first copy before its keeper takes over; the new
    // copy is held too until then, and goes on once the first is gone (or the
    // start's own deadline draws near: a start that leaves it fails below).
    let start = env.command(&["start", "web"]).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while is_alive(first) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(hold);
    let out = Run::try_wait(start, Duration::from_secs(30)).expect("start returns");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        !is_alive(first),
        "start left the first copy running: {out:?}"
    );
    assert_eq!(copies_of(&mark).len(), 1, "two copies run: {out:?}");
    // And once more, stopped by `stop` this time.
    let _hold = Hold::new(pidfile.with_file_name("web.hold"));
    let mut start = env.command(&["restart", "web"]).spawn().unwrap();
    wait_for_adoption(&env, &mark);
    start.kill().unwrap();
    start.wait().unwrap();
    sigkill(env.keeper_pid("web").unwrap()).unwrap();
    env.dmgr(&["stop", "web"]).success();
    assert!(processes_with(&mark).is_empty(), "stop left a copy running");
}

/// A cgroup of the v1 freezer (root only) that holds a process where it is, even
/// SIGKILLed, as a loaded machine may hold a killed process for a while before the
/// kernel runs it into its exit; thawed and removed when dropped.
struct Freezer(std::path::PathBuf);

impl Freezer {
    /// A new freezer cgroup, or `None` (the test says it skipped) where there is none.
    fn new(test: &str) -> Option<Freezer> {
        let dir = std::path::Path::new("/sys/fs/cgroup/freezer").join(marker("freezer"));
        match std::fs::create_dir(&dir) {
            Ok(()) => Some(Freezer(dir)),
            Err(e) => {
                eprintln!("{test}: skipped: no cgroup v1 freezer to hold a process in ({e})");
                None
            }
        }
    }

    /// Moves `pid` into the cgroup and freezes it.
    fn freeze(&self, pid: i32) {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string()).unwrap();
        std::fs::write(self.0.join("freezer.state"), "FROZEN").unwrap();
        wait_until("the cgroup is frozen", Duration::from_secs(10), || {
            std::fs::read_to_string(self.0.join("freezer.state"))
                .is_ok_and(|s| s.trim() == "FROZEN")
        });
    }

    fn thaw(&self) {
        let _ = std::fs::write(self.0.join("freezer.state"), "THAWED");
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.thaw();
        // Removable once its processes have exited.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::remove_dir(&self.0).is_err() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A keeper SIGKILLed while it waits to restart its daemon, and `start` run before
/// the kernel has finished the keeper (a frozen cgroup holds it in its death here, as
/// a loaded machine does for a while): `start` took it for a live keeper, said
/// "already started; its keeper restarts it after a backoff" and exited 0, and
/// nothing ever ran the daemon again. Now `start` sees that the keeper is dying,
/// waits for it to let go of its lock, and starts the daemon.
#[test]
fn start_waits_for_a_sigkilled_keeper_to_die_and_starts_the_daemon() {
    let test = "start_waits_for_a_sigkilled_keeper_to_die_and_starts_the_daemon";
    let mark = marker("dying-keeper");
    let env = TestEnv::new();
    let Some(freezer) = Freezer::new(test) else {
        return;
    };
    env.write(
        "web",
        &format!(
            "command = [\"sh\", \"-c\", \"sleep 1000; true\", \"{mark}\"]\nrestart = \"always\"\nrestart_delay = \"60s\"\nstart_wait = \"100ms\"\n"
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let daemon = env.pid("web").unwrap();
    sigkill(daemon).unwrap();
    wait_until("web waits to restart", Duration::from_secs(10), || {
        env.state("web").is_some_and(|s| s["status"] == "backoff")
    });
    let keeper = env.keeper_pid("web").unwrap();
    env.track(keeper);
    freezer.freeze(keeper);
    sigkill(keeper).unwrap();
    assert!(is_alive(keeper), "the freezer did not hold the keeper");
    let mut start = env.command(&["start", "web"]).spawn().unwrap();
    // The keeper is held in its death for a second, or until `start` returns.
    let held_until = std::time::Instant::now() + Duration::from_secs(1);
    while start.try_wait().unwrap().is_none() && std::time::Instant::now() < held_until {
        std::thread::sleep(Duration::from_millis(10));
    }
    freezer.thaw();
    let out = Run::try_wait(start, Duration::from_secs(30)).expect("start returns");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(said.contains("web: started (pid "), "start said: {said}");
    assert_eq!(copies_of(&mark).len(), 1, "{said}");
    assert_eq!(env.entry("web")["status"], "running");
    env.dmgr(&["stop", "web"]).success();
    assert!(processes_with(&mark).is_empty(), "stop left a copy running");
}

//! Oneshots, schedules and hooks run by the keeper (issue 28), against real processes:
//! what `start` prints and returns, what the logs and event histories hold, and what
//! the hooks saw.

use std::time::Duration;

use crate::support::{is_alive, sigkill, wait_until, TestEnv};

/// SPEC `type = "oneshot"` and `after`: in one `start --all`, a oneshot that exits 1
/// blocks the daemon after it (with its reason and last log lines), and one that exits
/// 0 lets its daemon start once it is done.
#[test]
fn a_failed_oneshot_blocks_what_is_after_it_and_a_done_one_lets_it_start() {
    let env = TestEnv::new();
    env.write(
        "migrate_ok",
        "type = \"oneshot\"\ncommand = [\"sh\", \"-c\", \"echo migrating; sleep 0.3; echo migrated\"]\n",
    );
    env.write(
        "migrate_bad",
        "type = \"oneshot\"\ncommand = [\"sh\", \"-c\", \"echo 'relation users exists'; exit 1\"]\n",
    );
    env.write(
        "web",
        "command = [\"sleep\", \"1000\"]\nafter = [\"migrate_ok\"]\nstart_wait = \"0s\"\n",
    );
    env.write(
        "api",
        "command = [\"sleep\", \"1000\"]\nafter = [\"migrate_bad\"]\nstart_wait = \"0s\"\n",
    );
    let run = env.dmgr(&["start", "--all"]).code(1);
    let out = run.stdout();
    assert!(out.contains("migrate_ok: done (exit 0 after "), "{out}");
    assert!(out.contains("web: started (pid "), "{out}");
    let err = run.stderr();
    assert!(
        err.contains("migrate_bad: cannot start: the run failed (exit 1)"),
        "{err}"
    );
    assert!(err.contains("| relation users exists"), "{err}");
    assert!(
        err.contains("api: not started: migrate_bad did not start or did not succeed"),
        "{err}"
    );
    assert_eq!(env.entry("migrate_ok")["status"], "done");
    assert!(env.entry("migrate_ok")["last_exit"]["at"].is_string());
    assert_eq!(env.entry("migrate_bad")["status"], "failed");
    assert_eq!(env.entry("web")["status"], "running");
    assert_eq!(env.entry("api")["status"], "stopped");
    assert!(env.events("migrate_ok").contains(" done "));
    // `apply` leaves a oneshot that is done alone: it does not run it again.
    let apply = env.dmgr(&["apply"]).stdout();
    assert!(!apply.contains("migrate_ok"), "{apply}");
    env.dmgr(&["stop", "--all"]).success();
}

/// SPEC `pre_start`: a failure stops the start there: the daemon never runs, `start`
/// fails with the hook's last line and prints its output, which is in the daemon's
/// log with a prefix naming the hook; the `hook` event has its exit status.
#[test]
fn a_failing_pre_start_fails_the_start() {
    let env = TestEnv::new();
    let mark = crate::support::marker("prestart");
    env.write(
        "web",
        &format!(
            "command = [\"sh\", \"-c\", \"exec sleep 1000 # {mark}\"]\npre_start = [\"sh\", \"-c\", \"echo testing the config; echo 'bad directive on line 3' >&2; exit 1\"]\n"
        ),
    );
    let run = env.dmgr(&["start", "web"]).code(1);
    let err = run.stderr();
    assert!(
        err.contains("web: cannot start: pre_start failed (exit 1): bad directive on line 3"),
        "{err}"
    );
    assert!(err.contains("| [pre_start] testing the config"), "{err}");
    assert!(crate::support::processes_with(&mark).is_empty());
    assert_eq!(env.entry("web")["status"], "failed");
    let log = env.log("web");
    assert!(
        log.contains("[pre_start] bad directive on line 3\n"),
        "{log}"
    );
    let events = env.events("web");
    assert!(events.contains("hook"), "{events}");
    assert!(events.contains("pre_start ended (exit 1)"), "{events}");
    assert!(!events.contains("started"), "{events}");
}

/// SPEC `pre_start` that succeeds, with the daemon's environment and directory and the
/// `DMGR_*` variables; the daemon starts after it.
#[test]
fn pre_start_runs_with_the_daemons_environment_before_it() {
    let env = TestEnv::new();
    let dir = env.root().join("work");
    std::fs::create_dir_all(&dir).unwrap();
    env.write(
        "web",
        &format!(
            "command = [\"sleep\", \"1000\"]\nworking_dir = \"{}\"\nenv = {{ GREETING = \"hello\" }}\nstart_wait = \"0s\"\npre_start = [\"sh\", \"-c\", \"echo $GREETING $DMGR_NAME $DMGR_EVENT $(pwd) > seen\"]\n",
            dir.display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let seen = std::fs::read_to_string(dir.join("seen")).unwrap();
    assert_eq!(seen.trim(), format!("hello web start {}", dir.display()));
    env.dmgr(&["stop", "web"]).success();
}

/// SPEC `post_stop`: after a SIGKILL of the daemon it runs, with how the daemon ended,
/// before the restart; `on_failure` runs when the keeper then gives up.
#[test]
fn post_stop_runs_after_a_sigkill_and_on_failure_when_the_keeper_gives_up() {
    let env = TestEnv::new();
    let seen = env.root().join("seen");
    env.write(
        "web",
        &format!(
            "command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\nrestart = \"no\"\npost_stop = [\"sh\", \"-c\", \"echo post_stop $DMGR_EVENT $DMGR_SIGNAL >> {seen}\"]\non_failure = [\"sh\", \"-c\", \"echo on_failure $DMGR_EVENT $DMGR_SIGNAL >> {seen}\"]\n",
            seen = seen.display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    sigkill(pid).unwrap();
    wait_until("the keeper is done", Duration::from_secs(10), || {
        env.entry("web")["status"] == "failed" && !env.pidfile_is_locked("web")
    });
    let lines = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(lines, "post_stop exited KILL\non_failure exited KILL\n");
    let events = env.events("web");
    let post = events
        .find("post_stop ended (exit 0)")
        .expect("post_stop's event");
    let on_failure = events
        .find("on_failure ended (exit 0)")
        .expect("on_failure's");
    assert!(post < on_failure, "{events}");
}

/// SPEC `post_stop` at `dmgr stop`, and `hook_timeout`: a hook that outlives it is
/// killed with its group, and the stop goes on.
#[test]
fn a_hook_past_hook_timeout_is_killed_with_its_group() {
    let env = TestEnv::new();
    let mark = crate::support::marker("hooktimeout");
    env.write(
        "web",
        &format!(
            "command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\nhook_timeout = \"1s\"\npost_stop = [\"sh\", \"-c\", \"echo cleaning; sleep 1000 # {mark}\"]\n"
        ),
    );
    env.dmgr(&["start", "web"]).success();
    env.dmgr(&["stop", "web"]).success();
    assert!(crate::support::processes_with(&mark)
        .into_iter()
        .all(|p| !is_alive(p)));
    let events = env.events("web");
    assert!(
        events.contains("post_stop ended (killed: still running after hook_timeout (1s))"),
        "{events}"
    );
    assert!(env.log("web").contains("[post_stop] cleaning\n"));
}

/// SPEC `schedule`: `* * * * *` runs once a minute. `start` returns at once with the
/// next time, the keeper waits (`waiting`, `next_run`) and uses no CPU meanwhile; at
/// the minute the run happens (`scheduled`, `done`) and the keeper waits again.
#[test]
fn a_schedule_every_minute_runs_at_the_minute() {
    let env = TestEnv::new();
    env.write(
        "tick",
        "type = \"oneshot\"\ncommand = [\"sh\", \"-c\", \"echo ran at $(date +%s)\"]\nschedule = \"* * * * *\"\n",
    );
    let run = env.dmgr(&["start", "tick"]).success();
    assert!(
        run.stdout().contains("tick: waiting (next run "),
        "{}",
        run.stdout()
    );
    let entry = env.entry("tick");
    assert_eq!(entry["status"], "waiting");
    let next = entry["next_run"].as_str().expect("next_run").to_string();
    assert!(next.ends_with(":00.000Z"), "{next}");
    let keeper = env.keeper_pid("tick").unwrap();
    let cpu = || crate::support::procfs::stat(keeper).map(|s| s.utime + s.stime);
    let before = cpu();
    wait_until("the run at the minute", Duration::from_secs(65), || {
        env.log("tick").contains("ran at ")
    });
    wait_until("the keeper waits again", Duration::from_secs(10), || {
        env.entry("tick")["status"] == "waiting"
    });
    let events = env.events("tick");
    assert!(events.contains("scheduled"), "{events}");
    assert!(events.contains(" done "), "{events}");
    assert_eq!(env.log("tick").matches("ran at ").count(), 1);
    assert_ne!(env.entry("tick")["next_run"].as_str(), Some(next.as_str()));
    // Between start and the run, the keeper slept: a few ticks at most for the run.
    let used = cpu().unwrap() - before.unwrap();
    assert!(used <= 5, "the waiting keeper used {used} ticks of CPU");
    env.dmgr(&["stop", "tick"]).success();
}

/// SPEC `catch_up`: the keeper stopped across scheduled times (its last time, kept in
/// the run directory, set back three hours: three `@hourly` times were missed) runs
/// the missed time once when it is back, and then waits for the next.
#[test]
fn catch_up_runs_a_missed_time_once_when_the_keeper_is_back() {
    let env = TestEnv::new();
    env.write(
        "backup",
        "type = \"oneshot\"\ncommand = [\"sh\", \"-c\", \"echo backed up\"]\nschedule = \"@hourly\"\ncatch_up = true\n",
    );
    env.dmgr(&["start", "backup"]).success();
    env.dmgr(&["stop", "backup"]).success();
    let kept = env.run_dir().join("backup.last-run");
    let last: u64 = std::fs::read_to_string(&kept)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::write(&kept, format!("{}\n", last - 3 * 3600 * 1000)).unwrap();
    assert!(!env.log("backup").contains("backed up"));
    env.dmgr(&["start", "backup"]).success();
    wait_until("the missed run", Duration::from_secs(10), || {
        env.log("backup").contains("backed up")
    });
    wait_until("the keeper waits again", Duration::from_secs(10), || {
        env.entry("backup")["status"] == "waiting"
    });
    let events = env.events("backup");
    assert!(events.contains("catch_up: one run for "), "{events}");
    assert_eq!(events.matches("scheduled").count(), 1, "{events}");
    assert_eq!(env.log("backup").matches("backed up").count(), 1);
    // `status` shows the next time; as systemd's for a service its timer starts, its
    // code is 3 (not running) between runs.
    env.dmgr(&["status", "backup"])
        .code(3)
        .stdout_has("next run");
    env.dmgr(&["stop", "backup"]).success();
}

//! Issue 14, items 3 and 4: `memory_max` and `health` against real processes. Each
//! verdict is an event in `dmgr events` and a restart with a new PID; a healthy daemon
//! is never restarted; a hung probe is killed at `health_timeout`. `memory_max` is the
//! cgroup's `memory.high`, watched through the kernel's events, where the daemon's
//! cgroup can have the memory controller, and sampled elsewhere.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::{installed, is_alive, wait_until, TestEnv};

/// A daemon that allocates 200 MB under `memory_max = "64MiB"` is restarted within a
/// few seconds, with a `memory-exceeded` event that gives the figure.
#[test]
fn a_daemon_above_memory_max_is_restarted_with_a_memory_exceeded_event() {
    let Some(python) = installed("python3", "memory_max") else {
        return;
    };
    let env = TestEnv::new().daemon(
        "hog",
        &format!(
            "command = [\"{}\", \"-c\", \"import time; b = b'x' * (200 << 20); time.sleep(1000)\"]\nstart_wait = \"50ms\"\nrestart_delay = \"100ms\"\nmemory_max = \"64MiB\"\n",
            python.display()
        ),
    );
    env.dmgr(&["start", "hog"]).success();
    let first = env.pid("hog").unwrap();
    let second = restarted_for_memory(&env, first);
    env.dmgr(&["stop", "hog"]).success();
    assert!(!is_alive(second));
}

/// Waits until `hog`, whose process was `first`, runs again, and checks that its keeper
/// recorded `memory-exceeded` with the ceiling, then a restart; returns the new PID.
fn restarted_for_memory(env: &TestEnv, first: i32) -> i32 {
    let second = env.wait_for_restart("hog", first);
    assert_ne!(first, second);
    let events = env.events("hog");
    let line = events
        .lines()
        .find(|l| l.contains("memory-exceeded"))
        .unwrap_or_else(|| panic!("no memory-exceeded event in:\n{events}"));
    assert!(line.contains("above memory_max 64MiB"), "{line}");
    assert!(events.contains("restarting"), "{events}");
    second
}

/// Why a keeper started by this test cannot give its daemon's cgroup the memory
/// controller, found from outside the way the man page gives it; `None` where it can:
/// cgroup2 is mounted, the keeper's cgroup (this process's: keepers inherit it) has the
/// memory controller and can hand it to a child (it is the root cgroup, which alone
/// may do so with processes of its own), and it is writable.
fn memory_controller_unavailable() -> Option<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mount = info.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let point = before.split_whitespace().nth(4)?;
        (after.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(point))
    });
    let Some(mount) = mount else {
        return Some("no cgroup2 file system is mounted".into());
    };
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let Some(path) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
        return Some("this process is in no cgroup v2".into());
    };
    let dir = mount.join(path.trim().trim_start_matches('/'));
    let controllers = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "memory") {
        return Some(format!(
            "the memory controller is not available in {} (cgroup.controllers: {})",
            dir.display(),
            controllers.trim()
        ));
    }
    // Only non-root cgroups have a cgroup.type.
    if dir.join("cgroup.type").exists() {
        return Some(format!(
            "{} is not the root cgroup and has processes of its own (this test's), so it \
             cannot give the memory controller to a child",
            dir.display()
        ));
    }
    if nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK).is_err() {
        return Some(format!("{} is not writable", dir.display()));
    }
    None
}

/// `list --json` and `status` say how the keeper watches `memory_max`: the kernel's
/// events of the daemon's cgroup where it can have the memory controller, else
/// sampling, with the reason; without cgroups (`DMGR_NO_CGROUP=1`) always sampling.
#[test]
fn the_memory_watch_is_the_kernels_events_where_the_cgroup_allows_else_sampled_with_why() {
    let toml = "command = \"sleep 1000\"\nstart_wait = \"50ms\"\nmemory_max = \"1GiB\"\n";
    let measured = |env: &TestEnv| {
        wait_until("a first measurement", Duration::from_secs(15), || {
            env.entry("web")["memory"].is_object()
        });
        env.entry("web")["memory"].clone()
    };
    let env = TestEnv::new().daemon("web", toml);
    env.dmgr(&["start", "web"]).success();
    let memory = measured(&env);
    let status = env.dmgr(&["status", "web"]).success();
    match memory_controller_unavailable() {
        None => {
            assert_eq!(memory["mechanism"], "cgroup-events", "{memory}");
            assert!(memory["sampling_reason"].is_null(), "{memory}");
            status.stdout_has("memory via: the cgroup's memory.high");
        }
        Some(why) => {
            eprintln!("memory_max is sampled here: {why}");
            assert_eq!(memory["mechanism"], "sampled", "{memory}");
            let reason = memory["sampling_reason"].as_str().unwrap_or_default();
            assert!(!reason.is_empty(), "{memory}");
            status.stdout_has(&format!("memory via: sampled every 2s: {reason}"));
        }
    }
    env.dmgr(&["stop", "web"]).success();

    let plain = TestEnv::new().without_cgroups().daemon("web", toml);
    plain.dmgr(&["start", "web"]).success();
    let memory = measured(&plain);
    assert_eq!(memory["mechanism"], "sampled", "{memory}");
    assert_eq!(
        memory["sampling_reason"], "the daemon has no cgroup v2 of its own",
        "{memory}"
    );
    plain.dmgr(&["stop", "web"]).success();
}

/// Where the daemon's cgroup can have the memory controller, `memory_max` is its
/// `memory.high` (`memory.max` stays at no limit) and the keeper has no timer for it:
/// a daemon that allocates 200 MB a second after it came up, past the first
/// measurement, is restarted on the kernel's `high` event, with the same
/// `memory-exceeded` event as the sampled path.
#[test]
fn with_the_memory_controller_a_daemon_over_memory_max_is_restarted_on_a_kernel_event() {
    if let Some(why) = memory_controller_unavailable() {
        eprintln!(
            "with_the_memory_controller_a_daemon_over_memory_max_is_restarted_on_a_kernel_event: \
             skipped: {why}"
        );
        return;
    }
    let Some(python) = installed("python3", "memory_max through memory.events") else {
        return;
    };
    let env = TestEnv::new().daemon(
        "hog",
        &format!(
            "command = [\"{}\", \"-c\", \"import time; time.sleep(1); b = b'x' * (200 << 20); time.sleep(1000)\"]\nstart_wait = \"50ms\"\nrestart_delay = \"100ms\"\nmemory_max = \"64MiB\"\n",
            python.display()
        ),
    );
    env.dmgr(&["start", "hog"]).success();
    let first = env.pid("hog").unwrap();
    let cgroup = env
        .state("hog")
        .and_then(|s| s["cgroup"].as_str().map(PathBuf::from));
    let cgroup = cgroup.expect("the daemon has a cgroup");
    let read = |file: &str| fs::read_to_string(cgroup.join(file)).unwrap_or_default();
    assert_eq!(read("memory.high").trim(), (64u64 << 20).to_string());
    assert_eq!(read("memory.max").trim(), "max");
    let second = restarted_for_memory(&env, first);
    assert_eq!(env.entry("hog")["memory"]["mechanism"], "cgroup-events");
    env.dmgr(&["stop", "hog"]).success();
    assert!(!is_alive(second));
}

/// A healthy daemon is checked and never restarted; once its check fails
/// `health_failures` times in a row, the keeper records `unhealthy` with the last
/// reason and restarts it.
#[test]
fn a_failing_exec_health_check_restarts_the_daemon_and_a_passing_one_never_does() {
    let env = TestEnv::new();
    let count = env.root().join("checks");
    let flag = env.root().join("broken");
    env.write(
        "web",
        &format!(
            "command = \"sleep 1000\"\nstart_wait = \"50ms\"\nrestart_delay = \"100ms\"\nhealth = {{ exec = [\"sh\", \"-c\", \"echo x >> {}; test ! -e {}\"] }}\nhealth_interval = \"1s\"\nhealth_timeout = \"2s\"\nhealth_failures = 2\n",
            count.display(),
            flag.display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let first = env.pid("web").unwrap();
    let checks = || fs::read_to_string(&count).map_or(0, |t| t.lines().count());
    wait_until("three checks passed", Duration::from_secs(15), || {
        checks() >= 3
    });
    assert_eq!(
        env.pid("web"),
        Some(first),
        "a healthy daemon was restarted"
    );
    assert!(!env.events("web").contains("unhealthy"));

    fs::write(&flag, "").unwrap();
    let second = env.wait_for_restart("web", first);
    let events = env.events("web");
    let line = events
        .lines()
        .find(|l| l.contains("unhealthy"))
        .unwrap_or_else(|| panic!("no unhealthy event in:\n{events}"));
    assert!(line.contains("2 failed checks in a row"), "{line}");
    assert!(line.contains("sh exited non-zero"), "{line}");
    fs::remove_file(&flag).unwrap();
    env.dmgr(&["stop", "web"]).success();
    assert!(!is_alive(second));
}

/// A probe that hangs is killed at `health_timeout`, counts as failed, and none is
/// left once the daemon is stopped.
#[test]
fn a_hung_health_probe_is_killed_at_its_timeout_and_none_is_left_after_stop() {
    let env = TestEnv::new();
    let pids = env.root().join("probes");
    env.write(
        "web",
        &format!(
            "command = \"sleep 1000\"\nstart_wait = \"50ms\"\nrestart_delay = \"100ms\"\nhealth = {{ exec = [\"sh\", \"-c\", \"echo $$ >> {}; exec sleep 1001\"] }}\nhealth_interval = \"1s\"\nhealth_timeout = \"300ms\"\nhealth_failures = 2\n",
            pids.display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let first = env.pid("web").unwrap();
    let probes = || -> Vec<i32> {
        fs::read_to_string(&pids)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    wait_until("the first probe runs", Duration::from_secs(10), || {
        !probes().is_empty()
    });
    let hung = probes()[0];
    env.track(hung);
    wait_until(
        "the hung probe is killed at health_timeout",
        Duration::from_secs(5),
        || !is_alive(hung),
    );
    let second = env.wait_for_restart("web", first);
    let events = env.events("web");
    assert!(
        events.contains("no answer within health_timeout (300ms)"),
        "{events}"
    );
    env.dmgr(&["stop", "web"]).success();
    for pid in probes() {
        assert!(!is_alive(pid), "probe {pid} outlived the stop");
    }
    assert!(!is_alive(second));
}

/// `check` knows the new keys: `health` takes no `file`, and the timing keys are
/// bounded.
#[test]
fn check_locates_bad_health_and_memory_max() {
    let env = TestEnv::new().daemon(
        "web",
        "command = \"sleep 1\"\nhealth = { file = \"x\" }\nhealth_interval = \"10ms\"\nhealth_failures = 0\nmemory_max = \"1KiB\"\n",
    );
    let f = env.config_dir().join("web.toml");
    let f = f.display();
    env.dmgr(&["check"])
        .code(2)
        .stderr_has(&format!("{f}:2:12: unknown key `health.file`"))
        .stderr_has(&format!("{f}:3:19: `health_interval` must be at least 1s"))
        .stderr_has(&format!("{f}:4:19: `health_failures` must be at least 1"))
        .stderr_has(&format!("{f}:5:14: `memory_max` is 1KiB"));
}

/// Issue 14 item 5: a daemon in a failure streak shows it in `list` and `status`, the
/// memory against its ceiling is in `status`, and `--json` carries the same facts.
#[test]
fn list_and_status_show_a_failure_streak_and_the_memory_against_the_ceiling() {
    let env = TestEnv::new();
    let flag = env.root().join("broken");
    env.write(
        "web",
        &format!(
            "command = \"sleep 1000\"\nstart_wait = \"50ms\"\nhealth = {{ exec = [\"test\", \"!\", \"-e\", \"{}\"] }}\nhealth_interval = \"1s\"\nhealth_failures = 1000\nmemory_max = \"1GiB\"\n",
            flag.display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    wait_until("a check passed", Duration::from_secs(15), || {
        env.entry("web")["health"]["failures_in_row"] == 0
    });
    let entry = env.entry("web");
    assert_eq!(entry["status"], "running");
    assert!(entry["health"]["last_error"].is_null(), "{entry}");
    assert_eq!(entry["memory"]["max_bytes"], 1u64 << 30, "{entry}");
    assert!(entry["memory"]["used_bytes"].as_u64() > Some(0), "{entry}");
    env.dmgr(&["list"]).success().stdout_has("running");

    fs::write(&flag, "").unwrap();
    wait_until("two checks failed", Duration::from_secs(15), || {
        env.entry("web")["health"]["failures_in_row"].as_u64() >= Some(2)
    });
    env.dmgr(&["list"])
        .success()
        .stdout_has("running (failing ");
    env.dmgr(&["status", "web"])
        .success()
        .stdout_has("health:")
        .stdout_has("failed: test exited non-zero")
        .stdout_has("of 1000 failures in a row")
        .stdout_has("memory max:");
    env.dmgr(&["stop", "web"]).success();
    assert!(env.entry("web")["health"].is_null());
}

//! Stop means every process the daemon started is gone, also those that left its
//! session with setsid(2): with the daemon's cgroup where the keeper can create one,
//! and with the subreaper's process tracking alone (`DMGR_NO_CGROUP=1`).

use std::time::{Duration, Instant};

use crate::support::{processes_with, sigkill, unique_seconds, wait_until, TestEnv};

/// Both ways of tracking: with cgroups allowed (used where the machine lets the
/// keeper create one) and without.
fn both_ways() -> [(TestEnv, bool); 2] {
    [
        (TestEnv::new(), true),
        (TestEnv::new().without_cgroups(), false),
    ]
}

/// Whether this environment's keepers put daemons in a cgroup.
fn uses_cgroup(env: &TestEnv, name: &str) -> bool {
    env.state(name).is_some_and(|s| s["cgroup"].is_string())
}

/// `sh -c 'setsid sleep A & exec sleep B'`: its backgrounded sleep leaves the session.
/// Nothing is left after `stop`, after `restart`, nor after a SIGKILL of the daemon
/// (the keeper stops the leftover before it restarts) followed by `stop`.
#[test]
fn setsid_children_are_gone_after_stop_restart_and_sigkill() {
    for (env, allowed) in both_ways() {
        let (left, main) = (unique_seconds(1001), unique_seconds(1002));
        let (left_mark, main_mark) = (format!("sleep {left}"), format!("sleep {main}"));
        env.write(
            "web",
            &format!(
                "command = [\"sh\", \"-c\", \"setsid sleep {left} & exec sleep {main}\"]\nstart_wait = \"300ms\"\nrestart_delay = \"100ms\"\n"
            ),
        );
        let count = || {
            (
                processes_with(&left_mark).len(),
                processes_with(&main_mark).len(),
            )
        };
        env.dmgr(&["start", "web"]).success();
        wait_until("the setsid sleep runs", Duration::from_secs(5), || {
            count() == (1, 1)
        });
        let cgroup = uses_cgroup(&env, "web");
        assert!(allowed || !cgroup, "DMGR_NO_CGROUP=1 made a cgroup");
        eprintln!("setsid children, cgroup: {cgroup}");
        env.dmgr(&["stop", "web"]).success();
        assert_eq!(count(), (0, 0), "stop left processes (cgroup: {cgroup})");

        env.dmgr(&["start", "web"]).success();
        wait_until("the setsid sleep runs", Duration::from_secs(5), || {
            count() == (1, 1)
        });
        let old = processes_with(&left_mark);
        env.dmgr(&["restart", "web"]).success();
        wait_until("the new setsid sleep runs", Duration::from_secs(5), || {
            count() == (1, 1)
        });
        assert_ne!(
            processes_with(&left_mark),
            old,
            "restart left the old setsid sleep (cgroup: {cgroup})"
        );

        let pid = env.pid("web").unwrap();
        sigkill(pid).unwrap();
        env.wait_for_restart("web", pid);
        wait_until(
            "one setsid sleep, the new one",
            Duration::from_secs(5),
            || count() == (1, 1),
        );
        env.dmgr(&["stop", "web"]).success();
        assert_eq!(
            count(),
            (0, 0),
            "stop after a SIGKILL left processes (cgroup: {cgroup})"
        );
    }
}

/// A process that ignores SIGTERM in a session of its own is SIGKILLed at
/// `stop_timeout`, and `stop` waits for it.
#[test]
fn term_ignoring_process_in_its_own_session_is_killed_at_stop_timeout() {
    for (env, _) in both_ways() {
        let seconds = unique_seconds(1003);
        let mark = format!("sleep {seconds}");
        env.write(
            "web",
            &format!(
                "command = [\"sh\", \"-c\", \"setsid sh -c 'trap \\\"\\\" TERM; while :; do sleep {seconds}; done' & exec sleep 1000\"]\nstart_wait = \"300ms\"\nstop_timeout = \"1s\"\n"
            ),
        );
        env.dmgr(&["start", "web"]).success();
        // The loop's shell and its sleep both carry the mark.
        wait_until("the stubborn loop runs", Duration::from_secs(5), || {
            processes_with(&mark).len() == 2
        });
        let stubborn: Vec<i32> = crate::support::session_members(&processes_with(&mark))
            .into_iter()
            .collect();
        let started = Instant::now();
        env.dmgr(&["stop", "web"]).success();
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "stop did not wait for stop_timeout"
        );
        assert!(
            processes_with(&mark).is_empty(),
            "the stubborn loop's sleep survived"
        );
        for pid in stubborn {
            assert!(
                !crate::support::is_alive(pid),
                "pid {pid} of the stubborn session survived"
            );
        }
        assert!(env.events("web").contains("killed"));
    }
}

/// A keeper SIGKILLed, then its daemon's main process: `stop` still finds the setsid
/// child (by its log pipe, or in its cgroup) and stops it.
#[test]
fn stop_without_keeper_finds_setsid_children() {
    for (env, _) in both_ways() {
        let seconds = unique_seconds(1004);
        let mark = format!("sleep {seconds}");
        env.write(
            "web",
            &format!("command = [\"sh\", \"-c\", \"setsid sleep {seconds} & exec sleep 1000\"]\nstart_wait = \"300ms\"\n"),
        );
        env.dmgr(&["start", "web"]).success();
        wait_until("the setsid sleep runs", Duration::from_secs(5), || {
            processes_with(&mark).len() == 1
        });
        let (keeper, pid) = (env.keeper_pid("web").unwrap(), env.pid("web").unwrap());
        sigkill(keeper).unwrap();
        wait_until("the keeper is dead", Duration::from_secs(5), || {
            !crate::support::is_alive(keeper)
        });
        sigkill(pid).unwrap();
        wait_until("the daemon is dead", Duration::from_secs(5), || {
            !crate::support::is_alive(pid)
        });
        assert_eq!(env.entry("web")["reason"], "keeper-lost");
        env.dmgr(&["stop", "web"]).success();
        assert!(
            processes_with(&mark).is_empty(),
            "stop left the setsid child"
        );
    }
}

/// Each process gets `stop_signal` once per stop, however often the keeper wakes
/// meanwhile: here the main process ends on TERM, and what it left in a session of its
/// own ignores TERM and writes a line every 20 ms (each a wake-up) until SIGKILL.
#[test]
fn stop_signal_reaches_each_process_once() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sh\", \"-c\", \"setsid sh -c 'trap \\\"echo got-term\\\" TERM; while :; do echo tick; sleep 0.02; done' & exec sleep 1000\"]\nstart_wait = \"200ms\"\nstop_timeout = \"1s\"\n",
    );
    env.dmgr(&["start", "web"]).success();
    env.dmgr(&["stop", "web"]).success();
    let log = env.log("web");
    assert_eq!(log.lines().filter(|l| *l == "got-term").count(), 1, "{log}");
}

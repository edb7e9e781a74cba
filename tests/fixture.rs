//! The fixture itself: a [`TestEnv`] kills what it saw when it goes, and nothing else.

use std::time::Duration;

use crate::support::{
    group_members, sigkill, sleeper_env, wait_until, KillOnDrop, ProcId, TestEnv,
};

/// The fixture itself: a daemon left running by a test is killed when the
/// environment goes, even if dmgr cannot stop it (its state record is gone).
#[test]
fn test_env_cleanup_kills_what_it_saw() {
    let seen: Vec<ProcId>;
    {
        let (env, _) = sleeper_env("web");
        env.dmgr(&["start", "web"]).success();
        let keeper = env.keeper_pid("web").unwrap();
        sigkill(keeper).unwrap();
        std::fs::remove_file(env.run_dir().join("web.state")).unwrap();
        seen = env.seen();
        assert!(seen.len() >= 2, "keeper and daemon are tracked: {seen:?}");
    }
    for p in seen {
        wait_until("tracked processes die", Duration::from_secs(5), || {
            !p.is_alive()
        });
    }
}
/// The fixture itself: a PID the environment saw that now names another process, the
/// leader of someone else's session (the number came round to a parallel test's
/// daemon), is neither killed nor has its session killed when the environment goes.
#[test]
fn test_env_cleanup_spares_a_reused_pid_and_its_session() {
    // Declared first, dropped last: kills the bystander's child by identity at the end.
    let owner = TestEnv::new();
    let bystander = KillOnDrop(
        std::process::Command::new("setsid")
            .args(["sh", "-c", "sleep 1000 & wait"])
            .spawn()
            .unwrap(),
    );
    let leader = bystander.0.id() as i32;
    owner.track(leader);
    wait_until("the bystander's child runs", Duration::from_secs(5), || {
        group_members(leader).len() == 2
    });
    let now = ProcId::of(leader).unwrap();
    {
        let env = TestEnv::new();
        // As if this environment had seen an earlier process with the same PID.
        env.track_identity(ProcId {
            pid: leader,
            start: now.start - 1,
        });
    }
    assert!(
        now.is_alive(),
        "the environment killed a process it never saw"
    );
    assert_eq!(
        group_members(leader).len(),
        2,
        "the environment killed a session it never saw"
    );
}

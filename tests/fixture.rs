//! The fixture itself: a [`TestEnv`] kills what it saw when it goes, and nothing else.

use std::time::Duration;

use std::os::linux::net::SocketAddrExt;

use crate::support::{
    ephemeral_range, free_port, free_port_decade, group_members, sigkill, sleeper_env, wait_until,
    KillOnDrop, Port, ProcId, TestEnv,
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

/// The fixture itself: a test's server port lies outside the ports the kernel picks
/// by itself (a `bind(..:0)`, an outgoing connection's source port), where a port
/// freed and bound again later could be taken meanwhile; no other test (of this run
/// or another) gets it while it is reserved, nor while something listens on it.
#[test]
fn a_reserved_port_is_the_tests_alone_and_not_one_the_kernel_hands_out() {
    let (low, high) = ephemeral_range();
    let port = free_port();
    assert!(
        !(low..=high).contains(&port.number()),
        "port {port} lies in the ephemeral range {low}-{high}"
    );
    assert!(Port::reserve(port.number()).is_none(), "reserved twice");
    // Another test binary finds it reserved too.
    let name = format!("dmgr-test-port-{port}");
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    assert!(
        std::os::unix::net::UnixListener::bind_addr(&address).is_err(),
        "port {port} is not reserved"
    );
    let (prefix, decade) = free_port_decade(3);
    let numbers: Vec<u16> = decade.iter().map(Port::number).collect();
    assert_eq!(numbers, [prefix * 10 + 1, prefix * 10 + 2, prefix * 10 + 3]);
    assert!(numbers.iter().all(|n| !(low..=high).contains(n)));
    // Free again once dropped, unless something listens on it.
    let number = port.number();
    drop(port);
    let listener = std::net::TcpListener::bind(("127.0.0.1", number)).unwrap();
    assert!(
        Port::reserve(number).is_none(),
        "a port in use was reserved"
    );
    drop(listener);
    assert!(
        Port::reserve(number).is_some(),
        "a port once free stays reserved"
    );
}

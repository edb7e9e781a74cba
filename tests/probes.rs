//! Readiness probes are supervised processes (issue 12): each in a process group of
//! its own, on the state record while it runs, killed at `ready_timeout`, on stop and
//! by the `stop` that cleans up after a dead keeper; and none holds up the keeper.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{group_members, is_alive, marker, processes_with, sigkill, stat};
use crate::support::{wait_until, KillOnDrop, Run, TestEnv};

/// A daemon whose exec readiness probe hangs, marked with `mark`.
fn hung_probe(mark: &str, ready_timeout: &str) -> String {
    format!(
        "command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\nready = {{ exec = [\"sh\", \"-c\", \"sleep 1000; true\", \"{mark}\"] }}\nready_timeout = \"{ready_timeout}\"\nstop_timeout = \"2s\"\n"
    )
}

/// Starts `dmgr start web` in the background and waits until the state record names a
/// running probe and the probe runs its command (the record names it first, while it
/// waits at its start gate: a keeper killed then leaves no probe); returns the start
/// and the probe's PID.
fn start_until_probing(env: &TestEnv) -> (KillOnDrop, i32) {
    let start = KillOnDrop(
        env.command(&["start", "web"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut probe = None;
    wait_until("the record names a probe", Duration::from_secs(10), || {
        probe = env.state("web").and_then(|r| r["probe"]["pid"].as_i64());
        probe.is_some()
    });
    let probe = probe.unwrap_or_default() as i32;
    env.track(probe);
    // Until it execs, the forked probe shows its keeper's title.
    wait_until(
        "the probe runs its command",
        Duration::from_secs(10),
        || {
            std::fs::read(format!("/proc/{probe}/cmdline"))
                .is_ok_and(|c| !String::from_utf8_lossy(&c).contains("__keeper"))
        },
    );
    (start, probe)
}

/// The outcome of a `dmgr start` begun with [`start_until_probing`].
fn finish(start: KillOnDrop) -> (Option<i32>, String) {
    let mut start = start;
    let child = std::mem::replace(
        &mut start.0,
        std::process::Command::new("true").spawn().unwrap(),
    );
    let output = Run::try_wait(child, Duration::from_secs(30)).expect("start finished");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The "Done when" of issue 12: `ready = { exec = ["sleep", ...] }` that never ends is
/// killed at `ready_timeout` with its whole process group, and nothing of it is left.
#[test]
fn a_hung_exec_probe_is_killed_at_ready_timeout() {
    let mark = marker("hung-probe");
    let env = TestEnv::new().daemon("web", &hung_probe(&mark, "1s"));
    let (start, probe) = start_until_probing(&env);
    let own_group = stat(probe).map(|s| (s.pgrp, s.session));
    assert_eq!(
        own_group,
        Some((probe, probe)),
        "the probe has no group of its own"
    );
    let (code, stderr) = finish(start);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("not ready within ready_timeout (1s)"),
        "{stderr}"
    );
    assert!(processes_with(&mark).is_empty(), "the probe survived");
    assert!(!is_alive(probe) && group_members(probe).is_empty());
    assert!(env.state("web").is_some_and(|r| r["probe"].is_null()));
    env.dmgr(&["stop", "web"]).success();
    assert!(processes_with(&mark).is_empty());
}

/// Asks the keeper of `web` to stop, as `dmgr stop` does (which itself waits for the
/// `dmgr start` under way to finish), and returns how long the start then took.
fn stop_keeper(env: &TestEnv, start: KillOnDrop) -> (Duration, Option<i32>, String) {
    let keeper = env.keeper_pid("web").expect("a keeper");
    let began = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(keeper),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (code, stderr) = finish(start);
    (began.elapsed(), code, stderr)
}

/// A stop while a probe hangs kills the probe at once and stops the daemon; the start
/// that waited fails.
#[test]
fn a_stop_kills_a_running_probe() {
    let mark = marker("stopped-probe");
    let env = TestEnv::new().daemon("web", &hung_probe(&mark, "60s"));
    let (start, probe) = start_until_probing(&env);
    let (took, code, stderr) = stop_keeper(&env, start);
    assert!(took < Duration::from_secs(10), "the stop took {took:?}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("stopped before it was up"), "{stderr}");
    assert!(processes_with(&mark).is_empty() && !is_alive(probe));
    env.dmgr(&["stop", "web"]).success();
}

/// A probe that ran when its keeper was SIGKILLed is among what the dead keeper left
/// behind, and the `start` that waited for that keeper ends it with the daemon
/// (issue 22, finding 8; `stop` would too).
#[test]
fn a_dead_keepers_probe_is_stopped_with_its_daemon() {
    let mark = marker("orphan-probe");
    let env = TestEnv::new().daemon("web", &hung_probe(&mark, "60s"));
    let (start, probe) = start_until_probing(&env);
    let keeper = env.keeper_pid("web").expect("a keeper");
    sigkill(keeper).unwrap();
    let (code, _) = finish(start);
    assert_eq!(code, Some(1));
    assert!(
        !is_alive(probe) && processes_with(&mark).is_empty(),
        "the dead keeper's probe survived"
    );
    env.dmgr(&["stop", "web"]).success();
}

/// A listening socket that never completes a connection: its backlog of 0 is filled
/// by connections nobody accepts, after which the kernel drops every SYN.
fn silent_listener() -> (TcpListener, Vec<std::net::TcpStream>, String) {
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    let any = nix::sys::socket::SockaddrIn::new(127, 0, 0, 1, 0);
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &any).unwrap();
    listen(&fd, Backlog::new(0).unwrap()).unwrap();
    let listener = TcpListener::from(fd);
    let address = listener.local_addr().unwrap();
    let mut held = Vec::new();
    loop {
        match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(300)) {
            Ok(stream) => held.push(stream),
            Err(_) => break,
        }
        assert!(held.len() < 64, "the backlog never filled");
    }
    (listener, held, address.to_string())
}

/// The "Done when" of issue 12: while a tcp probe waits on an address that never
/// answers, the keeper still answers a stop at once.
#[test]
fn the_keeper_answers_a_stop_while_a_tcp_probe_hangs() {
    let (_listener, _held, address) = silent_listener();
    let env = TestEnv::new().daemon(
        "web",
        &format!("command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\nready = {{ tcp = \"{address}\" }}\nready_timeout = \"60s\"\nstop_timeout = \"2s\"\n"),
    );
    let (start, probe) = start_until_probing(&env);
    let (took, code, stderr) = stop_keeper(&env, start);
    assert!(took < Duration::from_secs(5), "the stop took {took:?}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("stopped before it was up"), "{stderr}");
    assert!(!is_alive(probe), "the tcp probe survived the stop");
    env.dmgr(&["stop", "web"]).success();
}

/// Serves every connection with `status` as its HTTP status line, until dropped.
fn http_server(status: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 1024];
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.read(&mut request);
            let _ = stream
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        }
    });
    address
}

/// An http readiness check passes on 2xx or 3xx and fails on anything else.
#[test]
fn an_http_check_passes_on_2xx_and_3xx_only() {
    let found = http_server("302 Found");
    let broken = http_server("500 Internal Server Error");
    let daemon = |address: &str| {
        format!("command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\nready = {{ http = \"http://{address}/healthz\" }}\nready_timeout = \"1s\"\n")
    };
    let env = TestEnv::new()
        .daemon("web", &daemon(&found))
        .daemon("bad", &daemon(&broken));
    env.dmgr(&["start", "web"]).success();
    let events = env.events("web");
    assert!(events.contains("ready"), "{events}");
    env.dmgr(&["start", "bad"])
        .code(1)
        .stderr_has("not ready within ready_timeout");
}

//! Issue 27: sockets held by the keeper. Each test looks where the facts are: the
//! daemon's `/proc/PID/fd` and `environ`, what answers on the socket, who holds it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::support::{environ, free_port, is_alive, sigkill, wait_until, TestEnv};

/// An HTTP server on the socket at fd 3, answering each request with its uid and PID:
/// Debian's python3, which any user can run. On SIGTERM it stops accepting and exits
/// once the request it serves is answered, as gunicorn and uvicorn do.
const SERVE_FD3: &str = r#"import os, signal, socket
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
s = socket.socket(fileno=3)
s.settimeout(0.05)
while not stop:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    c.recv(4096)
    body = ("%d %d" % (os.getuid(), os.getpid())).encode()
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    c.close()
"#;

/// The body of a GET to `port`, within 10 s.
fn get(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
}

/// Promise 8 and the socket-activation protocol: a daemon with a tcp and a unix socket
/// has fds 0-4 and nothing else, 3 and 4 being those sockets, and `LISTEN_PID` names
/// the daemon's own PID.
#[test]
fn a_daemon_with_a_tcp_and_a_unix_socket_has_exactly_fds_0_to_4_and_listen_pid_is_its_own() {
    // Reserved until the end of the test, after the environment's cleanup.
    let reserved = free_port();
    let port = reserved.number();
    let env = TestEnv::new();
    let unix = env.root().join("admin.sock");
    env.write(
        "web",
        &format!(
            "command = \"sleep 1000\"\nsockets = {{ http = \"tcp://127.0.0.1:{port}\", admin = \"unix:{}\" }}\n",
            unix.display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").expect("a pid");
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    fds.sort_unstable();
    assert_eq!(fds, [0, 1, 2, 3, 4]);
    for fd in [3, 4] {
        let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
        assert!(link.to_string_lossy().starts_with("socket:["), "{link:?}");
    }
    let vars = environ(pid);
    let var = |key: &str| vars.get(key).cloned();
    assert_eq!(var("LISTEN_PID"), Some(pid.to_string()));
    assert_eq!(var("LISTEN_FDS").as_deref(), Some("2"));
    assert_eq!(var("LISTEN_FDNAMES").as_deref(), Some("http:admin"));
    // Both listen (nobody accepts: the kernel queues the connections), and the unix
    // socket's file has the documented mode.
    TcpStream::connect(("127.0.0.1", port)).expect("the tcp socket listens");
    std::os::unix::net::UnixStream::connect(&unix).expect("the unix socket listens");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&unix).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    // `status` and `list --json` show them.
    let entry = env.entry("web");
    assert_eq!(entry["sockets"][0]["name"], "http");
    assert_eq!(
        entry["sockets"][0]["address"],
        format!("tcp://127.0.0.1:{port}")
    );
    assert_eq!(entry["sockets"][1]["fd"], 4);
    env.dmgr(&["status", "web"])
        .stdout_has(&format!("http tcp://127.0.0.1:{port} (fd 3)"));
}

/// `{fd:NAME}` becomes the socket's fd number in argv and in `env` values.
#[test]
fn fd_names_become_fd_numbers_in_argv_and_env() {
    let (a, b) = (free_port(), free_port());
    let env = TestEnv::new().daemon(
        "web",
        &format!(
            "command = [\"sh\", \"-c\", \"echo argv=$0 env=$NGINX; exec sleep 1000\", \"--fd={{fd:admin}}\"]\n\
             env = {{ NGINX = \"{{fd:http}};{{fd:admin}};\" }}\n\
             sockets = {{ http = \"tcp://127.0.0.1:{a}\", admin = \"tcp://127.0.0.1:{b}\" }}\n"
        ),
    );
    env.dmgr(&["start", "web"]).success();
    wait_until("the line in the log", Duration::from_secs(10), || {
        env.log("web").contains("argv=")
    });
    assert_eq!(env.log("web"), "argv=--fd=4 env=3;4;\n");
}

/// A root keeper binds a port below 1024 before its daemon drops to `nobody`, which
/// then serves on it.
#[test]
fn an_unprivileged_daemon_serves_a_port_below_1024_bound_by_its_keeper() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to bind a port below 1024");
        return;
    }
    let Some(port) = (900..1024).find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok()) else {
        panic!("no free port from 900 to 1023");
    };
    let env = TestEnv::new();
    let script = env.root().join("serve.py");
    std::fs::write(&script, SERVE_FD3).unwrap();
    env.write(
        "web",
        &format!(
            "command = [\"/usr/bin/python3\", \"-c\", '''{SERVE_FD3}''']\nuser = \"nobody\"\n\
             sockets = {{ http = \"tcp://127.0.0.1:{port}\" }}\n"
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    assert_eq!(get(port), format!("65534 {pid}"));
}

/// Binding an address in use fails `start`, naming the socket, its address, the reason
/// and the process that holds it; nothing is left running.
#[test]
fn an_address_in_use_fails_start_naming_the_address_and_its_holder() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let env = TestEnv::new().daemon(
        "web",
        &format!("command = \"sleep 1000\"\nsockets = {{ http = \"tcp://127.0.0.1:{port}\" }}\n"),
    );
    let run = env.dmgr(&["start", "web"]).code(1);
    let text = run.stderr();
    assert!(
        text.contains(&format!(
            "cannot bind socket `http` (tcp://127.0.0.1:{port}): Address already in use; held by "
        )),
        "{text}"
    );
    // This process, and perhaps a child another test has just forked and not yet
    // exec'd, which holds a copy of the listener until its exec closes it.
    assert!(
        text.contains(&format!("pid {} (", std::process::id())),
        "{text}"
    );
    assert!(env.pid("web").is_none());
    assert!(!env.pidfile_is_locked("web"));
}

/// Promise 11, a crash: while the keeper restarts its daemon, a connection waits in the
/// kernel's queue instead of being refused, and the next daemon answers it.
#[test]
fn a_connection_made_while_the_daemon_is_down_after_a_crash_waits_and_is_answered() {
    // Reserved until the end of the test, after the environment's cleanup.
    let reserved = free_port();
    let port = reserved.number();
    let env = TestEnv::new().daemon(
        "web",
        &format!(
            "command = [\"/usr/bin/python3\", \"-c\", '''{SERVE_FD3}''']\nrestart_delay = \"300ms\"\n\
             sockets = {{ http = \"tcp://127.0.0.1:{port}\" }}\n"
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let old = env.pid("web").unwrap();
    assert!(get(port).ends_with(&format!(" {old}")));
    sigkill(old).unwrap();
    // Once it is dead (a request it had accepted would die with it).
    wait_until("the daemon is dead", Duration::from_secs(10), || {
        !is_alive(old)
    });
    // Made while no daemon runs (the keeper waits restart_delay): queued, not refused.
    let body = get(port);
    let new = env.wait_for_restart("web", old);
    assert_eq!(body, format!("0 {new}"));
}

/// A start-first daemon for the tests: the fd-3 server, ready once `ROOT/broken` is
/// absent (so that a test can make the next generation fail its check).
fn start_first(env: &TestEnv, port: u16, extra: &str) {
    let broken = env.root().join("broken");
    env.write(
        "web",
        &format!(
            "command = [\"/usr/bin/python3\", \"-c\", '''{SERVE_FD3}''']\nrestart_mode = \"start-first\"\n\
             start_wait = \"100ms\"\nready = {{ exec = [\"sh\", \"-c\", \"test ! -e {}\"] }}\n\
             sockets = {{ http = \"tcp://127.0.0.1:{port}\" }}\n{extra}",
            broken.display()
        ),
    );
}

/// Promise 11: `dmgr restart` of a start-first daemon starts the next generation on the
/// held socket, stops the old one once the new one is ready, and a client that sends
/// requests without pause meanwhile sees no failure.
#[test]
fn a_start_first_restart_under_load_loses_no_request() {
    // Reserved until the end of the test, after the environment's cleanup.
    let reserved = free_port();
    let port = reserved.number();
    let env = TestEnv::new();
    start_first(&env, port, "");
    env.dmgr(&["start", "web"]).success();
    let first = env.pid("web").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut sent, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sent += 1;
                let answer = std::panic::catch_unwind(|| get(port));
                if let Err(e) = answer {
                    failed.push(format!("{e:?}"));
                }
            }
            (sent, failed)
        })
    };
    let mut pids = vec![first];
    for _ in 0..3 {
        let run = env.dmgr(&["restart", "web"]).success();
        let pid = env.pid("web").unwrap();
        assert!(run
            .stdout()
            .contains(&format!("web: restarted (pid {pid})")));
        assert!(!pids.contains(&pid), "{pids:?} {pid}");
        pids.push(pid);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, failed) = client.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: {failed:?}",
        failed.len()
    );
    assert!(sent > 10, "{sent}");
    // The keeper is the same: the socket never closed.
    assert_eq!(get(port), format!("0 {}", pids[3]));
    let events = env.events("web");
    assert!(
        events.contains("generation 3, replaced by generation 4"),
        "{events}"
    );
}

/// A start-first restart whose new generation fails its `ready` check: the new one is
/// stopped, the old one keeps serving, `restart` exits 1 and the history says
/// `rollback` with the reason.
#[test]
fn a_new_generation_that_fails_ready_rolls_back_and_the_old_one_still_answers() {
    // Reserved until the end of the test, after the environment's cleanup.
    let reserved = free_port();
    let port = reserved.number();
    let env = TestEnv::new();
    start_first(&env, port, "ready_timeout = \"1s\"\n");
    env.dmgr(&["start", "web"]).success();
    let old = env.pid("web").unwrap();
    std::fs::write(env.root().join("broken"), "").unwrap();
    let run = env.dmgr(&["restart", "web"]).code(1);
    assert!(
        run.stderr().contains("rolled back: generation 2")
            && run
                .stderr()
                .contains("was not ready within ready_timeout (1s)")
            && run
                .stderr()
                .contains(&format!("generation 1 (pid {old}) keeps serving")),
        "{}",
        run.stderr()
    );
    assert_eq!(env.pid("web"), Some(old));
    // The failed generation had stop_signal; once it is gone, the old one answers.
    let events = env.events("web");
    let failed: i32 = events
        .lines()
        .find(|l| l.contains("rollback"))
        .and_then(|l| l.split("(pid ").nth(1))
        .and_then(|l| l.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rollback naming a pid in {events}"));
    wait_until(
        "the failed generation is gone",
        Duration::from_secs(10),
        || !is_alive(failed),
    );
    assert_eq!(get(port), format!("0 {old}"));
    // The failed generation is gone, and the old one is still the one listed.
    assert_eq!(env.entry("web")["pid"], old);
    assert_eq!(env.entry("web")["status"], "running");
}

/// Issue 27: the old generation dies while the new one starts. The keeper carries on
/// with the new one alone, and `dmgr restart` answers as soon as it is up (with
/// `ready_timeout` at 60 s, waiting for that would show).
#[test]
fn an_old_generation_that_dies_during_a_start_first_restart_leaves_the_new_one_serving() {
    // Reserved until the end of the test, after the environment's cleanup.
    let reserved = free_port();
    let port = reserved.number();
    let env = TestEnv::new();
    let hold = env.root().join("hold");
    env.write(
        "web",
        &format!(
            "command = [\"sh\", \"-c\", '''sleep 1000 & exec /usr/bin/python3 -c \"$0\"''', '''{SERVE_FD3}''']\n\
             restart_mode = \"start-first\"\nstart_wait = \"100ms\"\nready_timeout = \"60s\"\n\
             ready = {{ exec = [\"sh\", \"-c\", \"test ! -e {}\"] }}\n\
             sockets = {{ http = \"tcp://127.0.0.1:{port}\" }}\n",
            hold.display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let old = env.pid("web").unwrap();
    // The new generation waits for `hold` to go before it is ready.
    std::fs::write(&hold, "").unwrap();
    let began = std::time::Instant::now();
    let restart = env.command(&["restart", "web"]).spawn().unwrap();
    wait_until("the new generation starts", Duration::from_secs(10), || {
        env.pid("web").is_some_and(|p| p != old)
    });
    let new = env.pid("web").unwrap();
    // Its main process's child in its group, left behind when it dies.
    let left: i32 = std::fs::read_to_string(format!("/proc/{old}/task/{old}/children"))
        .unwrap()
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the old generation's sleep");
    sigkill(old).unwrap();
    wait_until(
        "the old generation is dead",
        Duration::from_secs(10),
        || env.events("web").contains("carries on alone"),
    );
    // What it left gets stop_signal: it does not serve on beside the new generation.
    wait_until("what it left is gone", Duration::from_secs(10), || {
        !is_alive(left)
    });
    std::fs::remove_file(&hold).unwrap();
    let output = crate::support::Run::try_wait(restart, Duration::from_secs(60)).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("web: restarted (pid {new})")),
        "{stdout}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(get(port), format!("0 {new}"));
    assert_eq!(env.entry("web")["status"], "running");
    assert_eq!(env.entry("web")["pid"], new);
}

/// A client that sends requests to `port` without pause until the flag is set; its
/// thread returns how many it sent and each failure.
fn load(
    port: u16,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<(usize, Vec<String>)>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut sent, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sent += 1;
                if let Err(e) = std::panic::catch_unwind(|| get(port)) {
                    failed.push(format!("{e:?}"));
                }
            }
            (sent, failed)
        })
    };
    (stop, client)
}

/// Ends `load`'s client and checks it sent requests and none failed.
fn no_request_failed(
    (stop, client): (
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<(usize, Vec<String>)>,
    ),
) {
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, failed) = client.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: {failed:?}",
        failed.len()
    );
    assert!(sent > 10, "{sent}");
}

/// Promise 11, stop-first: `dmgr restart` of a daemon with sockets is done by its
/// keeper, which holds the socket while the old process stops and the new one starts:
/// connections made meanwhile wait in the kernel's queue, and none is refused.
#[test]
fn a_stop_first_restart_of_a_socket_daemon_keeps_its_keeper_and_refuses_no_connection() {
    // Reserved until the end of the test, after the environment's cleanup.
    let reserved = free_port();
    let port = reserved.number();
    let env = TestEnv::new().daemon(
        "web",
        &format!(
            "command = [\"/usr/bin/python3\", \"-c\", '''{SERVE_FD3}''']\nstart_wait = \"100ms\"\n\
             sockets = {{ http = \"tcp://127.0.0.1:{port}\" }}\n"
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let keeper = env.keeper_pid("web").unwrap();
    let mut pids = vec![env.pid("web").unwrap()];
    let client = load(port);
    for _ in 0..3 {
        let run = env.dmgr(&["restart", "web"]).success();
        let pid = env.pid("web").unwrap();
        assert!(
            run.stdout()
                .contains(&format!("web: restarted (pid {pid})")),
            "{}",
            run.stdout()
        );
        assert!(!pids.contains(&pid), "{pids:?} {pid}");
        pids.push(pid);
    }
    no_request_failed(client);
    assert_eq!(env.keeper_pid("web"), Some(keeper), "the same keeper");
    assert_eq!(get(port), format!("0 {}", pids[3]));
    assert_eq!(env.entry("web")["restarts"], 0);
    // A changed socket list needs a new keeper, and `restart` says so.
    let reserved_other = free_port();
    let other = reserved_other.number();
    env.write(
        "web",
        &format!(
            "command = [\"/usr/bin/python3\", \"-c\", '''{SERVE_FD3}''']\nstart_wait = \"100ms\"\n\
             sockets = {{ http = \"tcp://127.0.0.1:{other}\" }}\n"
        ),
    );
    env.dmgr(&["restart", "web"])
        .success()
        .stdout_has("web: restarting with a new keeper (sockets changed");
    assert_ne!(env.keeper_pid("web"), Some(keeper));
    let new = env.pid("web").unwrap();
    assert_eq!(get(other), format!("0 {new}"));
}

/// Issue 27: `apply` after a change of `env` restarts a start-first daemon in its
/// keeper, the next generation beside the old one: under load, no request fails.
#[test]
fn apply_of_a_changed_start_first_daemon_starts_the_new_generation_first_and_loses_no_request() {
    // Reserved until the end of the test, after the environment's cleanup.
    let reserved = free_port();
    let port = reserved.number();
    let env = TestEnv::new();
    start_first(&env, port, "");
    env.dmgr(&["start", "web"]).success();
    let keeper = env.keeper_pid("web").unwrap();
    let old = env.pid("web").unwrap();
    let client = load(port);
    start_first(&env, port, "env = { VERSION = \"2\" }\n");
    env.dmgr(&["apply"])
        .success()
        .stdout_has("web: restarted (changed: env)");
    no_request_failed(client);
    let new = env.pid("web").unwrap();
    assert_ne!(new, old);
    assert_eq!(env.keeper_pid("web"), Some(keeper), "the same keeper");
    assert_eq!(environ(new)["VERSION"], "2");
    let events = env.events("web");
    assert!(
        events.contains("generation 1, replaced by generation 2"),
        "{events}"
    );
    assert!(!events.contains("no supervision key changed"), "{events}");
    assert_eq!(get(port), format!("0 {new}"));
}

/// Issue 27: a failed health check of a start-first daemon starts the next generation
/// beside the unhealthy one, which serves until the new one is up: no request fails.
#[test]
fn a_health_restart_of_a_start_first_daemon_loses_no_request() {
    // Reserved until the end of the test, after the environment's cleanup.
    let reserved = free_port();
    let port = reserved.number();
    let env = TestEnv::new();
    let sick = env.root().join("sick");
    start_first(
        &env,
        port,
        &format!(
            "health = {{ exec = [\"sh\", \"-c\", \"test ! -e {}\"] }}\nhealth_interval = \"1s\"\nhealth_failures = 1\n",
            sick.display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let keeper = env.keeper_pid("web").unwrap();
    let old = env.pid("web").unwrap();
    let client = load(port);
    std::fs::write(&sick, "").unwrap();
    wait_until("the check fails", Duration::from_secs(20), || {
        env.events("web").contains(" unhealthy ")
    });
    std::fs::remove_file(&sick).unwrap();
    wait_until(
        "the old generation is replaced",
        Duration::from_secs(20),
        || {
            env.events("web")
                .contains("generation 1, replaced by generation 2")
        },
    );
    wait_until(
        "the old generation is gone",
        Duration::from_secs(20),
        || !is_alive(old),
    );
    no_request_failed(client);
    let new = env.pid("web").unwrap();
    assert_ne!(new, old);
    assert_eq!(env.keeper_pid("web"), Some(keeper));
    assert!(env
        .events("web")
        .contains("start-first (unhealthy): generation 2 starts beside generation 1"));
    assert_eq!(env.entry("web")["restarts"], 1);
    assert_eq!(get(port), format!("0 {new}"));
}

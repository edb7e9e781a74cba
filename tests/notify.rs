//! Issue 26: the notify protocol. dmgr as a sender: `start --all` tells the manager
//! above it (the boot unit, `Type=notify`) when every daemon it started is up.

use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::TestEnv;

/// A manager's notify socket at `path`: every datagram it receives, as text, on the
/// channel (a passed descriptor is closed by the kernel as the datagram is read, which
/// answers a `BARRIER=1`).
fn manager_socket(path: &std::path::Path) -> mpsc::Receiver<String> {
    let socket = UnixDatagram::bind(path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buffer) {
            if tx
                .send(String::from_utf8_lossy(&buffer[..n]).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    rx
}

/// `start --all` sends READY=1, with a status line, once every daemon it started is
/// up (its own output says so first), then waits on a barrier; a named start sends
/// nothing, and neither does a start with no NOTIFY_SOCKET.
#[test]
fn start_all_tells_its_manager_ready_once_every_daemon_is_up() {
    let env = TestEnv::new()
        .daemon("web", "command = \"sleep 100\"\nstart_wait = \"300ms\"\n")
        .daemon("db", "command = \"sleep 100\"\nstart_wait = \"100ms\"\n")
        .daemon("broken", "command = \"/nonexistent/program\"\n");
    let path = env.root().join("manager.notify");
    let heard = manager_socket(&path);
    env.dmgr_env(&["start", "web"], &[("NOTIFY_SOCKET", path.as_os_str())])
        .success();
    assert!(heard.recv_timeout(Duration::from_millis(200)).is_err());
    env.dmgr(&["stop", "web"]).success();

    let run = env
        .dmgr_env(&["start", "--all"], &[("NOTIFY_SOCKET", path.as_os_str())])
        .code(1);
    assert!(run.stdout().contains("web: started") && run.stdout().contains("db: started"));
    let ready = heard.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        ready,
        "READY=1\nSTATUS=2 daemons up, 1 failed to start (`dmgr list` says which)\n"
    );
    assert_eq!(
        heard.recv_timeout(Duration::from_secs(5)).unwrap(),
        "BARRIER=1\n"
    );
    // The barrier was answered: no warning that the manager did not listen.
    assert!(!run.stderr().contains("warning"), "{}", run.stderr());
}

/// A NOTIFY_SOCKET nobody listens on is a warning, never a failed start.
#[test]
fn a_manager_that_does_not_listen_is_a_warning() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 100\"\nstart_wait = \"50ms\"\n");
    let path = env.root().join("nobody.notify");
    env.dmgr_env(&["start", "--all"], &[("NOTIFY_SOCKET", path.as_os_str())])
        .success()
        .stdout_has("web: started")
        .stderr_has("dmgr: warning: cannot reach NOTIFY_SOCKET=");
}

/// The `sd_notify_daemon` example (the `sd-notify` crate as a sender), built if it is
/// not yet: `cargo test` builds examples, a filtered run may not have.
fn notify_daemon() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dmgr = std::path::Path::new(env!("CARGO_BIN_EXE_dmgr"));
            let path = dmgr.parent().unwrap().join("examples/sd_notify_daemon");
            if !path.exists() {
                let cargo = std::env::var_os("CARGO").unwrap_or("cargo".into());
                let built = std::process::Command::new(cargo)
                    .args(["build", "--example", "sd_notify_daemon"])
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .status()
                    .unwrap();
                assert!(built.success(), "cargo build --example sd_notify_daemon");
            }
            path
        })
        .clone()
}

/// A daemon file running `sd_notify_daemon` with `steps`, then `keys`.
fn notify_toml(steps: &str, keys: &str) -> String {
    let argv: Vec<String> = std::iter::once(notify_daemon().display().to_string())
        .chain(steps.split_whitespace().map(str::to_string))
        .map(|a| format!("{a:?}"))
        .collect();
    format!(
        "command = [{}]\ntype = \"notify\"\nstart_wait = \"0s\"\n{keys}",
        argv.join(", ")
    )
}

/// The kinds of `name`'s events, in order.
fn event_kinds(env: &TestEnv, name: &str) -> Vec<String> {
    env.dmgr(&["events", name, "--json", "-n", "1000"])
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|e| e["event"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `start` returns once the daemon says READY=1, which it does only after asking for
/// more time than `ready_timeout` (EXTEND_TIMEOUT_USEC=); its STATUS= lines show in
/// `list --json` and `status`, and as `status` events.
#[test]
fn a_notify_daemon_is_started_by_its_ready_with_more_time_and_a_status() {
    let env = TestEnv::new().daemon(
        "web",
        &notify_toml(
            "status:warming extend:3000 sleep:1500 ready status:serving forever",
            "ready_timeout = \"1s\"\n",
        ),
    );
    let begun = std::time::Instant::now();
    env.dmgr(&["start", "web"])
        .success()
        .stdout_has("web: started");
    assert!(
        begun.elapsed() >= Duration::from_millis(1400),
        "it waited for READY=1"
    );
    crate::support::wait_until(
        "the status line is `serving`",
        Duration::from_secs(5),
        || env.entry("web")["status_text"] == "serving",
    );
    env.dmgr(&["status", "web"]).success().stdout_has("serving");
    let kinds = event_kinds(&env, "web");
    assert!(kinds.iter().any(|k| k == "status"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "ready"), "{kinds:?}");
    let socket = env.run_dir().join("web.notify");
    assert!(socket.exists());
    env.dmgr(&["stop", "web"]).success();
    assert!(!socket.exists(), "the keeper removes its socket");
}

/// Without EXTEND_TIMEOUT_USEC=, a daemon that is slower than `ready_timeout` to say
/// READY=1 fails its start, and is stopped.
#[test]
fn a_notify_daemon_that_says_nothing_in_time_fails_its_start() {
    let env = TestEnv::new().daemon(
        "web",
        &notify_toml("sleep:3000 ready forever", "ready_timeout = \"500ms\"\n"),
    );
    env.dmgr(&["start", "web"])
        .code(1)
        .stderr_has("never said READY=1");
    assert_eq!(env.entry("web")["status"], "failed");
}

/// Promise 12: a stranger's READY=1 on the daemon's socket is dropped and counted, and
/// the start goes on waiting for the daemon's own.
#[test]
fn a_strangers_ready_is_dropped_and_counted() {
    let env = TestEnv::new().daemon(
        "web",
        &notify_toml("sleep:1500 ready forever", "ready_timeout = \"10s\"\n"),
    );
    let start = env.command(&["start", "web"]).spawn().unwrap();
    let socket = env.run_dir().join("web.notify");
    crate::support::wait_until("the socket is there", Duration::from_secs(5), || {
        socket.exists()
    });
    let stranger = UnixDatagram::unbound().unwrap();
    stranger.send_to(b"READY=1\n", &socket).unwrap();
    crate::support::wait_until("the stranger is counted", Duration::from_secs(5), || {
        env.dmgr(&["status", "web", "--json"])
            .stdout()
            .contains("\"refused\": 1")
    });
    assert_eq!(env.entry("web")["status"], "starting", "not believed");
    let out = crate::support::Run::try_wait(start, Duration::from_secs(30)).unwrap();
    assert!(out.status.success());
    env.dmgr(&["status", "web"])
        .success()
        .stdout_has("1 from senders not believed");
}

/// Promise 12 with `systemd-notify`, run by the test (not a process of the daemon's).
#[test]
fn systemd_notify_from_outside_is_not_believed() {
    let test = "systemd_notify_from_outside_is_not_believed";
    let Some(tool) = crate::support::required("systemd-notify", test) else {
        return;
    };
    let env = TestEnv::new().daemon(
        "web",
        &notify_toml("sleep:800 ready forever", "ready_timeout = \"10s\"\n"),
    );
    env.dmgr(&["start", "web"]).success();
    let socket = env.run_dir().join("web.notify");
    let sent = std::process::Command::new(tool)
        .args(["--status=impostor"])
        .env("NOTIFY_SOCKET", &socket)
        .status()
        .unwrap();
    assert!(sent.success());
    crate::support::wait_until("the stranger is counted", Duration::from_secs(5), || {
        !env.dmgr(&["status", "web", "--json"])
            .stdout()
            .contains("\"notify_dropped\": null")
    });
    assert_ne!(env.entry("web")["status_text"], "impostor");
}

/// A run directory whose path does not fit a socket address: the keeper binds an
/// abstract socket (`NOTIFY_SOCKET=@...`), and the protocol works as well, here with
/// a Python daemon that reads `@` as sd_notify(3) does (the `sd-notify` crate 0.5
/// does not).
#[test]
fn a_run_directory_of_150_characters_uses_an_abstract_socket() {
    let test = "a_run_directory_of_150_characters_uses_an_abstract_socket";
    let Some(python) = crate::support::required("python3", test) else {
        return;
    };
    let run = format!("run-{}", "r".repeat(150));
    let env = TestEnv::named("daemons.d".as_ref(), run.as_ref());
    let script = "import os, socket, time\n\
        a = os.environ['NOTIFY_SOCKET']\n\
        a = '\\0' + a[1:] if a.startswith('@') else a\n\
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
        time.sleep(0.3)\n\
        s.sendto(b'READY=1\\nSTATUS=up', a)\n\
        time.sleep(100)\n";
    env.write(
        "web",
        &format!(
            "command = [{:?}, \"-c\", {script:?}]\ntype = \"notify\"\nstart_wait = \"0s\"\nready_timeout = \"10s\"\n",
            python.display().to_string()
        ),
    );
    assert!(env.run_dir().as_os_str().len() >= 150);
    env.dmgr(&["start", "web"]).success();
    let status = env.dmgr(&["status", "web", "--json"]).stdout();
    assert!(
        status.contains("\"notify_socket\": \"@dmgr-notify-web-"),
        "{status}"
    );
    assert_eq!(env.entry("web")["status_text"], "up");
    env.dmgr(&["stop", "web"]).success();
}

/// `dmgr reload` waits for the daemon's RELOADING=1 ... READY=1 and says so; an
/// ERRNO= instead is a failed reload, exit 1, and the daemon runs on.
#[test]
fn reload_reports_the_daemons_verdict() {
    let env = TestEnv::new();
    let fail = env.root().join("fail-reload");
    env.write(
        "web",
        &notify_toml(
            "ready forever",
            &format!(
                "env = {{ FAIL_RELOAD = {:?} }}\n",
                fail.display().to_string()
            ),
        ),
    );
    env.dmgr(&["start", "web"]).success();
    env.dmgr(&["reload", "web"])
        .success()
        .stdout_has("web: reloaded (pid")
        .stdout_has("the daemon said READY=1");
    std::fs::write(&fail, "").unwrap();
    env.dmgr(&["reload", "web"])
        .code(1)
        .stderr_has("reload failed: ERRNO=22 (Invalid argument)");
    assert_eq!(env.entry("web")["status"], "running");
    let kinds = event_kinds(&env, "web");
    for kind in ["reloading", "reloaded", "reload-failed"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}: {kinds:?}");
    }
}

/// STOPPING=1: the daemon's own stop is not restarted, even with `restart = "always"`.
#[test]
fn stopping_is_a_stop_the_daemon_began() {
    let env = TestEnv::new().daemon(
        "web",
        &notify_toml(
            "ready sleep:300 stopping sleep:100 exit:0",
            "restart = \"always\"\nrestart_delay = \"100ms\"\n",
        ),
    );
    env.dmgr(&["start", "web"]).success();
    crate::support::wait_until("web has stopped", Duration::from_secs(10), || {
        env.entry("web")["status"] == "stopped"
    });
    assert_eq!(env.entry("web")["restarts"], 0);
    assert!(event_kinds(&env, "web").iter().any(|k| k == "stopping"));
}

/// MAINPID=: the process the daemon names (a process of its own) is supervised once
/// the one that named it exits, with no restart; `stop` stops it.
#[test]
fn mainpid_hands_supervision_to_the_named_process() {
    let env = TestEnv::new().daemon("web", &notify_toml("ready mainpid sleep:300 exit:0", ""));
    env.dmgr(&["start", "web"]).success();
    let first = env.entry("web")["pid"].as_i64().unwrap();
    crate::support::wait_until(
        "the named process took over",
        Duration::from_secs(10),
        || {
            let entry = env.entry("web");
            entry["status"] == "running" && entry["pid"].as_i64().is_some_and(|p| p != first)
        },
    );
    let second = env.entry("web")["pid"].as_i64().unwrap() as i32;
    env.track(second);
    assert_eq!(env.entry("web")["restarts"], 0);
    assert!(event_kinds(&env, "web")
        .iter()
        .any(|k| k == "main-pid-changed"));
    env.dmgr(&["stop", "web"]).success();
    assert!(
        !crate::support::is_alive(second),
        "stop stops the named process"
    );
}

/// The watchdog: 100 pings 50 ms apart keep a daemon with `watchdog = "200ms"` alive
/// (5 s, the minute of the issue at 1/12 of the scale: each ping is what counts); once
/// they stop, the missed ping is a `watchdog` event, `watchdog_signal` (ABRT) and a
/// restart. The daemon finds WATCHDOG_USEC and its own PID in WATCHDOG_PID
/// (`sd_notify::watchdog_enabled` checks both: `pings` panics without them).
#[test]
fn the_watchdog_restarts_a_daemon_whose_pings_stop() {
    let env = TestEnv::new().daemon(
        "web",
        &notify_toml(
            "ready pings-for:5000 forever",
            "watchdog = \"200ms\"\nrestart_delay = \"100ms\"\n",
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let first = env.entry("web")["pid"].as_i64().unwrap() as i32;
    let began = std::time::Instant::now();
    let second = env.wait_for_restart("web", first);
    assert!(
        began.elapsed() >= Duration::from_millis(4800),
        "restarted after {:?}, while it pinged",
        began.elapsed()
    );
    assert!(second != first);
    let events = env.events("web");
    assert!(events.contains("watchdog"), "{events}");
    assert!(events.contains("signal ABRT"), "{events}");
}

/// `ready = { log }`: `start` returns once a line of the daemon's output matches, not
/// before (the line comes 500 ms after `start_wait`), and a line cut in two by the
/// pipe still matches.
#[test]
fn ready_log_waits_for_the_line() {
    let env = TestEnv::new().daemon(
        "db",
        "command = [\"sh\", \"-c\", \"echo booting; sleep 0.6; printf 'database system is ready'; sleep 0.1; echo ' to accept connections'; exec sleep 100\"]\nready = { log = \"ready to accept connections$\" }\nstart_wait = \"100ms\"\nready_timeout = \"10s\"\n",
    );
    let begun = std::time::Instant::now();
    env.dmgr(&["start", "db"]).success();
    assert!(
        begun.elapsed() >= Duration::from_millis(650),
        "{:?}",
        begun.elapsed()
    );
    assert!(env.log("db").contains("ready to accept connections"));
    assert!(event_kinds(&env, "db").iter().any(|k| k == "ready"));
}

/// `ready = { log }` that never matches fails the start at `ready_timeout`.
#[test]
fn ready_log_that_never_matches_fails_the_start() {
    let env = TestEnv::new().daemon(
        "db",
        "command = [\"sh\", \"-c\", \"echo not yet; exec sleep 100\"]\nready = { log = \"^ready$\" }\nstart_wait = \"0s\"\nready_timeout = \"600ms\"\n",
    );
    env.dmgr(&["start", "db"])
        .code(1)
        .stderr_has("no line of its output matched");
}

/// `ready = { fd = 3 }`: the daemon gets a pipe at fd 3, the one descriptor beyond
/// 0-2 (promise 8), and `start` returns once it writes a newline there.
#[test]
fn ready_fd_is_the_only_extra_descriptor_and_its_newline_is_ready() {
    let env = TestEnv::new().daemon(
        "s6",
        "command = [\"sh\", \"-c\", \"sleep 0.5; echo >&3; exec sleep 100\"]\nready = { fd = 3 }\nstart_wait = \"0s\"\nready_timeout = \"10s\"\n",
    );
    let begun = std::time::Instant::now();
    env.dmgr(&["start", "s6"]).success();
    assert!(
        begun.elapsed() >= Duration::from_millis(450),
        "{:?}",
        begun.elapsed()
    );
    let pid = env.entry("s6")["pid"].as_i64().unwrap();
    let mut numbers: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [0, 1, 2, 3]);
}

//! Issue 26 with real daemons that speak the notify protocol themselves: PostgreSQL
//! (Debian builds it with systemd support), redis (`--supervised systemd`) and
//! HAProxy (`-Ws`). Each is skipped with a reason where the program is missing, and
//! fails under `CI`, where `.ci/run` installs it.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{required, wait_until, TestEnv};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The program `name` in PostgreSQL 15's directory (Debian's), or on `PATH`.
fn postgres_tool(name: &str, test: &str) -> Option<std::path::PathBuf> {
    let debian = std::path::Path::new("/usr/lib/postgresql/15/bin").join(name);
    if debian.is_file() {
        return Some(debian);
    }
    required(name, test)
}

/// PostgreSQL as `type = "notify"` with no `ready` probe: `start` returns once the
/// postmaster says READY=1, and a client connects at once; `stop` is clean.
#[test]
fn postgres_is_ready_when_it_says_so() {
    let test = "postgres_is_ready_when_it_says_so";
    let tools = ["postgres", "initdb", "psql"].map(|p| postgres_tool(p, test));
    let [Some(postgres), Some(initdb), Some(psql)] = tools else {
        return;
    };
    let Some(user) = nix::unistd::User::from_name("postgres").ok().flatten() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: no postgres user under CI"
        );
        eprintln!("{test}: skipped: no postgres user to run PostgreSQL as");
        return;
    };
    let env = TestEnv::new();
    let dir = env.root().join("pg");
    std::fs::create_dir(&dir).unwrap();
    nix::unistd::chown(&dir, Some(user.uid), Some(user.gid)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.root(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let data = dir.join("data");
    let mut init = Command::new(&initdb);
    init.args([
        "-D",
        data.to_str().unwrap(),
        "-A",
        "trust",
        "-U",
        "postgres",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .env("HOME", &dir);
    std::os::unix::process::CommandExt::uid(&mut init, user.uid.as_raw());
    std::os::unix::process::CommandExt::gid(&mut init, user.gid.as_raw());
    assert!(init.status().unwrap().success(), "initdb failed");
    let port = free_port();
    let d = dir.display();
    env.write(
        "pg",
        &format!(
            "command = [\"{}\", \"-D\", \"{}\", \"-p\", \"{port}\", \"-k\", \"{d}\", \"-c\", \"listen_addresses=\"]\ntype = \"notify\"\nuser = \"postgres\"\nstop_signal = \"INT\"\nstop_timeout = \"60s\"\nready_timeout = \"60s\"\n",
            postgres.display(),
            data.display()
        ),
    );
    env.dmgr(&["start", "pg"]).success();
    let out = Command::new(&psql)
        .args([
            "-h",
            &d.to_string(),
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-Atc",
            "select 40 + 2",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "42",
        "a client connects at once: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = env.events("pg");
    assert!(events.contains("the daemon said READY=1"), "{events}");
    env.dmgr(&["stop", "pg"]).success();
}

/// redis with `--supervised systemd`: ready by its READY=1, its STATUS= line in
/// `list --json`; `stop` is a clean stop (its STOPPING=1 is no restart).
#[test]
fn redis_supervised_systemd_is_ready_and_says_its_status() {
    let test = "redis_supervised_systemd_is_ready_and_says_its_status";
    let Some(redis) = required("redis-server", test) else {
        return;
    };
    let env = TestEnv::new();
    let port = free_port();
    env.write(
        "cache",
        &format!(
            "command = [\"{}\", \"--port\", \"{port}\", \"--bind\", \"127.0.0.1\", \"--supervised\", \"systemd\", \"--save\", \"\", \"--dir\", \"{}\"]\ntype = \"notify\"\nstart_wait = \"0s\"\n",
            redis.display(),
            env.root().display()
        ),
    );
    env.dmgr(&["start", "cache"]).success();
    // Up at once: its port answers.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    wait_until("redis says it is ready", Duration::from_secs(5), || {
        env.entry("cache")["status_text"] == "Ready to accept connections"
    });
    env.dmgr(&["stop", "cache"]).success();
    let entry = env.entry("cache");
    assert_eq!(entry["status"], "stopped");
    assert_eq!(entry["restarts"], 0);
}

/// `GET /` from `port`, the body of the answer.
fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
}

/// HAProxy in master-worker mode (`-Ws`): `dmgr reload` waits for its RELOADING=1
/// ... READY=1 and reports it; a broken configuration makes `reload` exit 1 (its
/// `reload_command` checks it first, as Debian's unit does: HAProxy 2.6 says READY=1
/// even when the new configuration did not load) while the old one keeps serving.
#[test]
fn haproxy_ws_reload_reports_the_verdict() {
    let test = "haproxy_ws_reload_reports_the_verdict";
    let Some(haproxy) = required("haproxy", test) else {
        return;
    };
    let env = TestEnv::new();
    let port = free_port();
    let conf = env.root().join("haproxy.cfg");
    let write_conf = |version: &str, extra: &str| {
        std::fs::write(
            &conf,
            format!(
                "global\n{extra}defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind 127.0.0.1:{port}\n    http-request return status 200 content-type text/plain string \"hello {version}\\n\"\n"
            ),
        )
        .unwrap()
    };
    write_conf("v1", "");
    let (h, c) = (haproxy.display(), conf.display());
    env.write(
        "lb",
        &format!(
            "command = [\"{h}\", \"-Ws\", \"-f\", \"{c}\"]\ntype = \"notify\"\nstart_wait = \"0s\"\nreload_command = [\"sh\", \"-c\", \"{h} -c -q -f {c} && kill -USR2 $MAINPID\"]\n"
        ),
    );
    env.dmgr(&["start", "lb"]).success();
    assert_eq!(http_get(port).as_deref(), Some("hello v1\n"));
    let pid = env.entry("lb")["pid"].clone();

    write_conf("v2", "");
    let begun = Instant::now();
    env.dmgr(&["reload", "lb"])
        .success()
        .stdout_has("the daemon said READY=1");
    assert!(begun.elapsed() < Duration::from_secs(10));
    // Answered once the new workers serve.
    assert_eq!(http_get(port).as_deref(), Some("hello v2\n"));
    let events = env.events("lb");
    assert!(events.contains("the daemon said RELOADING=1"), "{events}");

    write_conf("v3", "    bogus-directive 1\n");
    env.dmgr(&["reload", "lb"])
        .code(1)
        .stderr_has("reload failed");
    assert_eq!(
        http_get(port).as_deref(),
        Some("hello v2\n"),
        "the old config serves"
    );
    let entry = env.entry("lb");
    assert_eq!(
        (entry["status"].as_str(), entry["pid"].clone()),
        (Some("running"), pid)
    );
    env.dmgr(&["stop", "lb"]).success();
}

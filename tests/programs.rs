//! The real programs dmgr was designed around, run as the man page's examples run
//! them: nginx and redis daemonizing themselves (`type = "forking"` with their own
//! pidfiles), PostgreSQL with its setsid(2) backends. Each test skips, saying why, when
//! its program is not installed (`.ci/run` does not install them).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{installed, is_alive, sigkill, stat, wait_until, KillOnDrop, TestEnv};

/// A TCP port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The live processes whose parent is `parent`.
fn children(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|s| s.ppid == parent) && is_alive(pid))
        .collect()
}

/// nginx as it daemonizes itself: `start` reports the master named in nginx's own
/// pidfile, `reload` runs `nginx -t` then sends HUP to `$MAINPID`, a SIGKILLed master
/// is restarted (its orphaned workers stopped first, so the port is free), and `stop`
/// leaves no nginx process and no pidfile.
#[test]
fn nginx_daemonizes_reloads_restarts_and_stops() {
    let Some(nginx) = installed("nginx", "nginx_daemonizes_reloads_restarts_and_stops") else {
        return;
    };
    let env = TestEnv::new();
    let dir = env.root().join("nginx");
    std::fs::create_dir(&dir).unwrap();
    let port = free_port();
    let conf = dir.join("nginx.conf");
    let pidfile = dir.join("nginx.pid");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "pid {d}/nginx.pid;\nerror_log stderr;\nworker_processes 2;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"hello\\n\"; }} }}\n}}\n"
        ),
    )
    .unwrap();
    let (nginx, conf) = (nginx.display(), conf.display());
    env.write(
        "web",
        &format!(
            "command = [\"{nginx}\", \"-c\", \"{conf}\"]\ntype = \"forking\"\npidfile = \"{}\"\nready = {{ tcp = \"127.0.0.1:{port}\" }}\nreload_command = [\"sh\", \"-c\", \"{nginx} -t -q -c {conf} && kill -HUP $MAINPID\"]\nstop_signal = \"QUIT\"\nrestart_delay = \"200ms\"\n",
            pidfile.display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let master = env.entry("web")["pid"].as_i64().unwrap() as i32;
    let pid_in_file =
        || -> Option<i32> { std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok() };
    assert_eq!(pid_in_file(), Some(master));
    assert_eq!(stat(master).unwrap().ppid, env.keeper_pid("web").unwrap());
    let workers = children(master);
    assert_eq!(workers.len(), 2, "two workers");

    env.dmgr(&["reload", "web"])
        .success()
        .stdout_has("web: reloaded");
    wait_until(
        "the old workers are replaced",
        Duration::from_secs(10),
        || workers.iter().all(|&w| !is_alive(w)) && children(master).len() == 2,
    );

    let workers = children(master);
    sigkill(master).unwrap();
    let master = env.wait_for_restart("web", master);
    assert!(
        workers.iter().all(|&w| !is_alive(w)),
        "the orphaned workers live on"
    );
    assert_eq!(pid_in_file(), Some(master));

    let workers = children(master);
    env.dmgr(&["stop", "web"]).success();
    assert!(!is_alive(master) && workers.iter().all(|&w| !is_alive(w)));
    assert!(!pidfile.exists(), "nginx's pidfile is left");
}

/// redis with `daemonize yes`: adopted through its pidfile, stopped by its
/// `stop_command` (`redis-cli shutdown`, which saves), restarted after a SIGKILL.
#[test]
fn redis_daemonizes_and_stops_with_its_stop_command() {
    let test = "redis_daemonizes_and_stops_with_its_stop_command";
    let (Some(server), Some(cli)) = (
        installed("redis-server", test),
        installed("redis-cli", test),
    ) else {
        return;
    };
    let env = TestEnv::new();
    let dir = env.root().join("redis");
    std::fs::create_dir(&dir).unwrap();
    let port = free_port();
    let pidfile = dir.join("redis.pid");
    let (server, cli, d) = (server.display(), cli.display(), dir.display());
    env.write(
        "cache",
        &format!(
            "command = [\"{server}\", \"--port\", \"{port}\", \"--bind\", \"127.0.0.1\", \"--daemonize\", \"yes\", \"--pidfile\", \"{d}/redis.pid\", \"--dir\", \"{d}\", \"--logfile\", \"{d}/redis.log\"]\ntype = \"forking\"\npidfile = \"{d}/redis.pid\"\nready = {{ exec = [\"{cli}\", \"-p\", \"{port}\", \"ping\"] }}\nstop_command = [\"{cli}\", \"-p\", \"{port}\", \"shutdown\"]\nrestart_delay = \"200ms\"\n"
        ),
    );
    env.dmgr(&["start", "cache"]).success();
    let pid = env.entry("cache")["pid"].as_i64().unwrap() as i32;
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        pid.to_string()
    );
    sigkill(pid).unwrap();
    let pid = env.wait_for_restart("cache", pid);
    env.dmgr(&["stop", "cache"]).success();
    assert!(!is_alive(pid));
    let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
    assert!(
        log.contains("User requested shutdown"),
        "redis-cli shutdown did not stop it:\n{log}"
    );
    assert!(!pidfile.exists());
}

/// PostgreSQL, whose backends each call setsid(2): with a CPU-bound query running,
/// `stop` (INT, its fast shutdown) leaves no backend, and `restart` works (no
/// "pre-existing shared memory block is still in use").
#[test]
fn postgres_stop_leaves_no_backend_and_restart_works() {
    let test = "postgres_stop_leaves_no_backend_and_restart_works";
    let tools = ["postgres", "initdb", "psql", "pg_isready"].map(|p| installed(p, test));
    let [Some(postgres), Some(initdb), Some(psql), Some(isready)] = tools else {
        return;
    };
    let env = TestEnv::new();
    let dir = env.root().join("pg");
    std::fs::create_dir(&dir).unwrap();
    // As root, PostgreSQL refuses to run: it runs as `postgres`, or `nobody`.
    let user = if is_root() {
        let name = ["postgres", "nobody"]
            .into_iter()
            .find(|n| nix::unistd::User::from_name(n).ok().flatten().is_some());
        let Some(name) = name else {
            eprintln!("{test}: skipped: no postgres or nobody user to run PostgreSQL as");
            return;
        };
        let u = nix::unistd::User::from_name(name).unwrap().unwrap();
        nix::unistd::chown(&dir, Some(u.uid), Some(u.gid)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(env.root(), std::fs::Permissions::from_mode(0o711)).unwrap();
        Some(u)
    } else {
        None
    };
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
    .stderr(Stdio::null());
    if let Some(u) = &user {
        std::os::unix::process::CommandExt::uid(&mut init, u.uid.as_raw());
        std::os::unix::process::CommandExt::gid(&mut init, u.gid.as_raw());
        init.env("HOME", &dir);
    }
    assert!(init.status().unwrap().success(), "initdb failed");
    let port = free_port();
    let (d, data_s) = (dir.display(), data.display());
    env.write(
        "pg",
        &format!(
            "command = [\"{}\", \"-D\", \"{data_s}\", \"-p\", \"{port}\", \"-k\", \"{d}\", \"-c\", \"listen_addresses=\"]\n{}ready = {{ exec = [\"{}\", \"-q\", \"-h\", \"{d}\", \"-p\", \"{port}\"] }}\nstop_signal = \"INT\"\nstop_timeout = \"60s\"\n",
            postgres.display(),
            user.as_ref().map_or(String::new(), |u| format!("user = \"{}\"\n", u.name)),
            isready.display(),
        ),
    );
    env.dmgr(&["start", "pg"]).success();
    let query = |sql: &str| {
        let mut command = Command::new(&psql);
        command
            .args([
                "-h",
                &d.to_string(),
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-Atc",
                sql,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        command
    };
    let busy = KillOnDrop(
        query("select count(*) from generate_series(1, 100000000000)")
            .spawn()
            .unwrap(),
    );
    let postmaster = env.entry("pg")["pid"].as_i64().unwrap() as i32;
    // The backend running the query: a child of the postmaster in a session of its own.
    let find_backend = || {
        children(postmaster).into_iter().find(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.contains("SELECT"))
        })
    };
    wait_until(
        "the query runs in a backend",
        Duration::from_secs(20),
        || find_backend().is_some(),
    );
    let backend = find_backend().unwrap();
    assert_eq!(
        stat(backend).unwrap().session,
        backend,
        "backends leave the postmaster's session"
    );
    let all: Vec<i32> = children(postmaster);
    env.track(backend);
    env.dmgr(&["stop", "pg"]).success();
    assert!(!is_alive(postmaster), "the postmaster survived stop");
    for pid in all {
        assert!(!is_alive(pid), "postgres process {pid} survived stop");
    }
    drop(busy);

    env.dmgr(&["start", "pg"]).success();
    let _busy = KillOnDrop(
        query("select count(*) from generate_series(1, 100000000000)")
            .spawn()
            .unwrap(),
    );
    env.dmgr(&["restart", "pg"]).success();
    let out = query("select 'up after restart'").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "up after restart"
    );
    assert!(!env.log("pg").contains("pre-existing shared memory block"));
    env.dmgr(&["stop", "pg"]).success();
    assert!(!Path::new(&format!("{}/postmaster.pid", data.display())).exists());
}

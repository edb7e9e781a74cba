//! The real programs dmgr was designed around, run as the man page's examples run
//! them: nginx and redis daemonizing themselves (`type = "forking"` with their own
//! pidfiles), PostgreSQL with its setsid(2) backends, and the servers that change
//! under dmgr (issue 23): haproxy reloaded with `-sf`, nginx's binary upgrade,
//! gunicorn's USR2, PostgreSQL stopped with `kill_mode = "mixed"`. Each test skips,
//! saying why, when its program is not installed, and fails instead where `CI` is set
//! (`.ci/run` installs them all).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{
    free_port, installed, is_alive, sigkill, stat, wait_until, KillOnDrop, Port, TestEnv,
};

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
    // Reserved until the end of the test, after the environment's cleanup.
    let port = free_port();
    let env = TestEnv::new();
    let dir = env.root().join("nginx");
    std::fs::create_dir(&dir).unwrap();
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
    // Reserved until the end of the test, after the environment's cleanup.
    let port = free_port();
    let env = TestEnv::new();
    let dir = env.root().join("redis");
    std::fs::create_dir(&dir).unwrap();
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

/// A PostgreSQL cluster made for one test, and the daemon `pg` that runs it.
struct Pg {
    env: TestEnv,
    dir: std::path::PathBuf,
    data: std::path::PathBuf,
    /// Dropped after `env`, which stops the server.
    port: Port,
    psql: std::path::PathBuf,
}

impl Pg {
    /// `initdb` in a temporary directory, and `daemons.d/pg.toml` running `postgres`
    /// on it with `extra` keys; `None` (the test skips) where PostgreSQL is missing.
    fn set_up(test: &str, extra: &str) -> Option<Pg> {
        let tools = ["postgres", "initdb", "psql", "pg_isready"].map(|p| installed(p, test));
        let [Some(postgres), Some(initdb), Some(psql), Some(isready)] = tools else {
            return None;
        };
        // Reserved until the end of the test, after the environment's cleanup.
        let port = free_port();
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
                return None;
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
        let (d, data_s) = (dir.display(), data.display());
        env.write(
            "pg",
            &format!(
                "command = [\"{}\", \"-D\", \"{data_s}\", \"-p\", \"{port}\", \"-k\", \"{d}\", \"-c\", \"listen_addresses=\"]\n{}ready = {{ exec = [\"{}\", \"-q\", \"-h\", \"{d}\", \"-p\", \"{port}\"] }}\nstop_signal = \"INT\"\nstop_timeout = \"60s\"\n{extra}",
                postgres.display(),
                user.as_ref().map_or(String::new(), |u| format!("user = \"{}\"\n", u.name)),
                isready.display(),
            ),
        );
        Some(Pg {
            env,
            dir,
            data,
            port,
            psql,
        })
    }

    /// `psql` running `sql`, its output piped.
    fn query(&self, sql: &str) -> Command {
        let mut command = Command::new(&self.psql);
        command
            .args([
                "-h",
                &self.dir.display().to_string(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-Atc",
                sql,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// The backend of the postmaster `postmaster` that runs a query with `text` in
    /// its title (a child of the postmaster in a session of its own).
    fn backend(&self, postmaster: i32, text: &str) -> Option<i32> {
        children(postmaster).into_iter().find(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.contains(text))
        })
    }
}

/// PostgreSQL, whose backends each call setsid(2): with a CPU-bound query running,
/// `stop` (INT, its fast shutdown) leaves no backend, and `restart` works (no
/// "pre-existing shared memory block is still in use").
#[test]
fn postgres_stop_leaves_no_backend_and_restart_works() {
    let test = "postgres_stop_leaves_no_backend_and_restart_works";
    let Some(pg) = Pg::set_up(test, "") else {
        return;
    };
    let env = &pg.env;
    env.dmgr(&["start", "pg"]).success();
    let busy = KillOnDrop(
        pg.query("select count(*) from generate_series(1, 100000000000)")
            .spawn()
            .unwrap(),
    );
    let postmaster = env.entry("pg")["pid"].as_i64().unwrap() as i32;
    wait_until(
        "the query runs in a backend",
        Duration::from_secs(20),
        || pg.backend(postmaster, "SELECT").is_some(),
    );
    let backend = pg.backend(postmaster, "SELECT").unwrap();
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
        pg.query("select count(*) from generate_series(1, 100000000000)")
            .spawn()
            .unwrap(),
    );
    env.dmgr(&["restart", "pg"]).success();
    let out = pg.query("select 'up after restart'").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "up after restart"
    );
    assert!(!env.log("pg").contains("pre-existing shared memory block"));
    env.dmgr(&["stop", "pg"]).success();
    assert!(!Path::new(&format!("{}/postmaster.pid", pg.data.display())).exists());
}

/// Issue 23, point 3: PostgreSQL with `kill_mode = "mixed"` and `stop_signal = "INT"`:
/// the postmaster alone gets SIGINT (fast shutdown) and ends its backends itself, so
/// a client in `select pg_sleep(60)` reads "terminating connection due to
/// administrator command" (not "canceling statement due to user request", which a
/// backend signalled directly says); no backend is left, and `restart` works.
#[test]
fn postgres_kill_mode_mixed_lets_the_postmaster_end_its_backends() {
    let test = "postgres_kill_mode_mixed_lets_the_postmaster_end_its_backends";
    let Some(pg) = Pg::set_up(test, "kill_mode = \"mixed\"\n") else {
        return;
    };
    let env = &pg.env;
    env.dmgr(&["start", "pg"]).success();
    let postmaster = env.entry("pg")["pid"].as_i64().unwrap() as i32;
    let client = pg.query("select pg_sleep(60)").spawn().unwrap();
    wait_until(
        "the query runs in a backend",
        Duration::from_secs(20),
        || pg.backend(postmaster, "SELECT").is_some(),
    );
    let all: Vec<i32> = children(postmaster);
    for &pid in &all {
        env.track(pid);
    }
    env.dmgr(&["stop", "pg"]).success();
    let out = crate::support::Run::try_wait(client, Duration::from_secs(30))
        .expect("psql ended with the server");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("terminating connection due to administrator command"),
        "psql said: {said}"
    );
    assert!(!is_alive(postmaster), "the postmaster survived stop");
    for pid in all {
        assert!(!is_alive(pid), "postgres process {pid} survived stop");
    }
    let events = env.events("pg");
    assert!(
        !events.contains("killed"),
        "something needed SIGKILL: {events}"
    );

    env.dmgr(&["start", "pg"]).success();
    env.dmgr(&["restart", "pg"]).success();
    let out = pg.query("select 'up after restart'").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "up after restart"
    );
    env.dmgr(&["stop", "pg"]).success();
}

/// The body of `GET /` from `127.0.0.1:port`, or `None` if it was not answered.
fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string())
}

/// Requests `GET /` from `port` every 20 ms on a thread until dropped; counts the ones
/// not answered with `expect` in the body.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(u32, u32)>>,
}

impl Load {
    fn start(port: u16, expect: &'static str) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut answered, mut failed) = (0, 0);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match http_get(port) {
                    Some(body) if body.contains(expect) => answered += 1,
                    _ => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (answered, failed)
        });
        Load {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops; returns how many requests were answered and how many failed.
    fn finish(mut self) -> (u32, u32) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Issue 23: haproxy in daemon mode, reloaded the way its documentation says
/// (`reload_command` checks the file, then starts a new haproxy with `-sf $MAINPID`):
/// the keeper runs the command in the daemon's tree and follows the pidfile to the new
/// process, which serves the new configuration; `list` says `running` with the new
/// PID, no restart; `stop` leaves no haproxy; `start` then runs exactly one.
#[test]
fn haproxy_reloaded_with_sf_stays_supervised_under_its_new_pid() {
    let test = "haproxy_reloaded_with_sf_stays_supervised_under_its_new_pid";
    let Some(haproxy) = installed("haproxy", test) else {
        return;
    };
    // Reserved until the end of the test, after the environment's cleanup.
    let port = free_port();
    let env = TestEnv::new();
    let dir = env.root().join("haproxy");
    std::fs::create_dir(&dir).unwrap();
    let (conf, pidfile) = (dir.join("haproxy.cfg"), dir.join("haproxy.pid"));
    let write_conf = |version: &str| {
        std::fs::write(
            &conf,
            format!(
                "global\n    pidfile {}\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind 127.0.0.1:{port}\n    http-request return status 200 content-type text/plain string \"hello {version}\\n\"\n",
                pidfile.display()
            ),
        )
        .unwrap()
    };
    write_conf("v1");
    let (h, c, p) = (haproxy.display(), conf.display(), pidfile.display());
    env.write(
        "lb",
        &format!(
            "command = [\"{h}\", \"-D\", \"-p\", \"{p}\", \"-f\", \"{c}\"]\ntype = \"forking\"\npidfile = \"{p}\"\nready = {{ tcp = \"127.0.0.1:{port}\" }}\nreload_command = [\"sh\", \"-c\", \"{h} -c -q -f {c} && {h} -D -p {p} -f {c} -sf $MAINPID\"]\n"
        ),
    );
    env.dmgr(&["start", "lb"]).success();
    let old = env.entry("lb")["pid"].as_i64().unwrap() as i32;
    assert_eq!(http_get(port.number()).as_deref(), Some("hello v1\n"));

    write_conf("v2");
    env.dmgr(&["reload", "lb"])
        .success()
        .stdout_has("lb: reloaded");
    wait_until(
        "lb runs under the new haproxy",
        Duration::from_secs(10),
        || {
            let entry = env.entry("lb");
            entry["status"] == "running" && entry["pid"].as_i64().is_some_and(|p| p as i32 != old)
        },
    );
    let new = env.entry("lb")["pid"].as_i64().unwrap() as i32;
    assert_eq!(read_pid(&pidfile), Some(new));
    assert_eq!(env.entry("lb")["restarts"], 0);
    assert_eq!(http_get(port.number()).as_deref(), Some("hello v2\n"));
    wait_until("the old haproxy is gone", Duration::from_secs(10), || {
        !is_alive(old)
    });
    let events = env.events("lb");
    assert!(events.contains("main-pid-changed"), "{events}");

    env.dmgr(&["stop", "lb"]).success();
    let conf_path = conf.display().to_string();
    assert!(
        crate::support::processes_with(&conf_path).is_empty(),
        "haproxy is left after stop"
    );
    env.dmgr(&["start", "lb"]).success();
    assert_eq!(
        crate::support::processes_with(&conf_path).len(),
        1,
        "start runs exactly one haproxy"
    );
    env.dmgr(&["stop", "lb"]).success();
}

/// Issue 23: nginx's binary upgrade as its documentation gives it (USR2 to the master,
/// which starts a new master and renames its pidfile to `.oldbin`, then QUIT to the
/// old master): requests are answered throughout, and the keeper follows the pidfile
/// to the new master: `running` under its PID, no restart; `stop` leaves no nginx.
#[test]
fn nginx_binary_upgrade_keeps_nginx_supervised_under_the_new_master() {
    let test = "nginx_binary_upgrade_keeps_nginx_supervised_under_the_new_master";
    let Some(nginx) = installed("nginx", test) else {
        return;
    };
    // Reserved until the end of the test, after the environment's cleanup.
    let port = free_port();
    let env = TestEnv::new();
    let dir = env.root().join("nginx");
    std::fs::create_dir(&dir).unwrap();
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
    env.write(
        "web",
        &format!(
            "command = [\"{}\", \"-c\", \"{}\"]\ntype = \"forking\"\npidfile = \"{}\"\nready = {{ tcp = \"127.0.0.1:{port}\" }}\nstop_signal = \"QUIT\"\n",
            nginx.display(),
            conf.display(),
            pidfile.display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let old = env.entry("web")["pid"].as_i64().unwrap() as i32;
    let old_workers = children(old);
    let load = Load::start(port.number(), "hello");

    env.dmgr(&["kill", "-s", "USR2", "web"]).success();
    wait_until(
        "the new master wrote the pidfile",
        Duration::from_secs(10),
        || read_pid(&pidfile).is_some_and(|p| p != old),
    );
    let new = read_pid(&pidfile).unwrap();
    wait_until(
        "the new master's workers run",
        Duration::from_secs(10),
        || children(new).len() == 2,
    );
    env.dmgr(&["kill", "-s", "QUIT", "web"]).success();
    wait_until(
        "web runs under the new master",
        Duration::from_secs(10),
        || {
            let entry = env.entry("web");
            entry["status"] == "running" && entry["pid"] == new
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let (answered, failed) = load.finish();
    assert_eq!(failed, 0, "{failed} requests failed, {answered} answered");
    assert!(answered > 5, "only {answered} requests answered");
    assert!(!is_alive(old) && old_workers.iter().all(|&w| !is_alive(w)));
    assert_eq!(env.entry("web")["restarts"], 0);
    assert!(env.events("web").contains("main-pid-changed"));

    let workers = children(new);
    env.dmgr(&["stop", "web"]).success();
    assert!(!is_alive(new) && workers.iter().all(|&w| !is_alive(w)));
    assert!(crate::support::processes_with(&conf.display().to_string()).is_empty());
    assert!(!pidfile.exists(), "nginx's pidfile is left");
}

/// Issue 23: gunicorn `--daemon --pid P`, upgraded the way its documentation says
/// (USR2 starts a new master, which writes `P.2` and takes `P` over once the old
/// master, sent TERM, is gone): requests are answered throughout, and the keeper
/// follows the new master.
#[test]
fn gunicorn_usr2_upgrade_keeps_gunicorn_supervised_under_the_new_master() {
    let test = "gunicorn_usr2_upgrade_keeps_gunicorn_supervised_under_the_new_master";
    let Some(gunicorn) = installed("gunicorn", test) else {
        return;
    };
    // Reserved until the end of the test, after the environment's cleanup.
    let port = free_port();
    let env = TestEnv::new();
    let dir = env.root().join("app");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("hello.py"),
        "def app(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'hello\\n']\n",
    )
    .unwrap();
    let pidfile = dir.join("gunicorn.pid");
    let d = dir.display();
    env.write(
        "app",
        &format!(
            "command = [\"{}\", \"--daemon\", \"--pid\", \"{}\", \"--bind\", \"127.0.0.1:{port}\", \"--workers\", \"2\", \"--chdir\", \"{d}\", \"--log-file\", \"{d}/gunicorn.log\", \"hello:app\"]\ntype = \"forking\"\npidfile = \"{}\"\nready = {{ tcp = \"127.0.0.1:{port}\" }}\n",
            gunicorn.display(),
            pidfile.display(),
            pidfile.display()
        ),
    );
    env.dmgr(&["start", "app"]).success();
    let old = env.entry("app")["pid"].as_i64().unwrap() as i32;
    let load = Load::start(port.number(), "hello");

    env.dmgr(&["kill", "-s", "USR2", "app"]).success();
    let second = dir.join("gunicorn.pid.2");
    wait_until(
        "the new master wrote its pidfile",
        Duration::from_secs(20),
        || read_pid(&second).is_some_and(|p| p != old),
    );
    let new = read_pid(&second).unwrap();
    wait_until(
        "the new master's workers run",
        Duration::from_secs(20),
        || children(new).len() == 2,
    );
    env.dmgr(&["kill", "-s", "TERM", "app"]).success();
    wait_until(
        "app runs under the new master",
        Duration::from_secs(15),
        || {
            let entry = env.entry("app");
            entry["status"] == "running" && entry["pid"] == new
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let (answered, failed) = load.finish();
    assert_eq!(failed, 0, "{failed} requests failed, {answered} answered");
    assert!(answered > 5, "only {answered} requests answered");
    assert!(!is_alive(old));
    assert_eq!(read_pid(&pidfile), Some(new));
    assert_eq!(env.entry("app")["restarts"], 0);

    let workers = children(new);
    env.dmgr(&["stop", "app"]).success();
    assert!(!is_alive(new) && workers.iter().all(|&w| !is_alive(w)));
}

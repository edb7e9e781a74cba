//! Issue 22, the state record: written whole or not at all, read without trusting it.
//! A record truncated, garbled, swapped for a symlink, a hard link or another daemon's
//! makes the daemon `unknown`, never "stopped", and `stop` still stops it through its
//! keeper (the pidfile lock's holder) or its cgroup; a full run disk leaves the last
//! whole record and a keeper that goes on supervising.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{
    copies_of, is_alive, marker, processes_with, sigkill, sleeper, wait_until, Run, TestEnv,
};

/// How a test spoils a record: its whole bytes in, the spoilt bytes out.
type Garble = fn(&[u8]) -> Vec<u8>;

/// How a test puts another daemon's record (first) in a record's place (second).
type Plant = fn(&Path, &Path);

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Finding 6: a state record emptied, cut short or garbled by hand said `stopped`, and
/// `stop` said "not running" with exit 0 while the daemon ran on. Now the daemon is
/// `unknown` with the reason, its PID is still found (the child of the process that
/// holds its pidfile lock), `start` starts no second copy, and `stop` stops it
/// through that keeper, which writes a whole record again.
#[test]
fn a_truncated_or_garbled_record_is_unknown_and_stop_still_stops_the_daemon() {
    let mark = marker("garbled");
    let env = TestEnv::new().daemon("web", &sleeper(&mark));
    let garbles: [(&str, Garble); 3] = [
        ("cut in half", |whole| whole[..whole.len() / 2].to_vec()),
        ("emptied", |_| Vec::new()),
        ("edited", |whole| {
            String::from_utf8_lossy(whole)
                .replace("\"restarts\":0", "\"restarts\":5")
                .into_bytes()
        }),
    ];
    for (how, garble) in garbles {
        env.dmgr(&["start", "web"]).success();
        let pid = env.pid("web").unwrap();
        let keeper = env.keeper_pid("web").unwrap();
        let path = env.state_path("web");
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, garble(&whole)).unwrap();

        let entry = env.entry("web");
        assert_eq!(entry["status"], "unknown", "{how}: {entry}");
        assert_eq!(entry["pid"], pid, "{how}: {entry}");
        let error = entry["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("its state record "), "{how}: {error}");
        env.dmgr(&["list"]).success().stdout_has("unknown");
        env.dmgr(&["status", "web"])
            .success()
            .stdout_has("unknown (pid");
        env.dmgr(&["start", "web"]).success();
        assert_eq!(copies_of(&mark).len(), 1, "{how}: start made a second copy");

        env.dmgr(&["stop", "web"])
            .success()
            .stdout_has("web: stopped");
        assert!(
            processes_with(&mark).is_empty(),
            "{how}: the daemon runs on"
        );
        assert!(!is_alive(keeper), "{how}: the keeper runs on");
        assert_eq!(env.entry("web")["status"], "stopped", "{how}");
        assert!(env.record("web").is_some(), "{how}: no whole record again");
    }
}

/// Finding 7: `run/web.state` replaced by a symlink to `db.state` made `stop web` stop
/// db, and web ran on. Records are opened with `O_NOFOLLOW` and must be their daemon's
/// own: a symlink, a hard link or a copy of another daemon's record leaves web
/// `unknown`, `stop web` stops web through its keeper, and db is never signalled.
#[test]
fn a_record_swapped_for_another_daemons_is_never_followed() {
    let (web_mark, db_mark) = (marker("web-swap"), marker("db-swap"));
    let env = TestEnv::new()
        .daemon("web", &sleeper(&web_mark))
        .daemon("db", &sleeper(&db_mark));
    env.dmgr(&["start", "db"]).success();
    let db = env.pid("db").unwrap();
    let (web_state, db_state) = (env.state_path("web"), env.state_path("db"));
    let plants: [(&str, Plant); 3] = [
        ("is a symlink", |db, web| {
            std::os::unix::fs::symlink(db, web).unwrap()
        }),
        ("has 2 hard links", |db, web| {
            std::fs::hard_link(db, web).unwrap()
        }),
        ("is the record of another daemon, `db`", |db, web| {
            std::fs::copy(db, web).map(drop).unwrap()
        }),
    ];
    for (why, plant) in plants {
        env.dmgr(&["start", "web"]).success();
        let web = env.pid("web").unwrap();
        std::fs::remove_file(&web_state).unwrap();
        plant(&db_state, &web_state);

        let entry = env.entry("web");
        assert_eq!(entry["status"], "unknown", "{why}: {entry}");
        assert_eq!(entry["pid"], web, "{why}: {entry}");
        assert!(
            entry["error"].as_str().unwrap_or_default().contains(why),
            "{why}: {entry}"
        );
        env.dmgr(&["stop", "web"]).success();
        assert!(processes_with(&web_mark).is_empty(), "{why}: web runs on");
        assert!(is_alive(db), "{why}: db was stopped");
        // (While web.state was a hard link to it, db's record had two links and db
        // was `unknown` too; web's keeper replaced its own name when it stopped.)
        assert_eq!(env.entry("db")["status"], "running", "{why}");
        assert_eq!(env.entry("db")["pid"], db, "{why}");
        assert_eq!(
            env.record("web").map(|r| r.name),
            Some("web".to_string()),
            "{why}: web has no record of its own again"
        );
        assert_eq!(env.record("db").map(|r| r.name), Some("db".to_string()));
    }
    env.dmgr(&["stop", "db"]).success();
}

/// Finding 9's cgroup: a keeper SIGKILLed and its record lost left the daemon running
/// in a cgroup that nothing named. The cgroup is named after the daemon and its run
/// directory, so `start` finds and stops that copy before it starts one (never two),
/// and `stop` finds it too; no cgroup is left behind.
#[test]
fn a_daemon_whose_keeper_and_record_are_lost_is_found_by_its_cgroup() {
    let mark = marker("lost-record");
    let env = TestEnv::new().daemon(
        "web",
        &format!(
            "command = [\"sh\", \"-c\", \"sleep 1000 & sleep 1000; true\", \"{mark}\"]\nstart_wait = \"50ms\"\n"
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let Some(cgroup) = env.record("web").and_then(|r| r.cgroup) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no cgroup for the daemon under CI"
        );
        eprintln!("a_daemon_whose_keeper_and_record_are_lost: skipped: no cgroup here");
        return;
    };
    let lose = |env: &TestEnv| {
        let keeper = env.keeper_pid("web").unwrap();
        env.track(keeper);
        sigkill(keeper).unwrap();
        wait_until("the keeper is dead", Duration::from_secs(5), || {
            !is_alive(keeper)
        });
        std::fs::remove_file(env.state_path("web")).unwrap();
        assert!(!processes_with(&mark).is_empty());
    };
    for verb in ["start", "stop"] {
        lose(&env);
        env.dmgr(&[verb, "web"]).success();
        let expected = usize::from(verb == "start");
        assert_eq!(
            copies_of(&mark).len(),
            expected,
            "after {verb}: {:?}",
            processes_with(&mark)
        );
        if verb == "start" {
            // Two processes: sh and its background sleep, one copy of the daemon.
            let pid = env.pid("web").unwrap();
            assert!(processes_with(&mark).contains(&pid));
        }
    }
    assert!(processes_with(&mark).is_empty());
    assert!(!cgroup.exists(), "the cgroup {} was left", cgroup.display());
}

/// A process holding a private mount namespace (`unshare -m`) and what is mounted in
/// it, killed (and so unmounted) when the guard goes.
struct Namespace {
    holder: std::process::Child,
}

impl Namespace {
    /// A new private mount namespace, or `None` where it cannot be made.
    fn new() -> Option<Namespace> {
        let holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sleep", "1000"])
            .stdin(Stdio::null())
            .spawn()
            .ok()?;
        let ns = Namespace { holder };
        let own = std::fs::read_link("/proc/self/ns/mnt").ok()?;
        let theirs = || std::fs::read_link(format!("/proc/{}/ns/mnt", ns.pid())).ok();
        wait_until("the namespace is made", Duration::from_secs(5), || {
            theirs().is_some_and(|t| t != own)
        });
        Some(ns)
    }

    fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// `program ARGS` run in the namespace.
    fn command(&self, program: &Path, args: &[&std::ffi::OsStr]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg("-t")
            .arg(self.pid().to_string())
            .arg("-m")
            .arg("--")
            .arg(program)
            .args(args);
        command
    }

    /// Runs `program ARGS` in the namespace and says whether it succeeded.
    fn run(&self, program: &str, args: &[&str]) -> bool {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        self.command(Path::new(program), &args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `path` as the namespace sees it, from outside it.
    fn see(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid())).join(path.strip_prefix("/").unwrap())
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// `dmgr ARGS` of `env`, run in the namespace `ns`.
fn dmgr_in(env: &TestEnv, ns: &Namespace, args: &[&str]) -> Run {
    let mut all: Vec<&std::ffi::OsStr> = vec!["--config-dir".as_ref()];
    let (config, run) = (env.config_dir(), env.run_dir());
    all.push(config.as_os_str());
    all.push("--run-dir".as_ref());
    all.push(run.as_os_str());
    all.extend(args.iter().map(std::ffi::OsStr::new));
    let mut command = ns.command(Path::new(env!("CARGO_BIN_EXE_dmgr")), &all);
    command
        .env("NO_COLOR", "1")
        .env_remove("DMGR_NO_CGROUP")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    env.run(command, args)
}

/// Finding 3, the record's part: on a full run disk the record was written half,
/// `list` said `stopped` and `stop` "not running" while the keeper lived. On a 64 KiB
/// tmpfs in a private mount namespace (so a killed test leaves no mount behind), the
/// daemon is killed while the disk is full: the keeper cannot record it, so the last
/// whole record stays (naming the dead process: `list` says so, never `stopped`), the
/// log and the pidfile are elsewhere (a pidfile emptied on the full disk would free
/// a page for one more record, which is fine but not what this test looks at), the
/// keeper neither gives up nor counts a failure but tries again, and once there is
/// room it starts the daemon, records it, and says in a `record-error` event how many
/// writes failed.
#[test]
fn a_full_run_disk_keeps_the_last_whole_record_and_the_keeper_supervising() {
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "needs root under CI");
        eprintln!("a_full_run_disk_keeps_the_last_whole_record: skipped: needs root");
        return;
    }
    let Some(ns) = Namespace::new() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "unshare -m failed under CI"
        );
        eprintln!("a_full_run_disk_keeps_the_last_whole_record: skipped: no unshare -m");
        return;
    };
    let mark = marker("full-run");
    let env = TestEnv::new().daemon(
        "web",
        &format!(
            "{}restart = \"always\"\nrestart_delay = \"10ms\"\nmax_restarts = 1\n\
             log = \"../log/web.log\"\npidfile = \"../pids/web.pid\"\n",
            sleeper(&mark)
        ),
    );
    std::fs::create_dir(env.run_dir()).unwrap();
    let run = env.run_dir();
    assert!(ns.run(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=64k,mode=0755",
            "tmpfs",
            run.to_str().unwrap()
        ]
    ));
    let guard = StopInside {
        env: &env,
        ns: &ns,
        mark: &mark,
    };
    dmgr_in(&env, &ns, &["start", "web"]).success();
    let record = |env: &TestEnv| dmgr::state::read(&ns.see(&env.state_path("web")));
    let first = record(&env).unwrap();
    let pid = first.daemon.unwrap().pid;
    let keeper = first.keeper.pid;
    env.track(keeper);

    // The record's temporary file is the previous record, rewritten in place: gone,
    // the next write needs a page of its own, which the full disk does not have.
    assert!(ns.run("rm", &[run.join(".web.state.tmp").to_str().unwrap()]));
    let filler = run.join("filler");
    ns.run(
        "sh",
        &["-c", &format!("cat /dev/zero > {}", filler.display())],
    );
    assert!(
        !ns.run("sh", &["-c", &format!("echo x > {}/probe", run.display())]),
        "the run disk is not full"
    );
    sigkill(pid).unwrap();
    wait_until("the daemon is dead", Duration::from_secs(5), || {
        !is_alive(pid)
    });
    // With max_restarts = 1 a keeper that counted each failed restart would give up
    // within a few tries; it tries once a second and must still be there.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(is_alive(keeper), "the keeper gave up on a full run disk");
    assert!(
        processes_with(&mark).is_empty(),
        "a copy runs that no record names"
    );
    let kept = record(&env).expect("the last record is whole");
    assert_eq!(kept, first, "the record changed on a full disk");
    let entry: serde_json::Value =
        serde_json::from_str(&dmgr_in(&env, &ns, &["list", "--json"]).success().stdout()).unwrap();
    assert_ne!(entry[0]["status"], "stopped", "{entry}");
    dmgr_in(&env, &ns, &["start", "web"]).success();
    assert!(processes_with(&mark).is_empty());

    assert!(ns.run("rm", &[filler.to_str().unwrap()]));
    wait_until("the daemon runs again", Duration::from_secs(10), || {
        record(&env)
            .and_then(|r| r.daemon)
            .is_some_and(|d| d.pid != pid && is_alive(d.pid))
    });
    assert_eq!(copies_of(&mark).len(), 1);
    let now = record(&env).unwrap();
    assert_eq!(now.keeper.pid, keeper);
    assert_eq!(
        now.restarts, 1,
        "a failed record write counted as a restart"
    );
    let events = std::fs::read_to_string(ns.see(&env.run_dir().join("web.events"))).unwrap();
    assert!(
        events.contains("\"record-error\"") && events.contains("writes failed since"),
        "{events}"
    );
    drop(guard);
}

/// Stops every daemon of `env` in the namespace, and kills what is left of `mark`.
struct StopInside<'a> {
    env: &'a TestEnv,
    ns: &'a Namespace,
    mark: &'a str,
}

impl Drop for StopInside<'_> {
    fn drop(&mut self) {
        let _ = dmgr_in(self.env, self.ns, &["stop", "--all"]);
        for pid in processes_with(self.mark) {
            let _ = sigkill(pid);
        }
    }
}

/// Finding 9's smaller one: a daemon file replaced by a directory was taken for a
/// daemon removed, so `list` called the running daemon orphaned and `apply` stopped
/// it. A `*.toml` directory is an invalid file now: listed as such, with why, and its
/// running daemon left as it is by `apply` (which reports the file), stopped by `stop`.
#[test]
fn a_daemon_file_replaced_by_a_directory_is_invalid_not_removed() {
    let mark = marker("file-dir");
    let env = TestEnv::new().daemon("web", &sleeper(&mark));
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    let file = env.config_dir().join("web.toml");
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let entry = env.entry("web");
    assert_eq!(entry["status"], "invalid", "{entry}");
    assert!(
        entry["error"]
            .as_str()
            .unwrap_or_default()
            .contains("it is a directory, not a daemon file"),
        "{entry}"
    );
    env.dmgr(&["check"])
        .code(2)
        .stderr_has("web.toml:1:1: it is a directory");
    env.dmgr(&["apply"]).code(1).stderr_has("it is a directory");
    assert!(
        is_alive(pid),
        "apply stopped the daemon of a file made a directory"
    );
    assert_eq!(env.pid("web"), Some(pid));
    env.dmgr(&["stop", "web"]).success();
    assert!(processes_with(&mark).is_empty());
}

/// Issue 30: `list` reads the summary at the head of a record, and a record without
/// one, as the keepers of the dmgr before it write them (they keep running across an
/// upgrade), lists the same from its JSON.
#[test]
fn a_record_without_a_summary_as_older_keepers_write_lists_the_same() {
    let mark = marker("no-summary");
    let env = TestEnv::new().daemon(
        "web",
        &format!("{}description = \"the web server\"\n", sleeper(&mark)),
    );
    env.dmgr(&["start", "web"]).success();
    let path = env.state_path("web");
    let with_summary = std::fs::read(&path).unwrap();
    let without_uptime = |mut entry: serde_json::Value| {
        entry["uptime_secs"] = serde_json::Value::Null;
        entry
    };
    let listed = without_uptime(env.entry("web"));
    assert_eq!(listed["status"], "running", "{listed}");

    // The record less its summary, sealed again as the previous dmgr sealed it.
    let head = b"{\"brief\":\"";
    assert!(
        with_summary.starts_with(head),
        "no summary: {}",
        String::from_utf8_lossy(&with_summary)
    );
    let body_at = head.len()
        + with_summary[head.len()..]
            .iter()
            .position(|&b| b == b'"')
            .unwrap()
        + 2;
    let sum_at = with_summary
        .windows(8)
        .rposition(|w| w == b",\"sum\":\"")
        .unwrap();
    let mut old = b"{".to_vec();
    old.extend_from_slice(&with_summary[body_at..sum_at]);
    let sum = old.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    old.extend_from_slice(format!(",\"sum\":\"{sum:016x}\"}}\n").as_bytes());
    std::fs::write(&path, &old).unwrap();
    assert_eq!(without_uptime(env.entry("web")), listed);
    env.dmgr(&["list"])
        .success()
        .stdout_has("running")
        .stdout_has("sleep");
    env.dmgr(&["stop", "web"]).success();
    assert!(processes_with(&mark).is_empty());
    assert!(std::fs::read(&path).unwrap().starts_with(head));
}

//! Main-PID hand-over of `type = "forking"` daemons (SPEC `type`, promise 12): when
//! the main process exits, the keeper reads the daemon's pidfile again and follows it
//! to a new process of the daemon's own, never to a stranger.

use std::path::Path;
use std::time::Duration;

use crate::support::{installed, is_alive, marker, processes_with, wait_until, TestEnv};

/// A daemon that upgrades itself as nginx does: it double-forks and writes its pidfile;
/// on USR2 it starts a successor (its child) that writes its own PID there; QUIT ends
/// a process.
const UPGRADABLE: &str = r#"
import os, signal, sys, time
pidfile = sys.argv[1]
def serve():
    def upgrade(*_):
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable] + sys.argv[:3] + ["--successor"])
    signal.signal(signal.SIGUSR2, upgrade)
    signal.signal(signal.SIGQUIT, lambda *_: os._exit(0))
    with open(pidfile + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(pidfile + ".tmp", pidfile)
    while True:
        time.sleep(60)
if "--successor" not in sys.argv:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
serve()
"#;

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// An environment with daemon `web` running [`UPGRADABLE`]; returns it, the daemon's
/// own pidfile, the marker in its command line, and its first PID.
fn upgradable(test: &str) -> Option<(TestEnv, std::path::PathBuf, String, i32)> {
    let python = installed("python3", test)?;
    let env = TestEnv::new();
    let script = env.root().join("upgradable.py");
    std::fs::write(&script, UPGRADABLE).unwrap();
    let own = env.root().join("web.pid");
    let mark = marker("upgradable");
    env.write(
        "web",
        &format!(
            "command = [\"{}\", \"{}\", \"{}\", \"{mark}\"]\ntype = \"forking\"\npidfile = \"{}\"\nstart_wait = \"100ms\"\nrestart = \"no\"\n",
            python.display(),
            script.display(),
            own.display(),
            own.display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let pid = env.entry("web")["pid"].as_i64().unwrap() as i32;
    assert_eq!(read_pid(&own), Some(pid));
    Some((env, own, mark, pid))
}

/// nginx's binary upgrade, played by a small daemon: USR2 starts a successor that
/// takes over the pidfile, QUIT ends the old process, and the keeper follows the
/// pidfile: `running` under the new PID, a `main-pid-changed` event, no restart, and
/// `stop` leaves nothing.
#[test]
fn a_forking_daemon_is_followed_to_the_process_that_took_over() {
    let test = "a_forking_daemon_is_followed_to_the_process_that_took_over";
    let Some((env, own, mark, old)) = upgradable(test) else {
        return;
    };
    env.dmgr(&["kill", "-s", "USR2", "web"]).success();
    wait_until(
        "the successor wrote the pidfile",
        Duration::from_secs(10),
        || read_pid(&own).is_some_and(|p| p != old),
    );
    let new = read_pid(&own).unwrap();
    env.dmgr(&["kill", "-s", "QUIT", "web"]).success();
    wait_until(
        "the keeper follows the successor",
        Duration::from_secs(10),
        || {
            let entry = env.entry("web");
            entry["pid"] == new && entry["status"] == "running"
        },
    );
    assert!(!is_alive(old));
    let entry = env.entry("web");
    assert_eq!(entry["restarts"], 0, "{entry}");
    let events = env.events("web");
    assert!(
        events.contains("main-pid-changed") && events.contains(&format!("pid {new}")),
        "{events}"
    );
    assert!(!events.contains("exited"), "{events}");
    env.dmgr(&["status", "web"]).stdout_has(&new.to_string());
    env.dmgr(&["stop", "web"]).success();
    assert!(processes_with(&mark).is_empty(), "something was left");
    assert!(!is_alive(new));
}

/// Promise 12: a pidfile that names a stranger (a process not of the daemon's own)
/// when the main process exits is the daemon's exit: the stranger is not adopted, and
/// never signalled.
#[test]
fn a_pidfile_naming_a_stranger_is_the_daemons_exit() {
    let test = "a_pidfile_naming_a_stranger_is_the_daemons_exit";
    let Some((env, own, mark, old)) = upgradable(test) else {
        return;
    };
    let stranger = crate::support::KillOnDrop(
        std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap(),
    );
    let stranger_pid = stranger.0.id() as i32;
    std::fs::write(&own, format!("{stranger_pid}\n")).unwrap();
    env.dmgr(&["kill", "-s", "QUIT", "web"]).success();
    wait_until(
        "the daemon is recorded stopped",
        Duration::from_secs(10),
        || env.entry("web")["status"] == "stopped",
    );
    assert!(is_alive(stranger_pid), "the stranger was signalled");
    assert!(!is_alive(old));
    let events = env.events("web");
    assert!(
        events.contains(&format!(
            "names pid {stranger_pid}, which is not a process of the daemon's"
        )),
        "{events}"
    );
    assert!(!events.contains("main-pid-changed"), "{events}");
    assert!(processes_with(&mark).is_empty());
    drop(stranger);
}

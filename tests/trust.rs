//! Issue 22, the directories root must not trust: a run directory others can write
//! (sticky or not), directories above the run, log and pidfile directories that
//! another user can write, and locks another user holds.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{is_alive, marker, processes_with, sleeper, wait_until, KillOnDrop, TestEnv};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Skips (returns true) when not root: only root refuses what others can write. Under
/// CI the tests run as root, and a run that is not fails.
fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: must run as root under CI"
    );
    eprintln!("{test}: skipped: needs root");
    true
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `program ARGS` as the user nobody, in a process group of its own that is killed
/// when the guard goes.
fn as_nobody(program: &str, args: &[&str]) -> Group {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .uid_nobody();
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    Group(command.spawn().expect("spawn as nobody"))
}

/// A child leading its own process group, killed with the group on drop.
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Lets nobody reach the files of `env` (its directory is root's, mode 0700).
fn open_to_nobody(env: &TestEnv) {
    chmod(env.root(), 0o711);
}

/// Finding 1: a run directory writable by everyone (mode 1777, like /tmp) was trusted
/// as root, and `stop --all` acted on a record that user nobody planted in it. Now
/// every command refuses the directory before it reads anything in it: the FIFO
/// planted as a record is never opened (its writer stays blocked in open(2)), the
/// process the forged record names is never signalled, the file it names as its
/// pidfile is not removed, and the daemon that was running is left alone.
#[test]
fn as_root_a_shared_run_directory_is_refused_before_anything_in_it_is_read() {
    if skip_unless_root("as_root_a_shared_run_directory_is_refused") {
        return;
    }
    let mark = marker("shared-run");
    let env = TestEnv::new().daemon("web", &sleeper(&mark));
    env.dmgr(&["start", "web"]).success();
    let web = env.pid("web").unwrap();
    open_to_nobody(&env);
    let run = env.run_dir();
    chmod(&run, 0o1777);

    // Nobody plants a FIFO where a record is read, and waits for a reader to open it.
    let fifo = run.join("fifo.state");
    let planted = Command::new("mkfifo")
        .arg(&fifo)
        .uid_nobody()
        .status()
        .unwrap();
    assert!(planted.success());
    let script = format!("echo x > '{}'", fifo.display());
    let mut writer = as_nobody("sh", &["-c", &script]);

    // And a record of a daemon `victim` naming a process of root's and a file of
    // root's as its pidfile, sealed as a keeper seals one.
    let victim = KillOnDrop(
        Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let victim_pid = victim.0.id() as i32;
    let precious = env.root().join("precious");
    std::fs::write(&precious, "root's\n").unwrap();
    let mut forged = env.state("web").unwrap();
    forged["name"] = "victim".into();
    forged["keeper"]["pid"] = 999_999.into();
    forged["daemon"]["pid"] = victim_pid.into();
    forged["daemon"]["start"] = crate::support::stat(victim_pid).unwrap().start.into();
    forged["pidfile"] = precious.display().to_string().into();
    forged["output_pipes"] = serde_json::json!([]);
    forged["cgroup"] = serde_json::Value::Null;
    let sealed = env.root().join("sealed");
    let record: dmgr::state::StateRecord = serde_json::from_value(forged).unwrap();
    dmgr::state::write(&sealed, &record).unwrap();
    chmod(&sealed, 0o644);
    let copied = Command::new("cp")
        .arg(&sealed)
        .arg(run.join("victim.state"))
        .uid_nobody()
        .status()
        .unwrap();
    assert!(copied.success());

    for args in [
        &["stop", "--all"][..],
        &["list"],
        &["status", "victim"],
        &["start", "--all"],
    ] {
        env.dmgr(args)
            .code(1)
            .stderr_has(
                "cannot be used: it is writable by group or others (mode 1777), sticky or not",
            )
            .stderr_has("nothing in it was read");
    }
    assert!(
        writer.0.try_wait().unwrap().is_none(),
        "the planted FIFO was opened"
    );
    assert!(
        is_alive(victim_pid),
        "the forged record's process was signalled"
    );
    assert!(precious.exists(), "the forged record's pidfile was removed");
    assert!(is_alive(web), "the running daemon was touched");

    // Once the directory is root's alone again, everything works.
    drop(writer);
    for planted in ["fifo.state", "victim.state"] {
        std::fs::remove_file(run.join(planted)).unwrap();
    }
    chmod(&run, 0o755);
    env.dmgr(&["stop", "--all"]).success();
    assert!(processes_with(&mark).is_empty());
    drop(victim);
}

/// `Command::uid` and `gid` of the user nobody, chained.
trait AsNobody {
    fn uid_nobody(&mut self) -> &mut Self;
}

impl AsNobody for Command {
    fn uid_nobody(&mut self) -> &mut Self {
        std::os::unix::process::CommandExt::uid(self, NOBODY);
        std::os::unix::process::CommandExt::gid(self, NOBODY);
        self
    }
}

/// Finding 1: a user holding a lock on `NAME.lock` made `start` and `stop` hang
/// forever. A lock held by a process of another user is now an error within seconds
/// that names the holder, and the lock file is made readable by root alone; a
/// pidfile another user holds locked fails `start` at once, naming the holder too.
#[test]
fn a_lock_another_user_holds_is_an_error_naming_the_holder_not_a_hang() {
    if skip_unless_root("a_lock_another_user_holds_is_an_error") {
        return;
    }
    let mark = marker("held-lock");
    let env = TestEnv::new().daemon("web", &sleeper(&mark));
    env.dmgr(&["start", "web"]).success();
    env.dmgr(&["stop", "web"]).success();
    open_to_nobody(&env);
    let lock = env.run_dir().join("web.lock");
    // As an older dmgr left it: readable by everyone, and so lockable by everyone.
    chmod(&lock, 0o644);
    let _holder = as_nobody(
        "flock",
        &["-o", "-x", lock.to_str().unwrap(), "sleep", "1000"],
    );
    let held = || {
        let file = std::fs::File::open(&lock).unwrap();
        fs2::FileExt::try_lock_shared(&file).is_err()
    };
    wait_until("nobody holds web.lock", Duration::from_secs(10), held);
    let began = Instant::now();
    env.dmgr(&["start", "web"])
        .code(1)
        .stderr_has("web.lock: held for 5s by pid")
        .stderr_has("(flock, uid 65534), which is no dmgr of this user");
    assert!(began.elapsed() < Duration::from_secs(30));
    env.dmgr(&["stop", "web"]).code(1).stderr_has("uid 65534");
    assert!(processes_with(&mark).is_empty());
    assert_eq!(
        std::fs::metadata(&lock).unwrap().permissions().mode() & 0o777,
        0o600,
        "the lock file is still open to other users"
    );
    drop(_holder);
    wait_until("the lock is free", Duration::from_secs(10), || !held());

    // The pidfile, which must stay readable: nobody locks it, and `start` says who.
    let pidfile = env.pidfile("web");
    std::fs::write(&pidfile, "").unwrap();
    chmod(&pidfile, 0o644);
    let _holder = as_nobody(
        "flock",
        &["-o", "-x", pidfile.to_str().unwrap(), "sleep", "1000"],
    );
    wait_until("nobody holds web.pid", Duration::from_secs(10), || {
        env.pidfile_is_locked("web")
    });
    env.dmgr(&["start", "web"])
        .code(1)
        .stderr_has("(flock, uid 65534)");
    assert!(processes_with(&mark).is_empty());
}

/// Finding 4: a log directory whose parent the daemon's user can write was trusted,
/// so that user could swap the log directory for a symlink to `/var/log` and have
/// root's keeper rotate root's files. As root, every directory above a log, pidfile
/// or run directory must be root's alone, as sshd's StrictModes checks the path to
/// `authorized_keys`; a sticky one (like /tmp, which holds these tests) is fine.
#[test]
fn as_root_directories_below_one_another_user_can_write_are_refused() {
    if skip_unless_root("as_root_directories_below_one_another_user_can_write") {
        return;
    }
    let mark = marker("user-parent");
    let env = TestEnv::new();
    let theirs = env.root().join("theirs");
    for dir in ["logs", "pids", "run"] {
        std::fs::create_dir_all(theirs.join(dir)).unwrap();
    }
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let base = sleeper(&mark);
    for (key, value) in [
        ("log", "../theirs/logs/web.log"),
        ("pidfile", "../theirs/pids/web.pid"),
    ] {
        env.write("web", &format!("{base}{key} = \"{value}\"\n"));
        env.dmgr(&["start", "web"]).code(1).stderr_has(&format!(
            "{} is owned by uid 65534, not root",
            theirs.display()
        ));
        assert!(processes_with(&mark).is_empty(), "{key}: the daemon runs");
        assert!(!env.pidfile("web").exists(), "{key}: a pidfile was left");
    }
    // The run directory itself below their directory.
    env.write("web", &base);
    let run = theirs.join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_dmgr"))
        .arg("--config-dir")
        .arg(env.config_dir())
        .arg("--run-dir")
        .arg(&run)
        .args(["start", "web"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{} is owned by uid 65534", theirs.display())),
        "{stderr}"
    );
    assert!(processes_with(&mark).is_empty());
    // Given back to root, the same files work.
    std::os::unix::fs::chown(&theirs, Some(0), Some(0)).unwrap();
    env.write("web", &format!("{base}log = \"../theirs/logs/web.log\"\n"));
    env.dmgr(&["start", "web"]).success();
    env.dmgr(&["stop", "web"]).success();
}

/// Finding 2: an `env_file` in a directory the daemon's user owns, swapped by that
/// user for a symlink to a file of root's, was followed by the root keeper: its
/// `KEY=VALUE` lines reached the daemon and its other lines were quoted in the error,
/// which the world-readable state record and event history keep. As root the file's
/// directory must be root's alone, the file is opened with `O_NOFOLLOW`, and an error
/// quotes no line of the file.
#[test]
fn as_root_an_env_file_in_a_directory_its_user_can_write_is_refused_and_never_quoted() {
    if skip_unless_root("as_root_an_env_file_in_a_directory_its_user_can_write") {
        return;
    }
    let mark = marker("env-swap");
    let env = TestEnv::new().daemon(
        "web",
        &format!(
            "command = [\"sh\", \"-c\", \"echo \\\"GREETING=$GREETING SECRET=$ROOT_SECRET\\\"; sleep 1000; true\", \"{mark}\"]\n\
             start_wait = \"100ms\"\nuser = \"nobody\"\nenv_file = \"../app/web.env\"\n"
        ),
    );
    open_to_nobody(&env);
    let app = env.root().join("app");
    std::fs::create_dir(&app).unwrap();
    let file = app.join("web.env");
    std::fs::write(&file, "GREETING=hello\n").unwrap();
    chmod(&file, 0o600);
    std::os::unix::fs::chown(&app, Some(NOBODY), Some(NOBODY)).unwrap();
    let secret = env.root().join("secret");
    std::fs::write(
        &secret,
        "ROOT_SECRET=hunter2\nroot:$6$salt$shadowhash:19000::\n",
    )
    .unwrap();
    chmod(&secret, 0o600);
    let swapped = Command::new("sh")
        .args(["-c", "rm -f \"$0\" && ln -s ../secret \"$0\""])
        .arg(&file)
        .uid_nobody()
        .status()
        .unwrap();
    assert!(swapped.success());
    let leaks = |text: &str| text.contains("hunter2") || text.contains("shadowhash");
    let run_files = || {
        ["web.state", "web.events"]
            .iter()
            .map(|f| std::fs::read_to_string(env.run_dir().join(f)).unwrap_or_default())
            .collect::<String>()
    };

    let start = env.dmgr(&["start", "web"]).code(1).stderr_has(&format!(
        "refused: its directory {} cannot be trusted: it is owned by uid 65534",
        app.display()
    ));
    assert!(!leaks(&start.stderr()), "{}", start.stderr());
    let check = env
        .dmgr(&["check"])
        .code(2)
        .stderr_has("refused: its directory");
    assert!(!leaks(&check.stderr()));
    assert!(processes_with(&mark).is_empty());

    // Root's directory again, but the symlink is still there: not followed.
    std::os::unix::fs::chown(&app, Some(0), Some(0)).unwrap();
    let start = env.dmgr(&["start", "web"]).code(1).stderr_has("symlink");
    assert!(!leaks(&start.stderr()));

    // A file whose lines are not assignments: the error gives the place, no content.
    std::fs::remove_file(&file).unwrap();
    std::fs::copy(&secret, &file).unwrap();
    let start = env
        .dmgr(&["start", "web"])
        .code(1)
        .stderr_has("web.env:2:1: this line has no `=`");
    assert!(!leaks(&start.stderr()), "{}", start.stderr());
    assert!(
        !leaks(&run_files()),
        "the run directory keeps the file's lines"
    );
    assert!(processes_with(&mark).is_empty());

    std::fs::write(&file, "GREETING=hello\n").unwrap();
    env.dmgr(&["start", "web"]).success();
    wait_until("the daemon wrote its line", Duration::from_secs(10), || {
        env.log("web").contains("GREETING=hello SECRET=\n")
    });
    env.dmgr(&["stop", "web"]).success();
}

/// Finding 11: two config directories sharing one run directory (a global
/// `DMGR_RUN_DIR`) took each other's daemons for orphans: B's `apply` stopped A's
/// daemon ("stopped (file removed)") and B's `list` called it orphaned. The run
/// directory now belongs to the config directory that first started a keeper there,
/// and every call of another is refused before it reads or stops anything.
#[test]
fn a_run_directory_belongs_to_one_config_directory() {
    let mark = marker("shared-run-dir");
    let env = TestEnv::new().daemon("web", &sleeper(&mark));
    env.dmgr(&["start", "web"]).success();
    let web = env.pid("web").unwrap();
    let other = env.root().join("other.d");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("db.toml"), "command = \"sleep 1000\"\n").unwrap();
    for args in [
        &["apply"][..],
        &["list"],
        &["stop", "--all"],
        &["start", "--all"],
        &["status", "web"],
    ] {
        let run = env.run(env.command_in(other.as_os_str(), args), args);
        run.code(1)
            .stderr_has(&format!(
                "belongs to the config directory {}, not to {}",
                env.config_dir().display(),
                other.display()
            ))
            .stderr_has("hint: give this config directory a run directory of its own");
        assert!(
            is_alive(web),
            "{args:?} stopped the other directory's daemon"
        );
    }
    assert_eq!(env.entry("web")["status"], "running");
    env.dmgr(&["apply"]).success();
    assert_eq!(env.pid("web"), Some(web));
    env.dmgr(&["stop", "web"]).success();
}

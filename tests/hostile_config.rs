//! Hostile configuration (issue 16): files whose paths point at dmgr's own files or
//! at their own definition, directories whose names are not UTF-8, numbers out of
//! their bounds, values that defeat their purpose, files of errors, control
//! characters, and the smaller inconsistencies of the point 8. Each test
//! fails on the code before the fix.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{is_alive, marker, mount_tmpfs, processes_with, wait_until, TestEnv};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

const NOBODY: u32 = 65534;

/// A copy of the dmgr binary in a directory every user can reach, for running it as
/// another user: the checkout itself may sit in a directory only its owner can enter.
pub struct Reachable {
    _dir: tempfile::TempDir,
    /// The copy.
    pub bin: PathBuf,
}

impl Reachable {
    pub fn new() -> Reachable {
        let dir = tempfile::Builder::new()
            .prefix("dmgr-bin-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.path().join("dmgr");
        std::fs::copy(env!("CARGO_BIN_EXE_dmgr"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        Reachable { _dir: dir, bin }
    }

    /// `dmgr ARGS` as nobody when run as root (as the current user otherwise), in
    /// `cwd`, with a clean environment but for `vars`.
    pub fn command(&self, cwd: &Path, args: &[&OsStr], vars: &[(&str, &OsStr)]) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (key, value) in vars {
            command.env(key, value);
        }
        if is_root() {
            command.uid(NOBODY).gid(NOBODY);
        }
        command
    }
}

/// Makes `dir` and the temporary directory above it reachable by nobody.
fn open_up(env: &TestEnv, dir: &Path) {
    for path in [env.root(), dir] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Point 1, the first reproduction: `pidfile = "pf.toml"` used to pass
/// `check`, then `start` overwrote the file with the PID and `stop` deleted it; a
/// log on the file appended the daemon's output to its own definition.
#[test]
fn a_pidfile_or_log_on_a_daemon_file_is_refused_and_the_file_survives() {
    let pf = "command = \"sleep 60\"\npidfile = \"pf.toml\"\n";
    let lg = "command = [\"sh\", \"-c\", \"echo output; exec sleep 60\"]\nlog = \"lg.toml\"\n";
    let env = TestEnv::new().daemon("pf", pf).daemon("lg", lg);
    let dir = env.config_dir().display().to_string();
    env.dmgr(&["check"])
        .code(2)
        .stderr_has(&format!(
            "{dir}/pf.toml:2:11: `pidfile` {dir}/pf.toml is inside the config directory"
        ))
        .stderr_has(&format!("{dir}/lg.toml:2:7: `log` {dir}/lg.toml is inside"));
    env.dmgr(&["start", "pf"])
        .code(2)
        .stderr_has("pf.toml:2:11:");
    env.dmgr(&["start", "lg"]).code(2);
    env.dmgr(&["stop", "pf"]).success();
    assert_eq!(env.file("pf"), pf.as_bytes());
    assert_eq!(env.file("lg"), lg.as_bytes());
    assert_eq!(env.entry("pf")["status"], "invalid");
}

/// Point 1: a log that is the pidfile, a pidfile on dmgr's own lock or state file,
/// and a pidfile that is another daemon's log are refused, each where it is set.
#[test]
fn a_pidfile_or_log_on_another_file_of_dmgr_is_refused() {
    let env = TestEnv::new()
        .daemon(
            "same",
            "command = \"sleep 60\"\npidfile = \"../x.pid\"\nlog = \"../x.pid\"\n",
        )
        .daemon(
            "lock",
            "command = \"sleep 60\"\npidfile = \"../run/lock.lock\"\n",
        )
        .daemon(
            "state",
            "command = \"sleep 60\"\nlog = \"../run/web.state\"\n",
        )
        .daemon(
            "thief",
            "command = \"sleep 60\"\npidfile = \"../run/log/web.log\"\n",
        )
        .daemon("web", "command = \"sleep 60\"\n");
    let run = env.dmgr(&["check"]).code(2);
    run.stderr_has("same.toml:3:7: `log` is the same file as `pidfile`")
        .stderr_has("lock.toml:2:11: `pidfile`")
        .stderr_has("is one of dmgr's own files")
        .stderr_has("state.toml:2:7: `log`")
        .stderr_has("thief.toml:2:11: `pidfile`")
        .stderr_has("is also the log of `web`")
        .stderr_has("web.toml:1:1: `log`")
        .stderr_has("is also the pidfile of `thief`");
    // Neither side of a shared file starts, so neither can destroy the other's.
    env.dmgr(&["start", "web"]).code(2);
    assert!(!env.run_dir().join("log/web.log").exists());
}

/// Point 2, the second reproduction: with a run directory whose name is not
/// UTF-8, `start` said `started` while the record stayed empty, `stop` said `not
/// running` and left the daemon running. Paths are bytes in the record now.
#[test]
fn a_non_utf8_run_directory_keeps_the_daemon_under_control() {
    let mark = marker("nonutf8run");
    let env = TestEnv::named(OsStr::new("daemons.d"), OsStr::from_bytes(b"run\xff"));
    env.write(
        "web",
        &format!(
            "command = [\"sh\", \"-c\", \"sleep 1000; true\", \"{mark}\"]\nstart_wait = \"50ms\"\n"
        ),
    );
    env.dmgr(&["start", "web"])
        .success()
        .stdout_has("web: started (pid");
    let pid = env.pid("web").expect("the pidfile names the daemon");
    assert_eq!(processes_with(&mark).len(), 1);
    let entry = env.entry("web");
    assert_eq!(entry["status"], "running");
    assert_eq!(entry["pid"], pid);
    env.dmgr(&["start", "web"])
        .success()
        .stdout_has("already running");
    env.dmgr(&["status", "web"])
        .success()
        .stdout_has("run\\xff/web.pid");
    env.dmgr(&["stop", "web"])
        .success()
        .stdout_has("web: stopped");
    assert!(!is_alive(pid));
    assert!(processes_with(&mark).is_empty());
}

/// Point 2: a config directory whose name is not UTF-8 works as well, with its
/// default run directory beside it.
#[test]
fn a_non_utf8_config_directory_works() {
    let env = TestEnv::named(OsStr::from_bytes(b"conf\xfe.d"), OsStr::new("run"));
    env.write("web", "command = \"sleep 1000\"\nstart_wait = \"50ms\"\n");
    env.dmgr(&["check"]).success().stdout_has("conf\\xfe.d");
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    assert_eq!(env.entry("web")["pid"], pid);
    env.dmgr(&["stop", "web"]).success();
    assert!(!is_alive(pid));
}

/// Point 2: a record that cannot be written starts nothing; `start` fails and says
/// why. As root, on a full tmpfs; skipped elsewhere.
#[test]
fn a_state_record_that_cannot_be_written_starts_nothing() {
    let mark = marker("norecord");
    let env = TestEnv::new();
    std::fs::create_dir(env.run_dir()).unwrap();
    // A record is written whole through a temporary file renamed over it: room for
    // two at once.
    let Some(_unmount) = mount_tmpfs(&env.run_dir(), "size=64k,mode=0755") else {
        return;
    };
    let filler = env.run_dir().join("filler");
    // Fill the file system: the record's first write finds no room.
    let _ = std::fs::write(&filler, vec![b'x'; 128 << 10]);
    env.write(
        "web",
        &format!(
            "command = [\"sh\", \"-c\", \"sleep 1000; true\", \"{mark}\"]\nstart_wait = \"50ms\"\nlog = \"{}/web.log\"\n",
            env.root().display()
        ),
    );
    env.dmgr(&["start", "web"])
        .code(1)
        .stderr_has("cannot write the state record")
        .stderr_has("No space left on device")
        .stderr_lacks("started (pid");
    assert!(
        processes_with(&mark).is_empty(),
        "a daemon no record names runs"
    );
    std::fs::remove_file(&filler).unwrap();
    env.dmgr(&["start", "web"]).success();
    env.dmgr(&["stop", "web"]).success();
    assert!(processes_with(&mark).is_empty());
}

/// Point 3, the third reproduction: `log_keep = 4294967295` hung the keeper
/// in billions of renames; it is refused with the reason now.
#[test]
fn a_huge_log_keep_is_refused_with_the_reason() {
    let env = TestEnv::new().daemon(
        "web",
        "command = \"sleep 60\"\nlog_max_size = \"100\"\nlog_keep = 4294967295\n",
    );
    env.dmgr(&["check"])
        .code(2)
        .stderr_has("web.toml:2:16: `log_max_size` is 100B")
        .stderr_has("web.toml:3:12: expected a whole number from 0 to 1000, found 4294967295: rotation renames every kept file");
    env.dmgr(&["start", "web"]).code(2);
}

/// Point 3: `restart_delay = "0"` restarted `false` in a tight loop; the backoff now
/// doubles from a floor: the fourth quick failure in a row waits 80 ms.
#[test]
fn a_zero_restart_delay_still_backs_off() {
    let env = TestEnv::new().daemon(
        "web",
        "command = \"false\"\nrestart = \"always\"\nrestart_delay = \"0\"\nmax_restarts = 1000\nstart_wait = \"0s\"\n",
    );
    env.dmgr(&["start", "web"]).success();
    // The k-th restart in a row waits at least 10 ms * 2^(k-1), from k = 2 on.
    let mut seen = None;
    wait_until(
        "a fourth or later restart is due",
        Duration::from_secs(20),
        || {
            let Some(state) = env.state("web") else {
                return false;
            };
            let (Some(next), Some(exited), Some(k)) = (
                state["next_restart_ms"].as_u64(),
                state["last_exit"]["at_ms"].as_u64(),
                state["restarts"].as_u64(),
            ) else {
                return false;
            };
            if k >= 4 {
                seen = Some((k, next.saturating_sub(exited)));
            }
            seen.is_some()
        },
    );
    let (k, waited) = seen.unwrap();
    assert!(
        waited >= 10 << (k - 1),
        "restart {k} waited {waited} ms, less than the backoff"
    );
    env.dmgr(&["stop", "web"]).success();
}

/// Point 4, the fourth reproduction: a 64 KB file of 32,000 errors made
/// `check` take 16 s and `list` 19 s (every problem rescanned the file). Each call
/// here is bounded by the fixture's timeout; the figures are in the benchmark.
#[test]
fn a_file_of_thirty_two_thousand_errors_is_checked_and_listed_at_once() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 60\"\n");
    std::fs::write(env.config_dir().join("bad.toml"), "=\n".repeat(32_000)).unwrap();
    let run = env.dmgr(&["check"]).code(2);
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("bad.toml:")).collect();
    assert_eq!(lines.len(), 101, "at most 100 problems and a count");
    assert!(
        lines[100].contains("more problems not shown"),
        "{}",
        lines[100]
    );
    let list = env.list();
    let bad = list.iter().find(|e| e["name"] == "bad").unwrap();
    assert_eq!(bad["status"], "invalid");
    assert!(bad["error"].as_str().unwrap().starts_with("1:1: "));
}

/// Point 4: an unknown key a megabyte long is not echoed whole.
#[test]
fn a_megabyte_key_is_not_echoed_whole() {
    let env = TestEnv::new();
    let key = "k".repeat(1_000_000);
    std::fs::write(
        env.config_dir().join("web.toml"),
        format!("command = \"sleep 1\"\n{key} = 1\n"),
    )
    .unwrap();
    let run = env.dmgr(&["check"]).code(2);
    assert!(run.stderr().len() < 1000, "{} bytes", run.stderr().len());
    run.stderr_has("web.toml:2:1: unknown key `kkkk");
}

/// Point 5: integers in any radix mean what TOML says: `stop_signal = 0o17` is TERM
/// (it was SIGCHLD, so every stop ended in SIGKILL), `0xF` too (it was "unknown
/// signal F").
#[test]
fn integer_signals_in_any_radix_are_the_signal_toml_means() {
    let script = "trap 'echo got TERM; exit 0' TERM; echo up; while :; do sleep 0.05; done";
    let env = TestEnv::new()
        .daemon(
            "octal",
            &format!("command = [\"sh\", \"-c\", \"{script}\"]\nstop_signal = 0o17\nstop_timeout = \"30s\"\nstart_wait = \"200ms\"\n"),
        )
        .daemon(
            "hex",
            &format!("command = [\"sh\", \"-c\", \"{script}\"]\nstop_signal = 0xF\nstop_timeout = \"30s\"\nstart_wait = \"200ms\"\n"),
        );
    env.dmgr(&["check"]).success();
    env.dmgr(&["start", "--all"]).success();
    env.dmgr(&["stop", "--all"]).success();
    for name in ["octal", "hex"] {
        assert!(
            env.log(name).contains("got TERM"),
            "{name}: {}",
            env.log(name)
        );
    }
}

/// Point 5: a stop signal that cannot stop and a reload signal that kills are
/// refused; KILL as a stop signal is a warning.
#[test]
fn signals_are_checked_for_their_key() {
    let env = TestEnv::new()
        .daemon("stop", "command = \"sleep 1\"\nstop_signal = \"STOP\"\n")
        .daemon("chld", "command = \"sleep 1\"\nstop_signal = \"CHLD\"\n")
        .daemon(
            "reload",
            "command = \"sleep 1\"\nreload_signal = \"KILL\"\n",
        );
    env.dmgr(&["check"])
        .code(2)
        .stderr_has("stop.toml:2:15: SIGSTOP pauses a process instead of ending it")
        .stderr_has("chld.toml:2:15: SIGCHLD is ignored")
        .stderr_has("reload.toml:2:17: SIGKILL cannot be caught");
    let env = TestEnv::new().daemon("kill", "command = \"sleep 1\"\nstop_signal = \"KILL\"\n");
    env.dmgr(&["check"])
        .success()
        .stdout_has("1 daemon ok")
        .stdout_has("(1 warning)")
        .stderr_has("kill.toml:2:15: warning: stop_signal SIGKILL");
}

/// Point 6: values that pass as their type but defeat their purpose are refused by
/// `check`, instead of failing only at `start` or not at all.
#[test]
fn values_that_defeat_their_purpose_fail_check() {
    let cases = [
        ("umask = \"+22\"", "2:9: invalid umask"),
        (
            "env = { 1X = \"a\" }",
            "2:9: `1X` is not a valid environment variable name",
        ),
        (
            "env = { \"A B\" = \"a\" }",
            "2:9: `A B` is not a valid environment variable name",
        ),
        ("user = \"-rf\"", "2:8: `-rf` is not a valid user name"),
        (
            "user = \"../etc\"",
            "2:8: `../etc` is not a valid user name",
        ),
        (
            "ready = { tcp = \"h:0\" }",
            "2:17: invalid address \"h:0\": port 0",
        ),
        (
            "ready = { tcp = \"[::1:80\" }",
            "2:17: invalid address \"[::1:80\"",
        ),
        ("pidfile = \"/\"", "2:11: `pidfile` / is a directory"),
    ];
    for (line, expected) in cases {
        let env = TestEnv::new().daemon("web", &format!("command = \"sleep 1\"\n{line}\n"));
        env.dmgr(&["check"])
            .code(2)
            .stderr_has(&format!("web.toml:{expected}"));
    }
}

/// Point 6, the fifth reproduction: a description with escape sequences set
/// the terminal's title and cleared the screen on `dmgr status`. Everything from a
/// file is printed escaped: status, list, check and errors.
#[test]
fn control_characters_from_files_are_printed_escaped() {
    let env = TestEnv::new().daemon(
        "web",
        "description = \"\\u001b]0;pwned\\u0007\\u001b[2J\"\ncommand = [\"sh\", \"-c\", \"exec sleep 1000\", \"\\u001b[31mred\"]\nstart_wait = \"50ms\"\n",
    );
    env.write("bad", "command = \"x\"\n\"key\\u001b[2J\" = 1\n");
    let status = env.dmgr(&["status", "web"]).code(3);
    let status = status.stdout_has("web - \\e]0;pwned\\x07\\e[2J");
    assert!(!status.stdout().contains('\u{1b}') && !status.stdout().contains('\u{7}'));
    env.dmgr(&["start", "web"]).success();
    let list = env.dmgr(&["list"]).success();
    let list = list.stdout_has("\\e[31mred");
    assert!(!list.stdout().contains('\u{1b}'), "{}", list.stdout());
    let check = env.dmgr(&["check"]).code(2);
    let check = check.stderr_has("unknown key `key\\e[2J`");
    assert!(!check.stderr().contains('\u{1b}'));
    let start = env.dmgr(&["start", "bad"]).code(2);
    assert!(!start.stderr().contains('\u{1b}'));
    // JSON keeps the value, escaped as JSON escapes.
    let json = env.dmgr(&["list", "--json"]).success();
    json.stdout_has("\\u001b[31mred");
    env.dmgr(&["stop", "web"]).success();
}

/// Point 6: `logs` keeps the daemon's bytes in a pipe and with `--raw`, and escapes
/// them on a terminal (through `script`, which gives it one).
#[test]
fn logs_escape_control_characters_only_on_a_terminal() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sh\", \"-c\", \"printf 'plain \\\\033[2Jcleared \\\\377\\\\n'; exec sleep 1000\"]\nstart_wait = \"100ms\"\n",
    );
    env.dmgr(&["start", "web"]).success();
    let log = env.run_dir().join("log/web.log");
    wait_until("the line is logged", Duration::from_secs(10), || {
        String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).contains("cleared")
    });
    let piped = env.dmgr(&["logs", "web"]).success();
    assert!(
        piped.stdout_bytes().windows(4).any(|w| w == b"\x1b[2J"),
        "a pipe gets the bytes as written"
    );
    assert!(piped.stdout_bytes().contains(&0xff));
    let raw = env.dmgr(&["logs", "--raw", "web"]).success();
    assert_eq!(raw.stdout_bytes(), piped.stdout_bytes());
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("note: no `script` to give dmgr a terminal; the terminal half is skipped");
        return;
    }
    let line = format!(
        "{} --config-dir {} --run-dir {} logs web",
        env!("CARGO_BIN_EXE_dmgr"),
        env.config_dir().display(),
        env.run_dir().display()
    );
    let mut command = Command::new("script");
    command
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let on_terminal = env
        .run(command, &["logs", "web", "(on a terminal)"])
        .success();
    let on_terminal = on_terminal.stdout_has("plain \\e[2Jcleared \\xff");
    assert!(!on_terminal.stdout_bytes().windows(2).any(|w| w == b"\x1b["));
}

/// Point 8: a relative `HOME` was used (the keeper later failed from `/`); the XDG
/// specification says to ignore relative values.
#[test]
fn a_relative_home_is_ignored() {
    let env = TestEnv::new();
    let cwd = env.root().join("empty");
    std::fs::create_dir(&cwd).unwrap();
    open_up(&env, &cwd);
    let bin = Reachable::new();
    let run = |vars: &[(&str, &OsStr)]| {
        let command = bin.command(&cwd, &[OsStr::new("list")], vars);
        env.run(command, &["list", "(relative HOME)"])
    };
    if is_root() {
        // Root's directory does not depend on HOME; nobody's does.
        eprintln!("note: run as nobody");
    }
    run(&[("HOME", OsStr::new("home"))])
        .code(2)
        .stderr_has("neither HOME nor XDG_CONFIG_HOME is set to an absolute path");
    run(&[
        ("HOME", OsStr::new("home")),
        ("XDG_CONFIG_HOME", OsStr::new("cfg")),
    ])
    .code(2)
    .stderr_has("set to an absolute path");
}

/// Point 8: a missing config directory made `list` print an empty table and exit
/// 0 while `check` exited 2; a file there made `check` say "does not exist". Now
/// both exit 2 with the real problem, `list` still shows a running orphan, and
/// `stop --all` still stops it.
#[test]
fn a_missing_config_directory_is_an_error_for_list_too() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1000\"\nstart_wait = \"50ms\"\n");
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    std::fs::remove_dir_all(env.config_dir()).unwrap();
    for args in [&["check"][..], &["list"], &["start", "--all"]] {
        env.dmgr(args)
            .code(2)
            .stderr_has("does not exist")
            .stderr_has("hint: create it, or pass another one with --config-dir DIR");
    }
    env.dmgr(&["list"]).code(2).stdout_has("orphaned");
    env.dmgr(&["status", "web"])
        .code(4)
        .stderr_has("does not exist");
    env.dmgr(&["stop", "--all"])
        .success()
        .stdout_has("web: stopped");
    assert!(!is_alive(pid));
    std::fs::write(env.config_dir(), "a file").unwrap();
    env.dmgr(&["check"])
        .code(2)
        .stderr_has("is not a directory");
    env.dmgr(&["list"]).code(2).stderr_has("is not a directory");
}

/// Point 8: an unreadable config directory exited 1 where SPEC asks 2, and `status
/// a` there said "no such daemon".
#[test]
fn an_unreadable_config_directory_is_a_configuration_error() {
    let env = TestEnv::new().daemon("a", "command = \"sleep 1\"\n");
    let run_dir = env.run_dir();
    std::fs::create_dir(&run_dir).unwrap();
    open_up(&env, &run_dir);
    std::fs::set_permissions(env.config_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    if !is_root() {
        std::fs::set_permissions(env.config_dir(), std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let bin = Reachable::new();
    let (config_dir, run_dir) = (env.config_dir(), env.run_dir());
    let dmgr = |args: &[&str]| {
        let mut all: Vec<&OsStr> = vec![
            OsStr::new("--config-dir"),
            config_dir.as_os_str(),
            OsStr::new("--run-dir"),
            run_dir.as_os_str(),
        ];
        all.extend(args.iter().map(OsStr::new));
        env.run(bin.command(env.root(), &all, &[]), args)
    };
    for verb in ["check", "list"] {
        dmgr(&[verb])
            .code(2)
            .stderr_has("cannot be read: Permission denied");
    }
    dmgr(&["status", "a"])
        .code(4)
        .stderr_has("cannot be read: Permission denied")
        .stderr_lacks("no such daemon");
    std::fs::set_permissions(env.config_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Point 8: `bad\xff.toml` was skipped in silence; it is invalid, with why.
#[test]
fn a_file_name_that_is_not_utf8_is_listed_as_invalid() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1\"\n");
    std::fs::write(
        env.config_dir().join(OsStr::from_bytes(b"bad\xff.toml")),
        "command = \"sleep 1\"\n",
    )
    .unwrap();
    env.dmgr(&["check"])
        .code(2)
        .stderr_has("bad\\xff.toml:1:1: the file name is not valid UTF-8");
    env.dmgr(&["list"])
        .success()
        .stdout_has("bad\\xff  invalid");
}

/// Point 8: `../x` got "no such daemon"; it is not a valid name.
#[test]
fn an_invalid_name_on_the_command_line_says_so() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1\"\n");
    for verb in ["start", "stop", "logs"] {
        env.dmgr(&[verb, "../x"])
            .code(2)
            .stderr_has("`../x` is not a valid daemon name")
            .stderr_lacks("no such daemon");
    }
    env.dmgr(&["status", "../x"])
        .code(4)
        .stderr_has("`../x` is not a valid daemon name");
}

/// Point 8: problems across files (unknown `after`, cycles, shared pidfiles) had no
/// LINE:COL, and a duplicate key did not name the key nor its first place.
#[test]
fn problems_across_files_and_duplicate_keys_are_located() {
    let env = TestEnv::new()
        .daemon("a", "command = \"sleep 1\"\nafter = [\"b\"]\n")
        .daemon(
            "b",
            "command = \"sleep 1\"\nrestart = \"no\"\nafter = [\"a\", \"nope\"]\n",
        )
        .daemon("p", "command = \"sleep 1\"\npidfile = \"../shared.pid\"\n")
        .daemon(
            "q",
            "restart = \"no\"\ncommand = \"sleep 1\"\npidfile = \"../shared.pid\"\n",
        )
        .daemon(
            "dup",
            "command = \"sleep 1\"\nrestart = \"no\"\ncommand = \"sleep 2\"\n",
        );
    env.dmgr(&["check"])
        .code(2)
        .stderr_has("a.toml:2:10: `after` forms a cycle: a -> b -> a")
        .stderr_has("b.toml:3:10: `after` forms a cycle: a -> b -> a")
        .stderr_has("b.toml:3:15: `after` names `nope`, which is not a daemon in this directory")
        .stderr_has("p.toml:2:11: `pidfile`")
        .stderr_has("q.toml:3:11: `pidfile`")
        .stderr_has("dup.toml:3:1: duplicate key `command`: already set at 1:1; keep one of them");
}

/// Point 8: a read-only run directory's error called the operation lock "the
/// pidfile". As root, on a read-only tmpfs; skipped elsewhere.
#[test]
fn a_read_only_run_directory_names_the_lock() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1\"\n");
    std::fs::create_dir(env.run_dir()).unwrap();
    let Some(unmount) = mount_tmpfs(&env.run_dir(), "ro,size=16k,mode=0755") else {
        return;
    };
    let run = env.dmgr(&["start", "web"]);
    drop(unmount);
    run.code(1)
        .stderr_has("cannot open the operation lock")
        .stderr_has("web.lock: Read-only file system")
        .stderr_lacks("pidfile");
}

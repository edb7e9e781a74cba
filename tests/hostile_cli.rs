//! Hostile command lines and surroundings (issue 10, item 5): names and paths that
//! are not UTF-8, a config directory that is a FIFO or `/proc`, 10,000 files, a
//! 50 MB file, symlink loops, an unreadable file, `HOME` unset, standard output
//! closed, full or broken. Each gives a clear message and the documented exit code;
//! each call is bounded by the fixture's timeout, so a hang fails the test; none may
//! panic.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::hostile_config::Reachable;
use crate::support::{wait_until, Run, TestEnv};

/// Asserts that nothing in `run` looks like a Rust panic.
#[track_caller]
fn no_panic(run: Run) -> Run {
    run.stderr_lacks("panicked").stderr_lacks("RUST_BACKTRACE")
}

#[test]
fn names_that_are_not_utf8_are_usage_errors() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1\"\n");
    for verb in ["start", "status", "logs"] {
        let mut command = env.command(&[verb]);
        command.arg(OsStr::from_bytes(b"w\xffb"));
        let run = no_panic(env.run(command, &[verb, "w\\xffb"]));
        run.code(2).stderr_has("invalid UTF-8");
    }
}

#[test]
fn a_config_directory_that_is_a_fifo_or_proc_is_handled_at_once() {
    let env = TestEnv::new();
    let fifo = env.root().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    for args in [
        &["check"][..],
        &["list"],
        &["start", "--all"],
        &["status", "web"],
    ] {
        let command = env.command_in(fifo.as_os_str(), args);
        let code = if args[0] == "status" { 4 } else { 2 };
        no_panic(env.run(command, args))
            .code(code)
            .stderr_has("fifo is not a directory");
    }
    // /proc is a directory of no daemon files: nothing to check, nothing to list.
    let proc = OsStr::new("/proc");
    no_panic(env.run(env.command_in(proc, &["check"]), &["check", "(/proc)"]))
        .success()
        .stdout_has("0 daemons ok in /proc");
    no_panic(env.run(env.command_in(proc, &["list"]), &["list", "(/proc)"])).success();
}

#[test]
fn ten_thousand_files_are_checked_and_listed() {
    let env = TestEnv::new();
    for i in 0..10_000 {
        env.write(&format!("d{i:05}"), "command = \"sleep 1\"\n");
    }
    no_panic(env.dmgr(&["check"]))
        .success()
        .stdout_has("10000 daemons ok");
    let list = no_panic(env.dmgr(&["list"])).success();
    assert_eq!(list.stdout().lines().count(), 10_001);
    // Issue 16: every file naming an unknown daemon in `after` took `list` 46 s,
    // an edit distance against every other name for each.
    for i in 0..10_000 {
        env.write(
            &format!("d{i:05}"),
            &format!("command = \"sleep 1\"\nafter = [\"nosuch{i:05}\"]\n"),
        );
    }
    let check = no_panic(env.dmgr(&["check"])).code(2);
    check
        .stderr_has("d09999.toml:2:10: `after` names `nosuch09999`")
        .stderr_has("dmgr: 10000 problems in 10000 files");
    let list = env.list();
    assert_eq!(list.len(), 10_000);
    assert!(list.iter().all(|e| e["status"] == "invalid"));
}

#[test]
fn a_fifty_megabyte_file_is_refused_unread() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1\"\n");
    let big = std::fs::File::create(env.config_dir().join("big.toml")).unwrap();
    big.set_len(50 << 20).unwrap();
    no_panic(env.dmgr(&["check"]))
        .code(2)
        .stderr_has("big.toml:1:1: too large (52428800 bytes); a daemon file is at most 1 MiB");
    no_panic(env.dmgr(&["start", "big"])).code(2);
    assert_eq!(env.entry("web")["status"], "stopped");
}

#[test]
fn symlink_loops_are_reported_not_followed() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1\"\n");
    std::os::unix::fs::symlink("loop.toml", env.config_dir().join("loop.toml")).unwrap();
    no_panic(env.dmgr(&["check"]))
        .code(2)
        .stderr_has("loop.toml:1:1: cannot read: Too many levels of symbolic links");
    no_panic(env.dmgr(&["status", "loop"]))
        .code(3)
        .stdout_has("invalid");
    let looped = env.root().join("looped.d");
    std::os::unix::fs::symlink("looped.d", &looped).unwrap();
    let command = env.command_in(looped.as_os_str(), &["list"]);
    no_panic(env.run(command, &["list", "(config dir a symlink loop)"]))
        .code(2)
        .stderr_has("cannot be read: Too many levels of symbolic links");
}

#[test]
fn an_unreadable_file_is_invalid_with_the_reason() {
    let env = TestEnv::new()
        .daemon("web", "command = \"sleep 1\"\n")
        .daemon("secret", "command = \"sleep 1\"\n");
    for path in [env.root().to_path_buf(), env.config_dir()] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let secret = env.config_dir().join("secret.toml");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let bin = Reachable::new();
    let run_dir = env.root().join("nobody-run");
    std::fs::create_dir(&run_dir).unwrap();
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config_dir = env.config_dir();
    let args = [
        OsStr::new("--config-dir"),
        config_dir.as_os_str(),
        OsStr::new("--run-dir"),
        run_dir.as_os_str(),
        OsStr::new("check"),
    ];
    no_panic(env.run(bin.command(env.root(), &args, &[]), &["check"]))
        .code(2)
        .stderr_has("secret.toml:1:1: cannot read: Permission denied")
        .stderr_lacks("web.toml");
}

#[test]
fn home_unset_gives_a_clear_error() {
    let env = TestEnv::new();
    let cwd = env.root().join("empty");
    std::fs::create_dir(&cwd).unwrap();
    for path in [env.root(), cwd.as_path()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // Run as nobody when root, so that the user directory, not /etc/dmgr, is looked
    // for; with no HOME there is none.
    let bin = Reachable::new();
    for verb in ["list", "check", "start"] {
        let mut args = vec![OsStr::new(verb)];
        if verb == "start" {
            args.push(OsStr::new("--all"));
        }
        no_panic(env.run(bin.command(&cwd, &args, &[]), &[verb, "(HOME unset)"]))
            .code(2)
            .stderr_has("cannot find a config directory")
            .stderr_has("pass --config-dir DIR");
    }
}

#[test]
fn a_closed_standard_output_is_an_error() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1\"\n");
    for verb in ["list", "status web", "logs web", "list --json"] {
        let line = format!("exec \"$0\" --config-dir \"$1\" --run-dir \"$2\" {verb} >&-");
        let mut command = Command::new("sh");
        command
            .args(["-c", &line, env!("CARGO_BIN_EXE_dmgr")])
            .arg(env.config_dir())
            .arg(env.run_dir())
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        no_panic(env.run(command, &[verb, ">&-"]))
            .code(1)
            .stderr_has("cannot write to standard output: Bad file descriptor");
    }
}

#[test]
fn a_full_pipe_holds_output_until_read_and_a_broken_one_is_success() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sh\", \"-c\", \"i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done; exec sleep 1000\"]\nstart_wait = \"0s\"\n",
    );
    env.dmgr(&["start", "web"]).success();
    wait_until("all lines are logged", Duration::from_secs(30), || {
        env.log("web").contains("line-19999")
    });
    // Full: nobody reads until dmgr blocks on the pipe, then everything arrives.
    let mut child = env
        .command(&["logs", "-n", "20000", "web"])
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until(
        "dmgr blocks on the full pipe",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(format!("/proc/{pid}/wchan")).is_ok_and(|w| w.contains("pipe"))
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('S')))
        },
    );
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        out.lines().filter(|l| l.starts_with("line-")).count(),
        20_000
    );
    // Broken: the reader goes after one line.
    let mut child = env
        .command(&["logs", "-n", "20000", "web"])
        .spawn()
        .unwrap();
    let mut first = [0u8; 8];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    env.dmgr(&["stop", "web"]).success();
}

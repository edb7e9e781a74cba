//! Issue 14: the keys a daemon needs in production (`env_file`, `limits`, `nice`,
//! `oom_score_adj`), checked where they land: the daemon's `/proc/PID/environ`,
//! `/proc/PID/limits`, `/proc/PID/stat` and `/proc/PID/oom_score_adj`.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::{environ, is_alive, TestEnv};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The soft and hard values of the line of `/proc/PID/limits` that starts with `what`.
fn proc_limit(pid: i32, what: &str) -> (String, String) {
    let text = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(what))
        .unwrap_or_else(|| panic!("no {what:?} in:\n{text}"));
    let mut words = line[what.len()..].split_whitespace();
    (
        words.next().unwrap().to_string(),
        words.next().unwrap().to_string(),
    )
}

/// Field 19 of `/proc/PID/stat`: the nice value.
fn proc_nice(pid: i32) -> i32 {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &text[text.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(16).unwrap().parse().unwrap()
}

fn proc_oom_score_adj(pid: i32) -> i32 {
    fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

const ENV_FILE: &str = r#"# comments, blank lines, export, both quotes and a continued line
; a comment in the other style

export EXPORTED=yes
PLAIN = spaced value   
SINGLE='$HOME stays \n as written'
DOUBLE="a \"quoted\" \$word"
CONTINUED=one\
two
OVERRIDDEN=from-file
"#;

/// `env_file` as systemd's `EnvironmentFile=` reads it, with `env` winning, in the
/// daemon's own environment.
#[test]
fn env_file_reads_comments_export_and_quotes_and_env_overrides_it() {
    let env = TestEnv::new().daemon(
        "web",
        "command = \"sleep 1000\"\nstart_wait = \"50ms\"\nenv_file = [\"web.env\", \"-absent.env\", \"second.env\"]\nenv = { OVERRIDDEN = \"from-env\" }\n",
    );
    fs::write(env.config_dir().join("web.env"), ENV_FILE).unwrap();
    fs::write(env.config_dir().join("second.env"), "PLAIN=second wins\n").unwrap();
    env.dmgr(&["start", "web"]).success();
    let vars = environ(env.pid("web").unwrap());
    for (key, value) in [
        ("EXPORTED", "yes"),
        ("PLAIN", "second wins"),
        ("SINGLE", "$HOME stays \\n as written"),
        ("DOUBLE", "a \"quoted\" $word"),
        ("CONTINUED", "onetwo"),
        ("OVERRIDDEN", "from-env"),
    ] {
        assert_eq!(
            vars.get(key).map(String::as_str),
            Some(value),
            "{key}: {vars:?}"
        );
    }
    assert!(!vars.contains_key("export EXPORTED"));
    env.dmgr(&["stop", "web"]).success();
}

/// A missing required file fails `start` with its path and the reason, leaving no
/// process and no pidfile; the same file written with `-` is skipped.
#[test]
fn a_missing_required_env_file_fails_start_by_name_and_an_optional_one_does_not() {
    let env = TestEnv::new()
        .daemon(
            "strict",
            "command = \"sleep 1000\"\nenv_file = \"nosuch.env\"\n",
        )
        .daemon(
            "lenient",
            "command = \"sleep 1000\"\nstart_wait = \"50ms\"\nenv_file = \"-nosuch.env\"\n",
        );
    let missing = env.config_dir().join("nosuch.env");
    env.dmgr(&["start", "strict"])
        .code(1)
        .stderr_has(&format!("{}", missing.display()))
        .stderr_has("No such file or directory");
    assert!(!env.pidfile("strict").exists());
    assert_eq!(env.pid("strict"), None);
    assert_eq!(env.entry("strict")["status"], "failed");
    // `check` only warns: the file may be put in place before the start.
    env.dmgr(&["check"]).success().stderr_has(&format!(
        "{}:1:1: warning: cannot read: No such file or directory",
        missing.display()
    ));
    env.dmgr(&["start", "lenient"]).success();
    assert!(env.pid("lenient").is_some_and(is_alive));
    env.dmgr(&["stop", "lenient"]).success();
}

/// `check` reports a syntax error in an env file at its line and column, and `start`
/// refuses the file with the same words.
#[test]
fn check_reports_an_env_file_syntax_error_as_file_line_col() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1000\"\nenv_file = \"web.env\"\n");
    let file = env.config_dir().join("web.env");
    fs::write(&file, "A=1\n  no equals sign\nB=\"open\n").unwrap();
    let check = env.dmgr(&["check"]).code(2);
    check
        .stderr_has(&format!("{}:2:3: this line has no `=`", file.display()))
        .stderr_has(&format!(
            "{}:3:3: this double quote is not closed",
            file.display()
        ));
    env.dmgr(&["start", "web"])
        .code(1)
        .stderr_has(&format!("{}:2:3:", file.display()));
    fs::write(&file, "A=1\n").unwrap();
    env.dmgr(&["check"]).success();
}

/// `dmgr run` reads `env_file` too.
#[test]
fn run_in_the_foreground_reads_env_file() {
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sh\", \"-c\", \"echo \\\"GREETING=$GREETING\\\"\"]\nenv_file = \"web.env\"\n",
    );
    fs::write(env.config_dir().join("web.env"), "GREETING='hello there'\n").unwrap();
    env.dmgr(&["run", "web"])
        .success()
        .stdout_has("GREETING=hello there");
}

/// The file is read again at each start: a restart after a crash, and `apply`, which
/// restarts a daemon whose env file changed since it started and leaves it alone when
/// it did not.
#[test]
fn env_file_is_read_at_every_start_and_apply_restarts_on_a_change() {
    let env = TestEnv::new().daemon(
        "web",
        "command = \"sleep 1000\"\nstart_wait = \"50ms\"\nrestart_delay = \"100ms\"\nenv_file = \"web.env\"\n",
    );
    let file = env.config_dir().join("web.env");
    fs::write(&file, "VERSION=1\n").unwrap();
    env.dmgr(&["start", "web"]).success();
    let first = env.pid("web").unwrap();
    env.dmgr(&["apply"]).success().stdout_has("1 unchanged");
    assert_eq!(env.pid("web"), Some(first));

    fs::write(&file, "VERSION=2\n").unwrap();
    env.dmgr(&["apply", "--dry-run"])
        .success()
        .stdout_has("web: restart (changed: env_file content)");
    env.dmgr(&["apply"])
        .success()
        .stdout_has("web: restarted (changed: env_file content)");
    let second = env.pid("web").unwrap();
    assert_ne!(second, first);
    assert_eq!(environ(second)["VERSION"], "2");
    env.dmgr(&["apply"]).success().stdout_has("1 unchanged");

    // A crash restart reads the file as it is now.
    fs::write(&file, "VERSION=3\n").unwrap();
    crate::support::sigkill(second).unwrap();
    let third = env.wait_for_restart("web", second);
    assert_eq!(environ(third)["VERSION"], "3");
    env.dmgr(&["apply"]).success().stdout_has("1 unchanged");

    // A file that no longer loads leaves the running daemon alone, with the reason.
    fs::remove_file(&file).unwrap();
    env.dmgr(&["apply"])
        .code(1)
        .stderr_has("left running as it is")
        .stderr_has("No such file or directory");
    assert_eq!(env.pid("web"), Some(third));
    env.dmgr(&["stop", "web"]).success();
}

/// Run as root, an env file that others could write is refused like a daemon file,
/// and `check` warns about one that every user can read.
#[test]
fn as_root_an_env_file_others_can_write_is_refused() {
    if !is_root() {
        crate::support::skip(
            "as_root_an_env_file_others_can_write_is_refused",
            "only root checks the owner and mode of env files",
        );
        return;
    }
    let env = TestEnv::new().daemon("web", "command = \"sleep 1000\"\nenv_file = \"web.env\"\n");
    let file = env.config_dir().join("web.env");
    fs::write(&file, "SECRET=1\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
    env.dmgr(&["start", "web"])
        .code(1)
        .stderr_has("writable by group or others");
    assert!(!env.pidfile("web").exists());
    env.dmgr(&["check"])
        .code(2)
        .stderr_has("writable by group or others");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    env.dmgr(&["check"]).success().stderr_has(&format!(
        "{}:1:1: warning: readable by every user",
        file.display()
    ));
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    env.dmgr(&["check"]).success().stderr_lacks("warning");
}

/// `limits` set soft and hard alike, as `/proc/PID/limits` shows them.
#[test]
fn limits_show_in_proc_limits() {
    // `core = "unlimited"` needs root unless the hard limit is unlimited already.
    let core = if is_root() { "\"unlimited\"" } else { "0" };
    let env = TestEnv::new().daemon(
        "web",
        &format!(
            "command = \"sleep 1000\"\nstart_wait = \"50ms\"\nlimits = {{ nofile = 1000, core = {core}, fsize = \"1GiB\", cpu = \"1h\" }}\n"
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    assert_eq!(
        proc_limit(pid, "Max open files"),
        ("1000".to_string(), "1000".to_string())
    );
    let core = if is_root() { "unlimited" } else { "0" };
    assert_eq!(
        proc_limit(pid, "Max core file size"),
        (core.to_string(), core.to_string())
    );
    let gib = (1u64 << 30).to_string();
    assert_eq!(proc_limit(pid, "Max file size"), (gib.clone(), gib));
    assert_eq!(
        proc_limit(pid, "Max cpu time"),
        ("3600".to_string(), "3600".to_string())
    );
    env.dmgr(&["stop", "web"]).success();
}

/// Whether this process has capability `cap` (capabilities(7) numbering) in effect.
fn has_capability(cap: u32) -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << cap) != 0)
}

/// `nice` and `oom_score_adj`, in `/proc`; negative ones where dmgr may set them
/// (`CAP_SYS_NICE`, `CAP_SYS_RESOURCE`: a container's root may lack the second).
#[test]
fn nice_and_oom_score_adj_show_in_proc() {
    let nice = if has_capability(23) { -5 } else { 5 };
    let adj = if has_capability(24) { -500 } else { 500 };
    if adj > 0 {
        eprintln!("note: no CAP_SYS_RESOURCE here; a positive oom_score_adj is checked instead");
    }
    let env = TestEnv::new().daemon(
        "web",
        &format!("command = \"sleep 1000\"\nstart_wait = \"50ms\"\nnice = {nice}\noom_score_adj = {adj}\n"),
    );
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    assert_eq!(proc_nice(pid), nice);
    assert_eq!(proc_oom_score_adj(pid), adj);
    env.dmgr(&["stop", "web"]).success();
}

/// What only a privileged dmgr may set is a start error naming the key, not a silent
/// clamp: a negative nice, a lower OOM score, a limit above the hard limit.
#[test]
fn without_privileges_a_value_dmgr_cannot_set_fails_start_naming_the_key() {
    let env = TestEnv::new()
        .daemon("nice", "command = \"sleep 1000\"\nnice = -5\n")
        .daemon("oom", "command = \"sleep 1000\"\noom_score_adj = -500\n")
        .daemon(
            "nofile",
            "command = \"sleep 1000\"\nlimits = { nofile = \"unlimited\" }\n",
        );
    let as_user = |args: &[&str]| {
        if is_root() {
            let mut command = env.command_as(NOBODY, NOBODY, args);
            command.env("HOME", env.root());
            env.run(command, args)
        } else {
            env.dmgr(args)
        }
    };
    if is_root() {
        for path in [env.root().to_path_buf(), env.config_dir()] {
            std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        for name in ["nice", "oom", "nofile"] {
            let file = env.config_dir().join(format!("{name}.toml"));
            std::os::unix::fs::chown(&file, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        if env.run_dir().exists() {
            std::os::unix::fs::chown(env.run_dir(), Some(NOBODY), Some(NOBODY)).unwrap();
        }
    } else if nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .is_ok_and(|(_, hard)| hard == nix::sys::resource::RLIM_INFINITY)
    {
        eprintln!(
            "note: the hard limit on open files is unlimited here; only nice and oom checked"
        );
    }
    as_user(&["start", "nice"])
        .code(1)
        .stderr_has("`nice` = -5 is a higher priority than dmgr's own");
    as_user(&["start", "oom"])
        .code(1)
        .stderr_has("`oom_score_adj` = -500 is below dmgr's own");
    as_user(&["start", "nofile"])
        .code(1)
        .stderr_has("`limits.nofile` = unlimited is above");
    for name in ["nice", "oom", "nofile"] {
        assert!(!env.pidfile(name).exists(), "{name} left a pidfile");
        assert_eq!(env.pid(name), None);
    }
}

/// `check` locates bad values of the new keys and suggests the nearest limit name.
#[test]
fn check_locates_bad_limits_nice_and_oom_score_adj() {
    let env = TestEnv::new().daemon(
        "web",
        "command = \"sleep 1\"\nlimits = { nofiles = 10, core = \"big\", nproc = \"1MiB\" }\nnice = 20\noom_score_adj = -1001\nenv_file = 3\n",
    );
    let file = env.config_dir().join("web.toml");
    let f = file.display();
    env.dmgr(&["check"])
        .code(2)
        .stderr_has(&format!(
            "{f}:2:12: unknown limit `limits.nofiles`, did you mean `nofile`?"
        ))
        .stderr_has(&format!("{f}:2:33: invalid size \"big\""))
        .stderr_has(&format!(
            "{f}:2:48: expected a whole number or \"unlimited\" for `limits.nproc`"
        ))
        .stderr_has(&format!("{f}:3:8: `nice` must be from -20 to 19"))
        .stderr_has(&format!(
            "{f}:4:17: `oom_score_adj` must be from -1000 to 1000"
        ))
        .stderr_has(&format!("{f}:5:12: expected a path or an array of paths"));
}

/// Nomad's raw_exec cannot express the new keys: each is a comment in the job.
#[test]
fn nomad_export_says_what_it_cannot_express() {
    let env = TestEnv::new().daemon(
        "web",
        "command = \"/bin/sleep 1000\"\nenv_file = \"-web.env\"\nlimits = { nofile = 65536 }\nnice = 5\noom_score_adj = -100\n",
    );
    let job = env.dmgr(&["export", "nomad", "--all"]).success().stdout();
    for comment in [
        "env_file = \"-",
        "limits.nofile = 65536: Nomad sets no resource limit",
        "nice = 5: Nomad has no nice setting",
        "oom_score_adj = -100: Nomad has no OOM score setting",
    ] {
        assert!(job.contains(comment), "{comment:?} not in\n{job}");
    }
}

/// `limits`, `nice` and `oom_score_adj` belong to the process: `apply` restarts a
/// daemon when one of them changed.
#[test]
fn apply_restarts_a_daemon_whose_limits_or_nice_changed() {
    let toml = |nice: i32, nofile: u32| {
        format!("command = \"sleep 1000\"\nstart_wait = \"50ms\"\nnice = {nice}\nlimits = {{ nofile = {nofile} }}\n")
    };
    let env = TestEnv::new().daemon("web", &toml(5, 1000));
    env.dmgr(&["start", "web"]).success();
    let first = env.pid("web").unwrap();
    env.write("web", &toml(6, 1001));
    env.dmgr(&["apply"])
        .success()
        .stdout_has("web: restarted (changed: limits, nice)");
    let second = env.pid("web").unwrap();
    assert_ne!(first, second);
    assert_eq!(proc_nice(second), 6);
    assert_eq!(proc_limit(second, "Max open files").0, "1001");
    env.dmgr(&["stop", "web"]).success();
}

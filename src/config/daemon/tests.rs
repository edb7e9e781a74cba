use super::*;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::config::diagnostic::{Diagnostic, MAX_SHOWN};
use crate::config::discover::Dirs;
use crate::config::units::Size;
use crate::config::Invalid;

/// Every key is named once, in the key table, with its group: each group's struct
/// has a field for exactly the table's keys of that group, and each group's serde
/// names are its keys (durations as `*_ms` in the record).
#[test]
fn every_key_is_a_field_of_exactly_one_group() {
    let of_group = |group: KeyGroup| {
        let mut keys: Vec<&str> = Key::ALL
            .iter()
            .filter(|k| k.group() == group)
            .map(|k| k.name())
            .collect();
        keys.sort_unstable();
        keys
    };
    let sorted_fields = |fields: &[&'static str]| {
        let mut fields = fields.to_vec();
        fields.sort_unstable();
        fields
    };
    assert_eq!(
        of_group(KeyGroup::Process),
        sorted_fields(ProcessSpec::KEYS)
    );
    assert_eq!(
        of_group(KeyGroup::Supervision),
        sorted_fields(Supervision::KEYS)
    );
    assert_eq!(of_group(KeyGroup::Logs), sorted_fields(LogSpec::KEYS));
    // What is held on `Daemon` itself: what identifies and orders it.
    assert_eq!(
        of_group(KeyGroup::Identity),
        [
            "after",
            "autostart",
            "description",
            "instances",
            "pidfile",
            "type"
        ]
    );
    assert_eq!(KEYS.len(), Key::ALL.len());

    fn serde_names<T: Serialize>(value: &T) -> Vec<String> {
        match serde_json::to_value(value).unwrap() {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            _ => unreachable!(),
        }
    }
    let sorted = |keys: &[&str], ms: &[&str]| {
        let mut names: Vec<String> = keys
            .iter()
            .map(|k| match ms.contains(k) {
                true => format!("{k}_ms"),
                false => k.to_string(),
            })
            .collect();
        names.sort_unstable();
        names
    };
    assert_eq!(
        serde_names(&ProcessSpec::default()),
        sorted(ProcessSpec::KEYS, &["watchdog"])
    );
    assert_eq!(serde_names(&LogSpec::default()), sorted(LogSpec::KEYS, &[]));
    let durations = [
        "restart_delay",
        "start_wait",
        "ready_timeout",
        "stop_timeout",
        "health_interval",
        "health_timeout",
        "hook_timeout",
    ];
    assert_eq!(
        serde_names(&Supervision::default()),
        sorted(Supervision::KEYS, &durations)
    );
}

#[test]
fn changed_names_the_keys_that_differ() {
    let old = tests_support::minimal("web");
    let mut new = old.clone();
    assert!(old.process.changed(&new.process).is_empty());
    new.process.umask = 0o077;
    new.process.command = vec!["true".into()];
    new.supervision.stop_timeout = Duration::from_secs(1);
    new.supervision.restart = RestartPolicy::Always;
    assert_eq!(old.process.changed(&new.process), ["command", "umask"]);
    assert_eq!(
        old.supervision.changed(&new.supervision),
        ["restart", "stop_timeout"]
    );
}

/// The defaults a file gets are the groups' `Default`s.
#[test]
fn a_minimal_file_gets_the_groups_defaults() {
    let root = std::env::temp_dir();
    let daemon = load_bytes(&dirs(&root), &root.join("web.toml"), b"command = \"x\"\n").unwrap();
    assert_eq!(daemon.supervision, Supervision::default());
    assert_eq!(daemon.logs, LogSpec::default());
    assert_eq!(
        daemon.process,
        ProcessSpec {
            command: vec!["x".into()],
            log: root.join("run/log/web.log"),
            ..ProcessSpec::default()
        }
    );
}

pub(super) fn dirs(root: &Path) -> Dirs {
    Dirs {
        config_dir: root.join("daemons.d"),
        run_dir: root.join("run"),
        log_dir: root.join("run/log"),
    }
}

/// Loads `text` as `daemons.d/web.toml` of a fresh directory.
pub(super) fn load_full(text: &str) -> (tempfile::TempDir, Result<LoadedFile, Invalid>) {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = dirs(tmp.path());
    std::fs::create_dir_all(&dirs.config_dir).unwrap();
    let file = dirs.config_dir.join("web.toml");
    std::fs::write(&file, text).unwrap();
    let loaded = load_file(&dirs, &file);
    (tmp, loaded)
}

pub(super) fn load_text(text: &str) -> Result<Daemon, Invalid> {
    load_full(text).1.map(|loaded| loaded.daemon)
}

pub(super) fn problems(text: &str) -> Vec<String> {
    let Err(invalid) = load_text(text) else {
        panic!("should be invalid: {text:?}");
    };
    invalid.diagnostics.iter().map(Diagnostic::short).collect()
}

/// The one problem of a file with `command = "a"` and `extra`, without its place.
pub(super) fn problem(extra: &str) -> String {
    let found = problems(&format!("command = \"a\"\n{extra}\n"));
    assert_eq!(found.len(), 1, "{found:?}");
    found[0]
        .split_once(": ")
        .map_or(String::new(), |(_, m)| m.to_string())
}

#[test]
fn only_command_is_required_and_defaults_fill_the_rest() {
    let d = load_text("command = \"python3 -m http.server 8000\"\n").unwrap();
    assert_eq!(d.process.command, ["python3", "-m", "http.server", "8000"]);
    assert_eq!(d.process.working_dir, Path::new("/"));
    assert_eq!(d.process.umask, 0o022);
    assert_eq!(d.supervision.restart, RestartPolicy::OnFailure);
    assert_eq!(d.supervision.start_wait, Duration::from_millis(500));
    assert_eq!(d.supervision.stop_signal.name(), "TERM");
    assert_eq!(d.supervision.reload_signal.name(), "HUP");
    let mixed = load_text("command = \"a\"\nkill_mode = \"mixed\"\n").unwrap();
    let modes = [d.supervision.kill_mode, mixed.supervision.kill_mode];
    assert_eq!(modes, [KillMode::Group, KillMode::Mixed]);
    assert!(problem("kill_mode = \"group \"").contains("expected \"group\" (stop_signal"));
    assert_eq!(d.logs.log_max_size, Size(10 << 20));
    assert_eq!(d.logs.log_keep, 5);
    assert!(d.autostart && !d.process.clear_env && !d.logs.log_timestamps);
    assert!(d.pidfile.ends_with("run/web.pid"));
    assert!(d.process.log.ends_with("run/log/web.log"));
}

#[test]
fn an_http_ready_check_is_validated() {
    let d = load_text("command = \"a\"\nready = { http = \"http://127.0.0.1:8080/up\" }\n");
    let http = ReadyCheck::Http("http://127.0.0.1:8080/up".into());
    assert_eq!(d.unwrap().supervision.ready, Some(http));
    assert!(problem("ready = { http = \"https://x/\" }").contains("https is not supported"));
    assert!(problem("ready = { http = \"http://x:0/\" }").contains("invalid URL"));
}

#[test]
fn every_key_parses() {
    let d = load_text(
        r#"
command = ["./bin/server", "--port", "8080"]
description = "the web server"
working_dir = "../srv"
env = { PORT = "8080", MODE = "prod", _X1 = "" }
clear_env = true
user = "nobody"
group = "nogroup"
umask = "0027"
pidfile = "../pids/web.pid"
log = "/var/tmp/web.log"
stderr_log = "../logs/web.err"
log_max_size = "512KiB"
log_keep = 3
log_timestamps = true
autostart = false
restart = "always"
restart_delay = "250ms"
max_restarts = 2
start_wait = "0s"
ready = { tcp = "127.0.0.1:8080" }
ready_timeout = "5s"
stop_signal = "INT"
stop_timeout = "2m"
reload_signal = "USR1"
stop_command = ["./bin/server", "--shutdown"]
after = ["db"]
type = "forking"
"#,
    )
    .unwrap();
    assert!(
        d.process.command[0].ends_with("daemons.d/bin/server"),
        "{:?}",
        d.process.command
    );
    assert!(
        d.process.working_dir.ends_with("srv")
            && !d.process.working_dir.to_string_lossy().contains("..")
    );
    assert_eq!(d.process.env.get("PORT").map(String::as_str), Some("8080"));
    assert_eq!(d.process.umask, 0o027);
    // type = "forking": the pidfile is the program's; dmgr's lock stays in the run dir.
    assert!(d.forking_pidfile.unwrap().ends_with("pids/web.pid"));
    assert!(d.pidfile.ends_with("run/web.pid"));
    assert!(d.supervision.stop_command.unwrap()[0].ends_with("daemons.d/bin/server"));
    assert_eq!(d.process.log, Path::new("/var/tmp/web.log"));
    assert_eq!(d.logs.log_max_size, Size(512 * 1024));
    assert_eq!(
        d.supervision.ready,
        Some(ReadyCheck::Tcp("127.0.0.1:8080".into()))
    );
    assert_eq!(d.supervision.stop_timeout, Duration::from_secs(120));
    assert_eq!(d.supervision.stop_signal.name(), "INT");
    assert_eq!(d.after, ["db"]);
    assert_eq!(d.kind, DaemonType::Forking);
    assert_eq!(
        (
            d.supervision.restart,
            d.supervision.max_restarts,
            d.logs.log_keep
        ),
        (RestartPolicy::Always, 2, 3)
    );
}

/// Issue 10: every problem has a LINE:COL, and a problem of the file as a whole
/// (here the missing `command`) points at 1:1.
#[test]
fn every_problem_in_a_file_is_reported_with_its_place() {
    let found =
        problems("comand = \"x\"\nrestart = \"sometimes\"\nstop_timeout = 10\nlog_keep = -1\n");
    assert_eq!(
        found,
        [
            "1:1: unknown key `comand`, did you mean `command`?",
            "1:1: missing key `command`: the command to run, as a string or an array",
            "2:11: expected \"no\", \"on-failure\" or \"always\"",
            "3:16: expected a duration like \"10s\", found an integer",
            "4:12: expected a whole number from 0 to 1000, found -1: rotation renames every kept file, and `dmgr logs` reads back through at most that many",
        ]
    );
}

#[test]
fn bad_values_name_the_fix() {
    assert_eq!(
        problems("command = \"a 'b\"\n"),
        ["1:11: cannot split the command into words: a quote is not closed"]
    );
    assert_eq!(problems("command = []\n"), ["1:11: the command is empty"]);
    assert_eq!(
        problem("umask = \"999\""),
        "invalid umask \"999\": write an octal string like \"022\" or \"0027\""
    );
    assert!(problem("stop_signal = \"TERMINATE\"").contains("unknown signal"));
    assert!(problem("ready = { tcp = \"x\", file = \"y\" }").contains("exactly one"));
    assert!(problems("command = \"a\"\nready = { exe = [\"true\"] }\n")
        .iter()
        .any(|p| p.ends_with("did you mean `exec`?")));
    assert!(problem("after = [\"web\"]").contains("after itself"));
    assert!(problem("log_max_size = \"10 parsecs\"").contains("invalid size"));
}

#[test]
fn a_simple_daemon_keeps_its_pidfile_and_commands_are_argv_arrays() {
    let d = load_text("command = \"a\"\npidfile = \"../pids/web.pid\"\nreload_command = [\"kill\", \"-HUP\", \"$MAINPID\"]\n").unwrap();
    assert!(d.pidfile.ends_with("pids/web.pid") && d.forking_pidfile.is_none());
    assert_eq!(
        d.supervision.reload_command.unwrap(),
        ["kill", "-HUP", "$MAINPID"]
    );
    assert_eq!(
        problems("command = \"a\"\nstop_command = \"nginx -s quit\"\n"),
        ["2:16: expected an array of strings, like [\"nginx\", \"-s\", \"reload\"], found a string"]
    );
    assert_eq!(
        problems("command = \"a\"\nstop_command = []\n"),
        ["2:16: the command is empty"]
    );
    assert!(
        problems("command = \"a\"\nreload_signal = \"USR1\"\nreload_command = [\"x\"]\n")[0]
            .contains("exclude each other")
    );
    assert!(
        problems("command = \"a\"\ntype = \"forking\"\npidfile = \"../run/web.pid\"\n")[0]
            .contains("the daemon's own file")
    );
}

#[test]
fn syntax_errors_and_invalid_utf8_are_located() {
    assert!(problems("command = \"a\"\nx = = 1\n")
        .iter()
        .any(|p| p.starts_with("2:")));
    let tmp = tempfile::tempdir().unwrap();
    let dirs = dirs(tmp.path());
    std::fs::create_dir_all(&dirs.config_dir).unwrap();
    let file = dirs.config_dir.join("web.toml");
    std::fs::write(&file, b"command = \"\xff\"\n").unwrap();
    let invalid = load_file(&dirs, &file).err().unwrap();
    assert!(invalid.diagnostics[0]
        .message
        .starts_with("not valid UTF-8"));
    assert_eq!(invalid.diagnostics[0].location, (1, 12));
}

#[test]
fn huge_and_odd_values_are_refused_with_a_reason() {
    let found = problems("command = \"x\"\nrestart_delay = \"99999999999999h\"\nlog_keep = 99999999999999999999\n\"k\\u0000\" = 1\n");
    assert!(found.iter().any(|p| p.contains("too long")), "{found:?}");
    assert!(found.iter().any(|p| p.starts_with("3:12:")), "{found:?}");
    assert!(
        found.iter().any(|p| p.contains("unknown key `k\0`")),
        "{found:?}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dirs = dirs(tmp.path());
    std::fs::create_dir_all(&dirs.config_dir).unwrap();
    let file = dirs.config_dir.join("big.toml");
    std::fs::write(&file, vec![b'#'; 2 << 20]).unwrap();
    let invalid = load_file(&dirs, &file).err().unwrap();
    assert!(invalid.diagnostics[0].message.contains("too large"));
    assert_eq!(invalid.diagnostics[0].location, (1, 1));
}

/// Issue 16: integers mean what TOML says in any radix.
#[test]
fn integers_in_any_radix_mean_what_toml_says() {
    let d = load_text("command = \"a\"\nstop_signal = 0o17\nlog_max_size = 0x10000\nlog_keep = 0b11\nreload_signal = 0xA\n").unwrap();
    assert_eq!(d.supervision.stop_signal.name(), "TERM");
    assert_eq!(d.logs.log_max_size, Size(0x10000));
    assert_eq!(d.logs.log_keep, 3);
    assert_eq!(d.supervision.reload_signal.name(), "USR1");
    assert!(problem("stop_signal = 0x11").contains("SIGCHLD is ignored"));
    assert!(problem("stop_signal = 99").contains("no signal number 99"));
    assert!(problem("log_max_size = 0x10").contains("is 16B"));
    assert!(problem("log_max_size = -1").contains("cannot be -1"));
}

/// Issue 16: numbers have bounds, each with its reason.
#[test]
fn numbers_are_bounded_with_a_reason() {
    let keep = problem("log_keep = 4294967295");
    assert!(
        keep.contains("from 0 to 1000") && keep.contains("rotation"),
        "{keep}"
    );
    let restarts = problem("max_restarts = 4294967295");
    assert!(restarts.contains("from 0 to 1000000") && restarts.contains("two years"));
    assert!(problem("log_max_size = \"100\"").contains("rotate at nearly every line"));
    assert!(problem("log_max_size = \"2TiB\"").contains("never rotated in practice"));
    assert!(load_text("command = \"a\"\nlog_max_size = 0\nlog_keep = 1000\n").is_ok());
    assert!(problem("restart_delay = \"400days\"").contains("at most 366 days"));
}

/// Issue 16: values that defeat their purpose are refused.
#[test]
fn values_that_defeat_their_purpose_are_refused() {
    assert!(problem("stop_signal = \"STOP\"").contains("pauses a process"));
    assert!(problem("stop_signal = \"CONT\"").contains("resumes a process"));
    assert!(problem("stop_signal = \"WINCH\"").contains("ignored"));
    assert!(problem("reload_signal = \"KILL\"").contains("cannot be caught"));
    assert!(problem("reload_signal = \"TERM\"").contains("stops daemons"));
    assert!(problem("reload_signal = \"STOP\"").contains("cannot be caught"));
    assert!(problem("umask = \"+22\"").contains("invalid umask"));
    assert!(problem("umask = \"\"").contains("invalid umask"));
    assert!(problem("env = { 1X = \"a\" }").contains("not a valid environment variable name"));
    assert!(problem("env = { \"A B\" = \"a\" }").contains("not a valid environment variable"));
    assert!(problem("user = \"-rf\"").contains("not a valid user name"));
    assert!(problem("group = \"../etc\"").contains("not a valid group name"));
    assert!(problem("ready = { tcp = \"h:0\" }").contains("port 0"));
    assert!(problem("ready = { tcp = \"[::1:80\" }").contains("not closed"));
    assert!(problem("ready = { tcp = \"::1:80\" }").contains("brackets"));
    assert!(problem("ready = { tcp = \"a b:80\" }").contains("not a host name"));
    assert!(load_text("command = \"a\"\nready = { tcp = \"[::1]:80\" }\n").is_ok());
    assert!(load_text("command = \"a\"\nready = { tcp = \"db.local:5432\" }\n").is_ok());
    assert!(problem("pidfile = \"/\"").contains("is a directory"));
    assert!(problem("log = \"../run/\"").contains("is a directory"));
}

/// Issue 16: `stop_signal = "KILL"` is allowed, as systemd allows it, with a
/// warning for `check`.
#[test]
fn a_kill_stop_signal_is_a_warning() {
    let (_tmp, loaded) = load_full("command = \"a\"\nstop_signal = \"KILL\"\n");
    let loaded = loaded.ok().unwrap();
    assert_eq!(loaded.daemon.supervision.stop_signal.name(), "KILL");
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(loaded.warnings[0].location, (2, 15));
    assert!(loaded.warnings[0]
        .short()
        .contains("warning: stop_signal SIGKILL"));
}

/// Issue 16: a duplicate key names the key and where it was first set.
#[test]
fn a_duplicate_key_names_the_key_and_its_first_place() {
    assert_eq!(
        problems("command = \"a\"\nrestart = \"no\"\ncommand = \"b\"\n"),
        ["3:1: duplicate key `command`: already set at 1:1; keep one of them"]
    );
    assert_eq!(
        problems("command = \"a\"\n[env]\nA = \"1\"\nA = \"2\"\n"),
        ["4:1: duplicate key `A`: already set at 3:1; keep one of them"]
    );
}

/// Issue 16: a 1 MiB file of errors costs time in proportion to its size, and
/// shows at most MAX_SHOWN problems and a count of the rest; a 1 MB unknown key
/// is not echoed whole.
#[test]
fn a_file_of_errors_is_reported_in_linear_time_and_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = dirs(tmp.path());
    let file = dirs.config_dir.join("web.toml");
    for text in [
        "=\n".repeat(1 << 19),
        "a = = 1\n".repeat(1 << 17),
        format!("command = \"a\"\nafter = [{}]\n", "1,".repeat(300_000)),
        "x = 1\n".repeat(170_000),
    ] {
        let started = std::time::Instant::now();
        let invalid = load_bytes(&dirs, &file, text.as_bytes()).err().unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(invalid.diagnostics.len(), MAX_SHOWN + 1);
        let last = invalid.diagnostics.last().unwrap();
        assert!(last.message.contains("more problems not shown"), "{last:?}");
        let mut locations: Vec<_> = invalid.diagnostics.iter().map(|d| d.location).collect();
        locations.sort();
        assert_eq!(
            locations,
            invalid
                .diagnostics
                .iter()
                .map(|d| d.location)
                .collect::<Vec<_>>()
        );
    }
    let long_key = format!("command = \"a\"\n{} = 1\n", "k".repeat(1 << 20));
    let invalid = load_bytes(&dirs, &file, &long_key.as_bytes()[..(1 << 20) - 1]).err();
    let message = &invalid.unwrap().diagnostics[0].message;
    assert!(message.len() < 200, "{} bytes", message.len());
}

#[test]
fn a_relative_program_under_a_non_utf8_directory_is_refused() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join(OsStr::from_bytes(b"x\xff"));
    let dirs = dirs(&root);
    let file = dirs.config_dir.join("web.toml");
    let invalid = load_bytes(&dirs, &file, b"command = \"./bin/server\"\n")
        .err()
        .unwrap();
    assert!(invalid.diagnostics[0].message.contains("not valid UTF-8"));
    let d = load_bytes(&dirs, &file, b"command = \"/bin/server\"\n").unwrap();
    assert!(d
        .pidfile
        .as_os_str()
        .as_bytes()
        .ends_with(b"x\xff/run/web.pid"));
}

#[test]
fn names_follow_the_rule() {
    assert!(is_valid_name("web") && is_valid_name("a.b-c_9") && is_valid_name(&"a".repeat(64)));
    assert!(!is_valid_name("") && !is_valid_name(".web") && !is_valid_name("-web"));
    assert!(!is_valid_name("bad name") && !is_valid_name(&"a".repeat(65)));
}

#[test]
fn the_directory_skips_hidden_and_editor_files_and_keeps_bad_ones_apart() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let dirs = dirs(tmp.path());
    let dir = &dirs.config_dir;
    std::fs::create_dir_all(dir.join("sub.toml")).unwrap();
    for (name, text) in [
        ("web.toml", "command = \"sleep 1\""),
        ("broken.toml", "command = "),
        (".hidden.toml", "command = \"x\""),
        ("web.toml~", "command = \"x\""),
        (".web.toml.swp", "x"),
        ("notes.txt", "x"),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    // Issue 16: a name that is not UTF-8 is not skipped in silence.
    std::fs::write(
        dir.join(OsStr::from_bytes(b"bad\xff.toml")),
        "command = \"x\"",
    )
    .unwrap();
    let loaded = load_dir(&dirs).unwrap();
    assert_eq!(
        loaded
            .daemons
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        ["web"]
    );
    assert_eq!(
        loaded
            .invalid
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>(),
        ["bad\\xff", "broken", "sub"]
    );
    assert!(loaded.invalid[0].diagnostics[0]
        .message
        .contains("not valid UTF-8"));
    // Issue 22: a `*.toml` directory is no daemon removed but an invalid file.
    assert!(loaded.invalid[2].diagnostics[0]
        .message
        .contains("it is a directory"));
    // Issue 16: a missing directory is an error, as it is for `check`.
    let missing = Dirs {
        config_dir: tmp.path().join("none"),
        ..dirs.clone()
    };
    let err = load_dir(&missing).err().unwrap();
    assert!(err.to_string().ends_with("does not exist"), "{err}");
    assert_eq!(err.exit_code(), 2);
    let file = Dirs {
        config_dir: dir.join("web.toml"),
        ..dirs
    };
    let err = load_dir(&file).err().unwrap();
    assert!(err.to_string().ends_with("is not a directory"), "{err}");
}

#[test]
fn the_repository_examples_load() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("daemons.d");
    let tmp = tempfile::tempdir().unwrap();
    let dirs = Dirs {
        config_dir: examples,
        ..dirs(tmp.path())
    };
    let loaded = super::super::load(&dirs).unwrap();
    assert!(loaded.invalid.is_empty(), "{:?}", loaded.invalid);
}

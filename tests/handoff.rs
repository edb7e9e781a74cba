//! Hand-off (issue 13), through the real binary: `export systemd` units pass
//! `systemd-analyze verify`, `export nomad` parses back with hcl-rs and as JSON, the
//! repository's own `daemons.d` survives both round trips, and `boot install` writes
//! exactly one unit into a temporary unit directory and `boot uninstall` removes it.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::TestEnv;

/// A daemon file that sets every key, with values that need escaping in a unit.
const EVERY_KEY: &str = r#"
command = ["/bin/sh", "-c", "echo \"$HOME\" 100% 'it''s' \\ ${X}", "two words", ""]
description = "every key, 100% \"quoted\""
working_dir = "/tmp"
env = { PORT = "8080", GREETING = "hello world", RATIO = "50%", DOLLAR = "$PATH" }
clear_env = false
user = "daemon"
group = "daemon"
umask = "0027"
log = "/var/log/dmgr-test/every.log"
stderr_log = "/var/log/dmgr-test/every.err"
log_max_size = "2MiB"
log_keep = 2
log_timestamps = true
autostart = true
restart = "always"
restart_delay = "2s"
max_restarts = 3
start_wait = "100ms"
ready = { tcp = "127.0.0.1:18080" }
ready_timeout = "5s"
stop_signal = "INT"
stop_timeout = "40s"
reload_signal = "USR1"
after = ["forker"]
type = "simple"
env_file = ["-/etc/dmgr-test/every.env", "every.env"]
limits = { nofile = 65536, core = "unlimited", memlock = "64MiB", cpu = "1h" }
nice = 5
oom_score_adj = -100
"#;

const FORKER: &str = r#"
command = "/bin/sleep 1000"
type = "forking"
pidfile = "../forker.pid"
autostart = false
restart = "no"
"#;

const NOTIFIER: &str = r#"
command = "/bin/sleep 1000"
type = "notify"
watchdog = "30s"
watchdog_signal = "QUIT"
notify_access = "all"
ready = { log = 'ready\d+' }
"#;

fn regular_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The unit name `export systemd` gives daemon `name` of `env` (`PREFIX-NAME.service`),
/// or with `name` empty the target.
fn unit_of(env: &TestEnv, name: &str) -> String {
    let prefix = dmgr::boot::unit_prefix(&env.config_dir(), false);
    if name.is_empty() {
        format!("{prefix}.target")
    } else {
        format!("{prefix}-{name}.service")
    }
}

/// The value of every `KEY=` line of a unit.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// The words of an `Exec*=` line as systemd reads them (for values without control
/// characters): quotes and backslashes as a POSIX shell reads double quotes, then
/// `$$` and `%%` undoubled.
fn exec_words(line: &str) -> Vec<String> {
    shlex::split(line)
        .expect("an exec line splits")
        .into_iter()
        .map(|w| w.replace("$$", "$").replace("%%", "%"))
        .collect()
}

/// Runs `systemd-analyze verify` on `files` and returns the lines it printed about
/// dmgr's units, or `None` when systemd-analyze is not installed.
fn verify_complaints(files: &[PathBuf]) -> Option<Vec<String>> {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .args(files)
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut complaints: Vec<String> = text
        .lines()
        .filter(|l| l.contains("dmgr"))
        .map(str::to_string)
        .collect();
    if !out.status.success() {
        complaints.push(format!("systemd-analyze verify exited {}", out.status));
    }
    Some(complaints)
}

/// Every unit `export systemd` writes passes `systemd-analyze verify` without a word
/// about dmgr's units, while a broken unit beside them does draw one.
#[test]
fn exported_units_pass_systemd_analyze_verify() {
    let env = TestEnv::new()
        .daemon("every", EVERY_KEY)
        .daemon("forker", FORKER)
        .daemon("notifier", NOTIFIER)
        .daemon("plain", "command = \"sleep 100\"\n");
    let dir = env.root().join("units");
    env.dmgr(&["export", "systemd", "--all", "-o", dir.to_str().unwrap()])
        .success()
        .stdout_has("wrote ");
    let mut expected = vec![
        "dmgr-logdir@.service".to_string(),
        unit_of(&env, "every").replace(".service", ".env"),
        unit_of(&env, "every"),
        unit_of(&env, "forker"),
        unit_of(&env, "notifier"),
        unit_of(&env, "plain"),
        unit_of(&env, ""),
    ];
    expected.sort();
    assert_eq!(regular_files(&dir), expected);
    let files: Vec<PathBuf> = regular_files(&dir)
        .iter()
        .filter(|f| !f.ends_with(".env"))
        .map(|f| dir.join(f))
        .collect();
    let Some(complaints) = verify_complaints(&files) else {
        eprintln!("note: systemd-analyze is not installed (.ci/run installs it); verify skipped");
        return;
    };
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify: {complaints:#?}"
    );
    // The check can fail: a unit systemd does not understand is reported.
    let bogus = dir.join("dmgr-bogus.service");
    fs::write(&bogus, "[Service]\nExecStart=/bin/true\nBogusKey=1\n").unwrap();
    let complaints = verify_complaints(&[bogus]).unwrap();
    assert!(
        complaints.iter().any(|l| l.contains("BogusKey")),
        "{complaints:?}"
    );
}

/// The unit of a daemon that sets every key, field by field, as systemd reads it.
#[test]
fn an_exported_unit_maps_every_key() {
    let env = TestEnv::new()
        .daemon("every", EVERY_KEY)
        .daemon("forker", FORKER);
    let out = env
        .dmgr(&["export", "systemd", "every", "forker"])
        .success()
        .stdout();
    let section = |name: &str| {
        out.split(&format!("==> {name} <==\n"))
            .nth(1)
            .and_then(|rest| rest.split("==> ").next())
            .unwrap_or_else(|| panic!("no {name} in\n{out}"))
            .to_string()
    };
    let unit_text = section(&unit_of(&env, "every"));
    let unit = unit_text.as_str();
    assert!(out.contains(&format!("==> {} <==\n", unit_of(&env, "forker"))));
    assert!(out.contains(&format!("==> {} <==\n", unit_of(&env, ""))));
    let exec = exec_words(values(unit, "ExecStart")[0]);
    assert_eq!(
        exec,
        [
            "/bin/sh",
            "-c",
            "echo \"$HOME\" 100% 'it''s' \\ ${X}",
            "two words",
            ""
        ]
    );
    assert_eq!(values(unit, "Description"), ["every key, 100%% \"quoted\""]);
    assert_eq!(values(unit, "WorkingDirectory"), ["/tmp"]);
    // With an env_file, env is in a file named after it, so that it wins as in dmgr.
    assert!(values(unit, "Environment").is_empty());
    let generated = section(&unit_of(&env, "every").replace(".service", ".env"));
    assert_eq!(
        dmgr::config::env_file::parse(&generated).unwrap(),
        [
            ("DOLLAR", "$PATH"),
            ("GREETING", "hello world"),
            ("PORT", "8080"),
            ("RATIO", "50%")
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    for (key, want) in [
        ("User", "daemon"),
        ("Group", "daemon"),
        ("UMask", "0027"),
        ("Type", "exec"),
        ("Restart", "always"),
        ("RestartSec", "2s"),
        ("StartLimitBurst", "4"),
        ("KillSignal", "SIGINT"),
        ("KillMode", "control-group"),
        ("TimeoutStopSec", "40s"),
        ("StandardOutput", "append:/var/log/dmgr-test/every.log"),
        ("StandardError", "append:/var/log/dmgr-test/every.err"),
        ("Requires", "dmgr-logdir@var-log-dmgr\\x2dtest.service"),
        ("Wants", &unit_of(&env, "forker")),
        ("PartOf", &unit_of(&env, "")),
        ("WantedBy", &unit_of(&env, "")),
        ("LimitNOFILE", "65536"),
        ("LimitCORE", "infinity"),
        ("LimitMEMLOCK", "67108864"),
        ("LimitCPU", "3600"),
        ("Nice", "5"),
        ("OOMScoreAdjust", "-100"),
    ] {
        assert_eq!(values(unit, key), [want], "{key}= in\n{unit}");
    }
    assert!(values(unit, "LogsDirectory").is_empty());
    assert_eq!(
        values(unit, "After"),
        [
            unit_of(&env, "forker"),
            "dmgr-logdir@var-log-dmgr\\x2dtest.service".to_string()
        ]
    );
    let every_env = env.config_dir().join("every.env");
    let generated =
        Path::new("/etc/systemd/system").join(unit_of(&env, "every").replace(".service", ".env"));
    assert_eq!(
        values(unit, "EnvironmentFile"),
        [
            "-/etc/dmgr-test/every.env",
            every_env.to_str().unwrap(),
            generated.to_str().unwrap()
        ]
    );
    let reload = exec_words(values(unit, "ExecReload")[0]);
    assert!(reload[0].ends_with("/kill") && reload[0].starts_with('/'));
    assert_eq!(reload[1..], ["-s", "USR1", "$MAINPID"]);
    for lost in [
        "# - ready = { tcp = \"127.0.0.1:18080\" }",
        "# - start_wait = 100ms",
        "# - log_max_size = \"2MiB\", log_keep = 2",
        "# - log_timestamps = true",
        "# - clear_env = false",
        "# - restart_delay",
        "# - stop_timeout = 40s: a stop that needs SIGKILL",
    ] {
        assert!(unit.contains(lost), "{lost} not in\n{unit}");
    }
    let forker_text = section(&unit_of(&env, "forker"));
    let forker = forker_text.as_str();
    assert_eq!(values(forker, "Type")[0], "forking");
    let pidfile = env.root().join("forker.pid");
    assert_eq!(values(forker, "PIDFile")[0], pidfile.to_str().unwrap());
    assert_eq!(values(forker, "Restart")[0], "no");
    assert!(values(forker, "WantedBy").is_empty());
    let target = section(&unit_of(&env, ""));
    assert_eq!(values(&target, "Wants"), [unit_of(&env, "every")]);
}

/// The repository's own daemons.d, exported to systemd and Nomad (HCL and JSON) and
/// read back, says what the files say.
#[test]
fn the_repository_daemons_round_trip_through_systemd_and_nomad() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config_dir = repo.join("daemons.d");
    let run = tempfile::tempdir().unwrap();
    let dirs = dmgr::config::Dirs {
        config_dir: config_dir.clone(),
        run_dir: run.path().to_path_buf(),
        log_dir: run.path().join("log"),
    };
    let loaded = dmgr::config::load(&dirs).unwrap();
    assert!(loaded.invalid.is_empty());
    assert_eq!(loaded.daemons.len(), 4);
    let export = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_dmgr"))
            .arg("--config-dir")
            .arg(&config_dir)
            .arg("--run-dir")
            .arg(run.path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };

    let units = export(&["export", "systemd", "--all"]);
    let prefix = dmgr::boot::unit_prefix(&config_dir, false);
    for d in &loaded.daemons {
        let unit = units
            .split(&format!("==> {prefix}-{}.service <==\n", d.name))
            .nth(1)
            .and_then(|rest| rest.split("==> ").next())
            .unwrap();
        let mut exec = exec_words(values(unit, "ExecStart")[0]);
        if d.kind == dmgr::config::DaemonType::Forking {
            // Under sh, which waits until systemd adopted the daemon: sh -c SCRIPT PIDFILE.
            assert_eq!(exec[..2], ["/bin/sh", "-c"], "{}", d.name);
            exec.drain(..4);
        }
        assert!(exec[0].starts_with('/'), "{}", d.name);
        assert_eq!(
            Path::new(&exec[0]).file_name(),
            Path::new(&d.process.command[0]).file_name()
        );
        assert_eq!(exec[1..], d.process.command[1..], "{}", d.name);
        assert_eq!(
            values(unit, "WorkingDirectory"),
            [d.process.working_dir.to_str().unwrap()]
        );
        assert_eq!(
            values(unit, "Description"),
            [d.description.as_deref().unwrap()]
        );
        let stop = format!("{}s", d.supervision.stop_timeout.as_secs());
        assert_eq!(values(unit, "TimeoutStopSec"), [stop.as_str()]);
        let mut after: Vec<String> = d
            .after
            .iter()
            .map(|a| format!("{prefix}-{a}.service"))
            .collect();
        let log_dir = d.process.log.parent().unwrap();
        after.push(format!(
            "dmgr-logdir@{}.service",
            dmgr::boot::escape_path(log_dir)
        ));
        assert_eq!(values(unit, "After"), after);
        let log = format!("append:{}", d.process.log.display());
        assert_eq!(values(unit, "StandardOutput"), [log.as_str()]);
        assert_eq!(values(unit, "WantedBy").len(), usize::from(d.autostart));
    }

    let hcl_text = export(&["export", "nomad", "--all", "--job", "repo"]);
    let body = hcl::parse(&hcl_text).unwrap_or_else(|e| panic!("{e}\n{hcl_text}"));
    let job = body
        .blocks()
        .find(|b| b.identifier() == "job")
        .expect("a job block");
    assert_eq!(job.labels()[0].as_str(), "repo");
    let tasks: Vec<&hcl::Block> = job
        .body()
        .blocks()
        .filter(|b| b.identifier() == "group")
        .flat_map(|g| g.body().blocks().filter(|b| b.identifier() == "task"))
        .collect();
    let json_text = export(&["export", "nomad", "--all", "--job", "repo", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    let json_tasks: Vec<&serde_json::Value> = json["Job"]["TaskGroups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["Tasks"].as_array().unwrap().iter())
        .collect();
    assert_eq!(tasks.len(), 4);
    assert_eq!(json_tasks.len(), 4);
    for d in &loaded.daemons {
        let task = tasks
            .iter()
            .find(|t| t.labels()[0].as_str() == d.name)
            .unwrap()
            .body();
        let attr = |body: &hcl::Body, key: &str| {
            body.attributes()
                .find(|a| a.key() == key)
                .map(|a| hcl::Value::from(a.expr().clone()))
                .unwrap_or_else(|| panic!("no {key}"))
        };
        let block = |body: &hcl::Body, ident: &str| {
            body.blocks()
                .find(|b| b.identifier() == ident)
                .map(|b| b.body().clone())
                .unwrap_or_else(|| panic!("no {ident} block"))
        };
        let config = block(task, "config");
        let command = attr(&config, "command");
        assert_eq!(
            Path::new(command.as_str().unwrap()).file_name(),
            Path::new(&d.process.command[0]).file_name()
        );
        let args: Vec<hcl::Value> = d.process.command[1..]
            .iter()
            .map(|a| hcl::Value::from(a.as_str()))
            .collect();
        assert_eq!(attr(&config, "args"), hcl::Value::from(args));
        assert_eq!(
            attr(&config, "work_dir"),
            hcl::Value::from(d.process.working_dir.to_str().unwrap())
        );
        assert_eq!(attr(task, "kill_signal"), hcl::Value::from("SIGTERM"));
        let kill = format!("{}s", d.supervision.stop_timeout.as_secs());
        assert_eq!(attr(task, "kill_timeout"), hcl::Value::from(kill.as_str()));
        let logs = block(task, "logs");
        assert_eq!(attr(&logs, "max_files"), hcl::Value::from(d.logs.log_keep));
        assert_eq!(
            attr(&block(task, "restart"), "attempts"),
            hcl::Value::from(d.supervision.max_restarts)
        );
        assert!(task.blocks().any(|b| b.identifier() == "resources"));
        let j = json_tasks
            .iter()
            .find(|t| t["Name"] == d.name.as_str())
            .unwrap();
        assert_eq!(j["Driver"], "raw_exec");
        assert_eq!(j["Config"]["command"], command.as_str().unwrap());
        assert_eq!(
            j["Config"]["args"],
            serde_json::json!(d.process.command[1..])
        );
        assert_eq!(j["KillSignal"], "SIGTERM");
        assert_eq!(
            j["KillTimeout"],
            d.supervision.stop_timeout.as_nanos() as u64
        );
        assert_eq!(j["LogConfig"]["MaxFiles"], d.logs.log_keep);
        assert_eq!(j["RestartPolicy"]["Attempts"], d.supervision.max_restarts);
        assert_eq!(j["Resources"]["MemoryMB"], 300);
    }
    // worker waits for web: they share a group, web as a prestart sidecar, and web's
    // ready address is the group's service check.
    let web = json_tasks.iter().find(|t| t["Name"] == "web").unwrap();
    assert_eq!(web["Lifecycle"]["Hook"], "prestart");
    assert_eq!(web["Services"][0]["Checks"][0]["Type"], "tcp");
    let worker = json_tasks.iter().find(|t| t["Name"] == "worker").unwrap();
    assert!(worker.get("Lifecycle").is_none());
    let groups: Vec<&str> = json["Job"]["TaskGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["Name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["classic", "ticker", "web"]);
}

/// `export` of a directory with a broken file, or of an unknown name, is a
/// configuration error (exit 2) and writes nothing.
#[test]
fn export_refuses_broken_files_and_unknown_names() {
    let env = TestEnv::new()
        .daemon("good", "command = \"sleep 1\"\n")
        .daemon("broken", "command = \n");
    let dir = env.root().join("units");
    env.dmgr(&["export", "systemd", "--all", "-o", dir.to_str().unwrap()])
        .code(2)
        .stderr_has("broken.toml:1:");
    assert!(!dir.exists());
    env.dmgr(&["export", "nomad", "--all"])
        .code(2)
        .stderr_has("broken.toml");
    env.dmgr(&["export", "nomad", "nope"])
        .code(2)
        .stderr_has("nope: no such daemon");
    env.dmgr(&["export", "systemd", "good"]).success();
    env.dmgr(&["export", "nomad"]).code(2);
}

/// `boot install --dry-run` as root shows the system unit under /etc/systemd/system,
/// the systemctl calls, and writes nothing.
#[test]
fn boot_install_dry_run_shows_the_system_unit() {
    let env = TestEnv::new()
        .daemon("web", "command = \"sleep 1\"\nstop_timeout = \"40s\"\n")
        .daemon("db", "command = \"sleep 1\"\nstop_timeout = \"3s\"\n");
    env.write("worker", "command = \"sleep 1\"\nafter = [\"web\"]\n");
    let home = env.root().join("home");
    let run = env
        .dmgr_env(
            &["boot", "install", "--dry-run"],
            &[("HOME", home.as_os_str())],
        )
        .success();
    let out = run.stdout();
    let name = dmgr::boot::unit_name(&env.config_dir(), false);
    assert!(
        name.starts_with("dmgr.") && name.ends_with("-daemons.d.service"),
        "{name}"
    );
    let path = Path::new("/etc/systemd/system").join(&name);
    assert!(
        out.starts_with(&format!("would write {}:\n", path.display())),
        "{out}"
    );
    let binary = env!("CARGO_BIN_EXE_dmgr");
    let dirs = format!(
        "--config-dir {} --run-dir {}",
        env.config_dir().display(),
        env.run_dir().display()
    );
    for line in [
        "Type=notify".to_string(),
        "NotifyAccess=main".to_string(),
        "RemainAfterExit=yes".to_string(),
        "After=network-online.target".to_string(),
        "Wants=network-online.target".to_string(),
        format!("ExecStart={binary} {dirs} start --all"),
        format!("ExecStop={binary} {dirs} stop --all"),
        // worker (10 s) stops before web and db (40 s): 10 + 40 + 2 * 5 + 30.
        "TimeoutStopSec=90s".to_string(),
        "WantedBy=multi-user.target".to_string(),
        "  systemctl daemon-reload".to_string(),
        format!("  systemctl enable {name}"),
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "no line {line:?} in:\n{out}"
        );
    }
    assert!(!path.exists(), "a dry run wrote {}", path.display());
    assert!(!home.exists());
}

/// `boot install --user --dry-run` shows a user unit in ~/.config/systemd/user, named
/// dmgr.service for the user's default directory, with `systemctl --user`.
#[test]
fn boot_install_dry_run_shows_the_user_unit() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let config_dir = home.join(".config/dmgr/daemons.d");
    fs::create_dir_all(&config_dir).unwrap();
    fs::write(config_dir.join("web.toml"), "command = \"sleep 1\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dmgr"))
        .args(["boot", "install", "--user", "--dry-run"])
        .arg("--config-dir")
        .arg(&config_dir)
        .arg("--run-dir")
        .arg(tmp.path().join("run"))
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("DMGR_SYSTEMD_UNIT_DIR")
        .env_remove("DMGR_SYSTEMCTL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = String::from_utf8(out.stdout).unwrap();
    let unit = home.join(".config/systemd/user/dmgr.service");
    assert!(
        out.starts_with(&format!("would write {}:\n", unit.display())),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "WantedBy=default.target"));
    assert!(!out
        .lines()
        .any(|l| l.starts_with("After=") || l.starts_with("Wants=")));
    assert!(out.lines().any(|l| l == "  systemctl --user daemon-reload"));
    assert!(out
        .lines()
        .any(|l| l == "  systemctl --user enable dmgr.service"));
    assert!(!home.join(".config/systemd").exists());
}

/// A `systemctl` for the tests: it logs each call, and hands `enable` and `disable`
/// to the real systemctl, offline, inside `root` when systemctl is installed.
fn fake_systemctl(env: &TestEnv, root: &Path) -> (PathBuf, PathBuf) {
    let log = env.root().join("systemctl.log");
    let script = env.root().join("systemctl");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\ncase \"$1\" in daemon-reload) exit 0 ;; esac\n\
             if command -v systemctl >/dev/null 2>&1; then exec systemctl --root='{}' \"$@\"; fi\n",
            log.display(),
            root.display()
        ),
    )
    .unwrap();
    let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    fs::set_permissions(&script, executable).unwrap();
    (script, log)
}

/// `boot install` into a temporary unit directory leaves exactly one unit file there
/// (also when run twice) and enables it; `boot uninstall` disables and removes it.
#[test]
fn boot_install_and_uninstall_leave_one_unit_file_then_none() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1\"\n");
    let root = env.root().join("sysroot");
    let unit_dir = root.join("etc/systemd/system");
    let (systemctl, log) = fake_systemctl(&env, &root);
    let name = dmgr::boot::unit_name(&env.config_dir(), false);
    let vars = [
        ("DMGR_SYSTEMCTL", systemctl.as_os_str()),
        ("DMGR_SYSTEMD_UNIT_DIR", unit_dir.as_os_str()),
    ];
    let real = Command::new("systemctl").arg("--version").output().is_ok();
    for _ in 0..2 {
        env.dmgr_env(&["boot", "install"], &vars)
            .success()
            .stdout_has(&format!("{name}: installed"))
            .stderr_has("cargo build directory");
        assert_eq!(regular_files(&unit_dir), [name.as_str()]);
    }
    let text = fs::read_to_string(unit_dir.join(&name)).unwrap();
    assert!(text.starts_with(dmgr::boot::MARKER));
    let calls = fs::read_to_string(&log).unwrap();
    assert!(calls.lines().any(|l| l == "daemon-reload"), "{calls}");
    assert!(
        calls.lines().any(|l| l == format!("enable {name}")),
        "{calls}"
    );
    let link = unit_dir.join("multi-user.target.wants").join(&name);
    let status = env.dmgr_env(&["boot", "status"], &vars).success();
    status.stdout_has(&format!("config dir: {}", env.config_dir().display()));
    if real {
        assert!(
            fs::symlink_metadata(&link).is_ok(),
            "systemctl enable made no link"
        );
        env.dmgr_env(&["boot", "status"], &vars)
            .success()
            .stdout_has(&format!(
                "{name}: installed (system unit {}), enabled",
                unit_dir.join(&name).display()
            ));
    }

    env.dmgr_env(&["boot", "uninstall", "--dry-run"], &vars)
        .success()
        .stdout_has(&format!("would remove {}", unit_dir.join(&name).display()));
    assert_eq!(regular_files(&unit_dir), [name.as_str()]);
    env.dmgr_env(&["boot", "uninstall"], &vars)
        .success()
        .stdout_has("removed");
    assert!(regular_files(&unit_dir).is_empty());
    assert!(fs::symlink_metadata(&link).is_err());
    let calls = fs::read_to_string(&log).unwrap();
    assert!(
        calls.lines().any(|l| l == format!("disable {name}")),
        "{calls}"
    );
    env.dmgr_env(&["boot", "status"], &vars).code(3);
    env.dmgr_env(&["boot", "uninstall"], &vars)
        .success()
        .stdout_has("not installed");
}

/// Two config directories get two units in one unit directory, and `status` of one
/// names the other.
#[test]
fn two_config_directories_get_two_units() {
    let a = TestEnv::new().daemon("web", "command = \"sleep 1\"\n");
    let b = TestEnv::new().daemon("web", "command = \"sleep 1\"\n");
    let unit_dir = a.root().join("units");
    let vars = [
        ("DMGR_SYSTEMCTL", OsStr::new("true")),
        ("DMGR_SYSTEMD_UNIT_DIR", unit_dir.as_os_str()),
    ];
    a.dmgr_env(&["boot", "install"], &vars).success();
    b.dmgr_env(&["boot", "install"], &vars).success();
    let name_a = dmgr::boot::unit_name(&a.config_dir(), false);
    let name_b = dmgr::boot::unit_name(&b.config_dir(), false);
    assert_ne!(name_a, name_b);
    let mut both = vec![name_a.clone(), name_b.clone()];
    both.sort();
    assert_eq!(regular_files(&unit_dir), both);
    a.dmgr_env(&["boot", "status"], &vars)
        .success()
        .stdout_has(&format!("{name_b} for {}", b.config_dir().display()));
}

/// A unit file that dmgr did not write is neither overwritten nor removed.
#[test]
fn boot_leaves_a_foreign_unit_alone() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1\"\n");
    let unit_dir = env.root().join("units");
    fs::create_dir_all(&unit_dir).unwrap();
    let name = dmgr::boot::unit_name(&env.config_dir(), false);
    fs::write(unit_dir.join(&name), "[Unit]\nDescription=mine\n").unwrap();
    let vars = [
        ("DMGR_SYSTEMCTL", OsStr::new("true")),
        ("DMGR_SYSTEMD_UNIT_DIR", unit_dir.as_os_str()),
    ];
    env.dmgr_env(&["boot", "install"], &vars)
        .code(1)
        .stderr_has("was not written by `dmgr boot install`");
    env.dmgr_env(&["boot", "uninstall"], &vars)
        .code(1)
        .stderr_has("was not written by");
    assert_eq!(
        fs::read_to_string(unit_dir.join(&name)).unwrap(),
        "[Unit]\nDescription=mine\n"
    );
}

/// Where systemd is not the init system, `boot install` installs nothing, prints the
/// crontab line and the OpenRC and sysvinit scripts, and fails.
#[test]
fn boot_install_without_systemd_prints_what_to_install_by_hand() {
    if Path::new("/run/systemd/system").is_dir() {
        eprintln!("note: systemd is the init system here; the hand-install path is not reachable");
        return;
    }
    let env = TestEnv::new().daemon("web", "command = \"sleep 1\"\n");
    let unit_dir = env.root().join("units");
    let run = env
        .dmgr_env(&["boot", "install"], &[])
        .code(1)
        .stderr_has("systemd is not the init system here");
    let out = run.stdout();
    let command = format!(
        "{} --config-dir {} --run-dir {} start --all",
        env!("CARGO_BIN_EXE_dmgr"),
        env.config_dir().display(),
        env.run_dir().display()
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("@reboot ") && l.ends_with(&command)),
        "{out}"
    );
    assert!(out.contains("#!/sbin/openrc-run\n") && out.contains("### BEGIN INIT INFO\n"));
    assert!(regular_files(&unit_dir).is_empty());
}

/// Issue 24, finding 8: `export systemd -o DIR` never overwrites a file it did not
/// write, nor one it wrote from another config directory (then it writes nothing);
/// its own files it writes again, and the target keeps every autostart daemon when
/// only one is exported.
#[test]
fn export_never_overwrites_a_file_it_did_not_write() {
    let env = TestEnv::new()
        .daemon("web", "command = \"/bin/sleep 100\"\n")
        .daemon("db", "command = \"/bin/sleep 100\"\n");
    let dir = env.root().join("units");
    let out = dir.to_str().unwrap();
    env.dmgr(&["export", "systemd", "--all", "-o", out])
        .success();
    env.dmgr(&["export", "systemd", "web", "-o", out])
        .success()
        .stdout_has(&unit_of(&env, "web"));
    let target = fs::read_to_string(dir.join(unit_of(&env, ""))).unwrap();
    assert_eq!(
        values(&target, "Wants"),
        [format!("{} {}", unit_of(&env, "db"), unit_of(&env, "web"))]
    );

    let mine = dir.join(unit_of(&env, "web"));
    fs::write(&mine, "[Service]\nExecStart=/bin/true\n").unwrap();
    fs::remove_file(dir.join(unit_of(&env, "db"))).unwrap();
    env.dmgr(&["export", "systemd", "--all", "-o", out])
        .code(1)
        .stderr_has("was not written by `dmgr export systemd`; nothing was written");
    assert_eq!(
        fs::read_to_string(&mine).unwrap(),
        "[Service]\nExecStart=/bin/true\n"
    );
    assert!(!dir.join(unit_of(&env, "db")).exists());

    // A file written from another directory under the same name is refused too.
    let other = TestEnv::new().daemon("web", "command = \"/bin/sleep 100\"\n");
    fs::remove_file(&mine).unwrap();
    other
        .dmgr(&["export", "systemd", "web", "-o", out])
        .success();
    let theirs = dir.join(unit_of(&other, "web"));
    let text = fs::read_to_string(&theirs).unwrap();
    fs::write(&mine, &text).unwrap();
    env.dmgr(&["export", "systemd", "web", "-o", out])
        .code(1)
        .stderr_has("another config directory");
}

/// Issue 24: what systemd sets for `dmgr start`'s own unit (its invocation, journal
/// stream, notify socket, socket activation, watchdog) never reaches a daemon, unless
/// its file sets it; the rest of the environment does.
#[test]
fn a_daemon_inherits_no_variable_of_the_manager_above_dmgr() {
    let env = TestEnv::new()
        .daemon("plain", "command = \"sleep 100\"\nstart_wait = \"50ms\"\n")
        .daemon(
            "set",
            "command = \"sleep 100\"\nstart_wait = \"50ms\"\nenv = { LISTEN_FDS = \"3\" }\n",
        );
    let vars: Vec<(&str, &OsStr)> = [
        "INVOCATION_ID",
        "JOURNAL_STREAM",
        "SYSTEMD_EXEC_PID",
        "MANAGERPID",
        "NOTIFY_SOCKET",
        "LISTEN_PID",
        "LISTEN_FDS",
        "LISTEN_FDNAMES",
        "WATCHDOG_PID",
        "WATCHDOG_USEC",
    ]
    .iter()
    .map(|k| (*k, OsStr::new("from-systemd")))
    .chain([("KEPT_FROM_CALLER", OsStr::new("yes"))])
    .collect();
    env.dmgr_env(&["start", "plain", "set"], &vars).success();
    let environ = |name: &str| {
        let pid = env.pid(name).unwrap();
        let bytes = fs::read(format!("/proc/{pid}/environ")).unwrap();
        String::from_utf8_lossy(&bytes)
            .split('\0')
            .map(str::to_string)
            .collect::<Vec<String>>()
    };
    let plain = environ("plain");
    assert!(plain.contains(&"KEPT_FROM_CALLER=yes".to_string()));
    assert!(
        !plain.iter().any(|v| v.ends_with("=from-systemd")),
        "{plain:?}"
    );
    let set = environ("set");
    assert!(set.contains(&"LISTEN_FDS=3".to_string()), "{set:?}");
    assert!(!set.iter().any(|v| v.ends_with("=from-systemd")), "{set:?}");
}

/// Issue 24, finding 9: `start` says which daemon it still waits for, so that at
/// boot the journal names the one that holds the start up.
#[test]
fn start_says_which_daemon_it_still_waits_for() {
    let env = TestEnv::new()
        .daemon("quick", "command = \"sleep 100\"\nstart_wait = \"50ms\"\n")
        .daemon("slow", "command = \"sleep 100\"\nstart_wait = \"5500ms\"\n");
    let run = env
        .dmgr(&["start", "--all"])
        .success()
        .stderr_has("dmgr: still waiting after 5s for slow (at most ");
    assert!(!run.stderr().contains("quick ("), "{}", run.stderr());
    env.dmgr(&["stop", "--all"]).success();
}

/// Issue 24, finding 9: `stop --all` prints each daemon's result as its stop ends,
/// not once the slowest of its level is done, so that a stop cut short by systemd
/// still leaves a line for each daemon that did stop.
#[test]
fn stop_all_says_each_result_as_it_comes() {
    let env = TestEnv::new()
        .daemon("quick", "command = \"sleep 100\"\nstart_wait = \"50ms\"\n")
        .daemon(
            "stubborn",
            "command = [\"/bin/sh\", \"-c\", \"trap '' TERM; sleep 100\"]\nstart_wait = \"50ms\"\nstop_timeout = \"4s\"\n",
        );
    env.dmgr(&["start", "--all"]).success();
    let began = std::time::Instant::now();
    let (_stop, lines) = env.follow(&["stop", "--all"]);
    let first = lines
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    assert_eq!(first, "quick: stopped");
    assert!(
        began.elapsed() < std::time::Duration::from_secs(3),
        "quick's line came after {:?}",
        began.elapsed()
    );
    let second = lines
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    assert_eq!(second, "stubborn: stopped");
    assert!(began.elapsed() >= std::time::Duration::from_secs(4));
}

/// Issue 24, finding 9: after a daemon with a long `ready_timeout` is added, `boot
/// status`, `check` and `apply` say that the installed unit's TimeoutStartSec= no
/// longer fits, naming the slow daemon.
#[test]
fn a_stale_start_timeout_of_the_boot_unit_is_noticed() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 1\"\n");
    let unit_dir = env.root().join("units");
    let vars = [
        ("DMGR_SYSTEMCTL", OsStr::new("true")),
        ("DMGR_SYSTEMD_UNIT_DIR", unit_dir.as_os_str()),
    ];
    env.dmgr_env(&["boot", "install"], &vars).success();
    env.dmgr_env(&["boot", "status"], &vars)
        .success()
        .stdout_lacks("warning");
    env.dmgr_env(&["check"], &vars)
        .success()
        .stderr_lacks("TimeoutStartSec");
    env.write(
        "slow",
        "command = \"sleep 1\"\nready = { tcp = \"127.0.0.1:1\" }\nready_timeout = \"150s\"\n",
    );
    env.dmgr_env(&["boot", "status"], &vars)
        .success()
        .stdout_has("warning: its TimeoutStartSec= (")
        .stdout_has("slow 2m 30s 500ms");
    env.dmgr_env(&["check"], &vars)
        .success()
        .stderr_has("its TimeoutStartSec= (")
        .stdout_has("(1 warning)");
    env.dmgr_env(&["apply", "--dry-run"], &vars)
        .success()
        .stderr_has("run `dmgr boot install` again");
}

/// Issue 24, finding 9: `boot install --user` where no user manager runs says how to
/// get one (linger) and leaves no unit written but not enabled.
#[test]
fn boot_install_user_without_a_user_manager_hints_at_linger_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let config_dir = home.join(".config/dmgr/daemons.d");
    fs::create_dir_all(&config_dir).unwrap();
    fs::write(config_dir.join("web.toml"), "command = \"sleep 1\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dmgr"))
        .args(["boot", "install", "--user"])
        .arg("--config-dir")
        .arg(&config_dir)
        .arg("--run-dir")
        .arg(tmp.path().join("run"))
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", tmp.path().join("no-runtime"))
        .env("DMGR_SYSTEMCTL", "true")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("DMGR_SYSTEMD_UNIT_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no systemd user manager runs for"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: `loginctl enable-linger "),
        "{stderr}"
    );
    assert!(!home.join(".config/systemd").exists());
}

/// Issue 24, finding 6: a daemon that systemd runs under its exported unit is not
/// started a second time by `dmgr start`, and `list` shows it running under systemd
/// (a stand-in `systemctl show` answers for the unit found in the unit directory).
#[test]
fn a_daemon_systemd_runs_is_neither_started_twice_nor_listed_as_stopped() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 100\"\n");
    let unit_dir = env.root().join("units");
    env.dmgr(&["export", "systemd", "web", "-o", unit_dir.to_str().unwrap()])
        .success();
    let mut copy = Command::new("sleep").arg("100").spawn().unwrap();
    env.track(copy.id() as i32);
    let unit = unit_of(&env, "web");
    let script = env.root().join("systemctl");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in show) printf '%s\\n' 'Id={unit}' ActiveState=active MainPID={} ExecMainStartTimestampMonotonic=0 ;; esac\n",
            copy.id()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let vars = [
        ("DMGR_SYSTEMCTL", script.as_os_str()),
        ("DMGR_SYSTEMD_UNIT_DIR", unit_dir.as_os_str()),
    ];
    env.dmgr_env(&["start", "web"], &vars)
        .code(1)
        .stderr_has(&format!(
            "web: runs under systemd as {unit} (active, pid {}); not started a second time",
            copy.id()
        ))
        .stderr_has(&format!("hint: `systemctl stop {unit}`"));
    assert_eq!(env.pid("web"), None);
    env.dmgr_env(&["list"], &vars)
        .success()
        .stdout_has("running (systemd)");
    let json = env.dmgr_env(&["list", "--json"], &vars).success().stdout();
    let entries: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(entries[0]["status"], "running");
    assert_eq!(entries[0]["pid"], copy.id());
    assert_eq!(entries[0]["systemd_unit"], unit.as_str());
    assert_eq!(entries[0]["supervised"], false);
    // Without the unit file, nobody is asked: dmgr starts it.
    fs::remove_file(unit_dir.join(&unit)).unwrap();
    env.dmgr_env(&["list"], &vars)
        .success()
        .stdout_lacks("systemd");
    let _ = copy.kill();
    let _ = copy.wait();
}

/// Issue 23: `boot install --unit-dir DIR` where systemd does not run (an image being
/// built, as the man page offers it for) writes the unit and enables it as `systemctl
/// enable` would, by a relative link in the target's `.wants` directory; and the
/// printed sysvinit script's `status` exits 3 while nothing runs, 0 while a daemon does
/// (LSB).
#[test]
fn boot_install_with_a_unit_dir_enables_the_unit_offline_and_sysvinit_status_follows_lsb() {
    if Path::new("/run/systemd/system").is_dir() {
        eprintln!("note: systemd is the init system here; the offline path is not reachable");
        return;
    }
    let env = TestEnv::new().daemon(
        "web",
        "command = [\"sleep\", \"1000\"]\nstart_wait = \"100ms\"\n",
    );
    let unit_dir = env.root().join("image/etc/systemd/system");
    let out = env
        .dmgr_env(
            &["boot", "install", "--unit-dir", unit_dir.to_str().unwrap()],
            &[],
        )
        .success()
        .stdout();
    let units = regular_files(&unit_dir);
    assert_eq!(units.len(), 1, "{out}");
    let name = units[0].clone();
    let link = unit_dir.join("multi-user.target.wants").join(&name);
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new(&format!("../{name}")),
        "{out}"
    );
    assert!(fs::read_to_string(&link).unwrap().contains("start --all"));
    env.dmgr_env(
        &["boot", "status", "--unit-dir", unit_dir.to_str().unwrap()],
        &[],
    )
    .success()
    .stdout_has("enabled");

    let out = env
        .dmgr_env(&["boot", "install", "--dry-run"], &[])
        .stdout();
    let script: String = out
        .lines()
        .skip_while(|l| !l.starts_with("# sysvinit"))
        .take_while(|l| *l != "esac")
        .chain(["esac"])
        .map(|l| format!("{l}\n"))
        .collect();
    let path = env.root().join("dmgr-init");
    fs::write(&path, script).unwrap();
    let status = || {
        std::process::Command::new("sh")
            .arg(&path)
            .arg("status")
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(status(), Some(3), "status of nothing running");
    env.dmgr(&["start", "web"]).success();
    assert_eq!(status(), Some(0), "status while web runs");
    env.dmgr(&["stop", "web"]).success();
}

/// Issue 24, finding 7: a user's export into their own unit directory is for their
/// manager, `--user` or not: the target is wanted by `default.target`, which a user
/// manager has, not `multi-user.target`, which it has not.
#[test]
fn a_user_export_into_the_user_unit_directory_starts_with_the_user_manager() {
    use std::os::unix::fs::PermissionsExt;
    if !nix::unistd::geteuid().is_root() {
        crate::support::skip(
            "a_user_export_into_the_user_unit_directory_starts_with_the_user_manager",
            "needs root to run dmgr as another user",
        );
        return;
    }
    let env = TestEnv::new().daemon("web", "command = \"/bin/sleep 100\"\n");
    let home = env.root().join("home");
    let unit_dir = home.join(".config/systemd/user");
    fs::create_dir_all(&unit_dir).unwrap();
    for dir in [env.root().to_path_buf(), env.config_dir(), home.clone()] {
        let mode = fs::metadata(&dir).unwrap().permissions().mode();
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode | 0o755)).unwrap();
    }
    std::os::unix::fs::chown(&unit_dir, Some(65534), Some(65534)).unwrap();
    let file = env.config_dir().join("web.toml");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let export = |args: &[&str]| {
        let mut command = env.command_as(65534, 65534, args);
        command
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("DMGR_SYSTEMD_UNIT_DIR");
        command.output().unwrap()
    };
    let out = export(&[
        "export",
        "systemd",
        "--all",
        "-o",
        unit_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let target = fs::read_to_string(unit_dir.join(unit_of(&env, ""))).unwrap();
    assert_eq!(values(&target, "WantedBy"), ["default.target"]);
    // Elsewhere, without --user, the units are the system's.
    let elsewhere = env.root().join("units");
    fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::chown(&elsewhere, Some(65534), Some(65534)).unwrap();
    let out = export(&[
        "export",
        "systemd",
        "--all",
        "-o",
        elsewhere.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let target = fs::read_to_string(elsewhere.join(unit_of(&env, ""))).unwrap();
    assert_eq!(values(&target, "WantedBy"), ["multi-user.target"]);
}

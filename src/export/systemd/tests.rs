use super::super::tests_support::Files;
use super::*;
use crate::config::Daemon;

/// The value of every `KEY=` line of `unit`, in order.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// The text of `daemon`'s unit.
fn service_text(daemon: &Daemon, source: &Source) -> String {
    service(daemon, source).0.text
}

fn one<'a>(unit: &'a str, key: &str) -> &'a str {
    let found = values(unit, key);
    assert_eq!(found.len(), 1, "{key}= in:\n{unit}");
    found[0]
}

#[test]
fn every_key_has_a_mapping() {
    super::super::check_coverage(MAPPINGS, "src/export/systemd/mappings.rs").unwrap();
}

#[test]
fn exec_words_are_escaped_and_quoted() {
    let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    assert_eq!(exec_line(&argv(&["/bin/echo", "plain"])), "/bin/echo plain");
    assert_eq!(exec_line(&argv(&["/bin/x", "100%"])), "/bin/x 100%%");
    assert_eq!(exec_line(&argv(&["/bin/x", "$HOME"])), "/bin/x $$HOME");
    assert_eq!(exec_line(&argv(&["/bin/x", "a b"])), "/bin/x \"a b\"");
    assert_eq!(
        exec_line(&argv(&["/bin/x", "say \"hi\""])),
        "/bin/x \"say \\\"hi\\\"\""
    );
    assert_eq!(exec_line(&argv(&["/bin/x", "it's"])), "/bin/x \"it's\"");
    assert_eq!(exec_line(&argv(&["/bin/x", "a\\b"])), "/bin/x \"a\\\\b\"");
    assert_eq!(exec_line(&argv(&["/bin/x", ""])), "/bin/x \"\"");
    assert_eq!(exec_line(&argv(&["/bin/x", ";"])), "/bin/x \";\"");
    assert_eq!(
        exec_line(&argv(&["/bin/x", "l1\nl2\t\x01"])),
        "/bin/x \"l1\\nl2\\t\\x01\""
    );
    assert_eq!(exec_line(&argv(&["/opt/my app/x"])), "\"/opt/my app/x\"");
}

#[test]
fn environment_lines_quote_the_whole_assignment() {
    assert_eq!(environment_assignment("PORT", "8080"), "\"PORT=8080\"");
    assert_eq!(environment_assignment("A", "x y"), "\"A=x y\"");
    assert_eq!(environment_assignment("A", "50%"), "\"A=50%%\"");
    assert_eq!(environment_assignment("A", "$B"), "\"A=$B\"");
    assert_eq!(environment_assignment("A", "q\"\\"), "\"A=q\\\"\\\\\"");
}

#[test]
fn a_simple_daemon_maps_field_by_field() {
    let files = Files::new();
    let d = files.daemon(
        "web",
        r#"
command = ["/bin/sh", "-c", "echo $HOME 100% \"done\"", "two words"]
description = "the web server, 100%"
working_dir = "/srv/web"
env = { PORT = "8080", GREETING = "hello world", RATIO = "50%" }
user = "www-data"
group = "adm"
umask = "0027"
log = "/var/log/web/out.log"
stderr_log = "/var/log/web/err.log"
log_max_size = "1MiB"
log_keep = 3
log_timestamps = true
restart = "always"
restart_delay = "2s"
max_restarts = 4
start_wait = "250ms"
ready = { tcp = "127.0.0.1:8080" }
ready_timeout = "7s"
stop_signal = "INT"
stop_timeout = "20s"
reload_signal = "USR2"
after = ["db", "cache"]
"#,
    );
    let unit = service_text(&d, &files.source());
    assert_eq!(one(&unit, "Description"), "the web server, 100%%");
    assert_eq!(
        one(&unit, "ExecStart"),
        "/bin/sh -c \"echo $$HOME 100%% \\\"done\\\"\" \"two words\""
    );
    assert_eq!(one(&unit, "Type"), "exec");
    assert_eq!(one(&unit, "WorkingDirectory"), "/srv/web");
    assert_eq!(
        values(&unit, "Environment"),
        [
            "\"GREETING=hello world\"",
            "\"PORT=8080\"",
            "\"RATIO=50%%\""
        ]
    );
    assert_eq!(one(&unit, "User"), "www-data");
    assert_eq!(one(&unit, "Group"), "adm");
    assert_eq!(one(&unit, "UMask"), "0027");
    assert_eq!(one(&unit, "StandardOutput"), "append:/var/log/web/out.log");
    assert_eq!(one(&unit, "StandardError"), "append:/var/log/web/err.log");
    assert!(values(&unit, "LogsDirectory").is_empty());
    assert_eq!(
        values(&unit, "Requires"),
        ["dmgr-logdir@var-log-web.service"]
    );
    assert!(unit.contains("# - log_max_size = \"1MiB\", log_keep = 3: systemd does not rotate"));
    assert!(unit.contains("# - log_timestamps = true:"));
    assert_eq!(one(&unit, "Restart"), "always");
    assert_eq!(one(&unit, "RestartSec"), "2s");
    assert_eq!(one(&unit, "StartLimitBurst"), "5");
    // Five runs of 60 s and delays of 2, 4, 8 and 16 s.
    assert_eq!(one(&unit, "StartLimitIntervalSec"), "330s");
    assert!(unit.contains("# - restart_delay: dmgr doubles the delay"));
    assert!(unit.contains("# - start_wait = 250ms:"));
    assert!(
        unit.contains("# - ready = { tcp = \"127.0.0.1:8080\" }: systemd has no readiness check")
    );
    assert!(unit.contains("ready_timeout = 7s"));
    assert!(values(&unit, "TimeoutStartSec").is_empty());
    assert_eq!(one(&unit, "KillSignal"), "SIGINT");
    assert_eq!(one(&unit, "KillMode"), "control-group");
    assert_eq!(one(&unit, "TimeoutStopSec"), "20s");
    assert!(one(&unit, "ExecReload").ends_with("kill -s USR2 $MAINPID"));
    assert!(one(&unit, "ExecReload").starts_with('/'));
    let names = Names::of(&files.source());
    assert_eq!(
        values(&unit, "After"),
        [
            names.service("db"),
            names.service("cache"),
            "dmgr-logdir@var-log-web.service".to_string()
        ]
    );
    assert_eq!(
        values(&unit, "Wants"),
        [names.service("db"), names.service("cache")]
    );
    assert_eq!(one(&unit, "PartOf"), names.target());
    assert_eq!(one(&unit, "Conflicts"), names.boot());
    assert_eq!(one(&unit, "Before"), names.boot());
    assert_eq!(one(&unit, "WantedBy"), names.target());
    assert!(unit.contains("# - clear_env = false:"));
    assert!(
        unit.contains("# - stop_timeout = 20s: a stop that needs SIGKILL leaves the unit failed")
    );
    // Each comment is one line, and no key that systemd expresses is a comment.
    for line in unit.lines().filter(|l| l.starts_with("# - ")) {
        for expressed in ["command", "user", "umask", "working_dir", "after"] {
            assert!(!line.starts_with(&format!("# - {expressed}")), "{line}");
        }
    }
}

#[test]
fn defaults_map_to_systemd_defaults_with_absolute_paths() {
    let files = Files::new();
    let d = files.daemon("plain", "command = \"sleep 100\"\nclear_env = true\nrestart = \"no\"\nautostart = false\nlog_max_size = 0\nstart_wait = \"0s\"\n");
    let unit = service_text(&d, &files.source());
    let exec = one(&unit, "ExecStart");
    assert!(
        exec.starts_with('/') && exec.ends_with("/sleep 100"),
        "{exec}"
    );
    assert_eq!(one(&unit, "Description"), "dmgr daemon plain");
    assert_eq!(one(&unit, "WorkingDirectory"), "/");
    assert_eq!(one(&unit, "UMask"), "0022");
    assert_eq!(one(&unit, "Restart"), "no");
    assert!(values(&unit, "RestartSec").is_empty() && values(&unit, "StartLimitBurst").is_empty());
    assert_eq!(one(&unit, "KillSignal"), "SIGTERM");
    assert_eq!(one(&unit, "TimeoutStopSec"), "10s");
    assert!(one(&unit, "ExecReload").ends_with(" -s HUP $MAINPID"));
    let log = files.dirs.log_dir.join("plain.log");
    assert_eq!(
        one(&unit, "StandardOutput"),
        format!("append:{}", log.display())
    );
    assert_eq!(
        one(&unit, "StandardError"),
        format!("append:{}", log.display())
    );
    assert!(values(&unit, "LogsDirectory").is_empty());
    assert!(values(&unit, "WantedBy").is_empty());
    assert!(!unit.contains("[Install]"));
    assert!(unit.contains(&format!(
        "# - autostart = false: {} does not want it",
        Names::of(&files.source()).target()
    )));
    for quiet in [
        "clear_env",
        "log_max_size",
        "start_wait",
        "restart_delay",
        "pidfile",
        "ready",
    ] {
        assert!(
            !unit.contains(&format!("# - {quiet}")),
            "{quiet} in\n{unit}"
        );
    }
    assert!(values(&unit, "User").is_empty() && values(&unit, "Environment").is_empty());
}

#[test]
fn a_forking_daemon_names_its_pidfile() {
    let files = Files::new();
    let d = files.daemon(
        "nginx",
        "command = \"/usr/sbin/nginx\"\ntype = \"forking\"\npidfile = \"/run/nginx.pid\"\nready_timeout = \"15s\"\n",
    );
    let unit = service_text(&d, &files.source());
    assert_eq!(one(&unit, "Type"), "forking");
    assert_eq!(one(&unit, "PIDFile"), "/run/nginx.pid");
    assert_eq!(one(&unit, "TimeoutStartSec"), "15s");
    let d = files.daemon(
        "guess",
        "command = \"/usr/sbin/nginx\"\ntype = \"forking\"\n",
    );
    let unit = service_text(&d, &files.source());
    assert!(values(&unit, "PIDFile").is_empty());
    assert!(unit.contains("# - pidfile: not set: systemd guesses"));
    let d = files.daemon(
        "simple",
        "command = \"/bin/true\"\npidfile = \"/run/s.pid\"\n",
    );
    let unit = service_text(&d, &files.source());
    assert!(values(&unit, "PIDFile").is_empty());
    assert!(unit.contains("# - pidfile = /run/s.pid: systemd writes no pidfile"));
}

/// `stop_command` and `reload_command` become ExecStop= and ExecReload=, their
/// programs resolved and their words literal (systemd sets `$MAINPID` itself).
#[test]
fn stop_and_reload_commands_become_exec_lines() {
    let files = Files::new();
    let d = files.daemon(
        "redis",
        "command = \"/usr/bin/redis-server\"\nstop_command = [\"/usr/bin/redis-cli\", \"shutdown\"]\nreload_command = [\"/bin/sh\", \"-c\", \"kill -USR1 $MAINPID\"]\n",
    );
    let unit = service_text(&d, &files.source());
    assert_eq!(one(&unit, "ExecStop"), "/usr/bin/redis-cli shutdown");
    assert_eq!(
        one(&unit, "ExecReload"),
        "/bin/sh -c \"kill -USR1 $$MAINPID\""
    );
    assert!(unit.contains("# - stop_command: systemd gives ExecStop="));
    let d = files.daemon("plain", "command = \"/bin/true\"\n");
    let unit = service_text(&d, &files.source());
    assert!(values(&unit, "ExecStop").is_empty());
    assert!(one(&unit, "ExecReload").ends_with("-s HUP $MAINPID"));
}

#[test]
fn the_target_wants_the_autostart_daemons() {
    let files = Files::new();
    let a = files.daemon("a", "command = \"/bin/true\"\n");
    let b = files.daemon("b", "command = \"/bin/true\"\nautostart = false\n");
    let c = files.daemon("c", "command = \"/bin/true\"\n");
    let mut source = files.source();
    let names = Names::of(&source);
    let text = target(&[&a, &b, &c], &source).text;
    assert_eq!(
        one(&text, "Wants"),
        format!("{} {}", names.service("a"), names.service("c"))
    );
    assert_eq!(one(&text, "WantedBy"), "multi-user.target");
    assert_eq!(one(&text, "Conflicts"), names.boot());
    assert!(!text.contains("StopWhenUnneeded"));
    // A user manager has no multi-user.target.
    source.user = true;
    let text = target(&[&a, &b, &c], &source).text;
    assert_eq!(one(&text, "WantedBy"), "default.target");
}

#[test]
fn values_stay_on_one_line() {
    assert_eq!(value("a\nb%\\"), "a b%%");
    assert_eq!(comment("x\r\ny"), "x  y");
}

#[test]
fn the_default_directory_keeps_the_plain_names_and_others_get_their_path() {
    let files = Files::new();
    let mut source = files.source();
    let other = Names::of(&source);
    assert!(other.service("web").starts_with("dmgr.tmp-"), "{other:?}");
    assert!(other.service("web").ends_with("-daemons.d-web.service"));
    assert_eq!(
        other.boot(),
        super::names::unit_name(&source.dirs.config_dir, false)
    );
    source.dirs.config_dir = crate::config::SYSTEM_CONFIG_DIR.into();
    let plain = Names::of(&source);
    assert_eq!(plain.service("web"), "dmgr-web.service");
    assert_eq!(plain.target(), "dmgr.target");
    assert_eq!(plain.boot(), "dmgr.service");
    assert_eq!(plain.env("web"), "dmgr-web.env");
    assert_eq!(plain.converted("web", 2), "dmgr-web.2.env");
}

/// Issue 24, finding 1: a forking daemon's command runs under sh, which exits once
/// the process the pidfile names is systemd's own child, so that systemd waits for it
/// at `systemctl stop`; the command's words pass through unchanged.
#[test]
fn a_forking_command_runs_under_a_shell_that_waits_for_adoption() {
    let files = Files::new();
    let d = files.daemon(
        "classic",
        "command = [\"/usr/bin/classic\", \"--pidfile\", \"/run/c.pid\", \"two words\"]\ntype = \"forking\"\npidfile = \"/run/c.pid\"\n",
    );
    let unit = service_text(&d, &files.source());
    let exec = one(&unit, "ExecStart");
    let words: Vec<String> = shlex::split(exec)
        .unwrap()
        .into_iter()
        .map(|w| w.replace("$$", "$"))
        .collect();
    assert_eq!(words[..2], ["/bin/sh", "-c"]);
    assert!(
        words[2].contains("grep -q \"^PPid:[[:space:]]*$PPID\\$\""),
        "{}",
        words[2]
    );
    assert_eq!(
        words[3..],
        [
            "/run/c.pid",
            "/usr/bin/classic",
            "--pidfile",
            "/run/c.pid",
            "two words"
        ]
    );
    assert_eq!(one(&unit, "PIDFile"), "/run/c.pid");
    assert_eq!(one(&unit, "KillMode"), "control-group");
    assert!(unit.contains("# - type = \"forking\": the command runs under /bin/sh"));
    // A simple daemon's command is exec'd as it is.
    let d = files.daemon("plain", "command = \"/bin/sleep 5\"\n");
    assert_eq!(
        one(&service_text(&d, &files.source()), "ExecStart"),
        "/bin/sleep 5"
    );
}

/// Issue 24, findings 2 and 3: `env` wins over `env_file` as in dmgr, through a
/// generated file named last; a file with `export ` lines is converted, in its place;
/// one systemd reads as dmgr does is named as it is.
#[test]
fn env_wins_and_export_lines_are_converted() {
    let files = Files::new();
    let plain = files.tmp.path().join("plain.env");
    std::fs::write(&plain, "A=1\n").unwrap();
    let exported = files.tmp.path().join("exported.env");
    std::fs::write(
        &exported,
        "export EXPORTED=value1\nQUOTED=\"two words\"\nFROM_ENV=file-loses\n",
    )
    .unwrap();
    let d = files.daemon(
        "web",
        &format!(
            "command = \"/bin/true\"\nenv_file = [{:?}, {:?}, \"-/nonexistent.env\"]\nenv = {{ FROM_ENV = \"env-wins\", DOLLAR = \"$x\" }}\n",
            plain.display().to_string(),
            exported.display().to_string()
        ),
    );
    let mut source = files.source();
    source.unit_dir = "/etc/systemd/system".into();
    let names = Names::of(&source);
    let (unit, generated) = service(&d, &source);
    let converted = format!("/etc/systemd/system/{}", names.converted("web", 2));
    let env = format!("/etc/systemd/system/{}", names.env("web"));
    assert_eq!(
        values(&unit.text, "EnvironmentFile"),
        [
            plain.to_str().unwrap(),
            converted.as_str(),
            "-/nonexistent.env",
            env.as_str()
        ]
    );
    assert!(values(&unit.text, "Environment").is_empty());
    assert!(unit
        .text
        .contains("systemd skips its `export ` lines (EXPORTED)"));
    let by_name = |name: &str| {
        generated
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no {name} in {generated:?}"))
            .text
            .clone()
    };
    let read = |text: &str| crate::config::env_file::parse(text).unwrap();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let text = by_name(&names.converted("web", 2));
    assert!(written_from(&text).is_some());
    assert_eq!(
        read(&text),
        pairs(&[
            ("EXPORTED", "value1"),
            ("QUOTED", "two words"),
            ("FROM_ENV", "file-loses")
        ])
    );
    assert_eq!(
        read(&by_name(&names.env("web"))),
        pairs(&[("DOLLAR", "$x"), ("FROM_ENV", "env-wins")])
    );
    assert_eq!(generated.len(), 2);
}

/// Issue 24, findings 4 and 7: a user export leaves out User= and is wanted by
/// default.target; no unit sets LogsDirectory=.
#[test]
fn a_user_export_runs_as_its_user_and_starts_with_the_user_manager() {
    let files = Files::new();
    let d = files.daemon(
        "web",
        "command = \"/bin/true\"\nuser = \"nobody\"\nlog = \"/var/log/dmgr/web.log\"\n",
    );
    let mut source = files.source();
    let unit = service_text(&d, &source);
    assert_eq!(one(&unit, "User"), "nobody");
    assert!(values(&unit, "LogsDirectory").is_empty());
    assert_eq!(one(&unit, "Requires"), "dmgr-logdir@var-log-dmgr.service");
    source.user = true;
    let unit = service_text(&d, &source);
    assert!(values(&unit, "User").is_empty());
    assert!(unit.contains("# - user, group: a user's manager runs every unit as that user"));
}

/// The target of a partial export still wants every autostart daemon of the
/// directory (finding 8), and the log directory template comes along.
#[test]
fn every_file_of_an_export_and_what_each_says_it_came_from() {
    let files = Files::new();
    let a = files.daemon("a", "command = \"/bin/true\"\n");
    let b = files.daemon("b", "command = \"/bin/true\"\n");
    let source = files.source();
    let names = Names::of(&source);
    let out = super::files(&[&a], &[&a, &b], &source);
    let listed: Vec<&str> = out.iter().map(|f| f.name.as_str()).collect();
    let target_name = names.target();
    assert_eq!(
        listed,
        [
            names.service("a").as_str(),
            target_name.as_str(),
            LOGDIR_TEMPLATE
        ]
    );
    let target = &out[1].text;
    assert_eq!(
        one(target, "Wants"),
        format!("{} {}", names.service("a"), names.service("b"))
    );
    assert_eq!(written_from(&out[0].text), Some(Some(a.file.clone())));
    assert_eq!(
        written_from(target),
        Some(Some(source.dirs.config_dir.clone()))
    );
    assert_eq!(written_from(&out[2].text), Some(None));
    assert_eq!(written_from("[Unit]\n"), None);
    assert!(out[2].text.contains("ExecStart=/") && out[2].text.contains(" -p %f\n"));
}

/// `kill_mode` is KillMode=: `group` is control-group, `mixed` is mixed, which both
/// behave as dmgr's do.
#[test]
fn kill_mode_maps_to_killmode() {
    let files = Files::new();
    let d = files.daemon(
        "pg",
        "command = \"/bin/true\"\nkill_mode = \"mixed\"\nstop_signal = \"INT\"\n",
    );
    let unit = service_text(&d, &files.source());
    assert_eq!(one(&unit, "KillMode"), "mixed");
    assert_eq!(one(&unit, "KillSignal"), "SIGINT");
    let d = files.daemon("web", "command = \"/bin/true\"\nkill_mode = \"group\"\n");
    assert_eq!(
        one(&service_text(&d, &files.source()), "KillMode"),
        "control-group"
    );
}

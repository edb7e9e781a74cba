use super::super::tests_support::Files;
use super::*;

/// The value of every `KEY=` line of `unit`, in order.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
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
    let unit = service(&d, &files.source());
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
    assert_eq!(one(&unit, "LogsDirectory"), "web");
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
    assert_eq!(one(&unit, "KillMode"), "mixed");
    assert_eq!(one(&unit, "TimeoutStopSec"), "20s");
    assert!(one(&unit, "ExecReload").ends_with("kill -s USR2 $MAINPID"));
    assert!(one(&unit, "ExecReload").starts_with('/'));
    assert_eq!(
        values(&unit, "After"),
        ["dmgr-db.service", "dmgr-cache.service"]
    );
    assert_eq!(
        values(&unit, "Wants"),
        ["dmgr-db.service", "dmgr-cache.service"]
    );
    assert_eq!(one(&unit, "PartOf"), "dmgr.target");
    assert_eq!(one(&unit, "WantedBy"), "dmgr.target");
    assert!(unit.contains("# - clear_env = false:"));
    assert!(unit.contains("# - stop_signal = \"INT\": systemd sends it to the main process only"));
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
    let unit = service(&d, &files.source());
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
    assert!(unit.contains("# - autostart = false: dmgr.target does not want it"));
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
    let unit = service(&d, &files.source());
    assert_eq!(one(&unit, "Type"), "forking");
    assert_eq!(one(&unit, "PIDFile"), "/run/nginx.pid");
    assert_eq!(one(&unit, "TimeoutStartSec"), "15s");
    let d = files.daemon(
        "guess",
        "command = \"/usr/sbin/nginx\"\ntype = \"forking\"\n",
    );
    let unit = service(&d, &files.source());
    assert!(values(&unit, "PIDFile").is_empty());
    assert!(unit.contains("# - pidfile: not set: systemd guesses"));
    let d = files.daemon(
        "simple",
        "command = \"/bin/true\"\npidfile = \"/run/s.pid\"\n",
    );
    let unit = service(&d, &files.source());
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
    let unit = service(&d, &files.source());
    assert_eq!(one(&unit, "ExecStop"), "/usr/bin/redis-cli shutdown");
    assert_eq!(
        one(&unit, "ExecReload"),
        "/bin/sh -c \"kill -USR1 $$MAINPID\""
    );
    assert!(unit.contains("# - stop_command: systemd gives ExecStop="));
    let d = files.daemon("plain", "command = \"/bin/true\"\n");
    let unit = service(&d, &files.source());
    assert!(values(&unit, "ExecStop").is_empty());
    assert!(one(&unit, "ExecReload").ends_with("-s HUP $MAINPID"));
}

#[test]
fn the_target_wants_the_autostart_daemons() {
    let files = Files::new();
    let a = files.daemon("a", "command = \"/bin/true\"\n");
    let b = files.daemon("b", "command = \"/bin/true\"\nautostart = false\n");
    let c = files.daemon("c", "command = \"/bin/true\"\n");
    let text = target(&[&a, &b, &c], &files.source());
    assert_eq!(one(&text, "Wants"), "dmgr-a.service dmgr-c.service");
    assert_eq!(one(&text, "WantedBy"), "multi-user.target");
    assert!(!text.contains("StopWhenUnneeded"));
}

#[test]
fn values_stay_on_one_line() {
    assert_eq!(value("a\nb%\\"), "a b%%");
    assert_eq!(comment("x\r\ny"), "x  y");
}

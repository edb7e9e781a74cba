//! systemd units from daemons: one `dmgr-NAME.service` per daemon and a `dmgr.target`
//! that wants the autostart ones. [`MAPPINGS`] holds one entry per key of a daemon file
//! (or per group of keys that map together); the quoting functions at the end are the
//! only code that writes a value into a unit file, and `boot` uses them too.
//!
//! Quoting follows systemd.service(5) and systemd.unit(5): `%` starts a specifier in
//! almost every setting, so it is always doubled; in `Exec*=` lines `$` starts a
//! variable, so it is doubled there; a word with spaces, quotes, backslashes or control
//! characters is double-quoted with C escapes; each variable gets an `Environment=`
//! line of its own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{format_duration, one_line as comment, Lost, Source};
use crate::config::limits::Limit;
use crate::config::{Daemon, DaemonType, ReadyCheck, RestartPolicy};

/// The name of the target that wants every exported autostart daemon.
pub const TARGET: &str = "dmgr.target";

/// The unit name of daemon `name`.
pub fn unit_name(name: &str) -> String {
    format!("dmgr-{name}.service")
}

/// A unit being built: the lines of each section, and what systemd cannot express.
#[derive(Debug, Default)]
pub struct Unit {
    /// `[Unit]` lines.
    pub unit: Vec<String>,
    /// `[Service]` lines.
    pub service: Vec<String>,
    /// `[Install]` lines.
    pub install: Vec<String>,
    /// Keys written as comments.
    pub lost: Vec<Lost>,
}

/// How one key, or a group of keys that map together, becomes this target's output.
pub type Mapping = super::Mapping<fn(&Daemon, &Source, &mut Unit)>;

/// Every key of a daemon file and how it becomes unit lines, in the order the lines
/// appear. A key added to the daemon file gets an entry here;
/// `every_key_has_a_mapping` fails until it does.
pub const MAPPINGS: &[Mapping] = &[
    Mapping {
        keys: &["description"],
        map: description,
    },
    Mapping {
        keys: &["after"],
        map: after,
    },
    Mapping {
        keys: &["type", "pidfile"],
        map: kind_and_pidfile,
    },
    Mapping {
        keys: &["command"],
        map: command,
    },
    Mapping {
        keys: &["reload_signal", "reload_command"],
        map: reload,
    },
    Mapping {
        keys: &["working_dir"],
        map: working_dir,
    },
    Mapping {
        keys: &["env"],
        map: env,
    },
    Mapping {
        keys: &["clear_env"],
        map: clear_env,
    },
    Mapping {
        keys: &["user", "group"],
        map: user_and_group,
    },
    Mapping {
        keys: &["umask"],
        map: umask,
    },
    Mapping {
        keys: &["env_file"],
        map: env_file,
    },
    Mapping {
        keys: &["limits", "nice", "oom_score_adj"],
        map: resources,
    },
    Mapping {
        keys: &["restart", "restart_delay", "max_restarts"],
        map: restart,
    },
    Mapping {
        keys: &["start_wait"],
        map: start_wait,
    },
    Mapping {
        keys: &["ready", "ready_timeout"],
        map: ready,
    },
    Mapping {
        keys: &["stop_signal", "stop_timeout"],
        map: stop,
    },
    Mapping {
        keys: &["stop_command"],
        map: stop_command,
    },
    Mapping {
        keys: &["log", "stderr_log"],
        map: logs,
    },
    Mapping {
        keys: &["log_max_size", "log_keep"],
        map: rotation,
    },
    Mapping {
        keys: &["log_timestamps"],
        map: log_timestamps,
    },
    Mapping {
        keys: &["autostart"],
        map: autostart,
    },
];

/// The text of `dmgr-NAME.service` for `daemon`.
pub fn service(daemon: &Daemon, source: &Source) -> String {
    let mut unit = Unit::default();
    for mapping in MAPPINGS {
        (mapping.map)(daemon, source, &mut unit);
    }
    // Stopping or restarting the target reaches every daemon unit.
    unit.unit.push(format!("PartOf={TARGET}"));
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# {}: written by `dmgr export systemd` (dmgr {}) from",
        unit_name(&daemon.name),
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        text,
        "# {}; change that file and export again.",
        comment(&daemon.file.display().to_string())
    );
    if !unit.lost.is_empty() {
        text.push_str("#\n# What systemd does not do as dmgr did:\n");
        for lost in &unit.lost {
            let _ = writeln!(text, "# - {}", comment(&lost.line()));
        }
    }
    write_section(&mut text, "Unit", &unit.unit);
    write_section(&mut text, "Service", &unit.service);
    write_section(&mut text, "Install", &unit.install);
    text
}

/// The text of `dmgr.target`: it wants every autostart daemon of `daemons`, so starting
/// it starts them and, as each unit is `PartOf=` it, stopping it stops them all.
pub fn target(daemons: &[&Daemon], source: &Source) -> String {
    let config_dir = source.dirs.config_dir.display().to_string();
    let wanted: Vec<String> = daemons
        .iter()
        .filter(|d| d.autostart)
        .map(|d| unit_name(&d.name))
        .collect();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# {TARGET}: written by `dmgr export systemd` (dmgr {}) from",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(text, "# {}.", comment(&config_dir));
    text.push_str("# `systemctl start dmgr.target` starts the autostart daemons; `systemctl stop dmgr.target` stops them all.\n");
    text.push_str(
        "# For a user manager (~/.config/systemd/user), make it WantedBy=default.target.\n",
    );
    let mut unit = vec![format!(
        "Description=dmgr daemons of {}",
        value(&config_dir)
    )];
    if !wanted.is_empty() {
        unit.push(format!("Wants={}", wanted.join(" ")));
    }
    write_section(&mut text, "Unit", &unit);
    write_section(
        &mut text,
        "Install",
        &["WantedBy=multi-user.target".to_string()],
    );
    text
}

fn write_section(text: &mut String, name: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(text, "\n[{name}]");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
}

fn description(d: &Daemon, _: &Source, unit: &mut Unit) {
    let text = d
        .description
        .clone()
        .unwrap_or_else(|| format!("dmgr daemon {}", d.name));
    unit.unit.push(format!("Description={}", value(&text)));
}

fn after(d: &Daemon, _: &Source, unit: &mut Unit) {
    for dep in &d.after {
        unit.unit.push(format!("After={}", unit_name(dep)));
        unit.unit.push(format!("Wants={}", unit_name(dep)));
    }
}

fn kind_and_pidfile(d: &Daemon, source: &Source, unit: &mut Unit) {
    let pidfile = super::written_pidfile(d, &source.dirs);
    match d.kind {
        DaemonType::Simple => {
            unit.service.push("Type=exec".into());
            if let Some(pidfile) = pidfile {
                unit.lost.push(Lost::new(
                    format!("pidfile = {}", pidfile.display()),
                    format!(
                        "systemd writes no pidfile; `systemctl show -p MainPID {}` gives the PID",
                        unit_name(&d.name)
                    ),
                ));
            }
        }
        DaemonType::Forking => {
            unit.service.push("Type=forking".into());
            match pidfile {
                Some(pidfile) => unit.service.push(format!("PIDFile={}", path(pidfile))),
                None => unit.lost.push(Lost::new(
                    "pidfile",
                    "not set: systemd guesses the process the command leaves behind (GuessMainPID=yes), as dmgr adopts it",
                )),
            }
        }
    }
}

fn command(d: &Daemon, source: &Source, unit: &mut Unit) {
    let (program, lost) = super::program(d, source);
    let mut argv = vec![program.display().to_string()];
    argv.extend(d.process.command[1..].iter().cloned());
    unit.service.push(format!("ExecStart={}", exec_line(&argv)));
    unit.lost.extend(lost);
}

fn reload(d: &Daemon, source: &Source, unit: &mut Unit) {
    if let Some(argv) = &d.supervision.reload_command {
        // systemd sets `$MAINPID` in ExecReload='s environment as dmgr does; the
        // argument vector stays literal (`$` escaped), as dmgr passes it.
        let line = resolved_line(argv, "reload_command", d, source, unit);
        unit.service.push(format!("ExecReload={line}"));
        return;
    }
    let kill = crate::keeper::sys::resolve_program("kill", source.path.as_deref())
        .unwrap_or_else(|| PathBuf::from("/bin/kill"));
    let argv = [
        kill.display().to_string(),
        "-s".to_string(),
        d.supervision.reload_signal.name().to_string(),
    ];
    // `$MAINPID` is systemd's variable, the one place a `$` stays unescaped.
    unit.service
        .push(format!("ExecReload={} $MAINPID", exec_line(&argv)));
}

fn stop_command(d: &Daemon, source: &Source, unit: &mut Unit) {
    let Some(argv) = &d.supervision.stop_command else {
        return;
    };
    let line = resolved_line(argv, "stop_command", d, source, unit);
    unit.service.push(format!("ExecStop={line}"));
    unit.lost.push(Lost::new(
        "stop_command",
        "systemd gives ExecStop= and the signals after it TimeoutStopSec= together, where dmgr gives the command and the daemon's end stop_timeout, then stop_signal another",
    ));
}

/// `argv` (an argument vector of the daemon file) as an `Exec*=` line, its program
/// resolved as the keeper would.
fn resolved_line(
    argv: &[String],
    key: &str,
    d: &Daemon,
    source: &Source,
    unit: &mut Unit,
) -> String {
    let (program, lost) = super::resolve(&argv[0], key, d, source);
    unit.lost.extend(lost);
    let mut words = vec![program.display().to_string()];
    words.extend(argv[1..].iter().cloned());
    exec_line(&words)
}

fn working_dir(d: &Daemon, _: &Source, unit: &mut Unit) {
    unit.service
        .push(format!("WorkingDirectory={}", path(&d.process.working_dir)));
}

fn env(d: &Daemon, _: &Source, unit: &mut Unit) {
    // `check` admits only names of letters, digits and `_`, as systemd does.
    for (key, val) in &d.process.env {
        unit.service
            .push(format!("Environment={}", environment_assignment(key, val)));
    }
}

fn clear_env(d: &Daemon, _: &Source, unit: &mut Unit) {
    if !d.process.clear_env {
        unit.lost.push(Lost::new(
            "clear_env = false",
            "dmgr passes on the environment `dmgr start` ran in; systemd starts the daemon with its own few variables (PATH, LANG, ...) plus Environment=",
        ));
    }
}

fn user_and_group(d: &Daemon, _: &Source, unit: &mut Unit) {
    if let Some(user) = &d.process.user {
        unit.service.push(format!("User={}", value(user)));
    }
    if let Some(group) = &d.process.group {
        unit.service.push(format!("Group={}", value(group)));
    }
}

fn umask(d: &Daemon, _: &Source, unit: &mut Unit) {
    unit.service.push(format!("UMask={:04o}", d.process.umask));
}

fn env_file(d: &Daemon, _: &Source, unit: &mut Unit) {
    // Both read the same syntax; systemd's `-` makes a file optional as dmgr's does.
    // It is read before Environment= there too, which wins as `env` does.
    for file in &d.process.env_file {
        let dash = if file.optional { "-" } else { "" };
        unit.service
            .push(format!("EnvironmentFile={dash}{}", path(&file.path)));
    }
}

fn resources(d: &Daemon, _: &Source, unit: &mut Unit) {
    for (resource, limit) in &d.process.limits {
        let value = match limit {
            Limit::Unlimited => "infinity".to_string(),
            Limit::Value(n) => n.to_string(),
        };
        unit.service
            .push(format!("{}={value}", resource.systemd_name()));
    }
    if let Some(nice) = d.process.nice {
        unit.service.push(format!("Nice={nice}"));
    }
    if let Some(adj) = d.process.oom_score_adj {
        unit.service.push(format!("OOMScoreAdjust={adj}"));
    }
}

fn restart(d: &Daemon, _: &Source, unit: &mut Unit) {
    let policy = match d.supervision.restart {
        RestartPolicy::No => "no",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Always => "always",
    };
    unit.service.push(format!("Restart={policy}"));
    if d.supervision.restart == RestartPolicy::No {
        return;
    }
    unit.service.push(format!(
        "RestartSec={}",
        format_duration(d.supervision.restart_delay)
    ));
    // The first start counts too: max_restarts restarts are max_restarts + 1 starts.
    unit.unit.push(format!(
        "StartLimitBurst={}",
        d.supervision.max_restarts.saturating_add(1)
    ));
    unit.unit.push(format!(
        "StartLimitIntervalSec={}",
        format_duration(super::restart_window(d))
    ));
    unit.lost.extend(super::backoff_lost(
        d,
        "systemd waits RestartSec= each time (systemd 254 and later can back off too, with RestartSteps= and RestartMaxDelaySec=)",
    ));
}

fn start_wait(d: &Daemon, _: &Source, unit: &mut Unit) {
    if !d.supervision.start_wait.is_zero() {
        unit.lost.push(Lost::new(
            format!("start_wait = {}", format_duration(d.supervision.start_wait)),
            "systemd counts the start done once the command runs; it does not wait to see it stay up",
        ));
    }
}

fn ready(d: &Daemon, _: &Source, unit: &mut Unit) {
    if d.kind == DaemonType::Forking {
        // dmgr waits ready_timeout for the command to exit 0, as systemd waits
        // TimeoutStartSec= for a forking service's start-up.
        unit.service.push(format!(
            "TimeoutStartSec={}",
            format_duration(d.supervision.ready_timeout)
        ));
    }
    let Some(check) = &d.supervision.ready else {
        return;
    };
    let written = match check {
        ReadyCheck::Tcp(address) => format!("{{ tcp = {address:?} }}"),
        ReadyCheck::File(file) => format!("{{ file = {:?} }}", file.display().to_string()),
        ReadyCheck::Exec(argv) => format!("{{ exec = {argv:?} }}"),
    };
    unit.lost.push(Lost::new(
        format!("ready = {written}"),
        format!(
            "systemd has no readiness check: units After= this one start once it runs, without waiting up to ready_timeout = {} (a daemon that speaks sd_notify can use Type=notify)",
            format_duration(d.supervision.ready_timeout)
        ),
    ));
}

fn stop(d: &Daemon, _: &Source, unit: &mut Unit) {
    unit.service.push(format!(
        "KillSignal=SIG{}",
        d.supervision.stop_signal.name()
    ));
    unit.service.push("KillMode=mixed".into());
    unit.service.push(format!(
        "TimeoutStopSec={}",
        format_duration(d.supervision.stop_timeout)
    ));
    unit.lost.push(Lost::new(
        format!("stop_signal = {:?}", d.supervision.stop_signal.name()),
        "systemd sends it to the main process only (KillMode=mixed), where dmgr sends it to the daemon's process group; what is left gets SIGKILL after TimeoutStopSec= in both",
    ));
}

fn logs(d: &Daemon, _: &Source, unit: &mut Unit) {
    let stderr = d.process.stderr_log.as_ref().unwrap_or(&d.process.log);
    unit.service
        .push(format!("StandardOutput=append:{}", path(&d.process.log)));
    unit.service
        .push(format!("StandardError=append:{}", path(stderr)));
    // systemd opens the files but creates no directory: under /var/log it can.
    let mut dirs: Vec<String> = [d.process.log.as_path(), stderr.as_path()]
        .iter()
        .filter_map(|file| file.parent()?.strip_prefix("/var/log").ok())
        // A space-separated list: a name with a space in it is left out.
        .filter(|rel| {
            let text = rel.to_string_lossy();
            !text.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        })
        .map(path)
        .collect();
    dirs.dedup();
    if !dirs.is_empty() {
        unit.service
            .push(format!("LogsDirectory={}", dirs.join(" ")));
    }
}

fn rotation(d: &Daemon, _: &Source, unit: &mut Unit) {
    if d.logs.log_max_size.0 > 0 {
        unit.lost.push(Lost::new(
            format!("log_max_size = {:?}, log_keep = {}", d.logs.log_max_size.to_string(), d.logs.log_keep),
            "systemd does not rotate files it appends to; rotate them with logrotate (copytruncate), or leave the output to the journal",
        ));
    }
}

fn log_timestamps(d: &Daemon, _: &Source, unit: &mut Unit) {
    if d.logs.log_timestamps {
        unit.lost.push(Lost::new(
            "log_timestamps = true",
            "systemd appends the output as written; the journal (StandardOutput=journal) stamps each line",
        ));
    }
}

fn autostart(d: &Daemon, _: &Source, unit: &mut Unit) {
    if d.autostart {
        unit.install.push(format!("WantedBy={TARGET}"));
    } else {
        unit.lost.push(Lost::new(
            "autostart = false",
            format!(
                "{TARGET} does not want it; start it with `systemctl start {}`",
                unit_name(&d.name)
            ),
        ));
    }
}

/// An argv as the words of an `Exec*=` line: `%` and `$` doubled, a word with spaces,
/// quotes, backslashes or control characters (or an empty one, or a lone `;`)
/// double-quoted with C escapes.
pub fn exec_line(argv: &[String]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|word| {
            let escaped = word.replace('%', "%%").replace('$', "$$");
            let plain = !escaped.is_empty()
                && escaped != ";"
                && !escaped
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'));
            if plain {
                escaped
            } else {
                format!("\"{}\"", c_escape(&escaped))
            }
        })
        .collect();
    words.join(" ")
}

/// One `KEY=VALUE` for `Environment=`, quoted whole: `%` doubled, C escapes inside
/// the quotes; `$` is not special there.
pub fn environment_assignment(key: &str, val: &str) -> String {
    format!(
        "\"{}\"",
        c_escape(&format!("{key}={val}").replace('%', "%%"))
    )
}

/// A path as the value of a setting that takes one (`WorkingDirectory=`, `PIDFile=`,
/// `append:`): `%` doubled.
pub fn path(path: &Path) -> String {
    value(&path.display().to_string())
}

/// Free text as the value of a setting: `%` doubled, on one line, and no trailing
/// backslash that would join the next line to it.
pub fn value(text: &str) -> String {
    comment(text).replace('%', "%%")
}

/// C escapes for the inside of a double-quoted word.
fn c_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
        super::super::check_coverage(MAPPINGS, "src/export/systemd.rs").unwrap();
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
        assert!(unit
            .contains("# - ready = { tcp = \"127.0.0.1:8080\" }: systemd has no readiness check"));
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
        assert!(
            unit.contains("# - stop_signal = \"INT\": systemd sends it to the main process only")
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
        assert!(
            values(&unit, "RestartSec").is_empty() && values(&unit, "StartLimitBurst").is_empty()
        );
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
}

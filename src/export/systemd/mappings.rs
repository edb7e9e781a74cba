//! [`MAPPINGS`]: each key of a daemon file and the unit lines it becomes.

use std::path::PathBuf;

use super::super::{format_duration, Lost, Source};
use crate::config::limits::Limit;
use crate::config::Key;
use crate::config::{Daemon, DaemonType, KillMode, ReadyCheck, RestartPolicy};

use super::{exec_line, path, value, Mapping, Names, Unit};

/// Every key of a daemon file and how it becomes unit lines, in the order the lines
/// appear. A key added to the daemon file gets an entry here;
/// `every_key_has_a_mapping` fails until it does.
pub(crate) const MAPPINGS: &[Mapping] = &[
    Mapping {
        keys: &[Key::Description],
        map: description,
    },
    Mapping {
        keys: &[Key::After],
        map: after,
    },
    Mapping {
        keys: &[Key::Type, Key::Pidfile],
        map: kind_and_pidfile,
    },
    Mapping {
        keys: &[Key::Command],
        map: command,
    },
    Mapping {
        keys: &[Key::ReloadSignal, Key::ReloadCommand],
        map: reload,
    },
    Mapping {
        keys: &[Key::WorkingDir],
        map: working_dir,
    },
    Mapping {
        keys: &[Key::Env, Key::EnvFile],
        map: super::environment::map,
    },
    Mapping {
        keys: &[Key::ClearEnv],
        map: clear_env,
    },
    Mapping {
        keys: &[Key::User, Key::Group],
        map: user_and_group,
    },
    Mapping {
        keys: &[Key::Umask],
        map: umask,
    },
    Mapping {
        keys: &[Key::Limits, Key::Nice, Key::OomScoreAdj],
        map: resources,
    },
    Mapping {
        keys: &[Key::MemoryMax],
        map: memory_max,
    },
    Mapping {
        keys: &[
            Key::Health,
            Key::HealthInterval,
            Key::HealthTimeout,
            Key::HealthFailures,
        ],
        map: health,
    },
    Mapping {
        keys: &[Key::Restart, Key::RestartDelay, Key::MaxRestarts],
        map: restart,
    },
    Mapping {
        keys: &[Key::StartWait],
        map: start_wait,
    },
    Mapping {
        keys: &[Key::Ready, Key::ReadyTimeout],
        map: ready,
    },
    Mapping {
        keys: &[Key::StopSignal, Key::StopTimeout, Key::KillMode],
        map: stop,
    },
    Mapping {
        keys: &[Key::StopCommand],
        map: stop_command,
    },
    Mapping {
        keys: &[Key::Watchdog, Key::WatchdogSignal, Key::NotifyAccess],
        map: super::notify::keys,
    },
    Mapping {
        keys: &[Key::Log, Key::StderrLog],
        map: logs,
    },
    Mapping {
        keys: &[Key::LogMaxSize, Key::LogKeep],
        map: rotation,
    },
    Mapping {
        keys: &[Key::LogTimestamps],
        map: log_timestamps,
    },
    Mapping {
        keys: &[Key::Autostart],
        map: autostart,
    },
    Mapping {
        keys: &[Key::Instances],
        map: super::jobs::instances,
    },
    Mapping {
        keys: &[Key::Schedule, Key::CatchUp],
        map: super::jobs::schedule,
    },
    Mapping {
        keys: &[Key::RestartSchedule],
        map: super::jobs::restart_schedule,
    },
    Mapping {
        keys: &[
            Key::PreStart,
            Key::PostStop,
            Key::OnFailure,
            Key::HookTimeout,
        ],
        map: super::jobs::hooks,
    },
];

fn description(d: &Daemon, _: &Source, unit: &mut Unit) {
    let text = d
        .description
        .clone()
        .unwrap_or_else(|| format!("dmgr daemon {}", d.name));
    unit.unit.push(format!("Description={}", value(&text)));
}

fn after(d: &Daemon, source: &Source, unit: &mut Unit) {
    let names = Names::of(source);
    for dep in &d.after {
        // A daemon with `instances` is its copies, each an instance of its template.
        let units: Vec<String> = match crate::config::instances_of(&source.dirs, dep) {
            Some(n) => (1..=n)
                .map(|i| names.service(&crate::config::instance_name(dep, i)))
                .collect(),
            None => vec![names.service(dep)],
        };
        for unit_name in units {
            unit.unit.push(format!("After={unit_name}"));
            unit.unit.push(format!("Wants={unit_name}"));
        }
    }
}

fn kind_and_pidfile(d: &Daemon, source: &Source, unit: &mut Unit) {
    let pidfile = super::written_pidfile(d, &source.dirs);
    match d.kind {
        DaemonType::Oneshot => {
            unit.service.push("Type=oneshot".into());
            // Unscheduled, it stays active once it succeeded, as `done` in dmgr, so
            // that a unit After= and Wants= it does not run it again; a timer's
            // service must go inactive to be started again.
            if d.supervision.schedule.is_none() {
                unit.service.push("RemainAfterExit=yes".into());
            }
        }
        DaemonType::Simple => {
            unit.service.push("Type=exec".into());
            if let Some(pidfile) = pidfile {
                unit.lost.push(Lost::new(
                    format!("pidfile = {}", pidfile.display()),
                    format!(
                        "systemd writes no pidfile; `systemctl show -p MainPID {}` gives the PID",
                        Names::of(source).service(&d.name)
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
                    "not set: systemd guesses the process the command leaves behind (GuessMainPID=yes) as the command exits, and may take a double fork's middle process for it where dmgr waits start_wait for the one process left: set pidfile",
                )),
            }
        }
        DaemonType::Notify => super::notify::kind(d, source, unit),
    }
}

fn command(d: &Daemon, source: &Source, unit: &mut Unit) {
    let (program, lost) = super::program(d, source);
    let mut argv = vec![program.display().to_string()];
    argv.extend(d.process.command[1..].iter().cloned());
    unit.lost.extend(lost);
    let pidfile = super::written_pidfile(d, &source.dirs).filter(|_| d.kind == DaemonType::Forking);
    let Some(pidfile) = pidfile else {
        unit.service.push(format!("ExecStart={}", exec_line(&argv)));
        return;
    };
    // systemd 252 reads PIDFile= as soon as the command exits; a double fork's middle
    // process may still be alive then, and a main process that is not systemd's
    // child is one it does not wait for: `systemctl stop` SIGKILLs it at once
    // (issue 24). As dmgr adopts the process its pidfile names only once it is the
    // keeper's child, the command runs under sh, which waits for that.
    let mut words = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        FORKING_WAIT.to_string(),
        pidfile.display().to_string(),
    ];
    words.extend(argv);
    unit.service
        .push(format!("ExecStart={}", exec_line(&words)));
    unit.lost.push(Lost::new(
        "type = \"forking\"",
        "the command runs under /bin/sh, which exits once the process PIDFile= names is systemd's own child (the double fork's middle process gone): systemd 252 does not wait for a main process it did not adopt, and SIGKILLs it at `systemctl stop`",
    ));
}

/// The shell script a forking daemon's command runs under: `$0` is the pidfile, the
/// rest the command. It runs the command, and once the command exited 0 waits until
/// the pidfile names a process whose parent is systemd (`$PPID`, the manager that
/// started this shell and adopts orphans) in this unit's cgroup; systemd's
/// `TimeoutStartSec=` ends a wait that lasts.
const FORKING_WAIT: &str = r#"pidfile=$0; "$@" || exit; while :; do pid=$(cat "$pidfile" 2>/dev/null); case $pid in ''|*[!0-9]*) ;; *) grep -q "^PPid:[[:space:]]*$PPID\$" "/proc/$pid/status" 2>/dev/null && [ "$(cat "/proc/$pid/cgroup" 2>/dev/null)" = "$(cat /proc/$$/cgroup)" ] && exit 0 ;; esac; sleep 0.1; done"#;

fn reload(d: &Daemon, source: &Source, unit: &mut Unit) {
    if super::notify::uses_notify_reload(d, source) {
        // systemd sends it to the main process and waits for RELOADING=1 ... READY=1.
        unit.service.push(format!(
            "ReloadSignal={}",
            d.supervision.reload_signal.0.as_str()
        ));
        return;
    }
    if let Some(argv) = &d.supervision.reload_command {
        // systemd sets `$MAINPID` in ExecReload='s environment as dmgr does; the
        // argument vector stays literal (`$` escaped), as dmgr passes it.
        let line = resolved_line(argv, "reload_command", d, source, unit);
        unit.service.push(format!("ExecReload={line}"));
        return;
    }
    let kill = crate::config::resolve_program("kill", source.path.as_deref())
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

fn clear_env(d: &Daemon, _: &Source, unit: &mut Unit) {
    if !d.process.clear_env {
        unit.lost.push(Lost::new(
            "clear_env = false",
            "dmgr passes on the environment `dmgr start` ran in; systemd starts the daemon with its own few variables (PATH, LANG, ...) plus Environment=",
        ));
    }
}

fn user_and_group(d: &Daemon, source: &Source, unit: &mut Unit) {
    if source.user && (d.process.user.is_some() || d.process.group.is_some()) {
        unit.lost.push(Lost::new(
            "user, group",
            "a user's manager runs every unit as that user: User= and Group= are left out",
        ));
        return;
    }
    if let Some(user) = &d.process.user {
        unit.service.push(format!("User={}", value(user)));
    }
    if let Some(group) = &d.process.group {
        unit.service.push(format!("Group={}", value(group)));
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

fn memory_max(d: &Daemon, _: &Source, unit: &mut Unit) {
    let Some(max) = d.supervision.memory_max else {
        return;
    };
    unit.service.push(format!("MemoryMax={}", max.0));
    unit.lost.push(Lost::new(
        format!("memory_max = \"{max}\""),
        "systemd's MemoryMax= has the kernel's OOM killer end the daemon at the limit (then Restart= applies), where dmgr stops it in order",
    ));
}

/// A check table as written in a daemon file, for a comment.
fn written(check: &ReadyCheck) -> String {
    match check {
        ReadyCheck::Tcp(address) => format!("{{ tcp = {address:?} }}"),
        ReadyCheck::File(file) => format!("{{ file = {:?} }}", file.display().to_string()),
        ReadyCheck::Exec(argv) => format!("{{ exec = {argv:?} }}"),
        ReadyCheck::Http(url) => format!("{{ http = {url:?} }}"),
        ReadyCheck::Log(pattern) => format!("{{ log = {pattern:?} }}"),
        ReadyCheck::Fd(fd) => format!("{{ fd = {fd} }}"),
    }
}

fn health(d: &Daemon, _: &Source, unit: &mut Unit) {
    let Some(check) = &d.supervision.health else {
        return;
    };
    let written = written(check);
    unit.lost.push(Lost::new(
        format!("health = {written}"),
        "systemd has no liveness check (a daemon that speaks sd_notify can use WatchdogSec=)",
    ));
}

fn umask(d: &Daemon, _: &Source, unit: &mut Unit) {
    unit.service.push(format!("UMask={:04o}", d.process.umask));
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
    let written = written(check);
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
    // `group`: stop_signal to every process of the daemon, then SIGKILL to what is
    // left after stop_timeout. `mixed`: stop_signal to the main process alone, and
    // SIGKILL to what is left once it has exited, or at stop_timeout. systemd's
    // control-group and mixed do exactly this.
    let mode = match d.supervision.kill_mode {
        KillMode::Group => "control-group",
        KillMode::Mixed => "mixed",
    };
    unit.service.push(format!("KillMode={mode}"));
    unit.service.push(format!(
        "TimeoutStopSec={}",
        format_duration(d.supervision.stop_timeout)
    ));
    unit.lost.push(Lost::new(
        format!("stop_timeout = {}", format_duration(d.supervision.stop_timeout)),
        "a stop that needs SIGKILL leaves the unit failed (Result: timeout), and a daemon that exits non-zero on its stop_signal leaves it failed (Result: exit-code; SuccessExitStatus= can allow the code), where dmgr records both as stopped",
    ));
}

fn logs(d: &Daemon, _: &Source, unit: &mut Unit) {
    let stderr = d.process.stderr_log.as_ref().unwrap_or(&d.process.log);
    unit.service
        .push(format!("StandardOutput=append:{}", path(&d.process.log)));
    unit.service
        .push(format!("StandardError=append:{}", path(stderr)));
    // systemd opens the files as root, before it drops to User=, as dmgr's keeper
    // does; it makes no directory for them, so dmgr-logdir@ does, as the keeper
    // would. No LogsDirectory=: with User= it would give a directory other daemons
    // share (and every log in it) to this daemon's user.
    let mut dirs: Vec<&std::path::Path> = [d.process.log.as_path(), stderr.as_path()]
        .iter()
        .filter_map(|file| file.parent())
        .collect();
    dirs.dedup();
    for dir in dirs {
        let instance = format!("dmgr-logdir@{}.service", super::names::escape_path(dir));
        unit.unit.push(format!("Requires={instance}"));
        unit.unit.push(format!("After={instance}"));
        unit.uses_logdir = true;
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

fn autostart(d: &Daemon, source: &Source, unit: &mut Unit) {
    let names = Names::of(source);
    if d.autostart && d.supervision.schedule.is_some() {
        // Its timer is wanted instead: starting the target must not run the job.
    } else if d.autostart {
        unit.install.push(format!("WantedBy={}", names.target()));
    } else {
        unit.lost.push(Lost::new(
            "autostart = false",
            format!(
                "{} does not want it; start it with `systemctl{} start {}`",
                names.target(),
                if source.user { " --user" } else { "" },
                names.service(&d.name)
            ),
        ));
    }
}

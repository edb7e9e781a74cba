//! [`MAPPINGS`]: each key of a daemon file and the fields of a [`Task`] it becomes.

use super::super::{format_duration, Lost, Source};
use super::rules::{MAX_KILL_TIMEOUT, MIN_MEMORY_MB};
use super::{
    Check, Logs, Mapping, Placement, Port, Restart, Service, Task, CHECK_INTERVAL, CHECK_TIMEOUT,
    DEFAULT_MEMORY_MB,
};
use crate::config::Key;
use crate::config::{Daemon, DaemonType, KillMode, ReadyCheck, RestartPolicy};

/// Every key of a daemon file and how it becomes task fields. A key added to the
/// daemon file gets an entry here; `every_key_has_a_mapping` fails until it does.
pub(crate) const MAPPINGS: &[Mapping] = &[
    Mapping {
        keys: &[Key::Command],
        map: command,
    },
    Mapping {
        keys: &[Key::Description],
        map: description,
    },
    Mapping {
        keys: &[Key::WorkingDir],
        map: working_dir,
    },
    Mapping {
        keys: &[Key::Env],
        map: env,
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
        keys: &[Key::EnvFile],
        map: env_file,
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
        keys: &[Key::Type, Key::Pidfile],
        map: kind_and_pidfile,
    },
    Mapping {
        keys: &[Key::Log, Key::StderrLog],
        map: log_paths,
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
        keys: &[Key::ReloadSignal, Key::ReloadCommand],
        map: reload,
    },
    Mapping {
        keys: &[Key::StopCommand],
        map: stop_command,
    },
    Mapping {
        keys: &[Key::Watchdog, Key::WatchdogSignal, Key::NotifyAccess],
        map: notify,
    },
    Mapping {
        keys: &[Key::After],
        map: after,
    },
    Mapping {
        keys: &[Key::Instances],
        map: super::jobs::instances,
    },
    Mapping {
        keys: &[Key::Schedule],
        map: super::jobs::oneshot,
    },
    Mapping {
        keys: &[
            Key::CatchUp,
            Key::RestartSchedule,
            Key::PreStart,
            Key::PostStop,
            Key::OnFailure,
            Key::HookTimeout,
        ],
        map: super::jobs::notes,
    },
];

fn command(d: &Daemon, source: &Source, _: &Placement, task: &mut Task) {
    let (program, lost) = super::program(d, source);
    task.command = program.display().to_string();
    task.args = d.process.command[1..].to_vec();
    task.lost.extend(lost);
    if d.process.command.iter().any(|a| a.contains("${")) {
        task.lost.push(Lost::new(
            "command",
            "Nomad replaces ${...} in command and args with its own variables before the program sees them",
        ));
    }
}

fn description(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    if let Some(text) = &d.description {
        task.meta.insert("description".into(), text.clone());
    }
}

fn working_dir(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    task.work_dir = Some(d.process.working_dir.display().to_string());
}

fn env(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    task.env = d.process.env.clone();
    if d.process.env.values().any(|v| v.contains("${")) {
        task.lost.push(Lost::new(
            "env",
            "Nomad replaces ${...} in values with its own variables",
        ));
    }
}

fn clear_env(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    if !d.process.clear_env {
        task.lost.push(Lost::new(
            "clear_env = false",
            "dmgr passes on the environment `dmgr start` ran in; Nomad gives the task env plus its NOMAD_* variables",
        ));
    }
}

fn user_and_group(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    task.user = d.process.user.clone();
    if let Some(group) = &d.process.group {
        task.lost.push(Lost::new(
            format!("group = {group:?}"),
            "Nomad has no group setting: the task runs with the user's primary group",
        ));
    }
}

fn env_file(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    if d.process.env_file.is_empty() {
        return;
    }
    let (template, lost) = super::template::env_file(d);
    task.templates.extend(template);
    task.lost.extend(lost);
}

fn resources(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    for (resource, limit) in &d.process.limits {
        task.lost.push(Lost::new(
            format!("limits.{resource} = {}", limit.show(*resource)),
            "Nomad sets no resource limit: the task inherits the Nomad client's",
        ));
    }
    if let Some(nice) = d.process.nice {
        task.lost.push(Lost::new(
            format!("nice = {nice}"),
            "Nomad has no nice setting: the task runs at the Nomad client's priority",
        ));
    }
    if let Some(adj) = d.process.oom_score_adj {
        task.lost.push(Lost::new(
            format!("oom_score_adj = {adj}"),
            "Nomad has no OOM score setting for raw_exec",
        ));
    }
}

fn umask(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    if d.process.umask != 0o022 {
        task.lost.push(Lost::new(
            format!("umask = \"{:04o}\"", d.process.umask),
            "Nomad has no umask setting: the task inherits the Nomad client's",
        ));
    }
}

fn kind_and_pidfile(d: &Daemon, source: &Source, _: &Placement, task: &mut Task) {
    match d.kind {
        DaemonType::Forking => task.lost.push(Lost::new(
            "type = \"forking\"",
            "Nomad supervises the command's own process and sees a daemonizing command exit: run the program in the foreground (nginx -g 'daemon off;', redis-server --daemonize no)",
        )),
        DaemonType::Notify => task.lost.push(Lost::new(
            "type = \"notify\"",
            "Nomad has no notify socket (NOTIFY_SOCKET is unset): the daemon's READY=1, STATUS=, RELOADING=1 and MAINPID= go nowhere, and the task counts as running once it is started",
        )),
        // A oneshot is mapped in `super::jobs`.
        DaemonType::Simple | DaemonType::Oneshot => {}
    }
    if let Some(pidfile) = super::written_pidfile(d, &source.dirs) {
        task.lost.push(Lost::new(
            format!("pidfile = {:?}", pidfile.display().to_string()),
            "Nomad uses no pidfile",
        ));
    }
}

fn log_paths(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    let mut paths = d.process.log.display().to_string();
    if let Some(stderr) = &d.process.stderr_log {
        paths = format!("{paths}, stderr_log = {}", stderr.display());
    }
    task.lost.push(Lost::new(
        format!("log = {paths}"),
        "Nomad keeps stdout and stderr apart in the allocation directory: read them with `nomad alloc logs [-stderr] ALLOC TASK`",
    ));
}

fn rotation(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    const MIB: u64 = 1 << 20;
    task.logs = Logs {
        max_files: d.logs.log_keep.max(1),
        max_file_size_mb: d.logs.log_max_size.0.div_ceil(MIB).max(1),
    };
    if d.logs.log_max_size.0 == 0 {
        task.logs.max_file_size_mb = 10;
        task.lost.push(Lost::new(
            "log_max_size = 0",
            "Nomad always rotates: at 10 MB here",
        ));
    } else if !d.logs.log_max_size.0.is_multiple_of(MIB) {
        task.lost.push(Lost::new(
            format!("log_max_size = {:?}", d.logs.log_max_size.to_string()),
            "Nomad sizes logs in whole MB: rounded up",
        ));
    }
    if d.logs.log_keep == 0 {
        task.lost.push(Lost::new(
            "log_keep = 0",
            "Nomad keeps at least one rotated file",
        ));
    }
}

fn log_timestamps(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    if d.logs.log_timestamps {
        task.lost.push(Lost::new(
            "log_timestamps = true",
            "Nomad writes the output as is, without a time on each line",
        ));
    }
}

fn autostart(d: &Daemon, _: &Source, placement: &Placement, task: &mut Task) {
    task.autostart = d.autostart;
    if !d.autostart && !placement.autostart.is_empty() {
        let others: Vec<&str> = placement.autostart.iter().map(String::as_str).collect();
        task.lost.push(Lost::new(
            "autostart = false",
            format!(
                "Nomad runs every task of a group, and this group runs for {}",
                others.join(", ")
            ),
        ));
    }
}

fn restart(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    task.restart = Restart {
        attempts: d.supervision.max_restarts,
        delay: d.supervision.restart_delay,
        interval: super::restart_window(d),
        mode: "fail",
    };
    match d.supervision.restart {
        RestartPolicy::No => task.restart.attempts = 0,
        RestartPolicy::OnFailure => task.lost.push(Lost::new(
            "restart = \"on-failure\"",
            "Nomad restarts a service task after exit 0 too",
        )),
        RestartPolicy::Always => {}
    }
    task.lost.extend(super::backoff_lost(
        d,
        "Nomad waits delay each time (plus up to 25% jitter)",
    ));
}

fn start_wait(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    if !d.supervision.start_wait.is_zero() {
        task.lost.push(Lost::new(
            format!("start_wait = {}", format_duration(d.supervision.start_wait)),
            "Nomad counts the task running once it is started",
        ));
    }
}

fn ready(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    let Some(check) = &d.supervision.ready else {
        return;
    };
    match check {
        ReadyCheck::Tcp(_) | ReadyCheck::Http(_) => {
            service_check(d, check, CHECK_INTERVAL, CHECK_TIMEOUT, task)
        }
        ReadyCheck::File(file) => task.lost.push(Lost::new(
            format!("ready = {{ file = {:?} }}", file.display().to_string()),
            "Nomad's checks are tcp and http only",
        )),
        ReadyCheck::Exec(argv) => task.lost.push(Lost::new(
            format!("ready = {{ exec = {argv:?} }}"),
            "Nomad's own service checks are tcp and http only (script checks need Consul)",
        )),
        ReadyCheck::Log(pattern) => task.lost.push(Lost::new(
            format!("ready = {{ log = {pattern:?} }}"),
            "Nomad does not read the task's output for readiness",
        )),
        ReadyCheck::Fd(fd) => task.lost.push(Lost::new(
            format!("ready = {{ fd = {fd} }}"),
            "Nomad passes no readiness descriptor: the daemon's write to it fails",
        )),
    }
    task.lost.push(Lost::new(
        format!(
            "ready_timeout = {}",
            format_duration(d.supervision.ready_timeout)
        ),
        "Nomad starts nothing after the check passes and gives up on nothing when it does not",
    ));
}

/// A `service` with one tcp or http check for `check` (`ready` or `health`); the
/// service of an earlier check of the same daemon gets this one too.
fn service_check(
    d: &Daemon,
    check: &ReadyCheck,
    interval: std::time::Duration,
    timeout: std::time::Duration,
    task: &mut Task,
) {
    let (address, kind, path) = match check {
        ReadyCheck::Http(url) => match crate::config::url::HttpUrl::parse(url) {
            Ok(url) => (url.address(), "http", Some(url.path)),
            Err(_) => return,
        },
        ReadyCheck::Tcp(address) => (address.clone(), "tcp", None),
        _ => return,
    };
    let (host, port) = split_address(&address);
    let label = port_label(&d.name);
    let check = Check {
        kind,
        path,
        interval,
        timeout,
    };
    if let Some(at) = task.ports.iter().position(|p| p.label == label) {
        // `ready` made the service: the same port gets this check too; another port
        // would need a second label, and the check is left as a comment.
        if task.ports[at].value == port {
            if let Some(service) = task.services.iter_mut().find(|s| s.port == label) {
                service.checks.push(check);
            }
        } else {
            task.lost.push(Lost::new(
                format!("health on port {port}"),
                "the service already checks the port of `ready`; one service, one port",
            ));
        }
        return;
    }
    task.ports.push(Port {
        label: label.clone(),
        value: port,
    });
    task.services.push(Service {
        name: service_name(&d.name),
        port: label,
        address: (!matches!(host.as_str(), "" | "0.0.0.0" | "::" | "*")).then_some(host),
        checks: vec![check],
    });
}

fn memory_max(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    let Some(max) = d.supervision.memory_max else {
        return;
    };
    const MIB: u64 = 1 << 20;
    let written = max.0.div_ceil(MIB);
    // Nomad's rules: memory at least its minimum, memory_max at least memory.
    let limit = written.max(MIN_MEMORY_MB);
    task.resources.memory_mb = DEFAULT_MEMORY_MB.min(limit);
    task.resources.memory_max_mb = Some(limit);
    task.resources.note = Some(format!(
        "memory_max = \"{max}\": dmgr restarts {} over it; Nomad reserves memory and kills the task over memory_max where the cluster has memory oversubscription on, else over memory",
        d.name
    ));
    if limit != written {
        task.lost.push(Lost::new(
            format!("memory_max = \"{max}\""),
            format!("Nomad asks for at least {MIN_MEMORY_MB} MB: memory_max is {MIN_MEMORY_MB}"),
        ));
    }
    task.lost.push(Lost::new(
        format!("memory_max = \"{max}\""),
        "Nomad enforces resources.memory_max as a hard limit (with memory oversubscription on), where dmgr restarts the daemon in order",
    ));
}

fn notify(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    if let Some(period) = d.process.watchdog {
        task.lost.push(Lost::new(
            format!("watchdog = {}", format_duration(period)),
            "Nomad has no watchdog: a daemon that hangs without exiting is not restarted",
        ));
    }
}

fn health(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    let Some(check) = &d.supervision.health else {
        return;
    };
    match check {
        ReadyCheck::Tcp(_) | ReadyCheck::Http(_) => service_check(
            d,
            check,
            d.supervision.health_interval,
            d.supervision.health_timeout,
            task,
        ),
        _ => task.lost.push(Lost::new(
            "health = { exec = ... }",
            "Nomad's own service checks are tcp and http only (script checks need Consul)",
        )),
    }
}

fn stop(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    task.kill_signal = format!("SIG{}", d.supervision.stop_signal.name());
    task.kill_timeout = d.supervision.stop_timeout.min(MAX_KILL_TIMEOUT);
    // Nomad's executor signals the task's own process, then kills the process tree
    // once it has exited or at kill_timeout (drivers/shared/executor, Shutdown):
    // kill_mode = "mixed".
    if d.supervision.kill_mode == KillMode::Group {
        task.lost.push(Lost::new(
            "kill_mode = \"group\"",
            "Nomad sends kill_signal to the task's own process alone, and SIGKILLs the rest once it has exited (kill_mode = \"mixed\"), where dmgr signals every process of the daemon",
        ));
    }
    if d.supervision.stop_timeout > MAX_KILL_TIMEOUT {
        task.lost.push(Lost::new(
            format!(
                "stop_timeout = {}",
                format_duration(d.supervision.stop_timeout)
            ),
            format!(
                "kill_timeout is the Nomad client's max_kill_timeout ({}s), which cuts a longer one: raise max_kill_timeout in the client's config, then kill_timeout here",
                MAX_KILL_TIMEOUT.as_secs()
            ),
        ));
    }
}

fn reload(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    let lost = match &d.supervision.reload_command {
        Some(argv) => Lost::new(
            format!("reload_command = {argv:?}"),
            format!(
                "Nomad has no reload command: run it with `nomad alloc exec -task {} ALLOC ...`",
                d.name
            ),
        ),
        None => Lost::new(
            format!("reload_signal = {:?}", d.supervision.reload_signal.name()),
            format!(
                "send it with `nomad alloc signal -s SIG{} ALLOC {}`",
                d.supervision.reload_signal.name(),
                d.name
            ),
        ),
    };
    task.lost.push(lost);
}

fn stop_command(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    if let Some(argv) = &d.supervision.stop_command {
        task.lost.push(Lost::new(
            format!("stop_command = {argv:?}"),
            "Nomad stops a task only with kill_signal, then SIGKILL after kill_timeout",
        ));
    }
}

fn after(d: &Daemon, _: &Source, placement: &Placement, task: &mut Task) {
    task.sidecar = placement.sidecars.contains(&d.name);
    for dep in &d.after {
        if !placement.members.contains(dep) {
            task.lost.push(Lost::new(
                format!("after = {dep:?}"),
                format!("{dep} is not in this job: nothing orders them"),
            ));
        } else if task.sidecar || !placement.sidecars.contains(dep) {
            task.lost.push(Lost::new(
                format!("after = {dep:?}"),
                format!("Nomad starts {dep} together with this task: only prestart sidecars start before the others"),
            ));
        }
    }
}

/// `host:port` split; a port that does not parse is 0 (validation made it parse).
fn split_address(address: &str) -> (String, u16) {
    let (host, port) = address.rsplit_once(':').unwrap_or((address, "0"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host.to_string(), port.parse().unwrap_or(0))
}

/// A daemon name as a Nomad service name: letters, digits and `-`, at most 63.
fn service_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "dmgr".to_string()
    } else {
        trimmed.to_string()
    }
}

/// A daemon name as a port label: letters, digits and `_`.
fn port_label(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

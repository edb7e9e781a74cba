//! A Nomad job from daemons: a group and a `raw_exec` task per daemon, where daemons
//! joined by `after` share one group (Nomad orders tasks only within a group: the
//! daemons others wait for become prestart sidecars). [`MAPPINGS`] turns each key of a
//! daemon file into fields of a [`Task`]; [`Job::to_hcl`] and [`Job::to_json`] write the
//! same job as HCL (through hcl-rs, which also formats and escapes it) and as the HTTP
//! API's JSON (`{"Job": {...}}`, durations in nanoseconds).
//!
//! Nomad's own traps are written down, not left to defaults: `kill_signal` is always
//! written (Nomad's default is SIGINT), and so is `resources.memory` (raw_exec enforces a
//! 300 MB default since Nomad 1.7).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hcl::edit::Decorate;
use serde_json::{json, Value};

use super::{format_duration, one_line, Lost, Source};
use crate::config::{Daemon, DaemonType, ReadyCheck, RestartPolicy};

/// What `resources.memory` is when no key sets it: Nomad's own default, written out
/// so that the limit raw_exec enforces is visible in the job.
pub const DEFAULT_MEMORY_MB: u64 = 300;

/// The longest `kill_timeout` a Nomad client allows unless its `max_kill_timeout` is
/// raised.
pub const MAX_KILL_TIMEOUT: Duration = Duration::from_secs(30);

/// How often and how long a service check probes a `ready` address.
const CHECK_INTERVAL: Duration = Duration::from_secs(10);
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One Nomad job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The job's name and ID.
    pub name: String,
    /// The config directory the daemons came from (for the header comment).
    pub config_dir: String,
    /// The task groups, sorted by name.
    pub groups: Vec<Group>,
}

/// A task group: one daemon, or the daemons joined by `after`.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The group's name: its first daemon's.
    pub name: String,
    /// 1, or 0 when no daemon of the group is `autostart`.
    pub count: u32,
    /// Whether a failed allocation stays failed instead of moving to another node
    /// (every task has `restart = "no"`).
    pub no_reschedule: bool,
    /// Static ports the group's checks use.
    pub ports: Vec<Port>,
    /// The tasks, in start order.
    pub tasks: Vec<Task>,
}

/// A `raw_exec` task: one daemon.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Task {
    /// The daemon's name.
    pub name: String,
    /// `config.command`: the absolute program.
    pub command: String,
    /// `config.args`.
    pub args: Vec<String>,
    /// `config.work_dir`.
    pub work_dir: Option<String>,
    /// `env`.
    pub env: BTreeMap<String, String>,
    /// `user`.
    pub user: Option<String>,
    /// `meta`.
    pub meta: BTreeMap<String, String>,
    /// `kill_signal`, as Nomad spells it (`SIGTERM`).
    pub kill_signal: String,
    /// `kill_timeout`.
    pub kill_timeout: Duration,
    /// `lifecycle { hook = "prestart", sidecar = true }`.
    pub sidecar: bool,
    /// `restart`.
    pub restart: Restart,
    /// `logs`.
    pub logs: Logs,
    /// `resources`.
    pub resources: Resources,
    /// `service` blocks.
    pub services: Vec<Service>,
    /// Static ports this task's checks need, gathered into the group's `network`.
    pub ports: Vec<Port>,
    /// Whether the daemon is `autostart` (the group's `count` follows its tasks).
    pub autostart: bool,
    /// What Nomad cannot express, written as comments above the task.
    pub lost: Vec<Lost>,
}

/// The `restart` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Restart {
    /// Restarts allowed within `interval`.
    pub attempts: u32,
    /// The wait before each restart.
    pub delay: Duration,
    /// The window in which `attempts` are counted.
    pub interval: Duration,
    /// `"fail"`: past `attempts`, the task fails.
    pub mode: &'static str,
}

/// The `logs` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Logs {
    /// Rotated files kept.
    pub max_files: u32,
    /// Size at which a file rotates, in MB (Nomad's unit: MiB).
    pub max_file_size_mb: u64,
}

/// The `resources` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resources {
    /// `memory`: the reservation, and the limit raw_exec enforces.
    pub memory_mb: u64,
    /// `memory_max`: the hard limit where memory oversubscription is on.
    pub memory_max_mb: Option<u64>,
    /// A comment written above the block.
    pub note: Option<String>,
}

/// A `service` block registered with Nomad's own service discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The service name (RFC 1123: letters, digits and `-`).
    pub name: String,
    /// The label of the group's port it runs on.
    pub port: String,
    /// The address to advertise and check, when not the node's.
    pub address: Option<String>,
    /// Its checks.
    pub checks: Vec<Check>,
}

/// A service `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `"tcp"` or `"http"`.
    pub kind: &'static str,
    /// The HTTP path, for `"http"`.
    pub path: Option<String>,
    /// How often it runs.
    pub interval: Duration,
    /// How long one probe may take.
    pub timeout: Duration,
}

/// A static port of a group's `network` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// The label services refer to it by.
    pub label: String,
    /// The port number.
    pub value: u16,
}

/// Where a daemon lands in the job: what the mapping of `after` and `autostart` needs
/// to know about the rest of its group.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// Every daemon of the group.
    pub members: BTreeSet<String>,
    /// The group's prestart sidecars: daemons others in the group start after.
    pub sidecars: BTreeSet<String>,
    /// The autostart daemons of the group.
    pub autostart: BTreeSet<String>,
}

/// How one key, or a group of keys that map together, becomes this target's output.
pub type Mapping = super::Mapping<fn(&Daemon, &Source, &Placement, &mut Task)>;

/// Every key of a daemon file and how it becomes task fields. A key added to the
/// daemon file gets an entry here; `every_key_has_a_mapping` fails until it does.
pub const MAPPINGS: &[Mapping] = &[
    Mapping {
        keys: &["command"],
        map: command,
    },
    Mapping {
        keys: &["description"],
        map: description,
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
        keys: &["type", "pidfile"],
        map: kind_and_pidfile,
    },
    Mapping {
        keys: &["log", "stderr_log"],
        map: log_paths,
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
        keys: &["reload_signal", "reload_command"],
        map: reload,
    },
    Mapping {
        keys: &["stop_command"],
        map: stop_command,
    },
    Mapping {
        keys: &["after"],
        map: after,
    },
];

/// Builds the job `name` from `daemons`.
pub fn job(name: &str, daemons: &[&Daemon], source: &Source) -> Job {
    let mut groups: Vec<Group> = plan(daemons)
        .into_iter()
        .map(|(members, placement)| {
            let tasks: Vec<Task> = members
                .iter()
                .map(|daemon| task(daemon, source, &placement))
                .collect();
            let mut ports: Vec<Port> = Vec::new();
            for port in tasks.iter().flat_map(|t| t.ports.iter()) {
                if !ports
                    .iter()
                    .any(|p| p.value == port.value || p.label == port.label)
                {
                    ports.push(port.clone());
                }
            }
            Group {
                name: members[0].name.clone(),
                count: u32::from(!placement.autostart.is_empty()),
                no_reschedule: members
                    .iter()
                    .all(|d| d.supervision.restart == RestartPolicy::No),
                ports,
                tasks,
            }
        })
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Job {
        name: name.to_string(),
        config_dir: source.dirs.config_dir.display().to_string(),
        groups,
    }
}

/// One daemon's task, every key mapped.
pub fn task(daemon: &Daemon, source: &Source, placement: &Placement) -> Task {
    let mut task = Task {
        name: daemon.name.clone(),
        resources: Resources {
            memory_mb: DEFAULT_MEMORY_MB,
            memory_max_mb: None,
            note: Some(format!(
                "dmgr sets no memory limit, but raw_exec enforces this one (Nomad's default): set what {} needs",
                daemon.name
            )),
        },
        ..Task::default()
    };
    for mapping in MAPPINGS {
        (mapping.map)(daemon, source, placement, &mut task);
    }
    task
}

/// The groups: daemons joined by `after` (either way, within `daemons`) share one, in
/// start order; each comes with its placement.
fn plan<'a>(daemons: &[&'a Daemon]) -> Vec<(Vec<&'a Daemon>, Placement)> {
    let names: BTreeSet<&str> = daemons.iter().map(|d| d.name.as_str()).collect();
    let mut component: BTreeMap<&str, usize> = BTreeMap::new();
    let mut next = 0;
    for d in daemons {
        let linked: Vec<&str> = std::iter::once(d.name.as_str())
            .chain(
                d.after
                    .iter()
                    .map(String::as_str)
                    .filter(|a| names.contains(a)),
            )
            .collect();
        let ids: BTreeSet<usize> = linked
            .iter()
            .filter_map(|n| component.get(n).copied())
            .collect();
        let id = ids.iter().next().copied().unwrap_or_else(|| {
            next += 1;
            next
        });
        // Merge every component this daemon touches into one.
        for value in component.values_mut() {
            if ids.contains(value) {
                *value = id;
            }
        }
        for n in linked {
            component.insert(n, id);
        }
    }
    let mut by_id: BTreeMap<usize, Vec<&'a Daemon>> = BTreeMap::new();
    for d in daemons {
        by_id.entry(component[d.name.as_str()]).or_default().push(d);
    }
    by_id
        .into_values()
        .map(|members| {
            let ordered: Vec<&'a Daemon> = crate::config::start_order(&members)
                .into_iter()
                .flatten()
                .collect();
            let member_names: BTreeSet<String> = ordered.iter().map(|d| d.name.clone()).collect();
            let depended_on: BTreeSet<&str> = ordered
                .iter()
                .flat_map(|d| d.after.iter().map(String::as_str))
                .collect();
            let sidecars = ordered
                .iter()
                .filter(|d| {
                    depended_on.contains(d.name.as_str())
                        && !d.after.iter().any(|a| member_names.contains(a))
                })
                .map(|d| d.name.clone())
                .collect();
            let autostart = ordered
                .iter()
                .filter(|d| d.autostart)
                .map(|d| d.name.clone())
                .collect();
            let placement = Placement {
                members: member_names,
                sidecars,
                autostart,
            };
            (ordered, placement)
        })
        .collect()
}

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

fn umask(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    if d.process.umask != 0o022 {
        task.lost.push(Lost::new(
            format!("umask = \"{:04o}\"", d.process.umask),
            "Nomad has no umask setting: the task inherits the Nomad client's",
        ));
    }
}

fn env_file(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    for file in &d.process.env_file {
        task.lost.push(Lost::new(
            format!("env_file = {:?}", file.as_written()),
            "a raw_exec task reads no environment file: copy its variables into env, or add a template block with env = true",
        ));
    }
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

fn kind_and_pidfile(d: &Daemon, source: &Source, _: &Placement, task: &mut Task) {
    if d.kind == DaemonType::Forking {
        task.lost.push(Lost::new(
            "type = \"forking\"",
            "Nomad supervises the command's own process and sees a daemonizing command exit: run the program in the foreground (nginx -g 'daemon off;', redis-server --daemonize no)",
        ));
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
        ReadyCheck::Tcp(address) => {
            let (host, port) = split_address(address);
            let label = port_label(&d.name);
            task.ports.push(Port {
                label: label.clone(),
                value: port,
            });
            task.services.push(Service {
                name: service_name(&d.name),
                port: label,
                address: (!matches!(host.as_str(), "" | "0.0.0.0" | "::" | "*")).then_some(host),
                checks: vec![Check {
                    kind: "tcp",
                    path: None,
                    interval: CHECK_INTERVAL,
                    timeout: CHECK_TIMEOUT,
                }],
            });
        }
        ReadyCheck::File(file) => task.lost.push(Lost::new(
            format!("ready = {{ file = {:?} }}", file.display().to_string()),
            "Nomad's checks are tcp and http only",
        )),
        ReadyCheck::Exec(argv) => task.lost.push(Lost::new(
            format!("ready = {{ exec = {argv:?} }}"),
            "Nomad's own service checks are tcp and http only (script checks need Consul)",
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

fn stop(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    task.kill_signal = format!("SIG{}", d.supervision.stop_signal.name());
    task.kill_timeout = d.supervision.stop_timeout;
    if d.supervision.stop_timeout > MAX_KILL_TIMEOUT {
        task.lost.push(Lost::new(
            format!(
                "stop_timeout = {}",
                format_duration(d.supervision.stop_timeout)
            ),
            format!(
                "a Nomad client cuts kill_timeout to its max_kill_timeout ({}s unless raised)",
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

impl Job {
    /// The job as HCL, formatted by hcl-rs, with what Nomad cannot express as comments
    /// above each task.
    pub fn to_hcl(&self) -> String {
        let body = hcl::Body::builder().add_block(self.hcl_block()).build();
        let mut formatter = hcl::format::Formatter::builder()
            .compact_arrays(true)
            .build_vec();
        let formatted = match hcl::format::Format::format(&body, &mut formatter) {
            Ok(()) => String::from_utf8(formatter.into_inner()).unwrap_or_default(),
            Err(_) => hcl::to_string(&body).unwrap_or_default(),
        };
        // hcl-rs writes no comments; its lossless twin hcl-edit keeps each item's
        // leading whitespace, so the comments go there, at the item's indentation.
        let Ok(mut edit) = hcl::edit::parser::parse_body(&formatted) else {
            return formatted;
        };
        let header = vec![
            format!(
                "Written by `dmgr export nomad` (dmgr {}) from {}.",
                env!("CARGO_PKG_VERSION"),
                self.config_dir
            ),
            "Run it with `nomad job run`; the clients need the raw_exec driver enabled.".into(),
        ];
        let Some(job) = edit.get_blocks_mut("job").next() else {
            return formatted;
        };
        prepend_comments(job.decor_mut(), &header);
        for (group, group_block) in self.groups.iter().zip(job.body.get_blocks_mut("group")) {
            for (task, task_block) in group
                .tasks
                .iter()
                .zip(group_block.body.get_blocks_mut("task"))
            {
                if let Some(note) = &task.resources.note {
                    if let Some(resources) = task_block.body.get_blocks_mut("resources").next() {
                        prepend_comments(resources.decor_mut(), std::slice::from_ref(note));
                    }
                }
                if !task.lost.is_empty() {
                    let mut lines = vec!["What Nomad does not do as dmgr did:".to_string()];
                    lines.extend(task.lost.iter().map(|l| format!("- {}", l.line())));
                    prepend_comments(task_block.decor_mut(), &lines);
                }
            }
        }
        edit.to_string()
    }

    fn hcl_block(&self) -> hcl::Block {
        let mut job = hcl::Block::builder("job")
            .add_label(self.name.as_str())
            .add_attribute(("type", "service"))
            .add_attribute(("datacenters", vec!["*"]));
        for group in &self.groups {
            job = job.add_block(group.hcl_block());
        }
        job.build()
    }

    /// The job as the HTTP API's JSON: `{"Job": {...}}`, keys as the API spells them,
    /// durations in nanoseconds. JSON holds no comments: [`Job::lost`] has them.
    pub fn to_json(&self) -> Value {
        let groups: Vec<Value> = self.groups.iter().map(Group::to_json).collect();
        json!({
            "Job": {
                "ID": self.name,
                "Name": self.name,
                "Type": "service",
                "Datacenters": ["*"],
                "TaskGroups": groups,
            }
        })
    }

    /// Every task's notes, as `(task, note)`.
    pub fn lost(&self) -> Vec<(&str, &Lost)> {
        self.groups
            .iter()
            .flat_map(|g| g.tasks.iter())
            .flat_map(|t| t.lost.iter().map(move |l| (t.name.as_str(), l)))
            .collect()
    }
}

impl Group {
    fn hcl_block(&self) -> hcl::Block {
        let mut group = hcl::Block::builder("group")
            .add_label(self.name.as_str())
            .add_attribute(("count", self.count));
        if !self.ports.is_empty() {
            let mut network = hcl::Block::builder("network");
            for port in &self.ports {
                network = network.add_block(
                    hcl::Block::builder("port")
                        .add_label(port.label.as_str())
                        .add_attribute(("static", port.value))
                        .build(),
                );
            }
            group = group.add_block(network.build());
        }
        if self.no_reschedule {
            group = group.add_block(
                hcl::Block::builder("reschedule")
                    .add_attribute(("attempts", 0))
                    .add_attribute(("unlimited", false))
                    .build(),
            );
        }
        for task in &self.tasks {
            group = group.add_block(task.hcl_block());
        }
        group.build()
    }

    fn to_json(&self) -> Value {
        let mut group = json!({
            "Name": self.name,
            "Count": self.count,
            "Tasks": self.tasks.iter().map(Task::to_json).collect::<Vec<_>>(),
        });
        if !self.ports.is_empty() {
            let ports: Vec<Value> = self
                .ports
                .iter()
                .map(|p| json!({"Label": p.label, "Value": p.value}))
                .collect();
            group["Networks"] = json!([{ "ReservedPorts": ports }]);
        }
        if self.no_reschedule {
            group["ReschedulePolicy"] = json!({"Attempts": 0, "Unlimited": false});
        }
        group
    }
}

impl Task {
    fn hcl_block(&self) -> hcl::Block {
        let mut config = hcl::Block::builder("config")
            .add_attribute(("command", self.command.as_str()))
            .add_attribute(("args", self.args.clone()));
        if let Some(dir) = &self.work_dir {
            config = config.add_attribute(("work_dir", dir.as_str()));
        }
        let mut task = hcl::Block::builder("task")
            .add_label(self.name.as_str())
            .add_attribute(("driver", "raw_exec"));
        if let Some(user) = &self.user {
            task = task.add_attribute(("user", user.as_str()));
        }
        task = task
            .add_attribute(("kill_signal", self.kill_signal.as_str()))
            .add_attribute(("kill_timeout", format_duration(self.kill_timeout)))
            .add_block(config.build());
        if !self.env.is_empty() {
            task = task.add_structure(map_structure("env", &self.env));
        }
        if !self.meta.is_empty() {
            task = task.add_structure(map_structure("meta", &self.meta));
        }
        if self.sidecar {
            task = task.add_block(
                hcl::Block::builder("lifecycle")
                    .add_attribute(("hook", "prestart"))
                    .add_attribute(("sidecar", true))
                    .build(),
            );
        }
        task = task
            .add_block(
                hcl::Block::builder("restart")
                    .add_attribute(("attempts", self.restart.attempts))
                    .add_attribute(("delay", format_duration(self.restart.delay)))
                    .add_attribute(("interval", format_duration(self.restart.interval)))
                    .add_attribute(("mode", self.restart.mode))
                    .build(),
            )
            .add_block(
                hcl::Block::builder("logs")
                    .add_attribute(("max_files", self.logs.max_files))
                    .add_attribute(("max_file_size", self.logs.max_file_size_mb))
                    .build(),
            );
        let mut resources =
            hcl::Block::builder("resources").add_attribute(("memory", self.resources.memory_mb));
        if let Some(max) = self.resources.memory_max_mb {
            resources = resources.add_attribute(("memory_max", max));
        }
        task = task.add_block(resources.build());
        for service in &self.services {
            let mut block = hcl::Block::builder("service")
                .add_attribute(("name", service.name.as_str()))
                .add_attribute(("provider", "nomad"))
                .add_attribute(("port", service.port.as_str()));
            if let Some(address) = &service.address {
                block = block.add_attribute(("address", address.as_str()));
            }
            for check in &service.checks {
                let mut check_block = hcl::Block::builder("check")
                    .add_attribute(("type", check.kind))
                    .add_attribute(("interval", format_duration(check.interval)))
                    .add_attribute(("timeout", format_duration(check.timeout)));
                if let Some(path) = &check.path {
                    check_block = check_block.add_attribute(("path", path.as_str()));
                }
                block = block.add_block(check_block.build());
            }
            task = task.add_block(block.build());
        }
        task.build()
    }

    fn to_json(&self) -> Value {
        let mut config = json!({"command": self.command, "args": self.args});
        if let Some(dir) = &self.work_dir {
            config["work_dir"] = json!(dir);
        }
        let mut resources = json!({"MemoryMB": self.resources.memory_mb});
        if let Some(max) = self.resources.memory_max_mb {
            resources["MemoryMaxMB"] = json!(max);
        }
        let mut task = json!({
            "Name": self.name,
            "Driver": "raw_exec",
            "Config": config,
            "KillSignal": self.kill_signal,
            "KillTimeout": nanos(self.kill_timeout),
            "RestartPolicy": {
                "Attempts": self.restart.attempts,
                "Delay": nanos(self.restart.delay),
                "Interval": nanos(self.restart.interval),
                "Mode": self.restart.mode,
            },
            "LogConfig": {
                "MaxFiles": self.logs.max_files,
                "MaxFileSizeMB": self.logs.max_file_size_mb,
            },
            "Resources": resources,
        });
        if let Some(user) = &self.user {
            task["User"] = json!(user);
        }
        if !self.env.is_empty() {
            task["Env"] = json!(self.env);
        }
        if !self.meta.is_empty() {
            task["Meta"] = json!(self.meta);
        }
        if self.sidecar {
            task["Lifecycle"] = json!({"Hook": "prestart", "Sidecar": true});
        }
        if !self.services.is_empty() {
            let services: Vec<Value> = self
                .services
                .iter()
                .map(|s| {
                    let checks: Vec<Value> = s
                        .checks
                        .iter()
                        .map(|c| {
                            let mut check = json!({
                                "Type": c.kind,
                                "Interval": nanos(c.interval),
                                "Timeout": nanos(c.timeout),
                            });
                            if let Some(path) = &c.path {
                                check["Path"] = json!(path);
                            }
                            check
                        })
                        .collect();
                    let mut service = json!({
                        "Name": s.name,
                        "Provider": "nomad",
                        "PortLabel": s.port,
                        "Checks": checks,
                    });
                    if let Some(address) = &s.address {
                        service["Address"] = json!(address);
                    }
                    service
                })
                .collect();
            task["Services"] = json!(services);
        }
        task
    }
}

/// `NAME { KEY = "VALUE" ... }` when every key is an HCL identifier, else the map
/// form `NAME = { "KEY" = "VALUE" }`, which Nomad reads the same and which can hold
/// any key.
fn map_structure(name: &str, map: &BTreeMap<String, String>) -> hcl::Structure {
    let identifiers: Option<Vec<hcl::Identifier>> = map
        .keys()
        .map(|k| hcl::Identifier::new(k.as_str()).ok())
        .collect();
    match identifiers {
        Some(keys) => {
            let mut block = hcl::Block::builder(name);
            for (key, value) in keys.into_iter().zip(map.values()) {
                block = block.add_attribute(hcl::Attribute::new(key, value.as_str()));
            }
            hcl::Structure::Block(block.build())
        }
        None => {
            let object: hcl::Object<hcl::ObjectKey, hcl::Expression> = map
                .iter()
                .map(|(k, v)| {
                    (
                        hcl::ObjectKey::Expression(hcl::Expression::String(k.clone())),
                        hcl::Expression::String(v.clone()),
                    )
                })
                .collect();
            hcl::Structure::Attribute(hcl::Attribute::new(name, hcl::Expression::Object(object)))
        }
    }
}

/// Adds `# LINE` comments before an item, at the indentation of its line.
fn prepend_comments(decor: &mut hcl::edit::Decor, lines: &[String]) {
    let before = decor.prefix().map(|p| p.to_string()).unwrap_or_default();
    let indent = before.rsplit('\n').next().unwrap_or("").to_string();
    let mut prefix = before;
    for line in lines {
        prefix.push_str(&format!("# {}\n{indent}", one_line(line)));
    }
    decor.set_prefix(prefix);
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::Files;
    use super::*;

    /// The job parsed back from its HCL with hcl-rs.
    fn parsed(job: &Job) -> hcl::Body {
        let text = job.to_hcl();
        hcl::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// The body of the block `ident "label"` (or the first `ident` block) in `body`.
    #[track_caller]
    fn block<'a>(body: &'a hcl::Body, ident: &str, label: Option<&str>) -> &'a hcl::Body {
        body.blocks()
            .find(|b| {
                b.identifier() == ident
                    && label.is_none_or(|l| b.labels().first().map(|x| x.as_str()) == Some(l))
            })
            .map(|b| b.body())
            .unwrap_or_else(|| panic!("no block {ident} {label:?} in {body:?}"))
    }

    #[track_caller]
    fn attr(body: &hcl::Body, key: &str) -> hcl::Value {
        body.attributes()
            .find(|a| a.key() == key)
            .map(|a| hcl::Value::from(a.expr().clone()))
            .unwrap_or_else(|| panic!("no attribute {key} in {body:?}"))
    }

    fn task_of<'a>(body: &'a hcl::Body, group: &str, task: &str) -> &'a hcl::Body {
        let job = block(body, "job", None);
        block(block(job, "group", Some(group)), "task", Some(task))
    }

    #[test]
    fn every_key_has_a_mapping() {
        super::super::check_coverage(MAPPINGS, "src/export/nomad.rs").unwrap();
    }

    #[test]
    fn a_task_maps_field_by_field_in_hcl_and_json() {
        let files = Files::new();
        let d = files.daemon(
            "web.api",
            r#"
command = ["/bin/sh", "-c", "echo \"$HOME\" ${HOME} %{x} back\\slash", "two words"]
description = "the web server"
working_dir = "/srv/web"
env = { PORT = "8080", MODE = "prod" }
user = "www-data"
group = "adm"
umask = "0027"
log = "/var/log/web.log"
stderr_log = "/var/log/web.err"
log_max_size = "3MiB"
log_keep = 4
log_timestamps = true
restart = "always"
restart_delay = "2s"
max_restarts = 4
start_wait = "250ms"
ready = { tcp = "127.0.0.1:8080" }
ready_timeout = "7s"
stop_signal = "INT"
stop_timeout = "45s"
reload_signal = "USR2"
type = "forking"
pidfile = "/run/web.pid"
"#,
        );
        let job = job("site", &[&d], &files.source());
        let body = parsed(&job);
        let top = block(&body, "job", Some("site"));
        assert_eq!(attr(top, "type"), hcl::Value::from("service"));
        let group = block(top, "group", Some("web.api"));
        assert_eq!(attr(group, "count"), hcl::Value::from(1));
        let port = block(block(group, "network", None), "port", Some("web_api"));
        assert_eq!(attr(port, "static"), hcl::Value::from(8080));
        let task = task_of(&body, "web.api", "web.api");
        assert_eq!(attr(task, "driver"), hcl::Value::from("raw_exec"));
        assert_eq!(attr(task, "user"), hcl::Value::from("www-data"));
        assert_eq!(attr(task, "kill_signal"), hcl::Value::from("SIGINT"));
        assert_eq!(attr(task, "kill_timeout"), hcl::Value::from("45s"));
        let config = block(task, "config", None);
        assert_eq!(attr(config, "command"), hcl::Value::from("/bin/sh"));
        let args: Vec<hcl::Value> = d.process.command[1..]
            .iter()
            .map(|a| hcl::Value::from(a.as_str()))
            .collect();
        assert_eq!(attr(config, "args"), hcl::Value::from(args));
        assert_eq!(attr(config, "work_dir"), hcl::Value::from("/srv/web"));
        let env = block(task, "env", None);
        assert_eq!(attr(env, "PORT"), hcl::Value::from("8080"));
        assert_eq!(attr(env, "MODE"), hcl::Value::from("prod"));
        assert_eq!(
            attr(block(task, "meta", None), "description"),
            hcl::Value::from("the web server")
        );
        let restart = block(task, "restart", None);
        assert_eq!(attr(restart, "attempts"), hcl::Value::from(4));
        assert_eq!(attr(restart, "delay"), hcl::Value::from("2s"));
        assert_eq!(attr(restart, "interval"), hcl::Value::from("330s"));
        assert_eq!(attr(restart, "mode"), hcl::Value::from("fail"));
        let logs = block(task, "logs", None);
        assert_eq!(attr(logs, "max_files"), hcl::Value::from(4));
        assert_eq!(attr(logs, "max_file_size"), hcl::Value::from(3));
        assert_eq!(
            attr(block(task, "resources", None), "memory"),
            hcl::Value::from(300)
        );
        let service = block(task, "service", None);
        assert_eq!(attr(service, "name"), hcl::Value::from("web-api"));
        assert_eq!(attr(service, "provider"), hcl::Value::from("nomad"));
        assert_eq!(attr(service, "port"), hcl::Value::from("web_api"));
        assert_eq!(attr(service, "address"), hcl::Value::from("127.0.0.1"));
        let check = block(service, "check", None);
        assert_eq!(attr(check, "type"), hcl::Value::from("tcp"));
        assert_eq!(attr(check, "interval"), hcl::Value::from("10s"));
        assert_eq!(attr(check, "timeout"), hcl::Value::from("2s"));
        assert!(task.blocks().all(|b| b.identifier() != "lifecycle"));

        let text = job.to_hcl();
        for note in [
            "# - group = \"adm\": Nomad has no group setting",
            "# - umask = \"0027\": Nomad has no umask setting",
            "# - clear_env = false:",
            "# - log = /var/log/web.log, stderr_log = /var/log/web.err: Nomad keeps stdout and stderr apart",
            "# - log_timestamps = true:",
            "# - restart_delay: dmgr doubles the delay",
            "# - start_wait = 250ms:",
            "# - ready_timeout = 7s:",
            "# - stop_timeout = 45s: a Nomad client cuts kill_timeout to its max_kill_timeout",
            "# - reload_signal = \"USR2\": send it with `nomad alloc signal -s SIGUSR2 ALLOC web.api`",
            "# - type = \"forking\": Nomad supervises the command's own process",
            "# - pidfile = \"/run/web.pid\": Nomad uses no pidfile",
            "# - command: Nomad replaces ${...}",
            "# dmgr sets no memory limit, but raw_exec enforces this one",
        ] {
            assert!(text.contains(note), "{note} not in:\n{text}");
        }

        let json = job.to_json();
        let j = &json["Job"];
        assert_eq!(
            (j["ID"].as_str(), j["Name"].as_str(), j["Type"].as_str()),
            (Some("site"), Some("site"), Some("service"))
        );
        let g = &j["TaskGroups"][0];
        assert_eq!(g["Name"], "web.api");
        assert_eq!(g["Count"], 1);
        assert_eq!(
            g["Networks"][0]["ReservedPorts"][0],
            json!({"Label": "web_api", "Value": 8080})
        );
        let t = &g["Tasks"][0];
        assert_eq!(t["Name"], "web.api");
        assert_eq!(t["Driver"], "raw_exec");
        assert_eq!(t["User"], "www-data");
        assert_eq!(t["Config"]["command"], "/bin/sh");
        assert_eq!(t["Config"]["args"], json!(d.process.command[1..]));
        assert_eq!(t["Config"]["work_dir"], "/srv/web");
        assert_eq!(t["Env"], json!({"PORT": "8080", "MODE": "prod"}));
        assert_eq!(t["Meta"], json!({"description": "the web server"}));
        assert_eq!(t["KillSignal"], "SIGINT");
        assert_eq!(t["KillTimeout"], 45_000_000_000_u64);
        assert_eq!(
            t["RestartPolicy"],
            json!({"Attempts": 4, "Delay": 2_000_000_000_u64, "Interval": 330_000_000_000_u64, "Mode": "fail"})
        );
        assert_eq!(t["LogConfig"], json!({"MaxFiles": 4, "MaxFileSizeMB": 3}));
        assert_eq!(t["Resources"], json!({"MemoryMB": 300}));
        assert_eq!(
            t["Services"],
            json!([{
                "Name": "web-api", "Provider": "nomad", "PortLabel": "web_api", "Address": "127.0.0.1",
                "Checks": [{"Type": "tcp", "Interval": 10_000_000_000_u64, "Timeout": 2_000_000_000_u64}]
            }])
        );
        assert!(t.get("Lifecycle").is_none() && g.get("ReschedulePolicy").is_none());
    }

    #[test]
    fn strings_survive_hcl_escaping() {
        let files = Files::new();
        let odd = [
            "${HOME}",
            "%{if x}",
            "$${x}",
            "say \"hi\"",
            "back\\slash",
            "new\nline",
            "tab\t",
            "ünïcode",
        ];
        let mut text = String::from("command = [\"/bin/echo\"");
        for arg in odd {
            text.push_str(&format!(", {}", toml::Value::from(arg)));
        }
        text.push_str("]\nenv = { MY_VAR = \"a ${b}\", X2 = \"y\" }\n");
        let d = files.daemon("odd", &text);
        let job = job("dmgr", &[&d], &files.source());
        let body = parsed(&job);
        let task = task_of(&body, "odd", "odd");
        let args: Vec<hcl::Value> = odd.iter().map(|a| hcl::Value::from(*a)).collect();
        assert_eq!(
            attr(block(task, "config", None), "args"),
            hcl::Value::from(args)
        );
        let env = block(task, "env", None);
        assert_eq!(attr(env, "MY_VAR"), hcl::Value::from("a ${b}"));
        assert_eq!(attr(env, "X2"), hcl::Value::from("y"));
        assert!(job.to_hcl().contains("# - env: Nomad replaces ${...}"));
    }

    #[test]
    fn restart_no_fails_and_stays_failed() {
        let files = Files::new();
        let d = files.daemon(
            "once",
            "command = \"/bin/true\"\nrestart = \"no\"\nautostart = false\n",
        );
        let job = job("dmgr", &[&d], &files.source());
        let body = parsed(&job);
        let group = block(block(&body, "job", None), "group", Some("once"));
        assert_eq!(attr(group, "count"), hcl::Value::from(0));
        let reschedule = block(group, "reschedule", None);
        assert_eq!(attr(reschedule, "attempts"), hcl::Value::from(0));
        assert_eq!(attr(reschedule, "unlimited"), hcl::Value::from(false));
        let restart = block(task_of(&body, "once", "once"), "restart", None);
        assert_eq!(attr(restart, "attempts"), hcl::Value::from(0));
        assert_eq!(attr(restart, "mode"), hcl::Value::from("fail"));
        let json = job.to_json();
        assert_eq!(
            json["Job"]["TaskGroups"][0]["ReschedulePolicy"],
            json!({"Attempts": 0, "Unlimited": false})
        );
        assert_eq!(json["Job"]["TaskGroups"][0]["Count"], 0);
        assert!(!job.to_hcl().contains("restart_delay: dmgr doubles"));
    }

    #[test]
    fn after_becomes_a_prestart_sidecar_within_one_group() {
        let files = Files::new();
        let db = files.daemon("db", "command = \"/bin/true\"\n");
        let web = files.daemon("web", "command = \"/bin/true\"\nafter = [\"db\"]\n");
        let worker = files.daemon("worker", "command = \"/bin/true\"\nafter = [\"web\"]\n");
        let solo = files.daemon(
            "solo",
            "command = \"/bin/true\"\nafter = [\"elsewhere\"]\nautostart = false\n",
        );
        let other = files.daemon("other", "command = \"/bin/true\"\n");
        let job = job(
            "dmgr",
            &[&db, &web, &worker, &solo, &other],
            &files.source(),
        );
        let names: Vec<(&str, Vec<&str>)> = job
            .groups
            .iter()
            .map(|g| {
                (
                    g.name.as_str(),
                    g.tasks.iter().map(|t| t.name.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("db", vec!["db", "web", "worker"]),
                ("other", vec!["other"]),
                ("solo", vec!["solo"])
            ]
        );
        let body = parsed(&job);
        let lifecycle = block(task_of(&body, "db", "db"), "lifecycle", None);
        assert_eq!(attr(lifecycle, "hook"), hcl::Value::from("prestart"));
        assert_eq!(attr(lifecycle, "sidecar"), hcl::Value::from(true));
        for main in ["web", "worker"] {
            assert!(task_of(&body, "db", main)
                .blocks()
                .all(|b| b.identifier() != "lifecycle"));
        }
        let text = job.to_hcl();
        assert!(!text.contains("after = \"db\""), "{text}");
        assert!(text.contains("# - after = \"web\": Nomad starts web together with this task"));
        assert!(text.contains("# - after = \"elsewhere\": elsewhere is not in this job"));
        let json = job.to_json();
        assert_eq!(
            json["Job"]["TaskGroups"][0]["Tasks"][0]["Lifecycle"],
            json!({"Hook": "prestart", "Sidecar": true})
        );
        // A group runs when one of its daemons is autostart; solo alone is not.
        assert_eq!(json["Job"]["TaskGroups"][2]["Count"], 0);
    }

    #[test]
    fn ready_checks_nomad_cannot_run_are_comments() {
        let files = Files::new();
        let d = files.daemon(
            "f",
            "command = \"/bin/true\"\nready = { file = \"/tmp/ready\" }\n",
        );
        let e = files.daemon(
            "e",
            "command = \"/bin/true\"\nready = { exec = [\"/bin/true\"] }\n",
        );
        let any = files.daemon(
            "any",
            "command = \"/bin/true\"\nready = { tcp = \"0.0.0.0:9000\" }\n",
        );
        let job = job("dmgr", &[&d, &e, &any], &files.source());
        let text = job.to_hcl();
        assert!(text.contains(
            "# - ready = { file = \"/tmp/ready\" }: Nomad's checks are tcp and http only"
        ));
        assert!(text.contains("# - ready = { exec = [\"/bin/true\"] }:"));
        let body = parsed(&job);
        let service = block(task_of(&body, "any", "any"), "service", None);
        assert!(service.attributes().all(|a| a.key() != "address"));
        assert!(task_of(&body, "f", "f")
            .blocks()
            .all(|b| b.identifier() != "service"));
    }
}

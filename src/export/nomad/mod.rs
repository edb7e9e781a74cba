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

mod as_hcl;
mod as_json;
mod jobs;
mod mappings;
pub(crate) mod rules;
mod template;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

// The mappings call these as `super::NAME`, as when they lived in this file.
use super::{backoff_lost, program, restart_window, written_pidfile};
use super::{Lost, Source};
use crate::config::{Daemon, RestartPolicy};

pub(crate) use jobs::jobs;
pub(crate) use mappings::MAPPINGS;

/// What `resources.memory` is when no key sets it: Nomad's own default, written out
/// so that the limit raw_exec enforces is visible in the job.
pub(crate) const DEFAULT_MEMORY_MB: u64 = 300;

/// How often and how long a service check probes a `ready` address.
const CHECK_INTERVAL: Duration = Duration::from_secs(10);
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One Nomad job.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Job {
    /// The job's name and ID.
    pub name: String,
    /// The config directory the daemons came from (for the header comment).
    pub config_dir: String,
    /// The task groups, sorted by name.
    pub groups: Vec<Group>,
    /// `periodic`, for the batch job of a daemon with `schedule`; `None` for a
    /// service job.
    pub periodic: Option<Periodic>,
}

/// The `periodic` block of a batch job: a daemon's `schedule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Periodic {
    /// `crons`: the five fields.
    pub crons: Vec<String>,
    /// `time_zone`: the host's, as dmgr reads the schedule in it.
    pub time_zone: String,
}

impl Job {
    /// `type`: `batch` for a periodic job, else `service`.
    pub(crate) fn kind(&self) -> &'static str {
        match self.periodic {
            Some(_) => "batch",
            None => "service",
        }
    }
}

/// A task group: one daemon, or the daemons joined by `after`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Group {
    /// The group's name: its first daemon's.
    pub name: String,
    /// 1, or 0 when no daemon of the group is `autostart`.
    pub count: u32,
    /// Whether a failed allocation stays failed instead of moving to another node
    /// (every task has `restart = "no"`).
    pub no_reschedule: bool,
    /// Static ports the group's checks use.
    pub ports: Vec<Port>,
    /// `ephemeral_disk.size` in MB, where Nomad's default is too small for the
    /// tasks' logs (see [`rules::disk_for`]).
    pub ephemeral_disk_mb: Option<u64>,
    /// The tasks, in start order.
    pub tasks: Vec<Task>,
}

/// A `raw_exec` task: one daemon.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Task {
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
    /// `lifecycle { hook = HOOK }` of a task that runs to completion (a oneshot
    /// before others, a `pre_start` or `post_stop` hook): `prestart` or `poststop`.
    pub hook: Option<&'static str>,
    /// `restart`.
    pub restart: Restart,
    /// `logs`.
    pub logs: Logs,
    /// `resources`.
    pub resources: Resources,
    /// `service` blocks.
    pub services: Vec<Service>,
    /// `template` blocks.
    pub templates: Vec<Template>,
    /// Static ports this task's checks need, gathered into the group's `network`.
    pub ports: Vec<Port>,
    /// Whether the daemon is `autostart` (the group's `count` follows its tasks).
    pub autostart: bool,
    /// What Nomad cannot express, written as comments above the task.
    pub lost: Vec<Lost>,
}

/// The `restart` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Restart {
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
pub(crate) struct Logs {
    /// Rotated files kept.
    pub max_files: u32,
    /// Size at which a file rotates, in MB (Nomad's unit: MiB).
    pub max_file_size_mb: u64,
}

/// The `resources` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Resources {
    /// `memory`: the reservation, and the limit raw_exec enforces.
    pub memory_mb: u64,
    /// `memory_max`: the hard limit where memory oversubscription is on.
    pub memory_max_mb: Option<u64>,
    /// A comment written above the block.
    pub note: Option<String>,
}

/// A `template` block whose text is written into the job (`data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    /// The template's text (Go template syntax).
    pub data: String,
    /// Where it is rendered, relative to the task directory.
    pub destination: String,
    /// Whether the rendered file is read into the task's environment.
    pub env: bool,
}

/// A `service` block registered with Nomad's own service discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Service {
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
pub(crate) struct Check {
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
pub(crate) struct Port {
    /// The label services refer to it by.
    pub label: String,
    /// The port number.
    pub value: u16,
}

/// Where a daemon lands in the job: what the mapping of `after` and `autostart` needs
/// to know about the rest of its group.
#[derive(Debug, Clone, Default)]
pub(crate) struct Placement {
    /// Every daemon of the group.
    pub members: BTreeSet<String>,
    /// The group's prestart sidecars: daemons others in the group start after.
    pub sidecars: BTreeSet<String>,
    /// The autostart daemons of the group.
    pub autostart: BTreeSet<String>,
}

/// How one key, or a group of keys that map together, becomes this target's output.
pub(crate) type Mapping = super::Mapping<fn(&Daemon, &Source, &Placement, &mut Task)>;

/// Builds the job `name` from `daemons`.
pub(crate) fn job(name: &str, daemons: &[&Daemon], source: &Source) -> Job {
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
            let copies = members[0].instance.as_ref().map_or(1, |i| i.count);
            let mut tasks = tasks;
            jobs::add_hook_tasks(&members, source, &mut tasks);
            Group {
                name: members[0].name.clone(),
                // The copies of a daemon with `instances` are the group's count.
                count: copies * u32::from(!placement.autostart.is_empty()),
                no_reschedule: members
                    .iter()
                    .all(|d| d.supervision.restart == RestartPolicy::No),
                ports,
                ephemeral_disk_mb: rules::disk_for(&tasks),
                tasks,
            }
        })
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Job {
        name: name.to_string(),
        config_dir: source.dirs.config_dir.display().to_string(),
        groups,
        periodic: None,
    }
}

/// One daemon's task, every key mapped.
pub(crate) fn task(daemon: &Daemon, source: &Source, placement: &Placement) -> Task {
    let mut task = Task {
        name: daemon.name.clone(),
        resources: Resources {
            memory_mb: DEFAULT_MEMORY_MB,
            memory_max_mb: None,
            note: Some(format!(
                "dmgr sets no memory limit (no memory_max), but raw_exec enforces this one (Nomad's default): set what {} needs",
                daemon.name
            )),
        },
        ..Task::default()
    };
    for mapping in MAPPINGS {
        (mapping.map)(daemon, source, placement, &mut task);
    }
    if task.name == "alloc" {
        // Nomad names the shared allocation directory `alloc` (Task.Validate).
        task.name = "alloc-daemon".into();
        task.lost.push(Lost::new(
            "name",
            "Nomad refuses a task named alloc: the task is alloc-daemon",
        ));
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
        // A daemon with `instances` is a group of its own (its copies are its
        // count), never joined to others by `after`.
        let is_set = |name: &str| {
            daemons
                .iter()
                .any(|x| x.name == name && x.instance.is_some())
        };
        let linked: Vec<&str> = std::iter::once(d.name.as_str())
            .chain(
                d.after
                    .iter()
                    .map(String::as_str)
                    .filter(|a| names.contains(a) && d.instance.is_none() && !is_set(a)),
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

impl Job {
    /// Every task's notes, as `(task, note)`.
    pub(crate) fn lost(&self) -> Vec<(&str, &Lost)> {
        self.groups
            .iter()
            .flat_map(|g| g.tasks.iter())
            .flat_map(|t| t.lost.iter().map(move |l| (t.name.as_str(), l)))
            .collect()
    }
}

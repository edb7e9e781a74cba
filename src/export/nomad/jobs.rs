//! Copies, oneshots, schedules, hooks in Nomad: `instances` as the group's `count` (the copies
//! of one file are one group, `{instance}` as `${NOMAD_ALLOC_INDEX}`); `schedule` as
//! a periodic batch job of its own; a oneshot others start after as a prestart task
//! that runs to completion; `pre_start` and `post_stop` as prestart and poststop
//! tasks beside the daemon's.

use super::super::{Lost, Source};
use super::{job, Job, Periodic, Placement, Task};
use crate::config::{Daemon, DaemonType, PLACEHOLDER};

/// Nomad's number of a copy, from 0 where dmgr's count from 1.
const ALLOC_INDEX: &str = "${NOMAD_ALLOC_INDEX}";

/// The jobs for `daemons`: the service job `name` with every daemon but the scheduled
/// ones, and one periodic batch job `NAME-DAEMON` per daemon with `schedule`.
pub(crate) fn jobs(name: &str, daemons: &[&Daemon], source: &Source) -> Vec<Job> {
    let collapsed = collapse(daemons, source);
    let (scheduled, services): (Vec<&Daemon>, Vec<&Daemon>) = collapsed
        .iter()
        .partition(|d| d.supervision.schedule.is_some());
    let mut out = Vec::new();
    if !services.is_empty() || scheduled.is_empty() {
        out.push(job(name, &services, source));
    }
    for d in scheduled {
        let mut periodic = job(&format!("{name}-{}", d.name), &[d], source);
        periodic.periodic = d.supervision.schedule.as_ref().map(|cron| Periodic {
            crons: vec![cron.five_fields()],
            time_zone: host_time_zone(),
        });
        out.push(periodic);
    }
    out
}

/// The host's time zone as Nomad names it (an IANA name), as dmgr reads a schedule in
/// it; UTC where the host has no name for its zone.
fn host_time_zone() -> String {
    jiff::tz::TimeZone::system()
        .iana_name()
        .unwrap_or("UTC")
        .to_string()
}

/// The copies of each daemon with `instances` as one daemon, its file's definition
/// (`{instance}` as written), carrying the count.
fn collapse(daemons: &[&Daemon], source: &Source) -> Vec<Daemon> {
    let mut out: Vec<Daemon> = Vec::new();
    for d in daemons {
        let Some(instance) = &d.instance else {
            out.push((*d).clone());
            continue;
        };
        if out.iter().any(|o| o.name == instance.base) {
            continue;
        }
        let mut set =
            crate::config::load_file(&source.dirs, &d.file).unwrap_or_else(|_| (*d).clone());
        set.name = instance.base.clone();
        set.instance = Some(instance.clone());
        out.push(set);
    }
    out
}

/// `instances`: the copies' number in `{instance}` and `DMGR_INSTANCE`, as Nomad's
/// allocation index.
pub(super) fn instances(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    let Some(instance) = &d.instance else {
        return;
    };
    for arg in &mut task.args {
        *arg = arg.replace(PLACEHOLDER, ALLOC_INDEX);
    }
    for value in task.env.values_mut() {
        *value = value.replace(PLACEHOLDER, ALLOC_INDEX);
    }
    task.env.insert("DMGR_INSTANCE".into(), ALLOC_INDEX.into());
    task.env
        .insert("DMGR_INSTANCES".into(), instance.count.to_string());
    task.lost.push(Lost::new(
        format!("instances = {}", instance.count),
        "the group's count: Nomad numbers the copies from 0 in NOMAD_ALLOC_INDEX, which {instance} and DMGR_INSTANCE become, where dmgr numbers them from 1",
    ));
}

/// `type = "oneshot"`: before the tasks of its group that start after it, a prestart
/// task that runs to completion.
pub(super) fn oneshot(d: &Daemon, _: &Source, placement: &Placement, task: &mut Task) {
    if d.kind != DaemonType::Oneshot || d.supervision.schedule.is_some() {
        return;
    }
    if placement.sidecars.contains(&d.name) {
        task.sidecar = false;
        task.hook = Some("prestart");
    } else {
        task.lost.push(Lost::new(
            "type = \"oneshot\"",
            "in a service job Nomad runs the command again once it exits; run it alone as a batch job (type = \"batch\")",
        ));
    }
}

/// `schedule`, `catch_up`, `restart_schedule`, and the hooks Nomad has no task for.
pub(super) fn notes(d: &Daemon, _: &Source, _: &Placement, task: &mut Task) {
    let s = &d.supervision;
    if s.catch_up {
        task.lost.push(Lost::new(
            "catch_up = true",
            "Nomad's periodic jobs launch no time missed while the cluster was down",
        ));
    }
    if let Some(cron) = &s.restart_schedule {
        task.lost.push(Lost::new(
            format!("restart_schedule = {:?}", cron.as_str()),
            "Nomad restarts no task at set times: a periodic job running `nomad alloc restart` can",
        ));
    }
    if s.on_failure.is_some() {
        task.lost.push(Lost::new(
            "on_failure",
            "Nomad runs no command when a task fails; its event stream reports it",
        ));
    }
    if s.pre_start.is_some() || s.post_stop.is_some() {
        task.lost.push(Lost::new(
            "hook_timeout",
            "Nomad bounds no prestart or poststop task in time",
        ));
    }
}

/// Adds a prestart task per `pre_start` and a poststop task per `post_stop` of the
/// group's daemons, each a copy of its daemon's task (user, directory, environment)
/// running the hook.
pub(super) fn add_hook_tasks(members: &[&Daemon], source: &Source, tasks: &mut Vec<Task>) {
    let mut added = Vec::new();
    for (d, task) in members.iter().zip(tasks.iter()) {
        let s = &d.supervision;
        for (argv, key, hook, suffix) in [
            (&s.pre_start, "pre_start", "prestart", "pre-start"),
            (&s.post_stop, "post_stop", "poststop", "post-stop"),
        ] {
            let Some(argv) = argv else {
                continue;
            };
            let (program, lost) = super::super::resolve(&argv[0], key, d, source);
            let mut hook_task = task.clone();
            hook_task.name = format!("{}-{suffix}", task.name);
            hook_task.command = program.display().to_string();
            hook_task.args = argv[1..].to_vec();
            hook_task.sidecar = false;
            hook_task.hook = Some(hook);
            hook_task.services.clear();
            hook_task.ports.clear();
            hook_task.restart.attempts = 0;
            hook_task.lost = lost.into_iter().collect();
            hook_task.env.insert("DMGR_NAME".into(), d.name.clone());
            added.push(hook_task);
        }
    }
    tasks.extend(added);
}

#[cfg(test)]
mod tests {
    use super::super::super::tests_support::Files;
    use super::*;

    fn load(files: &Files, name: &str, text: &str) -> crate::config::Loaded {
        std::fs::write(files.dirs.config_dir.join(format!("{name}.toml")), text).unwrap();
        crate::config::load(&files.dirs).unwrap()
    }

    /// The copies of a daemon with `instances` are one group, its count.
    #[test]
    fn instances_are_the_groups_count() {
        let files = Files::new();
        let loaded = load(
            &files,
            "worker",
            "command = [\"/bin/work\", \"--id\", \"{instance}\"]\ninstances = 3\n",
        );
        let all: Vec<&Daemon> = loaded.daemons.iter().collect();
        let jobs = jobs("dmgr", &all, &files.source());
        assert_eq!(jobs.len(), 1);
        let group = &jobs[0].groups[0];
        assert_eq!((group.name.as_str(), group.count), ("worker", 3));
        assert_eq!(group.tasks.len(), 1);
        assert_eq!(group.tasks[0].args, ["--id", "${NOMAD_ALLOC_INDEX}"]);
        assert_eq!(group.tasks[0].env["DMGR_INSTANCES"], "3");
        assert!(super::super::rules::violations(&jobs[0]).is_empty());
    }

    /// A scheduled daemon is a periodic batch job of its own.
    #[test]
    fn a_schedule_is_a_periodic_batch_job() {
        let files = Files::new();
        let web = files.daemon("web", "command = \"/bin/true\"\n");
        let backup = files.daemon(
            "backup",
            "command = \"/bin/true\"\ntype = \"oneshot\"\nschedule = \"@daily\"\n",
        );
        let jobs = jobs("site", &[&web, &backup], &files.source());
        assert_eq!(jobs.len(), 2);
        assert_eq!((jobs[0].name.as_str(), jobs[0].kind()), ("site", "service"));
        assert_eq!(jobs[0].groups.len(), 1);
        assert_eq!(
            (jobs[1].name.as_str(), jobs[1].kind()),
            ("site-backup", "batch")
        );
        let periodic = jobs[1].periodic.as_ref().unwrap();
        assert_eq!(periodic.crons, ["0 0 * * *"]);
        let hcl = jobs[1].to_hcl();
        assert!(hcl.contains("prohibit_overlap = true"), "{hcl}");
        assert_eq!(
            jobs[1].to_json()["Job"]["Periodic"]["Specs"][0],
            "0 0 * * *"
        );
    }

    /// A oneshot others start after runs to completion first (a prestart task, not a
    /// sidecar); `pre_start` and `post_stop` are prestart and poststop tasks.
    #[test]
    fn oneshots_and_hooks_are_lifecycle_tasks() {
        let files = Files::new();
        let migrate = files.daemon("migrate", "command = \"/bin/true\"\ntype = \"oneshot\"\n");
        let web = files.daemon(
            "web",
            "command = \"/bin/true\"\nafter = [\"migrate\"]\npre_start = [\"/bin/echo\", \"pre\"]\npost_stop = [\"/bin/echo\", \"post\"]\n",
        );
        let jobs = jobs("site", &[&migrate, &web], &files.source());
        let tasks = &jobs[0].groups[0].tasks;
        let find = |name: &str| tasks.iter().find(|t| t.name == name).unwrap();
        assert_eq!(
            (find("migrate").hook, find("migrate").sidecar),
            (Some("prestart"), false)
        );
        assert_eq!(find("web-pre-start").hook, Some("prestart"));
        assert_eq!(find("web-pre-start").args, ["pre"]);
        assert_eq!(find("web-post-stop").hook, Some("poststop"));
        assert_eq!(find("web").hook, None);
        let json = jobs[0].to_json();
        let lifecycles: Vec<&serde_json::Value> = json["Job"]["TaskGroups"][0]["Tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| &t["Lifecycle"])
            .collect();
        assert!(lifecycles.iter().any(|l| l["Hook"] == "poststop"));
    }
}

//! Nomad's own validation rules for what `export nomad` writes, in one place: each
//! [`Rule`] says what Nomad checks, where in Nomad's source it is checked, and finds
//! where a [`Job`] breaks it. The mappings write values that keep to these rules (a
//! limit raised to Nomad's minimum, a disk made large enough for the logs), and
//! `commands::export` refuses to write a job that breaks one, so a user never gets a
//! job that `nomad job run` rejects. Read from hashicorp/nomad's `main` branch
//! (`nomad/structs/structs.go`, `command/agent/config.go`); the constants below are
//! Nomad's defaults from those files.

use std::time::Duration;

use super::{Job, Task};

/// `MinResources().MemoryMB`: the smallest `resources.memory` a task may ask for.
pub(crate) const MIN_MEMORY_MB: u64 = 10;
/// `DefaultEphemeralDisk().SizeMB`: a group's disk when it sets none.
pub(crate) const DEFAULT_DISK_MB: u64 = 300;
/// `RestartPolicyMinInterval`: the shortest `restart.interval`.
pub(crate) const MIN_RESTART_INTERVAL: Duration = Duration::from_secs(5);
/// `DefaultUpdateStrategy.ProgressDeadline`: a service job's `kill_timeout` may not be
/// longer than its group's `update.progress_deadline`.
pub(crate) const PROGRESS_DEADLINE: Duration = Duration::from_secs(600);
/// The client's `max_kill_timeout` (`command/agent/config.go`, `DefaultConfig`): a
/// longer `kill_timeout` is cut to it when the task is stopped.
pub(crate) const MAX_KILL_TIMEOUT: Duration = Duration::from_secs(30);

/// One rule of Nomad's that an exported job keeps to.
pub(crate) struct Rule {
    /// What Nomad requires, in words.
    pub what: &'static str,
    /// Where Nomad checks it: file and function in hashicorp/nomad.
    pub source: &'static str,
    /// Where `job` breaks it, one message each (empty when it keeps to it).
    pub check: fn(&Job) -> Vec<String>,
}

/// Every rule an exported job keeps to.
pub(crate) const RULES: &[Rule] = &[
    Rule {
        what: "the job ID has no space",
        source: "nomad/structs/structs.go, Job.Validate",
        check: job_id,
    },
    Rule {
        what: "a task is not named `alloc` and has no `/` or `\\` in its name",
        source: "nomad/structs/structs.go, Task.Validate",
        check: task_names,
    },
    Rule {
        what: "resources.memory is at least 10 MB",
        source: "nomad/structs/structs.go, Resources.MeetsMinResources",
        check: memory_minimum,
    },
    Rule {
        what: "resources.memory_max, where set, is at least resources.memory",
        source: "nomad/structs/structs.go, Resources.Validate",
        check: memory_max,
    },
    Rule {
        what: "restart.mode is \"delay\" or \"fail\", and \"fail\" when attempts is 0",
        source: "nomad/structs/structs.go, RestartPolicy.Validate",
        check: restart_mode,
    },
    Rule {
        what: "restart.interval is at least 5s and holds attempts times delay",
        source: "nomad/structs/structs.go, RestartPolicy.Validate",
        check: restart_interval,
    },
    Rule {
        what: "kill_timeout is at most the group's update.progress_deadline (10m) and the client's max_kill_timeout (30s)",
        source: "nomad/structs/structs.go, Task.Validate; command/agent/config.go, max_kill_timeout",
        check: kill_timeout,
    },
    Rule {
        what: "logs keep at least 1 file of at least 1 MB, and max_files times max_file_size is less than the group's ephemeral_disk",
        source: "nomad/structs/structs.go, LogConfig.Validate",
        check: log_storage,
    },
    Rule {
        what: "a template has data and a destination inside the task directory, and no two share a destination",
        source: "nomad/structs/structs.go, Template.Validate and Task.Validate",
        check: templates,
    },
];

/// Every rule `job` breaks, as `rule: where` lines.
pub(crate) fn violations(job: &Job) -> Vec<String> {
    RULES
        .iter()
        .flat_map(|rule| {
            (rule.check)(job)
                .into_iter()
                .map(move |at| format!("{} ({}): {at}", rule.what, rule.source))
        })
        .collect()
}

/// Every task of `job`.
fn tasks(job: &Job) -> impl Iterator<Item = &Task> {
    job.groups.iter().flat_map(|g| g.tasks.iter())
}

/// One message per task for which `broken` says why.
fn per_task(job: &Job, broken: impl Fn(&Task) -> Option<String>) -> Vec<String> {
    tasks(job)
        .filter_map(|t| broken(t).map(|why| format!("task {}: {why}", t.name)))
        .collect()
}

fn job_id(job: &Job) -> Vec<String> {
    if job.name.contains(' ') || job.name.is_empty() || job.name.contains('\0') {
        vec![format!("job {:?}", job.name)]
    } else {
        Vec::new()
    }
}

fn task_names(job: &Job) -> Vec<String> {
    per_task(job, |t| {
        (t.name == "alloc" || t.name.contains(['/', '\\', '\0'])).then(|| "its name".to_string())
    })
}

fn memory_minimum(job: &Job) -> Vec<String> {
    per_task(job, |t| {
        (t.resources.memory_mb < MIN_MEMORY_MB)
            .then(|| format!("memory = {}", t.resources.memory_mb))
    })
}

fn memory_max(job: &Job) -> Vec<String> {
    per_task(job, |t| {
        let max = t.resources.memory_max_mb?;
        (max < t.resources.memory_mb)
            .then(|| format!("memory = {}, memory_max = {max}", t.resources.memory_mb))
    })
}

fn restart_mode(job: &Job) -> Vec<String> {
    per_task(job, |t| {
        let r = &t.restart;
        let bad = !matches!(r.mode, "delay" | "fail") || (r.attempts == 0 && r.mode != "fail");
        bad.then(|| format!("mode = {:?}, attempts = {}", r.mode, r.attempts))
    })
}

fn restart_interval(job: &Job) -> Vec<String> {
    per_task(job, |t| {
        let r = &t.restart;
        let needed = r.delay.saturating_mul(r.attempts);
        (r.interval < MIN_RESTART_INTERVAL || needed > r.interval).then(|| {
            format!(
                "interval = {:?}, attempts = {}, delay = {:?}",
                r.interval, r.attempts, r.delay
            )
        })
    })
}

fn kill_timeout(job: &Job) -> Vec<String> {
    per_task(job, |t| {
        (t.kill_timeout > PROGRESS_DEADLINE.min(MAX_KILL_TIMEOUT))
            .then(|| format!("kill_timeout = {:?}", t.kill_timeout))
    })
}

fn log_storage(job: &Job) -> Vec<String> {
    job.groups
        .iter()
        .flat_map(|g| {
            let disk = g.ephemeral_disk_mb.unwrap_or(DEFAULT_DISK_MB);
            g.tasks.iter().filter_map(move |t| {
                let usage = u64::from(t.logs.max_files).saturating_mul(t.logs.max_file_size_mb);
                let bad = t.logs.max_files < 1 || t.logs.max_file_size_mb < 1 || usage >= disk;
                bad.then(|| {
                    format!(
                        "task {}: {} files of {} MB, ephemeral_disk {disk} MB",
                        t.name, t.logs.max_files, t.logs.max_file_size_mb
                    )
                })
            })
        })
        .collect()
}

fn templates(job: &Job) -> Vec<String> {
    per_task(job, |t| {
        let mut seen = std::collections::BTreeSet::new();
        t.templates.iter().find_map(|tmpl| {
            let path = std::path::Path::new(&tmpl.destination);
            let escapes = path.is_absolute()
                || path
                    .components()
                    .any(|c| c == std::path::Component::ParentDir);
            let bad = tmpl.data.is_empty()
                || tmpl.destination.is_empty()
                || escapes
                || !seen.insert(tmpl.destination.clone());
            bad.then(|| format!("template to {:?}", tmpl.destination))
        })
    })
}

/// The disk a group needs for its tasks' logs: Nomad's default, or more where a
/// task's `max_files` times `max_file_size` would not fit in it.
pub(crate) fn disk_for(tasks: &[Task]) -> Option<u64> {
    let most = tasks
        .iter()
        .map(|t| u64::from(t.logs.max_files).saturating_mul(t.logs.max_file_size_mb))
        .max()?;
    // The logs' room plus the default's worth for everything else in the task dir.
    (most >= DEFAULT_DISK_MB).then(|| most.saturating_add(DEFAULT_DISK_MB))
}

#[cfg(test)]
mod tests {
    use super::super::super::tests_support::Files;
    use super::super::{job, Template};
    use super::*;

    /// The job of one daemon `web` written as `text`.
    fn exported(text: &str) -> Job {
        let files = Files::new();
        let d = files.daemon("web", text);
        job("dmgr", &[&d], &files.source())
    }

    /// The messages of the rule whose check is `check`.
    fn broken(job: &Job, check: fn(&Job) -> Vec<String>) -> Vec<String> {
        let rule = RULES
            .iter()
            .find(|r| r.check as usize == check as usize)
            .expect("a rule with this check");
        (rule.check)(job)
    }

    #[test]
    fn every_rule_names_nomads_source() {
        for rule in RULES {
            assert!(
                rule.source.starts_with("nomad/structs/structs.go")
                    || rule.source.starts_with("command/"),
                "{}",
                rule.what
            );
        }
        let plain = exported("command = \"/bin/true\"\n");
        assert_eq!(violations(&plain), Vec::<String>::new());
    }

    #[test]
    fn a_job_id_with_a_space_breaks_job_validate() {
        let mut j = exported("command = \"/bin/true\"\n");
        assert!(broken(&j, job_id).is_empty());
        j.name = "my job".into();
        assert_eq!(broken(&j, job_id), ["job \"my job\""]);
    }

    #[test]
    fn a_task_named_alloc_is_renamed() {
        let files = Files::new();
        let d = files.daemon("alloc", "command = \"/bin/true\"\n");
        let mut j = job("dmgr", &[&d], &files.source());
        assert!(broken(&j, task_names).is_empty());
        assert_eq!(j.groups[0].tasks[0].name, "alloc-daemon");
        assert!(j.groups[0].tasks[0].lost.iter().any(|l| l.key == "name"));
        j.groups[0].tasks[0].name = "alloc".into();
        assert_eq!(broken(&j, task_names), ["task alloc: its name"]);
    }

    /// The case of issue 24: `memory_max = "64MiB"` wrote memory = 300, memory_max = 64,
    /// which Nomad rejects; and a ceiling under Nomad's minimum is raised to it.
    #[test]
    fn memory_max_is_never_below_memory_nor_memory_below_the_minimum() {
        let j = exported("command = \"/bin/true\"\nmemory_max = \"64MiB\"\n");
        let r = &j.groups[0].tasks[0].resources;
        assert_eq!((r.memory_mb, r.memory_max_mb), (64, Some(64)));
        assert!(broken(&j, memory_max).is_empty() && broken(&j, memory_minimum).is_empty());
        let j = exported("command = \"/bin/true\"\nmemory_max = \"1GiB\"\n");
        let r = &j.groups[0].tasks[0].resources;
        assert_eq!((r.memory_mb, r.memory_max_mb), (300, Some(1024)));
        let mut j = exported("command = \"/bin/true\"\nmemory_max = \"4MiB\"\n");
        let t = &j.groups[0].tasks[0];
        assert_eq!(
            (t.resources.memory_mb, t.resources.memory_max_mb),
            (10, Some(10))
        );
        assert!(
            t.lost.iter().any(|l| l.what.contains("at least 10 MB")),
            "{:?}",
            t.lost
        );
        assert!(broken(&j, memory_minimum).is_empty());

        let r = &mut j.groups[0].tasks[0].resources;
        (r.memory_mb, r.memory_max_mb) = (300, Some(64));
        assert_eq!(
            broken(&j, memory_max),
            ["task web: memory = 300, memory_max = 64"]
        );
        j.groups[0].tasks[0].resources.memory_mb = 5;
        assert_eq!(broken(&j, memory_minimum), ["task web: memory = 5"]);
    }

    #[test]
    fn restart_attempts_fit_their_interval_and_zero_attempts_fail() {
        for text in [
            "command = \"/bin/true\"\nrestart = \"no\"\n",
            "command = \"/bin/true\"\nmax_restarts = 0\n",
            "command = \"/bin/true\"\nmax_restarts = 1000\nrestart_delay = \"10m\"\n",
        ] {
            let j = exported(text);
            assert!(broken(&j, restart_mode).is_empty(), "{text}");
            assert!(broken(&j, restart_interval).is_empty(), "{text}");
        }
        let mut j = exported("command = \"/bin/true\"\n");
        j.groups[0].tasks[0].restart.mode = "delay";
        j.groups[0].tasks[0].restart.attempts = 0;
        assert_eq!(broken(&j, restart_mode).len(), 1);
        j.groups[0].tasks[0].restart.mode = "backoff";
        j.groups[0].tasks[0].restart.attempts = 3;
        assert_eq!(broken(&j, restart_mode).len(), 1);
        let r = &mut j.groups[0].tasks[0].restart;
        (r.attempts, r.delay, r.interval) = (3, Duration::from_secs(10), Duration::from_secs(20));
        assert_eq!(broken(&j, restart_interval).len(), 1);
        let r = &mut j.groups[0].tasks[0].restart;
        (r.attempts, r.interval) = (0, Duration::from_secs(4));
        assert_eq!(broken(&j, restart_interval).len(), 1);
    }

    #[test]
    fn kill_timeout_is_cut_to_max_kill_timeout_with_a_note() {
        let j = exported("command = \"/bin/true\"\nstop_timeout = \"2m\"\n");
        let t = &j.groups[0].tasks[0];
        assert_eq!(t.kill_timeout, MAX_KILL_TIMEOUT);
        assert!(
            t.lost.iter().any(|l| l.key == "stop_timeout = 120s"),
            "{:?}",
            t.lost
        );
        assert!(broken(&j, kill_timeout).is_empty());
        let mut j = exported("command = \"/bin/true\"\n");
        j.groups[0].tasks[0].kill_timeout = Duration::from_secs(31);
        assert_eq!(broken(&j, kill_timeout), ["task web: kill_timeout = 31s"]);
    }

    #[test]
    fn logs_that_outgrow_the_default_disk_get_a_larger_one() {
        let j = exported("command = \"/bin/true\"\nlog_keep = 50\nlog_max_size = \"10MiB\"\n");
        assert_eq!(j.groups[0].ephemeral_disk_mb, Some(800));
        assert!(broken(&j, log_storage).is_empty());
        let j = exported("command = \"/bin/true\"\n");
        assert_eq!(j.groups[0].ephemeral_disk_mb, None);
        let mut j = exported("command = \"/bin/true\"\nlog_keep = 50\nlog_max_size = \"10MiB\"\n");
        j.groups[0].ephemeral_disk_mb = None;
        assert_eq!(
            broken(&j, log_storage),
            ["task web: 50 files of 10 MB, ephemeral_disk 300 MB"]
        );
    }

    #[test]
    fn templates_need_data_and_a_destination_of_their_own_inside_the_task() {
        let mut j = exported("command = \"/bin/true\"\n");
        let template = |dest: &str| Template {
            data: "A=\"1\"\n".into(),
            destination: dest.into(),
            env: true,
        };
        j.groups[0].tasks[0].templates = vec![template("secrets/env_file.env")];
        assert!(broken(&j, templates).is_empty());
        for bad in [
            vec![template("/etc/x.env")],
            vec![template("../x.env")],
            vec![template("")],
            vec![template("a.env"), template("a.env")],
        ] {
            j.groups[0].tasks[0].templates = bad;
            assert_eq!(broken(&j, templates).len(), 1);
        }
    }
}

//! [`Job::to_json`]: the job as the HTTP API's JSON, durations in nanoseconds.

use std::time::Duration;

use serde_json::{json, Value};

use super::{Group, Job, Task};

impl Job {
    /// The job as the HTTP API's JSON: `{"Job": {...}}`, keys as the API spells them,
    /// durations in nanoseconds. JSON holds no comments: [`Job::lost`] has them.
    pub(crate) fn to_json(&self) -> Value {
        let groups: Vec<Value> = self.groups.iter().map(Group::to_json).collect();
        let mut job = json!({
            "Job": {
                "ID": self.name,
                "Name": self.name,
                "Type": self.kind(),
                "Datacenters": ["*"],
                "TaskGroups": groups,
            }
        });
        if let Some(periodic) = &self.periodic {
            job["Job"]["Periodic"] = json!({
                "Enabled": true,
                "SpecType": "cron",
                "Specs": periodic.crons,
                "TimeZone": periodic.time_zone,
                "ProhibitOverlap": true,
            });
        }
        job
    }
}

impl Group {
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
        if let Some(size) = self.ephemeral_disk_mb {
            group["EphemeralDisk"] = json!({ "SizeMB": size });
        }
        if self.no_reschedule {
            group["ReschedulePolicy"] = json!({"Attempts": 0, "Unlimited": false});
        }
        group
    }
}

impl Task {
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
        if !self.templates.is_empty() {
            let templates: Vec<Value> = self
                .templates
                .iter()
                .map(|t| {
                    json!({
                        "EmbeddedTmpl": t.data,
                        "DestPath": t.destination,
                        "Envvars": t.env,
                        "ChangeMode": "restart",
                    })
                })
                .collect();
            task["Templates"] = json!(templates);
        }
        if self.sidecar {
            task["Lifecycle"] = json!({"Hook": "prestart", "Sidecar": true});
        }
        if let Some(hook) = self.hook {
            task["Lifecycle"] = json!({"Hook": hook, "Sidecar": false});
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

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

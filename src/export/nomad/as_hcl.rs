//! [`Job::to_hcl`]: the job as HCL, through hcl-rs, with notes as comments.

use std::collections::BTreeMap;

use hcl::edit::Decorate;

use super::super::{format_duration, one_line};
use super::{Group, Job, Task};

impl Job {
    /// The job as HCL, formatted by hcl-rs, with what Nomad cannot express as comments
    /// above each task.
    pub(crate) fn to_hcl(&self) -> String {
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
            .add_attribute(("type", self.kind()))
            .add_attribute(("datacenters", vec!["*"]));
        if let Some(periodic) = &self.periodic {
            job = job.add_block(
                hcl::Block::builder("periodic")
                    .add_attribute(("crons", periodic.crons.clone()))
                    .add_attribute(("time_zone", periodic.time_zone.as_str()))
                    .add_attribute(("prohibit_overlap", true))
                    .build(),
            );
        }
        for group in &self.groups {
            job = job.add_block(group.hcl_block());
        }
        job.build()
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
        if let Some(size) = self.ephemeral_disk_mb {
            group = group.add_block(
                hcl::Block::builder("ephemeral_disk")
                    .add_attribute(("size", size))
                    .build(),
            );
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
        if let Some(hook) = self.hook {
            task = task.add_block(
                hcl::Block::builder("lifecycle")
                    .add_attribute(("hook", hook))
                    .add_attribute(("sidecar", false))
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
            // Nomad's own attribute (in MiB), which shares the name of dmgr's key.
            resources = resources.add_attribute(("memory_max", max));
        }
        task = task.add_block(resources.build());
        for template in &self.templates {
            task = task.add_block(
                hcl::Block::builder("template")
                    .add_attribute(("data", template.data.as_str()))
                    .add_attribute(("destination", template.destination.as_str()))
                    .add_attribute(("env", template.env))
                    .build(),
            );
        }
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

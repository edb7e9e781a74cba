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

mod mappings;
mod quote;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;

use super::{one_line as comment, Lost, Source};
use crate::config::Daemon;
// The mappings call these as `super::NAME`, as when they lived in this file.
use super::{backoff_lost, program, resolve, restart_window, written_pidfile};

pub(crate) use mappings::MAPPINGS;
pub(crate) use quote::{environment_assignment, exec_line, path, value};

/// The name of the target that wants every exported autostart daemon.
pub(crate) const TARGET: &str = "dmgr.target";

/// The unit name of daemon `name`.
pub(crate) fn unit_name(name: &str) -> String {
    format!("dmgr-{name}.service")
}

/// A unit being built: the lines of each section, and what systemd cannot express.
#[derive(Debug, Default)]
pub(crate) struct Unit {
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
pub(crate) type Mapping = super::Mapping<fn(&Daemon, &Source, &mut Unit)>;

/// The text of `dmgr-NAME.service` for `daemon`.
pub(crate) fn service(daemon: &Daemon, source: &Source) -> String {
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
pub(crate) fn target(daemons: &[&Daemon], source: &Source) -> String {
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

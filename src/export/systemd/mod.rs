//! systemd units from daemons: one `PREFIX-NAME.service` per daemon, a `PREFIX.target`
//! that wants every autostart daemon of the config directory, the environment files
//! some units read, and `dmgr-logdir@.service`, which makes a log directory before a
//! unit that appends to a file in it starts. `PREFIX` is `dmgr` for the default config
//! directory and `dmgr.ESCAPED-PATH` for any other (`names::unit_prefix`), so two
//! directories' units never collide, and the boot unit of the same directory,
//! `PREFIX.service`, is named in `Conflicts=`: one owner at a time.
//!
//! [`MAPPINGS`] holds one entry per key of a daemon file (or per group of keys that
//! map together); the quoting functions in `quote` are the only code that writes a
//! value into a unit file, and `boot` uses them too.
//!
//! Quoting follows systemd.service(5) and systemd.unit(5): `%` starts a specifier in
//! almost every setting, so it is always doubled; in `Exec*=` lines `$` starts a
//! variable, so it is doubled there; a word with spaces, quotes, backslashes or control
//! characters is double-quoted with C escapes; each variable gets an `Environment=`
//! line of its own.

mod environment;
pub(crate) mod jobs;
mod mappings;
pub(crate) mod names;
mod notify;
mod quote;
mod sockets;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{one_line as comment, Lost, Source};
use crate::config::Daemon;
// The mappings call these as `super::NAME`, as when they lived in this file.
use super::{backoff_lost, program, resolve, restart_window, written_pidfile};

pub(crate) use mappings::MAPPINGS;
pub(crate) use notify::local_version;
pub(crate) use quote::{environment_assignment, exec_line, path, value};

/// The first words of every file `export systemd` writes: a file without them is not
/// dmgr's, and export never overwrites it.
pub(crate) const MARKER: &str = "# Written by `dmgr export systemd`";

/// The template unit that makes a log directory (see [`logdir_template`]).
pub(crate) const LOGDIR_TEMPLATE: &str = "dmgr-logdir@.service";

/// The names of one config directory's units and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    prefix: String,
}

impl Names {
    /// The names for the config directory and scope of `source`.
    pub(crate) fn of(source: &Source) -> Names {
        Names {
            prefix: names::unit_prefix(&source.dirs.config_dir, source.user),
        }
    }

    /// The unit of daemon `name`: `PREFIX-NAME.service`.
    pub(crate) fn service(&self, name: &str) -> String {
        format!("{}-{name}.service", self.prefix)
    }

    /// The target that wants every autostart daemon: `PREFIX.target`.
    pub(crate) fn target(&self) -> String {
        format!("{}.target", self.prefix)
    }

    /// The boot unit of the same config directory: `PREFIX.service`.
    pub(crate) fn boot(&self) -> String {
        format!("{}.service", self.prefix)
    }

    /// The environment file that holds daemon `name`'s `env`: `PREFIX-NAME.env`.
    pub(crate) fn env(&self, name: &str) -> String {
        format!("{}-{name}.env", self.prefix)
    }

    /// The converted copy of the `n`th file (from 1) of `name`'s `env_file`.
    pub(crate) fn converted(&self, name: &str, n: usize) -> String {
        format!("{}-{name}.{n}.env", self.prefix)
    }
}

/// One file to write: its name in the unit directory and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct File {
    /// The file name.
    pub name: String,
    /// What to write.
    pub text: String,
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
    /// Files the unit reads that export writes beside it.
    pub files: Vec<File>,
    /// Whether the unit needs [`LOGDIR_TEMPLATE`].
    pub uses_logdir: bool,
}

/// How one key, or a group of keys that map together, becomes this target's output.
pub(crate) type Mapping = super::Mapping<fn(&Daemon, &Source, &mut Unit)>;

/// Every file for `selected` daemons: their units and the files those read, the
/// target, which wants every autostart daemon of `all` (the whole config directory,
/// so that exporting some daemons never drops the others from it), and the log
/// directory template where a unit needs it.
pub(crate) fn files(selected: &[&Daemon], all: &[&Daemon], source: &Source) -> Vec<File> {
    let mut out = Vec::new();
    let mut logdir = false;
    let mut templates: Vec<&str> = Vec::new();
    for daemon in selected {
        let (unit, rest) = match &daemon.instance {
            // The copies of a daemon with `instances` are one template unit.
            Some(i) if templates.contains(&i.base.as_str()) => continue,
            Some(i) => {
                templates.push(&i.base);
                template(daemon, source)
            }
            None => service(daemon, source),
        };
        logdir |= unit.text.contains("dmgr-logdir@");
        out.push(unit);
        out.extend(rest);
    }
    out.push(target(all, source));
    if logdir {
        out.push(logdir_template(source));
    }
    out
}

/// The unit of `daemon`, and the files it reads that export writes beside it.
pub(crate) fn service(daemon: &Daemon, source: &Source) -> (File, Vec<File>) {
    let name = Names::of(source).service(&daemon.name);
    unit_file(daemon, source, name)
}

/// The template unit `PREFIX-NAME@.service` of `copy`'s daemon with `instances`:
/// the file's definition with `{instance}` as `%i`, so that `PREFIX-NAME@2.service`
/// is the copy `NAME@2`.
pub(crate) fn template(copy: &Daemon, source: &Source) -> (File, Vec<File>) {
    let mut daemon = crate::config::load_file(&source.dirs, &copy.file).unwrap_or_else(|_| {
        // The file changed since it was loaded: the copy is what there is.
        copy.clone()
    });
    daemon.instance = copy.instance.clone();
    let base = copy.base_name().to_string();
    daemon.name = base.clone();
    if daemon.description.is_none() {
        daemon.description = Some(format!("dmgr daemon {base}@{}", crate::config::PLACEHOLDER));
    }
    let (mut unit, mut rest) = unit_file(&daemon, source, Names::of(source).template(&base));
    unit.text = jobs::as_template(&unit.text);
    for file in &mut rest {
        file.text = jobs::as_template(&file.text);
    }
    (unit, rest)
}

fn unit_file(daemon: &Daemon, source: &Source, name: String) -> (File, Vec<File>) {
    let names = Names::of(source);
    let mut unit = Unit::default();
    for mapping in MAPPINGS {
        (mapping.map)(daemon, source, &mut unit);
    }
    // Stopping or restarting the target reaches every daemon unit; the boot unit of
    // the same directory runs them too, so only one of the two may be active, and
    // the exported units stop before it starts (and start after it stopped).
    unit.unit.push(format!("PartOf={}", names.target()));
    unit.unit.push(format!("Conflicts={}", names.boot()));
    unit.unit.push(format!("Before={}", names.boot()));
    let mut text = header(&daemon.file, &name);
    if !unit.lost.is_empty() {
        text.push_str("#\n# What systemd does not do as dmgr did:\n");
        for lost in &unit.lost {
            let _ = writeln!(text, "# - {}", comment(&lost.line()));
        }
    }
    write_section(&mut text, "Unit", &unit.unit);
    write_section(&mut text, "Service", &unit.service);
    write_section(&mut text, "Install", &unit.install);
    (File { name, text }, unit.files)
}

/// The first lines of a file written from `from` (a daemon file or the config
/// directory), whose own name is `name`.
pub(crate) fn header(from: &Path, name: &str) -> String {
    format!(
        "{MARKER} (dmgr {}) from {}.\n# {name}: change that file and export again; a change made here is lost then.\n",
        env!("CARGO_PKG_VERSION"),
        comment(&from.display().to_string())
    )
}

/// What a file says about itself: `None` when it is not dmgr's, else the daemon file
/// or config directory it was written from (`None` within for the shared template).
pub(crate) fn written_from(text: &str) -> Option<Option<PathBuf>> {
    let first = text.lines().next()?.strip_prefix(MARKER)?;
    let from = first
        .split_once(") from ")
        .map(|(_, from)| PathBuf::from(from.strip_suffix('.').unwrap_or(from)));
    Some(from)
}

/// The text of `PREFIX.target`: it wants every autostart daemon of `daemons`, so
/// starting it starts them and, as each unit is `PartOf=` it, stopping it stops them
/// all. It conflicts with the boot unit of the same directory.
pub(crate) fn target(daemons: &[&Daemon], source: &Source) -> File {
    let names = Names::of(source);
    let config_dir = source.dirs.config_dir.display().to_string();
    let wanted: Vec<String> = daemons
        .iter()
        .filter(|d| d.autostart)
        .map(|d| names.wanted(d))
        .collect();
    let name = names.target();
    let mut text = header(&source.dirs.config_dir, &name);
    let _ = writeln!(
        text,
        "# `systemctl{} start {name}` starts the autostart daemons; `systemctl stop {name}` stops them all.",
        if source.user { " --user" } else { "" }
    );
    let _ = writeln!(
        text,
        "# It conflicts with {}, the unit of `dmgr boot install`: the daemons run under one of the two.",
        names.boot()
    );
    let mut unit = vec![format!(
        "Description=dmgr daemons of {}",
        value(&config_dir)
    )];
    if !wanted.is_empty() {
        unit.push(format!("Wants={}", wanted.join(" ")));
    }
    unit.push(format!("Conflicts={}", names.boot()));
    write_section(&mut text, "Unit", &unit);
    let wanted_by = if source.user {
        // A user manager has no multi-user.target.
        "default.target"
    } else {
        "multi-user.target"
    };
    write_section(&mut text, "Install", &[format!("WantedBy={wanted_by}")]);
    File { name, text }
}

/// The text of [`LOGDIR_TEMPLATE`]: `dmgr-logdir@ESCAPED-PATH.service` makes that
/// directory (`systemd-escape --path`) as dmgr's keeper would, owned by the manager's
/// user, mode 0755. A unit needs it because systemd opens `StandardOutput=append:`
/// files before it would make `LogsDirectory=`, and `LogsDirectory=` with `User=`
/// would give a directory other daemons share to that one user.
pub(crate) fn logdir_template(source: &Source) -> File {
    let mkdir = crate::config::resolve_program("mkdir", source.path.as_deref())
        .unwrap_or_else(|| PathBuf::from("/bin/mkdir"));
    let mut text = format!(
        "{MARKER} (dmgr {}), the same for every config directory.\n",
        env!("CARGO_PKG_VERSION")
    );
    text.push_str("# dmgr-logdir@ESCAPED-PATH.service makes the directory ESCAPED-PATH names (`systemd-escape --path`),\n");
    text.push_str(
        "# as dmgr's keeper would, before a unit that appends its output to a file in it starts:\n",
    );
    text.push_str(
        "# systemd opens StandardOutput=append: files before it would make a LogsDirectory=, and\n",
    );
    text.push_str(
        "# LogsDirectory= with User= would give a directory other daemons share to that user.\n",
    );
    write_section(
        &mut text,
        "Unit",
        &[
            "Description=dmgr log directory %f".to_string(),
            "RequiresMountsFor=%f".to_string(),
        ],
    );
    write_section(
        &mut text,
        "Service",
        &[
            "Type=oneshot".to_string(),
            "RemainAfterExit=yes".to_string(),
            "UMask=0022".to_string(),
            format!(
                "ExecStart={} -p %f",
                exec_line(&[mkdir.display().to_string()])
            ),
        ],
    );
    File {
        name: LOGDIR_TEMPLATE.to_string(),
        text,
    }
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

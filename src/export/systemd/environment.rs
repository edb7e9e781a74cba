//! `env` and `env_file` as systemd reads them, so that the daemon's environment under
//! systemd is the one dmgr gives it:
//!
//! - systemd's `EnvironmentFile=` overrides `Environment=`, where dmgr's `env` wins over
//!   `env_file`: with an `env_file`, `env` goes into a generated file,
//!   `PREFIX-NAME.env`, named last (a later file overrides an earlier one in both);
//!   without one, each variable is an `Environment=` line;
//! - systemd skips a line with an `export ` prefix ("Ignoring invalid environment
//!   assignment"), which dmgr reads: such a file is converted into a generated copy,
//!   `PREFIX-NAME.N.env`, holding the variables as dmgr reads them, in its place in
//!   the order; a file systemd reads as dmgr does is named as it is, and read at each
//!   start by both.
//!
//! A generated file writes each value in double quotes with `\`, `"`, `` ` `` and `$`
//! escaped, which both parsers read back exactly (systemd's `src/basic/env-file.c`).

use std::fmt::Write as _;

use super::super::Lost;
use super::{environment_assignment, header, path, File, Names, Source, Unit};
use crate::config::Daemon;

/// Maps `env` and `env_file`.
pub(super) fn map(d: &Daemon, source: &Source, unit: &mut Unit) {
    if d.process.env_file.is_empty() {
        // `check` admits only names of letters, digits and `_`, as systemd does.
        for (key, val) in &d.process.env {
            unit.service
                .push(format!("Environment={}", environment_assignment(key, val)));
        }
        return;
    }
    let names = Names::of(source);
    for (at, file) in d.process.env_file.iter().enumerate() {
        let dash = if file.optional { "-" } else { "" };
        match exported_names(&file.path) {
            // Read by systemd as dmgr reads it (or not readable now: then systemd,
            // like dmgr, finds out at start).
            None => unit
                .service
                .push(format!("EnvironmentFile={dash}{}", path(&file.path))),
            Some(exported) => {
                let name = names.converted(&d.name, at + 1);
                let vars = crate::config::env_file::load(std::slice::from_ref(file))
                    .map(|loaded| loaded.vars)
                    .unwrap_or_default();
                let mut text = header(&d.file, &name);
                let _ = writeln!(
                    text,
                    "# The variables of {} as dmgr reads them now: systemd would skip its lines",
                    super::comment(&file.path.display().to_string())
                );
                text.push_str("# that start with `export `. Export again after changing it.\n");
                text.push_str(&assignments(&vars));
                unit.files.push(File {
                    name: name.clone(),
                    text,
                });
                let generated = source.unit_dir.join(&name);
                unit.service
                    .push(format!("EnvironmentFile={}", path(&generated)));
                unit.lost.push(Lost::new(
                    format!("env_file = {:?}", file.as_written()),
                    format!(
                        "systemd skips its `export ` lines ({}); {name} holds its variables as they read now: export again after changing it",
                        exported.join(", ")
                    ),
                ));
            }
        }
    }
    if d.process.env.is_empty() {
        return;
    }
    let name = names.env(&d.name);
    let mut text = header(&d.file, &name);
    text.push_str("# The daemon's `env`, named after its env_file so that it wins, as in dmgr\n");
    text.push_str("# (systemd's EnvironmentFile= overrides Environment=).\n");
    let vars: Vec<(String, String)> = d
        .process
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    text.push_str(&assignments(&vars));
    unit.files.push(File {
        name: name.clone(),
        text,
    });
    unit.service.push(format!(
        "EnvironmentFile={}",
        path(&source.unit_dir.join(&name))
    ));
}

/// The names a file gives with an `export ` prefix, or `None` when it has none (or
/// cannot be read now).
fn exported_names(file: &std::path::Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(file).ok()?;
    let names = crate::config::env_file::exported_names(&text);
    (!names.is_empty()).then_some(names)
}

/// `KEY="VALUE"` lines, quoted as systemd's and dmgr's parsers read them back.
pub(super) fn assignments(vars: &[(String, String)]) -> String {
    let mut out = String::new();
    for (key, val) in vars {
        let mut quoted = String::with_capacity(val.len());
        for c in val.chars() {
            if matches!(c, '\\' | '"' | '`' | '$') {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        let _ = writeln!(out, "{key}=\"{quoted}\"");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written values read back through dmgr's parser (systemd's syntax) unchanged.
    #[test]
    fn generated_assignments_read_back_exactly() {
        let vars: Vec<(String, String)> = [
            ("PLAIN", "value"),
            ("SPACES", "  two  words  "),
            ("QUOTES", "say \"hi\" it's"),
            ("DOLLAR", "$HOME ${X} `cmd`"),
            ("BACKSLASH", "a\\b\\"),
            ("NEWLINE", "line1\nline2"),
            ("HASH", "# not a comment ; nor this"),
            ("EMPTY", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let text = assignments(&vars);
        assert_eq!(crate::config::env_file::parse(&text).unwrap(), vars);
    }
}

//! Everything about daemon definitions: where `daemons.d` and the run directory are
//! (`discover`), the TOML as written (`raw`), the validated [`Daemon`] the rest of dmgr
//! uses (`daemon`), cross-file checks such as the `after` graph (`validate`), units
//! (`units`), "did you mean" (`suggest`) and turning byte offsets into
//! `FILE:LINE:COL` (`diagnostic`).
//!
//! Only this module sees the raw form. Loading never stops at the first bad file: the
//! valid daemons come back beside the invalid files and every problem found in them.

mod daemon;
mod diagnostic;
mod discover;
pub mod env_file;
pub(crate) mod host;
pub mod limits;
mod raw;
mod run_dir;
mod suggest;
pub mod units;
pub mod url;
mod validate;

#[cfg(test)]
pub(crate) use daemon::tests_support;
pub(crate) use daemon::Key;
pub use daemon::KEYS;
pub use daemon::{
    compile_log_pattern, instance_name, is_valid_name, load_bytes, split_instance_name, Daemon,
    DaemonType, Instance, KillMode, LogSpec, NotifyAccess, ProcessSpec, ReadyCheck, RestartPolicy,
    Supervision, MAX_INSTANCES, MAX_LOG_KEEP, MAX_LOG_SIZE, MAX_RESTARTS, MIN_LOG_SIZE,
    PLACEHOLDER,
};
pub use diagnostic::{Diagnostic, Severity, MAX_SHOWN};
pub use discover::{discover, Dirs};
pub use discover::{SYSTEM_CONFIG_DIR, SYSTEM_LOG_DIR, SYSTEM_RUN_DIR};
pub(crate) use host::resolve_program;
pub use raw::READY_KEYS;
pub use run_dir::OWNER_FILE;
pub use suggest::nearest;
pub use validate::{start_order, stop_order};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A file in the config directory that failed to load.
#[derive(Debug, Clone)]
pub struct Invalid {
    /// The daemon name (the file stem), even when the stem itself is not a valid name.
    pub name: String,
    /// The file.
    pub file: PathBuf,
    /// Every problem found, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

/// The whole config directory: valid daemons and invalid files, each sorted by name
/// (the lookups rely on it).
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Daemons that loaded and validated.
    pub daemons: Vec<Daemon>,
    /// Files that did not.
    pub invalid: Vec<Invalid>,
    /// What `check` warns about in the valid daemons' files.
    pub warnings: Vec<Diagnostic>,
    /// Where each valid daemon sets the keys that the checks across files look at.
    places: BTreeMap<String, daemon::Places>,
}

impl Loaded {
    /// Returns the valid daemon with this name (both lists are sorted by name).
    pub fn daemon(&self, name: &str) -> Option<&Daemon> {
        let at = self
            .daemons
            .binary_search_by(|d| d.name.as_str().cmp(name))
            .ok()?;
        self.daemons.get(at)
    }

    /// Returns the daemons `name` means in a command: the daemon of that name, or
    /// every copy of a daemon with `instances` (`web` for `web@1` ... `web@N`), in
    /// the order of their numbers; empty when there is none.
    pub fn named(&self, name: &str) -> Vec<&Daemon> {
        if let Some(daemon) = self.daemon(name) {
            return vec![daemon];
        }
        let prefix = format!("{name}@");
        let from = self.daemons.partition_point(|d| d.name < prefix);
        let mut copies: Vec<&Daemon> = self.daemons[from..]
            .iter()
            .take_while(|d| d.name.starts_with(&prefix))
            .filter(|d| d.answers_to(name))
            .collect();
        copies.sort_by_key(|d| d.instance.as_ref().map_or(0, |i| i.number));
        copies
    }

    /// Returns the invalid file with this name.
    pub fn invalid(&self, name: &str) -> Option<&Invalid> {
        let at = self
            .invalid
            .binary_search_by(|i| i.name.as_str().cmp(name))
            .ok()?;
        self.invalid.get(at)
    }

    /// Returns every name in the directory, valid or not, sorted: the daemons, the
    /// copies of those with `instances` and the names of their sets.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .daemons
            .iter()
            .flat_map(|d| [d.name.as_str(), d.base_name()])
            .chain(self.invalid.iter().map(|i| i.name.as_str()))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// Loads every daemon file in `dirs.config_dir`, then checks across files.
///
/// Fails (exit 2) only when the directory itself is missing or cannot be read; a bad
/// file becomes an [`Invalid`] entry.
pub fn load(dirs: &Dirs) -> Result<Loaded, crate::Error> {
    let mut loaded = daemon::load_dir(dirs)?;
    validate::check_across_files(&mut loaded, dirs);
    Ok(loaded)
}

/// Loads only the daemons named, for commands that act on named daemons and need no
/// other file (`status`, `logs`, `reload`, `kill`, `run`): their cost does not grow
/// with the size of the directory. Names without a file are left out; a config
/// directory that is missing or cannot be read is an error, as for [`load`].
pub fn load_named(dirs: &Dirs, names: &[String]) -> Result<Loaded, crate::Error> {
    if let Some(problem) = daemon::config_dir_problem(dirs) {
        return Err(problem);
    }
    let mut loaded = Loaded::default();
    for name in names {
        // `web@2` is a copy defined by `web.toml`.
        let base = split_instance_name(name).map_or(name.as_str(), |(base, _)| base);
        if !daemon::is_valid_name(base)
            || !loaded.named(base).is_empty()
            || loaded.invalid(base).is_some()
        {
            continue;
        }
        let file = file_of(dirs, base);
        // As `load` does: a directory is no daemon file, anything else is tried (and
        // is invalid if it cannot be read).
        match std::fs::symlink_metadata(&file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Ok(meta) if meta.is_dir() => continue,
            _ => {}
        }
        match daemon::load_file(dirs, &file) {
            Ok(d) => {
                for daemon in d.daemons() {
                    let at = loaded.daemons.partition_point(|x| x.name < daemon.name);
                    loaded.places.insert(daemon.name.clone(), d.places.clone());
                    loaded.daemons.insert(at, daemon);
                }
                loaded.warnings.extend(d.warnings);
            }
            Err(bad) => {
                let at = loaded.invalid.partition_point(|x| x.name < bad.name);
                loaded.invalid.insert(at, bad);
            }
        }
    }
    // Whether `after` names files that exist and forms no cycle, and whether a path
    // set by the file is another daemon's too, depends on the whole directory: such a
    // daemon loads it all, so these commands agree with `list` and `check` about which
    // files are invalid.
    let needs_all = |d: &Daemon| {
        !d.after.is_empty()
            || d.pidfile != dirs.pidfile(&d.name)
            || d.process.log != dirs.log_dir.join(format!("{}.log", d.name))
            || d.process.stderr_log.is_some()
            || d.forking_pidfile.is_some()
    };
    if loaded.daemons.iter().any(needs_all) {
        if let Ok(all) = load(dirs) {
            return Ok(all);
        }
    }
    Ok(loaded)
}

/// The names of every daemon file in the config directory, without reading them.
pub fn names(dirs: &Dirs) -> Vec<String> {
    daemon::file_names(dirs)
}

/// Loads one file as a daemon named after its stem; for a file with `instances`, the
/// template of its copies (`{instance}` as written).
pub fn load_file(dirs: &Dirs, file: &Path) -> Result<Daemon, Invalid> {
    daemon::load_file(dirs, file).map(|loaded| loaded.daemon)
}

/// How many copies the file of `name` asks for (`instances`), or `None` for a file
/// without `instances`, or that is missing or invalid.
pub fn instances_of(dirs: &Dirs, name: &str) -> Option<u32> {
    daemon::load_file(dirs, &file_of(dirs, name))
        .ok()?
        .instances
}

/// The file that defines the daemon `name`: `NAME.toml`, or for a copy `web@2` the
/// file of its set, `web.toml`.
pub fn file_of(dirs: &Dirs, name: &str) -> PathBuf {
    let base = split_instance_name(name).map_or(name, |(base, _)| base);
    dirs.config_dir.join(format!("{base}.toml"))
}

/// Loads the daemon `name` alone, as its keeper does: `NAME.toml`, or for a copy
/// `web@2` that copy of `web.toml`. A copy the file no longer defines (its
/// `instances` is smaller, or gone) is an error naming the file.
pub fn load_daemon(dirs: &Dirs, name: &str) -> Result<Daemon, Invalid> {
    let file = file_of(dirs, name);
    let loaded = daemon::load_file(dirs, &file)?;
    loaded
        .daemons()
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| Invalid {
            name: name.to_string(),
            file: file.clone(),
            diagnostics: vec![Diagnostic::file(
                &file,
                match loaded.instances {
                    Some(n) => format!(
                        "defines {n} cop{} of `{}` (`instances = {n}`), and no `{name}`",
                        if n == 1 { "y" } else { "ies" },
                        loaded.daemon.name
                    ),
                    None => format!(
                        "defines one daemon, `{}`, without `instances`, and no `{name}`",
                        loaded.daemon.name
                    ),
                },
            )],
        })
}

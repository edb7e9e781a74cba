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
pub mod host;
pub mod limits;
mod raw;
mod run_dir;
mod suggest;
pub mod units;
pub mod url;
mod validate;

#[cfg(test)]
pub(crate) use daemon::tests_support;
pub use daemon::{
    compile_log_pattern, is_valid_name, load_bytes, Daemon, DaemonType, KillMode, LogSpec,
    NotifyAccess, ProcessSpec, ReadyCheck, RestartPolicy, Supervision, MAX_LOG_KEEP, MAX_LOG_SIZE,
    MAX_RESTARTS, MIN_LOG_SIZE,
};
pub use diagnostic::{Diagnostic, Severity, MAX_SHOWN};
pub use discover::{discover, Dirs};
pub use discover::{SYSTEM_CONFIG_DIR, SYSTEM_LOG_DIR, SYSTEM_RUN_DIR};
pub use raw::{KEYS, READY_KEYS};
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

    /// Returns the invalid file with this name.
    pub fn invalid(&self, name: &str) -> Option<&Invalid> {
        let at = self
            .invalid
            .binary_search_by(|i| i.name.as_str().cmp(name))
            .ok()?;
        self.invalid.get(at)
    }

    /// Returns every name in the directory, valid or not, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .daemons
            .iter()
            .map(|d| d.name.as_str())
            .chain(self.invalid.iter().map(|i| i.name.as_str()))
            .collect();
        names.sort_unstable();
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
        if !daemon::is_valid_name(name)
            || loaded.daemon(name).is_some()
            || loaded.invalid(name).is_some()
        {
            continue;
        }
        let file = dirs.config_dir.join(format!("{name}.toml"));
        // As `load` does: a directory is no daemon file, anything else is tried (and
        // is invalid if it cannot be read).
        match std::fs::symlink_metadata(&file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Ok(meta) if meta.is_dir() => continue,
            _ => {}
        }
        match daemon::load_file(dirs, &file) {
            Ok(d) => {
                let at = loaded.daemons.partition_point(|x| x.name < d.daemon.name);
                loaded.warnings.extend(d.warnings);
                loaded.places.insert(d.daemon.name.clone(), d.places);
                loaded.daemons.insert(at, d.daemon);
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

/// Loads one file as a daemon named after its stem (used by the keeper).
pub fn load_file(dirs: &Dirs, file: &Path) -> Result<Daemon, Invalid> {
    daemon::load_file(dirs, file).map(|loaded| loaded.daemon)
}

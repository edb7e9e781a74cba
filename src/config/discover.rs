//! Which config directory and which run directory this call uses.
//!
//! Config directory, first that applies: `--config-dir`/`$DMGR_CONFIG_DIR` (clap reads
//! both), `./daemons.d` if it exists, `/etc/dmgr/daemons.d` for root, else
//! `${XDG_CONFIG_HOME:-~/.config}/dmgr/daemons.d`.
//!
//! Run directory, first that applies: `--run-dir`/`$DMGR_RUN_DIR`; `/run/dmgr` (logs in
//! `/var/log/dmgr`) for root's system directory; `${XDG_STATE_HOME:-~/.local/state}/dmgr`
//! for a user's XDG directory; otherwise a directory beside the config directory,
//! `.dmgr` for one named `daemons.d` and `.dmgr-NAME` for one named `NAME`, so two
//! config directories never share pidfiles. Logs default to `RUN_DIR/log`.

use std::env;
use std::path::{Path, PathBuf};

use crate::Error;

/// The system config directory, used by root.
pub const SYSTEM_CONFIG_DIR: &str = "/etc/dmgr/daemons.d";
/// The run directory for the system config directory.
pub const SYSTEM_RUN_DIR: &str = "/run/dmgr";
/// The log directory for the system config directory.
pub const SYSTEM_LOG_DIR: &str = "/var/log/dmgr";

/// The directories one call of dmgr works with, all absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    /// Where the daemon files are.
    pub config_dir: PathBuf,
    /// Where pidfiles and keeper state records are.
    pub run_dir: PathBuf,
    /// Where logs go by default.
    pub log_dir: PathBuf,
}

impl Dirs {
    /// The keeper's state record for `name`.
    pub fn state_file(&self, name: &str) -> PathBuf {
        self.run_dir.join(format!("{name}.state"))
    }

    /// The event history of `name` (see `crate::events`).
    pub fn events_file(&self, name: &str) -> PathBuf {
        self.run_dir.join(format!("{name}.events"))
    }

    /// The default pidfile of `name`.
    pub fn pidfile(&self, name: &str) -> PathBuf {
        self.run_dir.join(format!("{name}.pid"))
    }

    /// The lock that serialises `start`, `stop` and `restart` of `name`.
    pub fn op_lock_file(&self, name: &str) -> PathBuf {
        self.run_dir.join(format!("{name}.lock"))
    }
}

/// Works out the directories from the command line (or environment) and defaults.
pub fn discover(config_dir: Option<&Path>, run_dir: Option<&Path>) -> Result<Dirs, Error> {
    let cwd = env::current_dir().map_err(|source| Error::Io {
        action: "read the current directory",
        path: PathBuf::from("."),
        source,
    })?;
    let is_root = nix::unistd::geteuid().is_root();
    let home = absolute_var("HOME");
    let xdg_config =
        absolute_var("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")));
    let xdg_state =
        absolute_var("XDG_STATE_HOME").or_else(|| home.as_ref().map(|h| h.join(".local/state")));

    let config_dir = match config_dir {
        Some(dir) => absolute(&cwd, dir),
        None if cwd.join("daemons.d").is_dir() => cwd.join("daemons.d"),
        None if is_root => PathBuf::from(SYSTEM_CONFIG_DIR),
        None => match &xdg_config {
            Some(base) => base.join("dmgr/daemons.d"),
            None => return Err(Error::Usage(
                "cannot find a config directory: no ./daemons.d, and neither HOME nor XDG_CONFIG_HOME is set to an absolute path; pass --config-dir DIR".into(),
            )),
        },
    };

    let user_config = xdg_config.as_ref().map(|base| base.join("dmgr/daemons.d"));
    let (run_dir, log_dir) = match run_dir {
        Some(dir) => {
            let dir = absolute(&cwd, dir);
            (dir.clone(), dir.join("log"))
        }
        None if config_dir == Path::new(SYSTEM_CONFIG_DIR) && is_root => {
            (PathBuf::from(SYSTEM_RUN_DIR), PathBuf::from(SYSTEM_LOG_DIR))
        }
        None if Some(&config_dir) == user_config.as_ref() && xdg_state.is_some() => {
            let dir = xdg_state.unwrap_or_default().join("dmgr");
            (dir.clone(), dir.join("log"))
        }
        None => {
            let dir = beside(&config_dir);
            (dir.clone(), dir.join("log"))
        }
    };
    Ok(Dirs {
        config_dir,
        run_dir,
        log_dir,
    })
}

/// The variable `name` as a path, if it is set to an absolute one. The XDG base
/// directory specification says to ignore relative values, and a relative `HOME`
/// would mean one directory to `dmgr start` and another to its keeper, which runs
/// from `/`.
fn absolute_var(name: &str) -> Option<PathBuf> {
    env::var_os(name)
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
}

/// The project-local run directory for a config directory.
fn beside(config_dir: &Path) -> PathBuf {
    let parent = config_dir.parent().unwrap_or(Path::new("/"));
    match config_dir.file_name().and_then(|n| n.to_str()) {
        Some("daemons.d") | None => parent.join(".dmgr"),
        Some(name) => parent.join(format!(".dmgr-{name}")),
    }
}

/// Makes `path` absolute against `cwd` and drops `.` components, without touching the
/// file system (the directory may not exist yet).
fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    let joined = cwd.join(path);
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_local_run_dirs_never_collide() {
        assert_eq!(beside(Path::new("/p/daemons.d")), Path::new("/p/.dmgr"));
        assert_eq!(beside(Path::new("/p/other")), Path::new("/p/.dmgr-other"));
        assert_ne!(beside(Path::new("/p/a")), beside(Path::new("/p/b")));
    }

    #[test]
    fn explicit_dirs_win_and_are_made_absolute() {
        let dirs = discover(Some(Path::new("/x/conf")), Some(Path::new("/x/run"))).unwrap();
        assert_eq!(dirs.config_dir, Path::new("/x/conf"));
        assert_eq!(dirs.run_dir, Path::new("/x/run"));
        assert_eq!(dirs.log_dir, Path::new("/x/run/log"));
        assert_eq!(
            absolute(Path::new("/a/b"), Path::new("./c/../d")),
            Path::new("/a/b/d")
        );
    }
}

//! The daemons' definitions written for another supervisor: systemd units (`systemd`)
//! and a Nomad job (`nomad`), for `dmgr export`; `boot` writes its unit with the
//! quoting of `systemd` too. Everything here is pure: it turns validated [`Daemon`]s
//! into text and writes no file; `commands::export` selects the daemons and writes.
//!
//! Each target maps the keys of a daemon file through a table with one entry per key
//! (or per group of keys that map together), so a new key is one new entry, and a test
//! fails until every key of the key table ([`crate::config::Key`]) has one. What a target cannot
//! express becomes a [`Lost`] note, written as a comment naming the key.

pub(crate) mod nomad;
pub(crate) mod systemd;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Daemon, Dirs, Key, RestartPolicy};
use crate::keeper::core::policy;

/// Where the definitions come from: what the exported text depends on besides the
/// daemons themselves.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The config and run directories the daemons were loaded with (for the default
    /// pidfile and log paths).
    pub dirs: Dirs,
    /// `PATH` of the exporting process, to make a daemon's command absolute as dmgr
    /// would find it at start (`None` when unset).
    pub path: Option<String>,
    /// For systemd: units of a user's manager rather than the system's.
    pub user: bool,
    /// For systemd: the directory the units are installed in, where the files they
    /// name (generated environment files) are too.
    pub unit_dir: PathBuf,
    /// For systemd: the version of this host's systemd, which decides whether a
    /// notify daemon's unit can be `Type=notify-reload` (253 and later); `None` when
    /// there is no systemd here.
    pub systemd_version: Option<u32>,
}

impl Source {
    /// The source for this process: its `PATH` and the given directories, for the
    /// system's systemd manager and its unit directory.
    pub(crate) fn new(dirs: &Dirs) -> Source {
        Source {
            dirs: dirs.clone(),
            path: std::env::var("PATH").ok(),
            user: false,
            unit_dir: PathBuf::from(SYSTEM_UNIT_DIR),
            systemd_version: systemd::local_version(),
        }
    }
}

/// Where the system's manager reads units an administrator installs.
pub(crate) const SYSTEM_UNIT_DIR: &str = "/etc/systemd/system";

/// A key the target cannot express, and what changes because of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lost {
    /// The key as written in the daemon file (`ready`, `env.NAME`).
    pub key: String,
    /// What the target does instead, as a sentence without a final full stop.
    pub what: String,
}

impl Lost {
    /// A note for `key`.
    pub(crate) fn new(key: impl Into<String>, what: impl Into<String>) -> Lost {
        Lost {
            key: key.into(),
            what: what.into(),
        }
    }

    /// The note as one comment line's text: `KEY: WHAT`.
    pub(crate) fn line(&self) -> String {
        format!("{}: {}", self.key, self.what)
    }
}

/// How one key, or a group of keys that map together, becomes part of a target's
/// output: `map` is the target's function for those keys.
pub(crate) struct Mapping<F> {
    /// The keys of the daemon file this entry maps: read by the coverage tests
    /// (`every_key_has_a_mapping`), which fail until a new key has an entry.
    #[cfg_attr(not(test), allow(dead_code))]
    pub keys: &'static [Key],
    /// The target's function that maps them.
    pub map: F,
}

/// The program a daemon's command runs, absolute as dmgr's keeper would resolve it at
/// start (the daemon's own `PATH`, else the inherited one unless `clear_env`), and a
/// note when it cannot be found now.
pub(crate) fn program(daemon: &Daemon, source: &Source) -> (PathBuf, Option<Lost>) {
    resolve(&daemon.process.command[0], "command", daemon, source)
}

/// Resolves `name`, the program of the daemon's `key` (`command`, `stop_command`,
/// `reload_command`), as the keeper would: with the daemon's `PATH`, or the one
/// export ran with unless `clear_env`; a note when it is not found.
pub(crate) fn resolve(
    name: &str,
    key: &str,
    daemon: &Daemon,
    source: &Source,
) -> (PathBuf, Option<Lost>) {
    let path = daemon
        .process
        .env
        .get("PATH")
        .map(String::as_str)
        .or(if daemon.process.clear_env {
            None
        } else {
            source.path.as_deref()
        });
    match crate::config::resolve_program(name, path) {
        Some(found) => (found, None),
        None => (
            PathBuf::from(name),
            Some(Lost::new(
                key,
                format!("{name} is not on PATH here; write it as an absolute path"),
            )),
        ),
    }
}

/// How long `max_restarts` quick failures in a row take at the longest: each run just
/// short of the "quick" limit, each delay as the keeper's backoff computes it. A target
/// that counts restarts within a window (systemd's `StartLimitIntervalSec=`, Nomad's
/// `restart.interval`) gives up when dmgr would with this window.
pub(crate) fn restart_window(daemon: &Daemon) -> Duration {
    let runs =
        policy::RESET_AFTER.saturating_mul(daemon.supervision.max_restarts.saturating_add(1));
    (1..=daemon.supervision.max_restarts).fold(runs, |total, quick_failures| {
        total.saturating_add(policy::delay_for(
            daemon.supervision.restart_delay,
            quick_failures,
        ))
    })
}

/// The note on what a target with a fixed restart delay loses of dmgr's backoff.
pub(crate) fn backoff_lost(daemon: &Daemon, fixed: &str) -> Option<Lost> {
    (daemon.supervision.restart != RestartPolicy::No && daemon.supervision.max_restarts > 1).then(|| {
        Lost::new(
            "restart_delay",
            format!(
                "dmgr doubles the delay after each quick failure up to {}s and resets it after a run of {}s; {fixed}",
                policy::MAX_DELAY.as_secs(),
                policy::RESET_AFTER.as_secs()
            ),
        )
    })
}

/// A duration as both systemd and Go's `time.ParseDuration` read it, exactly:
/// `"10s"`, `"500ms"`, `"0s"`.
pub(crate) fn format_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{}us", duration.as_micros())
    }
}

/// The pidfile the daemon file sets, if any: for `type = "forking"` the program's
/// own file, otherwise the file the keeper locks when it is not the default
/// `RUN_DIR/NAME.pid`.
pub(crate) fn written_pidfile<'d>(daemon: &'d Daemon, dirs: &Dirs) -> Option<&'d Path> {
    daemon
        .forking_pidfile
        .as_deref()
        .or_else(|| Some(daemon.pidfile.as_path()).filter(|p| *p != dirs.pidfile(&daemon.name)))
}

/// Checks that `mappings` map every key of the key table exactly once: the message
/// says what to add to `table` (a target's file) for a new key.
#[cfg(test)]
pub(crate) fn check_coverage<F>(mappings: &[Mapping<F>], table: &str) -> Result<(), String> {
    let mut covered: Vec<Key> = mappings
        .iter()
        .flat_map(|m| m.keys.iter().copied())
        .collect();
    let count = covered.len();
    covered.sort_unstable();
    covered.dedup();
    if covered.len() != count {
        return Err(format!("a key is mapped twice in {table}"));
    }
    let missing: Vec<&str> = Key::ALL
        .iter()
        .filter(|k| !covered.contains(k))
        .map(|k| k.name())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "keys without a mapping: {missing:?}; add an entry to MAPPINGS in {table} (a Lost note if the target cannot express the key)"
        ));
    }
    Ok(())
}

/// Writes `text` to `path` through a temporary file beside it, so that a reader (or
/// systemd) never sees half a file; the file is readable by all (mode 0644).
pub(crate) fn write_file(path: &Path, text: &str) -> crate::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| crate::Error::Io {
            action: "write",
            path,
            source,
        }
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.dmgr-tmp"));
    std::fs::write(&tmp, text).map_err(fail(&tmp))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
        .and_then(|()| std::fs::rename(&tmp, path));
    placed.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(path)(e)
    })
}

/// Text for a comment or a one-line value: control characters become spaces, and a
/// trailing backslash (which would join the next line in a unit file) goes.
pub(crate) fn one_line(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.trim_end_matches('\\').to_string()
}

/// Daemons parsed from TOML text, for the tests of the targets.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A temporary config directory holding daemon files.
    pub(crate) struct Files {
        /// Keeps the directory alive.
        pub tmp: tempfile::TempDir,
        /// Its directories.
        pub dirs: Dirs,
    }

    impl Files {
        /// An empty config directory in a new temporary directory.
        pub(crate) fn new() -> Files {
            let tmp = tempfile::tempdir().unwrap();
            let dirs = Dirs {
                config_dir: tmp.path().join("daemons.d"),
                run_dir: tmp.path().join("run"),
                log_dir: tmp.path().join("run/log"),
            };
            std::fs::create_dir_all(&dirs.config_dir).unwrap();
            Files { tmp, dirs }
        }

        /// Loads `NAME.toml` with `text` as dmgr would, panicking on a problem.
        pub(crate) fn daemon(&self, name: &str, text: &str) -> Daemon {
            let file = self.dirs.config_dir.join(format!("{name}.toml"));
            std::fs::write(&file, text).unwrap();
            crate::config::load_file(&self.dirs, &file)
                .unwrap_or_else(|bad| panic!("{name}.toml: {:?}", bad.diagnostics))
        }

        /// The source for these files, with `PATH` of this process.
        pub(crate) fn source(&self) -> Source {
            Source::new(&self.dirs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::Files;
    use super::*;

    #[test]
    fn coverage_names_the_keys_left_out() {
        let none: [Mapping<()>; 0] = [];
        let err = check_coverage(&none, "x.rs").unwrap_err();
        assert!(err.contains("\"command\"") && err.contains("x.rs"), "{err}");
        let twice = [
            Mapping {
                keys: &[Key::Command],
                map: (),
            },
            Mapping {
                keys: &[Key::Command],
                map: (),
            },
        ];
        assert!(check_coverage(&twice, "x.rs")
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn durations_are_written_exactly() {
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_micros(3)), "3us");
    }

    #[test]
    fn the_restart_window_fits_max_restarts_quick_failures_with_backoff() {
        let files = Files::new();
        let d = files.daemon("web", "command = \"x\"\nmax_restarts = 3\n");
        // Four runs of up to 60 s, then delays of 1, 2 and 4 s.
        assert_eq!(restart_window(&d), Duration::from_secs(4 * 60 + 7));
        let d = files.daemon("web", "command = \"x\"\n");
        // Eleven runs, then delays 1 2 4 8 16 32 60 60 60 60.
        assert_eq!(restart_window(&d), Duration::from_secs(11 * 60 + 303));
    }

    #[test]
    fn a_command_is_made_absolute_with_the_daemons_path() {
        use std::os::unix::fs::PermissionsExt;
        let files = Files::new();
        let bin_dir = files.tmp.path().join("bin");
        std::fs::create_dir(&bin_dir).unwrap();
        let bin = bin_dir.join("tool");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut source = files.source();
        source.path = Some("/nonexistent".into());
        let d = files.daemon("web", "command = \"tool\"\n");
        let (found, lost) = program(&d, &source);
        assert_eq!(found, Path::new("tool"));
        assert_eq!(lost.unwrap().key, "command");
        let text = format!(
            "command = \"tool\"\nenv = {{ PATH = \"{}\" }}\n",
            bin_dir.display()
        );
        let d = files.daemon("web", &text);
        assert_eq!(program(&d, &source), (bin, None));
    }
}

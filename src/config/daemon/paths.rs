//! The paths of a daemon file: each made absolute against the file's directory, and
//! the ones dmgr writes (`pidfile`, `log`, `stderr_log`) kept out of the config
//! directory, away from dmgr's own files and from each other.

use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::*;
use crate::config::discover::Dirs;
use crate::config::raw::Value;
use crate::text::show_path;

impl Builder<'_> {
    /// A path, made absolute against the directory holding the file.
    pub(super) fn path(&mut self, value: Option<&Value<'_>>) -> Option<PathBuf> {
        let text = self.path_text(value)?;
        Some(resolve(self.base, Path::new(&text)))
    }

    /// The text of a path: not empty, and no longer than a path can be.
    pub(super) fn path_text(&mut self, value: Option<&Value<'_>>) -> Option<String> {
        let span = value?.span();
        let text = self.string(value)?;
        if text.is_empty() {
            self.error(span, "expected a path, found an empty string");
            return None;
        }
        if text.len() >= libc::PATH_MAX as usize {
            self.error(
                span,
                format!(
                    "the path is {} bytes long; a path is at most {} bytes",
                    text.len(),
                    libc::PATH_MAX - 1
                ),
            );
            return None;
        }
        Some(text)
    }

    /// A path dmgr writes (`pidfile`, `log`, `stderr_log`): a file, outside the config
    /// directory, and none of dmgr's own files.
    pub(super) fn written_path(
        &mut self,
        value: Option<&Value<'_>>,
        key: &str,
        name: &str,
    ) -> Option<PathBuf> {
        let span = value?.span();
        let text = self.path_text(value)?;
        let path = resolve(self.base, Path::new(&text));
        let problem = if text.ends_with('/') || path.file_name().is_none() || path.is_dir() {
            Some(format!(
                "`{key}` {} is a directory; name a file in it, like \"{name}.{}\"",
                show_path(&path),
                if key == Key::Pidfile.name() {
                    "pid"
                } else {
                    "log"
                }
            ))
        } else if self.is_inside_config_dir(&path) {
            Some(format!(
                "`{key}` {} is inside the config directory {}, where dmgr could overwrite a daemon file; put it elsewhere (the default is in {})",
                show_path(&path),
                show_path(&self.dirs.config_dir),
                show_path(&self.dirs.run_dir)
            ))
        } else if is_own_file(self.dirs, &path) {
            Some(format!(
                "`{key}` {} is one of dmgr's own files (lock, state record or event history); choose another path",
                show_path(&path)
            ))
        } else if self.file_id.is_some_and(|id| file_id(&path) == Some(id)) {
            Some(format!(
                "`{key}` {} is this daemon's own file (a link to it); choose another path",
                show_path(&path)
            ))
        } else {
            None
        };
        match problem {
            Some(problem) => {
                self.error(span, problem);
                None
            }
            None => Some(path),
        }
    }

    /// Returns true if and only if `path` is the config directory or inside it, as
    /// written or once symlinks are resolved.
    pub(super) fn is_inside_config_dir(&self, path: &Path) -> bool {
        if path.starts_with(&self.dirs.config_dir) {
            return true;
        }
        let Some(config_dir) = self.canonical_config_dir else {
            return false;
        };
        // The nearest directory above the file that exists, with symlinks resolved.
        path.ancestors()
            .skip(1)
            .find_map(|dir| std::fs::canonicalize(dir).ok())
            .is_some_and(|dir| dir.starts_with(config_dir))
    }

    /// The daemon's pidfile and logs (with their rotated files) must be different
    /// files: a pidfile that is its own log would be truncated by every start.
    pub(super) fn check_own_paths(
        &mut self,
        table: &DeTable<'_>,
        pidfile: &Path,
        log: &Path,
        stderr_log: Option<&Path>,
        log_keep: u32,
    ) {
        // The defaults are distinct by construction: no file system look-up for them.
        if [Key::Pidfile, Key::Log, Key::StderrLog]
            .iter()
            .all(|key| table.get(key.name()).is_none())
        {
            return;
        }
        let mut paths: Vec<(Key, &Path)> = vec![(Key::Pidfile, pidfile), (Key::Log, log)];
        paths.extend(stderr_log.map(|p| (Key::StderrLog, p)));
        for i in 1..paths.len() {
            for j in 0..i {
                let (key, path) = paths[i];
                let (other, other_path) = paths[j];
                // Report it at the key set in the file (the later one if both are).
                let at = [table.get(key.name()), table.get(other.name())]
                    .into_iter()
                    .flatten()
                    .map(|v| v.span())
                    .max_by_key(|span| span.start)
                    .unwrap_or(0..0);
                let message = if is_same_path(path, other_path) {
                    if (key, other) == (Key::StderrLog, Key::Log) {
                        "`stderr_log` is the same file as `log`; leave it out to log both streams together".to_string()
                    } else {
                        format!(
                            "`{key}` is the same file as `{other}` ({}); give each its own path",
                            show_path(path)
                        )
                    }
                } else if let Some(n) =
                    rotation_of(path, other_path, log_keep, other != Key::Pidfile)
                        .or_else(|| rotation_of(other_path, path, log_keep, key != Key::Pidfile))
                {
                    format!("`{key}` and `{other}` collide: one is the other's rotated file `.{n}`; give each its own path")
                } else {
                    continue;
                };
                self.error(at, message);
            }
        }
    }
}

/// Returns true if and only if `path` is one of dmgr's own files in the run directory:
/// a lock, a state record or an event history (`*.lock`, `*.state`, `*.events`).
pub(super) fn is_own_file(dirs: &Dirs, path: &Path) -> bool {
    path.parent() == Some(dirs.run_dir.as_path())
        && path
            .extension()
            .is_some_and(|ext| ext == "lock" || ext == "state" || ext == "events")
}

#[cfg(test)]
#[path = "paths_tests.rs"]
mod tests;

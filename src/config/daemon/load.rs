//! Reading the config directory and its daemon files, and the path checks they share.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::*;
use crate::config::diagnostic::{self, quote, Diagnostic};
use crate::config::discover::Dirs;
use crate::config::raw;
use crate::config::{Invalid, Loaded};
use crate::text::show_path;

/// Returns true if and only if the directory entry `file_name` is a daemon file:
/// `*.toml`, not hidden, not an editor leftover.
pub(super) fn is_daemon_file(file_name: &OsStr) -> bool {
    let bytes = file_name.as_bytes();
    bytes.ends_with(b".toml") && !bytes.starts_with(b".")
}

/// The stems of the daemon files in the config directory, sorted; nothing is read.
pub(in crate::config) fn file_names(dirs: &Dirs) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(&dirs.config_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            if !is_daemon_file(&name) {
                return None;
            }
            Some(
                name.into_string()
                    .ok()?
                    .trim_end_matches(".toml")
                    .to_string(),
            )
        })
        .collect();
    names.sort_unstable();
    names
}

/// Where in its file a valid daemon sets what the checks across files look at, so
/// that their problems are located too; `(1, 1)` for a key left at its default.
#[derive(Debug, Clone, Default)]
pub(in crate::config) struct Places {
    /// The file's device and inode.
    pub file_id: Option<(u64, u64)>,
    /// Each name of `after`, in order.
    pub after: Vec<(usize, usize)>,
    /// The `pidfile` value.
    pub pidfile: (usize, usize),
    /// The `log` value.
    pub log: (usize, usize),
    /// The `stderr_log` value.
    pub stderr_log: (usize, usize),
}

/// One file that loaded: the daemon, where its keys are, and what `check` warns about.
pub(in crate::config) struct LoadedFile {
    /// The daemon as the file defines it; with `instances`, the template of its
    /// copies, `{instance}` left as written (see [`LoadedFile::daemons`]).
    pub daemon: Daemon,
    pub places: Places,
    pub warnings: Vec<Diagnostic>,
    /// The file's `instances`.
    pub instances: Option<u32>,
}

impl LoadedFile {
    /// The daemons the file defines: the daemon, or its copies `NAME@1` ... `NAME@N`.
    pub(in crate::config) fn daemons(&self) -> Vec<Daemon> {
        match self.instances {
            Some(count) => super::instances::expand(&self.daemon, count),
            None => vec![self.daemon.clone()],
        }
    }
}

/// Why the config directory as a whole cannot be used, or `None` when it can.
pub(in crate::config) fn config_dir_problem(dirs: &Dirs) -> Option<crate::Error> {
    std::fs::read_dir(&dirs.config_dir)
        .err()
        .map(|e| config_dir_error(dirs, &e))
}

/// The error (exit 2) for a config directory that `read_dir` failed on.
pub(super) fn config_dir_error(dirs: &Dirs, err: &std::io::Error) -> crate::Error {
    let (reason, hint) = match (err.kind(), err.raw_os_error()) {
        (std::io::ErrorKind::NotFound, _) => (
            "does not exist".to_string(),
            "create it, or pass another one with --config-dir DIR",
        ),
        (_, Some(libc::ENOTDIR)) => (
            "is not a directory".to_string(),
            "pass the directory that holds the *.toml files with --config-dir DIR",
        ),
        _ => (
            format!("cannot be read: {err}"),
            "run dmgr as a user who can read it, or pass another one with --config-dir DIR",
        ),
    };
    crate::Error::ConfigDir {
        path: dirs.config_dir.clone(),
        reason,
        hint: hint.to_string(),
    }
}

/// Loads every `*.toml` directly in the config directory; a directory that is missing
/// or cannot be read is an error (exit 2), a file that cannot be read is invalid.
pub(in crate::config) fn load_dir(dirs: &Dirs) -> Result<Loaded, crate::Error> {
    let mut loaded = Loaded::default();
    let entries = std::fs::read_dir(&dirs.config_dir).map_err(|e| config_dir_error(dirs, &e))?;
    let dir_problem = std::fs::metadata(&dirs.config_dir)
        .ok()
        .and_then(|meta| unsafe_owner(&meta, &dirs.config_dir));
    let canonical = std::fs::canonicalize(&dirs.config_dir).ok();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        if !is_daemon_file(&file_name) {
            continue;
        }
        let path = entry.path();
        // A daemon's file replaced by a directory is not a daemon removed: its running
        // daemon must not become an orphan that `apply` stops (issue 22).
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let result = match (&dir_problem, file_name.to_str()) {
            (_, Some(_)) if is_dir => Err(invalid(
                &path,
                vec![Diagnostic::file(
                    &path,
                    "it is a directory, not a daemon file; put the daemon's file back, or \
                     remove the directory (a daemon still running is stopped with `dmgr \
                     stop`)",
                )],
            )),
            (Some(problem), _) => Err(invalid(
                &path,
                vec![Diagnostic::file(&path, problem.clone())],
            )),
            // Not skipped: a file dmgr will not read is listed as invalid, with why.
            (None, None) => Err(invalid(
                &path,
                vec![Diagnostic::file(
                    &path,
                    "the file name is not valid UTF-8, so it names no daemon; rename it \
                     (a name is letters, digits, `_`, `.` and `-`)",
                )],
            )),
            (None, Some(_)) => load_file_in(dirs, &path, canonical.as_deref()),
        };
        match result {
            Ok(file) => {
                for daemon in file.daemons() {
                    loaded
                        .places
                        .insert(daemon.name.clone(), file.places.clone());
                    loaded.daemons.push(daemon);
                }
                loaded.warnings.extend(file.warnings);
            }
            Err(bad) => loaded.invalid.push(bad),
        }
    }
    loaded.daemons.sort_by(|a, b| a.name.cmp(&b.name));
    loaded.invalid.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(loaded)
}

pub(super) fn invalid(file: &Path, diagnostics: Vec<Diagnostic>) -> Invalid {
    Invalid {
        name: file
            .file_stem()
            .map_or(String::new(), crate::text::escape_os),
        file: file.to_path_buf(),
        diagnostics,
    }
}

/// Run as root, a file or directory that another user could write would let that user
/// run commands as root: refuse it (SPEC promise 9).
pub(in crate::config) fn unsafe_owner(meta: &std::fs::Metadata, path: &Path) -> Option<String> {
    if crate::files::euid() != 0 {
        return None;
    }
    if meta.uid() != 0 {
        return Some(format!(
            "refused: owned by uid {}, not root, and dmgr runs as root; run `chown root {}`",
            meta.uid(),
            show_path(path)
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "refused: writable by group or others, and dmgr runs as root; run `chmod go-w {}`",
            show_path(path)
        ));
    }
    None
}

/// Loads one daemon file, collecting every problem in it.
pub(in crate::config) fn load_file(dirs: &Dirs, file: &Path) -> Result<LoadedFile, Invalid> {
    let canonical = std::fs::canonicalize(&dirs.config_dir).ok();
    load_file_in(dirs, file, canonical.as_deref())
}

/// [`load_file`] with the config directory's canonical path worked out already.
pub(super) fn load_file_in(
    dirs: &Dirs,
    file: &Path,
    canonical_config_dir: Option<&Path>,
) -> Result<LoadedFile, Invalid> {
    let fail = |message: String| invalid(file, vec![Diagnostic::file(file, message)]);
    let name = stem(file);
    if !is_valid_name(&name) {
        return Err(fail(invalid_name_message(&name)));
    }
    let (handle, meta) =
        crate::files::open_regular(file).map_err(|e| fail(format!("cannot read: {e}")))?;
    if let Some(problem) = unsafe_owner(&meta, file) {
        return Err(fail(problem));
    }
    if meta.len() > raw::MAX_FILE_SIZE {
        return Err(fail(format!(
            "too large ({} bytes); a daemon file is at most 1 MiB",
            meta.len()
        )));
    }
    let bytes = crate::files::read_to_end(&handle, meta.len() as usize + 1)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    let source = Source {
        file,
        bytes: &bytes,
        id: Some((meta.dev(), meta.ino())),
        canonical_config_dir,
    };
    source.load(dirs, name)
}

/// Loads a daemon from the bytes of a file at `file` without reading it (the file
/// need not exist): what `load_file` does once it has read them. For tests and the
/// fuzz harness, which feed the loader a million inputs.
pub fn load_bytes(dirs: &Dirs, file: &Path, bytes: &[u8]) -> Result<Daemon, Invalid> {
    let name = stem(file);
    if !is_valid_name(&name) {
        return Err(invalid(
            file,
            vec![Diagnostic::file(file, invalid_name_message(&name))],
        ));
    }
    if bytes.len() as u64 > raw::MAX_FILE_SIZE {
        return Err(invalid(
            file,
            vec![Diagnostic::file(
                file,
                "too large; a daemon file is at most 1 MiB",
            )],
        ));
    }
    let canonical = std::fs::canonicalize(&dirs.config_dir).ok();
    let source = Source {
        file,
        bytes,
        id: None,
        canonical_config_dir: canonical.as_deref(),
    };
    source.load(dirs, name).map(|loaded| loaded.daemon)
}

pub(super) fn stem(file: &Path) -> String {
    file.file_stem()
        .map_or(String::new(), |s| s.to_string_lossy().into_owned())
}

pub(super) fn invalid_name_message(name: &str) -> String {
    if let Some((base, _)) = name.split_once('@').filter(|(b, _)| is_valid_name(b)) {
        return format!(
            "`{}` is not a valid daemon name: `@` is kept for the copies of a daemon with `instances`; to run several copies, name the file `{base}.toml` and set `instances = N` in it (the copies are `{base}@1` ... `{base}@N`)",
            quote(name)
        );
    }
    format!(
        "`{}` is not a valid daemon name: use letters, digits, `_`, `.` and `-`, starting with a letter or digit, at most 64 characters",
        quote(name)
    )
}

/// The bytes of a daemon file and what is known about where they came from.
pub(super) struct Source<'a> {
    file: &'a Path,
    bytes: &'a [u8],
    /// The file's device and inode, when it was read from disk.
    id: Option<(u64, u64)>,
    canonical_config_dir: Option<&'a Path>,
}

impl Source<'_> {
    pub(super) fn load(&self, dirs: &Dirs, name: String) -> Result<LoadedFile, Invalid> {
        let source = match std::str::from_utf8(self.bytes) {
            Ok(text) => text,
            Err(e) => {
                let at = e.valid_up_to();
                let valid = std::str::from_utf8(&self.bytes[..at]).unwrap_or_default();
                let location = diagnostic::line_col(valid, at);
                return Err(invalid(
                    self.file,
                    vec![Diagnostic::located(
                        self.file,
                        location,
                        "not valid UTF-8; a daemon file is UTF-8 text",
                    )],
                ));
            }
        };
        let base = self.file.parent().unwrap_or(Path::new("/"));
        let mut builder = Builder {
            file: self.file,
            file_id: self.id,
            source,
            base,
            dirs,
            canonical_config_dir: self.canonical_config_dir,
            problems: Vec::new(),
            hidden: 0,
            places: PlaceOffsets::default(),
            instances: None,
        };
        let daemon = builder.build(name);
        builder.finish(daemon)
    }
}

/// The device and inode of the file at `path`, if it exists.
pub(in crate::config) fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Returns true if and only if `a` and `b` are one file: the same path, or the same
/// device and inode where both exist.
pub(in crate::config) fn is_same_path(a: &Path, b: &Path) -> bool {
    a == b || file_id(a).is_some_and(|id| file_id(b) == Some(id))
}

/// `Some(n)` when `path` is `log.n`, one of the rotated files of the log `log` (with
/// `keep` of them kept); `is_log` says whether `log` is a log at all.
pub(in crate::config) fn rotation_of(
    path: &Path,
    log: &Path,
    keep: u32,
    is_log: bool,
) -> Option<u32> {
    if !is_log || path.parent() != log.parent() {
        return None;
    }
    let name = path.file_name()?.as_bytes();
    let log_name = log.file_name()?.as_bytes();
    let suffix = name.strip_prefix(log_name)?.strip_prefix(b".")?;
    let n: u32 = std::str::from_utf8(suffix).ok()?.parse().ok()?;
    (1..=keep).contains(&n).then_some(n)
}

/// `path` made absolute against `base`, with `.` and `..` folded away.
pub(super) fn resolve(base: &Path, path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in base.join(path).components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

//! `env_file`: files of `KEY=VALUE` lines read at each start of a daemon, before its
//! `env` (which wins), in the syntax of systemd's `EnvironmentFile=` (systemd's
//! `src/basic/env-file.c`), so that the files people already have work unchanged:
//!
//! - blank lines are skipped; a line whose first non-blank character is `#` or `;`
//!   is a comment (there are no comments after a value: `A=b # c` is `b # c`);
//! - blanks around the key and `=` and before the value are dropped, and an unquoted
//!   value loses its trailing blanks; `export KEY=VALUE` is `KEY=VALUE`;
//! - `'...'` is taken as it is; in `"..."` a backslash escapes `"`, `\`, `` ` `` and
//!   `$`, and is kept before any other character; outside quotes a backslash makes
//!   the next character literal; a backslash at the end of a line, quoted or not,
//!   joins the next line to it (continuation);
//! - quoted and unquoted parts next to each other join (`A="x"'y'z` is `xyz`);
//! - no `$VAR` expansion, as `EnvironmentFile=` does none.
//!
//! Where systemd logs a line and skips it, dmgr refuses the file with the line and
//! column, in `check` and at `start`: a line without `=`, a name that is not a
//! variable name, a quote left open at the end of the file, a NUL byte, text that is
//! not UTF-8. This module parses and reads; the keeper calls [`load`] at each start.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod parse;

pub use parse::{exported_names, parse, SyntaxError};

use super::diagnostic::{self, Diagnostic, Severity, MAX_SHOWN};
use crate::text::show_path;

/// The largest environment file dmgr reads: such a file is a few hundred bytes.
pub const MAX_ENV_FILE_SIZE: u64 = 1 << 20;

/// One entry of `env_file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvFile {
    /// The file (absolute).
    #[serde(with = "crate::text::path_bytes")]
    pub path: PathBuf,
    /// Whether it was written with a leading `-`: a missing file is then skipped.
    pub optional: bool,
}

impl EnvFile {
    /// The entry as written in the daemon file: the path, with `-` before it if the
    /// file may be missing (as systemd's `EnvironmentFile=` writes it too).
    pub fn as_written(&self) -> String {
        let dash = if self.optional { "-" } else { "" };
        format!("{dash}{}", self.path.display())
    }
}

/// The variables of every file of `env_file`, in order (a later one overrides an
/// earlier one of the same name), and a digest of what was read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// `(name, value)` in file order.
    pub vars: Vec<(String, String)>,
    /// A digest of the files' paths and contents (and which optional files were
    /// missing): `apply` restarts a daemon whose digest changed since it started.
    pub digest: u64,
}

/// What reading one file of `env_file` found.
enum Read {
    /// An optional file that does not exist.
    Absent,
    /// Its text.
    Text(String),
}

/// Why a file of `env_file` cannot be used, as diagnostics against that file.
struct Unusable(Vec<Diagnostic>);

/// Reads one file: refused as the daemon files are when dmgr runs as root and
/// another user could write it or its directory (see [`open`]), and as large or not
/// UTF-8. `warnings` gets what `check` warns about.
fn read(file: &EnvFile, warnings: &mut Vec<Diagnostic>) -> Result<Read, Unusable> {
    let path = &file.path;
    let whole = |message: String| Unusable(vec![Diagnostic::file(path, message)]);
    let (handle, meta) = match open(path) {
        Ok(opened) => opened,
        Err(Unopened::Io(e)) if e.kind() == std::io::ErrorKind::NotFound && file.optional => {
            return Ok(Read::Absent)
        }
        Err(Unopened::Io(e)) => return Err(whole(format!("cannot read: {}", os_reason(&e)))),
        Err(Unopened::Refused(why)) => return Err(whole(format!("refused: {why}"))),
    };
    if let Some(problem) = super::daemon::unsafe_owner(&meta, path) {
        return Err(whole(problem));
    }
    if crate::files::euid() == 0 && meta.mode() & 0o004 != 0 {
        warnings.push(Diagnostic {
            file: path.clone(),
            location: (1, 1),
            severity: Severity::Warning,
            message: format!(
                "readable by every user, and an environment file often holds secrets; run `chmod o-r {}`",
                show_path(path)
            ),
        });
    }
    if meta.len() > MAX_ENV_FILE_SIZE {
        return Err(whole(format!(
            "too large ({} bytes); an environment file is at most 1 MiB",
            meta.len()
        )));
    }
    let bytes = crate::files::read_to_end(&handle, meta.len() as usize + 1)
        .map_err(|e| whole(format!("cannot read: {}", os_reason(&e))))?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Read::Text(text)),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let valid = std::str::from_utf8(&e.as_bytes()[..at]).unwrap_or_default();
            Err(Unusable(vec![Diagnostic::located(
                path,
                diagnostic::line_col(valid, at),
                "not valid UTF-8; an environment file is UTF-8 text",
            )]))
        }
    }
}

/// Why a file of `env_file` could not be opened.
enum Unopened {
    /// The OS said no (a missing file among them).
    Io(std::io::Error),
    /// dmgr refuses it, and why.
    Refused(String),
}

/// Opens a file of `env_file` for reading. As root, the file is opened relative to
/// its directory, checked as a run directory is (it and every directory above it
/// root's alone, see [`crate::trusted_dir`]), with `O_NOFOLLOW`: where the daemon's
/// user could write the directory, they could swap the file for a symlink to a file
/// of root's, and the root keeper would put its lines in the daemon's environment
/// (issue 22, finding 2). Other users read their files as before: nothing they
/// could be tricked into reading is not theirs to read anyway.
fn open(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), Unopened> {
    use crate::trusted_dir::{LastLink, TrustedDir};
    if crate::files::euid() != 0 {
        return crate::files::open_regular(path).map_err(Unopened::Io);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Unopened::Refused("it names no file in a directory".into()));
    };
    let dir = match TrustedDir::open(dir, false, LastLink::Follow) {
        Ok(dir) => dir,
        Err(crate::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(Unopened::Io(source))
        }
        Err(crate::Error::Io { source, .. }) => {
            return Err(Unopened::Refused(format!(
                "its directory {} cannot be trusted: {source}",
                show_path(dir)
            )))
        }
        Err(other) => return Err(Unopened::Refused(other.to_string())),
    };
    let file = dir
        .open_file(name, nix::fcntl::OFlag::O_RDONLY, 0)
        .map_err(|e| match e.raw_os_error() {
            Some(_) => Unopened::Io(e),
            // dmgr's own refusals: a symlink, not a regular file.
            None => Unopened::Refused(e.to_string()),
        })?;
    let meta = file.metadata().map_err(Unopened::Io)?;
    Ok((file, meta))
}

/// The diagnostics of a file's syntax errors, located in its text.
fn located(path: &Path, text: &str, errors: &[SyntaxError]) -> Vec<Diagnostic> {
    let offsets: Vec<usize> = errors.iter().map(|e| e.offset).collect();
    let places = diagnostic::line_cols(text, &offsets);
    let mut out: Vec<Diagnostic> = errors
        .iter()
        .zip(places)
        .take(MAX_SHOWN)
        .map(|(e, at)| Diagnostic::located(path, at, e.message.clone()))
        .collect();
    if errors.len() > MAX_SHOWN {
        out.push(Diagnostic::file(
            path,
            format!(
                "more problems not shown (at most {MAX_SHOWN} a file); fix the ones above first"
            ),
        ));
    }
    out
}

/// Reads every file of `files` in order, as the keeper does at each start: the
/// variables and their digest, or why the daemon cannot start, naming the file
/// (`ENVFILE:LINE:COL: message` for a syntax error).
pub fn load(files: &[EnvFile]) -> Result<Loaded, String> {
    let mut loaded = Loaded::default();
    let mut digest = Digest::new();
    for file in files {
        digest.add(file.path.as_os_str().as_bytes());
        match read(file, &mut Vec::new()) {
            Ok(Read::Absent) => digest.add(b"\0absent"),
            Ok(Read::Text(text)) => {
                digest.add(b"\0present\0");
                digest.add(text.as_bytes());
                match parse(&text) {
                    Ok(vars) => loaded.vars.extend(vars),
                    Err(errors) => {
                        return Err(describe(&located(&file.path, &text, &errors)));
                    }
                }
            }
            Err(Unusable(problems)) => return Err(describe(&problems)),
        }
    }
    loaded.digest = digest.finish();
    Ok(loaded)
}

/// The first of `problems`, for a failed start: the reason is kept in the state
/// record and the event history, so it stays one line; `check` shows them all.
fn describe(problems: &[Diagnostic]) -> String {
    let Some(first) = problems.first() else {
        return "env_file: cannot be read".into();
    };
    match problems.len() - 1 {
        0 => format!("env_file {first}"),
        more => format!("env_file {first} (and {more} more; `dmgr check` lists them)"),
    }
}

/// What `check` says about the files of `files`: their syntax errors and the files
/// dmgr refuses, as errors; a required file that is missing or unreadable now, and
/// (as root) one that every user can read, as warnings, since a start may be run by
/// another user or after the file is put in place.
pub fn check(files: &[EnvFile]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for file in files {
        match read(file, &mut out) {
            Ok(Read::Absent) => {}
            Ok(Read::Text(text)) => {
                if let Err(errors) = parse(&text) {
                    out.extend(located(&file.path, &text, &errors));
                }
            }
            Err(Unusable(problems)) => {
                for mut problem in problems {
                    if problem.message.starts_with("cannot read") {
                        problem.severity = Severity::Warning;
                        problem.message
                            .push_str("; `start` fails until it can be read (write `-` before the path if the file may be missing)");
                    }
                    out.push(problem);
                }
            }
        }
    }
    out
}

/// The digest of what [`load`] would read now, or `None` if it would fail.
pub fn digest(files: &[EnvFile]) -> Option<u64> {
    load(files).ok().map(|loaded| loaded.digest)
}

/// FNV-1a, 64 bits: stable across Rust releases and dmgr builds (std's hasher is
/// not), so a digest a keeper recorded compares with one computed by a newer `dmgr`.
struct Digest(u64);

impl Digest {
    fn new() -> Digest {
        Digest(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The OS reason without Rust's " (os error N)" suffix.
fn os_reason(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests;

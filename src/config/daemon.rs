//! The validated daemon: every key of the file resolved (paths absolute, durations,
//! sizes and signals parsed, defaults filled in). Built from `raw` by `load_file`, which
//! collects every problem in the file instead of stopping at the first, and locates
//! them all in one pass over the file at the end.
//!
//! Values that would defeat their purpose are refused with the reason: numbers out of
//! their bounds, a stop signal that cannot stop, a reload signal that kills, a pidfile
//! or log that would overwrite a daemon file, dmgr's own files or another path of the
//! same daemon (other daemons' paths are `validate`'s, which sees every file).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

use super::diagnostic::{self, quote, Diagnostic, Severity, MAX_SHOWN};
use super::discover::Dirs;
use super::raw::{self, Value, KEYS, READY_KEYS};
use super::suggest;
use super::units::{self, Signal, Size};
use super::{Invalid, Loaded};
use crate::output::show_path;

/// One daemon, as dmgr runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Daemon {
    /// The file stem, a valid daemon name.
    pub name: String,
    /// The absolute path of the TOML file.
    pub file: PathBuf,
    /// The argv to exec; never empty.
    pub command: Vec<String>,
    /// Free text shown by `status`.
    pub description: Option<String>,
    /// The daemon's working directory (absolute).
    pub working_dir: PathBuf,
    /// Variables added to (or, with `clear_env`, making up) the environment.
    pub env: BTreeMap<String, String>,
    /// Whether the environment is exactly `env`.
    pub clear_env: bool,
    /// The user to run as (root only).
    pub user: Option<String>,
    /// The group to run as (root only).
    pub group: Option<String>,
    /// The daemon's umask.
    pub umask: u32,
    /// The pidfile dmgr locks and writes the daemon's PID to (absolute): the `pidfile`
    /// key, except for `type = "forking"`, where that key names the daemon's own file
    /// ([`Daemon::forking_pidfile`]) and this is `RUN_DIR/NAME.pid`.
    pub pidfile: PathBuf,
    /// For `type = "forking"` with `pidfile` set: the pidfile the daemon writes itself,
    /// which dmgr only reads (absolute).
    pub forking_pidfile: Option<PathBuf>,
    /// The log for stdout, and stderr unless `stderr_log` is set (absolute).
    pub log: PathBuf,
    /// A separate log for stderr (absolute).
    pub stderr_log: Option<PathBuf>,
    /// Rotate when a log reaches this size; 0 never rotates.
    pub log_max_size: Size,
    /// How many rotated files to keep.
    pub log_keep: u32,
    /// Whether each line is prefixed with an RFC 3339 UTC time at capture.
    pub log_timestamps: bool,
    /// Whether `--all` and `apply` include this daemon.
    pub autostart: bool,
    /// When the keeper restarts the daemon.
    pub restart: RestartPolicy,
    /// The first restart delay; doubles per quick failure up to 60 s.
    pub restart_delay: Duration,
    /// Quick failures in a row before the keeper gives up.
    pub max_restarts: u32,
    /// How long the process must stay up for `start` to succeed.
    pub start_wait: Duration,
    /// The readiness check `start` waits for.
    pub ready: Option<ReadyCheck>,
    /// How long `start` waits for `ready`.
    pub ready_timeout: Duration,
    /// Sent to the process group by `stop`.
    pub stop_signal: Signal,
    /// How long after `stop_signal` before SIGKILL.
    pub stop_timeout: Duration,
    /// Sent by `reload`, unless `reload_command` is set.
    pub reload_signal: Signal,
    /// Run by `reload` instead of sending `reload_signal`.
    pub reload_command: Option<Vec<String>>,
    /// Run by a requested stop before the stop signal goes to what is left.
    pub stop_command: Option<Vec<String>>,
    /// Daemons to start before this one.
    pub after: Vec<String>,
    /// `simple` or `forking`.
    pub kind: DaemonType,
}

/// When the keeper restarts the daemon after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never.
    No,
    /// After a non-zero exit or a death by signal.
    OnFailure,
    /// After any exit.
    Always,
}

/// How the command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DaemonType {
    /// The command is the daemon.
    Simple,
    /// The command daemonizes itself; the process it leaves behind is the daemon.
    Forking,
}

/// A readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadyCheck {
    /// A TCP connection to `host:port` succeeds.
    Tcp(String),
    /// The file exists (absolute path).
    File(#[serde(with = "crate::state::path_bytes")] PathBuf),
    /// The command exits 0.
    Exec(Vec<String>),
    /// A GET of `http://host:port/path` answers 2xx or 3xx.
    Http(String),
}

/// Returns true if and only if `name` is a valid daemon name:
/// `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 64 characters.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The most rotated files a daemon may keep: rotation renames each of them, and
/// `dmgr logs` reads back through at most this many.
pub const MAX_LOG_KEEP: u32 = 1000;
/// The most quick failures in a row before the keeper gives up: at the 60 s backoff
/// cap this many take almost two years, so a larger number is a typo.
pub const MAX_RESTARTS: u32 = 1_000_000;
/// The smallest `log_max_size` but 0: a smaller log would rotate at nearly every line.
pub const MIN_LOG_SIZE: u64 = 4 << 10;
/// The largest `log_max_size`: a log this big is never rotated in practice.
pub const MAX_LOG_SIZE: u64 = 1 << 40;

/// Returns true if and only if the directory entry `file_name` is a daemon file:
/// `*.toml`, not hidden, not an editor leftover.
fn is_daemon_file(file_name: &OsStr) -> bool {
    let bytes = file_name.as_bytes();
    bytes.ends_with(b".toml") && !bytes.starts_with(b".")
}

/// The stems of the daemon files in the config directory, sorted; nothing is read.
pub(super) fn file_names(dirs: &Dirs) -> Vec<String> {
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
pub(super) struct Places {
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
pub(super) struct LoadedFile {
    pub daemon: Daemon,
    pub places: Places,
    pub warnings: Vec<Diagnostic>,
}

/// Why the config directory as a whole cannot be used, or `None` when it can.
pub(super) fn config_dir_problem(dirs: &Dirs) -> Option<crate::Error> {
    std::fs::read_dir(&dirs.config_dir)
        .err()
        .map(|e| config_dir_error(dirs, &e))
}

/// The error (exit 2) for a config directory that `read_dir` failed on.
fn config_dir_error(dirs: &Dirs, err: &std::io::Error) -> crate::Error {
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
pub(super) fn load_dir(dirs: &Dirs) -> Result<Loaded, crate::Error> {
    let mut loaded = Loaded::default();
    let entries = std::fs::read_dir(&dirs.config_dir).map_err(|e| config_dir_error(dirs, &e))?;
    let dir_problem = std::fs::metadata(&dirs.config_dir)
        .ok()
        .and_then(|meta| unsafe_owner(&meta, &dirs.config_dir));
    let canonical = std::fs::canonicalize(&dirs.config_dir).ok();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        if !is_daemon_file(&file_name) || entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        let result = match (&dir_problem, file_name.to_str()) {
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
                loaded.warnings.extend(file.warnings);
                loaded.places.insert(file.daemon.name.clone(), file.places);
                loaded.daemons.push(file.daemon);
            }
            Err(bad) => loaded.invalid.push(bad),
        }
    }
    loaded.daemons.sort_by(|a, b| a.name.cmp(&b.name));
    loaded.invalid.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(loaded)
}

fn invalid(file: &Path, diagnostics: Vec<Diagnostic>) -> Invalid {
    Invalid {
        name: file
            .file_stem()
            .map_or(String::new(), crate::output::escape_os),
        file: file.to_path_buf(),
        diagnostics,
    }
}

/// Run as root, a file or directory that another user could write would let that user
/// run commands as root: refuse it (SPEC promise 9).
fn unsafe_owner(meta: &std::fs::Metadata, path: &Path) -> Option<String> {
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
pub(super) fn load_file(dirs: &Dirs, file: &Path) -> Result<LoadedFile, Invalid> {
    let canonical = std::fs::canonicalize(&dirs.config_dir).ok();
    load_file_in(dirs, file, canonical.as_deref())
}

/// [`load_file`] with the config directory's canonical path worked out already.
fn load_file_in(
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
/// need not exist): what [`load_file`] does once it has read them. For tests and the
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

fn stem(file: &Path) -> String {
    file.file_stem()
        .map_or(String::new(), |s| s.to_string_lossy().into_owned())
}

fn invalid_name_message(name: &str) -> String {
    format!(
        "`{}` is not a valid daemon name: use letters, digits, `_`, `.` and `-`, starting with a letter or digit, at most 64 characters",
        quote(name)
    )
}

/// The bytes of a daemon file and what is known about where they came from.
struct Source<'a> {
    file: &'a Path,
    bytes: &'a [u8],
    /// The file's device and inode, when it was read from disk.
    id: Option<(u64, u64)>,
    canonical_config_dir: Option<&'a Path>,
}

impl Source<'_> {
    fn load(&self, dirs: &Dirs, name: String) -> Result<LoadedFile, Invalid> {
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
        };
        let daemon = builder.build(name);
        builder.finish(daemon)
    }
}

/// A problem at a byte offset, located at the end with all the others.
struct Problem {
    offset: usize,
    severity: Severity,
    message: String,
    /// For a duplicate key: where it was first set, added to the message.
    first_set: Option<usize>,
}

/// The byte offsets behind [`Places`].
#[derive(Default)]
struct PlaceOffsets {
    after: Vec<usize>,
    pidfile: Option<usize>,
    log: Option<usize>,
    stderr_log: Option<usize>,
}

/// Turns the raw table into a [`Daemon`], noting each problem as it goes.
struct Builder<'a> {
    file: &'a Path,
    file_id: Option<(u64, u64)>,
    source: &'a str,
    base: &'a Path,
    dirs: &'a Dirs,
    canonical_config_dir: Option<&'a Path>,
    problems: Vec<Problem>,
    /// Problems counted but not kept (past the first [`MAX_SHOWN`] in file order).
    hidden: usize,
    places: PlaceOffsets,
}

impl<'a> Builder<'a> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problem(span.start, Severity::Error, message.into(), None);
    }

    fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problem(span.start, Severity::Warning, message.into(), None);
    }

    fn problem(
        &mut self,
        offset: usize,
        severity: Severity,
        message: String,
        first_set: Option<usize>,
    ) {
        self.problems.push(Problem {
            offset,
            severity,
            message,
            first_set,
        });
        // Keep memory bounded however many problems a file has: only the first
        // MAX_SHOWN in file order are shown, and one more marks where the rest begin.
        if self.problems.len() >= 8 * MAX_SHOWN {
            self.problems.sort_by_key(|p| p.offset);
            self.hidden += self.problems.len() - (MAX_SHOWN + 1);
            self.problems.truncate(MAX_SHOWN + 1);
        }
    }

    /// Locates every problem and place in one pass over the file and hands back the
    /// daemon, or the file's problems (at most [`MAX_SHOWN`] and a count of the rest).
    fn finish(mut self, daemon: Option<Daemon>) -> Result<LoadedFile, Invalid> {
        self.problems.sort_by_key(|p| p.offset);
        let shown = self.problems.len().min(MAX_SHOWN);
        let hidden = self.hidden + (self.problems.len() - shown);
        let errors = hidden
            + self.problems[..shown]
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .count();
        let mut offsets: Vec<usize> = Vec::new();
        for p in &self.problems[..shown] {
            offsets.push(p.offset);
            offsets.extend(p.first_set);
        }
        if hidden > 0 {
            offsets.push(
                self.problems
                    .get(shown)
                    .map_or(self.source.len(), |p| p.offset),
            );
        }
        let places_from = offsets.len();
        offsets.extend(&self.places.after);
        for place in [self.places.pidfile, self.places.log, self.places.stderr_log] {
            offsets.push(place.unwrap_or(0));
        }
        let located = diagnostic::line_cols(self.source, &offsets);
        let mut at = located.iter().copied();
        let mut diagnostics = Vec::new();
        for p in self.problems.drain(..shown) {
            let location = at.next().unwrap_or((1, 1));
            let mut message = p.message;
            if p.first_set.is_some() {
                let (line, col) = at.next().unwrap_or((1, 1));
                message.push_str(&format!(": already set at {line}:{col}; keep one of them"));
            }
            diagnostics.push(Diagnostic {
                file: self.file.to_path_buf(),
                location,
                severity: p.severity,
                message,
            });
        }
        if hidden > 0 {
            diagnostics.push(Diagnostic::located(
                self.file,
                at.next().unwrap_or((1, 1)),
                format!(
                    "{hidden} more problems not shown (at most {MAX_SHOWN} a file); fix the ones above first"
                ),
            ));
        }
        let mut places = located[places_from..].iter().copied();
        match daemon {
            Some(daemon) if errors == 0 => {
                let after = places.by_ref().take(self.places.after.len()).collect();
                let mut next = || places.next().unwrap_or((1, 1));
                let places = Places {
                    file_id: self.file_id,
                    after,
                    pidfile: next(),
                    log: next(),
                    stderr_log: next(),
                };
                Ok(LoadedFile {
                    daemon,
                    places,
                    warnings: diagnostics,
                })
            }
            _ => {
                diagnostics.retain(Diagnostic::is_error);
                Err(invalid(self.file, diagnostics))
            }
        }
    }

    fn build(&mut self, name: String) -> Option<Daemon> {
        let raw = raw::parse(self.source);
        let table = raw.table;
        self.hidden += raw.error_count - raw.errors.len();
        let mut duplicates = DuplicateIndex::default();
        for (i, (span, message)) in raw.errors.into_iter().enumerate() {
            if message == "duplicate key" && i <= MAX_SHOWN {
                let key = self.source.get(span.clone()).unwrap_or_default();
                let key = key.trim_matches(|c| c == '"' || c == '\'');
                let first = duplicates.first_before(&table, key, span.start);
                let message = format!("duplicate key `{}`", quote(key));
                self.problem(span.start, Severity::Error, message, first);
            } else {
                self.error(span, message);
            }
        }
        let mut keys: Option<suggest::Suggester<'_>> = None;
        for (key, _) in table.iter() {
            let key_name: &str = key.get_ref();
            if !KEYS.contains(&key_name) {
                let hint = keys
                    .get_or_insert_with(|| suggest::Suggester::new(KEYS))
                    .nearest(key_name)
                    .map_or(String::new(), |k| format!(", did you mean `{k}`?"));
                self.error(
                    key.span(),
                    format!("unknown key `{}`{hint}", quote(key_name)),
                );
            }
        }
        let get = |key: &str| table.get(key);

        let command = match get("command") {
            Some(value) => self.command(value),
            None => {
                let message = "missing key `command`: the command to run, as a string or an array";
                self.error(0..0, message);
                None
            }
        };
        let description = self.string(get("description"));
        let working_dir = self
            .path(get("working_dir"))
            .unwrap_or_else(|| PathBuf::from("/"));
        let env = self.env(get("env"));
        let clear_env = self.bool(get("clear_env")).unwrap_or(false);
        let user = self.name_string(get("user"), "user");
        let group = self.name_string(get("group"), "group");
        let umask = self.umask(get("umask")).unwrap_or(0o022);
        let kind = self.kind(get("type")).unwrap_or(DaemonType::Simple);
        let pidfile = self.written_path(get("pidfile"), "pidfile", &name);
        self.places.pidfile = get("pidfile").map(|v| v.span().start);
        let log = self.written_path(get("log"), "log", &name);
        self.places.log = get("log").map(|v| v.span().start);
        let stderr_log = self.written_path(get("stderr_log"), "stderr_log", &name);
        self.places.stderr_log = get("stderr_log").map(|v| v.span().start);
        // With type = "forking", `pidfile` is the program's own file; dmgr's lock and
        // PID record stay at the default.
        let (pidfile, forking_pidfile) = match (kind, pidfile) {
            (DaemonType::Forking, Some(own)) => (self.dirs.pidfile(&name), Some(own)),
            (_, set) => (set.unwrap_or_else(|| self.dirs.pidfile(&name)), None),
        };
        if forking_pidfile.as_ref() == Some(&pidfile) {
            if let Some(v) = get("pidfile") {
                self.error(v.span(), "with type = \"forking\", `pidfile` is the daemon's own file, and this is the file dmgr locks itself; leave `pidfile` out or name the file the program writes");
            }
        }
        let log = log.unwrap_or_else(|| self.dirs.log_dir.join(format!("{name}.log")));
        let log_max_size = self.log_size(get("log_max_size")).unwrap_or(Size(10 << 20));
        let log_keep = self
            .uint(
                get("log_keep"),
                MAX_LOG_KEEP,
                "rotation renames every kept file, and `dmgr logs` reads back through at most that many",
            )
            .unwrap_or(5);
        let log_timestamps = self.bool(get("log_timestamps")).unwrap_or(false);
        let autostart = self.bool(get("autostart")).unwrap_or(true);
        let restart = self
            .restart(get("restart"))
            .unwrap_or(RestartPolicy::OnFailure);
        let restart_delay = self
            .duration(get("restart_delay"))
            .unwrap_or(Duration::from_secs(1));
        let max_restarts = self
            .uint(
                get("max_restarts"),
                MAX_RESTARTS,
                "that many quick failures take almost two years at the 60 s backoff cap",
            )
            .unwrap_or(10);
        let start_wait = self
            .duration(get("start_wait"))
            .unwrap_or(Duration::from_millis(500));
        let ready = get("ready").and_then(|v| self.ready(v));
        let ready_timeout = self
            .duration(get("ready_timeout"))
            .unwrap_or(Duration::from_secs(30));
        let stop_signal = self
            .signal(get("stop_signal"), Signal::check_stop)
            .unwrap_or(Signal(nix::sys::signal::Signal::SIGTERM));
        let stop_timeout = self
            .duration(get("stop_timeout"))
            .unwrap_or(Duration::from_secs(10));
        let reload_signal = self
            .signal(get("reload_signal"), |s| s.check_reload().map(|()| None))
            .unwrap_or(Signal(nix::sys::signal::Signal::SIGHUP));
        let reload_command = get("reload_command").and_then(|v| self.argv(v));
        let stop_command = get("stop_command").and_then(|v| self.argv(v));
        if let (Some(_), Some(v)) = (&reload_command, get("reload_signal")) {
            self.error(v.span(), "`reload_signal` and `reload_command` exclude each other: `reload` runs the command instead of sending the signal; keep one");
        }
        let after = self.after(get("after"), &name);
        self.check_own_paths(
            &table,
            forking_pidfile.as_deref().unwrap_or(&pidfile),
            &log,
            stderr_log.as_deref(),
            log_keep,
        );
        Some(Daemon {
            file: self.file.to_path_buf(),
            command: command?,
            description,
            working_dir,
            env,
            clear_env,
            user,
            group,
            umask,
            pidfile,
            forking_pidfile,
            log,
            stderr_log,
            log_max_size,
            log_keep,
            log_timestamps,
            autostart,
            restart,
            restart_delay,
            max_restarts,
            start_wait,
            ready,
            ready_timeout,
            stop_signal,
            stop_timeout,
            reload_signal,
            reload_command,
            stop_command,
            after,
            kind,
            name,
        })
    }

    fn expected(&mut self, value: &Value<'_>, what: &str) {
        let found = raw::type_name(value.get_ref());
        self.error(value.span(), format!("expected {what}, found {found}"));
    }

    fn string(&mut self, value: Option<&Value<'_>>) -> Option<String> {
        let value = value?;
        match value.get_ref() {
            DeValue::String(s) if s.contains('\0') => {
                self.error(value.span(), "a NUL character is not allowed here");
                None
            }
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.expected(value, "a string");
                None
            }
        }
    }

    /// A user or group name: what `getpwnam(3)` could know, and nothing that reads as
    /// an option or a path (`-rf`, `../etc`), as systemd's relaxed rule has it.
    fn name_string(&mut self, value: Option<&Value<'_>>, what: &str) -> Option<String> {
        let span = value?.span();
        let text = self.string(value)?;
        let bad_char =
            |c: char| c.is_control() || c.is_whitespace() || matches!(c, ':' | '/' | ',');
        let valid = !text.is_empty()
            && text.len() <= 256
            && !text.starts_with(['-', '+'])
            && text != "."
            && text != ".."
            && !text.contains(bad_char);
        if !valid {
            self.error(
                span,
                format!(
                    "`{}` is not a valid {what} name: no whitespace, `:`, `/` or `,`, and not starting with `-` or `+`",
                    quote(&text)
                ),
            );
            return None;
        }
        Some(text)
    }

    fn bool(&mut self, value: Option<&Value<'_>>) -> Option<bool> {
        let value = value?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.expected(value, "true or false");
                None
            }
        }
    }

    /// An integer as TOML means it, in any radix (`0x10` is 16, `0o17` is 15).
    fn integer(&mut self, value: &Value<'_>) -> Option<i128> {
        let DeValue::Integer(int) = value.get_ref() else {
            return None;
        };
        let parsed = i128::from_str_radix(int.as_str(), int.radix()).ok();
        if parsed.is_none() {
            self.error(value.span(), format!("the number {int} is too large"));
        }
        parsed
    }

    /// A whole number from 0 to `max`; `why` says why not more.
    fn uint(&mut self, value: Option<&Value<'_>>, max: u32, why: &str) -> Option<u32> {
        let value = value?;
        if !matches!(value.get_ref(), DeValue::Integer(_)) {
            self.expected(value, "a whole number");
            return None;
        }
        let number = self.integer(value)?;
        match u32::try_from(number) {
            Ok(n) if n <= max => Some(n),
            _ => {
                self.error(
                    value.span(),
                    format!("expected a whole number from 0 to {max}, found {number}: {why}"),
                );
                None
            }
        }
    }

    fn log_size(&mut self, value: Option<&Value<'_>>) -> Option<Size> {
        let value = value?;
        let size = match value.get_ref() {
            DeValue::String(s) => match s.parse::<Size>() {
                Ok(size) => size,
                Err(message) => {
                    self.error(value.span(), message);
                    return None;
                }
            },
            DeValue::Integer(_) => {
                let number = self.integer(value)?;
                match u64::try_from(number) {
                    Ok(n) => Size(n),
                    Err(_) => {
                        self.error(value.span(), format!("a size cannot be {number}"));
                        return None;
                    }
                }
            }
            _ => {
                self.expected(value, "a size like \"10MiB\"");
                return None;
            }
        };
        if size.0 != 0 && !(MIN_LOG_SIZE..=MAX_LOG_SIZE).contains(&size.0) {
            let why = if size.0 < MIN_LOG_SIZE {
                "a smaller log would rotate at nearly every line"
            } else {
                "a larger log is never rotated in practice"
            };
            self.error(
                value.span(),
                format!(
                    "`log_max_size` is {size}: write 0 to never rotate, or a size from {} to {}; {why}",
                    Size(MIN_LOG_SIZE),
                    Size(MAX_LOG_SIZE)
                ),
            );
            return None;
        }
        Some(size)
    }

    /// A signal by name, or by number in any radix, that `check` accepts for its key;
    /// `check` may also return a warning.
    fn signal(
        &mut self,
        value: Option<&Value<'_>>,
        check: impl Fn(Signal) -> Result<Option<String>, String>,
    ) -> Option<Signal> {
        let value = value?;
        let parsed = match value.get_ref() {
            DeValue::String(s) => s.parse::<Signal>(),
            DeValue::Integer(_) => {
                let number = self.integer(value)?;
                Signal::from_number(number)
            }
            _ => {
                self.expected(value, "a signal name like \"TERM\"");
                return None;
            }
        };
        let result = parsed.and_then(|signal| check(signal).map(|warning| (signal, warning)));
        match result {
            Ok((signal, warning)) => {
                if let Some(warning) = warning {
                    self.warning(value.span(), warning);
                }
                Some(signal)
            }
            Err(message) => {
                self.error(value.span(), message);
                None
            }
        }
    }

    fn duration(&mut self, value: Option<&Value<'_>>) -> Option<Duration> {
        let value = value?;
        let DeValue::String(text) = value.get_ref() else {
            self.expected(value, "a duration like \"10s\"");
            return None;
        };
        match units::parse_duration(text) {
            Ok(duration) => Some(duration),
            Err(message) => {
                self.error(value.span(), message);
                None
            }
        }
    }

    /// A path, made absolute against the directory holding the file.
    fn path(&mut self, value: Option<&Value<'_>>) -> Option<PathBuf> {
        let text = self.path_text(value)?;
        Some(resolve(self.base, Path::new(&text)))
    }

    /// The text of a path: not empty, and no longer than a path can be.
    fn path_text(&mut self, value: Option<&Value<'_>>) -> Option<String> {
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
    fn written_path(
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
                if key == "pidfile" { "pid" } else { "log" }
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
    fn is_inside_config_dir(&self, path: &Path) -> bool {
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
    fn check_own_paths(
        &mut self,
        table: &DeTable<'_>,
        pidfile: &Path,
        log: &Path,
        stderr_log: Option<&Path>,
        log_keep: u32,
    ) {
        // The defaults are distinct by construction: no file system look-up for them.
        if ["pidfile", "log", "stderr_log"]
            .iter()
            .all(|key| table.get(*key).is_none())
        {
            return;
        }
        let mut paths: Vec<(&str, &Path)> = vec![("pidfile", pidfile), ("log", log)];
        paths.extend(stderr_log.map(|p| ("stderr_log", p)));
        for i in 1..paths.len() {
            for j in 0..i {
                let (key, path) = paths[i];
                let (other, other_path) = paths[j];
                // Report it at the key set in the file (the later one if both are).
                let at = [table.get(key), table.get(other)]
                    .into_iter()
                    .flatten()
                    .map(|v| v.span())
                    .max_by_key(|span| span.start)
                    .unwrap_or(0..0);
                let message = if is_same_path(path, other_path) {
                    if (key, other) == ("stderr_log", "log") {
                        "`stderr_log` is the same file as `log`; leave it out to log both streams together".to_string()
                    } else {
                        format!(
                            "`{key}` is the same file as `{other}` ({}); give each its own path",
                            show_path(path)
                        )
                    }
                } else if let Some(n) = rotation_of(path, other_path, log_keep, other != "pidfile")
                    .or_else(|| rotation_of(other_path, path, log_keep, key != "pidfile"))
                {
                    format!("`{key}` and `{other}` collide: one is the other's rotated file `.{n}`; give each its own path")
                } else {
                    continue;
                };
                self.error(at, message);
            }
        }
    }

    fn command(&mut self, value: &Value<'_>) -> Option<Vec<String>> {
        let mut argv = match value.get_ref() {
            DeValue::String(text) => match shlex::split(text) {
                Some(words) => words,
                None => {
                    self.error(
                        value.span(),
                        "cannot split the command into words: a quote is not closed",
                    );
                    return None;
                }
            },
            DeValue::Array(items) => {
                let mut argv = Vec::new();
                for item in items {
                    match item.get_ref() {
                        DeValue::String(s) => argv.push(s.to_string()),
                        _ => self.expected(item, "a string"),
                    }
                }
                argv
            }
            _ => {
                self.expected(value, "a string or an array of strings");
                return None;
            }
        };
        if argv.first().is_none_or(|a| a.is_empty()) {
            self.error(value.span(), "the command is empty");
            return None;
        }
        if argv.iter().any(|a| a.contains('\0')) {
            self.error(value.span(), "a NUL character is not allowed in a command");
            return None;
        }
        if argv[0].contains('/') && !argv[0].starts_with('/') {
            let program = resolve(self.base, Path::new(&argv[0]));
            let Some(program) = program.to_str() else {
                self.error(
                    value.span(),
                    format!(
                        "the program {} is relative to a directory whose path is not valid UTF-8; give its absolute path",
                        show_path(&program)
                    ),
                );
                return None;
            };
            argv[0] = program.to_string();
        }
        Some(argv)
    }

    /// An argument vector written as an array (`reload_command`, `stop_command`),
    /// checked as `command` is.
    fn argv(&mut self, value: &Value<'_>) -> Option<Vec<String>> {
        if !matches!(value.get_ref(), DeValue::Array(_)) {
            self.expected(
                value,
                "an array of strings, like [\"nginx\", \"-s\", \"reload\"]",
            );
            return None;
        }
        self.command(value)
    }

    fn env(&mut self, value: Option<&Value<'_>>) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let Some(value) = value else {
            return env;
        };
        let DeValue::Table(table) = value.get_ref() else {
            self.expected(value, "a table of strings, like { PORT = \"8080\" }");
            return env;
        };
        for (key, item) in table.iter() {
            let key_text: &str = key.get_ref();
            if !is_env_name(key_text) {
                self.error(
                    key.span(),
                    format!(
                        "`{}` is not a valid environment variable name: letters, digits and `_`, not starting with a digit",
                        quote(key_text)
                    ),
                );
                continue;
            }
            match item.get_ref() {
                DeValue::String(s) if !s.contains('\0') => {
                    env.insert(key_text.to_string(), s.to_string());
                }
                DeValue::String(_) => {
                    self.error(item.span(), "a NUL character is not allowed here")
                }
                _ => self.error(
                    item.span(),
                    format!(
                        "expected a string for `env.{key_text}`, found {}; quote it",
                        raw::type_name(item.get_ref())
                    ),
                ),
            }
        }
        env
    }

    fn umask(&mut self, value: Option<&Value<'_>>) -> Option<u32> {
        let value = value?;
        let DeValue::String(text) = value.get_ref() else {
            self.expected(value, "an octal string like \"022\"");
            return None;
        };
        let octal =
            !text.is_empty() && text.len() <= 4 && text.bytes().all(|b| (b'0'..=b'7').contains(&b));
        match u32::from_str_radix(text, 8) {
            Ok(mask) if octal && mask <= 0o777 => Some(mask),
            _ => {
                self.error(
                    value.span(),
                    format!(
                        "invalid umask \"{}\": write an octal string like \"022\" or \"0027\"",
                        quote(text)
                    ),
                );
                None
            }
        }
    }

    fn restart(&mut self, value: Option<&Value<'_>>) -> Option<RestartPolicy> {
        let value = value?;
        match value.get_ref() {
            DeValue::String(s) if s == "no" => Some(RestartPolicy::No),
            DeValue::String(s) if s == "on-failure" => Some(RestartPolicy::OnFailure),
            DeValue::String(s) if s == "always" => Some(RestartPolicy::Always),
            _ => {
                self.error(
                    value.span(),
                    "expected \"no\", \"on-failure\" or \"always\"",
                );
                None
            }
        }
    }

    fn kind(&mut self, value: Option<&Value<'_>>) -> Option<DaemonType> {
        let value = value?;
        match value.get_ref() {
            DeValue::String(s) if s == "simple" => Some(DaemonType::Simple),
            DeValue::String(s) if s == "forking" => Some(DaemonType::Forking),
            _ => {
                self.error(value.span(), "expected \"simple\" or \"forking\"");
                None
            }
        }
    }

    fn ready(&mut self, value: &Value<'_>) -> Option<ReadyCheck> {
        let DeValue::Table(table) = value.get_ref() else {
            self.expected(value, "a table like { tcp = \"127.0.0.1:8080\" }");
            return None;
        };
        for (key, _) in table.iter() {
            let key_name: &str = key.get_ref();
            if !READY_KEYS.contains(&key_name) {
                let hint = suggest::nearest(key_name, READY_KEYS)
                    .map_or(String::new(), |k| format!(", did you mean `{k}`?"));
                self.error(
                    key.span(),
                    format!("unknown key `ready.{}`{hint}", quote(key_name)),
                );
            }
        }
        let present: Vec<&str> = READY_KEYS
            .iter()
            .copied()
            .filter(|k| table.get(*k).is_some())
            .collect();
        if present.len() != 1 {
            self.error(
                value.span(),
                "`ready` takes exactly one of `tcp`, `file`, `exec` or `http`",
            );
            return None;
        }
        match present[0] {
            "tcp" => {
                let item = table.get("tcp")?;
                let address = self.string(Some(item))?;
                match check_address(&address) {
                    Ok(()) => Some(ReadyCheck::Tcp(address)),
                    Err(why) => {
                        self.error(
                            item.span(),
                            format!(
                                "invalid address \"{}\": {why}; write \"host:port\", like \"127.0.0.1:8080\" or \"[::1]:8080\"",
                                quote(&address)
                            ),
                        );
                        None
                    }
                }
            }
            "file" => self.path(table.get("file")).map(ReadyCheck::File),
            "http" => {
                let item = table.get("http")?;
                let url = self.string(Some(item))?;
                match super::url::HttpUrl::parse(&url) {
                    Ok(_) => Some(ReadyCheck::Http(url)),
                    Err(why) => {
                        self.error(
                            item.span(),
                            format!(
                                "invalid URL \"{}\": {why}; write \"http://host:port/path\", like \"http://127.0.0.1:8080/healthz\"",
                                quote(&url)
                            ),
                        );
                        None
                    }
                }
            }
            _ => {
                let item = table.get("exec")?;
                self.command(item).map(ReadyCheck::Exec)
            }
        }
    }

    fn after(&mut self, value: Option<&Value<'_>>, own: &str) -> Vec<String> {
        let Some(value) = value else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.expected(value, "an array of daemon names");
            return Vec::new();
        };
        let mut names = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::String(s) if s == own => {
                    self.error(item.span(), "a daemon cannot start after itself")
                }
                DeValue::String(s) if !is_valid_name(s) => self.error(
                    item.span(),
                    format!("`{}` is not a valid daemon name", quote(s)),
                ),
                DeValue::String(s) => {
                    names.push(s.to_string());
                    self.places.after.push(item.span().start);
                }
                _ => self.expected(item, "a daemon name"),
            }
        }
        names
    }
}

/// Finds where a duplicated key was first set, with an index of every key's places
/// built once, on the first duplicate.
#[derive(Default)]
struct DuplicateIndex {
    places: Option<HashMap<String, Vec<usize>>>,
}

impl DuplicateIndex {
    fn first_before(&mut self, table: &DeTable<'_>, key: &str, offset: usize) -> Option<usize> {
        let places = self.places.get_or_insert_with(|| {
            let mut places: HashMap<String, Vec<usize>> = HashMap::new();
            index_keys(table, &mut places);
            places
        });
        places
            .get(key)?
            .iter()
            .copied()
            .filter(|&at| at < offset)
            .max()
    }
}

fn index_keys(table: &DeTable<'_>, places: &mut HashMap<String, Vec<usize>>) {
    fn value(v: &DeValue<'_>, places: &mut HashMap<String, Vec<usize>>) {
        match v {
            DeValue::Table(t) => index_keys(t, places),
            DeValue::Array(items) => items.iter().for_each(|i| value(i.get_ref(), places)),
            _ => {}
        }
    }
    for (key, item) in table.iter() {
        places
            .entry(key.get_ref().to_string())
            .or_default()
            .push(key.span().start);
        value(item.get_ref(), places);
    }
}

/// Returns true if and only if `name` is a portable environment variable name,
/// `[A-Za-z_][A-Za-z0-9_]*`, as systemd's `Environment=` requires.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a `host:port` address: a host name, an IPv4 address or a bracketed IPv6
/// address, and a port from 1 to 65535.
fn check_address(address: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or("the `[` of an IPv6 address is not closed")?;
        inside
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{}` is not an IPv6 address", quote(inside)))?;
        let port = after
            .strip_prefix(':')
            .ok_or("the port goes after the `]`, as in \"[::1]:8080\"")?;
        (inside, port)
    } else {
        let (host, port) = address.rsplit_once(':').ok_or("there is no port")?;
        if host.contains(':') {
            return Err("an IPv6 address goes in brackets".into());
        }
        let valid = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid {
            return Err(format!("`{}` is not a host name", quote(host)));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    match port.parse::<u16>() {
        Ok(0) => Err("port 0 cannot be connected to".into()),
        Ok(_) => Ok(()),
        Err(_) => Err(format!("`{}` is not a port from 1 to 65535", quote(port))),
    }
}

/// Returns true if and only if `path` is one of dmgr's own files in the run directory:
/// a lock, a state record or an event history (`*.lock`, `*.state`, `*.events`).
fn is_own_file(dirs: &Dirs, path: &Path) -> bool {
    path.parent() == Some(dirs.run_dir.as_path())
        && path
            .extension()
            .is_some_and(|ext| ext == "lock" || ext == "state" || ext == "events")
}

/// The device and inode of the file at `path`, if it exists.
pub(super) fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Returns true if and only if `a` and `b` are one file: the same path, or the same
/// device and inode where both exist.
pub(super) fn is_same_path(a: &Path, b: &Path) -> bool {
    a == b || file_id(a).is_some_and(|id| file_id(b) == Some(id))
}

/// `Some(n)` when `path` is `log.n`, one of the rotated files of the log `log` (with
/// `keep` of them kept); `is_log` says whether `log` is a log at all.
pub(super) fn rotation_of(path: &Path, log: &Path, keep: u32, is_log: bool) -> Option<u32> {
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
fn resolve(base: &Path, path: &Path) -> PathBuf {
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

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A daemon with every key at its default, running `sleep 1`.
    pub fn minimal(name: &str) -> Daemon {
        Daemon {
            name: name.to_string(),
            file: PathBuf::from(format!("/nonexistent/{name}.toml")),
            command: vec!["sleep".into(), "1".into()],
            description: None,
            working_dir: PathBuf::from("/"),
            env: BTreeMap::new(),
            clear_env: false,
            user: None,
            group: None,
            umask: 0o022,
            pidfile: PathBuf::from(format!("/nonexistent/{name}.pid")),
            forking_pidfile: None,
            log: PathBuf::from(format!("/nonexistent/{name}.log")),
            stderr_log: None,
            log_max_size: Size(10 << 20),
            log_keep: 5,
            log_timestamps: false,
            autostart: true,
            restart: RestartPolicy::OnFailure,
            restart_delay: Duration::from_secs(1),
            max_restarts: 10,
            start_wait: Duration::from_millis(500),
            ready: None,
            ready_timeout: Duration::from_secs(30),
            stop_signal: Signal(nix::sys::signal::Signal::SIGTERM),
            stop_timeout: Duration::from_secs(10),
            reload_signal: Signal(nix::sys::signal::Signal::SIGHUP),
            reload_command: None,
            stop_command: None,
            after: Vec::new(),
            kind: DaemonType::Simple,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(root: &Path) -> Dirs {
        Dirs {
            config_dir: root.join("daemons.d"),
            run_dir: root.join("run"),
            log_dir: root.join("run/log"),
        }
    }

    /// Loads `text` as `daemons.d/web.toml` of a fresh directory.
    fn load_full(text: &str) -> (tempfile::TempDir, Result<LoadedFile, Invalid>) {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = dirs(tmp.path());
        std::fs::create_dir_all(&dirs.config_dir).unwrap();
        let file = dirs.config_dir.join("web.toml");
        std::fs::write(&file, text).unwrap();
        let loaded = load_file(&dirs, &file);
        (tmp, loaded)
    }

    fn load_text(text: &str) -> Result<Daemon, Invalid> {
        load_full(text).1.map(|loaded| loaded.daemon)
    }

    fn problems(text: &str) -> Vec<String> {
        let Err(invalid) = load_text(text) else {
            panic!("should be invalid: {text:?}");
        };
        invalid.diagnostics.iter().map(Diagnostic::short).collect()
    }

    /// The one problem of a file with `command = "a"` and `extra`, without its place.
    fn problem(extra: &str) -> String {
        let found = problems(&format!("command = \"a\"\n{extra}\n"));
        assert_eq!(found.len(), 1, "{found:?}");
        found[0]
            .split_once(": ")
            .map_or(String::new(), |(_, m)| m.to_string())
    }

    #[test]
    fn only_command_is_required_and_defaults_fill_the_rest() {
        let d = load_text("command = \"python3 -m http.server 8000\"\n").unwrap();
        assert_eq!(d.command, ["python3", "-m", "http.server", "8000"]);
        assert_eq!(d.working_dir, Path::new("/"));
        assert_eq!(d.umask, 0o022);
        assert_eq!(d.restart, RestartPolicy::OnFailure);
        assert_eq!(d.start_wait, Duration::from_millis(500));
        assert_eq!(d.stop_signal.name(), "TERM");
        assert_eq!(d.reload_signal.name(), "HUP");
        assert_eq!(d.log_max_size, Size(10 << 20));
        assert_eq!(d.log_keep, 5);
        assert!(d.autostart && !d.clear_env && !d.log_timestamps);
        assert!(d.pidfile.ends_with("run/web.pid"));
        assert!(d.log.ends_with("run/log/web.log"));
    }

    #[test]
    fn an_http_ready_check_is_validated() {
        let d = load_text("command = \"a\"\nready = { http = \"http://127.0.0.1:8080/up\" }\n");
        let http = ReadyCheck::Http("http://127.0.0.1:8080/up".into());
        assert_eq!(d.unwrap().ready, Some(http));
        assert!(problem("ready = { http = \"https://x/\" }").contains("https is not supported"));
        assert!(problem("ready = { http = \"http://x:0/\" }").contains("invalid URL"));
    }

    #[test]
    fn every_key_parses() {
        let d = load_text(
            r#"
command = ["./bin/server", "--port", "8080"]
description = "the web server"
working_dir = "../srv"
env = { PORT = "8080", MODE = "prod", _X1 = "" }
clear_env = true
user = "nobody"
group = "nogroup"
umask = "0027"
pidfile = "../pids/web.pid"
log = "/var/tmp/web.log"
stderr_log = "../logs/web.err"
log_max_size = "512KiB"
log_keep = 3
log_timestamps = true
autostart = false
restart = "always"
restart_delay = "250ms"
max_restarts = 2
start_wait = "0s"
ready = { tcp = "127.0.0.1:8080" }
ready_timeout = "5s"
stop_signal = "INT"
stop_timeout = "2m"
reload_signal = "USR1"
stop_command = ["./bin/server", "--shutdown"]
after = ["db"]
type = "forking"
"#,
        )
        .unwrap();
        assert!(
            d.command[0].ends_with("daemons.d/bin/server"),
            "{:?}",
            d.command
        );
        assert!(d.working_dir.ends_with("srv") && !d.working_dir.to_string_lossy().contains(".."));
        assert_eq!(d.env.get("PORT").map(String::as_str), Some("8080"));
        assert_eq!(d.umask, 0o027);
        // type = "forking": the pidfile is the program's; dmgr's lock stays in the run dir.
        assert!(d.forking_pidfile.unwrap().ends_with("pids/web.pid"));
        assert!(d.pidfile.ends_with("run/web.pid"));
        assert!(d.stop_command.unwrap()[0].ends_with("daemons.d/bin/server"));
        assert_eq!(d.log, Path::new("/var/tmp/web.log"));
        assert_eq!(d.log_max_size, Size(512 * 1024));
        assert_eq!(d.ready, Some(ReadyCheck::Tcp("127.0.0.1:8080".into())));
        assert_eq!(d.stop_timeout, Duration::from_secs(120));
        assert_eq!(d.stop_signal.name(), "INT");
        assert_eq!(d.after, ["db"]);
        assert_eq!(d.kind, DaemonType::Forking);
        assert_eq!(
            (d.restart, d.max_restarts, d.log_keep),
            (RestartPolicy::Always, 2, 3)
        );
    }

    /// Issue 10: every problem has a LINE:COL, and a problem of the file as a whole
    /// (here the missing `command`) points at 1:1.
    #[test]
    fn every_problem_in_a_file_is_reported_with_its_place() {
        let found =
            problems("comand = \"x\"\nrestart = \"sometimes\"\nstop_timeout = 10\nlog_keep = -1\n");
        assert_eq!(
            found,
            [
                "1:1: unknown key `comand`, did you mean `command`?",
                "1:1: missing key `command`: the command to run, as a string or an array",
                "2:11: expected \"no\", \"on-failure\" or \"always\"",
                "3:16: expected a duration like \"10s\", found an integer",
                "4:12: expected a whole number from 0 to 1000, found -1: rotation renames every kept file, and `dmgr logs` reads back through at most that many",
            ]
        );
    }

    #[test]
    fn bad_values_name_the_fix() {
        assert_eq!(
            problems("command = \"a 'b\"\n"),
            ["1:11: cannot split the command into words: a quote is not closed"]
        );
        assert_eq!(problems("command = []\n"), ["1:11: the command is empty"]);
        assert_eq!(
            problem("umask = \"999\""),
            "invalid umask \"999\": write an octal string like \"022\" or \"0027\""
        );
        assert!(problem("stop_signal = \"TERMINATE\"").contains("unknown signal"));
        assert!(problem("ready = { tcp = \"x\", file = \"y\" }").contains("exactly one"));
        assert!(problems("command = \"a\"\nready = { exe = [\"true\"] }\n")
            .iter()
            .any(|p| p.ends_with("did you mean `exec`?")));
        assert!(problem("after = [\"web\"]").contains("after itself"));
        assert!(problem("log_max_size = \"10 parsecs\"").contains("invalid size"));
    }

    #[test]
    fn a_simple_daemon_keeps_its_pidfile_and_commands_are_argv_arrays() {
        let d = load_text("command = \"a\"\npidfile = \"../pids/web.pid\"\nreload_command = [\"kill\", \"-HUP\", \"$MAINPID\"]\n").unwrap();
        assert!(d.pidfile.ends_with("pids/web.pid") && d.forking_pidfile.is_none());
        assert_eq!(d.reload_command.unwrap(), ["kill", "-HUP", "$MAINPID"]);
        assert_eq!(
            problems("command = \"a\"\nstop_command = \"nginx -s quit\"\n"),
            ["2:16: expected an array of strings, like [\"nginx\", \"-s\", \"reload\"], found a string"]
        );
        assert_eq!(
            problems("command = \"a\"\nstop_command = []\n"),
            ["2:16: the command is empty"]
        );
        assert!(
            problems("command = \"a\"\nreload_signal = \"USR1\"\nreload_command = [\"x\"]\n")[0]
                .contains("exclude each other")
        );
        assert!(
            problems("command = \"a\"\ntype = \"forking\"\npidfile = \"../run/web.pid\"\n")[0]
                .contains("the daemon's own file")
        );
    }

    #[test]
    fn syntax_errors_and_invalid_utf8_are_located() {
        assert!(problems("command = \"a\"\nx = = 1\n")
            .iter()
            .any(|p| p.starts_with("2:")));
        let tmp = tempfile::tempdir().unwrap();
        let dirs = dirs(tmp.path());
        std::fs::create_dir_all(&dirs.config_dir).unwrap();
        let file = dirs.config_dir.join("web.toml");
        std::fs::write(&file, b"command = \"\xff\"\n").unwrap();
        let invalid = load_file(&dirs, &file).err().unwrap();
        assert!(invalid.diagnostics[0]
            .message
            .starts_with("not valid UTF-8"));
        assert_eq!(invalid.diagnostics[0].location, (1, 12));
    }

    #[test]
    fn huge_and_odd_values_are_refused_with_a_reason() {
        let found = problems("command = \"x\"\nrestart_delay = \"99999999999999h\"\nlog_keep = 99999999999999999999\n\"k\\u0000\" = 1\n");
        assert!(found.iter().any(|p| p.contains("too long")), "{found:?}");
        assert!(found.iter().any(|p| p.starts_with("3:12:")), "{found:?}");
        assert!(
            found.iter().any(|p| p.contains("unknown key `k\0`")),
            "{found:?}"
        );
        let tmp = tempfile::tempdir().unwrap();
        let dirs = dirs(tmp.path());
        std::fs::create_dir_all(&dirs.config_dir).unwrap();
        let file = dirs.config_dir.join("big.toml");
        std::fs::write(&file, vec![b'#'; 2 << 20]).unwrap();
        let invalid = load_file(&dirs, &file).err().unwrap();
        assert!(invalid.diagnostics[0].message.contains("too large"));
        assert_eq!(invalid.diagnostics[0].location, (1, 1));
    }

    /// Issue 16: integers mean what TOML says in any radix.
    #[test]
    fn integers_in_any_radix_mean_what_toml_says() {
        let d = load_text("command = \"a\"\nstop_signal = 0o17\nlog_max_size = 0x10000\nlog_keep = 0b11\nreload_signal = 0xA\n").unwrap();
        assert_eq!(d.stop_signal.name(), "TERM");
        assert_eq!(d.log_max_size, Size(0x10000));
        assert_eq!(d.log_keep, 3);
        assert_eq!(d.reload_signal.name(), "USR1");
        assert!(problem("stop_signal = 0x11").contains("SIGCHLD is ignored"));
        assert!(problem("stop_signal = 99").contains("no signal number 99"));
        assert!(problem("log_max_size = 0x10").contains("is 16B"));
        assert!(problem("log_max_size = -1").contains("cannot be -1"));
    }

    /// Issue 16: numbers have bounds, each with its reason.
    #[test]
    fn numbers_are_bounded_with_a_reason() {
        let keep = problem("log_keep = 4294967295");
        assert!(
            keep.contains("from 0 to 1000") && keep.contains("rotation"),
            "{keep}"
        );
        let restarts = problem("max_restarts = 4294967295");
        assert!(restarts.contains("from 0 to 1000000") && restarts.contains("two years"));
        assert!(problem("log_max_size = \"100\"").contains("rotate at nearly every line"));
        assert!(problem("log_max_size = \"2TiB\"").contains("never rotated in practice"));
        assert!(load_text("command = \"a\"\nlog_max_size = 0\nlog_keep = 1000\n").is_ok());
        assert!(problem("restart_delay = \"400days\"").contains("at most 366 days"));
    }

    /// Issue 16: values that defeat their purpose are refused.
    #[test]
    fn values_that_defeat_their_purpose_are_refused() {
        assert!(problem("stop_signal = \"STOP\"").contains("pauses a process"));
        assert!(problem("stop_signal = \"CONT\"").contains("resumes a process"));
        assert!(problem("stop_signal = \"WINCH\"").contains("ignored"));
        assert!(problem("reload_signal = \"KILL\"").contains("cannot be caught"));
        assert!(problem("reload_signal = \"TERM\"").contains("stops daemons"));
        assert!(problem("reload_signal = \"STOP\"").contains("cannot be caught"));
        assert!(problem("umask = \"+22\"").contains("invalid umask"));
        assert!(problem("umask = \"\"").contains("invalid umask"));
        assert!(problem("env = { 1X = \"a\" }").contains("not a valid environment variable name"));
        assert!(problem("env = { \"A B\" = \"a\" }").contains("not a valid environment variable"));
        assert!(problem("user = \"-rf\"").contains("not a valid user name"));
        assert!(problem("group = \"../etc\"").contains("not a valid group name"));
        assert!(problem("ready = { tcp = \"h:0\" }").contains("port 0"));
        assert!(problem("ready = { tcp = \"[::1:80\" }").contains("not closed"));
        assert!(problem("ready = { tcp = \"::1:80\" }").contains("brackets"));
        assert!(problem("ready = { tcp = \"a b:80\" }").contains("not a host name"));
        assert!(load_text("command = \"a\"\nready = { tcp = \"[::1]:80\" }\n").is_ok());
        assert!(load_text("command = \"a\"\nready = { tcp = \"db.local:5432\" }\n").is_ok());
        assert!(problem("pidfile = \"/\"").contains("is a directory"));
        assert!(problem("log = \"../run/\"").contains("is a directory"));
    }

    /// Issue 16: `stop_signal = "KILL"` is allowed, as systemd allows it, with a
    /// warning for `check`.
    #[test]
    fn a_kill_stop_signal_is_a_warning() {
        let (_tmp, loaded) = load_full("command = \"a\"\nstop_signal = \"KILL\"\n");
        let loaded = loaded.ok().unwrap();
        assert_eq!(loaded.daemon.stop_signal.name(), "KILL");
        assert_eq!(loaded.warnings.len(), 1);
        assert_eq!(loaded.warnings[0].location, (2, 15));
        assert!(loaded.warnings[0]
            .short()
            .contains("warning: stop_signal SIGKILL"));
    }

    /// Issue 16: a pidfile or log that would overwrite a daemon file, dmgr's own
    /// files, or another path of the same daemon is refused where it is set.
    #[test]
    fn paths_dmgr_writes_cannot_be_its_own_files_or_each_other() {
        let at_config = problem("pidfile = \"pf.toml\"");
        assert!(
            at_config.contains("inside the config directory"),
            "{at_config}"
        );
        assert!(problem("log = \"lg.toml\"").contains("inside the config directory"));
        assert!(problem("stderr_log = \"sub/x.log\"").contains("inside the config directory"));
        assert!(problem("log = \"../run/web.state\"").contains("dmgr's own files"));
        assert!(problem("pidfile = \"../run/other.lock\"").contains("dmgr's own files"));
        assert!(problem("log = \"../run/web.events\"").contains("dmgr's own files"));
        let same = problems("command = \"a\"\npidfile = \"/tmp/x\"\nlog = \"/tmp/x\"\n");
        assert_eq!(
            same,
            ["3:7: `log` is the same file as `pidfile` (/tmp/x); give each its own path"]
        );
        assert!(problem("log = \"../run/web.pid\"").contains("same file as `pidfile`"));
        assert!(problem("stderr_log = \"../run/web.pid\"").contains("same file as `pidfile`"));
        assert!(problem("pidfile = \"../run/log/web.log.2\"").contains("rotated file `.2`"));
        assert!(load_text("command = \"a\"\npidfile = \"../run/log/web.log.6\"\n").is_ok());
        assert!(problem("stderr_log = \"../run/log/web.log\"").contains("leave it out"));
    }

    /// A link elsewhere to the daemon's own file is the same file.
    #[test]
    fn a_hard_link_to_the_daemon_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = dirs(tmp.path());
        std::fs::create_dir_all(&dirs.config_dir).unwrap();
        let file = dirs.config_dir.join("web.toml");
        std::fs::write(&file, "command = \"a\"\npidfile = \"../link\"\n").unwrap();
        std::fs::hard_link(&file, tmp.path().join("link")).unwrap();
        let invalid = load_file(&dirs, &file).err().unwrap();
        assert!(
            invalid.diagnostics[0]
                .message
                .contains("this daemon's own file"),
            "{:?}",
            invalid.diagnostics
        );
    }

    /// Issue 16: a duplicate key names the key and where it was first set.
    #[test]
    fn a_duplicate_key_names_the_key_and_its_first_place() {
        assert_eq!(
            problems("command = \"a\"\nrestart = \"no\"\ncommand = \"b\"\n"),
            ["3:1: duplicate key `command`: already set at 1:1; keep one of them"]
        );
        assert_eq!(
            problems("command = \"a\"\n[env]\nA = \"1\"\nA = \"2\"\n"),
            ["4:1: duplicate key `A`: already set at 3:1; keep one of them"]
        );
    }

    /// Issue 16: a 1 MiB file of errors costs time in proportion to its size, and
    /// shows at most MAX_SHOWN problems and a count of the rest; a 1 MB unknown key
    /// is not echoed whole.
    #[test]
    fn a_file_of_errors_is_reported_in_linear_time_and_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = dirs(tmp.path());
        let file = dirs.config_dir.join("web.toml");
        for text in [
            "=\n".repeat(1 << 19),
            "a = = 1\n".repeat(1 << 17),
            format!("command = \"a\"\nafter = [{}]\n", "1,".repeat(300_000)),
            "x = 1\n".repeat(170_000),
        ] {
            let started = std::time::Instant::now();
            let invalid = load_bytes(&dirs, &file, text.as_bytes()).err().unwrap();
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "{:?}",
                started.elapsed()
            );
            assert_eq!(invalid.diagnostics.len(), MAX_SHOWN + 1);
            let last = invalid.diagnostics.last().unwrap();
            assert!(last.message.contains("more problems not shown"), "{last:?}");
            let mut locations: Vec<_> = invalid.diagnostics.iter().map(|d| d.location).collect();
            locations.sort();
            assert_eq!(
                locations,
                invalid
                    .diagnostics
                    .iter()
                    .map(|d| d.location)
                    .collect::<Vec<_>>()
            );
        }
        let long_key = format!("command = \"a\"\n{} = 1\n", "k".repeat(1 << 20));
        let invalid = load_bytes(&dirs, &file, &long_key.as_bytes()[..(1 << 20) - 1]).err();
        let message = &invalid.unwrap().diagnostics[0].message;
        assert!(message.len() < 200, "{} bytes", message.len());
    }

    #[test]
    fn a_relative_program_under_a_non_utf8_directory_is_refused() {
        use std::os::unix::ffi::OsStrExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join(OsStr::from_bytes(b"x\xff"));
        let dirs = dirs(&root);
        let file = dirs.config_dir.join("web.toml");
        let invalid = load_bytes(&dirs, &file, b"command = \"./bin/server\"\n")
            .err()
            .unwrap();
        assert!(invalid.diagnostics[0].message.contains("not valid UTF-8"));
        let d = load_bytes(&dirs, &file, b"command = \"/bin/server\"\n").unwrap();
        assert!(d
            .pidfile
            .as_os_str()
            .as_bytes()
            .ends_with(b"x\xff/run/web.pid"));
    }

    #[test]
    fn names_follow_the_rule() {
        assert!(is_valid_name("web") && is_valid_name("a.b-c_9") && is_valid_name(&"a".repeat(64)));
        assert!(!is_valid_name("") && !is_valid_name(".web") && !is_valid_name("-web"));
        assert!(!is_valid_name("bad name") && !is_valid_name(&"a".repeat(65)));
    }

    #[test]
    fn the_directory_skips_hidden_and_editor_files_and_keeps_bad_ones_apart() {
        use std::os::unix::ffi::OsStrExt;
        let tmp = tempfile::tempdir().unwrap();
        let dirs = dirs(tmp.path());
        let dir = &dirs.config_dir;
        std::fs::create_dir_all(dir.join("sub.toml")).unwrap();
        for (name, text) in [
            ("web.toml", "command = \"sleep 1\""),
            ("broken.toml", "command = "),
            (".hidden.toml", "command = \"x\""),
            ("web.toml~", "command = \"x\""),
            (".web.toml.swp", "x"),
            ("notes.txt", "x"),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
        }
        // Issue 16: a name that is not UTF-8 is not skipped in silence.
        std::fs::write(
            dir.join(OsStr::from_bytes(b"bad\xff.toml")),
            "command = \"x\"",
        )
        .unwrap();
        let loaded = load_dir(&dirs).unwrap();
        assert_eq!(
            loaded
                .daemons
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>(),
            ["web"]
        );
        assert_eq!(
            loaded
                .invalid
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>(),
            ["bad\\xff", "broken"]
        );
        assert!(loaded.invalid[0].diagnostics[0]
            .message
            .contains("not valid UTF-8"));
        // Issue 16: a missing directory is an error, as it is for `check`.
        let missing = Dirs {
            config_dir: tmp.path().join("none"),
            ..dirs.clone()
        };
        let err = load_dir(&missing).err().unwrap();
        assert!(err.to_string().ends_with("does not exist"), "{err}");
        assert_eq!(err.exit_code(), 2);
        let file = Dirs {
            config_dir: dir.join("web.toml"),
            ..dirs
        };
        let err = load_dir(&file).err().unwrap();
        assert!(err.to_string().ends_with("is not a directory"), "{err}");
    }

    #[test]
    fn the_repository_examples_load() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("daemons.d");
        let tmp = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            config_dir: examples,
            ..dirs(tmp.path())
        };
        let loaded = super::super::load(&dirs).unwrap();
        assert!(loaded.invalid.is_empty(), "{:?}", loaded.invalid);
    }
}

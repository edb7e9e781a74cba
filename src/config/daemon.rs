//! The validated daemon: every key of the file resolved (paths absolute, durations,
//! sizes and signals parsed, defaults filled in). Built from `raw` by `load_file`, which
//! collects every problem in the file instead of stopping at the first.

use std::collections::BTreeMap;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::de::DeValue;

use super::diagnostic::Diagnostic;
use super::discover::Dirs;
use super::raw::{self, Value, KEYS, READY_KEYS};
use super::units::{self, Signal, Size};
use super::{Invalid, Loaded};

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
    File(PathBuf),
    /// The command exits 0.
    Exec(Vec<String>),
}

/// Returns true if and only if `name` is a valid daemon name:
/// `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 64 characters.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Returns true if and only if the directory entry `file_name` is a daemon file:
/// `*.toml`, not hidden, not an editor leftover.
fn is_daemon_file(file_name: &str) -> bool {
    file_name.ends_with(".toml") && !file_name.starts_with('.') && !file_name.ends_with('~')
}

/// The stems of the daemon files in the config directory, sorted; nothing is read.
pub(super) fn file_names(dirs: &Dirs) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(&dirs.config_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            is_daemon_file(&name).then(|| name.trim_end_matches(".toml").to_string())
        })
        .collect();
    names.sort_unstable();
    names
}

/// Loads every `*.toml` directly in the config directory. A missing directory loads
/// as empty; one that cannot be read is an error.
pub(super) fn load_dir(dirs: &Dirs) -> Result<Loaded, crate::Error> {
    let mut loaded = Loaded::default();
    let entries = match std::fs::read_dir(&dirs.config_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(loaded),
        Err(source) => {
            return Err(crate::Error::Io {
                action: "read the config directory",
                path: dirs.config_dir.clone(),
                source,
            })
        }
    };
    let dir_problem = std::fs::metadata(&dirs.config_dir)
        .ok()
        .and_then(|meta| unsafe_owner(&meta, &dirs.config_dir));
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if !is_daemon_file(file_name) || entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        let result = match &dir_problem {
            Some(problem) => Err(invalid(
                &path,
                vec![Diagnostic::file(&path, problem.clone())],
            )),
            None => load_file(dirs, &path),
        };
        match result {
            Ok(daemon) => loaded.daemons.push(daemon),
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
            .map_or(String::new(), |s| s.to_string_lossy().into_owned()),
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
            path.display()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "refused: writable by group or others, and dmgr runs as root; run `chmod go-w {}`",
            path.display()
        ));
    }
    None
}

/// Loads one daemon file, collecting every problem in it.
pub(super) fn load_file(dirs: &Dirs, file: &Path) -> Result<Daemon, Invalid> {
    let fail = |message: String| invalid(file, vec![Diagnostic::file(file, message)]);
    let name = file
        .file_stem()
        .map_or(String::new(), |s| s.to_string_lossy().into_owned());
    if !is_valid_name(&name) {
        return Err(fail(format!(
            "`{name}` is not a valid daemon name: use letters, digits, `_`, `.` and `-`, starting with a letter or digit, at most 64 characters"
        )));
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
    let source = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
        invalid(
            file,
            vec![Diagnostic::at(file, &text, at..at, "not valid UTF-8")],
        )
    })?;
    from_source(dirs, file, name, &source)
}

/// Builds a daemon from the text of its file, collecting every problem.
fn from_source(dirs: &Dirs, file: &Path, name: String, source: &str) -> Result<Daemon, Invalid> {
    let base = file.parent().unwrap_or(Path::new("/"));
    let mut builder = Builder {
        file,
        source,
        base,
        diagnostics: Vec::new(),
    };
    let daemon = builder.build(dirs, name);
    let mut diagnostics = builder.diagnostics;
    match daemon {
        Some(daemon) if diagnostics.is_empty() => Ok(daemon),
        _ => {
            diagnostics.sort_by_key(|d| d.location);
            Err(invalid(file, diagnostics))
        }
    }
}

/// Turns the raw table into a [`Daemon`], noting each problem as it goes.
struct Builder<'a> {
    file: &'a Path,
    source: &'a str,
    base: &'a Path,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Builder<'a> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::at(self.file, self.source, span, message));
    }

    fn build(&mut self, dirs: &Dirs, name: String) -> Option<Daemon> {
        let raw = raw::parse(self.source);
        for (span, message) in raw.errors {
            self.error(span, message);
        }
        let table = raw.table;
        for (key, _) in table.iter() {
            let key_name: &str = key.get_ref();
            if !KEYS.contains(&key_name) {
                let hint = raw::nearest(key_name, KEYS)
                    .map_or(String::new(), |k| format!(", did you mean `{k}`?"));
                let shown = key_name.escape_debug();
                self.error(key.span(), format!("unknown key `{shown}`{hint}"));
            }
        }
        let get = |key: &str| table.get(key);

        let command = match get("command") {
            Some(value) => self.command(value),
            None => {
                let message = "missing key `command`: the command to run, as a string or an array";
                self.diagnostics.push(Diagnostic::file(self.file, message));
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
        let (pidfile, forking_pidfile) = match (kind, self.path(get("pidfile"))) {
            (DaemonType::Forking, Some(own)) => (dirs.pidfile(&name), Some(own)),
            (_, set) => (set.unwrap_or_else(|| dirs.pidfile(&name)), None),
        };
        if forking_pidfile.as_ref() == Some(&pidfile) {
            if let Some(v) = get("pidfile") {
                self.error(v.span(), "with type = \"forking\", `pidfile` is the daemon's own file, and this is the file dmgr locks itself; leave `pidfile` out or name the file the program writes");
            }
        }
        let log = self
            .path(get("log"))
            .unwrap_or_else(|| dirs.log_dir.join(format!("{name}.log")));
        let stderr_log = self.path(get("stderr_log"));
        let log_max_size = self
            .parsed(get("log_max_size"), "a size like \"10MiB\"")
            .unwrap_or(Size(10 << 20));
        let log_keep = self.uint(get("log_keep")).unwrap_or(5);
        let log_timestamps = self.bool(get("log_timestamps")).unwrap_or(false);
        let autostart = self.bool(get("autostart")).unwrap_or(true);
        let restart = self
            .restart(get("restart"))
            .unwrap_or(RestartPolicy::OnFailure);
        let restart_delay = self
            .duration(get("restart_delay"))
            .unwrap_or(Duration::from_secs(1));
        let max_restarts = self.uint(get("max_restarts")).unwrap_or(10);
        let start_wait = self
            .duration(get("start_wait"))
            .unwrap_or(Duration::from_millis(500));
        let ready = get("ready").and_then(|v| self.ready(v));
        let ready_timeout = self
            .duration(get("ready_timeout"))
            .unwrap_or(Duration::from_secs(30));
        let stop_signal = self
            .parsed(get("stop_signal"), "a signal name like \"TERM\"")
            .unwrap_or(Signal(nix::sys::signal::Signal::SIGTERM));
        let stop_timeout = self
            .duration(get("stop_timeout"))
            .unwrap_or(Duration::from_secs(10));
        let reload_signal = self
            .parsed(get("reload_signal"), "a signal name like \"HUP\"")
            .unwrap_or(Signal(nix::sys::signal::Signal::SIGHUP));
        let reload_command = get("reload_command").and_then(|v| self.argv(v));
        let stop_command = get("stop_command").and_then(|v| self.argv(v));
        if let (Some(_), Some(v)) = (&reload_command, get("reload_signal")) {
            self.error(v.span(), "`reload_signal` and `reload_command` exclude each other: `reload` runs the command instead of sending the signal; keep one");
        }
        let after = self.after(get("after"), &name);
        if stderr_log.as_ref() == Some(&log) {
            if let Some(v) = get("stderr_log") {
                self.error(v.span(), "`stderr_log` is the same file as `log`; leave it out to log both streams together");
            }
        }
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

    fn name_string(&mut self, value: Option<&Value<'_>>, what: &str) -> Option<String> {
        let span = value?.span();
        let text = self.string(value)?;
        if text.is_empty() || text.contains(|c: char| c.is_whitespace() || c == ':') {
            self.error(span, format!("`{text}` is not a valid {what} name"));
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

    fn uint(&mut self, value: Option<&Value<'_>>) -> Option<u32> {
        let value = value?;
        let DeValue::Integer(int) = value.get_ref() else {
            self.expected(value, "a whole number");
            return None;
        };
        match i64::from_str_radix(int.as_str(), int.radix())
            .ok()
            .map(u32::try_from)
        {
            Some(Ok(n)) => Some(n),
            _ => {
                self.error(
                    value.span(),
                    format!("expected a whole number from 0 to {}", u32::MAX),
                );
                None
            }
        }
    }

    fn parsed<T: std::str::FromStr<Err = String>>(
        &mut self,
        value: Option<&Value<'_>>,
        what: &str,
    ) -> Option<T> {
        let value = value?;
        let text = match value.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Integer(i) => i.as_str().to_string(),
            _ => {
                self.expected(value, what);
                return None;
            }
        };
        match text.parse() {
            Ok(parsed) => Some(parsed),
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
        let span = value?.span();
        let text = self.string(value)?;
        if text.is_empty() {
            self.error(span, "expected a path, found an empty string");
            return None;
        }
        Some(resolve(self.base, Path::new(&text)))
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
            argv[0] = resolve(self.base, Path::new(&argv[0]))
                .display()
                .to_string();
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
            if key_text.is_empty() || key_text.contains(['=', '\0']) {
                self.error(
                    key.span(),
                    format!("`{key_text}` is not a valid environment variable name"),
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
        match u32::from_str_radix(text, 8) {
            Ok(mask) if mask <= 0o777 && !text.is_empty() => Some(mask),
            _ => {
                self.error(
                    value.span(),
                    format!(
                        "invalid umask {text:?}: write an octal string like \"022\" or \"0027\""
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
                let hint = raw::nearest(key_name, READY_KEYS)
                    .map_or(String::new(), |k| format!(", did you mean `{k}`?"));
                let shown = key_name.escape_debug();
                self.error(key.span(), format!("unknown key `ready.{shown}`{hint}"));
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
                "`ready` takes exactly one of `tcp`, `file` or `exec`",
            );
            return None;
        }
        match present[0] {
            "tcp" => {
                let item = table.get("tcp")?;
                let address = self.string(Some(item))?;
                match address.rsplit_once(':') {
                    Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                        Some(ReadyCheck::Tcp(address))
                    }
                    _ => {
                        self.error(item.span(), format!("invalid address {address:?}: write \"host:port\", like \"127.0.0.1:8080\""));
                        None
                    }
                }
            }
            "file" => self.path(table.get("file")).map(ReadyCheck::File),
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
                DeValue::String(s) if !is_valid_name(s) => {
                    self.error(item.span(), format!("`{s}` is not a valid daemon name"))
                }
                DeValue::String(s) => names.push(s.to_string()),
                _ => self.expected(item, "a daemon name"),
            }
        }
        names
    }
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

/// Building blocks for other modules' tests.
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

    fn load_text(text: &str) -> Result<Daemon, Invalid> {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = dirs(tmp.path());
        std::fs::create_dir_all(&dirs.config_dir).unwrap();
        let file = dirs.config_dir.join("web.toml");
        std::fs::write(&file, text).unwrap();
        load_file(&dirs, &file)
    }

    fn problems(text: &str) -> Vec<String> {
        let invalid = load_text(text).expect_err("should be invalid");
        invalid
            .diagnostics
            .iter()
            .map(|d| {
                let (line, col) = d.location.unwrap_or((0, 0));
                format!("{line}:{col}: {}", d.message)
            })
            .collect()
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
    fn every_key_parses() {
        let d = load_text(
            r#"
command = ["./bin/server", "--port", "8080"]
description = "the web server"
working_dir = "../srv"
env = { PORT = "8080", MODE = "prod" }
clear_env = true
user = "nobody"
group = "nogroup"
umask = "0027"
pidfile = "web.pid"
log = "/var/tmp/web.log"
stderr_log = "web.err"
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
        assert!(d.forking_pidfile.unwrap().ends_with("daemons.d/web.pid"));
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

    #[test]
    fn every_problem_in_a_file_is_reported_with_its_place() {
        let found =
            problems("comand = \"x\"\nrestart = \"sometimes\"\nstop_timeout = 10\nlog_keep = -1\n");
        assert_eq!(
            found,
            [
                "0:0: missing key `command`: the command to run, as a string or an array",
                "1:1: unknown key `comand`, did you mean `command`?",
                "2:11: expected \"no\", \"on-failure\" or \"always\"",
                "3:16: expected a duration like \"10s\", found an integer",
                "4:12: expected a whole number from 0 to 4294967295",
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
            problems("command = \"a\"\numask = \"999\"\n")[0],
            "2:9: invalid umask \"999\": write an octal string like \"022\" or \"0027\""
        );
        assert!(
            problems("command = \"a\"\nstop_signal = \"TERMINATE\"\n")[0]
                .contains("unknown signal")
        );
        assert!(
            problems("command = \"a\"\nready = { tcp = \"x\", file = \"y\" }\n")[0]
                .contains("exactly one")
        );
        assert!(problems("command = \"a\"\nready = { exe = [\"true\"] }\n")
            .iter()
            .any(|p| p.ends_with("did you mean `exec`?")));
        assert!(problems("command = \"a\"\nafter = [\"web\"]\n")[0].contains("after itself"));
        assert!(
            problems("command = \"a\"\nlog_max_size = \"10 parsecs\"\n")[0]
                .contains("invalid size")
        );
    }

    #[test]
    fn a_simple_daemon_keeps_its_pidfile_and_commands_are_argv_arrays() {
        let d = load_text("command = \"a\"\npidfile = \"web.pid\"\nreload_command = [\"kill\", \"-HUP\", \"$MAINPID\"]\n").unwrap();
        assert!(d.pidfile.ends_with("daemons.d/web.pid") && d.forking_pidfile.is_none());
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
        let invalid = load_file(&dirs, &file).unwrap_err();
        assert_eq!(invalid.diagnostics[0].message, "not valid UTF-8");
        assert_eq!(invalid.diagnostics[0].location, Some((1, 12)));
    }

    /// Hostile input: random bytes, mutations of a valid file and structured garbage
    /// never panic and always come back as a daemon or located problems, quickly.
    #[test]
    fn hostile_input_never_panics() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = dirs(tmp.path());
        let file = dirs.config_dir.join("web.toml");
        let valid = "command = [\"sleep\", \"1\"]\nrestart = \"always\"\nenv = { A = \"b\" }\nready = { tcp = \"127.0.0.1:80\" }\nstop_timeout = \"2s\"\n";
        // xorshift64*: deterministic, so a failure reproduces.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let alphabet = b"[]{}=\"'\\\n #.,:-0123456789abcdefghijklmnopqrstuvwxyz_\x00\xff\xc3";
        let started = std::time::Instant::now();
        for round in 0..3000 {
            let source: Vec<u8> = match round % 3 {
                0 => (0..next() % 200)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect(),
                1 => {
                    let mut bytes = valid.as_bytes().to_vec();
                    for _ in 0..1 + next() % 4 {
                        let at = (next() % bytes.len() as u64) as usize;
                        match next() % 3 {
                            0 => bytes[at] = alphabet[(next() % alphabet.len() as u64) as usize],
                            1 => {
                                bytes.remove(at);
                            }
                            _ => bytes
                                .insert(at, alphabet[(next() % alphabet.len() as u64) as usize]),
                        }
                    }
                    bytes
                }
                _ => {
                    let depth = (next() % 5000) as usize;
                    format!(
                        "command = \"x\"\nafter = {}{}\n",
                        "[".repeat(depth),
                        "]".repeat(depth)
                    )
                    .into_bytes()
                }
            };
            let Ok(text) = String::from_utf8(source) else {
                continue;
            };
            if let Err(invalid) = from_source(&dirs, &file, "web".into(), &text) {
                assert!(
                    !invalid.diagnostics.is_empty(),
                    "invalid without a reason: {text:?}"
                );
                for d in &invalid.diagnostics {
                    assert!(!d.message.is_empty());
                    if let Some((line, col)) = d.location {
                        assert!(line >= 1 && col >= 1);
                    }
                }
            }
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the loader is too slow on garbage"
        );
    }

    #[test]
    fn huge_and_odd_values_are_refused_with_a_reason() {
        let found = problems("command = \"x\"\nrestart_delay = \"99999999999999h\"\nlog_keep = 99999999999999999999\n\"k\\u0000\" = 1\n");
        assert!(found.iter().any(|p| p.contains("too long")), "{found:?}");
        assert!(found.iter().any(|p| p.starts_with("3:12:")), "{found:?}");
        assert!(
            found.iter().any(|p| p.contains("unknown key `k\\0`")),
            "{found:?}"
        );
        let tmp = tempfile::tempdir().unwrap();
        let dirs = dirs(tmp.path());
        std::fs::create_dir_all(&dirs.config_dir).unwrap();
        let file = dirs.config_dir.join("big.toml");
        std::fs::write(&file, vec![b'#'; 2 << 20]).unwrap();
        let invalid = load_file(&dirs, &file).unwrap_err();
        assert!(invalid.diagnostics[0].message.contains("too large"));
    }

    #[test]
    fn names_follow_the_rule() {
        assert!(is_valid_name("web") && is_valid_name("a.b-c_9") && is_valid_name(&"a".repeat(64)));
        assert!(!is_valid_name("") && !is_valid_name(".web") && !is_valid_name("-web"));
        assert!(!is_valid_name("bad name") && !is_valid_name(&"a".repeat(65)));
    }

    #[test]
    fn the_directory_skips_hidden_and_editor_files_and_keeps_bad_ones_apart() {
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
            ["broken"]
        );
        assert!(load_dir(&Dirs {
            config_dir: tmp.path().join("none"),
            ..dirs
        })
        .unwrap()
        .daemons
        .is_empty());
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

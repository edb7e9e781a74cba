//! The one error type, what each variant means to the user, and the exit code it maps
//! to: 1 an operation failed, 2 a usage or configuration error (an unknown daemon name
//! included). `status` picks its LSB codes itself and returns them as success.

use std::io;
use std::path::PathBuf;

use crate::config::Diagnostic;

/// Everything that can go wrong in a dmgr command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line does not make sense.
    #[error("{0}")]
    Usage(String),

    /// One or more daemon files are invalid, with every problem found.
    #[error("{}", render_diagnostics(.diagnostics))]
    Config {
        /// Every problem, in file order.
        diagnostics: Vec<Diagnostic>,
    },

    /// The config directory is missing, not a directory, or cannot be read.
    #[error("config directory {} {reason}", crate::text::show_path(.path))]
    ConfigDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it ("does not exist").
        reason: String,
        /// What to do about it.
        hint: String,
    },

    /// The run directory cannot be used: others could write it, or it belongs to
    /// another config directory.
    #[error("run directory {} {reason}", crate::text::show_path(.path))]
    RunDir {
        /// The run directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// What to do about it.
        hint: String,
    },

    /// A name that is not a daemon in the config directory.
    #[error("{name}: no such daemon in {}", crate::text::show_path(.config_dir))]
    UnknownDaemon {
        /// The name as typed.
        name: String,
        /// Where dmgr looked.
        config_dir: PathBuf,
        /// The nearest known name, if one is close.
        suggestion: Option<String>,
    },

    /// A file system operation failed.
    #[error("cannot {action} {}: {source}", crate::text::show_path(.path))]
    Io {
        /// What dmgr was doing, as a verb phrase ("create the run directory").
        action: &'static str,
        /// The path it was doing it to.
        path: PathBuf,
        /// The OS reason.
        source: io::Error,
    },

    /// An operation on one daemon failed.
    #[error("{name}: {message}{}", render_tail(.log_tail))]
    Daemon {
        /// The daemon.
        name: String,
        /// What failed and why.
        message: String,
        /// The last lines of the daemon's log, shown under the message.
        log_tail: Vec<String>,
    },

    /// What dmgr did for one daemon failed: the action it could not carry out, and
    /// why (`web: cannot start: /usr/bin/nginx: No such file or directory`).
    #[error("{name}: cannot {action}: {cause}{}", render_tail(.log_tail))]
    Failed {
        /// The daemon.
        name: String,
        /// What dmgr could not do, as a verb phrase (`start`, `signal its keeper`).
        action: String,
        /// Why not: the OS reason, or what the keeper reported.
        cause: String,
        /// The last lines of the daemon's log, shown under the message.
        log_tail: Vec<String>,
    },

    /// `dmgr run` of a daemon that runs already.
    #[error("{name} is running (pid {pid}); stop it first or use `dmgr logs -f {name}`")]
    Running {
        /// The daemon.
        name: String,
        /// Its main process, or whoever holds its pidfile.
        pid: i32,
    },

    /// Some operations of a multi-daemon command failed; each was already reported.
    #[error("{failed} of {total} operations failed")]
    Partial {
        /// How many failed.
        failed: usize,
        /// How many were tried.
        total: usize,
    },
}

impl Error {
    /// A failure of one daemon's operation.
    pub fn daemon(name: &str, message: impl Into<String>) -> Self {
        Error::Daemon {
            name: name.to_string(),
            message: message.into(),
            log_tail: Vec::new(),
        }
    }

    /// `name` could not `action` (a verb phrase) because of `cause`.
    pub fn cannot(name: &str, action: impl Into<String>, cause: impl ToString) -> Self {
        Error::Failed {
            name: name.to_string(),
            action: action.into(),
            cause: cause.to_string(),
            log_tail: Vec::new(),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_)
            | Error::Config { .. }
            | Error::ConfigDir { .. }
            | Error::UnknownDaemon { .. } => 2,
            Error::Io { .. }
            | Error::RunDir { .. }
            | Error::Daemon { .. }
            | Error::Failed { .. }
            | Error::Running { .. }
            | Error::Partial { .. } => 1,
        }
    }

    /// The next step for the user, when there is an obvious one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::UnknownDaemon {
                suggestion: Some(near),
                ..
            } => Some(format!("did you mean `{near}`?")),
            Error::UnknownDaemon { config_dir, .. } => Some(format!(
                "daemons are the *.toml files in {}; `dmgr list` shows them",
                crate::text::show_path(config_dir)
            )),
            Error::Config { .. } => {
                Some("fix the files above; `dmgr check` lists every problem".into())
            }
            Error::ConfigDir { hint, .. } | Error::RunDir { hint, .. } => Some(hint.clone()),
            _ => None,
        }
    }

    /// Whether this error was already reported piecemeal and needs no message.
    pub fn is_reported(&self) -> bool {
        matches!(self, Error::Partial { .. })
    }
}

fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

fn render_tail(tail: &[String]) -> String {
    if tail.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nlast log lines:");
    for line in tail {
        out.push_str("\n  | ");
        out.push_str(line);
    }
    out
}

/// A `Result` with dmgr's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! dmgr runs and looks after long-running commands ("daemons") on one Unix host.
//!
//! # Architecture
//!
//! There is no central manager. Every call of `dmgr` is stateless: it reads the config
//! directory (`config`) and the run directory afresh, acts, and exits. What must outlive
//! a call lives in one **keeper** process per running daemon (`keeper`):
//!
//! ```text
//!   dmgr start web db ──fork, exec──▶ dmgr __launch (one per start, exits once done)
//!        ▲                              │ for each daemon:
//!        │                              └─fork──▶ holder ──setsid, fork──▶ keeper of web
//!        │                              (holds the output pipes;           │
//!        │                               takes over if the keeper dies)    │
//!        └──── notify pipe: "ok PID" or "err REASON" ◀──────────────────────┤
//!                                                         holds flock(web.pid)
//!                                                         spawns web in its own session,
//!                                                         pipes its output into web.log,
//!                                                         restarts it by policy,
//!                                                         stops it on SIGTERM
//! ```
//!
//! The launcher is a fresh exec, and so single-threaded: its forks run the keeper's
//! Rust code with no exec of their own (`launcher`), and each keeper takes the
//! title `dmgr ... __keeper --name web ...` in ps(1). The middle process of the
//! double fork stays as the keeper's holder (`dmgr ... __holder --name web ...`,
//! `launcher::holder`): asleep while the keeper lives, it keeps the daemon logging and
//! its processes in reach should the keeper die.
//!
//! The keeper holds an exclusive `flock` on the daemon's pidfile for its whole life
//! and keeps a small JSON state record beside it (`state`) and an event history of
//! what happened to the daemon (`events`). Readers (`list`, `status`)
//! never take a lock: they trust a record only while the recorded process identities
//! (PID plus start time, `procinfo`) still match. Writers (`start`, `stop`, `restart`)
//! serialise per daemon on a separate operation lock, so concurrent starts of one
//! daemon yield exactly one copy. All `unsafe` code (fork, exec, signals, setsid) is in
//! `sys`.
//!
//! Modules: `cli` (clap types), `error`, `config`, `pidfile`, `state`, `procinfo`,
//! `keeper`, `commands` (one file per subcommand), `output` (colour, tables, JSON),
//! `export` (the same definitions as systemd units and a Nomad job) and `boot` (the
//! unit or init script that runs `start --all` at boot).

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod boot;
pub(crate) mod cgroup;
pub mod cli;
pub(crate) mod client;
pub(crate) mod commands;
pub mod config;
pub mod error;
pub(crate) mod escalation;
pub(crate) mod events;
pub(crate) mod export;
pub(crate) mod files;
pub(crate) mod follow;
pub(crate) mod keeper;
pub(crate) mod launcher;
pub mod logfile;
pub mod manpage;
pub(crate) mod memory;
pub(crate) mod metrics;
pub(crate) mod output;
pub(crate) mod pidfile;
pub(crate) mod probe;
pub mod procinfo;
pub mod quick_args;
pub mod schedule;
pub(crate) mod session;
pub mod state;
pub(crate) mod survey;
pub(crate) mod sys;
pub(crate) mod text;
pub(crate) mod top;
pub(crate) mod trusted_dir;
pub(crate) mod usage;

pub use error::{Error, Result};
pub use output::{note_closed_stdout, print_error};

/// Runs one parsed command line and returns the exit code for success paths.
pub fn run(cli: cli::Cli) -> Result<u8> {
    commands::dispatch(cli)
}

/// Runs the processes that dmgr starts of itself and nobody types, whose command lines
/// are parsed by hand (see `launcher::argv`): a keeper's tcp or http probe (`dmgr
/// __probe ...`) and the launcher of keepers (`dmgr ... __launch ...`), which returns
/// in each keeper once that keeper is done. `None` for any other command line.
pub fn run_internal(args: Vec<std::ffi::OsString>) -> Option<Result<u8>> {
    if let Some(code) = probe::run_internal(&args) {
        return Some(Ok(code));
    }
    let argv0 = args.first().cloned().unwrap_or_else(|| "dmgr".into());
    let launcher = launcher::argv::LauncherArgv::parse(args)?;
    Some(launcher::run(argv0, launcher))
}

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
//! # The tree, by process and layer
//!
//! - What a user types: `cli` (the clap types, also the help and `man/dmgr.1`, which
//!   `manpage` renders), `commands` (one file per subcommand, each a short story),
//!   `error` (the one error type and its exit codes).
//! - The CLI's side of a keeper: `client` (start keepers and wait for their reports,
//!   stop, signal, reload, `dmgr run` in the foreground, a dead keeper's leftovers);
//!   `escalation` (stop signal, wait, SIGKILL for processes that are not our
//!   children).
//! - The processes dmgr starts of itself: `launcher` (forks one keeper per daemon, and
//!   its holder), `keeper` (the loop: wake-ups in, effects out as system calls) with
//!   `keeper::core` (pure: the `Machine` that owns the keeper's state and decides,
//!   tested with a fake clock), `probe` (`dmgr __probe`, a tcp or http check).
//! - Definitions: `config` (where the directories are, the file as written, the
//!   validated `Daemon` with its one key table, the checks across files), `schedule`
//!   (the cron keys and their decisions).
//! - What the keeper and the CLI share on disk and in `/proc`: `state` (the record),
//!   `events` (the history), `pidfile` (the only code that locks one), `procinfo`,
//!   `memory`, `usage`, `cgroup`, `session`, `logfile`, `files`, `follow`,
//!   `trusted_dir`.
//! - What is shown: `survey` (every daemon's facts, for `list`, `top` and `metrics`),
//!   `output` (colour, tables, the stable JSON), `top`, `metrics`, and `text`, a leaf
//!   every module may use (escaping, path display), which keeps the others free of
//!   cycles.
//! - What dmgr hands to the host: `export` (systemd units, a Nomad job) and `boot`
//!   (the unit, or the script, that runs `start --all` at boot and `stop --all` at
//!   shutdown).
//! - `sys`: every `unsafe` call, each with its `SAFETY` argument.

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

//! One file per subcommand, each reading top to bottom as that command's story. This
//! file only builds the shared [`Context`] and dispatches.

mod apply;
mod boot;
mod check;
mod completions;
mod events;
mod export;
mod kill;
mod list;
mod logs;
mod metrics;
mod reload;
mod restart;
mod rotate;
mod run;
mod start;
mod status;
mod stop;
mod top;

use std::time::Duration;

use crate::cli::{Cli, Command};
use crate::config::{self, Dirs};
use crate::output::style;
use crate::Result;

/// What every command needs: the directories and how to print.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// The config and run directories of this call.
    pub dirs: Dirs,
    /// `-q`: print nothing on success.
    pub quiet: bool,
}

impl Context {
    /// Prints a success line unless `-q` was given.
    pub(crate) fn say(&self, line: &str) {
        if !self.quiet {
            crate::output::print_line(line);
        }
    }
}

/// Runs the parsed command line.
pub(crate) fn dispatch(cli: Cli) -> Result<u8> {
    style::set_choice(cli.color);
    crate::files::raise_fd_limit();
    if let Command::Completions(args) = &cli.command {
        return completions::run(args);
    }
    let dirs = config::discover(cli.config_dir.as_deref(), cli.run_dir.as_deref())?;
    // Before anything in the run directory is read: see `Dirs::check_run_dir`. The
    // commands that start keepers claim it for this config directory.
    match &cli.command {
        Command::Check | Command::Export(_) | Command::Boot(_) | Command::Completions(_) => {}
        Command::Apply(args) if args.dry_run => dirs.check_run_dir()?,
        Command::Start(_) | Command::Restart(_) | Command::Run(_) | Command::Apply(_) => {
            dirs.claim_run_dir()?
        }
        _ => dirs.check_run_dir()?,
    }
    let ctx = Context {
        dirs,
        quiet: cli.quiet,
    };
    match cli.command {
        Command::Start(args) => start::run(&ctx, &args),
        Command::Stop(args) => stop::run(&ctx, &args),
        Command::Restart(args) => restart::run(&ctx, &args),
        Command::Reload(args) => reload::run(&ctx, &args),
        Command::Kill(args) => kill::run(&ctx, &args),
        Command::List(args) => list::run(&ctx, &args),
        Command::Status(args) => status::run(&ctx, &args),
        Command::Logs(args) => logs::run(&ctx, &args),
        Command::Events(args) => events::run(&ctx, &args),
        Command::Metrics(args) => metrics::run(&ctx, &args),
        Command::Rotate(args) => rotate::run(&ctx, &args),
        Command::Top => top::run(&ctx),
        Command::Check => check::run(&ctx),
        Command::Apply(args) => apply::run(&ctx, &args),
        Command::Run(args) => run::run(&ctx, &args),
        Command::Export(command) => export::run(&ctx, &command),
        Command::Boot(command) => boot::run(&ctx, &command),
        Command::Completions(_) => unreachable!("handled before discovery"),
    }
}

use crate::config::{Daemon, Loaded};
use crate::{state, Error};

/// Looks up each named daemon; an unknown name or an invalid file is an error (exit 2).
/// The name of a daemon with `instances` means every copy (`web` is `web@1` ...
/// `web@N`), and `web@2` one of them.
fn resolve<'a>(ctx: &Context, loaded: &'a Loaded, names: &[String]) -> Result<Vec<&'a Daemon>> {
    let mut daemons = Vec::new();
    for name in names {
        let found = loaded.named(name);
        if !found.is_empty() {
            for daemon in found {
                if !daemons.iter().any(|d: &&Daemon| d.name == daemon.name) {
                    daemons.push(daemon);
                }
            }
        } else if let Some(invalid) = loaded.invalid(base_of(name)) {
            return Err(Error::Config {
                diagnostics: invalid.diagnostics.clone(),
            });
        } else {
            return Err(unknown(ctx, name));
        }
    }
    Ok(daemons)
}

/// The name of the file that defines `name`: `web` for the copy `web@2`, else `name`.
fn base_of(name: &str) -> &str {
    config::split_instance_name(name).map_or(name, |(base, _)| base)
}

/// The copies of `base` that the run directory has records of (running or not),
/// in the order of their numbers: what `NAME` means to `stop` and `events` beside
/// the copies its file defines now.
fn recorded_copies(ctx: &Context, base: &str) -> Vec<String> {
    let mut copies: Vec<(u32, String)> = state::recorded_names(&ctx.dirs)
        .into_iter()
        .filter_map(|name| {
            let (b, n) = config::split_instance_name(&name)?;
            (b == base).then_some(n).map(|n| (n, name.clone()))
        })
        .collect();
    copies.sort_unstable();
    copies.into_iter().map(|(_, name)| name).collect()
}

/// Every daemon name this config and run directory know: the files in the config
/// directory (valid or not) and the state records of the run directory, sorted.
fn every_name(ctx: &Context) -> Vec<String> {
    let mut all = config::names(&ctx.dirs);
    all.extend(state::recorded_names(&ctx.dirs));
    all.sort_unstable();
    all.dedup();
    all
}

/// Returns true if and only if `name` has an invalid file or a state record: commands
/// that act only through the keeper or the record (`stop`, `rotate`) reach it without a
/// valid file, so a broken file never keeps a running daemon from being stopped.
fn known_without_file(ctx: &Context, loaded: &Loaded, name: &str) -> bool {
    loaded.invalid(base_of(name)).is_some() || state::has_record(&ctx.dirs, name)
}

/// The error for a name that is not a daemon, with the nearest known name.
fn unknown(ctx: &Context, name: &str) -> Error {
    let all = config::names(&ctx.dirs);
    // `web.toml` or `daemons.d/web.toml`, typed for `web`: the stem is the name.
    let stem = std::path::Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|_| name.ends_with(".toml"));
    if let Some(stem) = stem.filter(|s| all.iter().any(|n| n == s)) {
        return Error::UnknownDaemon {
            name: name.to_string(),
            config_dir: ctx.dirs.config_dir.clone(),
            suggestion: Some(stem.to_string()),
        };
    }
    if let Some((base, number)) = config::split_instance_name(name) {
        if all.iter().any(|n| n == base) {
            return Error::Usage(format!(
                "`{name}` is not a daemon: `{base}` has no copy {number} (its file sets how many with `instances`, and `dmgr list {base}` shows them)"
            ));
        }
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        return Error::UnknownDaemon {
            name: name.to_string(),
            config_dir: ctx.dirs.config_dir.clone(),
            suggestion: config::nearest(base, &all).map(str::to_string),
        };
    }
    if !config::is_valid_name(name) {
        // `../x` or `a b` could never be a daemon: say so, rather than that it is not
        // one in this directory.
        return Error::Usage(format!(
            "`{name}` is not a valid daemon name: a name is letters, digits, `_`, `.` and `-`, starting with a letter or digit, at most 64 characters"
        ));
    }
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let suggestion = config::nearest(name, &all).map(str::to_string);
    Error::UnknownDaemon {
        name: name.to_string(),
        config_dir: ctx.dirs.config_dir.clone(),
        suggestion,
    }
}

/// Cuts levels of the `after` order into batches that fit the open-file limit: the
/// daemons of one batch are handled together, batches one after another.
/// Warns on standard error where the installed boot unit of this config directory no
/// longer fits `loaded`'s daemons (`boot::stale_timeouts`): `check`, `apply` and
/// `start` say so, as `boot status` does. Returns how many warnings it printed.
fn warn_of_stale_boot_unit(ctx: &Context, loaded: &Loaded) -> usize {
    let unit_dir = std::env::var_os("DMGR_SYSTEMD_UNIT_DIR")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from);
    let stale =
        crate::boot::stale_timeouts(&ctx.dirs.config_dir, unit_dir.as_deref(), &loaded.daemons);
    let style = crate::output::Style::for_stderr();
    for why in &stale {
        eprintln!("{} {why}", style.hint("dmgr: warning:"));
    }
    stale.len()
}

/// Says on standard error which daemons a start still waits for (every
/// `client::NOTE_EVERY`), unless `--quiet`.
fn say_waiting(ctx: &Context) -> impl FnMut(&crate::client::Waiting<'_>) + '_ {
    move |waiting| {
        if ctx.quiet {
            return;
        }
        let names: Vec<String> = waiting
            .names
            .iter()
            .map(|(name, left)| {
                format!(
                    "{name} (at most {} more)",
                    crate::config::units::format_duration(Duration::from_secs(left.as_secs()))
                )
            })
            .collect();
        eprintln!(
            "dmgr: still waiting after {}s for {}",
            waiting.since.as_secs(),
            names.join(", ")
        );
    }
}

fn batches(levels: Vec<Vec<&Daemon>>) -> Vec<Vec<&Daemon>> {
    let size = crate::files::batch_size();
    levels
        .into_iter()
        .flat_map(|level| level.chunks(size).map(<[_]>::to_vec).collect::<Vec<_>>())
        .collect()
}

/// Takes the operation lock of every daemon in `batch`, waiting for concurrent
/// operations on them; a daemon whose lock cannot be taken is reported and left out.
fn lock_all<'a>(
    ctx: &Context,
    batch: Vec<&'a Daemon>,
    failures: &mut Failures,
) -> Vec<(&'a Daemon, crate::pidfile::OperationLock)> {
    let mut locked = Vec::with_capacity(batch.len());
    for daemon in batch {
        match crate::client::lock(&ctx.dirs, &daemon.name) {
            Ok(lock) => locked.push((daemon, lock)),
            Err(err) => failures.fail(err),
        }
    }
    locked
}

/// Tracks failures across a multi-daemon command and picks the result at the end:
/// a single failure is returned as itself, several as [`Error::Partial`] after each
/// was printed.
#[derive(Debug, Default)]
struct Failures {
    total: usize,
    errors: Vec<Error>,
}

impl Failures {
    fn ok(&mut self) {
        self.total += 1;
    }

    fn fail(&mut self, err: Error) {
        self.total += 1;
        crate::output::print_error(&err);
        self.errors.push(err);
    }

    fn finish(self) -> Result<u8> {
        match self.errors.len() {
            0 => Ok(0),
            failed => Err(Error::Partial {
                failed,
                total: self.total,
            }),
        }
    }
}

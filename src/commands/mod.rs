//! One file per subcommand, each reading top to bottom as that command's story. This
//! file only builds the shared [`Context`] and dispatches.

mod apply;
mod check;
mod completions;
mod kill;
mod list;
mod logs;
mod reload;
mod restart;
mod rotate;
mod run;
mod start;
mod status;
mod stop;

use crate::cli::{Cli, Command};
use crate::config::{self, Dirs};
use crate::output::style;
use crate::Result;

/// What every command needs: the directories and how to print.
#[derive(Debug, Clone)]
pub struct Context {
    /// The config and run directories of this call.
    pub dirs: Dirs,
    /// `-q`: print nothing on success.
    pub quiet: bool,
}

impl Context {
    /// Prints a success line unless `-q` was given.
    pub fn say(&self, line: &str) {
        if !self.quiet {
            crate::output::print_line(line);
        }
    }
}

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> Result<u8> {
    style::set_choice(cli.color);
    if let Command::Completions(args) = &cli.command {
        return completions::run(args);
    }
    let dirs = config::discover(cli.config_dir.as_deref(), cli.run_dir.as_deref())?;
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
        Command::Rotate(args) => rotate::run(&ctx, &args),
        Command::Check => check::run(&ctx),
        Command::Apply(args) => apply::run(&ctx, &args),
        Command::Run(args) => run::run(&ctx, &args),
        Command::Keeper(args) => crate::keeper::run(&ctx.dirs, &args),
        Command::Completions(_) => unreachable!("handled before discovery"),
    }
}

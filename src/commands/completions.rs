//! `dmgr completions SHELL`: print a completion script (clap_complete).

use clap::{Command, CommandFactory};

use crate::cli::{Cli, CompletionsArgs};
use crate::{output, Result};

/// Runs `dmgr completions`.
pub(super) fn run(args: &CompletionsArgs) -> Result<u8> {
    // clap_complete offers hidden subcommands too; the keeper is not for typing.
    let full = Cli::command();
    let mut visible = Command::new("dmgr")
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut visible, "dmgr", &mut script);
    output::print_raw(&String::from_utf8_lossy(&script))?;
    Ok(0)
}

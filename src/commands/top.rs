//! `dmgr top`: a full-screen live view of every daemon, with CPU and memory, the
//! selected daemon's events and last log lines, and keys to start, stop, restart,
//! reload and rotate it (see `crate::top`).

use std::io::IsTerminal;

use super::Context;
use crate::output::Style;
use crate::{Error, Result};

/// Runs `dmgr top`.
pub(super) fn run(ctx: &Context) -> Result<u8> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "`dmgr top` draws on a terminal, and standard input or output is not one; `dmgr list` prints the same table once".into(),
        ));
    }
    crate::top::run(&ctx.dirs, Style::for_stdout().color)
}

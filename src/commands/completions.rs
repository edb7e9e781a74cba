//! `dmgr completions`.

use crate::cli::CompletionsArgs;
use crate::Result;

/// Runs `dmgr completions`.
pub fn run(args: &CompletionsArgs) -> Result<u8> {
    let _ = args;
    Ok(0)
}

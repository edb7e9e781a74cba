//! `dmgr logs`.

use super::Context;
use crate::cli::LogsArgs;
use crate::Result;

/// Runs `dmgr logs`.
pub fn run(ctx: &Context, args: &LogsArgs) -> Result<u8> {
    let _ = (ctx, args);
    Ok(0)
}

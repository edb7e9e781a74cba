//! `dmgr status`.

use super::Context;
use crate::cli::StatusArgs;
use crate::Result;

/// Runs `dmgr status`.
pub fn run(ctx: &Context, args: &StatusArgs) -> Result<u8> {
    let _ = (ctx, args);
    Ok(0)
}

//! `dmgr kill`.

use super::Context;
use crate::cli::KillArgs;
use crate::Result;

/// Runs `dmgr kill`.
pub fn run(ctx: &Context, args: &KillArgs) -> Result<u8> {
    let _ = (ctx, args);
    Ok(0)
}

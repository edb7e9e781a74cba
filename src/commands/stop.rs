//! `dmgr stop`.

use super::Context;
use crate::cli::TargetArgs;
use crate::Result;

/// Runs `dmgr stop`.
pub fn run(ctx: &Context, args: &TargetArgs) -> Result<u8> {
    let _ = (ctx, args);
    Ok(0)
}

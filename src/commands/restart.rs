//! `dmgr restart`.

use super::Context;
use crate::cli::TargetArgs;
use crate::Result;

/// Runs `dmgr restart`.
pub fn run(ctx: &Context, args: &TargetArgs) -> Result<u8> {
    let _ = (ctx, args);
    Ok(0)
}

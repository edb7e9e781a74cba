//! `dmgr apply`.

use super::Context;
use crate::cli::ApplyArgs;
use crate::Result;

/// Runs `dmgr apply`.
pub fn run(ctx: &Context, args: &ApplyArgs) -> Result<u8> {
    let _ = (ctx, args);
    Ok(0)
}

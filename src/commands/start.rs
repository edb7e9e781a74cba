//! `dmgr start`.

use super::Context;
use crate::cli::StartArgs;
use crate::Result;

/// Runs `dmgr start`.
pub fn run(ctx: &Context, args: &StartArgs) -> Result<u8> {
    let _ = (ctx, args);
    Ok(0)
}

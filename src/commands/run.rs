//! `dmgr run`.

use super::Context;
use crate::cli::RunArgs;
use crate::Result;

/// Runs `dmgr run`.
pub fn run(ctx: &Context, args: &RunArgs) -> Result<u8> {
    let _ = (ctx, args);
    Ok(0)
}

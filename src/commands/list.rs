//! `dmgr list`.

use super::Context;
use crate::cli::ListArgs;
use crate::Result;

/// Runs `dmgr list`.
pub fn run(ctx: &Context, args: &ListArgs) -> Result<u8> {
    let _ = (ctx, args);
    Ok(0)
}

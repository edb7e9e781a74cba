//! `dmgr reload`.

use super::Context;
use crate::cli::NamesArgs;
use crate::Result;

/// Runs `dmgr reload`.
pub fn run(ctx: &Context, args: &NamesArgs) -> Result<u8> {
    let _ = (ctx, args);
    Ok(0)
}

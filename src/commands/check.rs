//! `dmgr check`.

use super::Context;
use crate::Result;

/// Runs `dmgr check`.
pub fn run(ctx: &Context) -> Result<u8> {
    let _ = ctx;
    Ok(0)
}

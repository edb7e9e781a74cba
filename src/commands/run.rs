//! `dmgr run NAME`: run one daemon in the foreground, without a keeper, for debugging
//! and containers. Exits with the command's status.

use super::{resolve, Context};
use crate::cli::RunArgs;
use crate::{config, keeper, Result};

/// Runs `dmgr run`.
pub fn run(ctx: &Context, args: &RunArgs) -> Result<u8> {
    let loaded = config::load_named(&ctx.dirs, std::slice::from_ref(&args.name))?;
    let daemon = resolve(ctx, &loaded, std::slice::from_ref(&args.name))?[0];
    keeper::run_foreground(daemon)
}

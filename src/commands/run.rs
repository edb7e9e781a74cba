//! `dmgr run NAME`: run one daemon in the foreground, without a keeper, for debugging
//! and containers. Refuses while the daemon runs; while it runs itself, it holds the
//! daemon's pidfile lock and state record as a keeper would, so `start` starts no
//! second copy. Exits with the command's status.

use super::{resolve, Context};
use crate::cli::RunArgs;
use crate::client;
use crate::{config, Result};

/// Runs `dmgr run`.
pub(super) fn run(ctx: &Context, args: &RunArgs) -> Result<u8> {
    let loaded = config::load_named(&ctx.dirs, std::slice::from_ref(&args.name))?;
    let found = resolve(ctx, &loaded, std::slice::from_ref(&args.name))?;
    let daemon = match found.as_slice() {
        [one] => *one,
        copies => {
            return Err(crate::Error::Usage(format!(
                "`{}` has {} copies (`instances`); run one of them in the foreground, like `dmgr run {}`",
                args.name,
                copies.len(),
                copies.first().map_or("NAME@1", |d| d.name.as_str())
            )))
        }
    };
    let (lock, pidfile) = client::claim_for_foreground(&ctx.dirs, daemon)?;
    client::run_foreground(&ctx.dirs, daemon, lock, pidfile)
}

//! `dmgr rotate NAME... | --all`: rotate logs now, restarting nothing. The keeper owns
//! the log, so it rotates on SIGUSR2 at the next line boundary; with no keeper there is
//! no writer and nothing to rotate.

use nix::sys::signal::Signal;

use super::{resolve, Context, Failures};
use crate::cli::TargetArgs;
use crate::config;
use crate::keeper::control;
use crate::Result;

/// Runs `dmgr rotate`.
pub fn run(ctx: &Context, args: &TargetArgs) -> Result<u8> {
    let loaded = config::load(&ctx.dirs)?;
    let names: Vec<String> = if args.all {
        loaded.daemons.iter().map(|d| d.name.clone()).collect()
    } else {
        resolve(ctx, &loaded, &args.names)?
            .iter()
            .map(|d| d.name.clone())
            .collect()
    };
    let mut failures = Failures::default();
    for name in names {
        match control::signal_keeper(&ctx.dirs, &name, Signal::SIGUSR2) {
            Ok(true) => {
                failures.ok();
                ctx.say(&format!("{name}: rotated"));
            }
            Ok(false) => {
                failures.ok();
                if !args.all {
                    ctx.say(&format!("{name}: not running; nothing to rotate"));
                }
            }
            Err(err) => failures.fail(err),
        }
    }
    failures.finish()
}

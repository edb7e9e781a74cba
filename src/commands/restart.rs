//! `dmgr restart NAME... | --all`: stop then start, always with the file as it is now.
//! `--all` restarts every daemon that runs or is marked `autostart`.

use super::{in_parallel, resolve, Context, Failures};
use crate::cli::TargetArgs;
use crate::config::{self, Daemon};
use crate::keeper::control::{self, Started};
use crate::state;
use crate::Result;

/// Runs `dmgr restart`.
pub fn run(ctx: &Context, args: &TargetArgs) -> Result<u8> {
    let loaded = config::load(&ctx.dirs)?;
    let targets: Vec<&Daemon> = if args.all {
        loaded
            .daemons
            .iter()
            .filter(|d| {
                d.autostart || state::observe(&ctx.dirs, &d.name, Some(&d.pidfile)).is_running()
            })
            .collect()
    } else {
        resolve(ctx, &loaded, &args.names)?
    };
    let mut failures = Failures::default();
    for level in config::start_order(&targets) {
        in_parallel(
            &level,
            |daemon| {
                // One lock across both halves: nobody starts it in between.
                let _lock = control::lock(&ctx.dirs, &daemon.name)?;
                control::stop(&ctx.dirs, &daemon.name, Some(daemon))?;
                control::start(&ctx.dirs, daemon)
            },
            |daemon, result| match result {
                Ok(Started::Now(pid) | Started::Already { pid, .. }) => {
                    failures.ok();
                    ctx.say(&format!("{}: restarted (pid {pid})", daemon.name));
                }
                Ok(Started::Pending) => failures.ok(),
                Err(err) => failures.fail(err),
            },
        );
    }
    failures.finish()
}

//! `dmgr reload NAME...`: send each daemon its `reload_signal`.

use super::{resolve, Context, Failures};
use crate::cli::NamesArgs;
use crate::keeper::control;
use crate::{config, Error, Result};

/// Runs `dmgr reload`.
pub fn run(ctx: &Context, args: &NamesArgs) -> Result<u8> {
    let loaded = config::load_named(&ctx.dirs, &args.names)?;
    let mut failures = Failures::default();
    for daemon in resolve(ctx, &loaded, &args.names)? {
        let signal = daemon.reload_signal;
        match control::signal_daemon(&ctx.dirs, &daemon.name, Some(daemon), signal.number()) {
            Ok(Some(pid)) => {
                failures.ok();
                ctx.say(&format!("{}: sent {signal} to pid {pid}", daemon.name));
            }
            Ok(None) => failures.fail(Error::daemon(
                &daemon.name,
                "not running; nothing to reload",
            )),
            Err(err) => failures.fail(err),
        }
    }
    failures.finish()
}

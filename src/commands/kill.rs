//! `dmgr kill -s SIG NAME...`: send a signal to daemons' main processes (never to
//! their keepers). The keeper then handles an exit as it would any other.

use super::{resolve, Context, Failures};
use crate::cli::KillArgs;
use crate::client;
use crate::config::units::Signal;
use crate::{config, state, Error, Result};

/// Runs `dmgr kill`.
pub(super) fn run(ctx: &Context, args: &KillArgs) -> Result<u8> {
    let signal: Signal = args.signal.parse().map_err(Error::Usage)?;
    let loaded = config::load_named(&ctx.dirs, &args.names.names)?;
    let mut failures = Failures::default();
    for name in &args.names.names {
        let daemon = match resolve(ctx, &loaded, std::slice::from_ref(name)) {
            Ok(found) => Some(found[0]),
            Err(_) if state::has_record(&ctx.dirs, name) => None,
            Err(err) => return Err(err),
        };
        match client::signal_daemon(&ctx.dirs, name, daemon, signal, "dmgr kill") {
            Ok(Some(pid)) => {
                failures.ok();
                ctx.say(&format!("{name}: sent {signal} to pid {pid}"));
            }
            Ok(None) => failures.fail(Error::daemon(
                name,
                format!("not running; {signal} not sent"),
            )),
            Err(err) => failures.fail(err),
        }
    }
    failures.finish()
}

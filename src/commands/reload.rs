//! `dmgr reload NAME... | --all`: ask each daemon's keeper to reload it, which sends
//! its `reload_signal`, or runs its `reload_command` in the daemon's tree with
//! `MAINPID` set, and answers with the outcome: a failed command fails the reload
//! (exit 1), with its last output lines. `--all` reloads every daemon that runs.

use super::{resolve, Context, Failures};
use crate::cli::TargetArgs;
use crate::client::{self, Reloaded};
use crate::config::Daemon;
use crate::{config, state, Result};

/// Runs `dmgr reload`.
pub(super) fn run(ctx: &Context, args: &TargetArgs) -> Result<u8> {
    let loaded = match args.all {
        true => config::load(&ctx.dirs)?,
        false => config::load_named(&ctx.dirs, &args.names)?,
    };
    let daemons: Vec<&Daemon> = match args.all {
        true => loaded
            .daemons
            .iter()
            .filter(|d| state::observe(&ctx.dirs, &d.name, Some(&d.pidfile)).is_running())
            .collect(),
        false => resolve(ctx, &loaded, &args.names)?,
    };
    let mut failures = Failures::default();
    for daemon in daemons {
        match client::reload(&ctx.dirs, daemon) {
            Ok(Reloaded::Signalled { pid, signal }) => {
                failures.ok();
                ctx.say(&format!("{}: sent {signal} to pid {pid}", daemon.name));
            }
            Ok(Reloaded::Command { pid }) => {
                failures.ok();
                let pid = pid.map_or("not running".to_string(), |p| format!("pid {p}"));
                let argv = daemon.supervision.reload_command.as_deref().unwrap_or(&[]);
                let shown =
                    shlex::try_join(argv.iter().map(String::as_str)).unwrap_or(argv.join(" "));
                match daemon.kind == crate::config::DaemonType::Notify {
                    // Its own verdict: RELOADING=1, then READY=1.
                    true => ctx.say(&format!(
                        "{}: reloaded ({pid}): the daemon said READY=1",
                        daemon.name
                    )),
                    false => ctx.say(&format!("{}: reloaded ({pid}) with {shown}", daemon.name)),
                }
            }
            Err(err) => failures.fail(err),
        }
    }
    failures.finish()
}

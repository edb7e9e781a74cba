//! `dmgr rotate NAME... | --all`: rotate logs now, restarting nothing. The keeper owns
//! the log, so it rotates on SIGUSR2 at the next line boundary; with no keeper there is
//! no writer and nothing to rotate, and an empty log is left as it is.

use nix::sys::signal::Signal;

use super::{known_without_file, resolve, Context, Failures};
use crate::cli::TargetArgs;
use crate::client;
use crate::{config, state, Result};

/// Runs `dmgr rotate`. Only the keeper is asked, so a daemon whose file is invalid or
/// gone (an orphan) is rotated too; `--all` covers every keeper in the run directory.
pub(super) fn run(ctx: &Context, args: &TargetArgs) -> Result<u8> {
    let loaded = config::load(&ctx.dirs)?;
    let names: Vec<String> = if args.all {
        let mut names: Vec<String> = loaded.daemons.iter().map(|d| d.name.clone()).collect();
        names.extend(state::recorded_names(&ctx.dirs));
        names.sort_unstable();
        names.dedup();
        names
    } else {
        let mut names = Vec::new();
        for name in &args.names {
            match resolve(ctx, &loaded, std::slice::from_ref(name)) {
                Ok(_) => names.push(name.clone()),
                Err(_) if known_without_file(ctx, &loaded, name) => names.push(name.clone()),
                Err(err) => return Err(err),
            }
        }
        names
    };
    let mut failures = Failures::default();
    for name in names {
        if logs_are_empty(ctx, &name) {
            failures.ok();
            if !args.all {
                ctx.say(&format!("{name}: the log is empty; nothing to rotate"));
            }
            continue;
        }
        match client::signal_keeper(&ctx.dirs, &name, Signal::SIGUSR2) {
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

/// Returns true if and only if the daemon's keeper has logs and each is empty or
/// missing: the keeper would leave them as they are (an empty log is never rotated).
fn logs_are_empty(ctx: &Context, name: &str) -> bool {
    let observed = state::observe(&ctx.dirs, name, None);
    let (Some(record), Some(_)) = (observed.record, observed.keeper) else {
        return false;
    };
    std::iter::once(&record.log)
        .chain(record.stderr_log.as_ref())
        .all(|log| std::fs::metadata(log).map_or(true, |m| m.len() == 0))
}

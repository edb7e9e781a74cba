//! `dmgr restart NAME... | --all`: stop then start, always with the file as it is now.
//! `--all` restarts every daemon that runs or is marked `autostart`. Each daemon's
//! operation lock is held across both halves, so nobody starts it in between; daemons
//! go through in batches (levels of the `after` order, cut to the open-file limit),
//! all stopped together, then all started together.

use super::{batches, lock_all, resolve, Context, Failures};
use crate::cli::TargetArgs;
use crate::config::{self, Daemon};
use crate::keeper::control::{self, Begun, Started};
use crate::{state, Error, Result};

/// Runs `dmgr restart`.
pub(super) fn run(ctx: &Context, args: &TargetArgs) -> Result<u8> {
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
    let batches = batches(config::start_order(&targets));
    for batch in batches {
        let locked = lock_all(ctx, batch, &mut failures);
        let mut stopped: Vec<String> = Vec::new();
        let stops = locked
            .iter()
            .map(|(d, _)| (d.name.clone(), Some(*d), None))
            .collect();
        control::stop_many(&ctx.dirs, stops, |name, result| match result {
            Ok(_) => stopped.push(name.to_string()),
            Err(err) => failures.fail(err),
        });
        let mut pending = Vec::new();
        for (daemon, lock) in locked {
            if !stopped.contains(&daemon.name) {
                continue;
            }
            match control::begin_start(&ctx.dirs, daemon, Some(lock)) {
                Ok(Begun::Done(started)) => report(ctx, &mut failures, &daemon.name, Ok(started)),
                Ok(Begun::Waiting(p)) => pending.push(p),
                Err(err) => failures.fail(err),
            }
        }
        control::await_starts(
            &ctx.dirs,
            pending,
            |name, result| report(ctx, &mut failures, name, result),
            super::say_waiting(ctx),
        );
    }
    failures.finish()
}

fn report(ctx: &Context, failures: &mut Failures, name: &str, result: Result<Started, Error>) {
    match result {
        Ok(Started::Now(pid) | Started::Already { pid, .. }) => {
            failures.ok();
            ctx.say(&format!("{name}: restarted (pid {pid})"));
        }
        Ok(Started::Pending) => failures.ok(),
        Err(err) => failures.fail(err),
    }
}

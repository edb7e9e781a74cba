//! `dmgr restart NAME... | --all`: stop then start, always with the file as it is now.
//! A daemon with `sockets` or `restart_mode = "start-first"` is restarted by its
//! running keeper, which holds its sockets open throughout (see `keeper::restart`),
//! unless what changed needs a new keeper.
//! `--all` restarts every daemon that runs or is marked `autostart`. Each daemon's
//! operation lock is held across both halves, so nobody starts it in between; daemons
//! go through in batches (levels of the `after` order, cut to the open-file limit),
//! all stopped together, then all started together. `--rolling` goes one daemon at a
//! time instead, each up and ready before the next is stopped: a daemon with
//! `instances` keeps all its copies but one serving throughout.

use super::{batches, lock_all, resolve, Context, Failures};
use crate::cli::RestartArgs;
use crate::client::{self, Begun, InKeeper, Started};
use crate::config::{self, Daemon};
use crate::{state, Error, Result};

/// Runs `dmgr restart`.
pub(super) fn run(ctx: &Context, args: &RestartArgs) -> Result<u8> {
    let loaded = config::load(&ctx.dirs)?;
    let args_rolling = args.rolling;
    let args = &args.target;
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
    // A daemon with sockets, or a start-first one, is restarted by its keeper, on the
    // sockets it holds, while its operation lock keeps others out; the rest stop, then
    // start, with a new keeper.
    let mut targets = targets;
    targets.retain(|daemon| {
        let Ok(lock) = client::lock(&ctx.dirs, &daemon.name) else {
            return true;
        };
        let outcome = client::restart_in_keeper(&ctx.dirs, daemon);
        drop(lock);
        match outcome {
            InKeeper::NotAsked => true,
            InKeeper::NewKeeper(why) => {
                ctx.say(&format!(
                    "{}: restarting with a new keeper ({why}); its held sockets close meanwhile",
                    daemon.name
                ));
                true
            }
            InKeeper::Done(result) => {
                let started = result.map(Started::Now);
                report(ctx, &mut failures, &daemon.name, started);
                false
            }
        }
    });
    if args_rolling {
        return rolling(ctx, &targets, failures);
    }
    let batches = batches(config::start_order(&targets));
    for batch in batches {
        let locked = lock_all(ctx, batch, &mut failures);
        let mut stopped: Vec<String> = Vec::new();
        let stops = locked
            .iter()
            .map(|(d, _)| (d.name.clone(), Some(*d), None))
            .collect();
        client::stop_many(&ctx.dirs, stops, |name, result| match result {
            Ok(_) => stopped.push(name.to_string()),
            Err(err) => failures.fail(err),
        });
        let mut pending = Vec::new();
        for (daemon, lock) in locked {
            if !stopped.contains(&daemon.name) {
                continue;
            }
            match client::begin_start(&ctx.dirs, daemon, Some(lock)) {
                Ok(Begun::Done(started)) => report(ctx, &mut failures, &daemon.name, Ok(started)),
                Ok(Begun::Waiting(p)) => pending.push(p),
                Err(err) => failures.fail(err),
            }
        }
        client::await_starts(
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
        Ok(started @ (Started::Done { .. } | Started::Waiting { .. })) => {
            failures.ok();
            ctx.say(&super::start::describe(name, started));
        }
        Err(err) => failures.fail(err),
    }
}

/// `--rolling`: one daemon at a time in the `after` order, each stopped, started and
/// ready before the next; the first failure ends it, the rest left as they were.
fn rolling(ctx: &Context, targets: &[&Daemon], mut failures: Failures) -> Result<u8> {
    let mut order: Vec<&Daemon> = Vec::new();
    for mut level in config::start_order(targets) {
        // Copies by number: web@2 before web@10.
        level.sort_by(|a, b| {
            crate::survey::sort_key(&a.name).cmp(&crate::survey::sort_key(&b.name))
        });
        order.append(&mut level);
    }
    for (at, daemon) in order.iter().enumerate() {
        let lock = match client::lock(&ctx.dirs, &daemon.name) {
            Ok(lock) => lock,
            Err(err) => {
                failures.fail(err);
                return stop_rolling(ctx, &order[at + 1..], failures);
            }
        };
        let mut ok = true;
        client::stop_many(
            &ctx.dirs,
            vec![(daemon.name.clone(), Some(*daemon), None)],
            |_, result| {
                if let Err(err) = result {
                    ok = false;
                    failures.fail(err);
                }
            },
        );
        if ok {
            match client::begin_start(&ctx.dirs, daemon, Some(lock)) {
                Ok(Begun::Done(started)) => report(ctx, &mut failures, &daemon.name, Ok(started)),
                Ok(Begun::Waiting(p)) => client::await_starts(
                    &ctx.dirs,
                    vec![p],
                    |name, result| {
                        ok = result.is_ok();
                        report(ctx, &mut failures, name, result);
                    },
                    super::say_waiting(ctx),
                ),
                Err(err) => {
                    ok = false;
                    failures.fail(err);
                }
            }
        }
        if !ok {
            return stop_rolling(ctx, &order[at + 1..], failures);
        }
    }
    failures.finish()
}

/// Ends a rolling restart after a failure: says which daemons were left as they were.
fn stop_rolling(ctx: &Context, left: &[&Daemon], failures: Failures) -> Result<u8> {
    if !left.is_empty() && !ctx.quiet {
        let names: Vec<&str> = left.iter().map(|d| d.name.as_str()).collect();
        eprintln!(
            "dmgr: rolling restart stopped; left as they were: {}",
            names.join(", ")
        );
    }
    failures.finish()
}

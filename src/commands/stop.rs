//! `dmgr stop NAME... | --all`: stop daemons and wait until every process of each is
//! gone. `--all` covers every running daemon, orphans included, dependents first;
//! daemons in one level stop together, so the time is that of the slowest.

use super::{batches, known_without_file, lock_all, resolve, Context, Failures};
use crate::cli::TargetArgs;
use crate::client::{self, Stopped};
use crate::config::{self, Daemon};
use crate::state;
use crate::{Error, Result};

/// Runs `dmgr stop`.
pub(super) fn run(ctx: &Context, args: &TargetArgs) -> Result<u8> {
    // A config directory that is gone or cannot be read must not keep anything from
    // being stopped: the run directory's records say what runs.
    let loaded = match config::load(&ctx.dirs) {
        Err(Error::ConfigDir { .. }) => config::Loaded::default(),
        loaded => loaded?,
    };
    let mut failures = Failures::default();
    let (daemons, orphans): (Vec<&Daemon>, Vec<String>) = if args.all {
        let orphans = state::recorded_names(&ctx.dirs)
            .into_iter()
            .filter(|name| loaded.daemon(name).is_none())
            .collect();
        (loaded.daemons.iter().collect(), orphans)
    } else {
        let mut daemons = Vec::new();
        let mut orphans = Vec::new();
        for name in &args.names {
            // `web` also means the copies its file no longer defines (`instances`
            // lowered, or the file removed) that still have a record.
            let gone_copies: Vec<String> = super::recorded_copies(ctx, name)
                .into_iter()
                .filter(|copy| loaded.daemon(copy).is_none() && !orphans.contains(copy))
                .collect();
            match resolve(ctx, &loaded, std::slice::from_ref(name)) {
                Ok(mut found) => daemons.append(&mut found),
                // Stopped from its record alone (with none, there is nothing to stop).
                Err(_) if known_without_file(ctx, &loaded, name) => orphans.push(name.clone()),
                Err(_) if !gone_copies.is_empty() => {}
                Err(err) => return Err(err),
            }
            orphans.extend(gone_copies);
        }
        (daemons, orphans)
    };
    let quiet_if_idle = args.all;
    let report = |failures: &mut Failures, name: &str, result: Result<Stopped>| match result {
        Ok(Stopped::Now) => {
            failures.ok();
            ctx.say(&format!("{name}: stopped"));
        }
        Ok(Stopped::Already) => {
            failures.ok();
            if !quiet_if_idle {
                ctx.say(&format!("{name}: not running"));
            }
        }
        Ok(Stopped::RemovedStale) => {
            failures.ok();
            ctx.say(&format!("{name}: not running (removed a stale pidfile)"));
        }
        Ok(Stopped::Unknown(problem)) => {
            failures.ok();
            ctx.say(&format!(
                "{name}: nothing of it found running ({problem}; no keeper held its lock and its cgroup was empty or absent); removed the record"
            ));
        }
        Err(err) => failures.fail(err),
    };
    let lock = |name: &str| client::lock(&ctx.dirs, name);
    // Orphans have no `after` to honour: they go first, together.
    let mut batch = Vec::new();
    for name in orphans {
        match lock(&name) {
            Ok(l) => batch.push((name, None, Some(l))),
            Err(err) => failures.fail(err),
        }
    }
    client::stop_many(&ctx.dirs, batch, |name, result| {
        report(&mut failures, name, result)
    });
    let batches = batches(config::stop_order(&daemons));
    for level in batches {
        let batch = lock_all(ctx, level, &mut failures)
            .into_iter()
            .map(|(daemon, l)| (daemon.name.clone(), Some(daemon), Some(l)))
            .collect();
        client::stop_many(&ctx.dirs, batch, |name, result| {
            report(&mut failures, name, result)
        });
    }
    failures.finish()
}

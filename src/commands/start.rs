//! `dmgr start NAME... | --all`: start daemons and wait until each is up. Daemons
//! named in `after` start first (and are started if they are not running); daemons
//! whose dependencies are up start together.

use super::{batches, resolve, Context, Failures};
use crate::cli::StartArgs;
use crate::client::{self, Begun, Started};
use crate::config::{self, Daemon};
use crate::{Error, Result};

/// Runs `dmgr start`.
pub(super) fn run(ctx: &Context, args: &StartArgs) -> Result<u8> {
    let loaded = config::load(&ctx.dirs)?;
    super::warn_of_stale_boot_unit(ctx, &loaded);
    let mut failures = Failures::default();
    let targets: Vec<&Daemon> = if args.target.all {
        for invalid in &loaded.invalid {
            failures.fail(Error::Config {
                diagnostics: invalid.diagnostics.clone(),
            });
        }
        loaded.daemons.iter().filter(|d| d.autostart).collect()
    } else {
        let named = resolve(ctx, &loaded, &args.target.names)?;
        with_dependencies(&loaded, named)
    };
    // One owner at a time: a daemon that systemd runs under its exported unit is not
    // started a second time.
    let names: Vec<&str> = targets.iter().map(|d| d.name.as_str()).collect();
    let under_systemd = crate::boot::running_under_systemd(&ctx.dirs.config_dir, &names);
    let mut failed: Vec<String> = Vec::new();
    let batches = batches(config::start_order(&targets));
    for batch in batches {
        // Spawn every keeper of the batch from this one thread (forking a process
        // with many threads is slow), then collect all reports in one poll. A batch
        // is a level of the `after` order, cut to fit the open-file limit.
        let mut pending = Vec::new();
        for daemon in batch {
            let begun = match daemon.after.iter().find(|dep| {
                // `after = ["web"]` names every copy of `web`.
                failed
                    .iter()
                    .any(|f| f == *dep || super::base_of(f) == dep.as_str())
            }) {
                Some(dep) => Err(Error::daemon(
                    &daemon.name,
                    format!("not started: {dep} did not start or did not succeed"),
                )),
                None => match under_systemd.get(&daemon.name) {
                    Some(copy) => Err(Error::daemon(
                        &daemon.name,
                        copy.refusal(crate::boot::is_user_scope()),
                    )),
                    None => client::lock(&ctx.dirs, &daemon.name)
                        .and_then(|lock| client::begin_start(&ctx.dirs, daemon, Some(lock))),
                },
            };
            match begun {
                Ok(Begun::Done(started)) => {
                    failures.ok();
                    ctx.say(&describe(&daemon.name, started));
                }
                Ok(Begun::Waiting(p)) => pending.push(p),
                Err(err) => {
                    failed.push(daemon.name.clone());
                    failures.fail(err);
                }
            }
        }
        client::await_starts(
            &ctx.dirs,
            pending,
            |name, result| match result {
                Ok(started) => {
                    failures.ok();
                    ctx.say(&describe(name, started));
                }
                Err(err) => {
                    failed.push(name.to_string());
                    failures.fail(err);
                }
            },
            super::say_waiting(ctx),
        );
    }
    if args.target.all {
        // The boot unit (Type=notify) is ready now: units After= it may start.
        if let Err(why) = crate::boot::tell_manager_ready(&ready_status(&failures)) {
            let style = crate::output::Style::for_stderr();
            eprintln!("{} {why}", style.hint("dmgr: warning:"));
        }
    }
    failures.finish()
}

/// The status line `start --all` leaves with its manager (`systemctl status`).
fn ready_status(failures: &Failures) -> String {
    let failed = failures.errors.len();
    let up = failures.total - failed;
    let daemons = |n: usize| if n == 1 { "daemon" } else { "daemons" };
    match failed {
        0 => format!("{up} {} up", daemons(up)),
        _ => format!(
            "{up} {} up, {failed} failed to start (`dmgr list` says which)",
            daemons(up)
        ),
    }
}

/// The named daemons plus, transitively, the daemons they start after.
fn with_dependencies<'a>(loaded: &'a config::Loaded, named: Vec<&'a Daemon>) -> Vec<&'a Daemon> {
    let mut all = named;
    let mut index = 0;
    while index < all.len() {
        for dep in &all[index].after {
            for daemon in loaded.named(dep) {
                if !all.iter().any(|d| d.name == daemon.name) {
                    all.push(daemon);
                }
            }
        }
        index += 1;
    }
    all
}

/// What `start` says of `name` once it `started` so.
pub(super) fn describe(name: &str, started: Started) -> String {
    match started {
        Started::Done { ran_ms } => format!(
            "{name}: done (exit 0 after {})",
            crate::config::units::format_duration(std::time::Duration::from_millis(ran_ms))
        ),
        Started::Waiting { next_ms: 0 } => format!("{name}: waiting (no next time)"),
        Started::Waiting { next_ms } => format!(
            "{name}: waiting (next run {})",
            crate::schedule::local_time(next_ms)
        ),
        Started::Now(pid) => format!("{name}: started (pid {pid})"),
        Started::Already { pid, supervised: true } => format!("{name}: already running (pid {pid})"),
        Started::Already { pid, supervised: false } => format!(
            "{name}: already running (pid {pid}) without a keeper; `dmgr restart {name}` puts it under one again"
        ),
        Started::Pending => format!("{name}: already started; its keeper restarts it after a backoff"),
    }
}

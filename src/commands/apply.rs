//! `dmgr apply [--dry-run]`: make the running set match the config directory.
//!
//! Per daemon, one action: `start` a new autostart daemon, or one that is not running
//! though nobody asked (it exited, failed, lost its keeper, or the host restarted);
//! leave one that `dmgr stop` stopped as it is, and say so; `restart` one
//! whose process-affecting keys changed since it started (or that runs without a
//! keeper), in its keeper where it holds sockets or restarts start-first (as
//! `dmgr restart` does); `update` the keeper of one whose supervision keys changed, live, keeping
//! the PID; `stop` an orphan whose file was removed. A file that does not load is
//! reported and its running daemon left alone. `--dry-run` prints the plan, with every
//! changed key, and changes nothing.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{batches, lock_all, Context, Failures};
use crate::cli::ApplyArgs;
use crate::client::{self, Begun, InKeeper};
use crate::config::{self, Daemon};
use crate::state::{self, Reason};
use crate::{Error, Result};

/// How long `apply` waits for a keeper to confirm it took over changed keys.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(5);

/// One step of the plan.
#[derive(Debug, Clone)]
enum Action<'a> {
    /// Start it, and why.
    Start(&'a Daemon, String),
    /// Leave it stopped: `dmgr stop` stopped it.
    LeaveStopped(&'a Daemon),
    Restart(&'a Daemon, Vec<String>),
    Update(&'a Daemon, Vec<String>),
    /// Stop an orphan, and why it is one.
    Stop(String, String),
}

/// Runs `dmgr apply`.
pub(super) fn run(ctx: &Context, args: &ApplyArgs) -> Result<u8> {
    let loaded = config::load(&ctx.dirs)?;
    super::warn_of_stale_boot_unit(ctx, &loaded);
    let mut failures = Failures::default();
    for invalid in &loaded.invalid {
        failures.fail(Error::Config {
            diagnostics: invalid.diagnostics.clone(),
        });
    }
    let mut plan = Vec::new();
    let mut unchanged = 0;
    for daemon in &loaded.daemons {
        let observed = state::observe(&ctx.dirs, &daemon.name, Some(&daemon.pidfile));
        let record = observed.record.as_ref();
        match record {
            // Nothing can be concluded from a record that cannot be used: whether it
            // was stopped by request, what it was started with (issue 22).
            _ if observed.status == state::Status::Unknown => failures.fail(Error::daemon(
                &daemon.name,
                format!(
                    "left as it is: {}; `dmgr stop {}` then `dmgr start {}` settles it",
                    observed
                        .problem
                        .as_deref()
                        .unwrap_or("its state record cannot be used"),
                    daemon.name,
                    daemon.name
                ),
            )),
            _ if observed.daemon.is_none() && observed.keeper.is_none() => match observed.reason {
                _ if !daemon.autostart => unchanged += 1,
                // A oneshot that ran to completion is not run again by `apply`; `start`
                // runs it again.
                _ if observed.status == state::Status::Done => unchanged += 1,
                Some(Reason::StoppedByRequest) => plan.push(Action::LeaveStopped(daemon)),
                _ => plan.push(Action::Start(daemon, why_start(&observed))),
            },
            _ if observed.is_unsupervised() => {
                plan.push(Action::Restart(daemon, vec!["keeper gone".into()]))
            }
            // `dmgr run` runs it in the foreground: that terminal's to stop, not ours.
            Some(record) if record.foreground => unchanged += 1,
            Some(record) => {
                let names = |keys: Vec<&str>| keys.into_iter().map(String::from).collect();
                let mut process: Vec<String> = names(record.process.changed(&daemon.process));
                // Held by the keeper for its whole life: only a new keeper binds others.
                for key in process.iter_mut().filter(|k| *k == "sockets") {
                    key.push_str(" (held by the keeper: a new keeper binds them)");
                }
                if process.is_empty() && !daemon.process.env_file.is_empty() {
                    // The files are read at each start: what they hold now against
                    // what the running process was started with.
                    match config::env_file::load(&daemon.process.env_file) {
                        Ok(now) if Some(now.digest) != record.env_file_digest => {
                            process.push("env_file content".into())
                        }
                        Ok(_) => {}
                        Err(reason) => {
                            failures.fail(Error::daemon(
                                &daemon.name,
                                format!("left running as it is: {reason}"),
                            ));
                            continue;
                        }
                    }
                }
                let supervision: Vec<String> =
                    names(record.supervision.changed(&daemon.supervision));
                if !process.is_empty() {
                    plan.push(Action::Restart(daemon, process));
                } else if !supervision.is_empty() {
                    plan.push(Action::Update(daemon, supervision));
                } else {
                    unchanged += 1;
                }
            }
            None => unchanged += 1,
        }
    }
    for name in state::recorded_names(&ctx.dirs) {
        if loaded.daemon(&name).is_some() || loaded.invalid(super::base_of(&name)).is_some() {
            continue;
        }
        let observed = state::observe(&ctx.dirs, &name, None);
        if observed.status == state::Status::Unknown {
            // Whose it is cannot be told: it may not be this directory's at all.
            failures.fail(Error::daemon(
                &name,
                format!(
                    "left as it is: {}, and it has no file here; `dmgr stop {name}` stops it",
                    observed
                        .problem
                        .as_deref()
                        .unwrap_or("its state record cannot be used")
                ),
            ));
        } else if observed.is_running() {
            let why = orphan_reason(&loaded, &name);
            plan.push(Action::Stop(name, why));
        }
    }

    if args.dry_run {
        for action in &plan {
            ctx.say(&describe(action, true));
        }
        ctx.say(&summary(&plan, unchanged, true));
        return failures.finish();
    }

    for action in plan.iter().filter(|a| matches!(a, Action::LeaveStopped(_))) {
        ctx.say(&describe(action, false));
    }
    // Orphans first, together.
    let mut orphans = Vec::new();
    for action in &plan {
        if let Action::Stop(name, _) = action {
            match client::lock(&ctx.dirs, name) {
                Ok(lock) => orphans.push((name.clone(), None, Some(lock))),
                Err(err) => failures.fail(err),
            }
        }
    }
    client::stop_many(&ctx.dirs, orphans, |name, result| {
        let why = orphan_reason(&loaded, name);
        report(
            ctx,
            &mut failures,
            &Action::Stop(name.to_string(), why),
            result.map(drop),
        )
    });
    // Then level by level of the `after` order: restarts stop together, then starts
    // and restarts start together, then live updates are confirmed.
    let daemons: Vec<&Daemon> = plan
        .iter()
        .filter_map(|a| match a {
            Action::Start(d, _) | Action::Restart(d, _) | Action::Update(d, _) => Some(*d),
            Action::Stop(..) | Action::LeaveStopped(_) => None,
        })
        .collect();
    let action_of = |name: &str| {
        plan.iter().find(|a| matches!(a, Action::Start(d, _) | Action::Restart(d, _) | Action::Update(d, _) if d.name == name))
    };
    let batches = batches(config::start_order(&daemons));
    for batch in batches {
        let locked = lock_all(ctx, batch, &mut failures);
        // A daemon with sockets, or a start-first one, is restarted by its keeper on
        // the sockets it holds, unless what changed needs a new keeper.
        let mut in_keeper: Vec<String> = Vec::new();
        for (daemon, _) in &locked {
            let Some(action @ Action::Restart(..)) = action_of(&daemon.name) else {
                continue;
            };
            match client::restart_in_keeper(&ctx.dirs, daemon) {
                InKeeper::NotAsked => {}
                InKeeper::NewKeeper(why) => ctx.say(&format!(
                    "{}: restarting with a new keeper ({why}); its held sockets close meanwhile",
                    daemon.name
                )),
                InKeeper::Done(result) => {
                    in_keeper.push(daemon.name.clone());
                    report(ctx, &mut failures, action, result.map(drop));
                }
            }
        }
        let restarts = locked
            .iter()
            .filter(|(d, _)| matches!(action_of(&d.name), Some(Action::Restart(..))))
            .filter(|(d, _)| !in_keeper.contains(&d.name))
            .map(|(d, _)| (d.name.clone(), Some(*d), None))
            .collect();
        let mut failed: Vec<String> = Vec::new();
        client::stop_many(&ctx.dirs, restarts, |name, result| {
            if let Err(err) = result {
                failed.push(name.to_string());
                failures.fail(err);
            }
        });
        let mut pending = Vec::new();
        let mut updates = Vec::new();
        for (daemon, lock) in locked {
            match action_of(&daemon.name) {
                Some(Action::Update(..)) => updates.push((daemon, lock)),
                _ if in_keeper.contains(&daemon.name) => {}
                Some(action) if !failed.contains(&daemon.name) => {
                    match client::begin_start(&ctx.dirs, daemon, Some(lock)) {
                        Ok(Begun::Done(_)) => report(ctx, &mut failures, action, Ok(())),
                        Ok(Begun::Waiting(p)) => pending.push(p),
                        Err(err) => failures.fail(err),
                    }
                }
                _ => {}
            }
        }
        client::await_starts(
            &ctx.dirs,
            pending,
            |name, result| {
                if let Some(action) = action_of(name) {
                    report(ctx, &mut failures, action, result.map(drop));
                }
            },
            super::say_waiting(ctx),
        );
        for (daemon, _lock) in updates {
            let result = update_live(ctx, daemon);
            if let Some(action) = action_of(&daemon.name) {
                report(ctx, &mut failures, action, result);
            }
        }
    }
    ctx.say(&summary(&plan, unchanged, false));
    failures.finish()
}

/// Hands changed supervision keys to the running keeper (SIGUSR1: it re-reads the
/// file) and waits until its state record shows it took them.
fn update_live(ctx: &Context, daemon: &Daemon) -> Result<()> {
    let wanted = &daemon.supervision;
    if !client::signal_keeper(&ctx.dirs, &daemon.name, Signal::SIGUSR1)? {
        return Err(Error::daemon(
            &daemon.name,
            "its keeper is gone; nothing to update",
        ));
    }
    let deadline = Instant::now() + UPDATE_TIMEOUT;
    loop {
        let record = state::read(&ctx.dirs.state_file(&daemon.name));
        if record.is_some_and(|r| &r.supervision == wanted) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::daemon(
                &daemon.name,
                "its keeper did not confirm the update",
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn report(ctx: &Context, failures: &mut Failures, action: &Action<'_>, result: Result<()>) {
    match result {
        Ok(()) => {
            failures.ok();
            ctx.say(&describe(action, false));
        }
        Err(err) => failures.fail(err),
    }
}

fn describe(action: &Action<'_>, planned: bool) -> String {
    let (name, verb, why) = match action {
        Action::Start(d, why) => (
            d.name.as_str(),
            ["started", "start"],
            match (why.as_str(), planned) {
                ("new", _) => why.clone(),
                (_, true) => format!("down: {why}"),
                (_, false) => format!("was down: {why}"),
            },
        ),
        Action::LeaveStopped(d) => (
            d.name.as_str(),
            ["left stopped", "leave stopped"],
            format!(
                "stopped with `dmgr stop`; `dmgr start {}` starts it",
                d.name
            ),
        ),
        Action::Restart(d, keys) => (
            d.name.as_str(),
            ["restarted", "restart"],
            format!("changed: {}", keys.join(", ")),
        ),
        Action::Update(d, keys) => (
            d.name.as_str(),
            ["updated live", "update live, keeping the process"],
            format!("changed: {}", keys.join(", ")),
        ),
        Action::Stop(name, why) => (name.as_str(), ["stopped", "stop"], why.clone()),
    };
    format!("{name}: {} ({why})", verb[usize::from(planned)])
}

fn summary(plan: &[Action<'_>], unchanged: usize, planned: bool) -> String {
    let count = |f: fn(&Action<'_>) -> bool| plan.iter().filter(|a| f(a)).count();
    format!(
        "apply{}: {} to start, {} to restart, {} to update live, {} to stop, {} left stopped, {unchanged} unchanged",
        if planned { " --dry-run" } else { "" },
        count(|a| matches!(a, Action::Start(..))),
        count(|a| matches!(a, Action::Restart(..))),
        count(|a| matches!(a, Action::Update(..))),
        count(|a| matches!(a, Action::Stop(..))),
        count(|a| matches!(a, Action::LeaveStopped(_))),
    )
}

/// Why a running daemon is an orphan, in words for the plan: its file is gone, or it
/// is a copy its file no longer asks for.
fn orphan_reason(loaded: &config::Loaded, name: &str) -> String {
    let Some((base, _)) = config::split_instance_name(name) else {
        return "file removed".to_string();
    };
    match loaded.named(base).first().and_then(|d| d.instance.as_ref()) {
        Some(i) => format!("instances = {} in {base}.toml", i.count),
        None if loaded.daemon(base).is_some() => format!("{base}.toml no longer sets instances"),
        None => "file removed".to_string(),
    }
}

/// Why `apply` starts a daemon that does not run, in words for its plan.
fn why_start(observed: &state::Observed) -> String {
    let Some(record) = &observed.record else {
        return "new".to_string();
    };
    match observed.reason {
        Some(Reason::HostRestarted) => "the host restarted".to_string(),
        Some(Reason::KeeperLost) => "its keeper was lost".to_string(),
        Some(Reason::GaveUp) => "its keeper gave up on it".to_string(),
        Some(Reason::StartFailed) => "its last start failed".to_string(),
        Some(Reason::OutsideStop) => match &record.error {
            Some(who) => format!("stopped by {who}"),
            None => "stopped by a signal from outside dmgr".to_string(),
        },
        _ => match &record.last_exit {
            Some(exit) => match (exit.code, &exit.signal) {
                (_, Some(signal)) => format!("it was killed by SIG{signal}"),
                (Some(code), None) => format!("it exited {code}"),
                (None, None) => "it ended".to_string(),
            },
            None => "it is not running".to_string(),
        },
    }
}

//! `dmgr reload NAME...`: send each daemon its `reload_signal`, or run its
//! `reload_command` (in the daemon's environment, with `MAINPID` set, bounded by
//! `stop_timeout`, its output to the terminal; a non-zero exit fails the reload).

use super::{resolve, Context, Failures};
use crate::cli::NamesArgs;
use crate::config::Daemon;
use crate::events::{self, Event, Kind};
use crate::keeper::{self, control};
use crate::{config, state, Error, Result};

/// Runs `dmgr reload`.
pub(super) fn run(ctx: &Context, args: &NamesArgs) -> Result<u8> {
    let loaded = config::load_named(&ctx.dirs, &args.names)?;
    let mut failures = Failures::default();
    for daemon in resolve(ctx, &loaded, &args.names)? {
        let result = match &daemon.supervision.reload_command {
            Some(argv) => run_reload_command(ctx, daemon, argv),
            None => send_reload_signal(ctx, daemon),
        };
        match result {
            Ok(line) => {
                failures.ok();
                ctx.say(&line);
            }
            Err(err) => failures.fail(err),
        }
    }
    failures.finish()
}

fn send_reload_signal(ctx: &Context, daemon: &Daemon) -> Result<String> {
    let signal = daemon.supervision.reload_signal;
    let by = "dmgr reload";
    match control::signal_daemon(&ctx.dirs, &daemon.name, Some(daemon), signal, by)? {
        Some(pid) => Ok(format!("{}: sent {signal} to pid {pid}", daemon.name)),
        None => Err(not_running(daemon)),
    }
}

fn run_reload_command(ctx: &Context, daemon: &Daemon, argv: &[String]) -> Result<String> {
    let observed = state::observe(&ctx.dirs, &daemon.name, Some(&daemon.pidfile));
    let Some(main) = observed.daemon else {
        return Err(not_running(daemon));
    };
    let shown = shlex::try_join(argv.iter().map(String::as_str)).unwrap_or(argv.join(" "));
    let fail = |why: String| Error::daemon(&daemon.name, format!("reload_command {shown}: {why}"));
    match keeper::run_command(daemon, argv, main.pid, daemon.supervision.stop_timeout)
        .map_err(fail)?
    {
        nix::sys::wait::WaitStatus::Exited(_, 0) => {
            let event = Event::now(&daemon.name, Kind::Signalled).pid(main.pid);
            let event = event.message("dmgr reload: reload_command exited 0");
            events::append(&ctx.dirs.events_file(&daemon.name), &event);
            Ok(format!(
                "{}: reloaded (pid {}) with {shown}",
                daemon.name, main.pid
            ))
        }
        nix::sys::wait::WaitStatus::Exited(_, code) => Err(fail(format!("exited {code}"))),
        other => Err(fail(format!("ended: {other:?}"))),
    }
}

fn not_running(daemon: &Daemon) -> Error {
    Error::daemon(&daemon.name, "not running; nothing to reload")
}

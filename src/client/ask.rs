//! The command-line side of asking a running daemon or its keeper for something other
//! than a start or a stop: a signal to the daemon (`dmgr kill`), a signal to its keeper
//! (`dmgr rotate`, `apply`'s hand-over of changed keys), and `dmgr reload`, which the
//! keeper carries out and answers (see [`super::request`]).

use std::time::Duration;

use nix::sys::signal::Signal;

use super::request::{self, Answer};
use crate::config::{units, Daemon, Dirs};
use crate::events::{self, Event, Kind};
use crate::keeper::restart::{needs_new_keeper, NEEDS_NEW_KEEPER};
use crate::state;
use crate::sys;
use crate::{Error, Result};

/// How much longer than `stop_timeout` (which bounds `reload_command`) `dmgr reload`
/// waits for the keeper's answer.
const ANSWER_GRACE: Duration = Duration::from_secs(5);

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reloaded {
    /// `reload_signal` went to the daemon's main process `pid`.
    Signalled {
        /// The main process.
        pid: i32,
        /// The signal's name (`HUP`).
        signal: String,
    },
    /// `reload_command` exited 0; `pid` is the daemon's main process after it.
    Command {
        /// The main process, if it runs.
        pid: Option<i32>,
    },
}

/// Reloads `daemon`: asks its keeper, which sends `reload_signal` or runs
/// `reload_command` in the daemon's tree, and waits for its answer. Where no keeper can
/// be asked (`dmgr run` runs it, or its keeper predates requests) the signal is sent,
/// or the command run, from here; a daemon whose keeper is gone gets its signal but
/// not its command, which would run outside the daemon's tree.
pub(crate) fn reload(dirs: &Dirs, daemon: &Daemon) -> Result<Reloaded> {
    let name = &daemon.name;
    let observed = state::observe(dirs, name, Some(&daemon.pidfile));
    let Some(main) = observed.daemon else {
        return Err(Error::daemon(name, "not running; nothing to reload"));
    };
    let command = daemon.supervision.reload_command.as_deref();
    match observed.keeper {
        Some(keeper) if request::understands_requests(keeper) => {
            let mut timeout = daemon.supervision.stop_timeout + ANSWER_GRACE;
            if daemon.kind == crate::config::DaemonType::Notify {
                // The daemon's verdict: RELOADING=1 within a grace, READY=1 within
                // ready_timeout of it (or as long again as it asks for).
                timeout += crate::keeper::sd_notify::protocol::RELOADING_GRACE
                    + daemon.supervision.ready_timeout;
            }
            let answer = request::reload(keeper, &dirs.events_file(name), timeout)
                .map_err(|e| Error::cannot(name, "ask its keeper", e))?;
            answered(name, command, answer, timeout)
        }
        None if command.is_some() && !observed.record.as_ref().is_some_and(|r| r.foreground) => {
            Err(Error::daemon(
                name,
                format!("not reloaded: its keeper is gone, and reload_command would run outside the daemon's tree; `dmgr restart {name}` puts it under a keeper again"),
            ))
        }
        _ => match command {
            Some(argv) => run_here(dirs, daemon, argv, main.pid),
            None => {
                let signal = daemon.supervision.reload_signal;
                match signal_daemon(dirs, name, Some(daemon), signal, "dmgr reload")? {
                    Some(pid) => Ok(Reloaded::Signalled {
                        pid,
                        signal: signal.to_string(),
                    }),
                    None => Err(Error::daemon(name, "not running; nothing to reload")),
                }
            }
        },
    }
}

/// What became of asking a daemon's keeper to restart it.
#[derive(Debug)]
pub(crate) enum InKeeper {
    /// The keeper restarted it: the new generation's PID once it is up, or why not.
    Done(Result<i32>),
    /// Only a new keeper can restart it, for the reason given (`sockets` changed, ...).
    NewKeeper(String),
    /// No keeper can be asked (none runs, it predates requests, the daemon does not
    /// run, `dmgr run` runs it), or the daemon neither holds sockets nor restarts
    /// start-first: the caller restarts it with a new keeper.
    NotAsked,
}

/// Restarts a daemon with `sockets` or `restart_mode = "start-first"` in its keeper,
/// on the sockets it holds (see `keeper::restart`): start-first, the new generation
/// beside the old; stop-first, the old stopped first while the sockets stay open.
pub(crate) fn restart_in_keeper(dirs: &Dirs, daemon: &Daemon) -> InKeeper {
    let name = &daemon.name;
    let s = &daemon.supervision;
    if s.restart_mode != crate::config::RestartMode::StartFirst && daemon.process.sockets.is_empty()
    {
        return InKeeper::NotAsked;
    }
    let observed = state::observe(dirs, name, Some(&daemon.pidfile));
    let keeper = observed
        .keeper
        .filter(|k| request::understands_requests(*k));
    let (Some(keeper), Some(_), Some(record)) = (keeper, observed.daemon, observed.record.as_ref())
    else {
        return InKeeper::NotAsked;
    };
    if record.foreground {
        return InKeeper::NotAsked;
    }
    if let Some(why) = needs_new_keeper(&record.process, &daemon.process) {
        return InKeeper::NewKeeper(why);
    }
    // The new generation's start; a stop-first restart's stop before it, and where the
    // new one fails, the stop of what is left before the policy's verdict.
    let timeout = s.start_wait.max(s.ready_timeout) + s.stop_timeout * 2 + ANSWER_GRACE;
    let answer = match request::restart(keeper, &dirs.events_file(name), timeout) {
        Ok(answer) => answer,
        Err(e) => {
            return InKeeper::Done(Err(Error::daemon(
                name,
                format!("cannot ask its keeper: {e}"),
            )))
        }
    };
    InKeeper::Done(match answer {
        Answer::Event(event) if event.event == Kind::Stopping => {
            // The new generation's PID is in the message's "(pid N)".
            let new = event
                .message
                .as_deref()
                .and_then(|m| m.split("(pid ").nth(1))
                .and_then(|m| m.split(')').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            Ok(new)
        }
        // Stop-first, or the old generation ended meanwhile: the new one is up.
        Answer::Event(event) if event.event == Kind::Ready => Ok(event.pid.unwrap_or(0)),
        Answer::Event(event) if event.event == Kind::Rollback => {
            let message = event.message.unwrap_or_default();
            if let Some(why) = message.strip_prefix(NEEDS_NEW_KEEPER) {
                return InKeeper::NewKeeper(why.to_string());
            }
            Err(Error::daemon(name, format!("rolled back: {message}")))
        }
        // The new generation failed with nothing to roll back to: the policy's verdict.
        Answer::Event(event) => Err(Error::daemon(
            name,
            format!(
                "not restarted: {} ({})",
                event.message.unwrap_or_default(),
                event.event.as_str()
            ),
        )),
        Answer::KeeperGone => Err(Error::daemon(
            name,
            "not restarted: its keeper exited before it answered",
        )),
        Answer::TimedOut => Err(Error::daemon(
            name,
            format!(
                "its keeper did not answer within {}; `dmgr events {name}` shows what it did",
                units::format_duration(timeout)
            ),
        )),
    })
}

/// What the keeper's answer means for `dmgr reload`.
fn answered(
    name: &str,
    command: Option<&[String]>,
    answer: Answer,
    timeout: Duration,
) -> Result<Reloaded> {
    let event = match answer {
        Answer::Event(event) => event,
        Answer::KeeperGone => {
            return Err(Error::daemon(
                name,
                "not reloaded: its keeper exited before it answered",
            ))
        }
        Answer::TimedOut => {
            return Err(Error::daemon(
                name,
                format!(
                    "its keeper did not answer within {}; `dmgr events {name}` shows what it did",
                    units::format_duration(timeout)
                ),
            ))
        }
    };
    match event.event {
        Kind::Signalled => Ok(Reloaded::Signalled {
            pid: event.pid.unwrap_or(0),
            signal: event.signal.unwrap_or_default(),
        }),
        Kind::Reloaded => Ok(Reloaded::Command { pid: event.pid }),
        _ => {
            let shown = command.map(show_argv).unwrap_or_default();
            let mut message = format!("reload failed: {}", event.message.unwrap_or_default());
            if !shown.is_empty() {
                message = format!("{message} ({shown})");
            }
            if !event.output.is_empty() {
                message.push_str("\nits last output lines:");
                for line in &event.output {
                    message.push_str("\n  | ");
                    message.push_str(line);
                }
            }
            Err(Error::daemon(name, message))
        }
    }
}

/// `argv` as a shell would read it back.
pub(crate) fn show_argv(argv: &[String]) -> String {
    shlex::try_join(argv.iter().map(String::as_str)).unwrap_or(argv.join(" "))
}

/// Runs `reload_command` from this `dmgr`, with its output on the terminal: the
/// daemon runs under `dmgr run`, or under a keeper that does not read requests.
fn run_here(dirs: &Dirs, daemon: &Daemon, argv: &[String], main: i32) -> Result<Reloaded> {
    let shown = show_argv(argv);
    let fail = |why: String| Error::daemon(&daemon.name, format!("reload_command {shown}: {why}"));
    let timeout = daemon.supervision.stop_timeout;
    match super::run_command(daemon, argv, main, timeout).map_err(fail)? {
        nix::sys::wait::WaitStatus::Exited(_, 0) => {
            let event = Event::now(&daemon.name, Kind::Reloaded).pid(main);
            let event = event.message("dmgr reload: reload_command exited 0");
            events::append(&dirs.events_file(&daemon.name), &event);
            Ok(Reloaded::Command { pid: Some(main) })
        }
        nix::sys::wait::WaitStatus::Exited(_, code) => Err(fail(format!("exited {code}"))),
        other => Err(fail(format!("ended: {other:?}"))),
    }
}

/// Sends `signal` to the daemon's main process, identity-checked, and records a
/// `signalled` event saying it was `by` (`dmgr kill`); `Ok(None)` if it is not running.
pub(crate) fn signal_daemon(
    dirs: &Dirs,
    name: &str,
    daemon: Option<&Daemon>,
    signal: units::Signal,
    by: &str,
) -> Result<Option<i32>> {
    let observed = state::observe(dirs, name, daemon.map(|d| d.pidfile.as_path()));
    let Some(process) = observed.daemon else {
        return Ok(None);
    };
    // Timed before the signal: what the daemon does about it comes after.
    let event = Event::now(name, Kind::Signalled).pid(process.pid);
    match sys::signal_process(process, signal.0) {
        Ok(true) => {
            let event = event.signal(signal.to_string()).message(by);
            events::append(&dirs.events_file(name), &event);
            Ok(Some(process.pid))
        }
        Ok(false) => Ok(None),
        Err(e) => Err(Error::cannot(
            name,
            format!("signal pid {}", process.pid),
            e,
        )),
    }
}

/// Asks the keeper of `name` to do something by signal (rotate logs, take over
/// changed keys); returns false when no keeper runs.
pub(crate) fn signal_keeper(dirs: &Dirs, name: &str, signal: Signal) -> Result<bool> {
    let observed = state::observe(dirs, name, None);
    let Some(keeper) = observed.keeper else {
        return Ok(false);
    };
    sys::signal_process(keeper, signal)
        .map_err(|e| Error::cannot(name, format!("signal its keeper (pid {})", keeper.pid), e))
}

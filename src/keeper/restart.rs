//! `dmgr restart` in the keeper (issue 27), for a daemon with `sockets` or
//! `restart_mode = "start-first"`: the file is read as it is now, its process keys
//! become the next generation's and its supervision keys are taken over, then the
//! machine restarts the daemon as `restart_mode` says, on the sockets the keeper holds
//! (see `core::machine::generations`): start-first beside the generation that serves,
//! or stop-first with the sockets open meanwhile. What only a new keeper can take
//! ([`needs_new_keeper`]) is refused with a `rollback` that says so; `dmgr restart`
//! checks it first, and replaces the keeper then.

use super::core::machine::{Input, Now};
use super::Keeper;
use crate::config::{self, ProcessSpec, SocketAddress};
use crate::events::{Event, Kind};

/// How a `rollback` begins that refuses a restart only a new keeper can do.
pub(crate) const NEEDS_NEW_KEEPER: &str = "not restarted: needs a new keeper: ";

/// What of a change from `running` to `fresh` only a new keeper can take, in words:
/// the sockets it binds and holds, the logs it opens, the watchdog it sets up, and
/// the owner of its unix sockets. `None` when the running keeper can restart with
/// `fresh`.
pub(crate) fn needs_new_keeper(running: &ProcessSpec, fresh: &ProcessSpec) -> Option<String> {
    let mut keys = Vec::new();
    if running.sockets != fresh.sockets {
        keys.push("sockets");
    }
    if running.log != fresh.log {
        keys.push("log");
    }
    if running.stderr_log != fresh.stderr_log {
        keys.push("stderr_log");
    }
    if running.watchdog != fresh.watchdog {
        keys.push("watchdog");
    }
    let unix = fresh
        .sockets
        .iter()
        .any(|s| matches!(s.address, SocketAddress::Unix(_)));
    if unix && (running.user != fresh.user || running.group != fresh.group) {
        keys.push("user or group (the owner of its unix sockets)");
    }
    (!keys.is_empty())
        .then(|| format!("{} changed, which only a new keeper takes", keys.join(", ")))
}

impl Keeper {
    /// Answers restart request `number`.
    pub(super) fn restart(&mut self, number: u32, now: Now) {
        let refuse = |keeper: &mut Keeper, why: String| {
            let event = Event::new(&keeper.daemon.name, Kind::Rollback)
                .request(Some(number))
                .message(why);
            keeper.record_event(event);
        };
        let fresh = match config::load_daemon(&self.dirs, &self.daemon.name) {
            Ok(fresh) => fresh,
            Err(invalid) => {
                let first = invalid.diagnostics.first().map(ToString::to_string);
                return refuse(
                    self,
                    format!(
                        "not restarted: the file does not load: {}",
                        first.unwrap_or_default()
                    ),
                );
            }
        };
        let mut new_keeper = needs_new_keeper(&self.daemon.process, &fresh.process);
        if fresh.kind != self.daemon.kind {
            new_keeper = Some("type changed, which only a new keeper takes".into());
        }
        if let Some(why) = new_keeper {
            return refuse(self, format!("{NEEDS_NEW_KEEPER}{why}"));
        }
        self.daemon.process = fresh.process;
        self.record.process = self.daemon.process.clone();
        self.record.command = self.daemon.process.command.clone();
        // The supervision keys too, as `apply` hands them over (an `updated` event only
        // where one changed).
        self.take_over_keys(now, false);
        self.feed(
            Input::Restart {
                request: Some(number),
            },
            now,
        );
    }
}

//! `dmgr restart` of a start-first daemon, in its keeper: the file is read as it is
//! now, its process keys become the next generation's and its supervision keys are
//! taken over, then the machine starts the next generation beside the one that serves
//! (see `core::machine::generations`). What only a new keeper can change (`sockets`,
//! the log paths) is refused with a `rollback` naming it; `dmgr restart` checks it
//! first and restarts the keeper itself then.

use super::core::machine::{Input, Now};
use super::Keeper;
use crate::config;
use crate::events::{Event, Kind};

impl Keeper {
    /// Answers restart request `number`.
    pub(super) fn restart(&mut self, number: u32, now: Now) {
        let refuse = |keeper: &mut Keeper, why: String| {
            let event = Event::new(&keeper.daemon.name, Kind::Rollback)
                .request(Some(number))
                .message(format!("not restarted: {why}"));
            keeper.record_event(event);
        };
        let fresh = match config::load_daemon(&self.dirs, &self.daemon.name) {
            Ok(fresh) => fresh,
            Err(invalid) => {
                let first = invalid.diagnostics.first().map(ToString::to_string);
                return refuse(
                    self,
                    format!("the file does not load: {}", first.unwrap_or_default()),
                );
            }
        };
        let now_keys = &self.daemon.process;
        if fresh.process.sockets != now_keys.sockets
            || fresh.process.log != now_keys.log
            || fresh.process.stderr_log != now_keys.stderr_log
        {
            return refuse(
                self,
                "`sockets` or the log paths changed: only a new keeper takes them".into(),
            );
        }
        self.daemon.process = fresh.process;
        self.record.process = self.daemon.process.clone();
        self.record.command = self.daemon.process.command.clone();
        // The supervision keys too, as `apply` hands them over.
        self.take_over_supervision_keys(now);
        self.feed(
            Input::Restart {
                request: Some(number),
            },
            now,
        );
    }
}

//! The CLI's side of a keeper: what a `dmgr` command does to a daemon's keeper, from
//! outside it. Start keepers and wait for their reports (`start`), ask a keeper to stop
//! and wait until it has (`stop_many`, `stop`), signal a daemon or its keeper and ask
//! for a reload (`ask`, `request`), deal with what a dead keeper left (`leftovers`,
//! `interrupted`), and run a daemon in the foreground for `dmgr run` (`foreground`).
//!
//! Every operation here that changes a daemon runs under that daemon's operation lock
//! ([`lock`]), so two `dmgr start web` never race each other: the second waits for the
//! first to finish, then finds the daemon running and succeeds.

mod ask;
mod foreground;
mod interrupted;
mod leftovers;
mod log_mark;
mod request;
mod start;
mod stop;
mod stop_many;

pub(crate) use ask::{reload, restart_in_keeper, signal_daemon, signal_keeper, InKeeper, Reloaded};
pub(crate) use foreground::{run_command, run_foreground};
pub(crate) use start::{
    await_starts, begin_start, claim_for_foreground, lock, Begun, Started, Waiting,
};
pub(crate) use stop::Stopped;
pub(crate) use stop_many::stop_many;

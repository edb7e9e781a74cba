//! The keeper's decisions, apart from its IO: where a run is, what each input means,
//! the restart policy, and the liveness and memory checks. Nothing here makes a system
//! call or reads the clock: the keeper's loop (`keeper/mod.rs`) passes `now` in and
//! carries out what comes back, and the tests drive it all with a made-up clock.

pub(crate) mod health;
pub(crate) mod machine;
pub(crate) mod memory;
pub(crate) mod policy;

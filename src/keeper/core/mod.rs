//! The keeper's decisions, apart from its IO: the [`machine::Machine`] that owns the
//! keeper's state (phase, main process, restart tally, probe, checks, what `dmgr start`
//! was told) and its steps, the restart policy, a forking daemon's adoption, the
//! main-PID hand-over, and the liveness and memory checks. Nothing here makes a system
//! call or reads the clock: the keeper's loop (`keeper/mod.rs`) passes `now` and the
//! facts in and carries out what comes back, and the tests drive it all with a made-up
//! clock (a test in `tests/architecture.rs` keeps it so).

pub(crate) mod adoption;
pub(crate) mod handover;
pub(crate) mod health;
pub(crate) mod machine;
pub(crate) mod memory;
pub(crate) mod policy;

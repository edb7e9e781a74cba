//! The one integration test binary: every test runs the real `dmgr` binary against real
//! processes in temporary directories.

mod support;

mod config;
mod descendants;
mod events;
mod fixture;
mod forking;
mod fuzz;
mod handoff;
mod hostile;
mod hostile_cli;
mod hostile_config;
mod lifecycle;
mod liveness;
mod logs;
mod man;
mod output;
mod probes;
mod production;
mod programs;
mod stopping;
mod supervision;
mod systemd_host;

//! The one integration test binary: every test runs the real `dmgr` binary against real
//! processes in temporary directories.

mod support;

mod architecture;

mod chaos_interruptions;
mod config;
mod descendants;
mod disk_full;
mod events;
mod first_hour;
mod fixture;
mod forking;
mod fuzz;
mod golden;
mod handoff;
mod hostile;
mod hostile_cli;
mod hostile_config;
mod instances;
mod interruptions;
mod jobs;
mod lifecycle;
mod liveness;
mod logs;
mod main_pid;
mod man;
mod metrics;
mod notify;
mod notify_programs;
mod output;
mod probes;
mod production;
mod programs;
mod records;
mod reload;
mod stopping;
mod supervision;
mod systemd_host;
mod top;
mod trust;

//! `dmgr metrics`: every daemon's state as Prometheus text exposition (format 0.0.4),
//! built from the same survey as `list` (`crate::survey`), plus the CPU time and
//! memory of each daemon's processes (`crate::usage`). `exposition` writes the format,
//! `textfile` writes it atomically for node_exporter's textfile collector, `serve`
//! answers `GET /metrics`. A stateless reader: nothing is kept between two scrapes.
//!
//! Samples are labelled by `daemon` (and `instance` for the copies of a daemon with
//! `instances`, once there are any). A fact that does not apply is left out rather than
//! written as 0: a stopped daemon has no memory sample, a daemon without `health` no
//! `dmgr_daemon_health_failures`.

mod exposition;
pub(crate) mod serve;
pub(crate) mod textfile;

use crate::config::{Daemon, Dirs, Loaded};
use crate::state::Status;
use crate::survey::{self, Fact};
use crate::{usage, Result};

use exposition::{Family, Kind, Labels};

pub(crate) use exposition::CONTENT_TYPE;

/// The exposition of every daemon in `dirs`; a config directory that cannot be read
/// is an error (the run directory alone cannot say which daemons exist).
pub(crate) fn render(dirs: &Dirs) -> Result<String> {
    let (loaded, survey) = survey::survey_loaded(dirs)?;
    if let Some(problem) = survey.problem {
        return Err(problem);
    }
    Ok(exposition::render(&families(&loaded, &survey.facts)))
}

/// The metric families of SPEC's `dmgr metrics` row, and `dmgr_daemon_memory_max_bytes`
/// for alerts on memory near its ceiling.
fn families(loaded: &Loaded, facts: &[Fact]) -> Vec<Family> {
    let mut up = Family::new(
        "dmgr_daemon_up",
        Kind::Gauge,
        "1 when a process of the daemon runs, else 0.",
    );
    let mut ready = Family::new(
        "dmgr_daemon_ready",
        Kind::Gauge,
        "1 when the daemon is running and past start_wait and its ready check, else 0.",
    );
    let mut restarts = Family::new(
        "dmgr_daemon_restarts_total",
        Kind::Counter,
        "Restarts of the daemon by its current keeper (from 0 again after a stop and start).",
    );
    let mut start_time = Family::new(
        "dmgr_daemon_start_time_seconds",
        Kind::Gauge,
        "When the daemon's current process started, in seconds since the Unix epoch.",
    );
    let mut memory = Family::new(
        "dmgr_daemon_memory_bytes",
        Kind::Gauge,
        "Memory of the daemon's processes as memory_max counts it: the cgroup's working set, else the sum of their proportional set sizes.",
    );
    let mut memory_max = Family::new(
        "dmgr_daemon_memory_max_bytes",
        Kind::Gauge,
        "The daemon's memory_max, where it has one.",
    );
    let mut cpu = Family::new(
        "dmgr_daemon_cpu_seconds_total",
        Kind::Counter,
        "CPU time (user and system) of the daemon's processes: its cgroup's, else of the processes alive now.",
    );
    let mut last_exit = Family::new(
        "dmgr_daemon_last_exit_code",
        Kind::Gauge,
        "The exit code of the daemon's last run, 128 plus the signal number when a signal ended it.",
    );
    let mut health = Family::new(
        "dmgr_daemon_health_failures",
        Kind::Gauge,
        "Liveness checks failed in a row, for a daemon with a health check; it is restarted at health_failures.",
    );
    let mut info = Family::new(
        "dmgr_daemon_info",
        Kind::Gauge,
        "1 for every daemon, with its status as `dmgr list` shows it and its type.",
    );
    for fact in facts {
        let entry = &fact.entry;
        let observed = &fact.observed;
        let daemon = loaded.daemon(&entry.name);
        let labels = Labels::daemon(&entry.name);
        let running = observed.daemon.is_some();
        up.add(labels.clone(), flag(running));
        ready.add(
            labels.clone(),
            flag(running && observed.status == Status::Running),
        );
        restarts.add(labels.clone(), f64::from(entry.restarts));
        let record = observed.record.as_ref();
        start_time.add_some(
            &labels,
            record
                .and_then(|r| r.started_at_ms)
                .filter(|_| running)
                .map(|ms| ms as f64 / 1000.0),
        );
        memory.add_some(&labels, usage::memory_bytes(observed).map(|b| b as f64));
        let supervision = daemon
            .map(|d| &d.supervision)
            .or(record.map(|r| &r.supervision));
        memory_max.add_some(
            &labels,
            supervision
                .and_then(|s| s.memory_max)
                .map(|max| max.0 as f64),
        );
        cpu.add_some(
            &labels,
            usage::cpu_time(observed).map(|t| t.used.as_secs_f64()),
        );
        last_exit.add_some(
            &labels,
            record
                .and_then(|r| r.last_exit.as_ref())
                .and_then(exit_code)
                .map(f64::from),
        );
        let has_health = supervision.is_some_and(|s| s.health.is_some());
        let failures = entry.health.as_ref().map_or(0, |h| h.failures_in_row);
        health.add_some(&labels, has_health.then_some(f64::from(failures)));
        let mut info_labels = labels.with("status", entry.status.as_str());
        if let Some(kind) = daemon.and_then(type_name) {
            info_labels = info_labels.with("type", kind);
        }
        info.add(info_labels, 1.0);
    }
    vec![
        up, ready, restarts, start_time, memory, memory_max, cpu, last_exit, health, info,
    ]
}

fn flag(on: bool) -> f64 {
    if on {
        1.0
    } else {
        0.0
    }
}

/// An exit as a shell reports it: the code, or 128 plus the signal's number.
fn exit_code(exit: &crate::state::ExitRecord) -> Option<i32> {
    match (&exit.signal, exit.code) {
        (Some(name), _) => {
            let signal: nix::sys::signal::Signal = format!("SIG{name}").parse().ok()?;
            Some(128 + signal as i32)
        }
        (None, code) => code,
    }
}

/// The `type` key as the file writes it (its serde name, so that a new type needs
/// nothing here).
fn type_name(daemon: &Daemon) -> Option<String> {
    match serde_json::to_value(daemon.kind) {
        Ok(serde_json::Value::String(name)) => Some(name),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ExitRecord;

    #[test]
    fn a_signal_ends_as_128_plus_its_number() {
        let exit = |code, signal: Option<&str>| ExitRecord {
            code,
            signal: signal.map(str::to_string),
            at_ms: 0,
            ran_ms: 0,
        };
        assert_eq!(exit_code(&exit(Some(3), None)), Some(3));
        assert_eq!(exit_code(&exit(None, Some("KILL"))), Some(137));
        assert_eq!(exit_code(&exit(None, Some("TERM"))), Some(143));
        assert_eq!(exit_code(&exit(None, None)), None);
    }
}

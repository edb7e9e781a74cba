//! `dmgr status [NAME... | --all] [--json] [-n N]`: the details of daemons and their
//! last log lines; every daemon when none is named, as `systemctl status` shows them
//! all. The exit status follows LSB: 0 running, 1 dead but a pidfile or failure record
//! remains, 3 not running, 4 no such daemon (the highest of the daemons shown).

use std::fmt::Write as _;

use super::{every_name, unknown, Context};
use crate::cli::StatusArgs;
use crate::config;
use crate::output::json::{LastExit, ListEntry, NotifyDropped, StatusEntry};
use crate::output::{self, format_bytes, format_uptime, Style};
use crate::state::{self, MemoryMechanism, Reason, Status};
use crate::text::{escape, rfc3339_ms, show_path};
use crate::{events, logfile, Result};

/// How many of the newest events `status` shows.
const RECENT_EVENTS: usize = 5;

/// LSB status codes.
const RUNNING: u8 = 0;
const DEAD_WITH_TRACES: u8 = 1;
const NOT_RUNNING: u8 = 3;
const UNKNOWN: u8 = 4;

/// Runs `dmgr status`.
pub(super) fn run(ctx: &Context, args: &StatusArgs) -> Result<u8> {
    let names = match args.names.is_empty() {
        true => every_name(ctx),
        false => args.names.clone(),
    };
    let loaded = match config::load_named(&ctx.dirs, &names) {
        Ok(loaded) => loaded,
        // LSB's "status unknown": nothing can be said of any daemon.
        Err(err) => {
            output::print_error(&err);
            return Ok(UNKNOWN);
        }
    };
    // A daemon with `instances` is shown as its copies.
    let mut expanded: Vec<String> = Vec::new();
    for name in names {
        let copies: Vec<String> = match loaded.daemon(&name) {
            Some(_) => Vec::new(),
            None => loaded.named(&name).iter().map(|d| d.name.clone()).collect(),
        };
        for name in if copies.is_empty() {
            vec![name]
        } else {
            copies
        } {
            if !expanded.contains(&name) {
                expanded.push(name);
            }
        }
    }
    let names = expanded;
    let mut code = RUNNING;
    let mut entries = Vec::new();
    for name in &names {
        let daemon = loaded.daemon(name);
        let invalid = loaded
            .invalid(name)
            .or_else(|| loaded.invalid(super::base_of(name)));
        let observed = state::observe(&ctx.dirs, name, daemon.map(|d| d.pidfile.as_path()));
        let has_record = observed.record.is_some() || observed.status == Status::Unknown;
        if daemon.is_none() && invalid.is_none() && !has_record {
            output::print_error(&unknown(ctx, name));
            code = code.max(UNKNOWN);
            continue;
        }
        let mut list = ListEntry::new(name, daemon, &observed);
        if let Some(invalid) = invalid {
            list.status = Status::Invalid;
            list.error = invalid.diagnostics.first().map(|d| d.short());
        } else if daemon.is_none() && observed.is_running() && observed.status != Status::Unknown {
            list.status = Status::Orphaned;
        }
        code = code.max(match observed.status {
            _ if observed.is_running() => RUNNING,
            // LSB's "status unknown": its record cannot be used.
            Status::Unknown => UNKNOWN,
            Status::Failed => DEAD_WITH_TRACES,
            _ if observed.stale_pidfile.is_some() => DEAD_WITH_TRACES,
            _ => NOT_RUNNING,
        });
        let record = observed.record.as_ref();
        let log = daemon
            .map(|d| d.process.log.clone())
            .or(record.map(|r| r.log.clone()));
        let stderr_log = match daemon {
            Some(d) => d.process.stderr_log.clone(),
            None => record.and_then(|r| r.stderr_log.clone()),
        };
        entries.push(StatusEntry {
            keeper_pid: observed.keeper.map(|k| k.pid),
            pidfile: daemon
                .map(|d| d.forking_pidfile.clone().unwrap_or(d.pidfile.clone()))
                .or(record.map(|r| r.daemon_pidfile.clone().unwrap_or(r.pidfile.clone())))
                .map(|p| show_path(&p).into_owned()),
            lock_file: daemon
                .filter(|d| d.forking_pidfile.is_some())
                .map(|d| show_path(&d.pidfile).into_owned()),
            cgroup: record
                .filter(|_| observed.keeper.is_some() || observed.is_running())
                .and_then(|r| r.cgroup.as_ref())
                .map(|p| show_path(p).into_owned()),
            no_cgroup: record
                .filter(|_| observed.keeper.is_some() || observed.is_running())
                .and_then(|r| r.no_cgroup.clone()),
            foreground: record.is_some_and(|r| r.foreground) && observed.keeper.is_some(),
            log: log.as_ref().map(|p| show_path(p).into_owned()),
            stderr_log: stderr_log.as_ref().map(|p| show_path(p).into_owned()),
            file: daemon.map(|d| show_path(&d.file).into_owned()),
            next_restart: record
                .and_then(|r| r.next_restart_ms)
                .filter(|_| observed.keeper.is_some())
                .map(rfc3339_ms),
            next_restart_in_secs: record
                .and_then(|r| r.next_restart_ms)
                .filter(|_| observed.keeper.is_some())
                .map(|at| at.saturating_sub(state::now_ms()) as f64 / 1000.0),
            history: record.map_or(Vec::new(), |r| {
                r.history.iter().map(LastExit::from).collect()
            }),
            log_error: record.and_then(|r| r.log_error.clone()),
            stale_pidfile: observed
                .stale_pidfile
                .as_ref()
                .map(|p| show_path(p).into_owned()),
            log_tail: log.map_or(Vec::new(), |l| logfile::tail(&l, args.lines)),
            stderr_tail: stderr_log.map_or(Vec::new(), |l| logfile::tail(&l, args.lines)),
            events: events::merged(&[ctx.dirs.events_file(name)], RECENT_EVENTS)
                .into_iter()
                .map(|(_, event)| event)
                .collect(),
            notify_socket: record
                .filter(|_| observed.keeper.is_some())
                .and_then(|r| r.notify.socket.clone()),
            notify_dropped: record
                .filter(|_| observed.keeper.is_some())
                .and_then(|r| NotifyDropped::of(&r.notify)),
            list,
        });
    }
    if args.json {
        let text = serde_json::to_string_pretty(&entries).unwrap_or_default();
        output::print_raw(&format!("{text}\n"))?;
    } else {
        let blocks: Vec<String> = entries.iter().map(render).collect();
        output::print_raw(&blocks.join("\n"))?;
    }
    Ok(code)
}

/// The text form of one daemon's status. Every value from a file, the record or the
/// log is escaped: a description or a log line must not drive the terminal.
fn render(e: &StatusEntry) -> String {
    let l = &e.list;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}{}",
        escape(&l.name),
        l.description
            .as_ref()
            .map_or(String::new(), |d| format!(" - {}", escape(d)))
    );
    let style = Style::for_stdout();
    // The status is coloured after it is escaped, so that only dmgr's own
    // escape codes reach the terminal.
    let mut field = |key: &str, value: String| {
        let text = escape(&value);
        let text = match key {
            "status" => style.status(l.status, &text),
            _ => text.into_owned(),
        };
        let _ = writeln!(out, "  {:<12}{text}", format!("{key}:"));
    };
    let mut status = l.status.to_string();
    if let Some(words) = l.reason.and_then(Reason::short) {
        let _ = write!(status, " ({words})");
    }
    if let Some(pid) = l.pid {
        let _ = write!(status, " (pid {pid}");
        if let Some(up) = l.uptime_secs {
            let _ = write!(status, ", up {}", format_uptime(up));
        }
        status.push(')');
    }
    if !l.supervised {
        status.push_str(", keeper gone: `dmgr restart` puts it under a keeper again");
    }
    field("status", status);
    if let Some(command) = &l.command {
        field("command", command.clone());
    }
    if let Some(keeper) = e.keeper_pid {
        let how = if e.foreground {
            " (`dmgr run`, in the foreground)"
        } else {
            ""
        };
        field("keeper", format!("pid {keeper}{how}"));
    }
    if let Some(reason) = l.reason {
        field("reason", reason.explain().to_string());
    }
    if !l.left_behind.is_empty() {
        let pids: Vec<String> = l.left_behind.iter().map(i32::to_string).collect();
        field(
            "left",
            format!(
                "pid {}, still running; `dmgr stop {}` stops them",
                pids.join(", "),
                l.name
            ),
        );
    }
    if let (Some(error), Some(Reason::OutsideStop)) = (&l.error, l.reason) {
        field("stopped by", error.clone());
    }
    // Without a usable record the count is not known (`--json` keeps its 0).
    if l.status != Status::Unknown {
        field("restarts", l.restarts.to_string());
    }
    if let Some(exit) = &l.last_exit {
        let how = match (&exit.signal, exit.code) {
            (Some(s), _) => format!("signal {s}"),
            (None, Some(c)) => format!("exit {c}"),
            _ => "unknown".into(),
        };
        field(
            "last exit",
            format!("{how} at {} after {:.1}s", exit.at, exit.ran_secs),
        );
    }
    if let (Some(next), Some(secs)) = (&e.next_restart, e.next_restart_in_secs) {
        field("next start", format!("in {secs:.1}s, at {next}"));
    }
    if let Some(ms) = l.next_run_ms {
        let at = crate::schedule::local_time(ms);
        field(
            "next run",
            format!("{at} ({})", l.next_run.as_deref().unwrap_or("")),
        );
    }
    if let Some(mem) = l.memory_bytes {
        field("memory", format_bytes(mem));
    }
    if let Some(m) = &l.memory {
        field(
            "memory max",
            format!(
                "{} of {} ({}%) in all its processes, {} ago",
                format_bytes(m.used_bytes),
                format_bytes(m.max_bytes),
                m.percent(),
                ago(m.at_ms)
            ),
        );
        let every = config::units::format_duration(crate::keeper::core::memory::SAMPLE_INTERVAL);
        let how = match (m.mechanism, &m.sampling_reason) {
            (MemoryMechanism::CgroupEvents, _) => {
                "the cgroup's memory.high, measured on its memory.events".to_string()
            }
            (MemoryMechanism::Sampled, Some(why)) => format!("sampled every {every}: {why}"),
            (MemoryMechanism::Sampled, None) => format!("sampled every {every}"),
        };
        field("memory via", how);
    }
    if let Some(h) = &l.health {
        let last = match &h.last_error {
            None => "passed".to_string(),
            Some(why) => format!("failed: {why}"),
        };
        field(
            "health",
            format!(
                "{last} {} ago; {} of {} failures in a row",
                ago(h.last_at_ms),
                h.failures_in_row,
                h.failures_allowed
            ),
        );
    }
    if let Some(text) = &l.status_text {
        field("says", text.clone());
    }
    if !l.sockets.is_empty() {
        let held: Vec<String> = l.sockets.iter().map(|s| s.describe()).collect();
        field("sockets", held.join(", "));
    }
    if let Some(socket) = &e.notify_socket {
        let dropped = e.notify_dropped.as_ref().map_or(String::new(), |d| {
            format!("; messages dropped: {}", d.describe())
        });
        field("notify", format!("{socket}{dropped}"));
    }
    if let Some(error) = &l.error {
        field("error", error.clone());
    }
    if let Some(error) = &e.log_error {
        field("log error", error.clone());
    }
    if let Some(file) = &e.file {
        field("file", file.clone());
    }
    if let Some(pidfile) = &e.pidfile {
        let whose = if e.lock_file.is_some() {
            " (the daemon's own; dmgr only reads it)"
        } else {
            ""
        };
        field("pidfile", format!("{pidfile}{whose}"));
    }
    if let Some(lock) = &e.lock_file {
        field("lock", lock.clone());
    }
    if let Some(cgroup) = &e.cgroup {
        field("cgroup", cgroup.clone());
    } else if let Some(why) = &e.no_cgroup {
        field(
            "cgroup",
            format!("none ({why}); the keeper tracks its processes as their subreaper"),
        );
    }
    if let Some(stale) = &e.stale_pidfile {
        field(
            "stale",
            format!("{stale} names no live process; start or stop removes it"),
        );
    }
    if let Some(log) = &e.log {
        field("log", log.clone());
    }
    if let Some(log) = &e.stderr_log {
        field("stderr log", log.clone());
    }
    if e.history.len() > 1 {
        let _ = writeln!(out, "  recent exits:");
        for exit in e.history.iter().rev() {
            let how = exit.signal.as_ref().map_or_else(
                || format!("exit {}", exit.code.unwrap_or(-1)),
                |s| format!("signal {s}"),
            );
            let _ = writeln!(out, "    {}  {how} after {:.1}s", exit.at, exit.ran_secs);
        }
    }
    if !e.events.is_empty() {
        let _ = writeln!(out, "  recent events:");
        for event in &e.events {
            let line = format!(
                "{}  {:<15}  {}",
                event.time,
                event.event.as_str(),
                event.details()
            );
            let _ = writeln!(out, "    {}", escape(line.trim_end()));
        }
    }
    for (title, tail) in [("log", &e.log_tail), ("stderr log", &e.stderr_tail)] {
        if !tail.is_empty() {
            let _ = writeln!(out, "  last {title} lines:");
            for line in tail {
                let _ = writeln!(out, "    | {}", escape(line));
            }
        }
    }
    out
}

/// How long ago `at_ms` (ms since the epoch) was, as `uptime` is written (`42s`).
fn ago(at_ms: u64) -> String {
    format_uptime(state::now_ms().saturating_sub(at_ms) / 1000)
}

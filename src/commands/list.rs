//! `dmgr list [--json]`: every daemon in one table: those defined in the config
//! directory, running orphans whose file was removed, and files that fail to load.
//! Reads files, state records and `/proc` only: it takes no lock and never waits.

use super::Context;
use crate::cli::ListArgs;
use crate::config;
use crate::output::json::ListEntry;
use crate::output::{self, format_bytes, format_uptime, table, Style};
use crate::state::{self, Status};
use crate::{Error, Result};

/// Runs `dmgr list`.
pub(super) fn run(ctx: &Context, args: &ListArgs) -> Result<u8> {
    // A config directory that is missing or cannot be read is an error (exit 2), as
    // for `check`; what the run directory says still runs is listed all the same.
    let (loaded, problem) = match config::load(&ctx.dirs) {
        Ok(loaded) => (loaded, None),
        Err(err @ Error::ConfigDir { .. }) => (config::Loaded::default(), Some(err)),
        Err(err) => return Err(err),
    };
    let entries = entries(ctx, &loaded);
    if problem.is_some() && entries.is_empty() {
        return problem.map_or(Ok(0), Err);
    }
    if args.json {
        let text = serde_json::to_string_pretty(&entries).unwrap_or_default();
        output::print_raw(&format!("{text}\n"))?;
        return problem.map_or(Ok(0), Err);
    }
    // Names, commands and error messages come from daemon files: escaped, so that a
    // file cannot write control sequences to the terminal (issue 16).
    let rows = entries
        .iter()
        .map(|e| {
            vec![
                output::escape(&e.name).into_owned(),
                status_cell(e),
                e.pid.map_or("-".into(), |p| p.to_string()),
                e.uptime_secs.map_or("-".into(), format_uptime),
                e.restarts.to_string(),
                e.memory_bytes.map_or("-".into(), format_bytes),
                output::escape(match (e.status, &e.command) {
                    (Status::Invalid, _) => e.error.as_deref().unwrap_or_default(),
                    (_, Some(command)) => command,
                    _ => "",
                })
                .into_owned(),
            ]
        })
        .collect();
    let header = [
        "NAME", "STATUS", "PID", "UPTIME", "RESTARTS", "MEM", "COMMAND",
    ];
    let style = Style::for_stdout();
    let paint = |column: usize, text: &str| {
        if column != 1 || !style.color {
            return None;
        }
        let status: Status = text.split(' ').next()?.parse().ok()?;
        Some(style.status(status, text))
    };
    output::print_raw(&table::build(&header, rows, &[2, 3, 4, 5], paint))?;
    problem.map_or(Ok(0), Err)
}

/// The facts of every daemon, sorted by name.
fn entries(ctx: &Context, loaded: &config::Loaded) -> Vec<ListEntry> {
    let mut entries: Vec<ListEntry> = loaded
        .daemons
        .iter()
        .map(|d| {
            ListEntry::new(
                &d.name,
                Some(d),
                &state::observe(&ctx.dirs, &d.name, Some(&d.pidfile)),
            )
        })
        .collect();
    for invalid in &loaded.invalid {
        let observed = state::observe(&ctx.dirs, &invalid.name, None);
        let mut e = ListEntry::new(&invalid.name, None, &observed);
        e.status = Status::Invalid;
        e.error = invalid.diagnostics.first().map(|d| d.short());
        entries.push(e);
    }
    for name in state::recorded_names(&ctx.dirs) {
        if loaded.daemon(&name).is_some() || loaded.invalid(&name).is_some() {
            continue;
        }
        let observed = state::observe(&ctx.dirs, &name, None);
        if observed.daemon.is_some() || observed.keeper.is_some() {
            let mut e = ListEntry::new(&name, None, &observed);
            e.status = Status::Orphaned;
            entries.push(e);
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

fn status_cell(entry: &ListEntry) -> String {
    let words = entry.reason.and_then(state::Reason::short);
    if let (Some(words), Status::Stopped | Status::Failed) = (words, entry.status) {
        return format!("{} ({words})", entry.status);
    }
    match (&entry.last_exit, entry.status) {
        (Some(exit), Status::Failed | Status::Backoff) => {
            let how = match (&exit.signal, exit.code) {
                (Some(signal), _) => format!("signal {signal}"),
                (None, Some(code)) => format!("exit {code}"),
                (None, None) => "unknown".into(),
            };
            format!("{} ({how})", entry.status)
        }
        (_, Status::Running) if !entry.supervised => "running (no keeper)".into(),
        _ => entry.status.to_string(),
    }
}

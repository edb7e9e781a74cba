//! `dmgr list [NAME...] [--json]`: every daemon in one table (or the ones named): those
//! defined in the config directory, running orphans whose file was removed, and files
//! that fail to load.
//! Reads files, state records and `/proc` only: it takes no lock and never waits.
//! What it shows is `crate::survey`'s, which `top` and `metrics` share.

use super::{unknown, Context};
use crate::cli::ListArgs;
use crate::output::json::ListEntry;
use crate::output::{self, format_bytes, format_uptime, table, Style};
use crate::state::Status;
use crate::survey::{self, status_cell};
use crate::Result;

/// Runs `dmgr list`.
pub(super) fn run(ctx: &Context, args: &ListArgs) -> Result<u8> {
    // A config directory that is missing or cannot be read is an error (exit 2), as
    // for `check`; what the run directory says still runs is listed all the same.
    let survey = survey::survey_brief(&ctx.dirs)?;
    let problem = survey.problem;
    let entries: Vec<ListEntry> = survey.facts.into_iter().map(|f| f.entry).collect();
    if problem.is_some() && entries.is_empty() {
        return problem.map_or(Ok(0), Err);
    }
    // `list NAME...`: those daemons alone, in the order of the table.
    let entries = match args.names.is_empty() {
        true => entries,
        false => {
            // `web` also lists the copies of a daemon with `instances`.
            let is_named =
                |e: &ListEntry, n: &String| e.name == *n || super::base_of(&e.name) == n.as_str();
            if let Some(name) = args
                .names
                .iter()
                .find(|n| !entries.iter().any(|e| is_named(e, n)))
            {
                return Err(unknown(ctx, name));
            }
            entries
                .into_iter()
                .filter(|e| args.names.iter().any(|n| is_named(e, n)))
                .collect()
        }
    };
    let mut entries = entries;
    add_systemd_copies(ctx, &mut entries);
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
                crate::text::escape(&e.name).into_owned(),
                status_cell(e),
                e.pid.map_or("-".into(), |p| p.to_string()),
                e.uptime_secs.map_or("-".into(), format_uptime),
                e.restarts.to_string(),
                e.memory_bytes.map_or("-".into(), format_bytes),
                crate::text::escape(match (e.status, &e.command) {
                    (Status::Invalid | Status::Unknown, _) => {
                        e.error.as_deref().unwrap_or_default()
                    }
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

/// Marks the daemons dmgr does not run that systemd runs under their exported units:
/// running, with systemd's main PID, and the unit (issue 24: `list` said stopped).
/// `list` asks systemd (`boot::running_under_systemd`); `top` and `metrics`, which
/// refresh on a timer, do not.
fn add_systemd_copies(ctx: &Context, entries: &mut [ListEntry]) {
    let idle: Vec<&str> = entries
        .iter()
        .filter(|e| {
            e.pid.is_none()
                && !matches!(
                    e.status,
                    Status::Invalid | Status::Orphaned | Status::Unknown
                )
        })
        .map(|e| e.name.as_str())
        .collect();
    if idle.is_empty() {
        return;
    }
    let copies = crate::boot::running_under_systemd(&ctx.dirs.config_dir, &idle);
    for e in entries.iter_mut() {
        let Some(copy) = copies.get(&e.name) else {
            continue;
        };
        e.status = Status::Running;
        e.pid = copy.pid;
        e.uptime_secs = copy.uptime.map(|d| d.as_secs());
        e.memory_bytes = copy
            .pid
            .and_then(crate::procinfo::Stat::read)
            .map(|s| s.rss_bytes());
        e.supervised = false;
        e.reason = None;
        e.last_exit = None;
        e.error = None;
        e.systemd_unit = Some(copy.unit.clone());
    }
}

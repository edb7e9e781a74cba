//! `dmgr logs NAME... | --all [-n N] [-f]`: the last lines of daemons' logs, and with `-f`
//! every new line as it is written, across rotation and restarts, until interrupted.
//! With several names each line carries a `name |` prefix.
//!
//! On a terminal each line is escaped (`text::escape`): a daemon's output is not
//! dmgr's to send to the operator's terminal raw. Into a pipe or a file, or with
//! `--raw`, the lines keep the bytes the daemon wrote.

use std::path::PathBuf;

use super::{every_name, resolve, Context};
use crate::cli::LogsArgs;
use crate::follow::{Follower, Replaced, Waker};
use crate::output::{self, style, Style};
use crate::{config, logfile, state, Result};

/// Runs `dmgr logs`.
pub(super) fn run(ctx: &Context, args: &LogsArgs) -> Result<u8> {
    let names = match args.target.all {
        true => every_name(ctx),
        false => args.target.names.clone(),
    };
    let loaded = config::load_named(&ctx.dirs, &names)?;
    let mut logs: Vec<(String, PathBuf)> = Vec::new();
    for name in &names {
        // A daemon with `instances` is each of its copies, named.
        let found: Vec<(String, PathBuf, Option<PathBuf>)> =
            match resolve(ctx, &loaded, std::slice::from_ref(name)) {
                Ok(found) => found
                    .iter()
                    .map(|d| {
                        (
                            d.name.clone(),
                            d.process.log.clone(),
                            d.process.stderr_log.clone(),
                        )
                    })
                    .collect(),
                Err(err) => match state::read(&ctx.dirs.state_file(name)) {
                    Some(record) => vec![(name.clone(), record.log, record.stderr_log)],
                    None => return Err(err),
                },
            };
        for (name, log, stderr_log) in found {
            let path = match stderr_log {
                Some(path) if args.stderr => path,
                _ => log,
            };
            if !logs.iter().any(|(n, _)| *n == name) {
                logs.push((name, path));
            }
        }
    }
    let style = Style::for_stdout();
    let raw = args.raw || !style::stdout_is_terminal();
    let width = logs.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let prefixes: Vec<String> = logs
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            if logs.len() > 1 {
                format!("{} | ", style.name(&format!("{name:<width$}"), i))
            } else {
                String::new()
            }
        })
        .collect();
    let mut text = Vec::new();
    for ((_, path), prefix) in logs.iter().zip(&prefixes) {
        for line in logfile::tail_bytes(path, args.lines) {
            push_line(&mut text, prefix, &line, raw);
        }
    }
    output::print_bytes(&text)?;
    if !args.follow {
        return Ok(0);
    }
    let mut followers: Vec<Follower> = logs
        .iter()
        .map(|(_, path)| Follower::at_end(path.clone(), Replaced::ReadFromStart))
        .collect();
    let waker = Waker::watching(logs.iter().map(|(_, path)| path));
    loop {
        let mut text = Vec::new();
        for (follower, prefix) in followers.iter_mut().zip(&prefixes) {
            for line in follower.new_lines() {
                push_line(&mut text, prefix, &line, raw);
            }
        }
        if !text.is_empty() && output::print_bytes(&text).is_err() {
            return Ok(0);
        }
        waker.wait();
    }
}

/// Appends one log line and its prefix to `out`: the bytes as they are when `raw`,
/// else escaped (without the carriage return of a CRLF line, which a terminal would
/// not have shown either).
fn push_line(out: &mut Vec<u8>, prefix: &str, line: &[u8], raw: bool) {
    out.extend_from_slice(prefix.as_bytes());
    if raw {
        out.extend_from_slice(line);
    } else {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(crate::text::escape_bytes(line).as_bytes());
    }
    out.push(b'\n');
}

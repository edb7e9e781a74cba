//! `dmgr events [NAME...] [-n N] [-f] [--json]`: the keepers' event history, oldest
//! first, each daemon's in the order it was written, several daemons merged by time;
//! with `-f` every new event as it is recorded. The text form escapes what came from
//! files and processes (messages, names); `--json` prints the lines as they are stored.

use std::path::PathBuf;

use super::{unknown, Context};
use crate::cli::EventsArgs;
use crate::events::{self, Event};
use crate::follow::{Follower, Replaced, Waker};
use crate::output;
use crate::text::escape;
use crate::{config, state, Result};

/// Runs `dmgr events`.
pub(super) fn run(ctx: &Context, args: &EventsArgs) -> Result<u8> {
    let names = if args.names.is_empty() {
        let mut all = config::names(&ctx.dirs);
        all.extend(state::recorded_names(&ctx.dirs));
        all.sort_unstable();
        all.dedup();
        all
    } else {
        let defined = config::names(&ctx.dirs);
        let mut names = Vec::new();
        for name in &args.names {
            // A daemon with `instances` has no history of its own: its copies do.
            let copies = super::recorded_copies(ctx, name);
            if !copies.is_empty() && !ctx.dirs.events_file(name).exists() {
                names.extend(copies);
                continue;
            }
            let known = defined.contains(name)
                || ctx.dirs.state_file(name).exists()
                || ctx.dirs.events_file(name).exists();
            let valid = config::is_valid_name(name) || config::split_instance_name(name).is_some();
            if !known || !valid {
                return Err(unknown(ctx, name));
            }
            names.push(name.clone());
        }
        names
    };
    let paths: Vec<PathBuf> = names.iter().map(|n| ctx.dirs.events_file(n)).collect();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let show = |stored: &[(String, Event)]| -> String {
        stored
            .iter()
            .map(|(line, event)| match args.json {
                true => format!("{line}\n"),
                false => format!("{}\n", render(event, width)),
            })
            .collect()
    };
    // Followers start at the current ends, before the history is read: an event
    // recorded in between is printed twice rather than never.
    let mut followers: Vec<Follower> = paths
        .iter()
        .map(|p| Follower::at_end(p.clone(), Replaced::AfterLastSeen))
        .collect();
    output::print_raw(&show(&events::merged(&paths, args.lines)))?;
    if !args.follow {
        return Ok(0);
    }
    let waker = Waker::watching(paths.iter());
    loop {
        // Each daemon's new events in the order they were written, merged by time.
        let new = events::merge(
            followers
                .iter_mut()
                .map(|follower| {
                    follower
                        .new_lines()
                        .into_iter()
                        .filter_map(|line| {
                            let line = String::from_utf8_lossy(&line).into_owned();
                            let event: Event = serde_json::from_str(&line).ok()?;
                            Some((line, event))
                        })
                        .collect()
                })
                .collect(),
        );
        if !new.is_empty() && output::print_raw(&show(&new)).is_err() {
            return Ok(0);
        }
        waker.wait();
    }
}

/// `TIME  NAME  EVENT  DETAILS`, escaped.
fn render(event: &Event, width: usize) -> String {
    let line = format!(
        "{}  {:<width$}  {:<16}  {}",
        event.time,
        event.daemon,
        event.event.as_str(),
        event.details()
    );
    escape(line.trim_end()).into_owned()
}

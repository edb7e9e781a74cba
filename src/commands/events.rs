//! `dmgr events [NAME...] [-n N] [-f] [--json]`: the keepers' event history, oldest
//! first, several daemons merged by time; with `-f` every new event as it is recorded.
//! The text form escapes what came from files and processes (messages, names); `--json`
//! prints the lines as they are stored.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::{unknown, Context};
use crate::cli::EventsArgs;
use crate::events::{self, Event};
use crate::output::{self, escape};
use crate::watch::Waker;
use crate::{config, state, Result};

/// Runs `dmgr events`.
pub fn run(ctx: &Context, args: &EventsArgs) -> Result<u8> {
    let names = if args.names.is_empty() {
        let mut all = config::names(&ctx.dirs);
        all.extend(state::recorded_names(&ctx.dirs));
        all.sort_unstable();
        all.dedup();
        all
    } else {
        let defined = config::names(&ctx.dirs);
        for name in &args.names {
            let known = defined.contains(name)
                || ctx.dirs.state_file(name).exists()
                || ctx.dirs.events_file(name).exists();
            if !known || !config::is_valid_name(name) {
                return Err(unknown(ctx, name));
            }
        }
        args.names.clone()
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
    let mut followers: Vec<Follower> = paths.iter().map(|p| Follower::at_end(p.clone())).collect();
    output::print_raw(&show(&events::merged(&paths, args.lines)))?;
    if !args.follow {
        return Ok(0);
    }
    let waker = Waker::watching(paths.iter());
    loop {
        let mut new: Vec<(String, Event)> = followers
            .iter_mut()
            .flat_map(Follower::new_events)
            .collect();
        new.sort_by(|a, b| a.1.time.cmp(&b.1.time));
        if !new.is_empty() && output::print_raw(&show(&new)).is_err() {
            return Ok(0);
        }
        waker.wait();
    }
}

/// `TIME  NAME  EVENT  DETAILS`, escaped.
fn render(event: &Event, width: usize) -> String {
    let line = format!(
        "{}  {:<width$}  {:<15}  {}",
        event.time,
        event.daemon,
        event.event.as_str(),
        event.details()
    );
    escape(line.trim_end()).into_owned()
}

/// Follows one history across compaction, which replaces the file by one holding its
/// newest lines: the new file is read on from after the last line already seen.
struct Follower {
    path: PathBuf,
    file: Option<File>,
    inode: u64,
    partial: Vec<u8>,
    last: Option<String>,
}

impl Follower {
    fn at_end(path: PathBuf) -> Follower {
        let mut follower = Follower {
            path,
            file: None,
            inode: 0,
            partial: Vec::new(),
            last: None,
        };
        if let Ok((mut file, meta)) = crate::files::open_regular(&follower.path) {
            let _ = file.seek(SeekFrom::End(0));
            follower.inode = meta.ino();
            follower.file = Some(file);
            follower.last = events::read(&follower.path).pop().map(|(line, _)| line);
        }
        follower
    }

    /// The events recorded since the last call.
    fn new_events(&mut self) -> Vec<(String, Event)> {
        let mut bytes = std::mem::take(&mut self.partial);
        if let Some(file) = &mut self.file {
            let _ = file.read_to_end(&mut bytes);
        }
        let current = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        if current.is_some() && current != Some(self.inode) {
            // Compacted (or created): what follows the last line seen is new.
            if let Ok((mut file, meta)) = crate::files::open_regular(&self.path) {
                let mut fresh = Vec::new();
                let _ = file.read_to_end(&mut fresh);
                // A line the old file had not finished is in the new one whole.
                bytes.truncate(bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1));
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let seen = text
                    .lines()
                    .last()
                    .map(str::to_string)
                    .or(self.last.clone());
                let start = seen
                    .and_then(|line| {
                        let needle = format!("{line}\n");
                        fresh
                            .windows(needle.len())
                            .rposition(|w| w == needle.as_bytes())
                            .map(|at| at + needle.len())
                    })
                    .unwrap_or(0);
                bytes.extend_from_slice(&fresh[start..]);
                self.inode = meta.ino();
                self.file = Some(file);
            }
        }
        let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.partial = bytes.split_off(end);
        let text = String::from_utf8_lossy(&bytes);
        let found: Vec<(String, Event)> = text
            .lines()
            .filter_map(|line| Some((line.to_string(), serde_json::from_str(line).ok()?)))
            .collect();
        if let Some((line, _)) = found.last() {
            self.last = Some(line.clone());
        }
        found
    }
}

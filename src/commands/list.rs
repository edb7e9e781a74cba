//! `dmgr list [--json]`: every daemon in one table: those defined in the config
//! directory, running orphans whose file was removed, and files that fail to load.
//! Reads files, state records and `/proc` only: it takes no lock and never waits.
//!
//! When every daemon file is as its running keeper loaded it, the keepers' records
//! say all that reading the files would, and `list` reads none of them: one `statx`
//! a file instead of open, read, close and a TOML parse (issue 15). Whenever that
//! could show anything else, it loads the whole directory as before; see
//! [`entries_from_records`].

use super::Context;
use crate::cli::ListArgs;
use crate::config;
use crate::output::json::ListEntry;
use crate::output::{self, format_bytes, format_uptime, table, Style};
use crate::state::{self, FileIdentity, Status};
use crate::{Error, Result};

/// Runs `dmgr list`.
pub(super) fn run(ctx: &Context, args: &ListArgs) -> Result<u8> {
    // A config directory that is missing or cannot be read is an error (exit 2), as
    // for `check`; what the run directory says still runs is listed all the same.
    let mut seen = Seen::default();
    let (entries, problem) = match entries_from_records(ctx, &mut seen) {
        Some(entries) => (entries, None),
        None => {
            let (loaded, problem) = match config::load(&ctx.dirs) {
                Ok(loaded) => (loaded, None),
                Err(err @ Error::ConfigDir { .. }) => (config::Loaded::default(), Some(err)),
                Err(err) => return Err(err),
            };
            (entries(ctx, &loaded, seen), problem)
        }
    };
    if problem.is_some() && entries.is_empty() {
        return problem.map_or(Ok(0), Err);
    }
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

/// Marks the daemons dmgr does not run that systemd runs under their exported units:
/// running, with systemd's main PID, and the unit (issue 24: `list` said stopped).
fn add_systemd_copies(ctx: &Context, entries: &mut [ListEntry]) {
    let idle: Vec<&str> = entries
        .iter()
        .filter(|e| e.pid.is_none() && !matches!(e.status, Status::Invalid | Status::Orphaned))
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

/// The facts of every daemon, sorted by name.
fn entries(ctx: &Context, loaded: &config::Loaded, mut seen: Seen) -> Vec<ListEntry> {
    let mut entries: Vec<ListEntry> = loaded
        .daemons
        .iter()
        .map(|d| {
            let observed = seen.observe(ctx, &d.name, Some(&d.pidfile));
            ListEntry::new(&d.name, Some(d), &observed)
        })
        .collect();
    for invalid in &loaded.invalid {
        let observed = seen.observe(ctx, &invalid.name, None);
        let mut e = ListEntry::new(&invalid.name, None, &observed);
        e.status = Status::Invalid;
        e.error = invalid.diagnostics.first().map(|d| d.short());
        entries.push(e);
    }
    add_orphans(ctx, &mut entries, |name| {
        loaded.daemon(name).is_some() || loaded.invalid(name).is_some()
    });
    entries
}

/// The daemons [`entries_from_records`] observed before it gave up, so that the full
/// load does not read their records and `/proc` again. Only daemons with a live keeper
/// are kept: what [`state::observe`] makes of those does not depend on the pidfile it
/// is given (that only names a stale pidfile when nothing runs).
#[derive(Default)]
struct Seen(std::collections::BTreeMap<String, state::Observed>);

impl Seen {
    /// `name` observed, as [`state::observe`] does, or as it was observed before.
    fn observe(
        &mut self,
        ctx: &Context,
        name: &str,
        pidfile: Option<&std::path::Path>,
    ) -> state::Observed {
        self.0
            .remove(name)
            .unwrap_or_else(|| state::observe(&ctx.dirs, name, pidfile))
    }
}

/// Adds the running daemons whose file is gone (`has_file` is false for them), then
/// sorts the entries by name.
fn add_orphans(ctx: &Context, entries: &mut Vec<ListEntry>, has_file: impl Fn(&str) -> bool) {
    for name in state::recorded_names(&ctx.dirs) {
        if has_file(&name) {
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
}

/// The entries of [`entries`] without reading any daemon file, or `None` when that
/// could differ from what loading the directory shows.
///
/// A file is as its keeper loaded it when its keeper lives and the file's identity
/// now is the one the keeper recorded before reading it, and that identity is not
/// racy (see [`FileIdentity::is_trusted`]); the record then holds everything `list`
/// shows of it (command, description, status). Files are also judged against each
/// other, and those checks hold only while every file is unchanged: so any file
/// without a live keeper, changed, or that the loader would refuse (its name, a
/// directory others can write to when run as root) sends `list` to the full load.
/// Of the checks across files, shared paths cannot occur while every daemon has its
/// default pidfile and logs (each holds the daemon's name), and `after` is checked
/// here from the records: every name known, no cycle.
fn entries_from_records(ctx: &Context, seen: &mut Seen) -> Option<Vec<ListEntry>> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let dirs = &ctx.dirs;
    if crate::files::euid() == 0 {
        let meta = std::fs::metadata(&dirs.config_dir).ok()?;
        if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return None;
        }
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dirs.config_dir).ok()? {
        let file_name = entry.ok()?.file_name();
        let bytes = file_name.as_bytes();
        if !bytes.ends_with(b".toml") || bytes.starts_with(b".") {
            continue;
        }
        // A file name that is not UTF-8 or not a daemon name is an invalid entry.
        let name = file_name.to_str()?.strip_suffix(".toml")?;
        if !config::is_valid_name(name) {
            return None;
        }
        names.push(name.to_string());
    }
    names.sort_unstable();
    let mut observed = Vec::with_capacity(names.len());
    let mut after = Vec::with_capacity(names.len());
    let mut descriptions = Vec::with_capacity(names.len());
    for name in &names {
        let now = state::observe(dirs, name, None);
        if now.keeper.is_none() {
            break;
        }
        let found = definition(dirs, name, &now).map(|d| (d.after.clone(), d.description.clone()));
        observed.push(now);
        let Some((names_after, description)) = found else {
            break;
        };
        after.push(names_after);
        descriptions.push(description);
    }
    // The files are looked at only once every record could stand in for its file, so
    // that a daemon without a live keeper costs the full load nothing more.
    let unchanged = || {
        names.iter().zip(&observed).all(|(name, o)| {
            let file = FileIdentity::of(&dirs.config_dir.join(format!("{name}.toml")));
            let recorded = o.record.as_ref().and_then(|r| r.definition.as_ref());
            matches!((recorded, file), (Some(d), Some(now)) if d.file.is_same_file(&now))
        })
    };
    if after.len() < names.len() || !is_sound_order(&names, &after) || !unchanged() {
        seen.0.extend(names.iter().cloned().zip(observed));
        return None;
    }
    let mut entries: Vec<ListEntry> = names
        .iter()
        .zip(&observed)
        .zip(descriptions)
        .map(|((name, o), description)| ListEntry {
            description,
            ..ListEntry::new(name, None, o)
        })
        .collect();
    add_orphans(ctx, &mut entries, |name| {
        names.binary_search_by(|n| n.as_str().cmp(name)).is_ok()
    });
    Some(entries)
}

/// The definition in `name`'s record when it can stand in for the file, if the file
/// is still the one it names: its identity is not racy, and the daemon has the default
/// pidfile and logs (each holds the daemon's name, so no two daemons can share one; a
/// path set in a file is checked against every other file).
fn definition<'a>(
    dirs: &config::Dirs,
    name: &str,
    observed: &'a state::Observed,
) -> Option<&'a state::Definition> {
    let record = observed.record.as_ref()?;
    let definition = record.definition.as_ref()?;
    let default_paths = record.pidfile == dirs.pidfile(name)
        && record.process.log == dirs.log_dir.join(format!("{name}.log"))
        && record.process.stderr_log.is_none()
        && record.daemon_pidfile.is_none();
    (definition.file.is_trusted() && default_paths).then_some(definition)
}

/// Returns true if and only if each `after[i]` (the `after` of `names[i]`, which are
/// sorted) names only daemons of `names`, and they form no cycle: then the loader's
/// checks of `after` find nothing. Kahn's algorithm: a daemon whose `after` are all
/// placed can be placed; all are placed exactly when there is no cycle.
fn is_sound_order(names: &[String], after: &[Vec<String>]) -> bool {
    let mut waiting: Vec<usize> = after.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (i, deps) in after.iter().enumerate() {
        for dep in deps {
            match names.binary_search(dep) {
                Ok(j) => dependents[j].push(i),
                Err(_) => return false,
            }
        }
    }
    let mut ready: Vec<usize> = (0..names.len()).filter(|&i| waiting[i] == 0).collect();
    let mut placed = 0;
    while let Some(j) = ready.pop() {
        placed += 1;
        for &i in &dependents[j] {
            waiting[i] -= 1;
            if waiting[i] == 0 {
                ready.push(i);
            }
        }
    }
    placed == names.len()
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
        (_, Status::Running) if entry.systemd_unit.is_some() => "running (systemd)".into(),
        (_, Status::Running) if !entry.supervised => "running (no keeper)".into(),
        (_, Status::Running) => match (&entry.health, &entry.memory) {
            (Some(h), _) if h.failures_in_row > 0 => format!(
                "running (failing {}/{})",
                h.failures_in_row, h.failures_allowed
            ),
            (_, Some(m)) if m.is_near() => format!("running (memory {}%)", m.percent()),
            _ => "running".into(),
        },
        _ => entry.status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(graph: &[(&str, &[&str])]) -> bool {
        let names: Vec<String> = graph.iter().map(|(n, _)| n.to_string()).collect();
        let after: Vec<Vec<String>> = graph
            .iter()
            .map(|(_, a)| a.iter().map(|s| s.to_string()).collect())
            .collect();
        is_sound_order(&names, &after)
    }

    /// The records stand in for the files only where the loader would find no
    /// problem with `after`: an unknown name or a cycle sends `list` to the full load.
    #[test]
    fn after_is_sound_only_with_known_names_and_no_cycle() {
        assert!(order(&[
            ("api", &["db"]),
            ("db", &[]),
            ("web", &["api", "db"])
        ]));
        assert!(order(&[]));
        assert!(!order(&[("api", &["gone"]), ("db", &[])]));
        assert!(!order(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]));
        assert!(!order(&[("a", &["a"])]));
        assert!(order(&[("a", &["b", "b"]), ("b", &[])]));
    }
}

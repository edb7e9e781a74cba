//! The facts of every daemon as `list`, `top` and `metrics` show them: those defined
//! in the config directory, running orphans whose file was removed, and files that
//! fail to load. Reads files, state records and `/proc` only: it takes no lock and
//! never waits.
//!
//! When every daemon file is as its running keeper loaded it, the keepers' records
//! say all that reading the files would, and the survey reads none of them: one
//! `statx` a file instead of open, read, close and a TOML parse (issue 15). Whenever
//! that could show anything else, it loads the whole directory as before; see
//! [`facts_from_records`].

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{self, Dirs, Loaded};
use crate::output::json::ListEntry;
use crate::state::{self, FileIdentity, Observed, Status};
use crate::{Error, Result};

/// One daemon: what `list` shows of it, and the observation that says so.
#[derive(Debug, Clone)]
pub(crate) struct Fact {
    /// The list facts.
    pub entry: ListEntry,
    /// The record and processes behind them.
    pub observed: Observed,
}

/// Every daemon, sorted by name, and a config directory that could not be read.
#[derive(Debug)]
pub(crate) struct Survey {
    /// The daemons.
    pub facts: Vec<Fact>,
    /// The config directory is missing or unreadable (exit 2 once the rest is shown);
    /// what the run directory says still runs is listed all the same.
    pub problem: Option<Error>,
}

/// How a daemon is observed: [`state::observe`], or for `list`
/// [`state::observe_brief`].
type Observe = fn(&Dirs, &str, Option<&Path>) -> Observed;

/// Surveys the daemons as cheaply as the truth allows: from the keepers' records when
/// every file is as its keeper loaded it, else from the loaded directory.
pub(crate) fn survey(dirs: &Dirs) -> Result<Survey> {
    survey_with(dirs, state::observe, true)
}

/// [`survey`] for `list`, which shows no more of each record than
/// [`state::read_brief`] decodes, and only the entries (issue 30): when every file is
/// as its keeper loaded it, the facts hold no record (`observed.record` is `None`),
/// so that a list of many daemons keeps one entry each and not one record each.
pub(crate) fn survey_brief(dirs: &Dirs) -> Result<Survey> {
    survey_with(dirs, state::observe_brief, false)
}

/// [`survey`], each daemon observed with `observe`; `keep_records` false drops each
/// record from the facts read from the records, once its entry is made.
fn survey_with(dirs: &Dirs, observe: Observe, keep_records: bool) -> Result<Survey> {
    let mut seen = Seen::new(observe);
    if let Some(facts) = facts_from_records(dirs, &mut seen, keep_records) {
        return Ok(Survey {
            facts,
            problem: None,
        });
    }
    let (loaded, problem) = load(dirs)?;
    Ok(Survey {
        facts: facts(dirs, &loaded, seen),
        problem,
    })
}

/// Surveys the daemons from the loaded directory, which the caller gets too (for the
/// keys that the records lack, such as `type`).
pub(crate) fn survey_loaded(dirs: &Dirs) -> Result<(Loaded, Survey)> {
    let (loaded, problem) = load(dirs)?;
    let facts = facts(dirs, &loaded, Seen::new(state::observe));
    Ok((loaded, Survey { facts, problem }))
}

/// The loaded directory; a config directory that is missing or cannot be read is an
/// empty one and the problem, any other error is returned.
fn load(dirs: &Dirs) -> Result<(Loaded, Option<Error>)> {
    match config::load(dirs) {
        Ok(loaded) => Ok((loaded, None)),
        Err(err @ Error::ConfigDir { .. }) => Ok((Loaded::default(), Some(err))),
        Err(err) => Err(err),
    }
}

/// The facts of every daemon, sorted by name.
fn facts(dirs: &Dirs, loaded: &Loaded, mut seen: Seen) -> Vec<Fact> {
    let mut facts: Vec<Fact> = loaded
        .daemons
        .iter()
        .map(|d| {
            let observed = seen.observed(dirs, &d.name, Some(&d.pidfile));
            let entry = ListEntry::new(&d.name, Some(d), &observed);
            Fact { entry, observed }
        })
        .collect();
    let recorded = state::recorded_names(dirs);
    for invalid in &loaded.invalid {
        // The copies of a daemon with `instances` that still have a record are shown
        // too, each with what runs of it: the file's problem does not hide them.
        let copies = recorded.iter().filter(|name| {
            config::split_instance_name(name).is_some_and(|(base, _)| base == invalid.name)
        });
        for name in std::iter::once(&invalid.name).chain(copies) {
            let observed = seen.observed(dirs, name, None);
            if *name != invalid.name && observed.record.is_none() {
                continue;
            }
            let mut entry = ListEntry::new(name, None, &observed);
            entry.status = Status::Invalid;
            entry.error = invalid.diagnostics.first().map(|d| d.short());
            facts.push(Fact { entry, observed });
        }
    }
    add_orphans(dirs, &mut facts, seen.observe, |name| {
        let base = config::split_instance_name(name).map_or(name, |(base, _)| base);
        loaded.daemon(name).is_some() || loaded.invalid(base).is_some()
    });
    facts
}

/// The daemons [`facts_from_records`] observed before it gave up, so that the full
/// load does not read their records and `/proc` again. Only daemons with a live keeper
/// are kept: what [`state::observe`] makes of those does not depend on the pidfile it
/// is given (that only names a stale pidfile when nothing runs).
struct Seen {
    /// The daemons observed before.
    before: BTreeMap<String, Observed>,
    /// How a daemon not observed before is.
    observe: Observe,
}

impl Seen {
    /// None seen yet; each to be observed with `observe`.
    fn new(observe: Observe) -> Seen {
        Seen {
            before: BTreeMap::new(),
            observe,
        }
    }

    /// `name` observed, as [`state::observe`] does, or as it was observed before.
    fn observed(&mut self, dirs: &Dirs, name: &str, pidfile: Option<&Path>) -> Observed {
        self.before
            .remove(name)
            .unwrap_or_else(|| (self.observe)(dirs, name, pidfile))
    }
}

/// Adds the running daemons whose file is gone (`has_file` is false for them), then
/// sorts the facts by name.
fn add_orphans(
    dirs: &Dirs,
    facts: &mut Vec<Fact>,
    observe: Observe,
    has_file: impl Fn(&str) -> bool,
) {
    for name in state::recorded_names(dirs) {
        if has_file(&name) {
            continue;
        }
        let observed = observe(dirs, &name, None);
        if observed.status == Status::Unknown {
            // Whether it runs or not, someone should look.
            let entry = ListEntry::new(&name, None, &observed);
            facts.push(Fact { entry, observed });
        } else if observed.daemon.is_some() || observed.keeper.is_some() {
            let mut entry = ListEntry::new(&name, None, &observed);
            entry.status = Status::Orphaned;
            facts.push(Fact { entry, observed });
        }
    }
    facts.sort_by(|a, b| sort_key(&a.entry.name).cmp(&sort_key(&b.entry.name)));
}

/// The order of the list: by name, the copies of a daemon with `instances` together
/// and by number (`web@2` before `web@10`).
pub(crate) fn sort_key(name: &str) -> (&str, u32, &str) {
    match config::split_instance_name(name) {
        Some((base, number)) => (base, number, name),
        None => (name, 0, name),
    }
}

/// The facts of [`facts`] without reading any daemon file, or `None` when that could
/// differ from what loading the directory shows.
///
/// A file is as its keeper loaded it when its keeper lives and the file's identity
/// now is the one the keeper recorded before reading it, and that identity is not
/// racy (see [`FileIdentity::is_trusted`]); the record then holds everything `list`
/// shows of it (command, description, status). Files are also judged against each
/// other, and those checks hold only while every file is unchanged: so any file
/// without a live keeper, changed, or that the loader would refuse (its name, a
/// directory others can write to when run as root) sends the survey to the full load.
/// Of the checks across files, shared paths cannot occur while every daemon has its
/// default pidfile and logs (each holds the daemon's name), and `after` is checked
/// here from the records: every name known, no cycle.
fn facts_from_records(dirs: &Dirs, seen: &mut Seen, keep_records: bool) -> Option<Vec<Fact>> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
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
    let mut facts: Vec<Fact> = Vec::with_capacity(names.len());
    let mut files = Vec::with_capacity(names.len());
    let mut after = Vec::with_capacity(names.len());
    let mut unusable = None;
    for name in &names {
        let mut observed = (seen.observe)(dirs, name, None);
        if observed.keeper.is_none() {
            break;
        }
        let Some(definition) = definition(dirs, name, &observed) else {
            unusable = Some(observed);
            break;
        };
        files.push(definition.file);
        after.push(definition.after.clone());
        let entry = ListEntry {
            description: definition.description.clone(),
            ..ListEntry::new(name, None, &observed)
        };
        if !keep_records {
            observed.record = None;
        }
        facts.push(Fact { entry, observed });
    }
    // The files are looked at only once every record could stand in for its file, so
    // that a daemon without a live keeper costs the full load nothing more.
    let unchanged = || {
        names.iter().zip(&files).all(|(name, recorded)| {
            let file = FileIdentity::of(&dirs.config_dir.join(format!("{name}.toml")));
            file.is_some_and(|now| recorded.is_same_file(&now))
        })
    };
    if facts.len() < names.len() || !is_sound_order(&names, &after) || !unchanged() {
        // What was observed spares the full load a second look, where it kept the
        // records.
        if keep_records {
            let observed = facts.into_iter().map(|f| f.observed).chain(unusable);
            seen.before.extend(names.iter().cloned().zip(observed));
        }
        return None;
    }
    add_orphans(dirs, &mut facts, seen.observe, |name| {
        names.binary_search_by(|n| n.as_str().cmp(name)).is_ok()
    });
    Some(facts)
}

/// The definition in `name`'s record when it can stand in for the file, if the file
/// is still the one it names: its identity is not racy, and the daemon has the default
/// pidfile and logs (each holds the daemon's name, so no two daemons can share one; a
/// path set in a file is checked against every other file).
fn definition<'a>(
    dirs: &Dirs,
    name: &str,
    observed: &'a Observed,
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

/// The STATUS cell of `list` and `top`: the status word, and in brackets what it
/// alone would hide (how a failed run ended, a lost keeper, a failing liveness check,
/// memory near its ceiling).
pub(crate) fn status_cell(entry: &ListEntry) -> String {
    let words = entry.reason.and_then(state::Reason::short);
    if let (Some(words), Status::Stopped | Status::Failed) = (words, entry.status) {
        return match entry.left_behind.len() {
            0 => format!("{} ({words})", entry.status),
            1 => format!("{} ({words}, 1 process left)", entry.status),
            n => format!("{} ({words}, {n} processes left)", entry.status),
        };
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
        (_, Status::Done) => match entry.last_exit_ms {
            Some(ms) => format!("done ({})", crate::schedule::local_time(ms)),
            None => "done".into(),
        },
        (exit, Status::Waiting) => {
            let last = match exit {
                Some(e) if e.code != Some(0) => match (&e.signal, e.code) {
                    (Some(signal), _) => format!("last run signal {signal}, "),
                    (None, Some(code)) => format!("last run exit {code}, "),
                    (None, None) => String::new(),
                },
                _ => String::new(),
            };
            match entry.next_run_ms {
                Some(next) => format!("waiting ({last}next {})", crate::schedule::local_time(next)),
                None => format!("waiting ({last}no next time)"),
            }
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
    /// problem with `after`: an unknown name or a cycle sends the survey to the full
    /// load.
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

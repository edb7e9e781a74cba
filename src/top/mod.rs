//! `dmgr top`: a full-screen live view of the daemons, a stateless reader of the run
//! directory as `list` is (`crate::survey`), with CPU % from the deltas of each
//! daemon's CPU time (`crate::usage`).
//!
//! The loop sleeps in one blocking receive on a channel (`wake`): keys, resizes,
//! inotify changes of the run directory, the config directory and the selected
//! daemon's log, signals, and the ends of operations all arrive there, so nothing is
//! polled. A change is let settle for [`SETTLE`], then the list is surveyed again
//! (or the log and events read again) and the screen redrawn; surveys are at least
//! [`SURVEY_GAP`] apart, so that daemons whose keepers write their records often
//! (a health check every second on each of a hundred daemons) cost a bounded amount. Otherwise, while a
//! daemon runs, only the CPU and MEM columns are refreshed every [`REFRESH`] from
//! `/proc`; a main process gone or a keeper lost found then also surveys again.
//! Operations run this very binary as `dmgr VERB NAME` on a thread, so the screen
//! goes on while a stop waits for its daemon. `app` holds the state and the keys,
//! `view` draws, `terminal` sets up and restores the terminal.

mod app;
mod terminal;
mod view;
mod wake;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use ratatui::widgets::TableState;

use crate::config::Dirs;
use crate::events::{self, Event};
use crate::procinfo::{ProcId, Stat};
use crate::survey::{self, Fact};
use crate::{usage, Error, Result};

use app::{App, Todo, Verb};
use wake::{Wake, Watcher};

/// How often CPU and MEM are refreshed.
pub(crate) const REFRESH: Duration = Duration::from_secs(2);
/// How long a burst of changes is let settle before the screen follows it.
const SETTLE: Duration = Duration::from_millis(50);
/// The least time between two surveys of the list after changes.
const SURVEY_GAP: Duration = Duration::from_millis(500);
/// How many log lines are kept for the log pane.
const LOG_LINES: usize = 100;

/// One daemon on the screen.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// What `list` shows of it.
    pub fact: Fact,
    /// `list`'s STATUS cell.
    pub status: String,
    /// CPU use over the last refresh, in percent of one core.
    pub cpu: Option<f64>,
    /// When its process started (ms since the epoch), for UPTIME.
    pub started_ms: Option<u64>,
}

impl Row {
    fn new(fact: Fact) -> Row {
        let started_ms = fact
            .observed
            .record
            .as_ref()
            .and_then(|r| r.started_at_ms)
            .filter(|_| fact.observed.daemon.is_some());
        Row {
            status: survey::status_cell(&fact.entry),
            fact,
            cpu: None,
            started_ms,
        }
    }
}

/// The selected daemon's events and log.
#[derive(Debug, Default)]
pub(crate) struct Detail {
    /// Its name.
    pub name: Option<String>,
    /// Its newest events, oldest first.
    pub events: Vec<Event>,
    /// Its log file.
    pub log: Option<PathBuf>,
    /// The last lines of the log.
    pub log_lines: Vec<String>,
}

/// Changes seen and not yet followed: what to read again, and when.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// When to read.
    at: Instant,
    /// Survey the list again.
    list: bool,
    /// Read the selected daemon's log and events again.
    log: bool,
}

impl Pending {
    /// `pending` with the changes `list` and `log` added: due once they settle, and
    /// for a survey, no sooner than [`SURVEY_GAP`] after `last_survey`.
    fn add(pending: Option<Pending>, list: bool, log: bool, last_survey: Instant) -> Pending {
        let mut at = Instant::now() + SETTLE;
        if list {
            at = at.max(last_survey + SURVEY_GAP);
        }
        match pending {
            Some(p) => Pending {
                at: p.at.max(at),
                list: p.list || list,
                log: p.log || log,
            },
            None => Pending { at, list, log },
        }
    }
}

/// The CPU time seen at the last refresh, per daemon.
#[derive(Default)]
struct Sampler {
    last: HashMap<String, (ProcId, Duration, Instant)>,
}

impl Sampler {
    /// Refreshes CPU and MEM of every running row; returns true if and only if a
    /// process or keeper is gone, and the list must be surveyed again.
    fn refresh(&mut self, rows: &mut [Row]) -> bool {
        let mut gone = false;
        let now = Instant::now();
        for row in rows.iter_mut() {
            let observed = &row.fact.observed;
            let Some(main) = observed.daemon else {
                row.cpu = None;
                continue;
            };
            let stat = Stat::read(main.pid).filter(|s| s.start == main.start && !s.is_dead());
            let Some(stat) = stat else {
                gone = true;
                continue;
            };
            if observed.keeper.is_some_and(|k| k.pid != stat.ppid) {
                gone = true;
            }
            row.fact.entry.memory_bytes = Some(stat.rss_bytes());
            let Some(used) = usage::cpu_time(observed).map(|t| t.used) else {
                continue;
            };
            let name = &row.fact.entry.name;
            match self.last.get(name) {
                // Too soon after the last sample for a figure worth showing (a
                // survey right after a refresh): keep the last one.
                Some(&(was, _, at)) if was == main && now - at < REFRESH / 4 => {}
                Some(&(was, before, at)) if was == main => {
                    let busy = used.saturating_sub(before).as_secs_f64();
                    row.cpu = Some(busy * 100.0 / (now - at).as_secs_f64());
                    self.last.insert(name.clone(), (main, used, now));
                }
                _ => {
                    self.last.insert(name.clone(), (main, used, now));
                }
            }
        }
        gone
    }
}

/// Runs `dmgr top` on the terminal until `q` or a signal.
pub(crate) fn run(dirs: &Dirs, color: bool) -> Result<u8> {
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        action: "find the dmgr binary in",
        path: "/proc/self/exe".into(),
        source,
    })?;
    let place = crate::text::show_path(&dirs.config_dir).into_owned();
    let mut rows = survey_rows(dirs, &[])?;
    let (tx, rx) = wake::start();
    let mut watcher = Watcher::start(&tx, dirs);
    let mut screen = terminal::Screen::enter().map_err(|source| Error::Io {
        action: "set up the terminal on",
        path: "standard output".into(),
        source,
    })?;
    let mut app = App::new();
    let mut sampler = Sampler::default();
    sampler.refresh(&mut rows);
    let mut detail = Detail::default();
    let mut table = TableState::default();
    let mut page = 10;
    let mut busy: Vec<(Verb, String)> = Vec::new();
    // The first CPU figures need two samples: the second comes soon.
    let mut next_refresh = Instant::now() + REFRESH / 4;
    let mut pending: Option<Pending> = None;
    let mut last_survey = Instant::now();
    let mut reselect = true;
    loop {
        let shown: Vec<usize> = (0..rows.len())
            .filter(|&i| {
                let e = &rows[i].fact.entry;
                app.shows(&[&e.name, &rows[i].status, e.command.as_deref().unwrap_or("")])
            })
            .collect();
        let names: Vec<&str> = shown
            .iter()
            .map(|&i| rows[i].fact.entry.name.as_str())
            .collect();
        let selected = app.selected_index(&names);
        if reselect || detail.name != app.selected {
            let fact = selected.map(|at| &rows[shown[at]].fact);
            detail = read_detail(dirs, fact);
            watcher.follow(detail.log.as_deref());
            reselect = false;
        }
        let busy_words: Vec<String> = busy
            .iter()
            .map(|(verb, name)| format!("{} {name}", verb.doing()))
            .collect();
        let screenful = view::Screenful {
            place: &place,
            rows: &rows,
            shown: &shown,
            selected,
            app: &app,
            detail: &detail,
            color,
            busy: &busy_words,
        };
        let drawn = screen
            .terminal
            .draw(|frame| page = view::draw(frame, &screenful, &mut table));
        if let Err(source) = drawn {
            return Err(Error::Io {
                action: "draw on",
                path: "standard output".into(),
                source,
            });
        }
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        // Sleep until something happens, the next refresh while a daemon runs, or the
        // end of a settling burst.
        let anything_runs = rows.iter().any(|r| r.fact.observed.daemon.is_some());
        let wait_refresh = anything_runs || !watcher.sees_everything();
        let deadline = match (pending, wait_refresh) {
            (Some(p), true) => Some(p.at.min(next_refresh)),
            (Some(p), false) => Some(p.at),
            (None, true) => Some(next_refresh),
            (None, false) => None,
        };
        let woke = match deadline {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match woke {
            Ok(Wake::Quit) | Err(RecvTimeoutError::Disconnected) => break,
            Ok(Wake::Resize) => {}
            Ok(Wake::Key(key)) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                match app.on_key(key, &names, page) {
                    Some(Todo::Quit) => break,
                    Some(Todo::Act(verb, name)) => {
                        wake::act(&tx, &exe, dirs, verb, &name);
                        busy.push((verb, name));
                    }
                    Some(Todo::Select) => reselect = true,
                    Some(Todo::Redraw) | None => {}
                }
            }
            Ok(Wake::Done {
                name,
                verb,
                ok,
                said,
            }) => {
                busy.retain(|(v, n)| !(*v == verb && *n == name));
                let text = if said.is_empty() {
                    format!(
                        "{name}: {} {}",
                        verb.command(),
                        if ok { "done" } else { "failed" }
                    )
                } else {
                    said
                };
                app.say(text, !ok);
                // What the operation changed may not all have reached the files yet
                // (a rotation, a reload): look at both once it settles.
                pending = Some(Pending::add(pending, true, true, last_survey));
            }
            Ok(Wake::Changed(changes)) => {
                let touched = watcher.touched(&changes);
                if touched.list || touched.log {
                    pending = Some(Pending::add(
                        pending,
                        touched.list,
                        touched.log,
                        last_survey,
                    ));
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        let due = pending.filter(|p| now >= p.at);
        let refresh = wait_refresh && now >= next_refresh;
        let mut survey = due.is_some_and(|p| p.list);
        if refresh {
            next_refresh = now + REFRESH;
            survey |= sampler.refresh(&mut rows) || !watcher.sees_everything();
        }
        if let Some(p) = due {
            pending = None;
            reselect |= p.list || p.log;
        }
        if survey {
            match survey_rows(dirs, &rows) {
                Ok(fresh) => rows = fresh,
                Err(err) => app.say(err.to_string(), true),
            }
            sampler.refresh(&mut rows);
            watcher.watch_dirs();
            last_survey = Instant::now();
            reselect = true;
        }
    }
    drop(screen);
    Ok(0)
}

/// The rows of every daemon now, with the CPU figures of `before` kept for daemons
/// whose process is the same.
fn survey_rows(dirs: &Dirs, before: &[Row]) -> Result<Vec<Row>> {
    let survey = survey::survey(dirs)?;
    if survey.facts.is_empty() {
        if let Some(problem) = survey.problem {
            return Err(problem);
        }
    }
    Ok(survey
        .facts
        .into_iter()
        .map(|fact| {
            let mut row = Row::new(fact);
            if let Some(old) = before
                .iter()
                .find(|o| o.fact.entry.name == row.fact.entry.name)
            {
                if old.fact.observed.daemon == row.fact.observed.daemon {
                    row.cpu = old.cpu;
                }
            }
            row
        })
        .collect())
}

/// The events and log of the daemon of `fact`.
fn read_detail(dirs: &Dirs, fact: Option<&Fact>) -> Detail {
    let Some(fact) = fact else {
        return Detail::default();
    };
    let name = &fact.entry.name;
    let events = events::merged(&[dirs.events_file(name)], view::EVENTS_SHOWN)
        .into_iter()
        .map(|(_, event)| event)
        .collect();
    let log = log_path(dirs, fact);
    Detail {
        name: Some(name.clone()),
        events,
        log_lines: log
            .as_deref()
            .map_or(Vec::new(), |l| crate::logfile::tail(l, LOG_LINES)),
        log,
    }
}

/// The log of the daemon of `fact`: as its record names it, else as its file does.
fn log_path(dirs: &Dirs, fact: &Fact) -> Option<PathBuf> {
    if let Some(record) = &fact.observed.record {
        return Some(record.log.clone());
    }
    let name = &fact.entry.name;
    let loaded = crate::config::load_named(dirs, std::slice::from_ref(name)).ok()?;
    loaded
        .daemon(name)
        .map(|d| d.process.log.clone())
        .or_else(|| Some(dirs.log_dir.join(format!("{name}.log"))).filter(|p| Path::exists(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change is followed once it settles, and a survey of the list no sooner than
    /// SURVEY_GAP after the last one: a keeper that writes its record every few
    /// milliseconds cannot make top survey more often.
    #[test]
    fn changes_settle_and_surveys_are_spaced() {
        let long_ago = Instant::now() - Duration::from_secs(10);
        let log_only = Pending::add(None, false, true, Instant::now());
        assert!(log_only.at <= Instant::now() + SETTLE);
        assert!(log_only.log && !log_only.list);

        let just_surveyed = Instant::now();
        let list = Pending::add(Some(log_only), true, false, just_surveyed);
        assert!(list.at >= just_surveyed + SURVEY_GAP);
        assert!(list.list && list.log);

        let settled = Pending::add(None, true, false, long_ago);
        assert!(settled.at <= Instant::now() + SETTLE);
    }
}

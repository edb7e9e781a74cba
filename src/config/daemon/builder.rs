//! The builder: one file's TOML table turned into a [`Daemon`], every problem noted
//! with its byte offset and located in one pass at the end.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::*;
use crate::config::diagnostic::{self, quote, Diagnostic, Severity, MAX_SHOWN};
use crate::config::discover::Dirs;
use crate::config::raw::{self, HEALTH_KEYS};
use crate::config::suggest;
use crate::config::units::Signal;
use crate::config::Invalid;

/// A problem at a byte offset, located at the end with all the others.
pub(super) struct Problem {
    pub(super) offset: usize,
    pub(super) severity: Severity,
    pub(super) message: String,
    /// For a duplicate key: where it was first set, added to the message.
    pub(super) first_set: Option<usize>,
}

/// The byte offsets behind [`Places`].
#[derive(Default)]
pub(super) struct PlaceOffsets {
    pub(super) after: Vec<usize>,
    pub(super) pidfile: Option<usize>,
    pub(super) log: Option<usize>,
    pub(super) stderr_log: Option<usize>,
}

/// Turns the raw table into a [`Daemon`], noting each problem as it goes.
pub(super) struct Builder<'a> {
    pub(super) file: &'a Path,
    pub(super) file_id: Option<(u64, u64)>,
    pub(super) source: &'a str,
    pub(super) base: &'a Path,
    pub(super) dirs: &'a Dirs,
    pub(super) canonical_config_dir: Option<&'a Path>,
    pub(super) problems: Vec<Problem>,
    /// Problems counted but not kept (past the first [`MAX_SHOWN`] in file order).
    pub(super) hidden: usize,
    pub(super) places: PlaceOffsets,
    /// The file's `instances`, once read (see `jobs`).
    pub(super) instances: Option<u32>,
}

impl<'a> Builder<'a> {
    pub(super) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problem(span.start, Severity::Error, message.into(), None);
    }

    pub(super) fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problem(span.start, Severity::Warning, message.into(), None);
    }

    pub(super) fn problem(
        &mut self,
        offset: usize,
        severity: Severity,
        message: String,
        first_set: Option<usize>,
    ) {
        self.problems.push(Problem {
            offset,
            severity,
            message,
            first_set,
        });
        // Keep memory bounded however many problems a file has: only the first
        // MAX_SHOWN in file order are shown, and one more marks where the rest begin.
        if self.problems.len() >= 8 * MAX_SHOWN {
            self.problems.sort_by_key(|p| p.offset);
            self.hidden += self.problems.len() - (MAX_SHOWN + 1);
            self.problems.truncate(MAX_SHOWN + 1);
        }
    }

    /// Locates every problem and place in one pass over the file and hands back the
    /// daemon, or the file's problems (at most [`MAX_SHOWN`] and a count of the rest).
    pub(super) fn finish(mut self, daemon: Option<Daemon>) -> Result<LoadedFile, Invalid> {
        self.problems.sort_by_key(|p| p.offset);
        let shown = self.problems.len().min(MAX_SHOWN);
        let hidden = self.hidden + (self.problems.len() - shown);
        let errors = hidden
            + self.problems[..shown]
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .count();
        let mut offsets: Vec<usize> = Vec::new();
        for p in &self.problems[..shown] {
            offsets.push(p.offset);
            offsets.extend(p.first_set);
        }
        if hidden > 0 {
            offsets.push(
                self.problems
                    .get(shown)
                    .map_or(self.source.len(), |p| p.offset),
            );
        }
        let places_from = offsets.len();
        offsets.extend(&self.places.after);
        for place in [self.places.pidfile, self.places.log, self.places.stderr_log] {
            offsets.push(place.unwrap_or(0));
        }
        let located = diagnostic::line_cols(self.source, &offsets);
        let mut at = located.iter().copied();
        let mut diagnostics = Vec::new();
        for p in self.problems.drain(..shown) {
            let location = at.next().unwrap_or((1, 1));
            let mut message = p.message;
            if p.first_set.is_some() {
                let (line, col) = at.next().unwrap_or((1, 1));
                message.push_str(&format!(": already set at {line}:{col}; keep one of them"));
            }
            diagnostics.push(Diagnostic {
                file: self.file.to_path_buf(),
                location,
                severity: p.severity,
                message,
            });
        }
        if hidden > 0 {
            diagnostics.push(Diagnostic::located(
                self.file,
                at.next().unwrap_or((1, 1)),
                format!(
                    "{hidden} more problems not shown (at most {MAX_SHOWN} a file); fix the ones above first"
                ),
            ));
        }
        let mut places = located[places_from..].iter().copied();
        match daemon {
            Some(daemon) if errors == 0 => {
                let after = places.by_ref().take(self.places.after.len()).collect();
                let mut next = || places.next().unwrap_or((1, 1));
                let places = Places {
                    file_id: self.file_id,
                    after,
                    pidfile: next(),
                    log: next(),
                    stderr_log: next(),
                };
                Ok(LoadedFile {
                    daemon,
                    places,
                    warnings: diagnostics,
                    instances: self.instances,
                })
            }
            _ => {
                diagnostics.retain(Diagnostic::is_error);
                Err(invalid(self.file, diagnostics))
            }
        }
    }

    pub(super) fn build(&mut self, name: String) -> Option<Daemon> {
        let raw = raw::parse(self.source);
        let table = raw.table;
        self.hidden += raw.error_count - raw.errors.len();
        let mut duplicates = DuplicateIndex::default();
        for (i, (span, message)) in raw.errors.into_iter().enumerate() {
            if message == "duplicate key" && i <= MAX_SHOWN {
                let key = self.source.get(span.clone()).unwrap_or_default();
                let key = key.trim_matches(|c| c == '"' || c == '\'');
                let first = duplicates.first_before(&table, key, span.start);
                let message = format!("duplicate key `{}`", quote(key));
                self.problem(span.start, Severity::Error, message, first);
            } else {
                self.error(span, message);
            }
        }
        let mut keys: Option<suggest::Suggester<'_>> = None;
        for (key, _) in table.iter() {
            let key_name: &str = key.get_ref();
            if Key::named(key_name).is_none() {
                let hint = keys
                    .get_or_insert_with(|| suggest::Suggester::new(KEYS))
                    .nearest(key_name)
                    .map_or(String::new(), |k| format!(", did you mean `{k}`?"));
                self.error(
                    key.span(),
                    format!("unknown key `{}`{hint}", quote(key_name)),
                );
            }
        }
        // Each key is looked up by its entry in the key table.
        let get = |key: Key| table.get(key.name());
        let process_defaults = ProcessSpec::default();
        let defaults = Supervision::default();
        let log_defaults = LogSpec::default();

        let command = match get(Key::Command) {
            Some(value) => self.command(value),
            None => {
                let message = "missing key `command`: the command to run, as a string or an array";
                self.error(0..0, message);
                None
            }
        };
        let description = self.string(get(Key::Description));
        self.instances = self.instances(get(Key::Instances));
        // The copies' default files hold their own names: `web@2.log`.
        let path_name = match self.instances {
            Some(_) => format!("{name}@{}", instances::PLACEHOLDER),
            None => name.clone(),
        };
        let working_dir = self
            .path(get(Key::WorkingDir))
            .unwrap_or(process_defaults.working_dir);
        let env = self.env(get(Key::Env));
        let clear_env = self
            .bool(get(Key::ClearEnv))
            .unwrap_or(process_defaults.clear_env);
        let user = self.name_string(get(Key::User), Key::User.name());
        let group = self.name_string(get(Key::Group), Key::Group.name());
        let umask = self
            .umask(get(Key::Umask))
            .unwrap_or(process_defaults.umask);
        let kind_read = self.kind(get(Key::Type));
        let kind = kind_read.unwrap_or(DaemonType::Simple);
        let pidfile = self.written_path(get(Key::Pidfile), Key::Pidfile.name(), &name);
        self.places.pidfile = get(Key::Pidfile).map(|v| v.span().start);
        let log = self.written_path(get(Key::Log), Key::Log.name(), &name);
        self.places.log = get(Key::Log).map(|v| v.span().start);
        let stderr_log = self.written_path(get(Key::StderrLog), Key::StderrLog.name(), &name);
        self.places.stderr_log = get(Key::StderrLog).map(|v| v.span().start);
        // With type = "forking", `pidfile` is the program's own file; dmgr's lock and
        // PID record stay at the default.
        let (pidfile, forking_pidfile) = match (kind, pidfile) {
            (DaemonType::Forking, Some(own)) => (self.dirs.pidfile(&path_name), Some(own)),
            (_, set) => (set.unwrap_or_else(|| self.dirs.pidfile(&path_name)), None),
        };
        if forking_pidfile.as_ref() == Some(&pidfile) {
            if let Some(v) = get(Key::Pidfile) {
                self.error(v.span(), "with type = \"forking\", `pidfile` is the daemon's own file, and this is the file dmgr locks itself; leave `pidfile` out or name the file the program writes");
            }
        }
        self.check_placeholders(
            get,
            self.instances,
            [
                (Key::Pidfile, forking_pidfile.as_deref().or(Some(&pidfile))),
                (Key::Log, log.as_deref()),
                (Key::StderrLog, stderr_log.as_deref()),
            ],
        );
        let log = log.unwrap_or_else(|| self.dirs.log_dir.join(format!("{path_name}.log")));
        let log_max_size = self
            .log_size(get(Key::LogMaxSize))
            .unwrap_or(log_defaults.log_max_size);
        let log_keep = self
            .uint(
                get(Key::LogKeep),
                MAX_LOG_KEEP,
                "rotation renames every kept file, and `dmgr logs` reads back through at most that many",
            )
            .unwrap_or(log_defaults.log_keep);
        let log_timestamps = self
            .bool(get(Key::LogTimestamps))
            .unwrap_or(log_defaults.log_timestamps);
        let autostart = self.bool(get(Key::Autostart)).unwrap_or(true);
        // A oneshot runs once unless it asks to be retried, as systemd's do.
        let default_restart = match kind {
            DaemonType::Oneshot => RestartPolicy::No,
            _ => defaults.restart,
        };
        let restart = self.restart(get(Key::Restart)).unwrap_or(default_restart);
        let restart_delay = self
            .duration(get(Key::RestartDelay))
            .unwrap_or(defaults.restart_delay);
        let max_restarts = self
            .uint(
                get(Key::MaxRestarts),
                MAX_RESTARTS,
                "that many quick failures take almost two years at the 60 s backoff cap",
            )
            .unwrap_or(defaults.max_restarts);
        let start_wait = self
            .duration(get(Key::StartWait))
            .unwrap_or(defaults.start_wait);
        let ready = get(Key::Ready).and_then(|v| self.ready(v));
        let ready_timeout = self
            .duration(get(Key::ReadyTimeout))
            .unwrap_or(defaults.ready_timeout);
        let stop_signal = self
            .signal(get(Key::StopSignal), Signal::check_stop)
            .unwrap_or(defaults.stop_signal);
        let stop_timeout = self
            .duration(get(Key::StopTimeout))
            .unwrap_or(defaults.stop_timeout);
        let kill_mode = self
            .kill_mode(get(Key::KillMode))
            .unwrap_or(defaults.kill_mode);
        let reload_signal = self
            .signal(get(Key::ReloadSignal), |s| s.check_reload().map(|()| None))
            .unwrap_or(defaults.reload_signal);
        let reload_command = get(Key::ReloadCommand).and_then(|v| self.argv(v));
        let stop_command = get(Key::StopCommand).and_then(|v| self.argv(v));
        if let (Some(_), Some(v)) = (&reload_command, get(Key::ReloadSignal)) {
            self.error(v.span(), "`reload_signal` and `reload_command` exclude each other: `reload` runs the command instead of sending the signal; keep one");
        }
        let after = self.after(get(Key::After), &name);
        let memory_max = self.memory_max(get(Key::MemoryMax));
        let health =
            get(Key::Health).and_then(|v| self.check_table(v, Key::Health.name(), HEALTH_KEYS));
        let health_interval = self
            .duration(get(Key::HealthInterval))
            .unwrap_or(defaults.health_interval);
        let health_timeout = self
            .duration(get(Key::HealthTimeout))
            .unwrap_or(defaults.health_timeout);
        let health_failures = self
            .uint(
                get(Key::HealthFailures),
                MAX_RESTARTS,
                "that many failed checks in a row would never make the daemon unhealthy",
            )
            .unwrap_or(defaults.health_failures);
        self.check_health_timing(
            get(Key::Health),
            [
                get(Key::HealthInterval),
                get(Key::HealthTimeout),
                get(Key::HealthFailures),
            ],
            health_interval,
            health_timeout,
            health_failures,
        );
        let notify = self.notify_keys(
            kind == DaemonType::Notify || (get(Key::Type).is_some() && kind_read.is_none()),
            get(Key::Watchdog),
            get(Key::WatchdogSignal),
            get(Key::NotifyAccess),
        );
        let jobs = self.jobs(get, kind, restart);
        let env_file = self.env_file(get(Key::EnvFile));
        let limits = self.limits(get(Key::Limits));
        let nice = self.int_in(
            get(Key::Nice),
            Key::Nice.name(),
            NICE_RANGE,
            "-20 runs first, 19 last",
        );
        let oom_score_adj = self.int_in(
            get(Key::OomScoreAdj),
            Key::OomScoreAdj.name(),
            OOM_SCORE_ADJ_RANGE,
            "-1000 is never killed for memory, 1000 first",
        );
        self.check_own_paths(
            &table,
            forking_pidfile.as_deref().unwrap_or(&pidfile),
            &log,
            stderr_log.as_deref(),
            log_keep,
        );
        Some(Daemon {
            file: self.file.to_path_buf(),
            description,
            pidfile,
            forking_pidfile,
            autostart,
            after,
            kind,
            instance: None,
            process: ProcessSpec {
                command: command?,
                env,
                clear_env,
                working_dir,
                user,
                group,
                umask,
                log,
                stderr_log,
                env_file,
                limits,
                nice,
                oom_score_adj,
                watchdog: notify.watchdog,
            },
            supervision: Supervision {
                restart,
                restart_delay,
                max_restarts,
                start_wait,
                ready,
                ready_timeout,
                stop_signal,
                kill_mode,
                stop_timeout,
                reload_signal,
                reload_command,
                stop_command,
                memory_max,
                health,
                health_interval,
                health_timeout,
                health_failures,
                watchdog_signal: notify.watchdog_signal,
                notify_access: notify.notify_access,
                schedule: jobs.schedule,
                catch_up: jobs.catch_up,
                restart_schedule: jobs.restart_schedule,
                pre_start: jobs.pre_start,
                post_stop: jobs.post_stop,
                on_failure: jobs.on_failure,
                hook_timeout: jobs.hook_timeout,
            },
            logs: LogSpec {
                log_max_size,
                log_keep,
                log_timestamps,
            },
            name,
        })
    }
}

/// Finds where a duplicated key was first set, with an index of every key's places
/// built once, on the first duplicate.
#[derive(Default)]
pub(super) struct DuplicateIndex {
    pub(super) places: Option<HashMap<String, Vec<usize>>>,
}

impl DuplicateIndex {
    pub(super) fn first_before(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        offset: usize,
    ) -> Option<usize> {
        let places = self.places.get_or_insert_with(|| {
            let mut places: HashMap<String, Vec<usize>> = HashMap::new();
            index_keys(table, &mut places);
            places
        });
        places
            .get(key)?
            .iter()
            .copied()
            .filter(|&at| at < offset)
            .max()
    }
}

pub(super) fn index_keys(table: &DeTable<'_>, places: &mut HashMap<String, Vec<usize>>) {
    pub(super) fn value(v: &DeValue<'_>, places: &mut HashMap<String, Vec<usize>>) {
        match v {
            DeValue::Table(t) => index_keys(t, places),
            DeValue::Array(items) => items.iter().for_each(|i| value(i.get_ref(), places)),
            _ => {}
        }
    }
    for (key, item) in table.iter() {
        places
            .entry(key.get_ref().to_string())
            .or_default()
            .push(key.span().start);
        value(item.get_ref(), places);
    }
}

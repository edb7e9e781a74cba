//! The keys of copies, oneshots, schedules and hooks as the builder reads them:
//! `instances`, `schedule`, `catch_up`, `restart_schedule`, the hooks `pre_start`,
//! `post_stop`, `on_failure` and `hook_timeout`, and the checks between them and
//! `type = "oneshot"`.

use std::path::Path;

use toml::de::DeValue;

use super::instances::{has_placeholder, MAX_INSTANCES, PLACEHOLDER};
use super::*;
use crate::config::raw::Value;
use crate::schedule::Cron;

/// The default `hook_timeout`.
pub(super) fn default_hook_timeout() -> Duration {
    Duration::from_secs(30)
}

/// What [`Builder::jobs`] read.
pub(super) struct Jobs {
    pub schedule: Option<Cron>,
    pub catch_up: bool,
    pub restart_schedule: Option<Cron>,
    pub pre_start: Option<Vec<String>>,
    pub post_stop: Option<Vec<String>>,
    pub on_failure: Option<Vec<String>>,
    pub hook_timeout: Duration,
}

impl Builder<'_> {
    /// `text` with `{instance}` as the largest copy number there will be, for the
    /// checks of an address or URL (a port "80{instance}" must fit every copy).
    pub(super) fn stand_in(&self, text: &str) -> String {
        text.replace(PLACEHOLDER, &self.instances.unwrap_or(1).to_string())
    }

    /// `instances`: how many copies, 1 to [`MAX_INSTANCES`].
    pub(super) fn instances(&mut self, value: Option<&Value<'_>>) -> Option<u32> {
        let value = value?;
        let n = self.integer(value)?;
        if !(1..=i128::from(MAX_INSTANCES)).contains(&n) {
            self.error(
                value.span(),
                format!("`instances` is {n}; it is from 1 to {MAX_INSTANCES} (each copy is a keeper and a process)"),
            );
            return None;
        }
        Some(n as u32)
    }

    /// A cron expression (`schedule`, `restart_schedule`).
    fn cron(&mut self, value: Option<&Value<'_>>, key: &str) -> Option<Cron> {
        let value = value?;
        let DeValue::String(text) = value.get_ref() else {
            self.expected(value, "a cron expression like \"30 3 * * *\" or \"@daily\"");
            return None;
        };
        match Cron::parse(text) {
            Ok(cron) => Some(cron),
            Err(why) => {
                self.error(value.span(), format!("`{key}`: {why}"));
                None
            }
        }
    }

    /// The schedule and hook keys, and how they fit `type` and `restart`.
    pub(super) fn jobs<'v>(
        &mut self,
        get: impl Fn(Key) -> Option<&'v Value<'v>>,
        kind: DaemonType,
        restart: RestartPolicy,
    ) -> Jobs {
        let schedule = self.cron(get(Key::Schedule), Key::Schedule.name());
        let restart_schedule = self.cron(get(Key::RestartSchedule), Key::RestartSchedule.name());
        let catch_up = self.bool(get(Key::CatchUp)).unwrap_or(false);
        let pre_start = get(Key::PreStart).and_then(|v| self.argv(v));
        let post_stop = get(Key::PostStop).and_then(|v| self.argv(v));
        let on_failure = get(Key::OnFailure).and_then(|v| self.argv(v));
        let hook_timeout = match self.duration(get(Key::HookTimeout)) {
            Some(d) if d.is_zero() => {
                if let Some(v) = get(Key::HookTimeout) {
                    self.error(
                        v.span(),
                        "`hook_timeout` must be more than 0: a hook gets at least a moment to run",
                    );
                }
                default_hook_timeout()
            }
            Some(d) => d,
            None => default_hook_timeout(),
        };
        let oneshot = kind == DaemonType::Oneshot;
        if let (Some(v), false) = (get(Key::Schedule), oneshot) {
            self.error(v.span(), "`schedule` runs a command to completion at set times, and needs type = \"oneshot\"; to restart a long-running daemon at set times, use `restart_schedule`");
        }
        if let (Some(v), true) = (get(Key::RestartSchedule), oneshot) {
            self.error(v.span(), "`restart_schedule` restarts a long-running daemon; a oneshot runs at set times with `schedule`");
        }
        if let (Some(v), None) = (get(Key::CatchUp), get(Key::Schedule)) {
            self.error(v.span(), "`catch_up` runs a missed time of `schedule` once the keeper is back; set `schedule`, or leave `catch_up` out");
        }
        if oneshot {
            if let (Some(v), RestartPolicy::Always) = (get(Key::Restart), restart) {
                self.error(v.span(), "restart = \"always\" would run a oneshot again and again; use `schedule` to run it at set times, or \"on-failure\" to retry a failed run");
            }
            for key in [
                Key::Ready,
                Key::ReadyTimeout,
                Key::Health,
                Key::MemoryMax,
                Key::StartWait,
            ] {
                if let Some(v) = get(key) {
                    self.error(v.span(), format!("`{key}` does not apply to type = \"oneshot\": a oneshot has succeeded when it exits 0"));
                }
            }
        }
        Jobs {
            schedule,
            catch_up,
            restart_schedule,
            pre_start,
            post_stop,
            on_failure,
            hook_timeout,
        }
    }

    /// With `instances`, the paths one daemon writes must differ per copy; without
    /// it, `{instance}` is left as written, which `check` warns about.
    pub(super) fn check_placeholders<'v>(
        &mut self,
        get: impl Fn(Key) -> Option<&'v Value<'v>>,
        instances: Option<u32>,
        paths: [(Key, Option<&Path>); 3],
    ) {
        match instances {
            Some(_) => {
                for (key, path) in paths {
                    let (Some(path), Some(v)) = (path, get(key)) else {
                        continue;
                    };
                    if !has_placeholder(path) {
                        self.error(v.span(), format!("with `instances`, every copy would write this one `{key}`; put `{PLACEHOLDER}` in it, like \"/var/log/NAME-{PLACEHOLDER}.log\""));
                    }
                }
            }
            None => {
                for key in [
                    Key::Command,
                    Key::Env,
                    Key::WorkingDir,
                    Key::Log,
                    Key::StderrLog,
                    Key::Pidfile,
                    Key::Ready,
                    Key::Health,
                ] {
                    if let Some(v) = get(key).filter(|v| holds_placeholder(v.get_ref())) {
                        self.warning(v.span(), format!("`{PLACEHOLDER}` is replaced only in a daemon with `instances`; here it stays as written"));
                    }
                }
            }
        }
    }
}

/// Returns true if and only if a string in `value` holds `{instance}`.
fn holds_placeholder(value: &DeValue<'_>) -> bool {
    match value {
        DeValue::String(s) => s.contains(PLACEHOLDER),
        DeValue::Array(items) => items.iter().any(|i| holds_placeholder(i.get_ref())),
        DeValue::Table(t) => t.iter().any(|(_, v)| holds_placeholder(v.get_ref())),
        _ => false,
    }
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;

//! The builder's parsers for the keys a daemon needs in production: `env_file`,
//! `limits`, `nice`, `oom_score_adj`, `memory_max` and the `health_*` timing (the
//! `health` table itself is parsed like `ready`). What they mean is the keeper's
//! (`config::env_file::load`, `keeper::resources`, `keeper::core::health`,
//! `keeper::core::memory`); here they are only checked.

use std::path::Path;
use std::time::Duration;

use toml::de::DeValue;

use super::*;
use crate::config::diagnostic::quote;
use crate::config::env_file::EnvFile;
use crate::config::limits::{Limit, Limits, Resource, Unit};
use crate::config::raw::Value;
use crate::config::suggest;

/// The smallest `memory_max`: no daemon runs in less.
pub(super) const MIN_MEMORY_MAX: u64 = 1 << 20;
/// The shortest `health_interval`: a check is a process, and one every few
/// milliseconds would cost more than the daemon it watches.
pub(super) const MIN_HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// The bounds of `nice`: setpriority(2)'s range on Linux.
pub(super) const NICE_RANGE: (i32, i32) = (-20, 19);
/// The bounds of `oom_score_adj`: the kernel's `OOM_SCORE_ADJ_MIN` and `_MAX`.
pub(super) const OOM_SCORE_ADJ_RANGE: (i32, i32) = (-1000, 1000);

impl Builder<'_> {
    /// `env_file`: a path or an array of paths, each relative to the directory of
    /// the daemon file, `-` in front for one that may be missing.
    pub(super) fn env_file(&mut self, value: Option<&Value<'_>>) -> Vec<EnvFile> {
        let Some(value) = value else {
            return Vec::new();
        };
        let items: Vec<&Value<'_>> = match value.get_ref() {
            DeValue::String(_) => vec![value],
            DeValue::Array(items) => items.iter().collect(),
            _ => {
                self.expected(
                    value,
                    "a path or an array of paths, like \"web.env\" or [\"-/etc/default/web\", \"web.env\"]",
                );
                return Vec::new();
            }
        };
        let mut files = Vec::new();
        for item in items {
            let Some(text) = self.path_text(Some(item)) else {
                continue;
            };
            let (optional, path) = match text.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, text.as_str()),
            };
            if path.is_empty() {
                self.error(item.span(), "expected a path after `-`");
                continue;
            }
            files.push(EnvFile {
                path: resolve(self.base, Path::new(path)),
                optional,
            });
        }
        files
    }

    /// `limits`: a table of resource names to a number, a size (bytes), a duration
    /// (`cpu`) or `"unlimited"`.
    pub(super) fn limits(&mut self, value: Option<&Value<'_>>) -> Limits {
        let mut limits = Limits::new();
        let Some(value) = value else {
            return limits;
        };
        let DeValue::Table(table) = value.get_ref() else {
            self.expected(
                value,
                "a table like { nofile = 65536, core = \"unlimited\" }",
            );
            return limits;
        };
        for (key, item) in table.iter() {
            let name: &str = key.get_ref();
            let Some(resource) = Resource::from_name(name) else {
                let hint = suggest::nearest(&name.to_ascii_lowercase(), &Resource::names())
                    .map_or(String::new(), |k| format!(", did you mean `{k}`?"));
                self.error(
                    key.span(),
                    format!(
                        "unknown limit `limits.{}`{hint} (the limits are {})",
                        quote(name),
                        Resource::names().join(", ")
                    ),
                );
                continue;
            };
            if let Some(limit) = self.limit(resource, item) {
                limits.insert(resource, limit);
            }
        }
        limits
    }

    fn limit(&mut self, resource: Resource, item: &Value<'_>) -> Option<Limit> {
        let key = format!("limits.{resource}");
        let written = match resource.unit() {
            Unit::Count => "a whole number or \"unlimited\"",
            Unit::Bytes => "a size like \"64MiB\", a number of bytes, or \"unlimited\"",
            Unit::Seconds => "a duration like \"2h\", a number of seconds, or \"unlimited\"",
        };
        let limit = match item.get_ref() {
            DeValue::String(s) if s == "unlimited" || s == "infinity" => Limit::Unlimited,
            DeValue::String(s) => {
                let parsed = match resource.unit() {
                    Unit::Bytes => s.parse::<units::Size>().map(|size| size.0),
                    Unit::Seconds => units::parse_duration(s).and_then(|d| {
                        if d.subsec_nanos() == 0 {
                            Ok(d.as_secs())
                        } else {
                            Err(format!(
                                "a CPU limit is whole seconds, not \"{}\"",
                                quote(s)
                            ))
                        }
                    }),
                    Unit::Count => Err(format!(
                        "expected {written} for `{key}`, found \"{}\"",
                        quote(s)
                    )),
                };
                match parsed {
                    Ok(n) => Limit::Value(n),
                    Err(message) => {
                        self.error(item.span(), message);
                        return None;
                    }
                }
            }
            DeValue::Integer(_) => {
                let number = self.integer(item)?;
                match u64::try_from(number) {
                    Ok(n) if n < u64::MAX => Limit::Value(n),
                    _ => {
                        self.error(
                            item.span(),
                            format!("`{key}` cannot be {number}: write {written}"),
                        );
                        return None;
                    }
                }
            }
            _ => {
                self.expected(item, written);
                return None;
            }
        };
        if resource == Resource::Nofile && limit == Limit::Value(0) {
            self.error(
                item.span(),
                "`limits.nofile` = 0 would leave the daemon unable to open any file; write at least 1",
            );
            return None;
        }
        Some(limit)
    }

    /// A whole number within `range`; `what` says what the ends mean.
    pub(super) fn int_in(
        &mut self,
        value: Option<&Value<'_>>,
        key: &str,
        range: (i32, i32),
        what: &str,
    ) -> Option<i32> {
        let value = value?;
        if !matches!(value.get_ref(), DeValue::Integer(_)) {
            self.expected(value, "a whole number");
            return None;
        }
        let number = self.integer(value)?;
        match i32::try_from(number) {
            Ok(n) if (range.0..=range.1).contains(&n) => Some(n),
            _ => {
                self.error(
                    value.span(),
                    format!(
                        "`{key}` must be from {} to {} ({what}), not {number}",
                        range.0, range.1
                    ),
                );
                None
            }
        }
    }

    /// `memory_max`: a size (or a number of bytes), at least [`MIN_MEMORY_MAX`].
    pub(super) fn memory_max(&mut self, value: Option<&Value<'_>>) -> Option<units::Size> {
        let value = value?;
        let size = self.size(value, "512MiB")?;
        if size.0 < MIN_MEMORY_MAX {
            self.error(
                value.span(),
                format!(
                    "`memory_max` is {size}: a daemon needs at least {}; write a size like \"512MiB\"",
                    units::Size(MIN_MEMORY_MAX)
                ),
            );
            return None;
        }
        Some(size)
    }

    /// The `health_*` keys: an interval of at least [`MIN_HEALTH_INTERVAL`], a timeout
    /// and a failure count above zero, and a warning where they are set without
    /// `health`, which they would not change.
    pub(super) fn check_health_timing(
        &mut self,
        health: Option<&Value<'_>>,
        values: [Option<&Value<'_>>; 3],
        interval: Duration,
        timeout: Duration,
        failures: u32,
    ) {
        let [interval_value, timeout_value, failures_value] = values;
        if let Some(v) = interval_value {
            if interval < MIN_HEALTH_INTERVAL {
                self.error(
                    v.span(),
                    "`health_interval` must be at least 1s: each check is a process of its own",
                );
            }
        }
        if let (Some(v), true) = (timeout_value, timeout.is_zero()) {
            self.error(v.span(), "`health_timeout` must be more than 0s");
        }
        if let (Some(v), 0) = (failures_value, failures) {
            self.error(v.span(), "`health_failures` must be at least 1");
        }
        if health.is_none() {
            for (key, v) in [
                (Key::HealthInterval, interval_value),
                (Key::HealthTimeout, timeout_value),
                (Key::HealthFailures, failures_value),
            ] {
                if let Some(v) = v {
                    self.warning(v.span(), format!("`{key}` does nothing without `health`"));
                }
            }
        }
    }
}

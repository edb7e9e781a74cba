//! The keys of the notify protocol and of the readiness forms that the daemon reports
//! itself: `type = "notify"`'s `watchdog`, `watchdog_signal` and `notify_access`, and
//! `ready = { log = "regex" }` and `ready = { fd = N }`. The keeper's side is in
//! `keeper`; this only checks what the file says.

use std::time::Duration;

use toml::de::DeValue;

use super::*;
use crate::config::diagnostic::quote;
use crate::config::raw::Value;

/// The lowest `ready = { fd = N }`: 0, 1 and 2 are the daemon's stdin, stdout, stderr.
pub(super) const MIN_READY_FD: i32 = 3;
/// The highest `ready = { fd = N }`: below the usual soft limit of 1024 descriptors,
/// so that the daemon can have it whatever its `nofile`.
pub(super) const MAX_READY_FD: i32 = 1023;
/// The shortest `watchdog`: a daemon pings at half the period, so less than this
/// would be a ping every few milliseconds.
pub(super) const MIN_WATCHDOG: Duration = Duration::from_millis(20);

/// The notify keys of one file, with their defaults where the file has none.
pub(super) struct NotifyKeys {
    pub(super) watchdog: Option<Duration>,
    pub(super) watchdog_signal: Signal,
    pub(super) notify_access: NotifyAccess,
}

/// Compiles a `ready = { log = "..." }` pattern as the keeper matches it against each
/// line of the daemon's output (without its line end); `Err` holds the byte offset in
/// the pattern where the mistake is, when the parser knows it, and what is wrong.
pub fn compile_log_pattern(pattern: &str) -> Result<regex::bytes::Regex, (Option<usize>, String)> {
    if let Err(error) = regex_syntax::Parser::new().parse(pattern) {
        let (offset, kind) = match &error {
            regex_syntax::Error::Parse(e) => (e.span().start.offset, e.kind().to_string()),
            regex_syntax::Error::Translate(e) => (e.span().start.offset, e.kind().to_string()),
            _ => (0, error.to_string()),
        };
        return Err((Some(offset), kind));
    }
    // What the parser accepts may still be too large once compiled.
    regex::bytes::Regex::new(pattern).map_err(|e| match e {
        regex::Error::CompiledTooBig(limit) => (
            None,
            format!("the pattern compiles to more than {limit} bytes; write a simpler one"),
        ),
        other => (None, other.to_string()),
    })
}

impl Builder<'_> {
    /// `ready = { log = "regex" }`: a pattern that compiles, located in the file
    /// where it is wrong.
    pub(super) fn log_pattern(&mut self, item: &Value<'_>) -> Option<ReadyCheck> {
        let pattern = self.string(Some(item))?;
        if pattern.is_empty() {
            self.error(
                item.span(),
                "`ready.log` is empty, which every line matches; write the line that says the daemon is ready, like \"ready to accept connections\"",
            );
            return None;
        }
        match compile_log_pattern(&pattern) {
            Ok(_) => Some(ReadyCheck::Log(pattern)),
            Err((offset, what)) => {
                let at = offset.map_or(item.span().start, |offset| {
                    self.place_in_string(item, offset)
                });
                self.problem(
                    at,
                    crate::config::diagnostic::Severity::Error,
                    format!("invalid regular expression in `ready.log`: {what}"),
                    None,
                );
                None
            }
        }
    }

    /// The byte offset in the file of byte `offset` of a string value, where the
    /// string is written without escapes (so that the two line up); else the start
    /// of the value.
    fn place_in_string(&self, item: &Value<'_>, offset: usize) -> usize {
        let span = item.span();
        let written = self.source.get(span.clone()).unwrap_or_default();
        let literal = written.starts_with('\'') && !written.starts_with("'''");
        let plain = written.starts_with('"') && !written.starts_with("\"\"\"");
        let unescaped = literal || (plain && !written.contains('\\'));
        if unescaped && offset + 1 < written.len() {
            span.start + 1 + offset
        } else {
            span.start
        }
    }

    /// `ready = { fd = N }`: a descriptor number the daemon can be given.
    pub(super) fn ready_fd(&mut self, item: &Value<'_>) -> Option<ReadyCheck> {
        if !matches!(item.get_ref(), DeValue::Integer(_)) {
            self.expected(item, "a descriptor number, like 3");
            return None;
        }
        let number = self.integer(item)?;
        match i32::try_from(number) {
            Ok(fd) if (MIN_READY_FD..=MAX_READY_FD).contains(&fd) => Some(ReadyCheck::Fd(fd)),
            _ => {
                self.error(
                    item.span(),
                    format!(
                        "expected a descriptor from {MIN_READY_FD} to {MAX_READY_FD}, found {number}: 0, 1 and 2 are the daemon's stdin, stdout and stderr"
                    ),
                );
                None
            }
        }
    }

    /// `watchdog`, `watchdog_signal` and `notify_access`, which only a notify daemon
    /// has (a daemon of another type has no socket to send on); `notify` is false for
    /// another type (a mistyped `type` is reported already, and not again here).
    pub(super) fn notify_keys(
        &mut self,
        notify: bool,
        watchdog: Option<&Value<'_>>,
        watchdog_signal: Option<&Value<'_>>,
        notify_access: Option<&Value<'_>>,
    ) -> NotifyKeys {
        let defaults = Supervision::default();
        let mut keys = NotifyKeys {
            watchdog: None,
            watchdog_signal: defaults.watchdog_signal,
            notify_access: defaults.notify_access,
        };
        for (key, value) in [
            (Key::Watchdog, watchdog),
            (Key::WatchdogSignal, watchdog_signal),
            (Key::NotifyAccess, notify_access),
        ] {
            if let (Some(value), false) = (value, notify) {
                self.error(
                    value.span(),
                    format!("`{key}` is for type = \"notify\" only: only a notify daemon has a socket to report on; set type = \"notify\" or leave `{key}` out"),
                );
            }
        }
        if let Some(value) = watchdog {
            keys.watchdog = match self.duration(Some(value)) {
                Some(period) if period < MIN_WATCHDOG => {
                    self.error(
                        value.span(),
                        format!(
                            "`watchdog` is {}: the shortest is {}, as a daemon pings at half the period; leave it out to have no watchdog",
                            units::format_duration(period),
                            units::format_duration(MIN_WATCHDOG)
                        ),
                    );
                    None
                }
                period => period,
            };
        }
        if let Some(value) = watchdog_signal {
            if watchdog.is_none() && notify {
                self.warning(
                    value.span(),
                    "`watchdog_signal` does nothing without `watchdog`",
                );
            }
            if let Some(signal) = self.signal(Some(value), Signal::check_stop) {
                keys.watchdog_signal = signal;
            }
        }
        if let Some(value) = notify_access {
            keys.notify_access = match value.get_ref() {
                DeValue::String(s) if s == "main" => NotifyAccess::Main,
                DeValue::String(s) if s == "all" => NotifyAccess::All,
                other => {
                    let found = match other {
                        DeValue::String(s) => format!("\"{}\"", quote(s)),
                        _ => crate::config::raw::type_name(other).to_string(),
                    };
                    self.error(
                        value.span(),
                        format!("expected \"main\" (the daemon's main process) or \"all\" (any process of the daemon), found {found}"),
                    );
                    defaults.notify_access
                }
            };
        }
        keys
    }
}

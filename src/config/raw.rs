//! The daemon file as written: its TOML keys and values with their byte spans, before
//! any meaning is given to them. Parsing recovers from syntax errors so that one file
//! can report several problems at once.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Every key a daemon file may hold, in the order the man page lists them.
pub const KEYS: &[&str] = &[
    "command",
    "description",
    "working_dir",
    "env",
    "clear_env",
    "user",
    "group",
    "umask",
    "pidfile",
    "log",
    "stderr_log",
    "log_max_size",
    "log_keep",
    "log_timestamps",
    "autostart",
    "restart",
    "restart_delay",
    "max_restarts",
    "start_wait",
    "ready",
    "ready_timeout",
    "stop_signal",
    "stop_timeout",
    "reload_signal",
    "reload_command",
    "stop_command",
    "after",
    "type",
];

/// The keys of the `ready` table.
pub const READY_KEYS: &[&str] = &["tcp", "file", "exec"];

/// Files larger than this are refused unread: a daemon file is a few hundred bytes.
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// A parsed daemon file: the top-level table, and the syntax errors met on the way.
pub struct RawFile<'i> {
    /// The top-level keys and values.
    pub table: DeTable<'i>,
    /// Syntax errors, each with the span it applies to.
    pub errors: Vec<(Range<usize>, String)>,
}

/// Parses `source`, recovering from syntax errors where the parser can.
pub fn parse(source: &str) -> RawFile<'_> {
    let (table, errors) = DeTable::parse_recoverable(source);
    let errors = errors
        .into_iter()
        .map(|e| {
            let span = e.span().unwrap_or(0..0);
            (span, first_line(e.message()))
        })
        .collect();
    RawFile {
        table: table.into_inner(),
        errors,
    }
}

/// The TOML type of a value as a user would name it ("a string", "an integer").
pub fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The nearest of `known` to `key`, if it is close enough to be a likely typo: a
/// few edits away (transpositions count as one), or similar by Jaro-Winkler for long
/// names.
pub fn nearest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let budget = (key.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| {
            (
                strsim::damerau_levenshtein(key, k),
                strsim::jaro_winkler(key, k),
                *k,
            )
        })
        .filter(|(edits, similarity, _)| *edits <= budget || *similarity >= 0.9)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, k)| k)
}

/// A spanned value of the table.
pub type Value<'i> = Spanned<DeValue<'i>>;

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_are_recovered_and_located() {
        let raw = parse("command = \"a\"\nbad = = 1\nrestart = \"no\"\n");
        assert!(!raw.errors.is_empty());
        assert!(raw.errors[0].0.start >= 14, "{:?}", raw.errors);
        assert!(raw.table.get("restart").is_some());
    }

    #[test]
    fn nearest_key_suggests_typos_only() {
        assert_eq!(nearest("comand", KEYS), Some("command"));
        assert_eq!(nearest("stop_timout", KEYS), Some("stop_timeout"));
        assert_eq!(nearest("zzzzzz", KEYS), None);
        assert_eq!(nearest("wbe", &["web", "db"]), Some("web"));
        assert_eq!(nearest("xyz", &["web", "db"]), None);
    }
}

//! The daemon file as written: its TOML keys and values with their byte spans, before
//! any meaning is given to them. Parsing recovers from syntax errors so that one file
//! can report several problems at once.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diagnostic::MAX_SHOWN;

/// The keys of the `ready` table.
pub const READY_KEYS: &[&str] = &["tcp", "file", "exec", "http", "log", "fd"];

/// The keys of the `health` table: a file says nothing about liveness.
pub(crate) const HEALTH_KEYS: &[&str] = &["tcp", "exec", "http"];

/// Files larger than this are refused unread: a daemon file is a few hundred bytes.
pub(super) const MAX_FILE_SIZE: u64 = 1 << 20;

/// A parsed daemon file: the top-level table, and the syntax errors met on the way.
pub(super) struct RawFile<'i> {
    /// The top-level keys and values (empty when the file is mostly errors).
    pub table: DeTable<'i>,
    /// Syntax errors, each with the span it applies to: at most
    /// [`MAX_SHOWN`] + 1 of them.
    pub errors: Vec<(Range<usize>, String)>,
    /// How many syntax errors there were in all.
    pub error_count: usize,
}

/// Parses `source`, recovering from syntax errors where the parser can.
///
/// The recovering parser keeps a heavy error value for each problem, and a file of
/// garbage has one or two per byte (1 MiB of `=` lines: 1.5 million errors, 400 MB).
/// So for a file of more than 16 KiB a cheap first pass of toml's own tokenizer,
/// grammar and decoders counts them, keeping only the first few; a file with more
/// than [`MAX_SHOWN`] of them is reported from that pass alone, and its keys are not
/// looked at.
pub(super) fn parse(source: &str) -> RawFile<'_> {
    // Below this size even a file of nothing but errors costs the recovering parser
    // little, and a daemon file is a few hundred bytes: no first pass for it.
    const FIRST_PASS_FROM: usize = 16 << 10;
    let first = if source.len() >= FIRST_PASS_FROM {
        count_syntax_errors(source)
    } else {
        Counted::default()
    };
    if first.count > MAX_SHOWN {
        return RawFile {
            table: DeTable::new(),
            errors: first.kept,
            error_count: first.count,
        };
    }
    let (table, errors) = DeTable::parse_recoverable(source);
    let errors: Vec<(Range<usize>, String)> = errors
        .into_iter()
        .map(|e| {
            let span = e.span().unwrap_or(0..0);
            (span, first_line(e.message()))
        })
        .collect();
    RawFile {
        table: table.into_inner(),
        error_count: errors.len(),
        errors,
    }
}

/// The syntax errors of a first pass: how many, and the first [`MAX_SHOWN`] + 1.
#[derive(Default)]
struct Counted {
    count: usize,
    kept: Vec<(Range<usize>, String)>,
}

impl toml_parser::ErrorSink for Counted {
    fn report_error(&mut self, error: toml_parser::ParseError) {
        self.count += 1;
        if self.kept.len() <= MAX_SHOWN {
            let span = error
                .unexpected()
                .map_or(0..0, |span| span.start()..span.end());
            self.kept.push((span, describe(&error)));
        }
    }
}

fn count_syntax_errors(source: &str) -> Counted {
    // The same receivers as toml's own document parser, so that the same files fail.
    const NESTING_LIMIT: u32 = 80;
    let input = toml_parser::Source::new(source);
    let tokens = input.lex().into_vec();
    let mut sink = Counted::default();
    let mut events = Decoder { input };
    let mut whitespace = toml_parser::parser::ValidateWhitespace::new(&mut events, input);
    let mut receiver = toml_parser::parser::RecursionGuard::new(&mut whitespace, NESTING_LIMIT);
    toml_parser::parser::parse_document(&tokens, &mut receiver, &mut sink);
    sink
}

/// Decodes each key, value, comment and newline as toml's own document parser does,
/// where most of the errors of a file of garbage are found, and builds nothing.
struct Decoder<'i> {
    input: toml_parser::Source<'i>,
}

impl<'i> Decoder<'i> {
    fn raw(
        &self,
        span: toml_parser::Span,
        kind: Option<toml_parser::decoder::Encoding>,
    ) -> Option<toml_parser::Raw<'i>> {
        let text = self.input.input().get(span.start()..span.end())?;
        Some(toml_parser::Raw::new_unchecked(text, kind, span))
    }
}

impl toml_parser::parser::EventReceiver for Decoder<'_> {
    fn simple_key(
        &mut self,
        span: toml_parser::Span,
        kind: Option<toml_parser::decoder::Encoding>,
        error: &mut dyn toml_parser::ErrorSink,
    ) {
        if let Some(raw) = self.raw(span, kind) {
            raw.decode_key(&mut (), error);
        }
    }

    fn scalar(
        &mut self,
        span: toml_parser::Span,
        kind: Option<toml_parser::decoder::Encoding>,
        error: &mut dyn toml_parser::ErrorSink,
    ) {
        if let Some(raw) = self.raw(span, kind) {
            let _ = raw.decode_scalar(&mut (), error);
        }
    }

    fn comment(&mut self, span: toml_parser::Span, error: &mut dyn toml_parser::ErrorSink) {
        if let Some(raw) = self.raw(span, None) {
            raw.decode_comment(error);
        }
    }

    fn newline(&mut self, span: toml_parser::Span, error: &mut dyn toml_parser::ErrorSink) {
        if let Some(raw) = self.raw(span, None) {
            raw.decode_newline(error);
        }
    }
}

/// A first-pass error as toml words it: the description, then what was expected.
fn describe(error: &toml_parser::ParseError) -> String {
    let mut message = error.description().to_string();
    if let Some(expected) = error.expected() {
        let items: Vec<String> = expected
            .iter()
            .map(|e| match e {
                toml_parser::Expected::Literal("\n") => "newline".to_string(),
                toml_parser::Expected::Literal(text) => format!("`{}`", text.escape_debug()),
                toml_parser::Expected::Description(text) => text.to_string(),
                _ => "etc".to_string(),
            })
            .collect();
        message.push_str(", expected ");
        if items.is_empty() {
            message.push_str("nothing");
        } else {
            message.push_str(&items.join(", "));
        }
    }
    message
}

/// The TOML type of a value as a user would name it ("a string", "an integer").
pub(super) fn type_name(value: &DeValue<'_>) -> &'static str {
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

/// A spanned value of the table.
pub(super) type Value<'i> = Spanned<DeValue<'i>>;

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

    /// Issue 16: a file of a million syntax errors is reported from the first pass,
    /// quickly and in little memory, with the first of them and their count.
    #[test]
    fn a_file_of_garbage_is_counted_not_kept() {
        let garbage = "=\n".repeat(1 << 19);
        let raw = parse(&garbage);
        assert!(raw.error_count > 500_000, "{}", raw.error_count);
        assert_eq!(raw.errors.len(), MAX_SHOWN + 1);
        assert!(raw.table.is_empty());
        assert_eq!(raw.errors[0].0.start, 0);
        // A few errors go through the recovering parser as usual.
        let raw = parse("command = \"a\"\nx = = 1\ny = = 2\n");
        assert_eq!(raw.error_count, 4);
        assert!(raw.table.get("command").is_some());
    }
}

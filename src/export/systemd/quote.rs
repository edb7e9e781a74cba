//! The only code that writes a value into a unit file; `boot` uses it too.

use std::fmt::Write as _;
use std::path::Path;

use super::comment;

/// An argv as the words of an `Exec*=` line: `%` and `$` doubled, a word with spaces,
/// quotes, backslashes or control characters (or an empty one, or a lone `;`)
/// double-quoted with C escapes.
pub(crate) fn exec_line(argv: &[String]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|word| {
            let escaped = word.replace('%', "%%").replace('$', "$$");
            let plain = !escaped.is_empty()
                && escaped != ";"
                && !escaped
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'));
            if plain {
                escaped
            } else {
                format!("\"{}\"", c_escape(&escaped))
            }
        })
        .collect();
    words.join(" ")
}

/// One `KEY=VALUE` for `Environment=`, quoted whole: `%` doubled, C escapes inside
/// the quotes; `$` is not special there.
pub(crate) fn environment_assignment(key: &str, val: &str) -> String {
    format!(
        "\"{}\"",
        c_escape(&format!("{key}={val}").replace('%', "%%"))
    )
}

/// A path as the value of a setting that takes one (`WorkingDirectory=`, `PIDFile=`,
/// `append:`): `%` doubled.
pub(crate) fn path(path: &Path) -> String {
    value(&path.display().to_string())
}

/// Free text as the value of a setting: `%` doubled, on one line, and no trailing
/// backslash that would join the next line to it.
pub(crate) fn value(text: &str) -> String {
    comment(text).replace('%', "%%")
}

/// C escapes for the inside of a double-quoted word.
fn c_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

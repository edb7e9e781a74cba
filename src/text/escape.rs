//! The one escaping rule for everything dmgr prints that came from a file, the
//! environment or a process: definitions, commands, names, paths, messages, log lines
//! on a terminal. Control characters (C0, DEL, C1) and the invisible bidirectional
//! controls that reorder text are shown escaped (`\e`, `\n`, `\x7f`, `\u{202e}`), and
//! bytes that are not UTF-8 as `\xff`; everything else, backslashes included, is left
//! as it is. So escaping twice changes nothing, and whoever can write a daemon file
//! cannot rewrite an operator's terminal (`description = "\u001b]0;pwned\u0007"`).

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;

/// Returns true if and only if `c` is shown escaped.
fn is_escaped(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{1b}' => out.push_str("\\e"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// `text` with every control character escaped (see the module documentation).
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_escaped(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Bytes as text: UTF-8 escaped as [`escape`] does, any other byte as `\xNN`.
pub(crate) fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&escape(chunk.valid()));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// A file name or path as text (see [`escape_bytes`]).
pub(crate) fn escape_os(text: &OsStr) -> String {
    escape_bytes(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        assert_eq!(escape("web server é ✓"), "web server é ✓");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape("\u{1b}]0;pwned\u{7}\u{1b}[2J"),
            "\\e]0;pwned\\x07\\e[2J"
        );
        assert_eq!(escape("a\tb\nc\rd\u{7f}"), "a\\tb\\nc\\rd\\x7f");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("C:\\path"), "C:\\path");
    }

    #[test]
    fn escaping_twice_changes_nothing() {
        let once = escape("\u{1b}[31m\\x41\n").into_owned();
        assert_eq!(escape(&once), once);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_hex() {
        assert_eq!(escape_bytes(b"bad\xff\xfe.toml"), "bad\\xff\\xfe.toml");
        assert_eq!(escape_bytes(b"ok \xc3\xa9\x1b"), "ok é\\e");
        assert_eq!(escape_os(OsStr::from_bytes(b"/tmp/x\xff")), "/tmp/x\\xff");
    }
}

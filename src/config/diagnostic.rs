//! One problem in one file, located as `FILE:LINE:COL` like a compiler error; a problem
//! with the file as a whole points at `1:1`, as rustc and most linters do. The only
//! place that turns byte offsets into lines and columns, and it does so for all the
//! problems of a file in one pass over it (see [`line_cols`]), so that a file of many
//! errors costs time in proportion to its size, not to its size times their number.

use std::fmt;
use std::path::{Path, PathBuf};

/// How many problems of one file are kept and shown; the rest are counted in a last
/// one. Clang stops after 20 errors for the same reason: past a few dozen, the file is
/// not a daemon definition with mistakes but something else, and a million lines
/// about it help nobody.
pub const MAX_SHOWN: usize = 100;

/// How much of a value from a file a message quotes (see [`quote`]).
pub(super) const QUOTE_CHARS: usize = 64;

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The file is invalid.
    Error,
    /// Allowed, but probably not what was meant; only `check` prints it.
    Warning,
}

/// A problem found in a daemon file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub file: PathBuf,
    /// 1-based line and column (in characters); `(1, 1)` for the file as a whole.
    pub location: (usize, usize),
    /// Whether it makes the file invalid.
    pub severity: Severity,
    /// What is wrong, lowercase, no final full stop.
    pub message: String,
}

impl Diagnostic {
    /// An error at a line and column already worked out.
    pub fn located(file: &Path, location: (usize, usize), message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            location,
            severity: Severity::Error,
            message: message.into(),
        }
    }

    /// An error with the file as a whole (unreadable, badly named, unsafe owner), at
    /// `1:1`.
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Diagnostic::located(file, (1, 1), message)
    }

    /// Returns true if and only if this problem makes the file invalid.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `LINE:COL: message` without the file, for places that already name the file.
    pub fn short(&self) -> String {
        let (line, col) = self.location;
        format!("{line}:{col}: {}{}", self.prefix(), self.message)
    }

    fn prefix(&self) -> &'static str {
        match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (line, col) = self.location;
        write!(
            f,
            "{}:{line}:{col}: {}{}",
            crate::text::show_path(&self.file),
            self.prefix(),
            self.message
        )
    }
}

/// Turns byte offsets into 1-based lines and 1-based columns counted in characters,
/// returned in the order asked. The offsets are sorted first and the source is read
/// once, up to the last of them: linear in the source, whatever their number.
pub(super) fn line_cols(source: &str, offsets: &[usize]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..offsets.len()).collect();
    order.sort_by_key(|&i| offsets[i]);
    let mut out = vec![(1, 1); offsets.len()];
    let (mut line, mut col, mut at) = (1, 1, 0);
    for i in order {
        let mut offset = offsets[i].min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        if offset > at {
            for c in source[at..offset].chars() {
                if c == '\n' {
                    line += 1;
                    col = 1;
                } else {
                    col += 1;
                }
            }
            at = offset;
        }
        out[i] = (line, col);
    }
    out
}

/// The line and column of one offset (see [`line_cols`]).
pub(super) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    line_cols(source, &[offset])[0]
}

/// A value from a file as a message quotes it: at most [`QUOTE_CHARS`] characters,
/// then `...`. A message about a megabyte-long key must not be a megabyte long.
/// Control characters are left for the printer to escape (`text::escape`).
pub(super) fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 4), (1, 5));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 9), (2, 3));
        assert_eq!(line_col(src, 1000), (3, 1));
        // Out of order and inside a character: each answer as if asked alone.
        assert_eq!(
            line_cols(src, &[9, 0, 8, 6, 4]),
            [(2, 3), (1, 1), (2, 2), (2, 1), (1, 5)]
        );
    }

    #[test]
    fn many_offsets_in_a_large_file_cost_one_pass() {
        // 1 MiB on one line with an offset every other byte: quadratic work would take
        // minutes here.
        let src = "é".repeat(1 << 19);
        let offsets: Vec<usize> = (0..src.len()).step_by(2).collect();
        let started = std::time::Instant::now();
        let found = line_cols(&src, &offsets);
        assert_eq!(found.last(), Some(&(1, (1 << 19))));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn display_is_compiler_style_and_whole_file_problems_point_at_1_1() {
        let d = Diagnostic::located(Path::new("d/web.toml"), (2, 1), "bad");
        assert_eq!(d.to_string(), "d/web.toml:2:1: bad");
        let d = Diagnostic::file(Path::new("d/web.toml"), "unreadable");
        assert_eq!(d.to_string(), "d/web.toml:1:1: unreadable");
        let w = Diagnostic {
            severity: Severity::Warning,
            ..d
        };
        assert_eq!(w.short(), "1:1: warning: unreadable");
        assert!(!w.is_error());
    }

    #[test]
    fn quotes_are_cut_short() {
        assert_eq!(quote("web"), "web");
        let long = "é".repeat(1000);
        let quoted = quote(&long);
        assert_eq!(quoted.chars().count(), QUOTE_CHARS + 3);
        assert!(quoted.ends_with("..."));
    }
}

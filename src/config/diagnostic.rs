//! One problem in one file, located as `FILE:LINE:COL` like a compiler error. The
//! only place that turns a byte offset into a line and column.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A problem found in a daemon file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place in the file.
    pub location: Option<(usize, usize)>,
    /// What is wrong, lowercase, no final full stop.
    pub message: String,
}

impl Diagnostic {
    /// A problem at byte offset `span.start` of `source`.
    pub fn at(file: &Path, source: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            location: Some(line_col(source, span.start)),
            message: message.into(),
        }
    }

    /// A problem with the file as a whole (unreadable, badly named, unsafe owner).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            location: None,
            message: message.into(),
        }
    }
}

impl Diagnostic {
    /// `LINE:COL: message` without the file, for places that already name the file.
    pub fn short(&self) -> String {
        match self.location {
            Some((line, col)) => format!("{line}:{col}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.file.display(), self.message)
            }
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Turns a byte offset into a 1-based line and a 1-based column counted in characters.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
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
    }

    #[test]
    fn display_is_compiler_style() {
        let d = Diagnostic::at(Path::new("d/web.toml"), "x\ny", 2..3, "bad");
        assert_eq!(d.to_string(), "d/web.toml:2:1: bad");
        let d = Diagnostic::file(Path::new("d/web.toml"), "unreadable");
        assert_eq!(d.to_string(), "d/web.toml: unreadable");
    }
}

//! Everything printed: colour decisions (`style`), tables (`table`), the stable JSON
//! shapes (`json`) and error reports. Results go to standard output, errors and
//! hints to standard error.

pub mod json;
pub mod style;
pub mod table;

use std::io::{self, Write};

use crate::Error;

pub use style::Style;

/// Prints an error (and its hint) to standard error as `dmgr: MESSAGE`.
pub fn print_error(err: &Error) {
    let style = Style::for_stderr();
    let mut stderr = io::stderr().lock();
    let text = err.to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let _ = writeln!(stderr, "{} {first}", style.error("dmgr:"));
    for line in lines {
        let _ = writeln!(stderr, "{line}");
    }
    if let Some(hint) = err.hint() {
        let _ = writeln!(stderr, "{} {hint}", style.hint("hint:"));
    }
}

/// Prints a line to standard output, ignoring a closed pipe (`dmgr list | head`).
pub fn print_line(line: &str) {
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
}

/// Writes `text` to standard output; a broken pipe counts as success.
pub fn print_raw(text: &str) -> crate::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::Io {
            action: "write to",
            path: "standard output".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

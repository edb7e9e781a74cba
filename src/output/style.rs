//! The one place that decides whether to colour: `--color`, `NO_COLOR` and whether the
//! stream is a terminal are checked here and nowhere else.

use std::io::IsTerminal;
use std::sync::OnceLock;

use crate::cli::ColorChoice;
use crate::state::Status;

static CHOICE: OnceLock<ColorChoice> = OnceLock::new();

/// Returns true if and only if standard output is a terminal (`dmgr logs` escapes
/// the daemon's lines only there).
pub(crate) fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Records the user's `--color` choice for the rest of the process.
pub(crate) fn set_choice(choice: ColorChoice) {
    let _ = CHOICE.set(choice);
}

/// Whether to colour, and the colours for each kind of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Style {
    /// Whether escape codes are written at all.
    pub(crate) color: bool,
}

impl Style {
    /// The style for standard output.
    pub(crate) fn for_stdout() -> Style {
        Style::decide(std::io::stdout().is_terminal())
    }

    /// The style for standard error.
    pub(crate) fn for_stderr() -> Style {
        Style::decide(std::io::stderr().is_terminal())
    }

    fn decide(is_terminal: bool) -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match CHOICE.get().copied().unwrap_or(ColorChoice::Auto) {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_terminal && !no_color,
        };
        Style { color }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// The `dmgr:` prefix of an error.
    pub(crate) fn error(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    /// The `hint:` prefix.
    pub(crate) fn hint(self, text: &str) -> String {
        self.paint("1;36", text)
    }

    /// A daemon name in messages and log prefixes, coloured by its index.
    pub(crate) fn name(self, text: &str, index: usize) -> String {
        const CODES: [&str; 6] = ["36", "33", "35", "32", "34", "31"];
        self.paint(CODES[index % CODES.len()], text)
    }

    /// `text` in the colour of the status word `status`: green for running, yellow
    /// for the transitional states, red for failed and invalid, magenta for orphaned and unknown,
    /// plain for stopped (as pm2's table and `systemctl status` do).
    pub(crate) fn status(self, status: Status, text: &str) -> String {
        let code = match status {
            Status::Running | Status::Done => "32",
            Status::Starting | Status::Stopping | Status::Backoff => "33",
            Status::Failed | Status::Invalid => "31",
            // Magenta as orphaned: dmgr cannot vouch for it, someone should look.
            Status::Unknown => "35",
            Status::Orphaned => "35",
            Status::Stopped | Status::Waiting => return text.to_string(),
        };
        self.paint(code, text)
    }
}

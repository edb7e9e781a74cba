//! Renders `man/dmgr.1` from the clap definition, so the help text and the man page
//! never drift apart: clap_mangen renders the title, NAME, SYNOPSIS, DESCRIPTION and
//! global OPTIONS; this module renders one COMMANDS subsection per subcommand from the
//! same clap data; the sections clap knows nothing of (ENVIRONMENT, FILES, EXIT STATUS,
//! EXAMPLES, SECURITY, SEE ALSO) are hand-written roff in `man/sections/dmgr.1.roff`.
//! `tests/man.rs` fails when the committed page differs from this output.

use clap::{Arg, ArgAction, Command, CommandFactory};

/// The date in the page's title line; update it with the version.
const DATE: &str = "2026-11-24";

/// The hand-written sections, appended after the generated ones.
const EXTRA_SECTIONS: &str = include_str!("../man/sections/dmgr.1.roff");

/// Returns the roff text of `dmgr.1`.
pub fn render() -> Vec<u8> {
    let cmd = crate::cli::Cli::command();
    let man = clap_mangen::Man::new(cmd.clone())
        .title("DMGR")
        .section("1")
        .date(DATE)
        .source(format!("dmgr {}", env!("CARGO_PKG_VERSION")))
        .manual("User Commands");
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    let mut options = Vec::new();
    let _ = man.render_options_section(&mut options);
    // clap_mangen puts a blank line (an implicit `.sp`) between two `.br` before
    // the list of possible values, which lint tools flag.
    let options = String::from_utf8_lossy(&options).replace("\n.br\n\n.br\n", "\n.br\n");
    out.extend_from_slice(options.as_bytes());
    out.extend_from_slice(commands_section(&cmd).as_bytes());
    out.extend_from_slice(EXTRA_SECTIONS.as_bytes());
    out
}

/// One `.SS` subsection per visible subcommand: usage, long help, options; a
/// subcommand with subcommands of its own (`export`, `boot`) gets one for itself and
/// one for each of them.
fn commands_section(cmd: &Command) -> String {
    let mut roff = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        roff.push_str(&subsection("dmgr", sub));
        for nested in sub.get_subcommands().filter(|s| !s.is_hide_set()) {
            roff.push_str(&subsection(&format!("dmgr {}", sub.get_name()), nested));
        }
    }
    roff
}

/// The `.SS` subsection of `sub`, called as `PARENT NAME`.
fn subsection(parent: &str, sub: &Command) -> String {
    let mut roff = String::new();
    let mut usage = format!("{parent} {}", sub.get_name());
    if sub.has_subcommands() {
        usage.push_str(" COMMAND");
    }
    for arg in sub
        .get_arguments()
        .filter(|a| a.is_positional() && !a.is_hide_set())
    {
        let name = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map_or_else(|| arg.get_id().to_string(), |n| n.to_string());
        let many = matches!(arg.get_action(), ArgAction::Append);
        let shown = if many { format!("{name}...") } else { name };
        if arg.is_required_set() {
            usage.push_str(&format!(" {shown}"));
        } else {
            usage.push_str(&format!(" [{shown}]"));
        }
    }
    if sub
        .get_arguments()
        .any(|a| !a.is_positional() && !a.is_hide_set() && !a.is_global_set())
    {
        usage.push_str(" [OPTIONS]");
    }
    roff.push_str(&format!(".SS \"{}\"\n", escape(&usage)));
    let help = sub
        .get_long_about()
        .or(sub.get_about())
        .map(ToString::to_string)
        .unwrap_or_default();
    for (i, paragraph) in help.split("\n\n").enumerate() {
        if i > 0 {
            roff.push_str(".PP\n");
        }
        roff.push_str(&text(paragraph));
    }
    for arg in sub
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set() && !a.is_global_set())
    {
        roff.push_str(&option(arg));
    }
    roff
}

/// A `.TP` entry for one option: its flags, value and help.
fn option(arg: &Arg) -> String {
    let mut flags = Vec::new();
    if let Some(short) = arg.get_short() {
        flags.push(format!("\\fB\\-{short}\\fR"));
    }
    if let Some(long) = arg.get_long() {
        flags.push(format!("\\fB\\-\\-{}\\fR", escape(long)));
    }
    let mut head = flags.join(", ");
    if arg.get_action().takes_values() {
        if let Some(value) = arg.get_value_names().and_then(|v| v.first()) {
            head.push_str(&format!(" \\fI{}\\fR", escape(value)));
        }
    }
    let mut help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(ToString::to_string)
        .unwrap_or_default();
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if !help.is_empty() && !help.ends_with('.') {
        help.push('.');
    }
    if !defaults.is_empty() && arg.get_action().takes_values() {
        help.push_str(&format!(" Default: {}.", defaults.join(", ")));
    }
    format!(".TP\n{head}\n{}", text(&help))
}

/// Escapes text for roff and keeps lines from starting with a control character.
fn text(paragraph: &str) -> String {
    let mut out = String::new();
    for line in paragraph.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let line = escape(line);
        if line.starts_with('.') || line.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_keep_roff_control_characters_inert() {
        assert_eq!(text(".hidden -x"), "\\&.hidden \\-x\n");
        assert_eq!(escape("a\\b"), "a\\eb");
    }

    #[test]
    fn the_keeper_subcommand_stays_out_of_the_page() {
        // HOW IT WORKS says what ps(1) shows of a keeper; no section documents the
        // internal command lines as commands to type.
        let page = String::from_utf8(render()).unwrap();
        assert!(!page.contains(".SS \"dmgr __") && !page.contains("\\-\\-notify"));
        assert!(page.contains(".SS \"dmgr start"));
    }
}

//! The command lines people and scripts type most, `list` and `status`, parsed without
//! clap (issue 30).
//!
//! Building clap's command for dmgr (two dozen subcommands, each with its help text)
//! costs every call about half a million instructions and a hundred page faults
//! before it does anything: as much again as the dynamic loader and libc's start-up,
//! and a third of what a `list` of 100 daemons does. [`parse`] reads the plain forms
//! of `list` and `status` (with the global options) into the same [`Cli`] that clap
//! would make, and gives up, returning `None`, on anything else: help, a version, an
//! error, an unusual spelling (`--`, bundled short flags, an option given twice, a
//! value that starts with `-`), so that clap still parses, and reports, all of those
//! exactly as before. The unit tests compare the two parsers on many command lines.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use crate::cli::{Cli, ColorChoice, Command, ListArgs, StatusArgs};

/// The command line `args` (program name first) as clap would parse it, if it is a
/// plain `list` or `status`; `None` for anything else. `env` looks up an environment
/// variable (clap's `env = ...` of the global options).
pub fn parse(args: &[OsString], env: impl Fn(&str) -> Option<OsString>) -> Option<Cli> {
    let mut words = Vec::with_capacity(args.len());
    for arg in args.get(1..)? {
        words.push(arg.to_str()?);
    }
    let mut globals = Globals::default();
    let mut rest = words.into_iter();
    let subcommand = loop {
        let word = rest.next()?;
        if !globals.take(word, &mut rest)? {
            break word;
        }
    };
    let mut names = Vec::new();
    let mut json = false;
    let mut all = false;
    let mut lines: Option<usize> = None;
    let is_status = match subcommand {
        "list" => false,
        "status" => true,
        _ => return None,
    };
    while let Some(word) = rest.next() {
        if globals.take(word, &mut rest)? {
            continue;
        }
        match word {
            "--json" if !json => json = true,
            "--all" if is_status && !all => all = true,
            "-n" | "--lines" if is_status && lines.is_none() => {
                lines = Some(count(rest.next()?)?);
            }
            _ if is_status && lines.is_none() && word.starts_with("--lines=") => {
                lines = Some(count(&word["--lines=".len()..])?);
            }
            _ if is_status && lines.is_none() && word.starts_with("-n") => {
                lines = Some(count(&word["-n".len()..])?);
            }
            _ if !word.starts_with('-') && !word.is_empty() => names.push(word.to_string()),
            _ => return None,
        }
    }
    // clap: `--all` conflicts with names.
    if all && !names.is_empty() {
        return None;
    }
    let command = match is_status {
        false => Command::List(ListArgs { names, json }),
        true => Command::Status(StatusArgs {
            names,
            all,
            json,
            lines: lines.unwrap_or(10),
        }),
    };
    Some(Cli {
        config_dir: globals.path(globals.config_dir, "DMGR_CONFIG_DIR", &env)?,
        run_dir: globals.path(globals.run_dir, "DMGR_RUN_DIR", &env)?,
        color: globals.color.unwrap_or(ColorChoice::Auto),
        quiet: globals.quiet,
        command,
    })
}

/// The global options seen so far.
#[derive(Default)]
struct Globals<'a> {
    config_dir: Option<&'a str>,
    run_dir: Option<&'a str>,
    color: Option<ColorChoice>,
    quiet: bool,
}

impl<'a> Globals<'a> {
    /// Takes `word` (and its value from `rest`) if it is a global option: `Some(true)`
    /// if it was one, `Some(false)` if it is not, `None` to leave the line to clap (an
    /// option given twice, a missing or odd value).
    fn take(&mut self, word: &'a str, rest: &mut impl Iterator<Item = &'a str>) -> Option<bool> {
        let (option, inline) = match word.split_once('=') {
            Some((option, value)) if option.starts_with("--") => (option, Some(value)),
            _ => (word, None),
        };
        let (slot, value) = match option {
            "-q" | "--quiet" if inline.is_none() => {
                if self.quiet {
                    return None;
                }
                self.quiet = true;
                return Some(true);
            }
            "-c" | "--config-dir" => (&mut self.config_dir, inline),
            "--run-dir" => (&mut self.run_dir, inline),
            "--color" => {
                if self.color.is_some() {
                    return None;
                }
                self.color = Some(match inline.or_else(|| rest.next())? {
                    "auto" => ColorChoice::Auto,
                    "always" => ColorChoice::Always,
                    "never" => ColorChoice::Never,
                    _ => return None,
                });
                return Some(true);
            }
            // `-cDIR`.
            _ if word.len() > 2 && word.starts_with("-c") && !word.starts_with("--") => {
                (&mut self.config_dir, Some(&word[2..]))
            }
            _ => return Some(false),
        };
        if slot.is_some() {
            return None;
        }
        let value = value.or_else(|| rest.next())?;
        // A value clap would refuse or read otherwise (`-c --json`, `-c=DIR`).
        if value.is_empty() || value.starts_with('-') || value.starts_with('=') {
            return None;
        }
        *slot = Some(value);
        Some(true)
    }

    /// The directory given on the command line, else in the environment variable
    /// `var`: `Some(None)` when neither, `None` when the variable is set but not to a
    /// value clap would take (empty, or not UTF-8, which this parser leaves to clap).
    fn path(
        &self,
        given: Option<&str>,
        var: &str,
        env: &impl Fn(&str) -> Option<OsString>,
    ) -> Option<Option<PathBuf>> {
        if let Some(given) = given {
            return Some(Some(PathBuf::from(given)));
        }
        match env(var) {
            None => Some(None),
            Some(value) if value.is_empty() || value.to_str().is_none() => None,
            Some(value) => Some(Some(PathBuf::from(OsStr::new(&value)))),
        }
    }
}

/// A count of lines, written as plain digits; anything else is clap's to parse.
fn count(word: &str) -> Option<usize> {
    if word.is_empty() || word.len() > 9 || !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    word.parse().ok()
}

#[cfg(test)]
mod tests;

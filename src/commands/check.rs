//! `dmgr check`: validate every file in the config directory, and the `env_file`
//! files of the valid daemons, warn about users, groups and programs `start` would not
//! find on this host (`config::host`), and print every problem and warning as
//! `FILE:LINE:COL: message`, one a line on standard error with nothing before it (for
//! editors' problem matchers), then a summary; exit 2 when any file is invalid, else
//! say how many daemons are fine.

use super::Context;
use crate::config::{self, Diagnostic};
use crate::{output, Error, Result};

/// Runs `dmgr check`.
pub(super) fn run(ctx: &Context) -> Result<u8> {
    let loaded = config::load(&ctx.dirs)?;
    // An env file shared by several daemons is reported once.
    let mut env_files: Vec<config::env_file::EnvFile> = loaded
        .daemons
        .iter()
        .flat_map(|d| d.process.env_file.iter().cloned())
        .collect();
    env_files.sort_by(|a, b| (&a.path, a.optional).cmp(&(&b.path, b.optional)));
    env_files.dedup();
    let env_problems = config::env_file::check(&env_files);
    // Users, groups and programs that `start` would not find on this host.
    let host_problems: Vec<Diagnostic> = loaded
        .daemons
        .iter()
        .flat_map(config::host::problems)
        .collect();
    let mut problems: Vec<&Diagnostic> = loaded
        .invalid
        .iter()
        .flat_map(|i| &i.diagnostics)
        .chain(&loaded.warnings)
        .chain(&env_problems)
        .chain(&host_problems)
        .collect();
    problems.sort_by(|a, b| (&a.file, a.location).cmp(&(&b.file, b.location)));
    // A file named by several daemons, once required and once optional, is read twice.
    problems.dedup();
    for problem in &problems {
        output::print_stderr_line(&problem.to_string());
    }
    let warnings = problems.iter().filter(|p| !p.is_error()).count();
    let bad_env_files = {
        let mut bad: Vec<&std::path::Path> = env_problems
            .iter()
            .filter(|p| p.is_error())
            .map(|p| p.file.as_path())
            .collect();
        bad.dedup();
        bad.len()
    };
    if !loaded.invalid.is_empty() || bad_env_files > 0 {
        let errors = problems.len() - warnings;
        let files = loaded.invalid.len() + bad_env_files;
        return Err(Error::Usage(format!(
            "{errors} problem{} in {files} file{}",
            plural(errors),
            plural(files)
        )));
    }
    let count = loaded.daemons.len();
    let warnings = warnings + super::warn_of_stale_boot_unit(ctx, &loaded);
    let warned = match warnings {
        0 => String::new(),
        n => format!(" ({n} warning{})", plural(n)),
    };
    ctx.say(&format!(
        "{count} daemon{} ok in {}{warned}",
        plural(count),
        crate::text::show_path(&ctx.dirs.config_dir)
    ));
    Ok(0)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

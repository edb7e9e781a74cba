//! `dmgr check`: validate every file in the config directory and print every problem
//! and warning as `FILE:LINE:COL: message`, one a line on standard error with nothing
//! before it (for editors' problem matchers), then a summary; exit 2 when any file is
//! invalid, else say how many daemons are fine.

use super::Context;
use crate::config::{self, Diagnostic};
use crate::{output, Error, Result};

/// Runs `dmgr check`.
pub(super) fn run(ctx: &Context) -> Result<u8> {
    let loaded = config::load(&ctx.dirs)?;
    let mut problems: Vec<&Diagnostic> = loaded
        .invalid
        .iter()
        .flat_map(|i| &i.diagnostics)
        .chain(&loaded.warnings)
        .collect();
    problems.sort_by(|a, b| (&a.file, a.location).cmp(&(&b.file, b.location)));
    for problem in &problems {
        output::print_stderr_line(&problem.to_string());
    }
    let warnings = loaded.warnings.len();
    if !loaded.invalid.is_empty() {
        let errors = problems.len() - warnings;
        let files = loaded.invalid.len();
        return Err(Error::Usage(format!(
            "{errors} problem{} in {files} file{}",
            plural(errors),
            plural(files)
        )));
    }
    let count = loaded.daemons.len();
    let warned = match warnings {
        0 => String::new(),
        n => format!(" ({n} warning{})", plural(n)),
    };
    ctx.say(&format!(
        "{count} daemon{} ok in {}{warned}",
        plural(count),
        output::show_path(&ctx.dirs.config_dir)
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

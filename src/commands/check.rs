//! `dmgr check`: validate every file in the config directory and print every problem
//! as `FILE:LINE:COL: message` (exit 2), or how many daemons are fine.

use super::Context;
use crate::{config, Error, Result};

/// Runs `dmgr check`.
pub fn run(ctx: &Context) -> Result<u8> {
    if !ctx.dirs.config_dir.is_dir() {
        return Err(Error::Usage(format!(
            "config directory {} does not exist; create it or pass --config-dir DIR",
            ctx.dirs.config_dir.display()
        )));
    }
    let loaded = config::load(&ctx.dirs)?;
    if !loaded.invalid.is_empty() {
        return Err(Error::Config {
            diagnostics: loaded
                .invalid
                .iter()
                .flat_map(|i| i.diagnostics.clone())
                .collect(),
        });
    }
    let count = loaded.daemons.len();
    ctx.say(&format!(
        "{count} daemon{} ok in {}",
        if count == 1 { "" } else { "s" },
        ctx.dirs.config_dir.display()
    ));
    Ok(0)
}

//! The keeper.

use crate::cli::KeeperArgs;
use crate::config::Dirs;
use crate::Result;

/// Runs the keeper.
pub fn run(dirs: &Dirs, args: &KeeperArgs) -> Result<u8> {
    let _ = (dirs, args);
    Ok(0)
}

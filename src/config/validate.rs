//! Checks across files: `after` names that exist and form no cycle, and the order in
//! which `--all` starts and stops daemons.

use super::{Daemon, Loaded};

/// Moves daemons whose `after` names an unknown daemon or closes a cycle to `invalid`.
pub(super) fn check_after(loaded: &mut Loaded) {
    let _ = loaded;
}

/// Groups daemons into levels: each level only depends on earlier levels, so the
/// daemons within one level can start in parallel.
pub fn start_order<'a>(daemons: &[&'a Daemon]) -> Vec<Vec<&'a Daemon>> {
    vec![daemons.to_vec()]
}

/// The reverse of [`start_order`]: dependents stop before what they depend on.
pub fn stop_order<'a>(daemons: &[&'a Daemon]) -> Vec<Vec<&'a Daemon>> {
    let mut levels = start_order(daemons);
    levels.reverse();
    levels
}

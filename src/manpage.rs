//! Renders `man/dmgr.1` from the clap definition.

/// Returns the roff text of `dmgr.1`.
pub fn render() -> Vec<u8> {
    Vec::new()
}

//! What a notify daemon's keeper heard on its notify socket, kept in the state record
//! for `list` and `status`: the daemon's own status line and what was dropped.

use serde::{Deserialize, Serialize};

/// What the keeper of a `type = "notify"` daemon heard (all empty for another type).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifySeen {
    /// `NOTIFY_SOCKET` as the daemon finds it: a path, or `@` and an abstract name.
    #[serde(default)]
    pub socket: Option<String>,
    /// The daemon's last `STATUS=` line in this run.
    #[serde(default)]
    pub status_text: Option<String>,
    /// Messages dropped because their sender was not believed (`notify_access`).
    #[serde(default)]
    pub refused: u64,
    /// Lines or datagrams dropped as malformed.
    #[serde(default)]
    pub malformed: u64,
    /// The last refused sender and why, in words.
    #[serde(default)]
    pub last_refused: Option<String>,
}

impl NotifySeen {
    /// Returns true if and only if nothing was heard nor set up (not a notify daemon).
    pub fn is_empty(&self) -> bool {
        *self == NotifySeen::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_record_has_heard_nothing() {
        assert!(NotifySeen::default().is_empty());
        let old: NotifySeen = serde_json::from_str("{}").unwrap();
        assert!(old.is_empty());
    }
}

//! Whom the keeper believes on a daemon's notify socket (`notify_access`, promise 12):
//! a pure verdict on the facts the keeper gathered about a datagram's sender, from
//! its `SCM_CREDENTIALS` and /proc.
//!
//! The socket belongs to one daemon, so a sender needs no look-up among many
//! services: it is the daemon's main process, another process of the daemon, or a
//! stranger. The keeper reads the socket before it reaps children, so a descendant
//! that sent its message and exited at once (`systemd-notify --ready`, the race
//! systemd-notify(1) warns of) is still a zombie in the keeper's tree when its
//! message is judged.

use crate::config::NotifyAccess;

/// What the keeper knows about a datagram's sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sender {
    /// The sender's PID as the kernel gave it (`SCM_CREDENTIALS`); 0 when it has none
    /// in the keeper's PID namespace, or the datagram came without credentials.
    pub(crate) pid: i32,
    /// Whether that process is in the daemon's cgroup.
    pub(crate) in_cgroup: bool,
    /// Whether that process descends from the keeper (its parent, or a parent's
    /// parent, ... is the keeper, the subreaper of everything the daemon started).
    pub(crate) descends_from_keeper: bool,
}

/// Why a message was not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The sender is no process of the daemon's (or cannot be told apart from one
    /// that is not: no PID).
    Stranger,
    /// The sender is a process of the daemon's, but `notify_access = "main"` and it
    /// is not the main process.
    NotMain,
}

/// Returns the reason to drop a message from `sender`, or `None` to believe it, with
/// `main` the daemon's main process (`None` while there is none) and `access` the
/// daemon's `notify_access`.
pub(crate) fn refusal(access: NotifyAccess, main: Option<i32>, sender: Sender) -> Option<Refusal> {
    if sender.pid <= 0 {
        return Some(Refusal::Stranger);
    }
    if main == Some(sender.pid) {
        return None;
    }
    let own = sender.in_cgroup || sender.descends_from_keeper;
    match (own, access) {
        (false, _) => Some(Refusal::Stranger),
        (true, NotifyAccess::Main) => Some(Refusal::NotMain),
        (true, NotifyAccess::All) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(pid: i32, in_cgroup: bool, descends_from_keeper: bool) -> Sender {
        Sender {
            pid,
            in_cgroup,
            descends_from_keeper,
        }
    }

    #[test]
    fn the_main_process_is_believed_under_either_access() {
        for access in [NotifyAccess::Main, NotifyAccess::All] {
            assert_eq!(refusal(access, Some(100), sender(100, true, true)), None);
            // Its identity is its PID: the facts about it do not matter.
            assert_eq!(refusal(access, Some(100), sender(100, false, false)), None);
        }
    }

    #[test]
    fn another_process_of_the_daemon_is_believed_only_with_access_all() {
        for (in_cgroup, descends) in [(true, false), (false, true), (true, true)] {
            let other = sender(200, in_cgroup, descends);
            assert_eq!(refusal(NotifyAccess::All, Some(100), other), None);
            assert_eq!(
                refusal(NotifyAccess::Main, Some(100), other),
                Some(Refusal::NotMain)
            );
        }
    }

    #[test]
    fn a_stranger_is_never_believed() {
        let stranger = sender(300, false, false);
        for access in [NotifyAccess::Main, NotifyAccess::All] {
            assert_eq!(
                refusal(access, Some(100), stranger),
                Some(Refusal::Stranger)
            );
            assert_eq!(refusal(access, None, stranger), Some(Refusal::Stranger));
            // No PID in our namespace: not even the main process could be told apart.
            assert_eq!(
                refusal(access, Some(100), sender(0, true, true)),
                Some(Refusal::Stranger)
            );
        }
    }

    #[test]
    fn with_no_main_process_only_access_all_believes_the_daemons_own() {
        let own = sender(200, true, true);
        assert_eq!(refusal(NotifyAccess::All, None, own), None);
        assert_eq!(
            refusal(NotifyAccess::Main, None, own),
            Some(Refusal::NotMain)
        );
    }
}

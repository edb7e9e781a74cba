//! Main-PID hand-over: the daemon's main process exited, and another process of the
//! daemon's own may have taken its place (nginx's binary upgrade, haproxy `-sf`,
//! gunicorn's USR2). [`decide`] judges a candidate PID from some source (for `type =
//! "forking"` the daemon's own `pidfile`, read again; the notify protocol's `MAINPID=`
//! next) against what the keeper knows of its processes, as facts the shell reads for
//! it ([`Processes`]); the machine adopts, looks again shortly, or takes the exit for
//! the daemon's end as it always did.
//!
//! A candidate is followed only to a process of the daemon's own (SPEC promise 12):
//! in its cgroup or a descendant of the keeper, and, since the keeper learns of its
//! main process's end by waitpid(2), its child. A stranger the pidfile names (a stale
//! file whose PID was reused, a file someone else wrote) is the daemon's exit and is
//! never signalled: the stop that follows goes only to the daemon's own processes.

use std::time::{Duration, Instant};

use super::machine::{Exit, Starting};
use crate::procinfo::ProcId;

/// How long after the main process's exit the keeper waits for the pidfile to name
/// its successor when it names none yet (haproxy truncates its pidfile before it
/// tells the old process to finish, and writes the new PID only after its fork).
pub(crate) const GRACE: Duration = Duration::from_secs(2);
/// How often the keeper reads the pidfile again while it waits.
pub(crate) const LOOK_INTERVAL: Duration = Duration::from_millis(50);

/// What the keeper knows of a process a candidate PID names.
pub(crate) trait Processes {
    /// The live (not zombie) process `pid`, by identity.
    fn identity(&self, pid: i32) -> Option<ProcId>;
    /// Returns true if and only if `pid` is the daemon's own: in its cgroup, or a
    /// descendant of the keeper.
    fn is_own(&self, pid: i32) -> bool;
    /// Returns true if and only if `pid` is the keeper's child, which it can wait for.
    fn is_child(&self, pid: i32) -> bool;
}

/// How long the keeper may still wait for a successor to show up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Patience {
    /// Within [`GRACE`] of the exit, with processes of the daemon's still running.
    pub(crate) in_grace: bool,
    /// A `reload_command` runs: it may be starting the successor (haproxy `-sf`), so
    /// even a pidfile that still names the dead process may change.
    pub(crate) reload_running: bool,
}

/// Why no process took over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSuccessor {
    /// The source names no PID (no pidfile, an empty or unreadable one).
    Nothing,
    /// It still names the process that exited.
    SameProcess(i32),
    /// It names a PID with no live process.
    Gone(i32),
    /// It names a live process that is not the daemon's own: never signalled.
    Stranger(i32),
    /// It names a process of the daemon's own that is not (yet) the keeper's child.
    NotAChild(i32),
}

/// The verdict on a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Supervise this process as the daemon's main process from now on.
    Adopt(ProcId),
    /// Look again shortly: the successor may still name itself.
    Wait,
    /// The daemon ended, as if no hand-over had been tried.
    Exit(NoSuccessor),
}

/// Judges `candidate`, the PID some source names as the daemon's main process now
/// that `old` exited.
pub(crate) fn decide(
    candidate: Option<i32>,
    old: ProcId,
    processes: &impl Processes,
    patience: Patience,
) -> Verdict {
    let wait_or = |why: NoSuccessor, may_wait: bool| match may_wait {
        true => Verdict::Wait,
        false => Verdict::Exit(why),
    };
    let waiting = patience.in_grace || patience.reload_running;
    let Some(pid) = candidate.filter(|&pid| pid > 0) else {
        return wait_or(NoSuccessor::Nothing, waiting);
    };
    if pid == old.pid {
        // A crash leaves the pidfile naming the dead process: that is an exit at
        // once, unless a reload that may rewrite the file is under way.
        return wait_or(NoSuccessor::SameProcess(pid), patience.reload_running);
    }
    let Some(id) = processes.identity(pid) else {
        return wait_or(NoSuccessor::Gone(pid), patience.reload_running);
    };
    if !processes.is_own(pid) {
        return Verdict::Exit(NoSuccessor::Stranger(pid));
    }
    if !processes.is_child(pid) {
        // Its parent, a process of the daemon's, still runs; once that exits, the
        // keeper (a child subreaper) inherits it.
        return wait_or(NoSuccessor::NotAChild(pid), waiting);
    }
    Verdict::Adopt(id)
}

/// A hand-over the keeper waits for: the main process `old` exited with `exit` at
/// `since`; the phase before it was `starting` (the start-up window, if any).
#[derive(Debug, Clone)]
pub(crate) struct Waiting {
    pub(crate) old: ProcId,
    pub(crate) exit: Exit,
    pub(crate) since: Instant,
    pub(crate) next_look: Instant,
    pub(crate) starting: Option<Starting>,
}

impl Waiting {
    /// Returns true if and only if `now` is within [`GRACE`] of the exit.
    pub(crate) fn in_grace(&self, now: Instant) -> bool {
        now < self.since + GRACE
    }
}

impl NoSuccessor {
    /// Why the exit stands, for the `exited` event; `source` names where the
    /// candidate came from (`its pidfile /run/x.pid`).
    pub(crate) fn describe(self, source: &str) -> String {
        match self {
            NoSuccessor::Nothing => format!("{source} names no process"),
            NoSuccessor::SameProcess(pid) => format!("{source} still names pid {pid}"),
            NoSuccessor::Gone(pid) => format!("{source} names pid {pid}, which is not running"),
            NoSuccessor::Stranger(pid) => format!(
                "{source} names pid {pid}, which is not a process of the daemon's; it is left alone"
            ),
            NoSuccessor::NotAChild(pid) => format!(
                "{source} names pid {pid}, a process of the daemon's whose parent still runs"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made-up processes: `(pid, own, child)`.
    struct Fake(Vec<(i32, bool, bool)>);

    impl Processes for Fake {
        fn identity(&self, pid: i32) -> Option<ProcId> {
            self.0
                .iter()
                .any(|p| p.0 == pid)
                .then_some(ProcId { pid, start: 7 })
        }
        fn is_own(&self, pid: i32) -> bool {
            self.0.iter().any(|p| p.0 == pid && p.1)
        }
        fn is_child(&self, pid: i32) -> bool {
            self.0.iter().any(|p| p.0 == pid && p.2)
        }
    }

    const OLD: ProcId = ProcId { pid: 100, start: 1 };
    const IMPATIENT: Patience = Patience {
        in_grace: false,
        reload_running: false,
    };

    /// SPEC `type`: the pidfile names a new live process of the daemon's own, the
    /// keeper's child: it is adopted.
    #[test]
    fn a_new_process_of_the_daemons_own_is_adopted() {
        let processes = Fake(vec![(200, true, true)]);
        assert_eq!(
            decide(Some(200), OLD, &processes, IMPATIENT),
            Verdict::Adopt(ProcId { pid: 200, start: 7 })
        );
    }

    /// Promise 12: a stranger the pidfile names is the daemon's exit, at once, even
    /// while the keeper could wait: the keeper never adopts (nor so signals) it.
    #[test]
    fn a_stranger_is_the_daemons_exit() {
        let processes = Fake(vec![(1, false, false)]);
        let patient = Patience {
            in_grace: true,
            reload_running: true,
        };
        for patience in [IMPATIENT, patient] {
            assert_eq!(
                decide(Some(1), OLD, &processes, patience),
                Verdict::Exit(NoSuccessor::Stranger(1))
            );
        }
    }

    /// No PID named (no pidfile, an empty one): the daemon's exit, once the grace is
    /// over or nothing of the daemon's runs; within it, look again.
    #[test]
    fn nothing_named_is_the_daemons_exit() {
        let none = Fake(vec![]);
        assert_eq!(
            decide(None, OLD, &none, IMPATIENT),
            Verdict::Exit(NoSuccessor::Nothing)
        );
        assert_eq!(
            decide(Some(0), OLD, &none, IMPATIENT),
            Verdict::Exit(NoSuccessor::Nothing)
        );
        let in_grace = Patience {
            in_grace: true,
            reload_running: false,
        };
        assert_eq!(decide(None, OLD, &none, in_grace), Verdict::Wait);
    }

    /// The same dead PID (a crash: nobody rewrote the pidfile) is the daemon's exit at
    /// once, even within the grace; only a running `reload_command` is waited for.
    #[test]
    fn the_same_dead_pid_is_the_daemons_exit() {
        let none = Fake(vec![]);
        let in_grace = Patience {
            in_grace: true,
            reload_running: false,
        };
        for patience in [IMPATIENT, in_grace] {
            assert_eq!(
                decide(Some(OLD.pid), OLD, &none, patience),
                Verdict::Exit(NoSuccessor::SameProcess(OLD.pid))
            );
        }
        let reloading = Patience {
            in_grace: false,
            reload_running: true,
        };
        assert_eq!(decide(Some(OLD.pid), OLD, &none, reloading), Verdict::Wait);
    }

    /// A PID with no live process behind it is an exit (a reload may still be writing).
    #[test]
    fn a_dead_candidate_is_the_daemons_exit() {
        let none = Fake(vec![]);
        assert_eq!(
            decide(Some(300), OLD, &none, IMPATIENT),
            Verdict::Exit(NoSuccessor::Gone(300))
        );
    }

    /// A process of the daemon's own whose parent still runs is waited for while the
    /// keeper may wait (the keeper inherits it when its parent exits), else an exit.
    #[test]
    fn a_grandchild_is_waited_for_until_it_is_the_keepers_child() {
        let processes = Fake(vec![(400, true, false)]);
        let in_grace = Patience {
            in_grace: true,
            reload_running: false,
        };
        assert_eq!(decide(Some(400), OLD, &processes, in_grace), Verdict::Wait);
        assert_eq!(
            decide(Some(400), OLD, &processes, IMPATIENT),
            Verdict::Exit(NoSuccessor::NotAChild(400))
        );
    }
}

//! Every process the daemon started, for the keeper to stop and wait for: its main
//! process's group, the keeper's other descendants (a child subreaper inherits every
//! orphan of the daemon's, also those that left its session with setsid(2), like
//! PostgreSQL's backends), and the members of its cgroup where it has one.
//!
//! While the keeper lives, that is everything: only a process handed one of the
//! daemon's descriptors by some other route could hold its log pipe from outside the
//! tree. The log pipes find what is left once a keeper is dead (`client::leftovers`); scanning
//! all of `/proc` for them at the end of every drain cost `stop --all` of 300 daemons
//! ten times its time and found nothing the tree had not.
//!
//! Signals go by identity (a pidfd where the kernel has them), except the one to the
//! main process's group, which is sent only while the unreaped main process pins the
//! group's ID. Safe code only.

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::cgroup::Cgroup;
use crate::procinfo::{self, ProcId, Stat};
use crate::sys;

/// The daemon's processes, as seen from its keeper.
#[derive(Debug)]
pub(super) struct Tracked {
    /// The keeper itself: the root of the process tree.
    keeper: ProcId,
    /// The daemon's cgroup, if the keeper could create one.
    pub(super) cgroup: Option<Cgroup>,
    /// What got `stop_signal` in the current drain, so that each process gets it once.
    signalled: Vec<ProcId>,
    /// Whether the main process's group got `stop_signal` in the current drain.
    group_signalled: bool,
}

impl Tracked {
    /// Tracking for the keeper `keeper`, with the daemon's cgroup.
    pub(super) fn new(keeper: ProcId, cgroup: Option<Cgroup>) -> Tracked {
        Tracked {
            keeper,
            cgroup,
            signalled: Vec::new(),
            group_signalled: false,
        }
    }

    /// A new drain begins: every process may get the stop signal again.
    pub(super) fn begin_drain(&mut self) {
        self.signalled.clear();
        self.group_signalled = false;
    }

    /// The daemon's live processes in the keeper's tree and its cgroup now.
    pub(super) fn live(&self) -> Vec<ProcId> {
        let mut found = procinfo::descendants(self.keeper.pid);
        if let Some(cgroup) = &self.cgroup {
            for pid in cgroup.members() {
                if let Some(id) = ProcId::of(pid).filter(|id| !found.contains(id)) {
                    found.push(id);
                }
            }
        }
        found
    }

    /// Returns true if and only if nothing of the daemon's is left in the keeper's tree
    /// or cgroup. The keeper having no child at all is exact: a live descendant has a
    /// chain of live parents up to a child of ours, an orphan is handed to us before
    /// its parent becomes a zombie, and a zombie child still counts (its SIGCHLD is
    /// pending, and the keeper looks again once it has reaped it).
    pub(super) fn tree_is_empty(&self) -> bool {
        procinfo::children_of(self.keeper.pid).is_empty()
            && self.cgroup.as_ref().is_none_or(|c| !c.is_populated())
    }

    /// Sends `signal`, then SIGCONT, by identity to each live process of the daemon's
    /// in the process group `group`, whose leader is gone (reaped, it no longer pins
    /// the group's ID, so the group is not signalled as such).
    pub(super) fn signal_left_of_group(&self, group: i32, signal: Signal) {
        for process in self.live() {
            if Stat::read(process.pid).is_some_and(|s| s.pgrp == group) {
                for s in [signal, Signal::SIGCONT] {
                    let _ = sys::signal_process(process, s);
                }
            }
        }
    }

    /// Sends `signal` to the daemon's processes: to the main process's group `group`
    /// (pass it only while the main process is alive and unreaped) and to each other
    /// live process of the tree and cgroup. A stop signal goes to
    /// each process once per drain, followed by SIGCONT (a stopped process acts on it
    /// only once continued); SIGKILL goes to all every time, through `cgroup.kill`
    /// first, which also catches processes forked meanwhile.
    pub(super) fn signal(&mut self, signal: Signal, group: Option<i32>) {
        let kill = signal == Signal::SIGKILL;
        let signals: &[Signal] = if kill {
            &[Signal::SIGKILL]
        } else {
            &[signal, Signal::SIGCONT]
        };
        // Looked up before the group signal: whoever is in the group now gets it.
        let targets = self.live();
        let in_group = |process: &ProcId| {
            group.is_some_and(|g| Stat::read(process.pid).is_some_and(|s| s.pgrp == g))
        };
        if let Some(group) = group.filter(|_| kill || !self.group_signalled) {
            for &s in signals {
                let _ = nix::sys::signal::killpg(Pid::from_raw(group), s);
            }
            if !kill {
                self.group_signalled = true;
                let reached: Vec<ProcId> = targets.iter().copied().filter(in_group).collect();
                self.signalled.extend(reached);
            }
        }
        if kill {
            if let Some(cgroup) = &self.cgroup {
                cgroup.kill();
            }
        }
        for process in targets {
            let done = if kill {
                in_group(&process)
            } else {
                self.signalled.contains(&process)
            };
            if done {
                continue;
            }
            for &s in signals {
                let _ = sys::signal_process(process, s);
            }
            if !kill {
                self.signalled.push(process);
            }
        }
    }
}

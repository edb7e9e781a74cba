//! `type = "forking"`: the command daemonizes itself. The keeper waits for it to exit
//! 0, then adopts the daemon it left behind (reparented to the keeper, a child
//! subreaper) and supervises that process as the daemon; once the daemon is gone, it
//! removes the daemon's own pidfile if that still names the dead process.

use std::time::Instant;

use nix::sys::wait::WaitStatus;

use super::machine::{Child, Phase, Starting};
use super::{describe_wait, millis, Keeper, PROBE_INTERVAL};
use crate::config;
use crate::events::Kind;
use crate::procinfo::{self, ProcId};
use crate::state;

/// `type = "forking"`: the command runs, or has exited 0, and the keeper looks for the
/// daemon it left behind.
#[derive(Debug, Clone)]
pub(super) struct Adopting {
    /// When start fails if the daemon is not found (`ready_timeout` after the spawn).
    pub(super) ready_by: Instant,
    /// Whether the command has exited 0.
    pub(super) exited: bool,
    /// The keeper's children at the last look, and since when they have been these.
    pub(super) children: Vec<ProcId>,
    pub(super) since: Instant,
    /// When to look again (a pidfile appears without an event).
    pub(super) next_look: Instant,
}

impl Keeper {
    /// `type = "forking"`: the command ended. Exit 0 means the daemon is up somewhere
    /// below us; anything else fails this run.
    pub(super) fn on_command_exit(&mut self, status: WaitStatus) {
        if let Some(child) = &mut self.child {
            child.exited = true;
        }
        self.record.daemon = None;
        if let Some(pidfile) = &mut self.pidfile {
            pidfile.clear();
        }
        self.save();
        let Phase::Adopting(adopting) = &mut self.phase else {
            // A stop is under way: nothing to adopt.
            return;
        };
        let now = Instant::now();
        if matches!(status, WaitStatus::Exited(_, 0)) {
            adopting.exited = true;
            adopting.since = now;
            self.look_for_daemon(now);
            return;
        }
        self.pump_logs();
        self.fail_forking(format!(
            "the command ended ({}) instead of exiting 0 once the daemon was up",
            describe_wait(status)
        ));
    }

    /// A forking daemon's start went wrong: this run fails like any failed start.
    fn fail_forking(&mut self, reason: String) {
        let next = self.fail_run(format!("type = \"forking\": {reason}"));
        self.drain(next);
    }

    /// `type = "forking"`: looks for the daemon the command left behind (reparented to
    /// us, the subreaper) and adopts it: the process the daemon's own pidfile names,
    /// once it is our child, or without a pidfile the only child we have, once it has
    /// been the only one for `start_wait`. A double fork's middle process, our child
    /// for an instant, is never taken for the daemon: it is not the one in the pidfile,
    /// and it does not last.
    pub(super) fn look_for_daemon(&mut self, now: Instant) {
        let Phase::Adopting(mut adopting) = self.phase.clone() else {
            return;
        };
        let timeout = config::units::format_duration(self.daemon.supervision.ready_timeout);
        if !adopting.exited {
            if now >= adopting.ready_by {
                self.fail_forking(format!(
                    "the command did not exit within ready_timeout ({timeout})"
                ));
            }
            return;
        }
        let children: Vec<ProcId> = procinfo::children_of(self.record.keeper.pid)
            .into_iter()
            .filter_map(ProcId::of)
            .collect();
        if children.is_empty() {
            self.fail_forking("the command exited 0 but left no process behind".into());
            return;
        }
        adopting.next_look = now + PROBE_INTERVAL;
        let found = match &self.daemon.forking_pidfile {
            Some(path) => crate::pidfile::read_pid(path)
                .and_then(|pid| children.iter().find(|c| c.pid == pid))
                .map(|&id| (id, now)),
            None => {
                if children != adopting.children {
                    adopting.children = children.clone();
                    adopting.since = now;
                }
                let settle_at = adopting.since + self.daemon.supervision.start_wait;
                adopting.next_look = adopting.next_look.min(settle_at.max(now));
                match children[..] {
                    _ if now < settle_at => None,
                    [only] => Some((only, adopting.since)),
                    _ => {
                        self.fail_forking(format!(
                            "the command left {} processes behind; set `pidfile` to the file the program writes, so that dmgr knows which one is the daemon",
                            children.len()
                        ));
                        return;
                    }
                }
            }
        };
        match (found, &self.daemon.forking_pidfile) {
            (Some((id, since)), _) => self.adopt(id, since, adopting.ready_by),
            (None, Some(path)) if now >= adopting.ready_by => {
                let reason = match crate::pidfile::read_pid(path) {
                    None => format!(
                        "pidfile {} did not appear within ready_timeout ({timeout})",
                        path.display()
                    ),
                    Some(pid) => format!(
                        "pidfile {} names pid {pid}, which is not a process the command left behind",
                        path.display()
                    ),
                };
                self.fail_forking(reason);
            }
            (None, None) if now >= adopting.ready_by => self.fail_forking(format!(
                "the processes the command left kept changing until ready_timeout ({timeout})"
            )),
            (None, _) => self.phase = Phase::Adopting(adopting),
        }
    }

    /// Supervises `id`, found at `since`, as the daemon from now on.
    fn adopt(&mut self, id: ProcId, since: Instant, ready_by: Instant) {
        self.child = Some(Child {
            id,
            adopted: true,
            started: since,
            exited: false,
        });
        if let Some(pidfile) = &mut self.pidfile {
            let _ = pidfile.write_pid(id.pid);
        }
        self.record.daemon = Some(id);
        self.record.started_at_ms = Some(state::now_ms().saturating_sub(millis(since.elapsed())));
        let mut started = self.event(Kind::Started).pid(id.pid);
        let found = match &self.daemon.forking_pidfile {
            Some(path) => format!(
                "named by its pidfile {} (type = \"forking\")",
                crate::text::show_path(path)
            ),
            None => "left behind by the command (type = \"forking\")".to_string(),
        };
        started.message = Some(match self.cgroup_note.take() {
            Some(note) => format!("{found}; {note}"),
            None => found,
        });
        self.record_event(started);
        self.save();
        self.phase = Phase::Up(Some(Starting::new(
            since,
            ready_by,
            &self.daemon.supervision,
        )));
        self.on_timers();
    }

    /// A forking daemon's own pidfile still names its dead process: the program had no
    /// chance to remove it (SIGKILL skips its exit handlers), and the textbook daemon
    /// refuses to start while it exists. Removed as systemd removes `PIDFile=`; returns
    /// what was done, for the `exited` event.
    pub(super) fn remove_forking_pidfile(&mut self, dead: i32) -> Option<String> {
        let path = self.daemon.forking_pidfile.as_ref()?;
        if crate::pidfile::read_pid(path) != Some(dead) {
            return None;
        }
        Some(match std::fs::remove_file(path) {
            Ok(()) => format!(
                "removed {}, which named the dead pid {dead}",
                path.display()
            ),
            Err(e) => format!("cannot remove {}: {e}", path.display()),
        })
    }
}

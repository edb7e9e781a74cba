//! The end of a run: a reaped child matched to what it was, the daemon's exit, the
//! main-PID hand-over of a forking daemon (see [`super::super::handover`]), and the
//! restart policy's verdict on how the run ended.

use std::time::Duration;

use super::super::handover::{decide, NoSuccessor, Patience, Verdict, Waiting, LOOK_INTERVAL};
use super::super::policy::{self, Decision, Policy, RunEnd};
use super::{
    on_exit, round_ms, Child, Effect, Exit, ExitStep, Facts, Machine, Next, Now, Phase, Reloading,
    Role,
};
use crate::config::units::format_duration;
use crate::events::Kind;
use crate::procinfo::ProcId;
use crate::state::{Reason, Status, HISTORY_LEN};
use crate::text::show_path;

/// What became of the main process's exit when the keeper looked for a successor.
enum Outcome {
    /// Another process took over, or the keeper looks again shortly.
    Done,
    /// The daemon ended; the note says why no process took over, where that is news.
    Ended(Option<String>),
}

impl Machine {
    /// The child `pid` was reaped: the daemon, a probe, a command the keeper ran, or an
    /// orphan of the daemon's (nothing to do: a drain looks at what is left).
    pub(super) fn on_reaped(
        &mut self,
        pid: i32,
        exit: Exit,
        output: Vec<String>,
        now: Now,
        facts: &impl Facts,
    ) {
        match self.role_of(pid) {
            Role::Main => self.on_daemon_exit(exit, now, facts),
            Role::ReloadCommand => self.on_reload_exit(&exit, output, now, facts),
            Role::Probe => self.on_probe_exit(&exit, now, facts),
            Role::StopCommand => self.on_stop_command_exit(&exit, now, facts),
            Role::Hook => self.on_hook_exit(&exit, output, now, facts),
            Role::Other => {}
        }
        // An exit may have handed the keeper a forking daemon's process.
        if matches!(self.phase, Phase::Adopting(_)) {
            self.look_for_daemon(now, facts);
        }
    }

    /// The main process ended: for a forking daemon's command, see whether it left the
    /// daemon; for the daemon, see whether another process of its own took over.
    fn on_daemon_exit(&mut self, exit: Exit, now: Now, facts: &impl Facts) {
        let Some(main) = self.main.as_mut() else {
            return;
        };
        if !main.adopted {
            return self.on_command_exit(&exit, now, facts);
        }
        main.exited = true;
        let old = main.id;
        let may_hand_over = self.forking_pidfile.is_some() || self.named_main().is_some();
        if may_hand_over && self.phase.is_up() {
            let waiting = Waiting {
                old,
                exit: exit.clone(),
                since: now.at,
                next_look: now.at + LOOK_INTERVAL,
                starting: self.phase.starting(),
            };
            if let Outcome::Ended(note) = self.judge_successor(waiting, now, facts) {
                self.on_run_end(&exit, note, now, facts);
            }
            return;
        }
        self.on_run_end(&exit, None, now, facts);
    }

    /// Looks again for the process that took over, while the keeper waits for one.
    pub(super) fn look_for_successor(&mut self, now: Now, facts: &impl Facts) {
        let Phase::HandingOver(waiting) = &self.phase else {
            return;
        };
        let waiting = waiting.clone();
        let exit = waiting.exit.clone();
        if let Outcome::Ended(note) = self.judge_successor(waiting, now, facts) {
            self.on_run_end(&exit, note, now, facts);
        }
    }

    /// A stop or another end cuts the wait for a successor short: the exit stands.
    pub(super) fn give_up_hand_over(&mut self, now: Now, facts: &impl Facts) {
        if let Phase::HandingOver(waiting) = &self.phase {
            let waiting = waiting.clone();
            self.phase = Phase::up(waiting.starting);
            self.on_run_end(&waiting.exit, None, now, facts);
        }
    }

    /// Reads the daemon's pidfile again and judges what it names (see [`decide`]).
    fn judge_successor(&mut self, mut waiting: Waiting, now: Now, facts: &impl Facts) -> Outcome {
        // A forking daemon's own pidfile, read again; or the process a notify daemon
        // named in `MAINPID=` while its parent still ran.
        let (candidate, source) = match (&self.forking_pidfile, self.named_main()) {
            (Some(path), _) => (
                facts.named_pid(),
                format!("its pidfile {}", show_path(path)),
            ),
            (None, Some(pid)) => (Some(pid), "MAINPID=".to_string()),
            (None, None) => return Outcome::Ended(None),
        };
        let patience = Patience {
            in_grace: waiting.in_grace(now.at) && !facts.tree_is_empty(),
            reload_running: matches!(self.reload, Some(Reloading::Running { .. })),
        };
        match decide(candidate, waiting.old, facts, patience) {
            Verdict::Adopt(id) => {
                self.adopt_successor(id, &waiting, &source);
                Outcome::Done
            }
            Verdict::Wait => {
                waiting.next_look = now.at + LOOK_INTERVAL;
                self.phase = Phase::HandingOver(waiting);
                Outcome::Done
            }
            Verdict::Exit(why) => {
                self.phase = Phase::up(waiting.starting);
                Outcome::Ended(match why {
                    // The usual end of a forking daemon: nothing to add.
                    NoSuccessor::Nothing | NoSuccessor::SameProcess(_) => None,
                    _ => Some(why.describe(&source)),
                })
            }
        }
    }

    /// `id` took over from the main process that exited: supervised from now on, with
    /// no restart counted; the run goes on (its start-up window too, if any).
    fn adopt_successor(&mut self, id: ProcId, waiting: &Waiting, source: &str) {
        let started = self.main.map_or(waiting.since, |c| c.started);
        self.main = Some(Child {
            id,
            adopted: true,
            started,
            exited: false,
        });
        self.emit(Effect::WritePid { pid: id.pid });
        self.phase = Phase::up(waiting.starting);
        self.save();
        let message = format!(
            "pid {} ended ({}); {source} names pid {}, which took over",
            waiting.old.pid,
            waiting.exit.describe(),
            id.pid
        );
        self.record(
            self.event(Kind::MainPidChanged)
                .pid(id.pid)
                .message(message),
        );
    }

    /// The daemon's main process has ended with `exit` and no other took over (`note`
    /// says why not, where a hand-over was tried): record the exit, and stop what is
    /// left before the restart policy's verdict.
    fn on_run_end(&mut self, exit: &Exit, note: Option<String>, now: Now, facts: &impl Facts) {
        // Whatever the daemon wrote before it died is already in the pipe.
        self.emit(Effect::PumpLogs);
        self.emit(Effect::EndLogRun);
        let Some(main) = self.main else {
            return;
        };
        // A reload under way fails with the run.
        self.notify_on_exit(now, facts);
        let ran = now.at.saturating_duration_since(main.started);
        let record = exit.record(ran, now.wall_ms);
        let mut message = format!("after {}", format_duration(round_ms(ran)));
        if let Some(note) = note {
            message = format!("{message}; {note}");
        }
        let mut exited = self.event(Kind::Exited).pid(main.id.pid).message(message);
        exited.exit_code = record.code;
        exited.signal = record.signal.clone();
        let dead = self.forking_pidfile.as_ref().map(|_| main.id.pid);
        self.emit(Effect::RecordExit {
            event: exited,
            dead,
        });
        self.emit(Effect::ClearPidfile);
        self.last_exit = Some(record.clone());
        self.history.push(record.clone());
        let excess = self.history.len().saturating_sub(HISTORY_LEN);
        self.history.drain(..excess);
        let next = match on_exit(&self.phase, self.reporting) {
            ExitStep::Decided => {
                self.save();
                return;
            }
            ExitStep::DrainStopped => Next::stopped(),
            ExitStep::FailStart => {
                let within = match self.awaits_own_word() {
                    true => format!("before it was ready ({})", self.own_word_missing()),
                    false => format!("within start_wait ({})", format_duration(self.s.start_wait)),
                };
                let mut why = format!("exited {within}: {}", record.describe());
                if let Some(errno) = self.said_errno() {
                    why = format!("{why}; it said {errno}");
                }
                Next::start_failed(why)
            }
            // `STOPPING=1`: the daemon stopped by itself; nothing restarts it.
            ExitStep::Judge if self.said_stopping() => Next::Finish {
                status: match record.is_success() {
                    true => Status::Stopped,
                    false => Status::Failed,
                },
                error: None,
                reason: Reason::Exited,
            },
            ExitStep::Judge if self.kind == crate::config::DaemonType::Oneshot => {
                self.oneshot_end(&record, main.id.pid, ran)
            }
            ExitStep::Judge => self.decide(record.is_success(), ran),
        };
        self.drain(next, now, facts);
    }

    /// A run failed before it was up (exec error, readiness timeout): the first start
    /// fails, and the end notes why; a restart counts as a quick failure.
    pub(super) fn fail_run(&mut self, reason: String) -> Next {
        if self.reporting {
            return Next::start_failed(reason);
        }
        // The `restarting` (or `gave-up`) event that follows says why.
        self.error = Some(reason);
        self.decide(false, Duration::ZERO)
    }

    /// The restart policy's verdict on a run that ended so, after `ran`.
    pub(super) fn decide(&mut self, success: bool, ran: Duration) -> Next {
        let policy = Policy {
            restart: self.s.restart,
            restart_delay: self.s.restart_delay,
            max_restarts: self.s.max_restarts,
        };
        match policy::on_exit(&policy, &mut self.tally, RunEnd { success, ran }) {
            Decision::Restart(delay) => Next::Restart(delay),
            Decision::Finish { failed } => Next::Finish {
                status: if failed {
                    Status::Failed
                } else {
                    Status::Stopped
                },
                error: None,
                reason: Reason::Exited,
            },
            Decision::GiveUp => Next::Finish {
                status: Status::Failed,
                error: Some(format!(
                    "gave up after {} quick failures in a row",
                    self.tally.quick_failures
                )),
                reason: Reason::GaveUp,
            },
        }
    }
}

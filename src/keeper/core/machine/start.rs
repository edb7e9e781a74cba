//! The start of a run: the spawn and its answers, the start-up window (`start_wait`,
//! readiness probes, `ready_timeout`), a forking daemon's adoption, and the moment the
//! daemon is up; and the timers of every phase, which a wake-up runs.

use std::time::Instant;

use super::super::adoption::{self, Look};
use super::{
    is_adopted_at_spawn, notify, on_timer, probe_failed, Child, Effect, Escalation, Facts, Machine,
    Next, Now, Phase, ProbeRun, StartStep, Starting, Tick, RECORD_RETRY,
};
use crate::config::units::{format_duration, Signal};
use crate::config::ReadyCheck;
use crate::events::Kind;
use crate::keeper::report::Report;
use crate::procinfo::ProcId;
use crate::text::show_path;

impl Machine {
    /// The daemon's process `id` waits at its start gate: it is the main process from
    /// now on (the record that names it is written before the gate opens).
    pub(super) fn on_forked(&mut self, id: ProcId, now: Now) {
        self.main = Some(Child {
            id,
            adopted: is_adopted_at_spawn(self.kind),
            started: now.at,
            exited: false,
        });
        self.started_at_ms = Some(now.wall_ms);
        self.error = None;
        self.ran = true;
        self.phase = Phase::spawned(self.kind, now.at, &self.s);
        self.notify_on_spawn();
        self.gens.on_spawned();
    }

    /// The daemon's process exec'd its command.
    pub(super) fn on_spawned(&mut self, now: Now, facts: &impl Facts) {
        // A forking daemon's `started` is written when it is adopted.
        if let Some(main) = self.main.filter(|_| is_adopted_at_spawn(self.kind)) {
            let mut started = self.event(Kind::Started).pid(main.id.pid);
            started.message = self.cgroup_note.take();
            // While two generations run, each event says whose it is.
            if let Some(which) = self.gens.next_beside() {
                started = started.and_message(which);
            }
            self.record(started);
        }
        if self.s.start_wait.is_zero() {
            self.timers_due(now, facts);
        }
    }

    /// The daemon could not be started. A restart that could not be recorded (a full
    /// run disk) is tried again soon, without counting it: no copy runs that no record
    /// names, but the daemon did not fail either.
    pub(super) fn on_spawn_failed(
        &mut self,
        reason: String,
        unrecorded: bool,
        now: Now,
        facts: &impl Facts,
    ) {
        // The child exits by itself; its end matches no daemon now.
        self.main = None;
        self.emit(Effect::ClearPidfile);
        if unrecorded && !self.reporting {
            self.phase = Phase::Backoff {
                until: now.at + RECORD_RETRY,
                next_restart_ms: None,
            };
            return;
        }
        if self.gens.is_starting_next() {
            return self.roll_back(format!("could not be started: {reason}"), now, facts);
        }
        let next = self.fail_run(reason);
        self.drain(next, now, facts);
    }

    /// A wake-up: what is due runs, then a drain looks at what is left.
    pub(super) fn on_tick(&mut self, now: Now, facts: &impl Facts) {
        self.timers_due(now, facts);
        self.look_at_drain(now, facts);
    }

    /// Runs what is due at `now`: the checks, `reload_command`'s deadline, the probe's
    /// deadline, then the phase's own timer.
    pub(super) fn timers_due(&mut self, now: Now, facts: &impl Facts) {
        self.retiring_due(now);
        self.checks_due(now, facts);
        self.reload_due(now);
        self.notify_due(now, facts);
        self.hook_due(now);
        self.schedule_due(now, facts);
        if self.probe.is_some_and(|p| now.at >= p.deadline) {
            self.kill_probe();
        }
        let tick = match on_timer(&self.phase, now.at, &self.s, self.probe.is_some()) {
            // The daemon's own word (`READY=1`, a line, a newline) comes before any
            // probe; `ready = { log }` and `{ fd }` are that word, never a probe.
            Tick::Start(StartStep::Up | StartStep::Probe { .. } | StartStep::Wait)
                if self.awaits_own_word() =>
            {
                let late = self.phase.starting().is_some_and(|s| now.at >= s.ready_by);
                Tick::Start(match late {
                    true => StartStep::NotReady,
                    false => StartStep::Wait,
                })
            }
            Tick::Start(StartStep::Probe { .. })
                if self.s.ready.as_ref().is_some_and(notify::is_own_word) =>
            {
                Tick::Start(StartStep::Up)
            }
            tick => tick,
        };
        match tick {
            Tick::Nothing | Tick::Start(StartStep::Wait) => {}
            Tick::Look => self.look_for_daemon(now, facts),
            Tick::LookForSuccessor => self.look_for_successor(now, facts),
            Tick::Spawn => self.begin_run(self.started_at_ms.is_some(), now),
            Tick::StopCommandOver { pid } => {
                if let Some(pid) = pid {
                    // Our unreaped child, the leader of a session of its own: neither
                    // its PID nor its group's ID can have been reused.
                    self.emit(Effect::KillCommand { pid });
                    let timeout = format_duration(self.s.stop_timeout);
                    let killed = self.event(Kind::Killed).pid(pid).signal("KILL");
                    self.record(
                        killed.message(format!("stop_command still running after {timeout}")),
                    );
                }
                self.drain(Next::stopped(), now, facts);
            }
            Tick::Kill => {
                // Look first: what is gone needs nothing, and is no event.
                if facts.anything_live() {
                    let killed = self.event(Kind::Killed).signal("KILL").message(format!(
                        "still running {} after {}",
                        format_duration(self.s.stop_timeout),
                        self.s.stop_signal
                    ));
                    self.record(killed);
                }
                let main = self.unreaped_main();
                self.emit(Effect::SignalAll {
                    signal: Signal::KILL,
                    main,
                });
                if let Phase::Draining { escalation, .. } = &mut self.phase {
                    *escalation = Escalation::Killed;
                }
            }
            Tick::Start(StartStep::Up) => self.on_up(now, facts),
            Tick::Start(StartStep::NotReady) => {
                self.kill_probe();
                let mut reason = format!(
                    "not ready within ready_timeout ({})",
                    format_duration(self.s.ready_timeout)
                );
                if self.awaits_own_word() {
                    reason = format!("{reason}: {}", self.own_word_missing());
                }
                if self.gens.is_starting_next() {
                    return self.roll_back(format!("was {reason}"), now, facts);
                }
                let next = self.fail_run(reason);
                // The daemon is still up: the drain sends it stop_signal, then SIGKILL.
                self.drain(next, now, facts);
            }
            Tick::Start(StartStep::Probe { deadline }) => {
                if let Some(check) = self.s.ready.clone() {
                    self.start_probe(check, deadline);
                }
            }
        }
    }

    /// Asks for one attempt of `check`, to end by `deadline`.
    pub(super) fn start_probe(&mut self, check: ReadyCheck, deadline: Instant) {
        self.probe = Some(ProbeRun {
            id: None,
            deadline,
            killed: false,
        });
        self.emit(Effect::StartProbe { check, deadline });
    }

    /// The probe asked for runs as `id`: on record before it runs, as the daemon is, so
    /// that a keeper killed now leaves no probe that nothing names.
    pub(super) fn on_probe_started(&mut self, id: ProcId) {
        if let Some(probe) = &mut self.probe {
            probe.id = Some(id);
            self.save();
        }
    }

    /// Kills the running probe's process group, if a probe runs.
    pub(super) fn kill_probe(&mut self) {
        let Some(probe) = self.probe.as_mut().filter(|p| !p.killed) else {
            return;
        };
        probe.killed = true;
        if let Some(id) = probe.id {
            self.emit(Effect::KillProbe { pid: id.pid });
        }
    }

    /// The probe process ended: its result, unless it was killed. Reaped, it no longer
    /// pins its group's ID, so what is left of it is stopped with the daemon's tree.
    pub(super) fn on_probe_exit(&mut self, exit: &super::Exit, now: Now, facts: &impl Facts) {
        let Some(probe) = self.probe.take() else {
            return;
        };
        self.save();
        let passed = (!probe.killed).then(|| exit.is_success());
        self.on_probe_result(passed, now, facts);
    }

    /// A probe ended: `Some(passed)`, or `None` when it was killed at its deadline. While
    /// the daemon is up it was a liveness check; while it starts, a readiness check:
    /// ready, or another attempt after [`super::PROBE_INTERVAL`].
    pub(super) fn on_probe_result(&mut self, passed: Option<bool>, now: Now, facts: &impl Facts) {
        if matches!(self.phase, Phase::Running) {
            self.on_health_result(passed, now, facts);
            return;
        }
        let Phase::Starting(starting) = &mut self.phase else {
            return;
        };
        match passed {
            Some(true) => self.on_up(now, facts),
            Some(false) => probe_failed(starting, now.at),
            None => {}
        }
    }

    /// The daemon is past `start_wait` and ready: up, and `dmgr start` is told.
    fn on_up(&mut self, now: Now, facts: &impl Facts) {
        self.phase = Phase::Running;
        self.resume_checks(now, facts);
        self.save();
        let Some(main) = self.main else {
            return;
        };
        // A restart whose old generation ended meanwhile waits for this.
        let answer = self.answer_up(main.id.pid);
        if self.s.ready.is_some() || self.notify.is_some() || answer.is_some() {
            let mut ready = self.event(Kind::Ready).pid(main.id.pid);
            if self.notify.is_some() {
                ready = ready.message("the daemon said READY=1");
            }
            if let Some(which) = self.gens.next_beside() {
                ready = ready.and_message(which);
            }
            if let Some((request, message)) = answer {
                ready = ready.request(request).and_message(message);
            }
            self.record(ready);
        }
        if self.reporting {
            self.reporting = false;
            self.emit(Effect::Report(Report::Started { pid: main.id.pid }));
        }
        self.on_next_generation_up(now);
    }

    /// `type = "forking"`: the command ended. Exit 0 means the daemon is up somewhere
    /// below the keeper; anything else fails this run.
    pub(super) fn on_command_exit(&mut self, exit: &super::Exit, now: Now, facts: &impl Facts) {
        if let Some(main) = &mut self.main {
            main.exited = true;
        }
        self.emit(Effect::ClearPidfile);
        self.save();
        let Phase::Adopting(adopting) = &mut self.phase else {
            // A stop is under way: nothing to adopt.
            return;
        };
        if exit.is_success() {
            adopting.exited = true;
            adopting.since = now.at;
            self.look_for_daemon(now, facts);
            return;
        }
        self.emit(Effect::PumpLogs);
        self.fail_forking(
            format!(
                "the command ended ({}) instead of exiting 0 once the daemon was up",
                exit.describe()
            ),
            now,
            facts,
        );
    }

    /// `type = "forking"`: looks for the daemon the command left behind (see
    /// [`adoption::look`]) and adopts it once found.
    pub(super) fn look_for_daemon(&mut self, now: Now, facts: &impl Facts) {
        let Phase::Adopting(adopting) = &self.phase else {
            return;
        };
        let mut adopting = adopting.clone();
        let pidfile = self.forking_pidfile.clone();
        match adoption::look(&mut adopting, now.at, &self.s, pidfile.as_deref(), facts) {
            Look::Adopt { id, since } => self.adopt(id, since, adopting.ready_by, now, facts),
            Look::Wait => self.phase = Phase::Adopting(adopting),
            Look::Fail(reason) => self.fail_forking(reason, now, facts),
        }
    }

    /// Supervises `id`, found at `since`, as the daemon from now on.
    fn adopt(
        &mut self,
        id: ProcId,
        since: Instant,
        ready_by: Instant,
        now: Now,
        facts: &impl Facts,
    ) {
        self.main = Some(Child {
            id,
            adopted: true,
            started: since,
            exited: false,
        });
        self.emit(Effect::WritePid { pid: id.pid });
        let up_for = super::millis(now.at.saturating_duration_since(since));
        self.started_at_ms = Some(now.wall_ms.saturating_sub(up_for));
        let found = match &self.forking_pidfile {
            Some(path) => format!(
                "named by its pidfile {} (type = \"forking\")",
                show_path(path)
            ),
            None => "left behind by the command (type = \"forking\")".to_string(),
        };
        let message = match self.cgroup_note.take() {
            Some(note) => format!("{found}; {note}"),
            None => found,
        };
        self.record(self.event(Kind::Started).pid(id.pid).message(message));
        self.save();
        self.phase = Phase::Starting(Starting::new(since, ready_by, &self.s));
        self.timers_due(now, facts);
    }

    /// A forking daemon's start went wrong: this run fails like any failed start.
    fn fail_forking(&mut self, reason: String, now: Now, facts: &impl Facts) {
        let next = self.fail_run(format!("type = \"forking\": {reason}"));
        self.drain(next, now, facts);
    }
}

//! The hooks: `pre_start` before every start (a failure fails the start there),
//! `post_stop` once everything of a run is gone (a crash included), `on_failure` when
//! the keeper gives up or ends a run for `unhealthy` or `memory-exceeded`. The keeper
//! runs one at a time, as the phase [`Phase::Hooking`] with what follows it
//! ([`AfterHook`]), bounded by `hook_timeout` (its process group gets SIGKILL past
//! it), and records each end as a `hook` event with its exit status.

use std::time::Instant;

use super::{Effect, Exit, Facts, Machine, Next, Now, Phase};
use crate::config::units::format_duration;
use crate::events::Kind;
use crate::state::{Reason, Status};

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    /// `pre_start`.
    PreStart,
    /// `post_stop`.
    PostStop,
    /// `on_failure`.
    OnFailure,
}

impl Hook {
    /// The key that names it, which prefixes its lines in the log.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Hook::PreStart => "pre_start",
            Hook::PostStop => "post_stop",
            Hook::OnFailure => "on_failure",
        }
    }
}

/// What follows a hook once it has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AfterHook {
    /// `pre_start`: the daemon's start (`again`: a restart), if the hook succeeded.
    Spawn { again: bool },
    /// `post_stop`, `on_failure`: what the end of the run was for.
    Then(Next),
}

impl AfterHook {
    /// The status the record shows while the hook runs.
    pub(crate) fn status(&self) -> Status {
        match self {
            AfterHook::Spawn { .. } => Status::Starting,
            AfterHook::Then(next) if next.is_stop() => Status::Stopping,
            AfterHook::Then(Next::Restart(_)) => Status::Backoff,
            AfterHook::Then(Next::Wait) => Status::Waiting,
            AfterHook::Then(Next::Finish { status, .. }) => *status,
        }
    }

    /// Returns true if and only if a requested stop waits for the hook.
    pub(crate) fn is_stop(&self) -> bool {
        matches!(self, AfterHook::Then(next) if next.is_stop())
    }
}

/// The hook that runs: `pid` once started, killed at `deadline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HookRun {
    pub(crate) hook: Hook,
    pub(crate) pid: Option<i32>,
    pub(crate) deadline: Instant,
    pub(crate) killed: bool,
}

impl Machine {
    /// Starts a run of the daemon (`again`: a restart): through `pre_start` where
    /// there is one.
    pub(super) fn begin_run(&mut self, again: bool, now: Now) {
        match self.s.pre_start.is_some() {
            true => self.run_hook(Hook::PreStart, "start", AfterHook::Spawn { again }, now),
            false => self.emit(Effect::SpawnDaemon { again }),
        }
    }

    /// Asks for `hook` to run, with `event` as its `DMGR_EVENT`; `after` follows it.
    fn run_hook(&mut self, hook: Hook, event: &str, after: AfterHook, now: Now) {
        let argv = match hook {
            Hook::PreStart => self.s.pre_start.clone(),
            Hook::PostStop => self.s.post_stop.clone(),
            Hook::OnFailure => self.s.on_failure.clone(),
        };
        let Some(argv) = argv else {
            return;
        };
        let exit = self.last_exit.as_ref();
        let vars = vec![
            ("DMGR_EVENT".to_string(), event.to_string()),
            (
                "DMGR_EXIT_CODE".to_string(),
                exit.and_then(|e| e.code)
                    .map_or(String::new(), |c| c.to_string()),
            ),
            (
                "DMGR_SIGNAL".to_string(),
                exit.and_then(|e| e.signal.clone()).unwrap_or_default(),
            ),
        ];
        self.hook = Some(HookRun {
            hook,
            pid: None,
            deadline: now.at + self.s.hook_timeout,
            killed: false,
        });
        self.phase = Phase::Hooking { hook, after };
        self.save();
        self.emit(Effect::RunHook { hook, argv, vars });
    }

    /// The hook asked for runs as `pid`.
    pub(super) fn on_hook_started(&mut self, pid: i32) {
        if let Some(run) = &mut self.hook {
            run.pid = Some(pid);
        }
    }

    /// The hook could not be started: as a failure of it.
    pub(super) fn on_hook_failed(&mut self, reason: String, now: Now, facts: &impl Facts) {
        let Some(run) = self.hook.take() else {
            return;
        };
        let failed = self.event(Kind::Hook);
        self.record(failed.message(format!("{}: cannot run: {reason}", run.hook.key())));
        self.hook_ended(
            run.hook,
            Err(format!("cannot run {}: {reason}", run.hook.key())),
            now,
            facts,
        );
    }

    /// The hook's process ended with `exit`, having written `output` last.
    pub(super) fn on_hook_exit(
        &mut self,
        exit: &Exit,
        output: Vec<String>,
        now: Now,
        facts: &impl Facts,
    ) {
        let Some(run) = self.hook.take() else {
            return;
        };
        let key = run.hook.key();
        let how = match run.killed {
            true => format!(
                "killed: still running after hook_timeout ({})",
                format_duration(self.s.hook_timeout)
            ),
            false => exit.describe(),
        };
        let mut event = self
            .event(Kind::Hook)
            .message(format!("{key} ended ({how})"));
        event.pid = run.pid;
        event.exit_code = exit.code;
        event.signal = exit.signal.clone();
        self.record(event);
        let result = match exit.is_success() && !run.killed {
            true => Ok(()),
            false => {
                let mut why = format!("{key} failed ({how})");
                if let Some(last) = output.iter().rev().find(|l| !l.trim().is_empty()) {
                    why = format!("{why}: {last}");
                }
                Err(why)
            }
        };
        self.hook_ended(run.hook, result, now, facts);
    }

    /// `hook` is over, with `result`: what was waiting for it follows.
    fn hook_ended(&mut self, hook: Hook, result: Result<(), String>, now: Now, facts: &impl Facts) {
        let Phase::Hooking { after, .. } = &self.phase else {
            return;
        };
        match (after.clone(), result) {
            (AfterHook::Spawn { again }, Ok(())) => self.emit(Effect::SpawnDaemon { again }),
            // A failed `pre_start` fails the start as a failed exec would.
            (AfterHook::Spawn { .. }, Err(why)) => {
                let next = self.fail_run(why);
                self.drain(next, now, facts);
            }
            // Whatever `post_stop` and `on_failure` did, what the run's end was for
            // follows (after `post_stop`, `on_failure` if the run failed so): the
            // hook's event says how it went.
            (AfterHook::Then(next), _) if hook == Hook::PostStop => self.drain_done(next, now),
            (AfterHook::Then(next), _) => self.go_on(next, now),
        }
    }

    /// Kills the hook past its `hook_timeout`.
    pub(super) fn hook_due(&mut self, now: Now) {
        let Some(run) = self
            .hook
            .as_mut()
            .filter(|r| !r.killed && now.at >= r.deadline)
        else {
            return;
        };
        run.killed = true;
        if let Some(pid) = run.pid {
            // Our unreaped child, leader of a session of its own.
            self.emit(Effect::KillCommand { pid });
        }
    }

    /// A stop while a hook runs: a `pre_start` is killed and the start ends there; a
    /// `post_stop` or `on_failure` runs to its end, and then the keeper stops.
    pub(super) fn stop_during_hook(&mut self) -> bool {
        let Phase::Hooking { hook, after } = &mut self.phase else {
            return false;
        };
        if after.is_stop() {
            return true;
        }
        *after = AfterHook::Then(Next::stopped());
        let hook = *hook;
        self.record(
            self.event(Kind::Stopping)
                .message(format!("while {} runs", hook.key())),
        );
        if hook == Hook::PreStart {
            if let Some(run) = self.hook.as_mut().filter(|r| !r.killed) {
                run.killed = true;
                if let Some(pid) = run.pid {
                    self.new.push(Effect::KillCommand { pid });
                }
            }
        }
        self.save();
        true
    }

    /// Everything of a run is gone and `next` follows: first `post_stop` (once per
    /// run that started a process), then `on_failure` where the run failed so. Returns
    /// true if and only if a hook now runs, `next` waiting for it.
    pub(super) fn hooks_at_end(&mut self, next: &Next, now: Now) -> bool {
        if self.ran && self.s.post_stop.is_some() {
            self.ran = false;
            let event = if next.is_stop() { "stopped" } else { "exited" };
            self.run_hook(Hook::PostStop, event, AfterHook::Then(next.clone()), now);
            return true;
        }
        self.ran = false;
        let cause = match next {
            Next::Finish {
                status: Status::Failed,
                reason,
                ..
            } => self
                .failure_cause
                .take()
                .or(Some(reason.as_str().to_string())),
            _ => self.failure_cause.take(),
        };
        match (cause, self.s.on_failure.is_some()) {
            (Some(cause), true) => {
                // The history says why before it says what `on_failure` made of it.
                if let Next::Finish {
                    error: Some(why),
                    reason,
                    ..
                } = next
                {
                    if *reason != Reason::OutsideStop {
                        let gave_up = self.event(Kind::GaveUp).message(why.clone());
                        let gave_up = self.answer_failed(gave_up);
                        self.record(gave_up);
                        self.gave_up_told = true;
                    }
                }
                self.run_hook(Hook::OnFailure, &cause, AfterHook::Then(next.clone()), now);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
#[path = "hooks_tests.rs"]
mod tests;

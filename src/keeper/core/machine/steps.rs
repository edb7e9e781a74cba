//! The steps of the machine, each a pure function of the phase, the daemon's
//! supervision keys, the time `now` and the facts it needs: where a run is
//! ([`Phase`]) and, for each thing that can happen (a timer is due, the daemon exited,
//! a stop is asked for, a drain looks at what is left), what to do next. The
//! [`Machine`](super::Machine) applies them; the tests drive them with a made-up
//! clock and made-up facts, as `policy.rs` does for the restart policy.

use std::time::{Duration, Instant};

use super::super::adoption::Adopting;
use super::super::handover::Waiting;
use super::hooks::{AfterHook, Hook};
use crate::config::{DaemonType, KillMode, Supervision};
use crate::state::{Reason, Status};

/// How often a failing readiness probe is retried, and a forking daemon's command's
/// leftovers looked at again.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// The start-up window of one run: `start_wait`, then readiness probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Starting {
    /// When `start_wait` is over.
    pub(crate) settle_at: Instant,
    /// When the start fails if the daemon is not ready.
    pub(crate) ready_by: Instant,
    /// When the next readiness probe is due.
    pub(crate) next_probe: Instant,
}

impl Starting {
    /// The window of a run whose process stands since `since`, with `ready_by` the
    /// latest the readiness check may pass (at least `start_wait` after `since`).
    pub(crate) fn new(since: Instant, ready_by: Instant, s: &Supervision) -> Starting {
        let settle_at = since + s.start_wait;
        Starting {
            settle_at,
            ready_by: ready_by.max(settle_at),
            next_probe: settle_at,
        }
    }
}

/// What follows once everything the daemon started is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Start again after the delay.
    Restart(Duration),
    /// A scheduled oneshot's run is over: wait for the next time.
    Wait,
    /// The keeper's work is done.
    Finish {
        status: Status,
        error: Option<String>,
        reason: Reason,
    },
}

impl Next {
    /// The end of a requested stop.
    pub(crate) fn stopped() -> Next {
        Next::Finish {
            status: Status::Stopped,
            error: None,
            reason: Reason::StoppedByRequest,
        }
    }

    /// A start that failed before the daemon was up.
    pub(crate) fn start_failed(error: String) -> Next {
        Next::Finish {
            status: Status::Failed,
            error: Some(error),
            reason: Reason::StartFailed,
        }
    }

    /// Returns true if and only if this is the end of a requested stop.
    pub(crate) fn is_stop(&self) -> bool {
        matches!(
            self,
            Next::Finish {
                reason: Reason::StoppedByRequest,
                ..
            }
        )
    }
}

/// How far a drain has gone in signalling what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escalation {
    /// Nothing was left to signal when the drain began.
    Nothing,
    /// `stop_signal` was sent; SIGKILL follows at `kill_at`.
    Stop { kill_at: Instant },
    /// SIGKILL was sent; whatever shows up now gets it too.
    Killed,
}

impl Escalation {
    /// `stop_signal` sent at `now`: the one place that adds `stop_timeout` to it.
    pub(crate) fn stop_sent(now: Instant, s: &Supervision) -> Escalation {
        Escalation::Stop {
            kill_at: now + s.stop_timeout,
        }
    }
}

/// Where the keeper is with its daemon. Every "where are we" fact is here: a stop is
/// under way if and only if the phase says so ([`Phase::is_stopping`]), and the status
/// the record shows follows from it ([`Phase::status`]).
#[derive(Debug, Clone)]
pub(crate) enum Phase {
    /// The keeper's first start is still to come.
    NotStarted,
    /// `type = "forking"`: the command runs or has exited; no daemon is adopted yet.
    Adopting(Adopting),
    /// The daemon runs, within its start-up window: `start_wait`, then `ready`.
    Starting(Starting),
    /// The daemon runs, and is up.
    Running,
    /// Its main process exited, and the keeper looks for the process that took over
    /// (see [`super::super::handover`]).
    HandingOver(Waiting),
    /// Waiting to (re)start at `until`; `next_restart_ms` is that time on the wall
    /// clock, for `status` (none when a start is only tried again).
    Backoff {
        until: Instant,
        next_restart_ms: Option<u64>,
    },
    /// A requested stop runs `stop_command` (`pid`, `None` once it exited) and waits for
    /// the daemon to end; at `until` the command is killed and the signals follow.
    StopCommand { pid: Option<i32>, until: Instant },
    /// Everything the daemon started is being stopped and waited for. Unless it is a
    /// stop, the record goes on showing `shown`, the status of the run it ends.
    Draining {
        escalation: Escalation,
        next: Next,
        shown: Status,
    },
    /// The keeper's work is done: the daemon ended with `status`, for `reason`.
    Finished { status: Status, reason: Reason },
    /// A hook runs (see `hooks`); `after` is what follows once it has ended.
    Hooking { hook: Hook, after: AfterHook },
    /// A scheduled oneshot between runs: the schedule's timer wakes the keeper.
    Waiting,
}

impl Phase {
    /// The phase right after a process of the daemon was spawned at `now`.
    pub(crate) fn spawned(kind: DaemonType, now: Instant, s: &Supervision) -> Phase {
        match kind {
            DaemonType::Forking => Phase::Adopting(Adopting::new(now, s)),
            // A oneshot has no start-up window: it runs until it exits.
            DaemonType::Oneshot => Phase::Running,
            DaemonType::Simple | DaemonType::Notify => {
                Phase::Starting(Starting::new(now, now + s.ready_timeout, s))
            }
        }
    }

    /// The phase the keeper goes back to when a hand-over ends: the start-up window
    /// `starting`, or up.
    pub(crate) fn up(starting: Option<Starting>) -> Phase {
        match starting {
            Some(starting) => Phase::Starting(starting),
            None => Phase::Running,
        }
    }

    /// The start-up window, while the daemon is in it.
    pub(crate) fn starting(&self) -> Option<Starting> {
        match self {
            Phase::Starting(starting) => Some(*starting),
            _ => None,
        }
    }

    /// Returns true if and only if the daemon's process runs as far as this phase
    /// knows: starting or up.
    pub(crate) fn is_up(&self) -> bool {
        matches!(self, Phase::Starting(_) | Phase::Running)
    }

    /// The status the state record shows in this phase.
    pub(crate) fn status(&self) -> Status {
        match self {
            Phase::NotStarted | Phase::Adopting(_) | Phase::Starting(_) => Status::Starting,
            Phase::Running => Status::Running,
            Phase::HandingOver(w) if w.starting.is_some() => Status::Starting,
            Phase::HandingOver(_) => Status::Running,
            Phase::Backoff { .. } => Status::Backoff,
            Phase::StopCommand { .. } => Status::Stopping,
            Phase::Draining { next, .. } if next.is_stop() => Status::Stopping,
            Phase::Draining { shown, .. } => *shown,
            Phase::Finished { status, .. } => *status,
            Phase::Hooking { after, .. } => after.status(),
            Phase::Waiting => Status::Waiting,
        }
    }

    /// A requested stop has begun.
    pub(crate) fn stop_command(pid: i32, now: Instant, s: &Supervision) -> Phase {
        Phase::StopCommand {
            pid: Some(pid),
            until: now + s.stop_timeout,
        }
    }

    /// Returns true if and only if a requested stop is under way.
    pub(crate) fn is_stopping(&self) -> bool {
        match self {
            Phase::StopCommand { .. } => true,
            Phase::Draining { next, .. } => next.is_stop(),
            Phase::Hooking { after, .. } => after.is_stop(),
            _ => false,
        }
    }

    /// When the loop must wake up next for this phase (`probe`: the deadline of the
    /// probe that runs, if one does); `None` when only a signal or output can change
    /// anything, so that an idle keeper sleeps without a timeout.
    pub(crate) fn deadline(&self, probe: Option<Instant>) -> Option<Instant> {
        match self {
            Phase::Adopting(a) => Some(a.deadline()),
            Phase::Starting(s) => match probe {
                None => Some(s.settle_at.max(s.next_probe).min(s.ready_by)),
                Some(probe) => Some(probe.min(s.ready_by)),
            },
            Phase::NotStarted | Phase::Running | Phase::Finished { .. } => None,
            // The hook's own deadline and the schedule's are rows of their own.
            Phase::Hooking { .. } | Phase::Waiting => None,
            Phase::HandingOver(w) => Some(w.next_look),
            Phase::Backoff { until, .. } => Some(*until),
            Phase::StopCommand { until, .. } => Some(*until),
            Phase::Draining { escalation, .. } => match escalation {
                Escalation::Stop { kill_at } => Some(*kill_at),
                Escalation::Nothing | Escalation::Killed => None,
            },
        }
    }
}

/// What a due timer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Nothing is due.
    Nothing,
    /// The backoff is over: start the daemon.
    Spawn,
    /// A forking daemon's command ran or exited: look for the daemon it left.
    Look,
    /// Look again for the process that took over from the main process.
    LookForSuccessor,
    /// `stop_timeout` passed since the stop began: kill `stop_command` if it still
    /// runs, and drain.
    StopCommandOver { pid: Option<i32> },
    /// `stop_timeout` passed since `stop_signal`: SIGKILL to what is left.
    Kill,
    /// A step of the start-up window.
    Start(StartStep),
}

/// A step of the start-up window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartStep {
    /// `start_wait` is not over, a probe runs, or the next one is not due yet.
    Wait,
    /// Past `start_wait` and ready (or no check): the daemon is up.
    Up,
    /// `ready_timeout` passed: the start fails, the daemon is stopped.
    NotReady,
    /// Start a readiness probe, due by the given deadline.
    Probe { deadline: Instant },
}

/// What is due at `now` in `phase`; `probe_running` tells whether a probe runs.
pub(crate) fn on_timer(phase: &Phase, now: Instant, s: &Supervision, probe_running: bool) -> Tick {
    match phase {
        Phase::Adopting(_) => Tick::Look,
        Phase::HandingOver(w) if now >= w.next_look => Tick::LookForSuccessor,
        Phase::Backoff { until, .. } if now >= *until => Tick::Spawn,
        Phase::StopCommand { pid, until } if now >= *until => Tick::StopCommandOver { pid: *pid },
        Phase::Draining {
            escalation: Escalation::Stop { kill_at },
            ..
        } if now >= *kill_at => Tick::Kill,
        Phase::Starting(starting) => Tick::Start(start_step(starting, now, s, probe_running)),
        _ => Tick::Nothing,
    }
}

/// The start-up step at `now`: `start_wait` first, then a readiness probe every
/// [`PROBE_INTERVAL`] until one passes or `ready_timeout` is over.
pub(crate) fn start_step(
    starting: &Starting,
    now: Instant,
    s: &Supervision,
    probe_running: bool,
) -> StartStep {
    if now < starting.settle_at {
        return StartStep::Wait;
    }
    if s.ready.is_none() {
        return StartStep::Up;
    }
    if now >= starting.ready_by {
        return StartStep::NotReady;
    }
    if probe_running || now < starting.next_probe {
        return StartStep::Wait;
    }
    StartStep::Probe {
        deadline: starting.ready_by,
    }
}

/// A readiness probe failed at `now`: the next one is due [`PROBE_INTERVAL`] later.
pub(crate) fn probe_failed(starting: &mut Starting, now: Instant) {
    starting.next_probe = now + PROBE_INTERVAL;
}

/// What the daemon's exit means in `phase`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExitStep {
    /// A drain or a `stop_command` already decided what follows: the exit it caused
    /// is not judged again.
    Decided,
    /// `stop_command` is done and the daemon with it: drain what is left, then stop.
    DrainStopped,
    /// It died within `start_wait` (or before it was ready) of the start that
    /// `dmgr start` waits for: that start fails, and nothing restarts it.
    FailStart,
    /// Judge it by the restart policy.
    Judge,
}

/// What the daemon's exit means in `phase`; `reporting` tells whether `dmgr start`
/// still waits for the outcome of the first start.
pub(crate) fn on_exit(phase: &Phase, reporting: bool) -> ExitStep {
    match phase {
        Phase::Draining { .. } | Phase::StopCommand { pid: Some(_), .. } => ExitStep::Decided,
        Phase::StopCommand { pid: None, .. } => ExitStep::DrainStopped,
        Phase::Starting(_) if reporting => ExitStep::FailStart,
        _ => ExitStep::Judge,
    }
}

/// What a request to stop does in `phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopStep {
    /// A stop is under way already.
    Ignore,
    /// Run `stop_command` first.
    StopCommand,
    /// A drain runs: let it end in a stop rather than whatever it was for.
    Redirect,
    /// Drain now (stop_signal, SIGKILL after `stop_timeout`), then stop.
    Drain,
}

/// What a stop asked for in `phase` does; `main_runs` tells whether the daemon's main
/// process (adopted, for forking) runs, for `stop_command` to act on.
pub(crate) fn on_stop(phase: &Phase, s: &Supervision, main_runs: bool) -> StopStep {
    match phase {
        _ if phase.is_stopping() => StopStep::Ignore,
        Phase::Starting(_) | Phase::Running if s.stop_command.is_some() && main_runs => {
            StopStep::StopCommand
        }
        Phase::Draining { .. } => StopStep::Redirect,
        _ => StopStep::Drain,
    }
}

/// What a drain sends when it begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstSignal {
    /// Nothing is left to signal.
    Nothing,
    /// `stop_signal` to every process of the daemon (`kill_mode = "group"`).
    StopAll,
    /// `stop_signal` to the main process alone (`kill_mode = "mixed"`).
    StopMain,
    /// SIGKILL to what is left (`kill_mode = "mixed"` with the main process gone).
    KillAll,
}

/// How a drain that begins at `now` starts: `main_runs` tells whether the main process
/// is unreaped, `tree_empty` whether nothing of the daemon's is left (the main process
/// included). With `kill_mode = "mixed"` only the main process gets `stop_signal`, and
/// what it leaves gets SIGKILL, as systemd's `KillMode=mixed` does.
pub(crate) fn drain_begins(
    now: Instant,
    s: &Supervision,
    main_runs: bool,
    tree_empty: bool,
) -> (FirstSignal, Escalation) {
    match s.kill_mode {
        _ if tree_empty && !main_runs => (FirstSignal::Nothing, Escalation::Nothing),
        KillMode::Group => (FirstSignal::StopAll, Escalation::stop_sent(now, s)),
        KillMode::Mixed if main_runs => (FirstSignal::StopMain, Escalation::stop_sent(now, s)),
        KillMode::Mixed => (FirstSignal::KillAll, Escalation::Killed),
    }
}

/// What a drain does when the loop looks at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DrainStep {
    /// The daemon's main process is still to be reaped; wait for its exit.
    Wait,
    /// Processes are left: send them what the others got (`kill`: SIGKILL, else
    /// `stop_signal`), and go on draining with `escalation`.
    Signal { kill: bool, escalation: Escalation },
    /// Everything is gone: go on with this.
    Done(Next),
}

/// A drain in `escalation`, looked at `now`: `main_runs` tells whether the main
/// process is unreaped, `tree_empty` whether anything of the daemon's is left.
pub(crate) fn drain_step(
    escalation: Escalation,
    next: &Next,
    now: Instant,
    s: &Supervision,
    main_runs: bool,
    tree_empty: bool,
) -> DrainStep {
    if main_runs {
        return DrainStep::Wait;
    }
    if tree_empty {
        return DrainStep::Done(next.clone());
    }
    let (kill, escalation) = match escalation {
        Escalation::Killed => (true, Escalation::Killed),
        // The main process is gone: under `kill_mode = "mixed"` what it left gets
        // SIGKILL now, not stop_signal.
        _ if s.kill_mode == KillMode::Mixed => (true, Escalation::Killed),
        Escalation::Stop { .. } => (false, escalation),
        // Something showed up after a drain that found nothing: it gets the stop
        // signal, and its own stop_timeout.
        Escalation::Nothing => (false, Escalation::stop_sent(now, s)),
    };
    DrainStep::Signal { kill, escalation }
}

#[cfg(test)]
#[path = "steps_tests.rs"]
mod tests;

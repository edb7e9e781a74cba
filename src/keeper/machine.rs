//! The keeper's decisions, apart from its IO: where a run is ([`Phase`]) and, for
//! each thing that can happen (a timer is due, the daemon exited, a stop is asked for,
//! a drain looks at what is left), what to do next. Each function here is pure: it
//! takes the phase, the daemon's supervision keys and the time `now` as arguments and
//! returns a step for the loop in `keeper/mod.rs` to carry out (signal, spawn, probe,
//! record). The tests below drive them with a made-up clock and made-up facts, as
//! `policy.rs` does for the restart policy.

use std::time::{Duration, Instant};

use super::forking;
use super::probe::PROBE_INTERVAL;
use crate::config::{DaemonType, KillMode, Supervision};
use crate::procinfo::ProcId;
use crate::state::{Reason, Status};

/// The process being supervised: the daemon, or for a forking daemon the command
/// that daemonizes until the process it leaves behind is adopted.
#[derive(Debug, Clone, Copy)]
pub(super) struct Child {
    pub(super) id: ProcId,
    /// For a forking daemon, false while this is the command, not the daemon.
    pub(super) adopted: bool,
    pub(super) started: Instant,
    /// Set once it has been reaped.
    pub(super) exited: bool,
}

/// The start-up window of one run: `start_wait`, then readiness probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Starting {
    /// When `start_wait` is over.
    pub(super) settle_at: Instant,
    /// When the start fails if the daemon is not ready.
    pub(super) ready_by: Instant,
    /// When the next readiness probe is due.
    pub(super) next_probe: Instant,
}

impl Starting {
    /// The window of a run whose process stands since `since`, with `ready_by` the
    /// latest the readiness check may pass (at least `start_wait` after `since`).
    pub(super) fn new(since: Instant, ready_by: Instant, s: &Supervision) -> Starting {
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
pub(super) enum Next {
    /// Start again after the delay.
    Restart(Duration),
    /// The keeper's work is done.
    Finish {
        status: Status,
        error: Option<String>,
        reason: Reason,
    },
}

impl Next {
    /// The end of a requested stop.
    pub(super) fn stopped() -> Next {
        Next::Finish {
            status: Status::Stopped,
            error: None,
            reason: Reason::StoppedByRequest,
        }
    }

    /// A start that failed before the daemon was up.
    pub(super) fn start_failed(error: String) -> Next {
        Next::Finish {
            status: Status::Failed,
            error: Some(error),
            reason: Reason::StartFailed,
        }
    }

    /// Returns true if and only if this is the end of a requested stop.
    pub(super) fn is_stop(&self) -> bool {
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
pub(super) enum Escalation {
    /// Nothing was left to signal when the drain began.
    Nothing,
    /// `stop_signal` was sent; SIGKILL follows at `kill_at`.
    Stop { kill_at: Instant },
    /// SIGKILL was sent; whatever shows up now gets it too.
    Killed,
}

impl Escalation {
    /// `stop_signal` sent at `now`: the one place that adds `stop_timeout` to it.
    pub(super) fn stop_sent(now: Instant, s: &Supervision) -> Escalation {
        Escalation::Stop {
            kill_at: now + s.stop_timeout,
        }
    }
}

/// Where the keeper is with its daemon. Every "where are we" fact is here: a stop is
/// under way if and only if the phase says so ([`Phase::is_stopping`]).
#[derive(Debug, Clone)]
pub(super) enum Phase {
    /// `type = "forking"`: the command runs or has exited; no daemon is adopted yet.
    Adopting(forking::Adopting),
    /// The daemon runs; `Some` while it is still starting.
    Up(Option<Starting>),
    /// Waiting to (re)start at `until`.
    Backoff { until: Instant },
    /// A requested stop runs `stop_command` (`pid`, `None` once it exited) and waits for
    /// the daemon to end; at `until` the command is killed and the signals follow.
    StopCommand { pid: Option<i32>, until: Instant },
    /// Everything the daemon started is being stopped and waited for.
    Draining { escalation: Escalation, next: Next },
}

impl Phase {
    /// The phase right after a process of the daemon was spawned at `now`.
    pub(super) fn spawned(kind: DaemonType, now: Instant, s: &Supervision) -> Phase {
        match kind {
            DaemonType::Forking => Phase::Adopting(forking::Adopting {
                ready_by: now + s.ready_timeout,
                exited: false,
                children: Vec::new(),
                since: now,
                next_look: now,
            }),
            DaemonType::Simple => Phase::Up(Some(Starting::new(now, now + s.ready_timeout, s))),
        }
    }

    /// A requested stop has begun.
    pub(super) fn stop_command(pid: i32, now: Instant, s: &Supervision) -> Phase {
        Phase::StopCommand {
            pid: Some(pid),
            until: now + s.stop_timeout,
        }
    }

    /// Returns true if and only if a requested stop is under way.
    pub(super) fn is_stopping(&self) -> bool {
        match self {
            Phase::StopCommand { .. } => true,
            Phase::Draining { next, .. } => next.is_stop(),
            _ => false,
        }
    }

    /// When the loop must wake up next for this phase (`probe`: the deadline of the
    /// probe that runs, if one does); `None` when only a signal or output can change
    /// anything, so that an idle keeper sleeps without a timeout.
    pub(super) fn deadline(&self, probe: Option<Instant>) -> Option<Instant> {
        match self {
            Phase::Adopting(a) if a.exited => Some(a.next_look.min(a.ready_by)),
            Phase::Adopting(a) => Some(a.ready_by),
            Phase::Up(Some(s)) => match probe {
                None => Some(s.settle_at.max(s.next_probe).min(s.ready_by)),
                Some(probe) => Some(probe.min(s.ready_by)),
            },
            Phase::Up(None) => None,
            Phase::Backoff { until } => Some(*until),
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
pub(super) enum Tick {
    /// Nothing is due.
    Nothing,
    /// The backoff is over: start the daemon.
    Spawn,
    /// A forking daemon's command ran or exited: look for the daemon it left.
    Look,
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
pub(super) enum StartStep {
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
pub(super) fn on_timer(phase: &Phase, now: Instant, s: &Supervision, probe_running: bool) -> Tick {
    match phase {
        Phase::Adopting(_) => Tick::Look,
        Phase::Backoff { until } if now >= *until => Tick::Spawn,
        Phase::StopCommand { pid, until } if now >= *until => Tick::StopCommandOver { pid: *pid },
        Phase::Draining {
            escalation: Escalation::Stop { kill_at },
            ..
        } if now >= *kill_at => Tick::Kill,
        Phase::Up(Some(starting)) => Tick::Start(start_step(starting, now, s, probe_running)),
        _ => Tick::Nothing,
    }
}

/// The start-up step at `now`: `start_wait` first, then a readiness probe every
/// [`PROBE_INTERVAL`] until one passes or `ready_timeout` is over.
pub(super) fn start_step(
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
pub(super) fn probe_failed(starting: &mut Starting, now: Instant) {
    starting.next_probe = now + PROBE_INTERVAL;
}

/// What the daemon's exit means in `phase`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ExitStep {
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
pub(super) fn on_exit(phase: &Phase, reporting: bool) -> ExitStep {
    match phase {
        Phase::Draining { .. } | Phase::StopCommand { pid: Some(_), .. } => ExitStep::Decided,
        Phase::StopCommand { pid: None, .. } => ExitStep::DrainStopped,
        Phase::Up(Some(_)) if reporting => ExitStep::FailStart,
        _ => ExitStep::Judge,
    }
}

/// What a request to stop does in `phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StopStep {
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
pub(super) fn on_stop(phase: &Phase, s: &Supervision, main_runs: bool) -> StopStep {
    match phase {
        _ if phase.is_stopping() => StopStep::Ignore,
        Phase::Up(_) if s.stop_command.is_some() && main_runs => StopStep::StopCommand,
        Phase::Draining { .. } => StopStep::Redirect,
        _ => StopStep::Drain,
    }
}

/// What a drain sends when it begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FirstSignal {
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
pub(super) fn drain_begins(
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
pub(super) enum DrainStep {
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
pub(super) fn drain_step(
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
mod tests {
    use super::*;
    use crate::config::ReadyCheck;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn supervision() -> Supervision {
        Supervision {
            start_wait: ms(500),
            ready_timeout: ms(5000),
            stop_timeout: ms(2000),
            ..Supervision::default()
        }
    }

    fn with_ready() -> Supervision {
        Supervision {
            ready: Some(ReadyCheck::Tcp("127.0.0.1:8080".into())),
            ..supervision()
        }
    }

    fn draining(next: Next) -> Phase {
        Phase::Draining {
            escalation: Escalation::Nothing,
            next,
        }
    }

    /// Promise 1: `start` returns once the process has stayed up `start_wait`.
    #[test]
    fn the_start_gate_opens_after_start_wait() {
        let t0 = Instant::now();
        let s = supervision();
        let phase = Phase::spawned(DaemonType::Simple, t0, &s);
        assert_eq!(phase.deadline(None), Some(t0 + ms(500)));
        assert_eq!(
            on_timer(&phase, t0 + ms(499), &s, false),
            Tick::Start(StartStep::Wait)
        );
        assert_eq!(
            on_timer(&phase, t0 + ms(500), &s, false),
            Tick::Start(StartStep::Up)
        );
        assert!(
            Phase::Up(None).deadline(None).is_none(),
            "an idle keeper sleeps"
        );
    }

    /// With `ready`, probes start after `start_wait`, one at a time, every 100 ms, and
    /// past `ready_timeout` the start fails.
    #[test]
    fn readiness_is_probed_until_ready_timeout() {
        let t0 = Instant::now();
        let s = with_ready();
        let Phase::Up(Some(mut starting)) = Phase::spawned(DaemonType::Simple, t0, &s) else {
            panic!("a simple daemon starts up");
        };
        let ready_by = t0 + ms(5000);
        assert_eq!(
            start_step(&starting, t0 + ms(100), &s, false),
            StartStep::Wait
        );
        let probe = StartStep::Probe { deadline: ready_by };
        assert_eq!(start_step(&starting, t0 + ms(500), &s, false), probe);
        assert_eq!(
            start_step(&starting, t0 + ms(600), &s, true),
            StartStep::Wait
        );
        let phase = Phase::Up(Some(starting));
        assert_eq!(phase.deadline(Some(ready_by)), Some(ready_by));
        probe_failed(&mut starting, t0 + ms(700));
        assert_eq!(
            start_step(&starting, t0 + ms(750), &s, false),
            StartStep::Wait
        );
        assert_eq!(start_step(&starting, t0 + ms(800), &s, false), probe);
        assert_eq!(Phase::Up(Some(starting)).deadline(None), Some(t0 + ms(800)));
        assert_eq!(
            start_step(&starting, ready_by, &s, true),
            StartStep::NotReady
        );
    }

    /// Promise 1: a process that dies within `start_wait` fails the start that waits
    /// for it; once that start is reported, an exit is judged by the restart policy.
    #[test]
    fn an_early_death_fails_the_start_and_a_later_one_is_judged() {
        let t0 = Instant::now();
        let phase = Phase::spawned(DaemonType::Simple, t0, &supervision());
        assert_eq!(on_exit(&phase, true), ExitStep::FailStart);
        assert_eq!(on_exit(&phase, false), ExitStep::Judge);
        assert_eq!(on_exit(&Phase::Up(None), true), ExitStep::Judge);
    }

    /// A backoff ends in a new start at its end, and nothing before.
    #[test]
    fn a_backoff_ends_in_a_spawn() {
        let t0 = Instant::now();
        let s = supervision();
        let phase = Phase::Backoff {
            until: t0 + ms(1000),
        };
        assert_eq!(phase.deadline(None), Some(t0 + ms(1000)));
        assert_eq!(on_timer(&phase, t0 + ms(999), &s, false), Tick::Nothing);
        assert_eq!(on_timer(&phase, t0 + ms(1000), &s, false), Tick::Spawn);
        // Giving up is the policy's (policy.rs); what follows it is a drain to a finish.
        let gave_up = Next::Finish {
            status: Status::Failed,
            error: Some("gave up".into()),
            reason: Reason::GaveUp,
        };
        let step = drain_step(Escalation::Nothing, &gave_up, t0, &s, false, true);
        assert_eq!(step, DrainStep::Done(gave_up));
    }

    /// Promise 4: `stop_signal`, then SIGKILL once `stop_timeout` has passed; the stop
    /// is done when the main process is reaped and nothing else is left.
    #[test]
    fn a_stop_sends_sigkill_after_stop_timeout() {
        let t0 = Instant::now();
        let s = supervision();
        assert_eq!(on_stop(&Phase::Up(None), &s, true), StopStep::Drain);
        let phase = Phase::Draining {
            escalation: Escalation::stop_sent(t0, &s),
            next: Next::stopped(),
        };
        assert!(phase.is_stopping());
        assert_eq!(phase.deadline(None), Some(t0 + ms(2000)));
        assert_eq!(on_timer(&phase, t0 + ms(1999), &s, false), Tick::Nothing);
        assert_eq!(on_timer(&phase, t0 + ms(2000), &s, false), Tick::Kill);
        let Phase::Draining { escalation, next } = &phase else {
            unreachable!()
        };
        let now = t0 + ms(100);
        assert_eq!(
            drain_step(*escalation, next, now, &s, true, false),
            DrainStep::Wait
        );
        let again = DrainStep::Signal {
            kill: false,
            escalation: *escalation,
        };
        assert_eq!(drain_step(*escalation, next, now, &s, false, false), again);
        let killed = drain_step(Escalation::Killed, next, now, &s, false, false);
        assert!(matches!(killed, DrainStep::Signal { kill: true, .. }));
        let done = drain_step(*escalation, next, now, &s, false, true);
        assert_eq!(done, DrainStep::Done(Next::stopped()));
        assert_eq!(on_stop(&phase, &s, false), StopStep::Ignore);
    }

    /// `kill_mode = "group"`: a drain sends `stop_signal` to every process of the
    /// daemon, whether the main process runs or not.
    #[test]
    fn kill_mode_group_sends_stop_signal_to_every_process() {
        let t0 = Instant::now();
        let s = supervision();
        let stop = Escalation::stop_sent(t0, &s);
        assert_eq!(
            drain_begins(t0, &s, true, false),
            (FirstSignal::StopAll, stop)
        );
        assert_eq!(
            drain_begins(t0, &s, false, false),
            (FirstSignal::StopAll, stop)
        );
        let nothing = (FirstSignal::Nothing, Escalation::Nothing);
        assert_eq!(drain_begins(t0, &s, false, true), nothing);
    }

    /// `kill_mode = "mixed"` (SPEC): `stop_signal` goes to the main process alone, and
    /// what is left once it has exited, or at `stop_timeout`, gets SIGKILL.
    #[test]
    fn kill_mode_mixed_signals_the_main_process_and_kills_what_it_leaves() {
        let t0 = Instant::now();
        let s = Supervision {
            kill_mode: KillMode::Mixed,
            ..supervision()
        };
        let stop = Escalation::stop_sent(t0, &s);
        assert_eq!(
            drain_begins(t0, &s, true, false),
            (FirstSignal::StopMain, stop)
        );
        let next = Next::stopped();
        let now = t0 + ms(100);
        // While the main process runs, its workers are left to it.
        assert_eq!(
            drain_step(stop, &next, now, &s, true, false),
            DrainStep::Wait
        );
        // Once it is gone, what is left is killed at once, not after stop_timeout.
        let killed = DrainStep::Signal {
            kill: true,
            escalation: Escalation::Killed,
        };
        assert_eq!(drain_step(stop, &next, now, &s, false, false), killed);
        assert_eq!(
            drain_step(stop, &next, now, &s, false, true),
            DrainStep::Done(Next::stopped())
        );
        // At stop_timeout, SIGKILL to everything, the main process included.
        let phase = Phase::Draining {
            escalation: stop,
            next,
        };
        assert_eq!(on_timer(&phase, t0 + ms(2000), &s, false), Tick::Kill);
        // A drain after the main process died (a crash, a restart) kills what is left.
        assert_eq!(
            drain_begins(t0, &s, false, false),
            (FirstSignal::KillAll, Escalation::Killed)
        );
    }

    /// A process that shows up after a drain found nothing gets `stop_signal` and a
    /// `stop_timeout` of its own.
    #[test]
    fn a_latecomer_gets_the_stop_signal_and_its_own_timeout() {
        let t0 = Instant::now();
        let s = supervision();
        let step = drain_step(Escalation::Nothing, &Next::stopped(), t0, &s, false, false);
        let escalation = Escalation::Stop {
            kill_at: t0 + ms(2000),
        };
        assert_eq!(
            step,
            DrainStep::Signal {
                kill: false,
                escalation
            }
        );
    }

    /// A stop during backoff drains (nothing runs) and finishes stopped; one during a
    /// drain for a restart turns that drain into a stop.
    #[test]
    fn a_stop_during_backoff_or_a_restart_drain_ends_stopped() {
        let t0 = Instant::now();
        let s = supervision();
        let backoff = Phase::Backoff {
            until: t0 + ms(1000),
        };
        assert!(!backoff.is_stopping());
        assert_eq!(on_stop(&backoff, &s, false), StopStep::Drain);
        let restarting = draining(Next::Restart(ms(1000)));
        assert!(!restarting.is_stopping());
        assert_eq!(on_stop(&restarting, &s, false), StopStep::Redirect);
        assert_eq!(on_exit(&restarting, false), ExitStep::Decided);
    }

    /// A stop while the start waits for readiness drains at once; the start fails.
    #[test]
    fn a_stop_during_readiness_drains() {
        let t0 = Instant::now();
        let s = with_ready();
        let phase = Phase::spawned(DaemonType::Simple, t0, &s);
        assert_eq!(on_stop(&phase, &s, true), StopStep::Drain);
        let with_command = Supervision {
            stop_command: Some(vec!["halt".into()]),
            ..s
        };
        assert_eq!(on_stop(&phase, &with_command, true), StopStep::StopCommand);
        assert_eq!(on_stop(&phase, &with_command, false), StopStep::Drain);
    }

    /// `stop_command` runs within `stop_timeout`; if the daemon ends with it, the drain
    /// that follows finds little; if not, the command is killed and the signals follow.
    #[test]
    fn stop_command_is_bounded_by_stop_timeout() {
        let t0 = Instant::now();
        let s = supervision();
        let phase = Phase::stop_command(42, t0, &s);
        assert!(phase.is_stopping());
        assert_eq!(on_exit(&phase, false), ExitStep::Decided);
        let over = Tick::StopCommandOver { pid: Some(42) };
        assert_eq!(on_timer(&phase, t0 + ms(2000), &s, false), over);
        let ended = Phase::StopCommand {
            pid: None,
            until: t0 + ms(2000),
        };
        assert_eq!(on_exit(&ended, false), ExitStep::DrainStopped);
    }

    /// A live update of the supervision keys changes what the next decisions use: a
    /// new `stop_timeout` sets the next SIGKILL time.
    #[test]
    fn a_live_update_changes_the_next_deadlines() {
        let t0 = Instant::now();
        let longer = Supervision {
            stop_timeout: ms(30_000),
            ..supervision()
        };
        let Escalation::Stop { kill_at } = Escalation::stop_sent(t0, &longer) else {
            unreachable!()
        };
        assert_eq!(kill_at, t0 + ms(30_000));
    }

    /// `type = "forking"`: the command's window is `ready_timeout`, during which the
    /// keeper looks for the daemon; once adopted, the daemon gets its own start window.
    #[test]
    fn a_forking_command_is_looked_after_until_adoption() {
        let t0 = Instant::now();
        let s = supervision();
        let phase = Phase::spawned(DaemonType::Forking, t0, &s);
        assert_eq!(phase.deadline(None), Some(t0 + ms(5000)));
        assert_eq!(on_timer(&phase, t0 + ms(10), &s, false), Tick::Look);
        assert_eq!(on_exit(&phase, true), ExitStep::Judge);
        let adopted = Starting::new(t0 + ms(300), t0 + ms(5000), &s);
        assert_eq!(adopted.settle_at, t0 + ms(800));
        assert_eq!(adopted.next_probe, adopted.settle_at);
        let late = Starting::new(t0 + ms(4800), t0 + ms(5000), &s);
        assert_eq!(late.ready_by, t0 + ms(5300), "start_wait is always granted");
    }
}

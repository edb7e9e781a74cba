//! The hooks in the machine, on a made-up clock.

use std::time::Duration;

use super::super::tests::{code, daemon, event, killed_by, kinds, Rig, DAEMON};
use super::*;
use crate::config::{Daemon, RestartPolicy};
use crate::keeper::core::machine::{Input, Timer};
use crate::keeper::report::Report;

/// The hook process in the tests.
const HOOK: i32 = 555;

fn with_hooks() -> Daemon {
    let mut d = daemon();
    d.supervision.pre_start = Some(vec!["nginx".into(), "-t".into()]);
    d.supervision.post_stop = Some(vec!["cleanup".into()]);
    d.supervision.on_failure = Some(vec!["curl".into(), "hook".into()]);
    d.supervision.hook_timeout = Duration::from_secs(5);
    d
}

/// The `RunHook` among `effects`: the hook and its `DMGR_*` variables.
fn hook_run(effects: &[Effect]) -> (Hook, Vec<(String, String)>) {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::RunHook { hook, vars, .. } => Some((*hook, vars.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no hook run in {effects:?}"))
}

fn var<'a>(vars: &'a [(String, String)], name: &str) -> &'a str {
    vars.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// The hook asked for, started and ended with `exit`, having written `output`.
fn hook_ends(rig: &mut Rig, exit: Exit, output: &[&str]) -> Vec<Effect> {
    rig.feed(Input::HookStarted { pid: HOOK });
    rig.feed(Input::Reaped {
        pid: HOOK,
        exit,
        output: output.iter().map(|s| s.to_string()).collect(),
    })
}

/// SPEC `pre_start`: it runs before the start, and the daemon is spawned once it
/// exited 0; its end is a `hook` event with its exit status.
#[test]
fn pre_start_runs_before_the_start() {
    let mut rig = Rig::new(with_hooks());
    let first = rig.feed(Input::Start { recorded: Ok(()) });
    let (hook, vars) = hook_run(&first);
    assert_eq!(hook, Hook::PreStart);
    assert_eq!(var(&vars, "DMGR_EVENT"), "start");
    assert!(!first
        .iter()
        .any(|e| matches!(e, Effect::SpawnDaemon { .. })));
    assert_eq!(rig.m.status(), Status::Starting);
    let after = hook_ends(&mut rig, code(0), &[]);
    let hook = event(&after, Kind::Hook);
    assert_eq!(hook.exit_code, Some(0));
    assert_eq!(hook.message.as_deref(), Some("pre_start ended (exit 0)"));
    assert!(after.contains(&Effect::SpawnDaemon { again: false }));
}

/// SPEC `pre_start`: a failure stops the start there; `start` is told which hook
/// failed, how, and its last line.
#[test]
fn a_failing_pre_start_fails_the_start() {
    let mut rig = Rig::new(with_hooks());
    rig.feed(Input::Start { recorded: Ok(()) });
    let after = hook_ends(&mut rig, code(1), &["nginx: [emerg] unknown directive", ""]);
    assert!(!after
        .iter()
        .any(|e| matches!(e, Effect::SpawnDaemon { .. })));
    let end = rig.feed(Input::Tick);
    // The daemon never ran: no post_stop; the failed start is on_failure's, and the
    // history says why before the hook runs, once.
    assert_eq!(kinds(&end), [Kind::GaveUp]);
    let (hook, vars) = hook_run(&end);
    assert_eq!(hook, Hook::OnFailure);
    assert_eq!(var(&vars, "DMGR_EVENT"), "start-failed");
    // `start` hears of it once the keeper is done (promise 1: nothing left behind).
    let last = hook_ends(&mut rig, code(0), &[]);
    assert_eq!(kinds(&last), [Kind::Hook]);
    let failed = Report::Failed {
        reason: "pre_start failed (exit 1): nginx: [emerg] unknown directive".into(),
    };
    assert!(last.contains(&Effect::Report(failed)), "{last:?}");
    assert_eq!(rig.m.status(), Status::Failed);
}

/// SPEC `post_stop`: it runs after every end of the daemon, a crash (SIGKILL) included,
/// with how it ended; the restart waits for it.
#[test]
fn post_stop_runs_after_a_sigkill_before_the_restart() {
    let mut d = with_hooks();
    d.supervision.pre_start = None;
    let mut rig = Rig::new(d);
    rig.up();
    rig.reaped(DAEMON.pid, killed_by("KILL"));
    let end = rig.feed(Input::Tick);
    let (hook, vars) = hook_run(&end);
    assert_eq!(hook, Hook::PostStop);
    assert_eq!(var(&vars, "DMGR_EVENT"), "exited");
    assert_eq!(var(&vars, "DMGR_SIGNAL"), "KILL");
    assert_eq!(rig.m.status(), Status::Backoff);
    let after = hook_ends(&mut rig, code(0), &[]);
    assert!(kinds(&after).contains(&Kind::Restarting));
    assert!(matches!(rig.m.phase, Phase::Backoff { .. }));
}

/// SPEC `post_stop` at a requested stop, and `on_failure` only when a run failed.
#[test]
fn post_stop_runs_at_a_stop_and_on_failure_does_not() {
    let mut d = with_hooks();
    d.supervision.pre_start = None;
    let mut rig = Rig::new(d);
    rig.up();
    rig.feed(Input::Stop { outside: None });
    rig.reaped(DAEMON.pid, killed_by("TERM"));
    let end = rig.feed(Input::Tick);
    let (hook, vars) = hook_run(&end);
    assert_eq!(
        (hook, var(&vars, "DMGR_EVENT")),
        (Hook::PostStop, "stopped")
    );
    assert_eq!(rig.m.status(), Status::Stopping);
    let after = hook_ends(&mut rig, code(0), &[]);
    assert!(after.contains(&Effect::Finish));
    assert!(!after.iter().any(|e| matches!(e, Effect::RunHook { .. })));
    assert_eq!(rig.m.status(), Status::Stopped);
}

/// SPEC `on_failure`: when the keeper gives up (here `restart = "no"` and a failed
/// exit), after `post_stop`; the keeper's end waits for it.
#[test]
fn on_failure_runs_when_the_keeper_gives_up() {
    let mut d = with_hooks();
    d.supervision.pre_start = None;
    d.supervision.restart = RestartPolicy::No;
    let mut rig = Rig::new(d);
    rig.up();
    rig.reaped(DAEMON.pid, code(2));
    let end = rig.feed(Input::Tick);
    assert_eq!(hook_run(&end).0, Hook::PostStop);
    let next = hook_ends(&mut rig, code(0), &[]);
    let (hook, vars) = hook_run(&next);
    assert_eq!(hook, Hook::OnFailure);
    assert_eq!(var(&vars, "DMGR_EVENT"), "exited");
    assert_eq!(var(&vars, "DMGR_EXIT_CODE"), "2");
    assert!(!next.contains(&Effect::Finish));
    let last = hook_ends(&mut rig, code(7), &[]);
    assert_eq!(event(&last, Kind::Hook).exit_code, Some(7));
    assert!(last.contains(&Effect::Finish));
    assert_eq!(rig.m.status(), Status::Failed);
}

/// SPEC `hook_timeout`: a hook still running past it is killed as a group, and its
/// event says so; a `pre_start` killed so fails the start.
#[test]
fn a_hook_past_hook_timeout_is_killed() {
    let mut rig = Rig::new(with_hooks());
    rig.feed(Input::Start { recorded: Ok(()) });
    rig.feed(Input::HookStarted { pid: HOOK });
    assert!(rig
        .m
        .timers()
        .contains(&(Timer::Hook, Some(rig.now.at + Duration::from_secs(5)))));
    assert!(rig.tick_after(4999).is_empty());
    assert_eq!(rig.tick_after(1), [Effect::KillCommand { pid: HOOK }]);
    let end = rig.reaped(HOOK, killed_by("KILL"));
    let message = event(&end, Kind::Hook).message.clone().unwrap();
    assert!(message.contains("hook_timeout (5s)"), "{message}");
    assert!(!end.iter().any(|e| matches!(e, Effect::SpawnDaemon { .. })));
}

/// A stop while `pre_start` runs kills it, and the keeper stops without a start.
#[test]
fn a_stop_during_pre_start_kills_it_and_stops() {
    let mut rig = Rig::new(with_hooks());
    rig.feed(Input::Start { recorded: Ok(()) });
    rig.feed(Input::HookStarted { pid: HOOK });
    let stop = rig.feed(Input::Stop { outside: None });
    assert!(stop.contains(&Effect::KillCommand { pid: HOOK }));
    assert_eq!(rig.m.status(), Status::Stopping);
    let end = rig.reaped(HOOK, killed_by("KILL"));
    assert!(end.contains(&Effect::Finish));
    assert!(!end
        .iter()
        .any(|e| matches!(e, Effect::SpawnDaemon { .. } | Effect::RunHook { .. })));
    assert_eq!(rig.m.status(), Status::Stopped);
}

/// A hook that cannot be started is its failure: a `pre_start` not found fails the
/// start.
#[test]
fn a_hook_that_cannot_run_is_a_failure() {
    let mut d = with_hooks();
    d.supervision.on_failure = None;
    let mut rig = Rig::new(d);
    rig.feed(Input::Start { recorded: Ok(()) });
    let after = rig.feed(Input::HookFailed {
        reason: "nginx: not found in PATH".into(),
    });
    assert!(kinds(&after).contains(&Kind::Hook));
    let end = rig.feed(Input::Tick);
    assert!(end.iter().any(|e| matches!(
        e,
        Effect::Report(Report::Failed { reason }) if reason.contains("not found")
    )));
}

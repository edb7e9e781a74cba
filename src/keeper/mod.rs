//! The keeper: one small process per running daemon.
//!
//! # Theory of operation
//!
//! `dmgr start` (see [`control`]) execs one launcher, `dmgr __launch` ([`argv`]), with
//! a notify pipe (`notify`) per daemon; the launcher ([`launcher`]), fresh and
//! single-threaded, closes every inherited fd but those pipes and detaches one keeper
//! per daemon with a double fork whose middle process stays as its holder (`holder`:
//! it makes the output pipes and keeps them, and the daemon's processes, should the
//! keeper die). The keeper closes the other daemons' pipes, takes the title `dmgr ...
//! __keeper --name NAME ...` and, with no exec:
//!
//! 1. makes itself a child subreaper
//!    (so every descendant of the daemon is reaped by it, never by PID 1), blocks the
//!    signals it handles and reads them from a signalfd;
//! 2. loads the daemon's file, locks its pidfile in the run directory (held until the
//!    keeper exits), opens the logs and, where it can, creates a cgroup for the
//!    daemon (see [`cgroup`]);
//! 3. forks the command's process, which sets itself up (session, process group,
//!    descriptors, directory, umask, credentials, signals) and then waits at a start
//!    gate; the keeper moves it into the cgroup, writes the PID to the pidfile and the
//!    state record, and only then opens the gate for the exec. A keeper killed at any
//!    moment therefore never leaves behind a daemon that no record names. stdout and
//!    stderr go into pipes that the keeper reads (its holder keeps them open too, and
//!    reads them only once the keeper is gone);
//! 4. for `type = "forking"`, waits for the command to exit 0, then adopts the daemon
//!    it left behind: the process its own `pidfile` names, once that is a child of
//!    the keeper, or else the one child left, once it has been the only one for
//!    `start_wait` (the middle process of a double fork exits within that);
//! 5. after `start_wait` (and the `ready` check, each attempt a process of its own in
//!    its own process group, see [`probe`]) reports `ok PID` on the notify pipe, or
//!    `err REASON` if the command failed to exec, died or never became ready;
//! 6. loops in poll(2) on the signalfd and the log pipes with a timeout only while a
//!    timer is due (start_wait, readiness probes, backoff, stop timeout, health
//!    checks, sampled `memory_max`), and on the cgroup's `memory.events` where the
//!    kernel enforces `memory_max`: an idle keeper sleeps with no timeout and uses
//!    no CPU;
//! 7. on SIGCHLD reaps every child; when a forking daemon's main process exits it
//!    reads the daemon's pidfile again and follows it to a process of the daemon's
//!    own that took over (`handover`); when the daemon exits it drains the pipes (so
//!    the last words before a crash reach the log), stops everything the daemon left
//!    (see below), removes a forking daemon's own pidfile if it still names the dead
//!    process, and asks `policy` whether to restart;
//! 8. on SIGTERM, SIGINT or SIGQUIT enters a stopping phase (from then on it never
//!    respawns), kills a running probe's group, runs `stop_command` if there is one,
//!    stops everything the daemon started,
//!    writes the final state record, unlinks the pidfile and exits, which releases
//!    the lock: `dmgr stop` waits on exactly that. Only a SIGTERM that `dmgr stop`
//!    marked (`request`) is a stop by request; any other is recorded as an outside
//!    stop, with its sender, and `apply` starts such a daemon again;
//! 9. on the request signal of `dmgr reload` sends `reload_signal`, or runs
//!    `reload_command` in the daemon's tree, and answers with an event (`reloading`).
//!
//! Stopping "everything the daemon started" (`tracked`) means `stop_signal` to the
//! main process's group and to every other process of the keeper's tree and the
//! cgroup, SIGKILL after `stop_timeout`, and waiting until the keeper has no child
//! left and the cgroup is empty: a process that left the daemon's session with
//! setsid(2) is still the subreaper's descendant.
//!
//! SIGUSR1 re-reads the file and takes over changed supervision keys; SIGUSR2 rotates
//! the logs. The keeper signals its own unreaped children, their process group, or
//! other processes by identity (pidfd), so PID reuse cannot redirect its signals.
//!
//! What happens is written to the event history (`crate::events`), never to the
//! daemon's log, which holds only what the daemon wrote.
//!
//! # Layout
//!
//! This file is the loop: it turns poll(2) wake-ups, signals and reaped children into
//! calls of the pure decisions in `machine` (phase, timers, exits, stops, drains)
//! and carries out what they return. `launch` sets the keeper up and spawns processes
//! through the start gate of `sys::spawn_gated` (all `unsafe` is in [`sys`]); `probe`
//! runs readiness checks (and the liveness checks to come) as processes; `forking`
//! adopts what a `type = "forking"` command leaves; `tracked` finds and signals
//! everything the daemon started; `record` writes the state record and the end;
//! `stopping` drains what the daemon started and ends or restarts it; `timers` acts
//! on due timers; `handover` follows a new main process; `reloading` and `request`
//! carry out and answer `dmgr reload`; `policy`
//! decides restarts; `logpipe` writes the log; `foreground` is `dmgr run`.
//! On the CLI side, `control` starts and stops keepers (`stop_many` stops many at once), `ask` signals and reloads,
//! `leftovers` deals with a daemon whose keeper is gone.

pub mod argv;
mod ask;
pub mod cgroup;
pub mod control;
mod foreground;
mod forking;
mod handover;
pub mod health;
mod holder;
mod interrupted;
mod launch;
pub mod launcher;
mod leftovers;
mod liveness;
mod log_mark;
mod logpipe;
mod machine;
pub mod memory;
pub mod memory_events;
mod notify;
pub mod policy;
pub mod probe;
mod record;
mod reloading;
pub(crate) mod request;
pub mod resources;
// Read and judged here; the keeper's core acts on it once the notify protocol is
// wired into it (issue 26's second half), until then only the tests use it.
#[allow(dead_code)]
pub(crate) mod sd_notify;
mod spawn_step;
mod stop_many;
mod stopping;
pub mod sys;
mod timers;
mod tracked;

pub use foreground::{run_command, run_foreground};

use std::fs::File;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::config::{self, Daemon, Dirs};
use crate::events::{Event, History, Kind};
use crate::pidfile::LockedPidfile;
use crate::state::{self, Reason, StateRecord, Status};
use crate::Result;

use policy::{Decision, Policy, RunEnd, Tally};

use launch::{Launch, Pipe};
use logpipe::Notice;
use machine::{Child, ExitStep, Next, Phase};
use notify::{Report, Reporter};
use probe::{Probe, PROBE_INTERVAL};
use record::{describe_wait, exit_record, initial_record, record_failure};

/// The processes of a daemon whose keeper is gone that are still running, by
/// identity (see `leftovers`): what `stop` would stop.
pub fn processes_left(record: &state::StateRecord) -> Vec<crate::procinfo::ProcId> {
    leftovers::left_behind(record)
}

/// Runs the keeper of `args.name` until its daemon is stopped or given up on.
///
/// A plain function of its inputs (the directories, the daemon's name, the pipe to
/// report on, the pipes its [`holder`] made), which the holder calls in the keeper it
/// forks, with no exec.
pub(crate) fn run(
    dirs: &Dirs,
    name: &str,
    notify: Option<File>,
    single: sys::SingleThreaded,
    handoff: Option<holder::Handoff>,
) -> Result<u8> {
    match set_up(dirs, name, notify, single, handoff) {
        Some(mut keeper) => {
            keeper.run();
            Ok(0)
        }
        None => Ok(1),
    }
}

/// Loads the daemon's file and sets the keeper up; `None` once a failure has been
/// reported. Never inlined, and the keeper boxed: the parse and the set-up run in a
/// frame of their own, which is gone before the keeper idles (its stack pages are
/// then given back, see [`sys::release_free_memory`]).
#[inline(never)]
fn set_up(
    dirs: &Dirs,
    name: &str,
    notify: Option<File>,
    single: sys::SingleThreaded,
    handoff: Option<holder::Handoff>,
) -> Option<Box<Keeper>> {
    let mut reporter = Reporter::new(notify);
    // A keeper outlives the shell that started it: it must not keep that shell's
    // directory busy, nor create files with whatever umask the shell had.
    let _ = std::env::set_current_dir("/");
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));

    let file = config::file_of(dirs, name);
    // Taken before the read, so that no write after it can leave the identity as
    // recorded: `list` trusts the record's definition only while the file matches.
    let identity = state::FileIdentity::of(&file);
    let daemon = match config::load_daemon(dirs, name) {
        Ok(daemon) if daemon.keeper_lacks().is_some() => {
            let reason = daemon.keeper_lacks().unwrap_or_default();
            reporter.send(&Report::Failed { reason });
            return None;
        }
        Ok(daemon) => daemon,
        Err(invalid) => {
            let problems: Vec<String> = invalid
                .diagnostics
                .iter()
                .map(ToString::to_string)
                .collect();
            let reason = format!("invalid file:\n{}", problems.join("\n"));
            reporter.send(&Report::Failed { reason });
            return None;
        }
    };
    match Keeper::new(dirs.clone(), daemon, identity, reporter, single, handoff) {
        Ok(keeper) => Some(Box::new(keeper)),
        Err(mut reporter) => {
            reporter.close();
            None
        }
    }
}

struct Keeper {
    dirs: Dirs,
    daemon: Daemon,
    pidfile: Option<LockedPidfile>,
    signals: SignalFd,
    out: Pipe,
    err: Option<Pipe>,
    record: StateRecord,
    state_file: state::StateFile,
    tally: Tally,
    phase: Phase,
    child: Option<Child>,
    reporter: Reporter,
    launch: Launch,
    tracked: tracked::Tracked,
    events: History,
    /// Why the daemon runs without a cgroup, for the next `started` event.
    cgroup_note: Option<String>,
    /// The probe process that runs, if any (see [`probe`]).
    probe: Option<Probe>,
    /// The keeper forks its children without exec'ing first: see [`sys::spawn_gated`].
    single: sys::SingleThreaded,
    /// Where the log pipes are read into: 16 KiB allocated once and never initialised,
    /// so that only what the kernel writes into it costs memory.
    log_buffer: Vec<u8>,
    /// The liveness check and memory ceiling of a daemon that is up.
    watches: liveness::Watches,
    /// The `reload_command` that runs, if one does (see [`reloading`]).
    reload: Option<reloading::Reload>,
    /// The output pipes of commands the keeper ran, read until they close.
    captures: Vec<reloading::Capture>,
    /// Who stopped the daemon when it was not `dmgr stop` (an outside stop).
    stopped_by: Option<String>,
    /// Failed writes of the state record since the last one that worked.
    record_trouble: Option<record::RecordTrouble>,
}

impl Keeper {
    fn run(&mut self) {
        // A daemon that no record names could be neither listed nor stopped: without
        // a record, nothing starts (issue 16).
        if let Err(reason) = self.try_save() {
            self.finish(Status::Failed, Some(reason), Reason::StartFailed);
            return;
        }
        self.spawn();
        sys::release_free_memory();
        loop {
            if let Some((status, error, reason)) = self.finished() {
                self.finish(status, error, reason);
                return;
            }
            self.wait_for_events();
            self.on_timers();
        }
    }

    /// Sleeps in poll(2) until a signal, log output or the next timer.
    fn wait_for_events(&mut self) {
        let timeout = match self.next_deadline() {
            None => PollTimeout::NONE,
            Some(at) => {
                let ms = at.saturating_duration_since(Instant::now()).as_millis();
                // Round up so we never wake a hair early and spin.
                PollTimeout::try_from(ms.saturating_add(1).min(60_000) as i32)
                    .unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = vec![
            PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.out.read.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(err) = &self.err {
            fds.push(PollFd::new(err.read.as_fd(), PollFlags::POLLIN));
        }
        // Then the kernel's memory events, where they replace sampling (`liveness`).
        let logs = fds.len();
        if let Some(events) = &self.watches.memory_events {
            fds.push(PollFd::new(events.as_fd(), PollFlags::POLLIN));
        }
        // Last: the output of commands the keeper ran.
        let captures = fds.len();
        for capture in self.captures.iter().filter(|c| c.is_open()) {
            fds.push(PollFd::new(capture.read.as_fd(), PollFlags::POLLIN));
        }
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[1..logs].contains(&true) {
            self.pump_logs();
        }
        if ready[0] {
            self.on_signals();
        }
        if ready[captures..].contains(&true) {
            self.pump_captures();
        }
        if self.watches.memory_events.is_some() && ready.get(logs).copied().unwrap_or(false) {
            self.on_memory_events();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let probe = self.probe.map(|p| p.deadline);
        let mut deadline = self.phase.deadline(probe);
        // A health probe runs while the daemon is up, when the phase itself has no
        // timer; and so do the watches' own.
        let others = [probe, self.watches.deadline(), self.reload_deadline()];
        for other in others.into_iter().flatten() {
            deadline = Some(deadline.map_or(other, |d| d.min(other)));
        }
        deadline
    }

    fn pump_logs(&mut self) {
        let buffer = &mut self.log_buffer;
        for pipe in std::iter::once(&mut self.out).chain(self.err.as_mut()) {
            loop {
                match sys::read_spare(pipe.read.as_fd(), buffer) {
                    Ok([]) | Err(_) => break,
                    Ok(read) => pipe.sink.write_output(read),
                }
            }
        }
        self.take_log_notices();
    }

    /// Records what the log sinks saw since the last look: writing failed (a
    /// `log-error` event, and the error in the record for `status`), or works again
    /// (a `log-resumed` event with the count of lines dropped meanwhile, and the error
    /// cleared once no log fails).
    fn take_log_notices(&mut self) {
        let mut notices = self.out.sink.take_notices();
        if let Some(err) = &mut self.err {
            notices.extend(err.sink.take_notices());
        }
        if notices.is_empty() {
            return;
        }
        // The record first: whoever reads the event then finds the record saying so
        // (a record is written through a temporary file and fsync, which takes a
        // while).
        let error = self
            .out
            .sink
            .error()
            .or(self.err.as_ref().and_then(|p| p.sink.error()))
            .map(str::to_string);
        if error != self.record.log_error {
            self.record.log_error = error;
            self.save();
        }
        for notice in notices {
            let event = match notice {
                Notice::Failed(error) => self.event(Kind::LogError).message(error),
                Notice::Resumed { dropped, error } => {
                    let mut event = self
                        .event(Kind::LogResumed)
                        .message(logpipe::LogSink::resumed_message(dropped, &error));
                    event.dropped_lines = Some(dropped);
                    event
                }
            };
            self.record_event(event);
        }
    }

    /// An event of this daemon happening now, for [`Keeper::record_event`].
    fn event(&self, kind: Kind) -> Event {
        Event::now(&self.daemon.name, kind)
    }

    /// Appends `event` to the daemon's event history.
    fn record_event(&mut self, event: Event) {
        self.events.append(&event);
    }

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            if info.ssi_signo as i32 == sys::request_signal() {
                self.on_request(&info);
                continue;
            }
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => self.reap(),
                Ok(signal @ (Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT)) => {
                    self.on_stop_signal(signal, &info)
                }
                Ok(Signal::SIGUSR1) => self.take_over_supervision_keys(),
                Ok(Signal::SIGUSR2) => {
                    self.out.sink.rotate();
                    if let Some(err) = &mut self.err {
                        err.sink.rotate();
                    }
                }
                _ => {}
            }
        }
    }

    /// Reaps every exited child: the daemon (or a forking daemon's command), readiness
    /// probes, `stop_command`, and orphaned descendants handed to us as subreaper.
    fn reap(&mut self) {
        loop {
            match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    let Some(pid) = status.pid().map(Pid::as_raw) else {
                        continue;
                    };
                    self.on_child_exit(pid, status);
                }
            }
        }
        // An exit may have handed the keeper a forking daemon's process.
        if matches!(self.phase, Phase::Adopting(_)) {
            self.look_for_daemon(Instant::now());
        }
    }

    /// The child `pid` ended with `status`: the daemon, a probe, a command the keeper
    /// ran, or an orphan of the daemon's (nothing to do: a drain looks at what is left).
    fn on_child_exit(&mut self, pid: i32, status: WaitStatus) {
        if self.child.is_some_and(|c| c.id.pid == pid && !c.exited) {
            return self.on_daemon_exit(status);
        }
        if self.reload_command_exited(pid, status) {
            return;
        }
        if let Some(result) = self.probe_exited(pid, status) {
            match result {
                Some(ok) => self.on_probe_result(ok),
                // Killed at its deadline: a failed health check, if it was one.
                None if matches!(self.phase, Phase::Up(None)) => self.on_health_result(None),
                None => {}
            }
            return;
        }
        if matches!(self.phase, Phase::StopCommand { pid: Some(command), .. } if command == pid) {
            self.on_stop_command_exit(status);
        }
    }

    fn on_daemon_exit(&mut self, status: WaitStatus) {
        if self.child.is_some_and(|c| !c.adopted) {
            self.on_command_exit(status);
            return;
        }
        let Some(child) = self.child.as_mut() else {
            return;
        };
        child.exited = true;
        // Another process of the daemon's may have taken over (`handover`).
        let note = match self.hand_over(status) {
            handover::Outcome::Done => return,
            handover::Outcome::Ended(note) => note,
        };
        self.on_daemon_end(status, note);
    }

    /// The daemon's main process has ended with `status` and no other took over
    /// (`note` says why not, where a hand-over was tried): record the exit, and stop
    /// what is left before the restart policy's verdict.
    fn on_daemon_end(&mut self, status: WaitStatus, note: Option<String>) {
        // Whatever the daemon wrote before it died is already in the pipe.
        self.pump_logs();
        self.out.sink.end_run();
        if let Some(err) = &mut self.err {
            err.sink.end_run();
        }
        let Some(child) = self.child else {
            return;
        };
        let (pid, ran) = (child.id.pid, child.started.elapsed());
        let exit = exit_record(status, ran);
        let mut message = format!("after {}", config::units::format_duration(round_ms(ran)));
        if let Some(note) = note {
            message = format!("{message}; {note}");
        }
        if let Some(removed) = self.remove_forking_pidfile(pid) {
            message = format!("{message}; {removed}");
        }
        let mut exited = self.event(Kind::Exited).pid(pid).message(message);
        exited.exit_code = exit.code;
        exited.signal = exit.signal.clone();
        self.record_event(exited);
        if let Some(pidfile) = &mut self.pidfile {
            pidfile.clear();
        }
        self.record.daemon = None;
        self.record.last_exit = Some(exit.clone());
        self.record.history.push(exit.clone());
        let excess = self.record.history.len().saturating_sub(state::HISTORY_LEN);
        self.record.history.drain(..excess);

        let next = match machine::on_exit(&self.phase, self.reporter.is_pending()) {
            ExitStep::Decided => {
                self.save();
                return;
            }
            ExitStep::DrainStopped => Next::stopped(),
            ExitStep::FailStart => Next::start_failed(format!(
                "exited within start_wait ({}): {}",
                config::units::format_duration(self.daemon.supervision.start_wait),
                exit.describe()
            )),
            ExitStep::Judge => self.decide(exit.is_success(), ran),
        };
        self.drain(next);
    }

    /// A run failed before it was up (exec error, readiness timeout): the first start
    /// fails, and `finish` notes why in the log; a restart counts as a quick failure.
    fn fail_run(&mut self, reason: String) -> Next {
        if self.reporter.is_pending() {
            return Next::start_failed(reason);
        }
        // The `restarting` (or `gave-up`) event that follows says why.
        self.record.error = Some(reason);
        self.decide(false, Duration::ZERO)
    }

    fn decide(&mut self, success: bool, ran: Duration) -> Next {
        let policy = Policy {
            restart: self.daemon.supervision.restart,
            restart_delay: self.daemon.supervision.restart_delay,
            max_restarts: self.daemon.supervision.max_restarts,
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

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn round_ms(duration: Duration) -> Duration {
    Duration::from_millis(millis(duration))
}

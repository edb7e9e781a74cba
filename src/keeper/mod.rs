//! The keeper: one small process per running daemon.
//!
//! # Theory of operation
//!
//! `dmgr start` (see `client`) execs one launcher, `dmgr __launch`, with a pipe per
//! daemon for the keeper's report (`report`); the launcher (`crate::launcher`), fresh and
//! single-threaded, closes every inherited fd but those pipes and detaches one keeper
//! per daemon with a double fork whose middle process stays as its holder (`launcher::holder`:
//! it makes the output pipes and keeps them, and the daemon's processes, should the
//! keeper die). The keeper closes the other daemons' pipes, takes the title `dmgr ...
//! __keeper --name NAME ...` and, with no exec:
//!
//! 1. makes itself a child subreaper
//!    (so every descendant of the daemon is reaped by it, never by PID 1), blocks the
//!    signals it handles and reads them from a signalfd;
//! 2. loads the daemon's file, locks its pidfile in the run directory (held until the
//!    keeper exits), opens the logs and, where it can, creates a cgroup for the
//!    daemon (see `crate::cgroup`);
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
//!    checks, sampled `memory_max`, a notify daemon's watchdog or reload verdict), on
//!    the cgroup's `memory.events` where the kernel enforces `memory_max`, on a
//!    notify daemon's socket and on `ready = { fd }`'s pipe (`heard`): an idle keeper
//!    sleeps with no timeout and uses no CPU;
//! 7. on SIGCHLD reaps every child; when a forking daemon's main process exits it
//!    reads the daemon's pidfile again and follows it to a process of the daemon's
//!    own that took over (`core::handover`); when the daemon exits it drains the pipes
//!    (so the last words before a crash reach the log), stops everything the daemon
//!    left (see below), removes a forking daemon's own pidfile if it still names the
//!    dead process, and asks `core::policy` whether to restart;
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
//! Every decision and every "where are we" fact is in [`core`]: the [`Machine`]
//! (phase, main process, restart tally, probe, checks, reload, what `dmgr start` was
//! told) with the pure steps, the restart policy, the forking adoption, the main-PID
//! hand-over and the health and memory checks. This file is the loop: it reads the
//! time once per wake-up, turns poll(2) wake-ups (signals, reaped children, the
//! kernel's memory events) into [`Input`]s, and hands each [`Effect`] the machine asks
//! for to the one executor, `execute`. The rest is the IO the executor needs: `setup`
//! (the keeper's start-up), `exec_plan` (what each exec needs), `spawn` (every process
//! through the start gate of `sys::spawn_gated`; all `unsafe` is in [`crate::sys`]),
//! `probe` (readiness and liveness checks as processes), `facts` (what the machine
//! reads of `/proc`), `tracked` (finding and signalling everything the daemon
//! started), `record` (the state record, the take-over of supervision keys, the end),
//! `reloading` (the output of `reload_command`), `checks` (the kernel's memory
//! events), `logpipe` (the log). The CLI's side of all this (start and stop a keeper,
//! signal it, `dmgr run`, a dead keeper's leftovers) is `crate::client`.

mod checks;
pub(crate) mod core;
pub(crate) mod exec_plan;
mod execute;
mod facts;
pub(crate) mod handoff;
mod heard;
mod jobs;
pub(crate) mod logpipe;
pub(crate) mod memory_events;
pub(crate) mod probe;
mod ready_line;
mod record;
mod reloading;
pub(crate) mod report;
pub(crate) mod request;
pub(crate) mod resources;
pub(crate) mod restart;
pub(crate) mod sd_notify;
mod setup;
pub(crate) mod sockets;
mod spawn;
mod tracked;

use std::fs::File;
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use self::core::machine::{Input, Machine, Now};
use crate::config::{self, Daemon, Dirs};
use crate::events::{Event, History, Kind};
use crate::pidfile::LockedPidfile;
use crate::state::{self, StateRecord};
use crate::sys;
use crate::Result;

pub(crate) use self::core::machine::PROBE_INTERVAL;
use exec_plan::ExecPlan;
use logpipe::Notice;
use memory_events::MemoryEventsWatcher;
pub(crate) use record::{describe_wait, exit_of, exit_record, initial_record, record_failure};
use report::{Report, Reporter};
use setup::Pipe;

/// Runs the keeper of `args.name` until its daemon is stopped or given up on.
///
/// A plain function of its inputs (the directories, the daemon's name, the pipe to
/// report on, the pipes its [`crate::launcher::holder`] made), which the holder calls
/// in the keeper it forks, with no exec.
pub(crate) fn run(
    dirs: &Dirs,
    name: &str,
    notify: Option<File>,
    single: sys::SingleThreaded,
    handoff: Option<handoff::Handoff>,
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
    handoff: Option<handoff::Handoff>,
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

/// The keeper's IO around its [`Machine`]: the pidfile, the signals, the logs, the
/// record, the processes it tracks.
struct Keeper {
    dirs: Dirs,
    daemon: Daemon,
    machine: Machine,
    pidfile: Option<LockedPidfile>,
    signals: SignalFd,
    out: Pipe,
    err: Option<Pipe>,
    record: StateRecord,
    state_file: state::StateFile,
    reporter: Reporter,
    /// What the daemon's exec needs, prepared at each start.
    plan: ExecPlan,
    /// The daemon's `sockets`, bound at set-up and held until the keeper exits.
    sockets: sockets::HeldSockets,
    tracked: tracked::Tracked,
    events: History,
    /// The keeper forks its children without exec'ing first: see [`sys::spawn_gated`].
    single: sys::SingleThreaded,
    /// Where the log pipes are read into: 16 KiB mapped once, so that only what the
    /// kernel writes into it costs memory.
    log_buffer: sys::PageBuffer,
    /// A run was started since memory was last given back (see `wait_for_events`).
    release_due: bool,
    /// The kernel's memory events of the daemon's cgroup, where they drive `memory_max`.
    memory_events: Option<MemoryEventsWatcher>,
    /// The output pipes of commands the keeper ran, read until they close.
    captures: Vec<reloading::Capture>,
    /// Failed writes of the state record since the last one that worked.
    record_trouble: Option<record::RecordTrouble>,
    /// A notify daemon's socket (`NOTIFY_SOCKET`).
    notify_socket: Option<sys::notify_socket::NotifySocket>,
    /// `ready = { log }`'s matcher, over the run's output.
    ready_line: Option<ready_line::ReadyLine>,
    /// The keeper's end of `ready = { fd }`'s pipe, while the run's start waits for
    /// its newline.
    ready_fd: Option<std::os::fd::OwnedFd>,
    /// The timer on the wall clock of a `schedule` or `restart_schedule`.
    wall_timer: Option<jobs::WallTimer>,
}

impl Keeper {
    fn run(&mut self) {
        // A daemon that no record names could be neither listed nor stopped: without
        // a record, nothing starts.
        let recorded = self.try_save();
        // Memory goes back at the first wait with no timer (see `wait_for_events`):
        // not here, before the start is reported, whose code would fault back in.
        self.feed(Input::Start { recorded }, read_clock());
        loop {
            self.feed(Input::Tick, read_clock());
            if self.machine.is_finished() {
                return;
            }
            self.wait_for_events();
        }
    }

    /// Hands `input` to the machine at `now`, then carries out what it asks for, in
    /// order; an effect whose answer is another input has that answered (and carried
    /// out) first. Not inlined, nor is anything else the idle loop calls when it
    /// wakes: the frames of the effects stay off the stack the keeper idles on.
    #[inline(never)]
    fn feed(&mut self, input: Input, now: Now) {
        let before = self.machine.pending();
        {
            let seen = facts::Seen {
                keeper: self.record.keeper.pid,
                tracked: &self.tracked,
                pidfile: self.daemon.forking_pidfile.as_deref(),
                memory_events: self.memory_events.as_ref(),
            };
            self.machine.handle(input, now, &seen);
        }
        let added = self.machine.pending().saturating_sub(before);
        for _ in 0..added {
            match self.machine.poll_effect() {
                Some(effect) => self.execute(effect, now),
                None => break,
            }
        }
    }

    /// Sleeps in poll(2) until a signal, log output, a memory event or the machine's
    /// next timer, and hands the machine what happened.
    fn wait_for_events(&mut self) {
        let timeout = match self.machine.poll_timeout() {
            // Idle until something happens: once a run is under way, what its start
            // used (the record's writes, the report, the deepest calls) goes back.
            None if self.release_due => {
                self.release_due = false;
                sys::release_free_memory();
                PollTimeout::NONE
            }
            None => PollTimeout::NONE,
            Some(at) => {
                let ms = at
                    .saturating_duration_since(std::time::Instant::now())
                    .as_millis();
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
        // Then the kernel's memory events, where they replace sampling (`checks`).
        let logs = fds.len();
        if let Some(events) = &self.memory_events {
            fds.push(PollFd::new(events.as_fd(), PollFlags::POLLIN));
        }
        // Then the notify socket.
        let notify = fds.len();
        if let Some(socket) = &self.notify_socket {
            fds.push(PollFd::new(socket.as_fd(), PollFlags::POLLIN));
        }
        // Then `ready = { fd }`'s pipe.
        let ready_fd = fds.len();
        if let Some(fd) = &self.ready_fd {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        // Then the schedule's timer on the wall clock.
        let wall = fds.len();
        if let Some(timer) = &mut self.wall_timer {
            timer.arm(self.machine.wall_deadline());
        }
        if let Some(timer) = &self.wall_timer {
            fds.push(PollFd::new(timer.as_fd(), PollFlags::POLLIN));
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
        let now = read_clock();
        if ready[1..logs].contains(&true) {
            self.pump_logs();
        }
        // Before the children are reaped: a sender that exited at once (`systemd-notify
        // --ready`) is still a zombie of the daemon's tree when it is judged.
        if self.notify_socket.is_some() && ready[notify..ready_fd].contains(&true) {
            self.read_notify_socket(now);
        }
        if self.ready_fd.is_some() && ready[ready_fd..wall].contains(&true) {
            self.read_ready_fd(now);
        }
        if ready[0] {
            self.on_signals(now);
        }
        if ready[captures..].contains(&true) {
            self.pump_captures();
        }
        if ready[wall..captures].contains(&true) {
            let changed = self.wall_timer.as_mut().is_some_and(|t| t.take());
            if changed {
                self.feed(Input::ClockChanged, now);
            }
        }
        if ready.get(logs).copied().unwrap_or(false) && logs < notify {
            let counters = self.memory_events.as_ref().and_then(|w| w.on_wake());
            if let Some(counters) = counters {
                self.feed(Input::MemoryEvents(counters), now);
            }
        }
    }

    #[inline(never)]
    fn pump_logs(&mut self) {
        let buffer = &mut self.log_buffer;
        let mut matcher = self
            .ready_line
            .as_mut()
            .filter(|_| self.machine.awaits_log_line());
        let mut matched = false;
        let streams = [ready_line::Stream::Out, ready_line::Stream::Err];
        let pipes = std::iter::once(&mut self.out).chain(self.err.as_mut());
        for (pipe, stream) in pipes.zip(streams) {
            loop {
                match buffer.read(pipe.read.as_fd()) {
                    Ok([]) | Err(_) => break,
                    Ok(read) => {
                        pipe.sink.write_output(read);
                        if let Some(matcher) = matcher.as_mut() {
                            matched |= matcher.feed(stream, read);
                        }
                    }
                }
            }
        }
        self.take_log_notices();
        if matched {
            self.feed(Input::SaidReady, read_clock());
        }
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
                Notice::Failed(error) => {
                    Event::new(&self.daemon.name, Kind::LogError).message(error)
                }
                Notice::Resumed { dropped, error } => {
                    let mut event = Event::new(&self.daemon.name, Kind::LogResumed)
                        .message(logpipe::LogSink::resumed_message(dropped, &error));
                    event.dropped_lines = Some(dropped);
                    event
                }
            };
            self.record_event(event);
        }
    }

    /// Appends `event` to the daemon's event history, stamped with the time now.
    fn record_event(&mut self, event: Event) {
        self.events.append(&event.stamped());
    }

    #[inline(never)]
    fn on_signals(&mut self, now: Now) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            if info.ssi_signo as i32 == sys::request_signal() {
                match request::Request::of(&info) {
                    Some((request::Request::Reload, number)) => self.feed(
                        Input::Reload {
                            request: Some(number),
                        },
                        now,
                    ),
                    Some((request::Request::Restart, number)) => self.restart(number, now),
                    _ => {}
                }
                continue;
            }
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => self.reap(now),
                Ok(signal @ (Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT)) => {
                    let outside = match request::Request::of(&info) {
                        Some((request::Request::Stop, _)) => None,
                        _ => Some(outside_stop(signal, info.ssi_pid as i32)),
                    };
                    self.feed(Input::Stop { outside }, now);
                }
                Ok(Signal::SIGUSR1) => self.take_over_supervision_keys(now),
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

    /// Reaps every exited child: the daemon (or a forking daemon's command), probes,
    /// the commands the keeper ran, and orphaned descendants handed to it as subreaper.
    fn reap(&mut self, now: Now) {
        loop {
            match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    let Some(pid) = status.pid().map(Pid::as_raw) else {
                        continue;
                    };
                    let output = self.take_output(pid);
                    let exit = exit_of(status);
                    self.feed(Input::Reaped { pid, exit, output }, now);
                }
            }
        }
    }
}

/// Who stopped the daemon with `signal` sent by `sender`, when it was not `dmgr stop`.
fn outside_stop(signal: Signal, sender: i32) -> String {
    let who = match crate::procinfo::command_line(sender, 200) {
        _ if sender <= 0 => "the kernel".to_string(),
        Some(command) => format!("pid {sender} ({command})"),
        None => format!("pid {sender}, gone since"),
    };
    let name = signal.as_str().trim_start_matches("SIG");
    format!("SIG{name} from {who}, not `dmgr stop`")
}

/// A start of time for the tests of the keeper's core, which read no clock.
#[cfg(test)]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}

/// The time of a wake-up, read once.
fn read_clock() -> Now {
    Now {
        at: std::time::Instant::now(),
        wall_ms: state::now_ms(),
    }
}

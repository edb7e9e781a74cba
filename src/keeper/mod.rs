//! The keeper: one small process per running daemon.
//!
//! # Theory of operation
//!
//! `dmgr start` (see [`control`]) double-forks and execs `dmgr __keeper --name NAME`
//! with a notify pipe. The keeper, fresh and single-threaded:
//!
//! 1. closes every inherited fd but the notify pipe, makes itself a child subreaper
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
//!    stderr go into pipes that only the keeper reads;
//! 4. for `type = "forking"`, waits for the command to exit 0, then adopts the daemon
//!    it left behind: the process its own `pidfile` names, once that is a child of
//!    the keeper, or else the one child left, once it has been the only one for
//!    `start_wait` (the middle process of a double fork exits within that);
//! 5. after `start_wait` (and the `ready` check) reports `ok PID` on the notify pipe,
//!    or `err REASON` if the command failed to exec, died or never became ready;
//! 6. loops in poll(2) on the signalfd and the log pipes with a timeout only while a
//!    timer is due (start_wait, readiness probes, backoff, stop timeout): an idle
//!    keeper sleeps with no timeout and uses no CPU;
//! 7. on SIGCHLD reaps every child; when the daemon exits it drains the pipes (so the
//!    last words before a crash reach the log), stops everything the daemon left (see
//!    below), removes a forking daemon's own pidfile if it still names the dead
//!    process, and asks `policy` whether to restart;
//! 8. on SIGTERM, SIGINT or SIGQUIT sets `stopping` (from then on it never respawns),
//!    runs `stop_command` if there is one, stops everything the daemon started,
//!    writes the final state record, unlinks the pidfile and exits, which releases
//!    the lock: `dmgr stop` waits on exactly that.
//!
//! Stopping "everything the daemon started" ([`tracked`]) means `stop_signal` to the
//! main process's group and to every other process of the keeper's tree and the
//! cgroup, SIGKILL after `stop_timeout`, and waiting until the keeper has no child
//! left and the cgroup is empty: a process that left the daemon's session with
//! setsid(2) is still the subreaper's descendant.
//!
//! SIGUSR1 re-reads the file and takes over changed supervision keys; SIGUSR2 rotates
//! the logs. The keeper signals its own unreaped children, their process group, or
//! other processes by identity (pidfd), so PID reuse cannot redirect its signals.

pub mod cgroup;
pub mod control;
mod foreground;
mod forking;
pub mod health;
mod logpipe;
pub mod memory;
pub mod policy;
pub mod resources;
pub mod sys;
mod tracked;

pub use foreground::{run_command, run_foreground};

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cli::KeeperArgs;
use crate::config::{self, Daemon, DaemonType, Dirs, ReadyCheck};
use crate::pidfile::{LockError, LockedPidfile};
use crate::procinfo::{self, ProcId, Stat};
use crate::state::{self, ExitRecord, Reason, StateRecord, Status};
use crate::Result;

use logpipe::LogSink;
use policy::{Decision, Policy, RunEnd, Tally};

/// How often a failing readiness probe is retried.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// Runs the keeper of `args.name` until its daemon is stopped or given up on.
pub fn run(dirs: &Dirs, args: &KeeperArgs) -> Result<u8> {
    let notify = args.notify_fd.and_then(sys::take_inherited_fd);
    let keep: Vec<i32> = notify.iter().map(AsRawFd::as_raw_fd).collect();
    sys::close_inherited_fds(&keep);
    let mut reporter = Reporter(notify);
    // A keeper outlives the shell that started it: it must not keep that shell's
    // directory busy, nor create files with whatever umask the shell had.
    let _ = std::env::set_current_dir("/");
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));

    let file = dirs.config_dir.join(format!("{}.toml", args.name));
    let daemon = match config::load_file(dirs, &file) {
        Ok(daemon) => daemon,
        Err(invalid) => {
            let problems: Vec<String> = invalid
                .diagnostics
                .iter()
                .map(ToString::to_string)
                .collect();
            reporter.fail(&format!("invalid file:\n{}", problems.join("\n")));
            return Ok(1);
        }
    };
    match Keeper::new(dirs.clone(), daemon, reporter) {
        Ok(mut keeper) => {
            keeper.run();
            Ok(0)
        }
        Err(mut reporter) => {
            reporter.close();
            Ok(1)
        }
    }
}

/// The notify pipe back to `dmgr start`, until the start's outcome is reported.
struct Reporter(Option<File>);

impl Reporter {
    fn is_pending(&self) -> bool {
        self.0.is_some()
    }

    fn succeed(&mut self, pid: i32) {
        self.send(&format!("ok {pid}\n"));
    }

    fn fail(&mut self, reason: &str) {
        self.send(&format!("err {reason}\n"));
    }

    fn send(&mut self, message: &str) {
        if let Some(mut pipe) = self.0.take() {
            // The CLI may have gone (interrupted); nobody else needs to know.
            let _ = pipe.write_all(message.as_bytes());
        }
    }

    fn close(&mut self) {
        self.0 = None;
    }
}

/// The process being supervised: the daemon, or for a forking daemon the command
/// that daemonizes until the process it leaves behind is adopted.
#[derive(Debug, Clone, Copy)]
struct Child {
    id: ProcId,
    /// For a forking daemon, false while this is the command, not the daemon.
    adopted: bool,
    started: Instant,
    /// Set once it has been reaped.
    exited: bool,
}

/// The start-up window of one run: `start_wait`, then readiness probes.
#[derive(Debug, Clone, Copy)]
struct Starting {
    settle_at: Instant,
    ready_by: Instant,
    next_probe: Instant,
    probe: Option<i32>,
}

/// What follows once everything the daemon started is gone.
#[derive(Debug, Clone)]
enum Next {
    Restart(Duration),
    Finish {
        status: Status,
        error: Option<String>,
        reason: Reason,
    },
}

impl Next {
    /// The end of a requested stop.
    fn stopped() -> Next {
        Next::Finish {
            status: Status::Stopped,
            error: None,
            reason: Reason::StoppedByRequest,
        }
    }
}

/// How far a drain has gone in signalling what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escalation {
    /// Nothing was left to signal when the drain began.
    Nothing,
    /// `stop_signal` was sent; SIGKILL follows at `kill_at`.
    Stop { kill_at: Instant },
    /// SIGKILL was sent; whatever shows up now gets it too.
    Killed,
}

#[derive(Debug, Clone)]
enum Phase {
    /// `type = "forking"`: the command runs or has exited; no daemon is adopted yet.
    Adopting(forking::Adopting),
    /// The daemon runs; `Some` while it is still starting.
    Up(Option<Starting>),
    /// Waiting to restart.
    Backoff { until: Instant },
    /// A requested stop runs `stop_command` (`pid`, `None` once it exited) and waits for
    /// the daemon to end; at `until` the command is killed and the signals follow.
    StopCommand { pid: Option<i32>, until: Instant },
    /// Everything the daemon started is being stopped and waited for.
    Draining { escalation: Escalation, next: Next },
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
    stopping: bool,
    reporter: Reporter,
    launch: Launch,
    tracked: tracked::Tracked,
}

/// One log pipe: the read end the keeper polls, the write end handed to each run.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    sink: LogSink,
}

/// Everything prepared for exec'ing the command, at each start.
struct Launch {
    program: std::path::PathBuf,
    env: Vec<(OsString, OsString)>,
    credentials: Option<sys::Credentials>,
    /// `limits`, `nice` and `oom_score_adj`, checked.
    resources: resources::Resources,
    /// The digest of the `env_file` files read for this start.
    env_file_digest: Option<u64>,
}

impl Keeper {
    fn new(
        dirs: Dirs,
        daemon: Daemon,
        mut reporter: Reporter,
    ) -> std::result::Result<Keeper, Reporter> {
        macro_rules! fail {
            ($($arg:tt)*) => {{
                reporter.fail(&format!($($arg)*));
                return Err(reporter);
            }};
        }
        let _ = nix::sys::prctl::set_child_subreaper(true);
        let mut mask = SigSet::empty();
        for signal in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGQUIT,
            Signal::SIGHUP,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
        ] {
            mask.add(signal);
        }
        if let Err(e) = mask.thread_block() {
            fail!("cannot block signals: {e}");
        }
        let signals =
            match SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
                Ok(fd) => fd,
                Err(e) => fail!("cannot create a signalfd: {e}"),
            };
        let pidfile = match LockedPidfile::try_lock(&daemon.pidfile) {
            Ok(locked) => locked,
            Err(LockError::Held) => fail!(
                "pidfile {} is locked by another process",
                daemon.pidfile.display()
            ),
            Err(LockError::Io(e)) => fail!("{e}"),
        };
        let launch = match Launch::prepare(&daemon) {
            Ok(launch) => launch,
            Err(reason) => {
                record_failure(&dirs, &daemon, &reason);
                pidfile.remove();
                fail!("{reason}");
            }
        };
        let open_pipe = |path: &std::path::Path| -> std::result::Result<Pipe, String> {
            let sink = LogSink::open(
                path,
                daemon.logs.log_max_size.0,
                daemon.logs.log_keep,
                daemon.logs.log_timestamps,
            )
            .map_err(|e| format!("cannot open the log {}: {e}", path.display()))?;
            let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| format!("cannot create a pipe: {e}"))?;
            let flags = nix::fcntl::fcntl(&read, nix::fcntl::FcntlArg::F_GETFL).unwrap_or(0);
            let _ = nix::fcntl::fcntl(
                &read,
                nix::fcntl::FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
            );
            Ok(Pipe { read, write, sink })
        };
        let out = match open_pipe(&daemon.process.log) {
            Ok(pipe) => pipe,
            Err(reason) => {
                record_failure(&dirs, &daemon, &reason);
                pidfile.remove();
                fail!("{reason}");
            }
        };
        let err = match daemon
            .process
            .stderr_log
            .as_deref()
            .map(open_pipe)
            .transpose()
        {
            Ok(pipe) => pipe,
            Err(reason) => {
                record_failure(&dirs, &daemon, &reason);
                pidfile.remove();
                fail!("{reason}");
            }
        };
        let mut record = initial_record(&daemon);
        record.output_pipes = std::iter::once(&out)
            .chain(err.as_ref())
            .filter_map(|pipe| nix::sys::stat::fstat(&pipe.write).ok())
            .map(|stat| stat.st_ino)
            .collect();
        let mut state_file = match state::StateFile::open(&dirs.state_file(&daemon.name)) {
            Ok(file) => file,
            Err(e) => {
                pidfile.remove();
                fail!("cannot open the state record: {e}");
            }
        };
        // On record before it exists: see `Cgroup::planned`.
        record.cgroup = cgroup::Cgroup::planned(&daemon.name, std::process::id());
        let cgroup = record.cgroup.as_deref().and_then(|path| {
            let _ = state_file.write(&record);
            cgroup::Cgroup::create(path)
        });
        record.cgroup = cgroup.as_ref().map(|c| c.path().to_path_buf());
        let tracked = tracked::Tracked::new(record.keeper, cgroup);
        Ok(Keeper {
            tracked,
            state_file,
            dirs,
            daemon,
            pidfile: Some(pidfile),
            signals,
            out,
            err,
            record,
            tally: Tally::default(),
            phase: Phase::Backoff {
                until: Instant::now(),
            },
            child: None,
            stopping: false,
            reporter,
            launch,
        })
    }

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
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready.get(1).copied().unwrap_or(false) || ready.get(2).copied().unwrap_or(false) {
            self.pump_logs();
        }
        if ready[0] {
            self.on_signals();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Adopting(a) if a.exited => Some(a.next_look.min(a.ready_by)),
            Phase::Adopting(a) => Some(a.ready_by),
            Phase::Up(Some(s)) if s.probe.is_none() => {
                Some(s.settle_at.max(s.next_probe).min(s.ready_by))
            }
            Phase::Up(Some(s)) => Some(s.ready_by),
            Phase::Up(None) => None,
            Phase::Backoff { until } => Some(*until),
            Phase::StopCommand { until, .. } => Some(*until),
            Phase::Draining { escalation, .. } => match escalation {
                Escalation::Stop { kill_at } => Some(*kill_at),
                Escalation::Nothing | Escalation::Killed => None,
            },
        }
    }

    fn pump_logs(&mut self) {
        let mut buffer = [0u8; 16 * 1024];
        for pipe in std::iter::once(&mut self.out).chain(self.err.as_mut()) {
            loop {
                match nix::unistd::read(&pipe.read, &mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => pipe.sink.write_output(&buffer[..n]),
                }
            }
        }
        let error = self
            .out
            .sink
            .error()
            .or(self.err.as_ref().and_then(|p| p.sink.error()));
        if error.is_some() && self.record.log_error.is_none() {
            self.record.log_error = error.map(str::to_string);
            self.save();
        }
    }

    fn note(&mut self, text: &str) {
        self.out.sink.note(text);
    }

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => self.reap(),
                Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) => self.stop(),
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
                    if self.child.is_some_and(|c| c.id.pid == pid && !c.exited) {
                        self.on_daemon_exit(status);
                    } else if let Phase::StopCommand { pid: command, .. } = self.phase {
                        if command == Some(pid) {
                            self.on_stop_command_exit(status);
                        }
                    } else if let Phase::Up(Some(starting)) = &mut self.phase {
                        if starting.probe == Some(pid) {
                            starting.probe = None;
                            let ok = matches!(status, WaitStatus::Exited(_, 0));
                            self.on_probe_result(ok);
                        }
                    }
                }
            }
        }
        // An exit may have handed the keeper a forking daemon's process.
        if matches!(self.phase, Phase::Adopting(_)) {
            self.look_for_daemon(Instant::now());
        }
    }

    fn on_daemon_exit(&mut self, status: WaitStatus) {
        if self.child.is_some_and(|c| !c.adopted) {
            self.on_command_exit(status);
            return;
        }
        // Whatever the daemon wrote before it died is already in the pipe.
        self.pump_logs();
        self.out.sink.end_partial_line();
        if let Some(err) = &mut self.err {
            err.sink.end_partial_line();
        }
        let Some(child) = self.child.as_mut() else {
            return;
        };
        child.exited = true;
        let (pid, ran) = (child.id.pid, child.started.elapsed());
        let exit = exit_record(status, ran);
        self.note(&format!(
            "exited ({}) after {}",
            exit.describe(),
            config::units::format_duration(round_ms(ran))
        ));
        if let Some(pidfile) = &mut self.pidfile {
            pidfile.clear();
        }
        self.remove_forking_pidfile(pid);
        self.record.daemon = None;
        self.record.last_exit = Some(exit.clone());
        self.record.history.push(exit.clone());
        let excess = self.record.history.len().saturating_sub(state::HISTORY_LEN);
        self.record.history.drain(..excess);

        match self.phase {
            // What follows was decided when the draining began (a stop, a readiness
            // timeout): the exit it caused must not be judged again.
            Phase::Draining { .. } | Phase::StopCommand { pid: Some(_), .. } => {
                self.save();
                return;
            }
            // stop_command is done and the daemon with it: stop what is left.
            Phase::StopCommand { pid: None, .. } => {
                self.drain(Next::stopped());
                return;
            }
            _ => {}
        }
        let starting = matches!(self.phase, Phase::Up(Some(_)));
        let next = if self.stopping {
            Next::stopped()
        } else if starting && self.reporter.is_pending() {
            Next::Finish {
                status: Status::Failed,
                error: Some(format!(
                    "exited within start_wait ({}): {}",
                    config::units::format_duration(self.daemon.supervision.start_wait),
                    exit.describe()
                )),
                reason: Reason::StartFailed,
            }
        } else {
            self.decide(exit.is_success(), ran)
        };
        self.drain(next);
    }

    /// A run failed before it was up (exec error, readiness timeout): the first start
    /// fails, and `finish` notes why in the log; a restart counts as a quick failure.
    fn fail_run(&mut self, reason: String) -> Next {
        if self.reporter.is_pending() {
            return Next::Finish {
                status: Status::Failed,
                error: Some(reason),
                reason: Reason::StartFailed,
            };
        }
        self.note(&reason);
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

    /// Stops everything the daemon started (the daemon itself may still run): sends
    /// `stop_signal` now and SIGKILL after `stop_timeout`; carries on with `next` once
    /// all of it is gone.
    fn drain(&mut self, next: Next) {
        self.tracked.begin_drain();
        let escalation = if self.tracked.tree_is_empty() {
            Escalation::Nothing
        } else {
            self.signal_all(self.daemon.supervision.stop_signal.0);
            Escalation::Stop {
                kill_at: Instant::now() + self.daemon.supervision.stop_timeout,
            }
        };
        self.phase = Phase::Draining { escalation, next };
        if self.stopping {
            self.record.status = Status::Stopping;
        }
        self.save();
    }

    /// Returns the final status once the keeper's work is done. While a drain waits,
    /// processes that showed up since it began get what the others got.
    fn finished(&mut self) -> Option<(Status, Option<String>, Reason)> {
        let Phase::Draining {
            mut escalation,
            next,
            ..
        } = self.phase.clone()
        else {
            return None;
        };
        if self.child.is_some_and(|c| !c.exited) {
            return None;
        }
        if !self.tracked.tree_is_empty() {
            let signal = match escalation {
                Escalation::Killed => Signal::SIGKILL,
                Escalation::Stop { .. } => self.daemon.supervision.stop_signal.0,
                Escalation::Nothing => {
                    escalation = Escalation::Stop {
                        kill_at: Instant::now() + self.daemon.supervision.stop_timeout,
                    };
                    self.daemon.supervision.stop_signal.0
                }
            };
            let group = self.live_group();
            self.tracked.signal(signal, group);
            self.phase = Phase::Draining { escalation, next };
            return None;
        }
        match next {
            Next::Finish {
                status,
                error,
                reason,
            } => Some((status, error, reason)),
            Next::Restart(delay) => {
                self.note(&format!(
                    "restarting in {} (restart {})",
                    config::units::format_duration(delay),
                    self.tally.restarts
                ));
                self.phase = Phase::Backoff {
                    until: Instant::now() + delay,
                };
                self.record.status = Status::Backoff;
                self.record.restarts = self.tally.restarts;
                self.record.next_restart_ms = Some(state::now_ms() + millis(delay));
                self.save();
                None
            }
        }
    }

    /// The main process's group, while the main process is our unreaped child: that
    /// pins the group's ID, so a signal to it cannot reach an unrelated group. Read
    /// afresh: a forking daemon may call setsid(2) after we adopted it.
    fn live_group(&self) -> Option<i32> {
        let child = self.child.filter(|c| !c.exited)?;
        Stat::read(child.id.pid).map(|s| s.pgrp)
    }

    /// Sends `signal` to everything the daemon started (see [`tracked`]).
    fn signal_all(&mut self, signal: Signal) {
        let group = self.live_group();
        self.tracked.signal(signal, group);
    }

    fn stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        let main = self.child.filter(|c| c.adopted && !c.exited);
        if let (Phase::Up(_), Some(argv), Some(main)) = (
            &self.phase,
            self.daemon.supervision.stop_command.clone(),
            main,
        ) {
            self.note(&format!("stopping (stop_command: {})", shell_words(&argv)));
            match self.spawn_command(&argv, main.id.pid) {
                Ok(pid) => {
                    self.phase = Phase::StopCommand {
                        pid: Some(pid),
                        until: Instant::now() + self.daemon.supervision.stop_timeout,
                    };
                    self.record.status = Status::Stopping;
                    self.save();
                    return;
                }
                Err(reason) => self.note(&format!(
                    "cannot run stop_command: {reason}; sending {}",
                    self.daemon.supervision.stop_signal
                )),
            }
        } else {
            self.note(&format!(
                "stopping ({})",
                self.daemon.supervision.stop_signal
            ));
        }
        match &mut self.phase {
            Phase::Draining { next, .. } => {
                *next = Next::stopped();
                self.record.status = Status::Stopping;
                self.save();
            }
            _ => self.drain(Next::stopped()),
        }
    }

    /// `stop_command` ended: once the daemon has ended too, whatever is left gets the
    /// usual signals; until then the keeper waits for it, within `stop_timeout`.
    fn on_stop_command_exit(&mut self, status: WaitStatus) {
        if !matches!(status, WaitStatus::Exited(_, 0)) {
            self.note(&format!("stop_command ended ({})", describe_wait(status)));
        }
        if self.child.is_none_or(|c| c.exited) {
            self.drain(Next::stopped());
        } else if let Phase::StopCommand { pid, .. } = &mut self.phase {
            *pid = None;
        }
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        match self.phase.clone() {
            Phase::Adopting(_) => self.look_for_daemon(now),
            Phase::Backoff { until } if now >= until => self.spawn(),
            Phase::StopCommand { pid, until } if now >= until => {
                let timeout = config::units::format_duration(self.daemon.supervision.stop_timeout);
                match pid {
                    Some(pid) => {
                        // Our unreaped child: its PID cannot have been reused.
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                        self.note(&format!(
                            "stop_command still running after {timeout}: killed it, sending {}",
                            self.daemon.supervision.stop_signal
                        ));
                    }
                    None => self.note(&format!(
                        "still running {timeout} after the stop began: sending {}",
                        self.daemon.supervision.stop_signal
                    )),
                }
                self.drain(Next::stopped());
            }
            Phase::Draining {
                escalation: Escalation::Stop { kill_at },
                next,
            } if now >= kill_at => {
                // Look first: what is gone needs nothing, and says nothing in the log.
                if !self.tracked.live().is_empty() {
                    self.note(&format!(
                        "still running {} after {}: sending KILL",
                        config::units::format_duration(self.daemon.supervision.stop_timeout),
                        self.daemon.supervision.stop_signal
                    ));
                }
                let group = self.live_group();
                self.tracked.signal(Signal::SIGKILL, group);
                self.phase = Phase::Draining {
                    escalation: Escalation::Killed,
                    next,
                };
            }
            Phase::Up(Some(starting)) => self.on_starting(starting, now),
            _ => {}
        }
    }

    fn on_starting(&mut self, mut starting: Starting, now: Instant) {
        if now < starting.settle_at {
            return;
        }
        let Some(check) = self.daemon.supervision.ready.clone() else {
            self.on_up();
            return;
        };
        if now >= starting.ready_by {
            let reason = format!(
                "not ready within ready_timeout ({})",
                config::units::format_duration(self.daemon.supervision.ready_timeout)
            );
            let next = self.fail_run(reason);
            // The daemon is still up: drain sends it stop_signal, then SIGKILL.
            self.drain(next);
            return;
        }
        if starting.probe.is_some() || now < starting.next_probe {
            return;
        }
        starting.next_probe = now + PROBE_INTERVAL;
        self.phase = Phase::Up(Some(starting));
        match check {
            ReadyCheck::File(path) => self.on_probe_result(path.exists()),
            ReadyCheck::Tcp(address) => self.on_probe_result(probe_tcp(&address)),
            ReadyCheck::Exec(argv) => match self.spawn_probe(&argv) {
                Some(pid) => {
                    if let Phase::Up(Some(s)) = &mut self.phase {
                        s.probe = Some(pid);
                    }
                }
                None => self.on_probe_result(false),
            },
        }
    }

    fn on_probe_result(&mut self, ok: bool) {
        if ok && matches!(self.phase, Phase::Up(Some(_))) {
            self.on_up();
        }
    }

    /// The daemon is past `start_wait` and ready.
    fn on_up(&mut self) {
        self.phase = Phase::Up(None);
        self.record.status = Status::Running;
        self.save();
        if let Some(child) = self.child {
            self.reporter.succeed(child.id.pid);
        }
    }

    fn spawn_probe(&self, argv: &[String]) -> Option<i32> {
        let program = sys::resolve_program(argv.first()?, path_of(&self.launch.env))?;
        let options = self.spawn_options(&program, argv, &self.launch.env, false);
        let gated = sys::spawn_gated(&options).ok()?;
        let pid = gated.pid();
        gated.release().ok().map(|()| pid)
    }

    /// Starts `argv` (`stop_command`) like a probe, with `MAINPID` set to `main`.
    fn spawn_command(&self, argv: &[String], main: i32) -> std::result::Result<i32, String> {
        let env = with_mainpid(&self.launch.env, main);
        let program = sys::resolve_program(&argv[0], path_of(&env))
            .ok_or_else(|| format!("{}: not found in PATH", argv[0]))?;
        let options = self.spawn_options(&program, argv, &env, false);
        let gated = sys::spawn_gated(&options).map_err(|e| e.to_string())?;
        let pid = gated.pid();
        gated.release().map_err(|e| e.to_string())?;
        Ok(pid)
    }

    /// How to start `argv` with the daemon's user and directory and environment `env`,
    /// with its output into the logs.
    fn spawn_options<'a>(
        &'a self,
        program: &'a std::path::Path,
        argv: &'a [String],
        env: &'a [(OsString, OsString)],
        new_session: bool,
    ) -> sys::SpawnOptions<'a> {
        sys::SpawnOptions {
            program,
            argv,
            env,
            working_dir: &self.daemon.process.working_dir,
            umask: self.daemon.process.umask,
            credentials: self.launch.credentials.as_ref(),
            stdout: Some(self.out.write.as_fd()),
            stderr: Some(self.err.as_ref().unwrap_or(&self.out).write.as_fd()),
            new_session,
            keep_stdin: false,
            resources: Some(&self.launch.resources),
        }
    }

    /// Starts (or restarts) the daemon's process.
    fn spawn(&mut self) {
        // A restart reads `env_file` again, as every start does (the first was read
        // by `Keeper::new`); a file that now fails fails this run.
        if self.record.started_at_ms.is_some() {
            match Launch::prepare(&self.daemon) {
                Ok(launch) => self.launch = launch,
                Err(reason) => {
                    let next = self.fail_run(reason);
                    self.drain(next);
                    return;
                }
            }
        }
        let now = Instant::now();
        let options = self.spawn_options(
            &self.launch.program,
            &self.daemon.process.command,
            &self.launch.env,
            true,
        );
        let spawned = sys::spawn_gated(&options).and_then(|gated| {
            // Into the cgroup and on record before it may run the command: should
            // this keeper die now, or the record not be written, the child finds its
            // gate closed and exits, and no copy runs that nobody knows of.
            let pid = gated.pid();
            self.join_cgroup(pid);
            self.record_spawn(pid, now)
                .map_err(|reason| sys::SpawnError {
                    step: "record",
                    error: std::io::Error::other(reason),
                })?;
            gated.release().map(|()| pid)
        });
        match spawned {
            Ok(pid) => {
                self.note(&format!(
                    "started (pid {pid}): {}",
                    shell_words(&self.daemon.process.command)
                ));
                let ready_by = now
                    + self
                        .daemon
                        .supervision
                        .ready_timeout
                        .max(self.daemon.supervision.start_wait);
                self.phase = match self.daemon.kind {
                    DaemonType::Forking => Phase::Adopting(forking::Adopting {
                        ready_by: now + self.daemon.supervision.ready_timeout,
                        exited: false,
                        children: Vec::new(),
                        since: now,
                        next_look: now,
                    }),
                    DaemonType::Simple => Phase::Up(Some(Starting {
                        settle_at: now + self.daemon.supervision.start_wait,
                        ready_by,
                        next_probe: now,
                        probe: None,
                    })),
                };
                if self.daemon.supervision.start_wait.is_zero() {
                    self.on_timers();
                }
            }
            Err(e) => {
                let reason = match e.step {
                    "exec" => format!("cannot exec {}: {e}", self.launch.program.display()),
                    "record" => format!("not started: {}", e.error),
                    _ => format!("cannot start {}: {e}", self.launch.program.display()),
                };
                // The child exits by itself; its SIGCHLD matches no daemon now.
                self.child = None;
                self.record.daemon = None;
                if let Some(pidfile) = &mut self.pidfile {
                    pidfile.clear();
                }
                let next = self.fail_run(reason);
                self.drain(next);
            }
        }
    }

    /// Moves the new process `pid` into the daemon's cgroup. If the kernel refuses, the
    /// keeper goes on without cgroups: its tree still holds every process.
    fn join_cgroup(&mut self, pid: i32) {
        let Some(cgroup) = &self.tracked.cgroup else {
            return;
        };
        if let Err(e) = cgroup.add(pid) {
            let path = cgroup.path().display().to_string();
            cgroup.remove();
            self.tracked.cgroup = None;
            self.record.cgroup = None;
            self.note(&format!(
                "cannot use the cgroup {path} ({e}); going on without"
            ));
        }
    }

    /// Writes the pidfile and the state record for a new daemon process.
    fn record_spawn(&mut self, pid: i32, now: Instant) -> std::result::Result<(), String> {
        let start = Stat::read(pid).map_or(0, |s| s.start);
        let child = Child {
            id: ProcId { pid, start },
            adopted: self.daemon.kind == DaemonType::Simple,
            started: now,
            exited: false,
        };
        self.child = Some(child);
        if let Some(pidfile) = &mut self.pidfile {
            if let Err(e) = pidfile.write_pid(pid) {
                self.out.sink.note(&e.to_string());
            }
        }
        self.record.daemon = Some(child.id);
        self.record.env_file_digest = self.launch.env_file_digest;
        self.record.started_at_ms = Some(state::now_ms());
        self.record.status = Status::Starting;
        self.record.next_restart_ms = None;
        self.record.error = None;
        self.try_save()
    }

    /// SIGUSR1: re-read the file and take over changed supervision keys, leaving the
    /// running process alone.
    fn take_over_supervision_keys(&mut self) {
        let Ok(fresh) = config::load_file(&self.dirs, &self.daemon.file) else {
            self.note("reload of supervision keys skipped: the file does not load");
            return;
        };
        let changed = self.record.supervision.changed(&fresh.supervision);
        let d = &mut self.daemon;
        d.supervision = fresh.supervision;
        d.autostart = fresh.autostart;
        d.description = fresh.description;
        d.after = fresh.after;
        self.record.stop_signal = self.daemon.supervision.stop_signal;
        self.record.stop_timeout_ms = millis(self.daemon.supervision.stop_timeout);
        self.record.supervision = self.daemon.supervision.clone();
        self.note(&format!("took over changed keys: {}", changed.join(", ")));
        self.save();
    }

    fn finish(&mut self, status: Status, error: Option<String>, reason: Reason) {
        self.pump_logs();
        match (&error, status) {
            (Some(reason), _) => self.note(reason),
            (None, Status::Stopped) if self.stopping => self.note("stopped"),
            _ => {}
        }
        self.record.status = status;
        self.record.reason = Some(reason);
        self.record.daemon = None;
        self.record.next_restart_ms = None;
        self.record.error = error.clone();
        // Everything is gone: nothing is left for `stop` or `start` to look for,
        // which spares them a scan of /proc for every daemon a keeper finished.
        self.record.output_pipes.clear();
        if let Some(cgroup) = self.tracked.cgroup.take() {
            cgroup.remove();
        }
        self.record.cgroup = None;
        self.save();
        // Unlink first, then release the lock by closing: never the other way round.
        // Both before the report, so that a failed `start` returns with no pidfile
        // left (promise 1).
        if let Some(pidfile) = self.pidfile.take() {
            pidfile.remove();
        }
        if self.reporter.is_pending() {
            let reason = error.unwrap_or_else(|| "stopped before it was up".to_string());
            self.reporter.fail(&reason);
        }
    }

    /// Writes the record; a failure is noted in the log (see [`Keeper::try_save`]).
    fn save(&mut self) {
        let _ = self.try_save();
    }

    /// Writes the record; a failure is noted in the log and returned.
    fn try_save(&mut self) -> std::result::Result<(), String> {
        self.state_file.write(&self.record).map_err(|e| {
            let reason = format!(
                "cannot write the state record {}: {e}",
                self.dirs.state_file(&self.daemon.name).display()
            );
            self.out.sink.note(&reason);
            reason
        })
    }
}

/// The state record a keeper starts from.
fn initial_record(daemon: &Daemon) -> StateRecord {
    let me = ProcId::of(std::process::id() as i32).unwrap_or(ProcId {
        pid: std::process::id() as i32,
        start: 0,
    });
    StateRecord {
        name: daemon.name.clone(),
        keeper: me,
        daemon: None,
        status: Status::Starting,
        started_at_ms: None,
        restarts: 0,
        last_exit: None,
        history: Vec::new(),
        next_restart_ms: None,
        error: None,
        log_error: None,
        pidfile: daemon.pidfile.clone(),
        log: daemon.process.log.clone(),
        stderr_log: daemon.process.stderr_log.clone(),
        command: daemon.process.command.clone(),
        stop_signal: daemon.supervision.stop_signal,
        stop_timeout_ms: millis(daemon.supervision.stop_timeout),
        process: daemon.process.clone(),
        supervision: daemon.supervision.clone(),
        output_pipes: Vec::new(),
        boot_id: procinfo::boot_id().map(str::to_string),
        reason: None,
        cgroup: None,
        daemon_pidfile: daemon.forking_pidfile.clone(),
        foreground: false,
        env_file_digest: None,
    }
}

/// Leaves a `failed` record when a start fails before the daemon ever ran. Called only
/// while holding the pidfile lock, so it never overwrites a live keeper's record.
fn record_failure(dirs: &Dirs, daemon: &Daemon, reason: &str) {
    let mut record = initial_record(daemon);
    record.status = Status::Failed;
    record.reason = Some(Reason::StartFailed);
    record.error = Some(reason.to_string());
    let _ = state::write(&dirs.state_file(&daemon.name), &record);
}

impl Launch {
    fn prepare(daemon: &Daemon) -> std::result::Result<Launch, String> {
        // The inherited environment as bytes: a variable that is not UTF-8 is passed
        // on as it is (std::env::vars would panic on it).
        // What the daemon file sets: `env_file` in order, then `env`, which wins.
        let (set, env_file_digest) = set_variables(daemon)?;
        let mut env: Vec<(OsString, OsString)> = if daemon.process.clear_env {
            Vec::new()
        } else {
            std::env::vars_os()
                .filter(|(k, _)| k.to_str().is_none_or(|k| !set.contains_key(k)))
                .collect()
        };
        env.extend(
            set.iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        let credentials = credentials_for(daemon)?;
        if let (Some(_), Some(name)) = (&credentials, &daemon.process.user) {
            // As login(1) and systemd's User= do: the user's own identity variables,
            // unless the file sets them.
            if let Ok(Some(user)) = nix::unistd::User::from_name(name) {
                let own = [
                    ("USER", user.name.clone()),
                    ("LOGNAME", user.name.clone()),
                    ("HOME", user.dir.display().to_string()),
                ];
                for (key, value) in own {
                    if !set.contains_key(key) {
                        env.retain(|(k, _)| k != key);
                        env.push((key.into(), value.into()));
                    }
                }
            }
        }
        match std::fs::metadata(&daemon.process.working_dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "working_dir {} is not a directory",
                    daemon.process.working_dir.display()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "working_dir {}: {}",
                    daemon.process.working_dir.display(),
                    os_reason(&e)
                ))
            }
        }
        let name = &daemon.process.command[0];
        let program = sys::resolve_program(name, path_of(&env))
            .ok_or_else(|| format!("cannot exec {name}: not found in PATH"))?;
        let resources = resources::Resources::prepare(&daemon.process)?;
        Ok(Launch {
            program,
            env,
            credentials,
            resources,
            env_file_digest,
        })
    }
}

/// The variables the daemon file sets, `env_file` read now and then `env` on top,
/// and the digest of the files read (`None` without `env_file`).
fn set_variables(
    daemon: &Daemon,
) -> std::result::Result<(std::collections::BTreeMap<String, String>, Option<u64>), String> {
    let mut set = std::collections::BTreeMap::new();
    let mut digest = None;
    if !daemon.process.env_file.is_empty() {
        let loaded = config::env_file::load(&daemon.process.env_file)?;
        set.extend(loaded.vars);
        digest = Some(loaded.digest);
    }
    set.extend(
        daemon
            .process
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    Ok((set, digest))
}

fn credentials_for(daemon: &Daemon) -> std::result::Result<Option<sys::Credentials>, String> {
    use nix::unistd::{Group, User};
    if daemon.process.user.is_none() && daemon.process.group.is_none() {
        return Ok(None);
    }
    let user = match &daemon.process.user {
        Some(name) => Some(
            User::from_name(name)
                .map_err(|e| format!("cannot look up user {name}: {e}"))?
                .ok_or_else(|| format!("unknown user {name}"))?,
        ),
        None => None,
    };
    let group_gid = match &daemon.process.group {
        Some(name) => Some(
            Group::from_name(name)
                .map_err(|e| format!("cannot look up group {name}: {e}"))?
                .ok_or_else(|| format!("unknown group {name}"))?
                .gid,
        ),
        None => None,
    };
    let me = nix::unistd::geteuid();
    let uid = user.as_ref().map_or(me, |u| u.uid);
    let gid = group_gid
        .or(user.as_ref().map(|u| u.gid))
        .unwrap_or(nix::unistd::getegid());
    if !me.is_root() {
        if uid == me && gid == nix::unistd::getegid() {
            return Ok(None);
        }
        return Err("user and group need dmgr to run as root".to_string());
    }
    // As initgroups(user, gid) sets them, the way systemd, sudo and start-stop-daemon
    // do: the user's member groups in the group database plus the daemon's gid. The
    // user's primary group is not added when `group` names another, so a daemon keeps
    // no access its configuration took away.
    let groups: Vec<libc::gid_t> = match &user {
        Some(u) => {
            let name =
                std::ffi::CString::new(u.name.as_str()).map_err(|_| "bad user name".to_string())?;
            nix::unistd::getgrouplist(&name, gid)
                .map_err(|e| format!("cannot read the groups of {}: {e}", u.name))?
                .into_iter()
                .map(|g| g.as_raw())
                .collect()
        }
        None => vec![gid.as_raw()],
    };
    Ok(Some(sys::Credentials {
        uid: uid.as_raw(),
        gid: gid.as_raw(),
        groups,
    }))
}

fn path_of(env: &[(OsString, OsString)]) -> Option<&str> {
    env.iter()
        .find(|(k, _)| k == "PATH")
        .and_then(|(_, v)| v.to_str())
}

fn probe_tcp(address: &str) -> bool {
    let Ok(addresses) = address.to_socket_addrs() else {
        return false;
    };
    addresses
        .into_iter()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok())
}

/// The OS reason without Rust's " (os error N)" suffix.
fn os_reason(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn round_ms(duration: Duration) -> Duration {
    Duration::from_millis(millis(duration))
}

/// `env` with `MAINPID` set to `main`, for `stop_command` and `reload_command`.
fn with_mainpid(env: &[(OsString, OsString)], main: i32) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = env
        .iter()
        .filter(|(k, _)| k != "MAINPID")
        .cloned()
        .collect();
    env.push(("MAINPID".into(), main.to_string().into()));
    env
}

/// How a run that lasted `ran` ended, from its wait status.
fn exit_record(status: WaitStatus, ran: Duration) -> ExitRecord {
    ExitRecord {
        code: match status {
            WaitStatus::Exited(_, code) => Some(code),
            _ => None,
        },
        signal: match status {
            WaitStatus::Signaled(_, signal, _) => {
                Some(signal.as_str().trim_start_matches("SIG").to_string())
            }
            _ => None,
        },
        at_ms: state::now_ms(),
        ran_ms: millis(ran),
    }
}

/// `exit 1` or `signal KILL`, for the log.
fn describe_wait(status: WaitStatus) -> String {
    exit_record(status, Duration::ZERO).describe()
}

fn shell_words(argv: &[String]) -> String {
    shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
}

/// Reads everything from a notify pipe (used by `control`).
pub(crate) fn read_all(mut file: File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    text
}

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
//! 2. loads the daemon's file, locks the pidfile (held until the keeper exits) and
//!    opens the logs;
//! 3. forks the command's process, which sets itself up (session, process group,
//!    descriptors, directory, umask, credentials, signals) and then waits at a start
//!    gate; the keeper writes the PID to the pidfile and the state record, and only
//!    then opens the gate for the exec. A keeper killed at any moment therefore never
//!    leaves behind a daemon that no record names. stdout and stderr go into pipes
//!    that only the keeper reads;
//! 4. after `start_wait` (and the `ready` check) reports `ok PID` on the notify pipe,
//!    or `err REASON` if the command failed to exec, died or never became ready;
//! 5. loops in poll(2) on the signalfd and the log pipes with a timeout only while a
//!    timer is due (start_wait, readiness probes, backoff, stop timeout): an idle
//!    keeper sleeps with no timeout and uses no CPU;
//! 6. on SIGCHLD reaps every child; when the daemon exits it drains the pipes (so the
//!    last words before a crash reach the log), empties the process group, and asks
//!    `policy` whether to restart;
//! 7. on SIGTERM, SIGINT or SIGQUIT sets `stopping` (from then on it never respawns),
//!    sends `stop_signal` to the process group, SIGKILL after `stop_timeout`, waits
//!    until the group is empty, writes the final state record, unlinks the pidfile
//!    and exits, which releases the lock: `dmgr stop` waits on exactly that.
//!
//! SIGUSR1 re-reads the file and takes over changed supervision keys; SIGUSR2 rotates
//! the logs. The keeper signals only its own unreaped children or their process
//! group, so PID reuse cannot redirect its signals.

pub mod control;
mod logpipe;
pub mod policy;
pub mod sys;

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
use crate::state::{self, ExitRecord, ProcessKeys, StateRecord, Status, SupervisionKeys};
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

/// The process being supervised.
#[derive(Debug, Clone, Copy)]
struct Child {
    id: ProcId,
    /// The process group stop signals go to: the PID itself for a simple daemon, the
    /// group the adopted process lives in for a forking one.
    group: i32,
    /// For a forking daemon, false until the process it left behind is adopted.
    adopted: bool,
    started: Instant,
    started_ms: u64,
    /// Set once it has been reaped, with how it ended.
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

/// What follows once the process group is empty.
#[derive(Debug, Clone)]
enum Next {
    Restart(Duration),
    Finish {
        status: Status,
        error: Option<String>,
    },
}

#[derive(Debug, Clone)]
enum Phase {
    /// The daemon runs; `Some` while it is still starting.
    Up(Option<Starting>),
    /// Waiting to restart.
    Backoff { until: Instant },
    /// The daemon's group is being emptied; `kill_at` is when SIGKILL follows.
    Draining {
        kill_at: Option<Instant>,
        next: Next,
    },
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
}

/// One log pipe: the read end the keeper polls, the write end handed to each run.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    sink: LogSink,
}

/// Everything prepared once for exec'ing the command.
struct Launch {
    program: std::path::PathBuf,
    env: Vec<(OsString, OsString)>,
    credentials: Option<sys::Credentials>,
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
                daemon.log_max_size.0,
                daemon.log_keep,
                daemon.log_timestamps,
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
        let out = match open_pipe(&daemon.log) {
            Ok(pipe) => pipe,
            Err(reason) => {
                record_failure(&dirs, &daemon, &reason);
                pidfile.remove();
                fail!("{reason}");
            }
        };
        let err = match daemon.stderr_log.as_deref().map(open_pipe).transpose() {
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
        let state_file = match state::StateFile::open(&dirs.state_file(&daemon.name)) {
            Ok(file) => file,
            Err(e) => {
                pidfile.remove();
                fail!("cannot open the state record: {e}");
            }
        };
        Ok(Keeper {
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
            self.finish(Status::Failed, Some(reason));
            return;
        }
        self.spawn();
        sys::release_free_memory();
        loop {
            if let Some((status, error)) = self.finished() {
                self.finish(status, error);
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
            Phase::Up(Some(s)) if s.probe.is_none() => {
                Some(s.settle_at.max(s.next_probe).min(s.ready_by))
            }
            Phase::Up(Some(s)) => Some(s.ready_by),
            Phase::Up(None) => None,
            Phase::Backoff { until } => Some(*until),
            Phase::Draining { kill_at, .. } => *kill_at,
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

    /// Reaps every exited child: the daemon, readiness probes and orphaned
    /// descendants handed to us as subreaper.
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
    }

    /// A forking daemon's first process exited 0: find the process it left behind
    /// (reparented to us, the subreaper) and supervise that from now on. Returns false
    /// if there is no single such process.
    fn adopt(&mut self) -> std::result::Result<(), String> {
        let Some(first) = self.child else {
            return Err("no process to adopt".into());
        };
        let me = std::process::id() as i32;
        let mut candidates: Vec<i32> = procinfo::children_of(me)
            .into_iter()
            .filter(|pid| !matches!(&self.phase, Phase::Up(Some(s)) if s.probe == Some(*pid)))
            .collect();
        if candidates.len() > 1 {
            // The program's own pidfile, when it wrote dmgr's, names the one.
            if let Some(pid) = crate::pidfile::read_pid(&self.daemon.pidfile) {
                candidates.retain(|&c| c == pid);
            }
        }
        let [pid] = candidates[..] else {
            return Err(format!(
                "type = \"forking\": the command exited 0 leaving {} processes; expected exactly one",
                candidates.len()
            ));
        };
        let Some(stat) = Stat::read(pid) else {
            return Err("the process left behind vanished".into());
        };
        self.child = Some(Child {
            id: ProcId {
                pid,
                start: stat.start,
            },
            group: stat.pgrp,
            adopted: true,
            ..first
        });
        if let Some(pidfile) = &mut self.pidfile {
            let _ = pidfile.write_pid(pid);
        }
        self.record.daemon = Some(ProcId {
            pid,
            start: stat.start,
        });
        self.note(&format!(
            "adopted pid {pid}, left behind by the command (type = \"forking\")"
        ));
        self.save();
        Ok(())
    }

    fn on_daemon_exit(&mut self, status: WaitStatus) {
        if self.child.is_some_and(|c| !c.adopted)
            && matches!(status, WaitStatus::Exited(_, 0))
            && !self.stopping
        {
            self.pump_logs();
            match self.adopt() {
                Ok(()) => return,
                Err(reason) => {
                    self.note(&reason);
                    if let Some(child) = &mut self.child {
                        child.exited = true;
                    }
                    self.record.daemon = None;
                    let next = Next::Finish {
                        status: Status::Failed,
                        error: Some(reason),
                    };
                    self.drain(next);
                    return;
                }
            }
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
        let ran = child.started.elapsed();
        let exit = ExitRecord {
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
        };
        self.note(&format!(
            "exited ({}) after {}",
            exit.describe(),
            config::units::format_duration(round_ms(ran))
        ));
        if let Some(pidfile) = &mut self.pidfile {
            pidfile.clear();
        }
        self.record.daemon = None;
        self.record.last_exit = Some(exit.clone());
        self.record.history.push(exit.clone());
        let excess = self.record.history.len().saturating_sub(state::HISTORY_LEN);
        self.record.history.drain(..excess);

        if matches!(self.phase, Phase::Draining { .. }) {
            // What follows was decided when the draining began (a stop, a readiness
            // timeout): the exit it caused must not be judged again.
            self.save();
            return;
        }
        let starting = matches!(self.phase, Phase::Up(Some(_)));
        let next = if self.stopping {
            Next::Finish {
                status: Status::Stopped,
                error: None,
            }
        } else if starting && self.reporter.is_pending() {
            Next::Finish {
                status: Status::Failed,
                error: Some(format!(
                    "exited within start_wait ({}): {}",
                    config::units::format_duration(self.daemon.start_wait),
                    exit.describe()
                )),
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
            };
        }
        self.note(&reason);
        self.record.error = Some(reason);
        self.decide(false, Duration::ZERO)
    }

    fn decide(&mut self, success: bool, ran: Duration) -> Next {
        let policy = Policy {
            restart: self.daemon.restart,
            restart_delay: self.daemon.restart_delay,
            max_restarts: self.daemon.max_restarts,
        };
        match policy::on_exit(&policy, &mut self.tally, RunEnd { success, ran }) {
            Decision::Restart(delay) => Next::Restart(delay),
            Decision::Finish { failed: false } => Next::Finish {
                status: Status::Stopped,
                error: None,
            },
            Decision::Finish { failed: true } => Next::Finish {
                status: Status::Failed,
                error: None,
            },
            Decision::GiveUp => Next::Finish {
                status: Status::Failed,
                error: Some(format!(
                    "gave up after {} quick failures in a row",
                    self.tally.quick_failures
                )),
            },
        }
    }

    /// Empties the daemon's process group (the daemon itself may still run), then
    /// carries on with `next`.
    fn drain(&mut self, next: Next) {
        let kill_at = if self.group_is_empty() {
            None
        } else {
            self.signal_group(self.daemon.stop_signal.0);
            Some(Instant::now() + self.daemon.stop_timeout)
        };
        self.phase = Phase::Draining { kill_at, next };
        self.record.status = if self.stopping {
            Status::Stopping
        } else {
            self.record.status
        };
        self.save();
    }

    /// Returns the final status once the keeper's work is done.
    fn finished(&mut self) -> Option<(Status, Option<String>)> {
        let Phase::Draining { next, .. } = &self.phase else {
            return None;
        };
        let next = next.clone();
        let daemon_gone = self.child.is_none_or(|c| c.exited);
        if !daemon_gone || !self.group_is_empty() {
            return None;
        }
        match next {
            Next::Finish { status, error } => Some((status, error)),
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

    /// The daemon's process group now. While the daemon is our unreaped child its PID
    /// cannot be reused, so reading its group afresh is safe, and needed: a forking
    /// daemon may call setsid(2) after we adopted it.
    fn group(&mut self) -> Option<i32> {
        let child = self.child.as_mut()?;
        if !child.exited {
            if let Some(stat) = Stat::read(child.id.pid) {
                child.group = stat.pgrp;
            }
        }
        Some(child.group)
    }

    fn group_is_empty(&mut self) -> bool {
        let Some(group) = self.group() else {
            return true;
        };
        matches!(
            nix::sys::signal::killpg(Pid::from_raw(group), None),
            Err(Errno::ESRCH)
        )
    }

    fn signal_group(&mut self, signal: Signal) {
        if let Some(group) = self.group() {
            let group = Pid::from_raw(group);
            let _ = nix::sys::signal::killpg(group, signal);
            // A stopped process only acts on a signal once continued.
            if signal != Signal::SIGKILL {
                let _ = nix::sys::signal::killpg(group, Signal::SIGCONT);
            }
        }
    }

    fn stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.note(&format!("stopping ({})", self.daemon.stop_signal));
        let group_empty = self.group_is_empty();
        match &mut self.phase {
            Phase::Up(_) => {
                self.phase = Phase::Draining {
                    kill_at: None,
                    next: Next::Finish {
                        status: Status::Stopped,
                        error: None,
                    },
                };
                self.signal_group(self.daemon.stop_signal.0);
                if let Phase::Draining { kill_at, .. } = &mut self.phase {
                    *kill_at = Some(Instant::now() + self.daemon.stop_timeout);
                }
                self.record.status = Status::Stopping;
                self.save();
            }
            Phase::Backoff { .. } => {
                self.phase = Phase::Draining {
                    kill_at: None,
                    next: Next::Finish {
                        status: Status::Stopped,
                        error: None,
                    },
                };
            }
            Phase::Draining { next, kill_at } => {
                *next = Next::Finish {
                    status: Status::Stopped,
                    error: None,
                };
                if kill_at.is_none() && !group_empty {
                    *kill_at = Some(Instant::now() + self.daemon.stop_timeout);
                }
                self.record.status = Status::Stopping;
                self.save();
            }
        }
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        match self.phase.clone() {
            Phase::Backoff { until } if now >= until => self.spawn(),
            Phase::Draining {
                kill_at: Some(at),
                next,
            } if now >= at => {
                // Look first: once the group is empty its ID may be handed on.
                if !self.group_is_empty() {
                    self.note(&format!(
                        "still running {} after {}: sending KILL",
                        config::units::format_duration(self.daemon.stop_timeout),
                        self.daemon.stop_signal
                    ));
                    self.signal_group(Signal::SIGKILL);
                }
                self.phase = Phase::Draining {
                    kill_at: None,
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
        let Some(check) = self.daemon.ready.clone() else {
            self.on_up();
            return;
        };
        if now >= starting.ready_by {
            let reason = format!(
                "not ready within ready_timeout ({})",
                config::units::format_duration(self.daemon.ready_timeout)
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
        let gated = sys::spawn_gated(&self.spawn_options(&program, argv, false)).ok()?;
        let pid = gated.pid();
        gated.release().ok().map(|()| pid)
    }

    /// How to start `argv` in the daemon's environment, with its output into the logs.
    fn spawn_options<'a>(
        &'a self,
        program: &'a std::path::Path,
        argv: &'a [String],
        new_session: bool,
    ) -> sys::SpawnOptions<'a> {
        sys::SpawnOptions {
            program,
            argv,
            env: &self.launch.env,
            working_dir: &self.daemon.working_dir,
            umask: self.daemon.umask,
            credentials: self.launch.credentials.as_ref(),
            stdout: Some(self.out.write.as_fd()),
            stderr: Some(self.err.as_ref().unwrap_or(&self.out).write.as_fd()),
            new_session,
            keep_stdin: false,
        }
    }

    /// Starts (or restarts) the daemon's process.
    fn spawn(&mut self) {
        let now = Instant::now();
        let options = self.spawn_options(&self.launch.program, &self.daemon.command, true);
        let spawned = sys::spawn_gated(&options).and_then(|gated| {
            // Record the process before it may run the command: should this keeper
            // die now, or the record not be written, the child finds its gate closed
            // and exits, and no copy runs that nobody knows of.
            let pid = gated.pid();
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
                    shell_words(&self.daemon.command)
                ));
                self.phase = Phase::Up(Some(Starting {
                    settle_at: now + self.daemon.start_wait,
                    ready_by: now + self.daemon.ready_timeout.max(self.daemon.start_wait),
                    next_probe: now,
                    probe: None,
                }));
                if self.daemon.start_wait.is_zero() {
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
                self.phase = Phase::Draining {
                    kill_at: None,
                    next,
                };
            }
        }
    }

    /// Writes the pidfile and the state record for a new daemon process.
    fn record_spawn(&mut self, pid: i32, now: Instant) -> std::result::Result<(), String> {
        let start = Stat::read(pid).map_or(0, |s| s.start);
        let child = Child {
            id: ProcId { pid, start },
            group: pid,
            adopted: self.daemon.kind == DaemonType::Simple,
            started: now,
            started_ms: state::now_ms(),
            exited: false,
        };
        self.child = Some(child);
        if let Some(pidfile) = &mut self.pidfile {
            if let Err(e) = pidfile.write_pid(pid) {
                self.out.sink.note(&e.to_string());
            }
        }
        self.record.daemon = Some(child.id);
        self.record.started_at_ms = Some(child.started_ms);
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
        let d = &mut self.daemon;
        d.restart = fresh.restart;
        d.restart_delay = fresh.restart_delay;
        d.max_restarts = fresh.max_restarts;
        d.start_wait = fresh.start_wait;
        d.ready = fresh.ready;
        d.ready_timeout = fresh.ready_timeout;
        d.stop_signal = fresh.stop_signal;
        d.stop_timeout = fresh.stop_timeout;
        d.reload_signal = fresh.reload_signal;
        d.autostart = fresh.autostart;
        d.description = fresh.description;
        d.after = fresh.after;
        self.record.stop_signal = self.daemon.stop_signal.number();
        self.record.stop_timeout_ms = millis(self.daemon.stop_timeout);
        let fresh = SupervisionKeys::of(&self.daemon);
        let changed = state::changed_keys(&self.record.supervision, &fresh);
        self.record.supervision = fresh;
        self.note(&format!("took over changed keys: {}", changed.join(", ")));
        self.save();
    }

    fn finish(&mut self, status: Status, error: Option<String>) {
        self.pump_logs();
        match (&error, status) {
            (Some(reason), _) => self.note(reason),
            (None, Status::Stopped) if self.stopping => self.note("stopped"),
            _ => {}
        }
        self.record.status = status;
        self.record.daemon = None;
        self.record.next_restart_ms = None;
        self.record.error = error.clone();
        // The group is drained: nothing is left for `stop` or `start` to look for,
        // which spares them a scan of /proc for every daemon a keeper finished.
        self.record.output_pipes.clear();
        self.save();
        if self.reporter.is_pending() {
            let reason = error.unwrap_or_else(|| "stopped before it was up".to_string());
            self.reporter.fail(&reason);
        }
        // Unlink first, then release the lock by closing: never the other way round.
        if let Some(pidfile) = self.pidfile.take() {
            pidfile.remove();
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
        log: daemon.log.clone(),
        stderr_log: daemon.stderr_log.clone(),
        command: daemon.command.clone(),
        stop_signal: daemon.stop_signal.number(),
        stop_timeout_ms: millis(daemon.stop_timeout),
        process: ProcessKeys::of(daemon),
        supervision: SupervisionKeys::of(daemon),
        output_pipes: Vec::new(),
    }
}

/// Leaves a `failed` record when a start fails before the daemon ever ran. Called only
/// while holding the pidfile lock, so it never overwrites a live keeper's record.
fn record_failure(dirs: &Dirs, daemon: &Daemon, reason: &str) {
    let mut record = initial_record(daemon);
    record.status = Status::Failed;
    record.error = Some(reason.to_string());
    let _ = state::write(&dirs.state_file(&daemon.name), &record);
}

impl Launch {
    fn prepare(daemon: &Daemon) -> std::result::Result<Launch, String> {
        // The inherited environment as bytes: a variable that is not UTF-8 is passed
        // on as it is (std::env::vars would panic on it).
        let mut env: Vec<(OsString, OsString)> = if daemon.clear_env {
            Vec::new()
        } else {
            std::env::vars_os()
                .filter(|(k, _)| k.to_str().is_none_or(|k| !daemon.env.contains_key(k)))
                .collect()
        };
        env.extend(
            daemon
                .env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        let credentials = credentials_for(daemon)?;
        if let (Some(_), Some(name)) = (&credentials, &daemon.user) {
            // As login(1) and systemd's User= do: the user's own identity variables,
            // unless the file sets them.
            if let Ok(Some(user)) = nix::unistd::User::from_name(name) {
                let own = [
                    ("USER", user.name.clone()),
                    ("LOGNAME", user.name.clone()),
                    ("HOME", user.dir.display().to_string()),
                ];
                for (key, value) in own {
                    if !daemon.env.contains_key(key) {
                        env.retain(|(k, _)| k != key);
                        env.push((key.into(), value.into()));
                    }
                }
            }
        }
        match std::fs::metadata(&daemon.working_dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "working_dir {} is not a directory",
                    daemon.working_dir.display()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "working_dir {}: {}",
                    daemon.working_dir.display(),
                    os_reason(&e)
                ))
            }
        }
        let name = &daemon.command[0];
        let program = sys::resolve_program(name, path_of(&env))
            .ok_or_else(|| format!("cannot exec {name}: not found in PATH"))?;
        Ok(Launch {
            program,
            env,
            credentials,
        })
    }
}

fn credentials_for(daemon: &Daemon) -> std::result::Result<Option<sys::Credentials>, String> {
    use nix::unistd::{Group, User};
    if daemon.user.is_none() && daemon.group.is_none() {
        return Ok(None);
    }
    let user = match &daemon.user {
        Some(name) => Some(
            User::from_name(name)
                .map_err(|e| format!("cannot look up user {name}: {e}"))?
                .ok_or_else(|| format!("unknown user {name}"))?,
        ),
        None => None,
    };
    let group_gid = match &daemon.group {
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

fn shell_words(argv: &[String]) -> String {
    shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
}

/// Reads everything from a notify pipe (used by `control`).
pub(crate) fn read_all(mut file: File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    text
}

/// Runs `daemon` in the foreground for `dmgr run`: same environment, working
/// directory, umask and credentials as under a keeper, but output to the terminal, no
/// new session (so Ctrl-C reaches it directly), TERM/INT/HUP/QUIT/USR1/USR2 forwarded,
/// and its exit status returned (128 + N for death by signal N).
pub fn run_foreground(daemon: &Daemon) -> Result<u8> {
    let fail = |message: String| crate::Error::daemon(&daemon.name, message);
    let launch = Launch::prepare(daemon).map_err(|m| fail(format!("cannot start: {m}")))?;
    let mut mask = SigSet::empty();
    let forwarded = [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ];
    for signal in forwarded.iter().copied().chain([Signal::SIGCHLD]) {
        mask.add(signal);
    }
    mask.thread_block()
        .map_err(|e| fail(format!("cannot block signals: {e}")))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)
        .map_err(|e| fail(format!("cannot create a signalfd: {e}")))?;
    let options = sys::SpawnOptions {
        program: &launch.program,
        argv: &daemon.command,
        env: &launch.env,
        working_dir: &daemon.working_dir,
        umask: daemon.umask,
        credentials: launch.credentials.as_ref(),
        stdout: None,
        stderr: None,
        new_session: false,
        keep_stdin: true,
    };
    let gated = sys::spawn_gated(&options)
        .map_err(|e| fail(format!("cannot start {}: {e}", launch.program.display())))?;
    let pid = gated.pid();
    gated
        .release()
        .map_err(|e| fail(format!("cannot exec {}: {e}", launch.program.display())))?;
    let pid = Pid::from_raw(pid);
    loop {
        match nix::sys::wait::waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(u8::try_from(code).unwrap_or(1)),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128u8.saturating_add(signal as u8)),
            Ok(_) => {}
            Err(e) => return Err(fail(format!("cannot wait for pid {pid}: {e}"))),
        }
        // Blocks until a signal arrives: SIGCHLD, or one to pass on.
        if let Ok(Some(info)) = signals.read_signal() {
            if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                if forwarded.contains(&signal) {
                    let _ = nix::sys::signal::kill(pid, signal);
                }
            }
        }
    }
}

//! Commands run in the foreground of the calling `dmgr` rather than under a keeper:
//! the daemon itself for `dmgr run`, and `reload_command` for `dmgr reload`. Both get
//! the daemon's environment, working directory, umask and user, as under a keeper,
//! and the terminal for their output.
//!
//! `dmgr run` takes the keeper's place while it runs: it holds the daemon's pidfile
//! lock and writes a state record naming itself as the keeper (`foreground: true`), so
//! `list` shows the daemon running, `start` finds it running and starts no second
//! copy, and `stop` stops it by signalling `dmgr run`, as it would a keeper.

use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::config::{Daemon, DaemonType, Dirs, KillMode};
use crate::events::{Event, History, Kind};
use crate::keeper::exec_plan::{path_of, with_mainpid, ExecPlan};
use crate::keeper::{exit_record, initial_record, PROBE_INTERVAL};
use crate::pidfile::{LockedPidfile, OperationLock};
use crate::procinfo::{ProcId, Stat};
use crate::state::{self, Reason, Status};
use crate::sys;
use crate::{Error, Result};

/// Runs `daemon` in the foreground for `dmgr run`: no new session (so Ctrl-C reaches
/// it directly), TERM/INT/HUP/QUIT/USR1/USR2 forwarded, SIGKILL `stop_timeout` after a
/// forwarded TERM, INT or QUIT if it is still there, and its exit status returned
/// (128 + N for death by signal N). The caller has checked that the daemon is not
/// running and holds its operation lock (released once the record names the process)
/// and its pidfile lock (held until the end).
pub(crate) fn run_foreground(
    dirs: &Dirs,
    daemon: &Daemon,
    lock: OperationLock,
    mut pidfile: LockedPidfile,
) -> Result<u8> {
    // Holding the pidfile lock, `dmgr run` owns the history as a keeper would.
    let mut events = History::open(&dirs.events_file(&daemon.name));
    let event = |kind| Event::now(&daemon.name, kind);
    let mut record = initial_record(daemon);
    record.foreground = true;
    let mut state_file = state::StateFile::open(&dirs.state_file(&daemon.name))
        .map_err(|e| Error::cannot(&daemon.name, "open the state record", e))?;
    let finish = |state_file: &mut state::StateFile,
                  record: &mut state::StateRecord,
                  status,
                  reason,
                  error: Option<String>| {
        record.status = status;
        record.reason = Some(reason);
        record.error = error;
        record.daemon = None;
        let _ = state_file.write(record);
    };
    // The plan, and the sockets held for as long as `dmgr run` runs, as a keeper holds
    // them.
    let prepared = ExecPlan::prepare(daemon).and_then(|launch| {
        crate::keeper::sockets::HeldSockets::bind(
            &daemon.process.sockets,
            launch.credentials.as_ref(),
        )
        .map(|held| (launch, held))
    });
    let (launch, held) = match prepared {
        Ok(prepared) => prepared,
        Err(m) => {
            finish(
                &mut state_file,
                &mut record,
                Status::Failed,
                Reason::StartFailed,
                Some(m.clone()),
            );
            pidfile.remove();
            return Err(Error::cannot(&daemon.name, "start", m));
        }
    };
    let held = held.fds();
    let forwarded = [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ];
    let mut mask = SigSet::empty();
    for signal in forwarded.iter().copied().chain([Signal::SIGCHLD]) {
        mask.add(signal);
    }
    mask.thread_block()
        .map_err(|e| Error::cannot(&daemon.name, "block signals", e))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| Error::cannot(&daemon.name, "create a signalfd", e))?;
    let options = on_terminal(
        daemon,
        &launch,
        &launch.program,
        &daemon.process.command,
        &launch.env,
    );
    let options = sys::SpawnOptions {
        keep_stdin: true,
        sockets: &held,
        ..options
    };
    let single = sys::SingleThreaded::check()
        .ok_or_else(|| Error::cannot(&daemon.name, "start", "dmgr runs more than one thread"))?;
    // What the daemon leaves behind is handed to us, not to PID 1, so that its end
    // (a stop included) leaves nothing running (promise 4), as under a keeper.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let spawned = sys::spawn_gated(&single, &options).and_then(|gated| {
        // On record before it runs the command, as under a keeper.
        let pid = gated.pid();
        let start = Stat::read(pid).map_or(0, |s| s.start);
        record.daemon = Some(ProcId { pid, start });
        record.started_at_ms = Some(state::now_ms());
        record.env_file_digest = launch.env_file_digest;
        record.status = Status::Running;
        let _ = pidfile.write_pid(pid);
        let _ = state_file.write(&record);
        gated.release().map(|()| pid)
    });
    drop(lock);
    let pid = match spawned {
        Ok(pid) => pid,
        Err(e) => {
            // As the keeper words it: `exec`'s error alone, the step of any other.
            let message = format!("{}: {e}", launch.program.display());
            finish(
                &mut state_file,
                &mut record,
                Status::Failed,
                Reason::StartFailed,
                Some(message.clone()),
            );
            pidfile.remove();
            return Err(Error::cannot(&daemon.name, "start", message));
        }
    };
    let forking = daemon.kind == DaemonType::Forking;
    if !forking {
        events.append(
            &event(Kind::Started)
                .pid(pid)
                .message("dmgr run, in the foreground"),
        );
    }
    let started = Instant::now();
    // The process waited for: the command, then for `type = "forking"` the daemon it
    // left, looked for until `ready_timeout` while `adopting`.
    let mut main = Pid::from_raw(pid);
    let mut adopting: Option<Adopting> = None;
    let mut kill_at: Option<Instant> = None;
    let ended = loop {
        if let Some(looking) = &mut adopting {
            match looking.look(daemon) {
                Look::Found(id) => {
                    main = Pid::from_raw(id.pid);
                    adopting = None;
                    record.daemon = Some(id);
                    let _ = pidfile.write_pid(id.pid);
                    let _ = state_file.write(&record);
                    let found = match &daemon.forking_pidfile {
                        Some(path) => format!("named by its pidfile {}", path.display()),
                        None => "left behind by the command".to_string(),
                    };
                    let message =
                        format!("{found} (type = \"forking\"); dmgr run, in the foreground");
                    events.append(&event(Kind::Started).pid(id.pid).message(message));
                }
                Look::NotYet => {}
                Look::Failed(why) => break Ended::NotAdopted(why),
            }
        } else {
            match nix::sys::wait::waitpid(main, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, 0)) if forking && main.as_raw() == pid => {
                    if record.reason.is_some() {
                        break Ended::NotAdopted("stopped before the daemon was found".into());
                    }
                    // The command daemonized: what it left is the daemon.
                    adopting = Some(Adopting::new(started + daemon.supervision.ready_timeout));
                    continue;
                }
                Ok(status @ WaitStatus::Exited(..)) if forking && main.as_raw() == pid => {
                    break Ended::NotAdopted(format!(
                        "the command ended ({}) instead of exiting 0 once the daemon was up",
                        crate::keeper::describe_wait(status)
                    ));
                }
                Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                    break Ended::Exit(status)
                }
                Ok(_) => {}
                Err(e) => {
                    pidfile.remove();
                    return Err(Error::cannot(
                        &daemon.name,
                        format!("wait for pid {main}"),
                        e,
                    ));
                }
            }
        }
        if kill_at.is_some_and(|at| Instant::now() >= at) {
            // Our unreaped child: its PID cannot have been reused.
            let _ = nix::sys::signal::kill(main, Signal::SIGKILL);
            kill_at = None;
            let limit = crate::config::units::format_duration(daemon.supervision.stop_timeout);
            let killed = event(Kind::Killed).pid(main.as_raw()).signal("KILL");
            events.append(&killed.message(format!("still running {limit} after the stop signal")));
        }
        // Sleeps until a signal arrives (SIGCHLD, or one to pass on), SIGKILL is due,
        // or it is time to look for a forking daemon again.
        let wake = [kill_at, adopting.as_ref().map(|a| a.next_look)]
            .into_iter()
            .flatten()
            .min();
        let timeout = wake.map_or(PollTimeout::NONE, |at| {
            let ms = at.saturating_duration_since(Instant::now()).as_millis() + 1;
            PollTimeout::try_from(i32::try_from(ms).unwrap_or(i32::MAX)).unwrap_or(PollTimeout::MAX)
        });
        let _ = nix::poll::poll(
            &mut [PollFd::new(
                std::os::fd::AsFd::as_fd(&signals),
                PollFlags::POLLIN,
            )],
            timeout,
        );
        let mut stop_while_adopting = false;
        while let Ok(Some(info)) = signals.read_signal() {
            let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            if forwarded.contains(&signal) {
                let stops = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT];
                if adopting.is_none() {
                    let _ = nix::sys::signal::kill(main, signal);
                } else if stops.contains(&signal) {
                    stop_while_adopting = true;
                }
                if stops.contains(&signal) {
                    if record.reason != Some(Reason::StoppedByRequest) {
                        let name = signal.as_str().trim_start_matches("SIG");
                        events.append(&event(Kind::Stopping).pid(main.as_raw()).signal(name));
                    }
                    record.reason = Some(Reason::StoppedByRequest);
                    kill_at = kill_at.or(Some(Instant::now() + daemon.supervision.stop_timeout));
                }
            }
        }
        if stop_while_adopting {
            break Ended::NotAdopted("stopped before the daemon was found".into());
        }
    };
    let status = match ended {
        Ended::Exit(status) => status,
        Ended::NotAdopted(why) => {
            stop_leftovers(&signals, daemon);
            let message = format!("type = \"forking\": {why}");
            events.append(&event(Kind::GaveUp).message(message.clone()));
            let stopped = record.reason == Some(Reason::StoppedByRequest);
            let (word, reason) = match stopped {
                true => (Status::Stopped, Reason::StoppedByRequest),
                false => (Status::Failed, Reason::StartFailed),
            };
            finish(
                &mut state_file,
                &mut record,
                word,
                reason,
                Some(message.clone()),
            );
            pidfile.remove();
            if stopped {
                return Ok(130);
            }
            return Err(Error::cannot(&daemon.name, "start", message));
        }
    };
    let pid = main.as_raw();
    let exit = exit_record(status, started.elapsed());
    stop_leftovers(&signals, daemon);
    let mut exited = event(Kind::Exited).pid(pid);
    exited.exit_code = exit.code;
    exited.signal = exit.signal.clone();
    events.append(&exited);
    if record.reason == Some(Reason::StoppedByRequest) {
        events.append(&event(Kind::Stopped));
    }
    let (status_word, reason) = match record.reason {
        Some(Reason::StoppedByRequest) => (Status::Stopped, Reason::StoppedByRequest),
        _ if exit.is_success() => (Status::Stopped, Reason::Exited),
        _ => (Status::Failed, Reason::Exited),
    };
    record.last_exit = Some(exit.clone());
    record.history.push(exit.clone());
    finish(&mut state_file, &mut record, status_word, reason, None);
    pidfile.remove();
    Ok(match (exit.code, status) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, WaitStatus::Signaled(_, signal, _)) => 128u8.saturating_add(signal as u8),
        _ => 1,
    })
}

/// How the wait in the foreground ended.
enum Ended {
    /// The daemon's process ended so.
    Exit(WaitStatus),
    /// `type = "forking"`: no daemon to supervise, for this reason.
    NotAdopted(String),
}

/// `dmgr run` of a `type = "forking"` daemon: the command exited 0, and the daemon it
/// left (handed to `dmgr run`, a child subreaper) is looked for as a keeper does: the
/// process its own pidfile names once it is our child, or without a pidfile the one
/// child left once it has been the only one for `start_wait`.
struct Adopting {
    until: Instant,
    next_look: Instant,
    /// The only child at the last look, and since when.
    only: Option<(ProcId, Instant)>,
}

/// What a look found.
enum Look {
    Found(ProcId),
    NotYet,
    Failed(String),
}

impl Adopting {
    fn new(until: Instant) -> Adopting {
        Adopting {
            until,
            next_look: Instant::now(),
            only: None,
        }
    }

    fn look(&mut self, daemon: &Daemon) -> Look {
        let now = Instant::now();
        if now < self.next_look {
            return Look::NotYet;
        }
        self.next_look = now + PROBE_INTERVAL;
        let me = std::process::id() as i32;
        let children = crate::procinfo::live_children(me);
        let found = match &daemon.forking_pidfile {
            Some(path) => crate::pidfile::read_pid(path)
                .and_then(|pid| children.iter().copied().find(|c| c.pid == pid)),
            None => match children[..] {
                [only] => match self.only {
                    Some((seen, since)) if seen == only => {
                        (now >= since + daemon.supervision.start_wait).then_some(only)
                    }
                    _ => {
                        self.only = Some((only, now));
                        None
                    }
                },
                _ => {
                    self.only = None;
                    None
                }
            },
        };
        match found {
            Some(id) => Look::Found(id),
            None if children.is_empty() => {
                Look::Failed("the command exited 0 but left no process behind".into())
            }
            None if now >= self.until => Look::Failed(match &daemon.forking_pidfile {
                Some(path) => format!(
                    "pidfile {} named no process the command left within ready_timeout",
                    path.display()
                ),
                None => {
                    "no single process was left by the command within ready_timeout; set `pidfile`"
                        .into()
                }
            }),
            None => Look::NotYet,
        }
    }
}

/// Stops what the daemon left behind when it ended (its orphans, reparented to `dmgr
/// run`, a child subreaper): `stop_signal` and SIGCONT to each by identity, SIGKILL
/// after `stop_timeout` (at once with `kill_mode = "mixed"`), and returns once none is left (or, should some survive
/// SIGKILL, after a grace).
fn stop_leftovers(signals: &SignalFd, daemon: &Daemon) {
    let me = std::process::id() as i32;
    let reap = || {
        while let Ok(status) =
            nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG))
        {
            if status == WaitStatus::StillAlive {
                break;
            }
        }
    };
    let signal_all = |signals: &[Signal]| {
        for process in crate::procinfo::descendants(me) {
            for &signal in signals {
                let _ = sys::signal_process(process, signal);
            }
        }
    };
    reap();
    if crate::procinfo::children_of(me).is_empty() {
        return;
    }
    // `kill_mode = "mixed"`: the main process has exited, what it left gets SIGKILL.
    let mixed = daemon.supervision.kill_mode == KillMode::Mixed;
    if mixed {
        signal_all(&[Signal::SIGKILL]);
    } else {
        signal_all(&[daemon.supervision.stop_signal.0, Signal::SIGCONT]);
    }
    let kill_at = Instant::now() + daemon.supervision.stop_timeout;
    let give_up = kill_at + Duration::from_secs(10);
    let mut killed = mixed;
    loop {
        reap();
        let now = Instant::now();
        if crate::procinfo::children_of(me).is_empty() || now >= give_up {
            return;
        }
        if !killed && now >= kill_at {
            signal_all(&[Signal::SIGKILL]);
            killed = true;
        }
        // SIGCHLD wakes us as each one is reaped; a signal to pass on has no one left.
        let until = if killed { give_up } else { kill_at };
        let ms = until.saturating_duration_since(now).as_millis() + 1;
        let timeout = PollTimeout::try_from(i32::try_from(ms).unwrap_or(i32::MAX))
            .unwrap_or(PollTimeout::MAX);
        let _ = nix::poll::poll(
            &mut [PollFd::new(
                std::os::fd::AsFd::as_fd(signals),
                PollFlags::POLLIN,
            )],
            timeout,
        );
        while let Ok(Some(_)) = signals.read_signal() {}
    }
}

/// Runs `argv` (`reload_command`) in the daemon's environment with `MAINPID` set to
/// `main`, its output to the terminal, killed after `timeout`; returns its exit
/// status or why it failed.
pub(crate) fn run_command(
    daemon: &Daemon,
    argv: &[String],
    main: i32,
    timeout: Duration,
) -> std::result::Result<WaitStatus, String> {
    let launch = ExecPlan::prepare(daemon)?;
    let env = with_mainpid(&launch.env, main);
    let program = crate::config::resolve_program(&argv[0], path_of(&env))
        .ok_or_else(|| format!("{}: not found in PATH", argv[0]))?;
    let options = on_terminal(daemon, &launch, &program, argv, &env);
    let single = sys::SingleThreaded::check().ok_or("dmgr runs more than one thread")?;
    let gated = sys::spawn_gated(&single, &options)
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let pid = gated.pid();
    gated
        .release()
        .map_err(|e| format!("cannot exec {}: {e}", program.display()))?;
    let child = Pid::from_raw(pid);
    let handle = ProcId::of(pid).and_then(|id| sys::ProcessHandle::open(id).ok().flatten());
    let deadline = Instant::now() + timeout;
    loop {
        match nix::sys::wait::waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return Ok(status),
            Ok(_) => {}
            Err(e) => return Err(format!("cannot wait for pid {pid}: {e}")),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // Our unreaped child: its PID cannot have been reused.
            let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(child, None);
            return Err(format!(
                "did not finish within stop_timeout ({}) and was killed",
                crate::config::units::format_duration(timeout)
            ));
        }
        // A pidfd turns readable when the process exits; without one, look every 10 ms.
        match handle.as_ref().and_then(|h| h.pidfd()) {
            Some(fd) => {
                let ms = i32::try_from(left.as_millis() + 1).unwrap_or(i32::MAX);
                let _ = nix::poll::poll(
                    &mut [PollFd::new(fd, PollFlags::POLLIN)],
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
                );
            }
            None => std::thread::sleep(left.min(Duration::from_millis(10))),
        }
    }
}

/// How to start `argv` in the daemon's directory and with its user, in the caller's
/// session with its output on the caller's terminal, stdin from `/dev/null`.
fn on_terminal<'a>(
    daemon: &'a Daemon,
    launch: &'a ExecPlan,
    program: &'a std::path::Path,
    argv: &'a [String],
    env: &'a [(std::ffi::OsString, std::ffi::OsString)],
) -> sys::SpawnOptions<'a> {
    sys::SpawnOptions {
        program,
        argv,
        env,
        working_dir: &daemon.process.working_dir,
        umask: daemon.process.umask,
        credentials: launch.credentials.as_ref(),
        stdout: None,
        stderr: None,
        new_session: false,
        keep_stdin: false,
        resources: Some(&launch.resources),
        sockets: &[],
        pid_variable: None,
        pass_fd: None,
    }
}

//! The keeper's start-up: signals, the pidfile lock, the logs, the state record and
//! the daemon's cgroup, each failure reported to `dmgr start` (see [`super::report`]).

use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::core::machine::Machine;
use super::exec_plan::ExecPlan;
use super::handoff::{self, Handoff};
use super::logpipe::LogSink;
use super::report::{Report, Reporter};
use super::Keeper;
use super::{initial_record, record_failure, tracked};
use crate::cgroup;
use crate::config::{Daemon, Dirs};
use crate::events::History;
use crate::pidfile::{LockError, LockedPidfile};
use crate::procinfo::ProcId;
use crate::state;
use crate::sys;

/// One log pipe: the read end the keeper polls, the write end handed to each run.
pub(super) struct Pipe {
    pub(super) read: OwnedFd,
    pub(super) write: OwnedFd,
    pub(super) sink: LogSink,
}

impl Keeper {
    /// `identity` is the daemon file's identity taken before it was read.
    pub(super) fn new(
        dirs: Dirs,
        daemon: Daemon,
        identity: Option<state::FileIdentity>,
        mut reporter: Reporter,
        single: sys::SingleThreaded,
        handoff: Option<Handoff>,
    ) -> std::result::Result<Keeper, Reporter> {
        macro_rules! fail {
            ($($arg:tt)*) => {{
                reporter.send(&Report::Failed { reason: format!($($arg)*) });
                return Err(reporter);
            }};
        }
        // Looked up first: should the holder die, we would be re-parented.
        let holder_pid = handoff
            .as_ref()
            .map(|_| nix::unistd::getppid().as_raw())
            .filter(|&pid| pid > 1);
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
        // And the signal `dmgr reload` asks with (see `request`).
        let mask = sys::with_request_signal(&mask);
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
                "pidfile {} is locked by another process ({})",
                daemon.pidfile.display(),
                crate::pidfile::describe_holders(&daemon.pidfile)
            ),
            Err(LockError::Io(e)) => fail!("{e}"),
        };
        let plan = match ExecPlan::prepare(&daemon) {
            Ok(plan) => plan,
            Err(reason) => {
                record_failure(&dirs, &daemon, &reason);
                pidfile.remove();
                fail!("{reason}");
            }
        };
        // Bound here, as the keeper's user (root can bind a port below 1024 for a
        // daemon that drops to its `user`), and held for the keeper's life.
        let sockets = match super::sockets::HeldSockets::bind(
            &daemon.process.sockets,
            plan.credentials.as_ref(),
        ) {
            Ok(sockets) => sockets,
            Err(reason) => {
                record_failure(&dirs, &daemon, &reason);
                pidfile.remove();
                fail!("{reason}");
            }
        };
        // A notify daemon's socket, made for it alone (see `sd_notify`).
        let notify_socket = match daemon.kind {
            crate::config::DaemonType::Notify => {
                let path = super::sd_notify::socket_path(&dirs.run_dir, &daemon.name);
                let name = &daemon.name;
                match sys::notify_socket::NotifySocket::bind(&path, || {
                    sys::notify_socket::abstract_name(name)
                }) {
                    Ok(socket) => Some(socket),
                    Err(e) => {
                        let reason = format!(
                            "cannot make the notify socket {}: {e}",
                            crate::text::show_path(&path)
                        );
                        record_failure(&dirs, &daemon, &reason);
                        pidfile.remove();
                        fail!("{reason}");
                    }
                }
            }
            _ => None,
        };
        // The holder's pipes, which outlive this keeper; else pipes of our own.
        let (mut out_pipe, mut err_pipe, settings) = match handoff {
            Some(h) => (Some(h.out), Some(h.err), Some(h.settings)),
            None => (None, None, None),
        };
        let open_pipe = |path: &std::path::Path,
                         made: Option<(OwnedFd, OwnedFd)>|
         -> std::result::Result<Pipe, String> {
            let sink = LogSink::open(
                path,
                daemon.logs.log_max_size.0,
                daemon.logs.log_keep,
                daemon.logs.log_timestamps,
            )
            .map_err(|e| format!("cannot open the log {}: {e}", path.display()))?;
            let (read, write) = match made {
                Some(pipe) => pipe,
                None => nix::unistd::pipe2(OFlag::O_CLOEXEC)
                    .map_err(|e| format!("cannot create a pipe: {e}"))?,
            };
            let flags = nix::fcntl::fcntl(&read, nix::fcntl::FcntlArg::F_GETFL).unwrap_or(0);
            let _ = nix::fcntl::fcntl(
                &read,
                nix::fcntl::FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
            );
            Ok(Pipe { read, write, sink })
        };
        let out = match open_pipe(&daemon.process.log, out_pipe.take()) {
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
            .map(|path| open_pipe(path, err_pipe.take()))
            .transpose()
        {
            Ok(pipe) => pipe,
            Err(reason) => {
                record_failure(&dirs, &daemon, &reason);
                pidfile.remove();
                fail!("{reason}");
            }
        };
        // Without `stderr_log`, the holder's second pipe has no use.
        drop(err_pipe);
        if let Some(settings) = settings {
            settings.tell(&handoff::Settings {
                name: daemon.name.clone(),
                events: dirs.events_file(&daemon.name),
                log: daemon.process.log.clone(),
                stderr_log: daemon.process.stderr_log.clone(),
                max_size: daemon.logs.log_max_size.0,
                keep: daemon.logs.log_keep,
                timestamps: daemon.logs.log_timestamps,
            });
        }
        let mut record = initial_record(&daemon);
        record.notify.socket = notify_socket
            .as_ref()
            .map(|s| s.address().env_value().to_string_lossy().into_owned());
        // Our parent, while it is the holder that made us (see `launcher::holder`).
        if let Some(holder) = holder_pid.and_then(ProcId::of) {
            record.holder = Some(holder);
        }
        record.definition = identity.map(|file| state::Definition::new(file, &daemon));
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
        // The keeper's first record (see `Keeper::run`) names the cgroup; a keeper
        // killed before it leaves a cgroup that no record names, but whose name says
        // whose it is (see `Cgroup::name_for`), so `start` and `stop` still find it.
        let cgroup = cgroup::Cgroup::planned(&daemon.name, &dirs.run_dir)
            .and_then(|path| crate::escalation::take_cgroup(&dirs, &daemon, &path));
        record.cgroup = cgroup.as_ref().ok().map(|c| c.path().to_path_buf());
        // Why not, for `status`: the keeper tracks the processes as a subreaper.
        record.no_cgroup = cgroup.as_ref().err().cloned();
        let cgroup = cgroup.ok();
        let tracked = tracked::Tracked::new(record.keeper, cgroup);
        // Opened under the pidfile lock: this keeper owns the history's compaction.
        let events = History::open(&dirs.events_file(&daemon.name));
        let cgroup_dir = tracked.cgroup.as_ref().map(|c| c.path());
        let (memory_events, memory) = super::checks::watch_memory(&daemon.supervision, cgroup_dir);
        let mut machine = Machine::new(&daemon, reporter.is_pending(), memory);
        let ready_line = match &daemon.supervision.ready {
            Some(crate::config::ReadyCheck::Log(pattern)) => {
                super::ready_line::ReadyLine::new(pattern)
            }
            _ => None,
        };
        let wall_timer =
            super::jobs::set_up_schedule(&dirs, &daemon, &mut machine, state::now_ms());
        Ok(Keeper {
            wall_timer,
            record_trouble: None,
            notify_socket,
            ready_line,
            ready_fd: None,
            memory_events,
            machine,
            captures: Vec::new(),
            events,
            single,
            log_buffer: sys::PageBuffer::new(16 * 1024),
            release_due: true,
            tracked,
            state_file,
            dirs,
            daemon,
            pidfile: Some(pidfile),
            signals,
            out,
            err,
            record,
            reporter,
            plan,
            sockets,
        })
    }
}

//! Setting a keeper up and starting processes: the daemon's launch (environment,
//! credentials, program, checked once), the keeper's start-up (signals, pidfile lock,
//! logs, state record, cgroup), and every spawn of the daemon and of `stop_command`
//! through the start gate of [`sys::spawn_gated`].

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::holder::{self, Handoff};
use super::logpipe::LogSink;
use super::machine::{Child, Phase};
use super::notify::{Report, Reporter};
use super::policy::Tally;
use super::Keeper;
use super::{cgroup, initial_record, record_failure, sys, tracked};
use crate::config::{Daemon, DaemonType, Dirs};
use crate::events::{History, Kind};
use crate::pidfile::{LockError, LockedPidfile};
use crate::procinfo::{ProcId, Stat};
use crate::state::{self, Status};

/// How soon a restart that could not be recorded (a full run disk) is tried again.
const RECORD_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// One log pipe: the read end the keeper polls, the write end handed to each run.
pub(super) struct Pipe {
    pub(super) read: OwnedFd,
    pub(super) write: OwnedFd,
    pub(super) sink: LogSink,
}

/// Everything prepared for exec'ing the command, at each start.
pub(super) struct Launch {
    pub(super) program: std::path::PathBuf,
    pub(super) env: Vec<(OsString, OsString)>,
    pub(super) credentials: Option<sys::Credentials>,
    /// `limits`, `nice` and `oom_score_adj`, checked.
    pub(super) resources: super::resources::Resources,
    /// The digest of the `env_file` files read for this start.
    pub(super) env_file_digest: Option<u64>,
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
        let launch = match Launch::prepare(&daemon) {
            Ok(launch) => launch,
            Err(reason) => {
                record_failure(&dirs, &daemon, &reason);
                pidfile.remove();
                fail!("{reason}");
            }
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
            settings.tell(&holder::Settings {
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
        // Our parent, while it is the holder that made us (see `holder`).
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
            .and_then(|path| super::leftovers::take_cgroup(&dirs, &daemon, &path));
        record.cgroup = cgroup.as_ref().ok().map(|c| c.path().to_path_buf());
        // Why not, for `status`: the keeper tracks the processes as a subreaper.
        record.no_cgroup = cgroup.as_ref().err().cloned();
        let cgroup = cgroup.ok();
        let tracked = tracked::Tracked::new(record.keeper, cgroup);
        // Opened under the pidfile lock: this keeper owns the history's compaction.
        let events = History::open(&dirs.events_file(&daemon.name));
        let cgroup_dir = tracked.cgroup.as_ref().map(|c| c.path());
        let watches = super::liveness::Watches::of(&daemon.supervision, cgroup_dir);
        Ok(Keeper {
            record_trouble: None,
            watches,
            reload: None,
            captures: Vec::new(),
            stopped_by: None,
            events,
            cgroup_note: None,
            probe: None,
            single,
            log_buffer: Vec::with_capacity(16 * 1024),
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
            reporter,
            launch,
        })
    }

    /// Starts `argv` (`stop_command`, `reload_command`) with the daemon's user,
    /// directory and environment and `MAINPID` set to `main`, in a session of its own,
    /// in the daemon's tree (our child) and its cgroup where there is one, so that what
    /// it starts is the daemon's. Its output goes to `output`, or else to the logs.
    pub(super) fn spawn_command(
        &mut self,
        argv: &[String],
        main: i32,
        output: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> std::result::Result<i32, String> {
        let env = with_mainpid(&self.launch.env, main);
        let program = sys::resolve_program(&argv[0], path_of(&env))
            .ok_or_else(|| format!("{}: not found in PATH", argv[0]))?;
        let gated = {
            let mut options = self.spawn_options(&program, argv, &env, true);
            if output.is_some() {
                options.stdout = output;
                options.stderr = output;
            }
            sys::spawn_gated(&self.single, &options).map_err(|e| e.to_string())?
        };
        let pid = gated.pid();
        self.join_cgroup(pid);
        gated.release().map_err(|e| e.to_string())?;
        Ok(pid)
    }

    /// How to start `argv` with the daemon's user and directory and environment `env`,
    /// with its output into the logs.
    pub(super) fn spawn_options<'a>(
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
    pub(super) fn spawn(&mut self) {
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
        let spawned = sys::spawn_gated(&self.single, &options).and_then(|gated| {
            // Into the cgroup and on record before it may run the command: should
            // this keeper die now, or the record not be written, the child finds its
            // gate closed and exits, and no copy runs that nobody knows of.
            let pid = gated.pid();
            self.join_cgroup(pid);
            self.record_spawn(pid, now)
                .map_err(|reason| sys::SpawnError {
                    step: sys::SpawnStep::Record,
                    error: std::io::Error::other(reason),
                })?;
            gated.release().map(|()| pid)
        });
        match spawned {
            Ok(pid) => {
                // A forking daemon's `started` is written when it is adopted.
                if self.daemon.kind == DaemonType::Simple {
                    let mut started = self.event(Kind::Started).pid(pid);
                    started.message = self.cgroup_note.take();
                    self.record_event(started);
                }
                self.phase = Phase::spawned(self.daemon.kind, now, &self.daemon.supervision);
                if self.daemon.supervision.start_wait.is_zero() {
                    self.on_timers();
                }
            }
            Err(e) => {
                let reason = match e.step {
                    sys::SpawnStep::Exec => {
                        format!("cannot exec {}: {e}", self.launch.program.display())
                    }
                    sys::SpawnStep::Record => format!("not started: {}", e.error),
                    _ => format!("cannot start {}: {e}", self.launch.program.display()),
                };
                // The child exits by itself; its SIGCHLD matches no daemon now.
                self.child = None;
                self.record.daemon = None;
                if let Some(pidfile) = &mut self.pidfile {
                    pidfile.clear();
                }
                if e.step == sys::SpawnStep::Record && !self.reporter.is_pending() {
                    // No copy runs that no record names; but the daemon did not fail
                    // either: try again soon, without counting it (issue 22).
                    self.phase = Phase::Backoff {
                        until: now + RECORD_RETRY,
                    };
                    self.record.status = Status::Backoff;
                    return;
                }
                let next = self.fail_run(reason);
                self.drain(next);
            }
        }
    }

    /// Moves the new process `pid` into the daemon's cgroup. If the kernel refuses, the
    /// keeper goes on without cgroups: its tree still holds every process.
    pub(super) fn join_cgroup(&mut self, pid: i32) {
        let Some(cgroup) = &self.tracked.cgroup else {
            return;
        };
        if let Err(e) = cgroup.add(pid) {
            let path = cgroup.path().display().to_string();
            cgroup.remove();
            self.tracked.cgroup = None;
            self.record.cgroup = None;
            self.watch_without_cgroup();
            self.record.no_cgroup = Some(format!("cannot use the cgroup {path}: {e}"));
            self.cgroup_note = Some(format!(
                "cannot use the cgroup {path} ({e}); going on without"
            ));
        }
    }

    /// Writes the pidfile and the state record for a new daemon process.
    pub(super) fn record_spawn(
        &mut self,
        pid: i32,
        now: Instant,
    ) -> std::result::Result<(), String> {
        let start = Stat::read(pid).map_or(0, |s| s.start);
        let child = Child {
            id: ProcId { pid, start },
            adopted: self.daemon.kind == DaemonType::Simple,
            started: now,
            exited: false,
        };
        self.child = Some(child);
        if let Some(pidfile) = &mut self.pidfile {
            // Only readers without the record use the PID in it; the lock is the truth.
            let _ = pidfile.write_pid(pid);
        }
        self.record.daemon = Some(child.id);
        self.record.env_file_digest = self.launch.env_file_digest;
        self.record.started_at_ms = Some(state::now_ms());
        self.record.status = Status::Starting;
        self.record.next_restart_ms = None;
        self.record.error = None;
        self.try_save()
    }
}

/// What systemd (or another manager above dmgr) sets for the process it started:
/// they describe `dmgr start`'s unit and its journal stream, socket, watchdog and
/// notify socket, not the daemon's, which would answer or log to a manager that does
/// not supervise it. A daemon never inherits them; `env` or `env_file` may set them.
pub(crate) const MANAGER_VARIABLES: &[&str] = &[
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    "SYSTEMD_EXEC_PID",
    "MANAGERPID",
    "NOTIFY_SOCKET",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
];

/// What the file asks for that the keeper does not do yet: the notify protocol and the
/// readiness forms the daemon reports itself arrive in the keeper's core next.
fn not_yet_kept(daemon: &Daemon) -> Option<&'static str> {
    use crate::config::ReadyCheck;
    if daemon.kind == DaemonType::Notify {
        return Some("type = \"notify\"");
    }
    match daemon.supervision.ready {
        Some(ReadyCheck::Log(_)) => Some("ready = { log = ... }"),
        Some(ReadyCheck::Fd(_)) => Some("ready = { fd = ... }"),
        _ => None,
    }
}

impl Launch {
    pub(super) fn prepare(daemon: &Daemon) -> std::result::Result<Launch, String> {
        if let Some(what) = not_yet_kept(daemon) {
            return Err(format!(
                "{what} is not kept by this version of dmgr's keeper yet; `dmgr check` accepts the file, and `dmgr export` writes it for systemd"
            ));
        }
        // The inherited environment as bytes: a variable that is not UTF-8 is passed
        // on as it is (std::env::vars would panic on it).
        // What the daemon file sets: `env_file` in order, then `env`, which wins.
        let (set, env_file_digest) = set_variables(daemon)?;
        let mut env: Vec<(OsString, OsString)> = if daemon.process.clear_env {
            Vec::new()
        } else {
            std::env::vars_os()
                .filter(|(k, _)| {
                    k.to_str()
                        .is_none_or(|k| !set.contains_key(k) && !MANAGER_VARIABLES.contains(&k))
                })
                .collect()
        };
        env.extend(
            set.iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        // A copy's number and count (`instances`), whatever the environment says.
        for (key, value) in daemon.dmgr_variables() {
            env.retain(|(k, _)| k != key);
            env.push((key.into(), value.into()));
        }
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
        let resources = super::resources::Resources::prepare(&daemon.process)?;
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
        let loaded = crate::config::env_file::load(&daemon.process.env_file)?;
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

pub(super) fn credentials_for(
    daemon: &Daemon,
) -> std::result::Result<Option<sys::Credentials>, String> {
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

pub(super) fn path_of(env: &[(OsString, OsString)]) -> Option<&str> {
    env.iter()
        .find(|(k, _)| k == "PATH")
        .and_then(|(_, v)| v.to_str())
}

/// The OS reason without Rust's " (os error N)" suffix.
fn os_reason(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}

/// `env` with `MAINPID` set to `main`, for `stop_command` and `reload_command`.
pub(super) fn with_mainpid(env: &[(OsString, OsString)], main: i32) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = env
        .iter()
        .filter(|(k, _)| k != "MAINPID")
        .cloned()
        .collect();
    env.push(("MAINPID".into(), main.to_string().into()));
    env
}

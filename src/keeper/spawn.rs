//! Every spawn of the keeper: the daemon's process and the commands it runs for it
//! (`stop_command`, `reload_command`), through the start gate of
//! [`sys::spawn_gated`]: into the cgroup and on record before the exec.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::time::Instant;

use super::core::machine::{Child, Phase};
use super::exec_plan::{path_of, with_mainpid, ExecPlan};
use super::Keeper;
use crate::config::DaemonType;
use crate::events::Kind;
use crate::procinfo::{ProcId, Stat};
use crate::state::{self, Status};
use crate::sys;

/// How soon a restart that could not be recorded (a full run disk) is tried again.
const RECORD_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

impl Keeper {
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
        let program = crate::config::resolve_program(&argv[0], path_of(&env))
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
            match ExecPlan::prepare(&self.daemon) {
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

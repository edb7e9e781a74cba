//! Every spawn of the keeper: the daemon's process and the commands it runs for it
//! (`stop_command`, `reload_command`), through the start gate of
//! [`sys::spawn_gated`]: into the cgroup and on record before the exec, so that a
//! keeper killed at any moment leaves no process that no record names.

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd};

use nix::fcntl::OFlag;

use super::core::machine::{Command, Input, MemoryMode, Now};
use super::exec_plan::{path_of, with_mainpid, ExecPlan};
use super::reloading::Capture;
use super::Keeper;
use crate::procinfo::{ProcId, Stat};
use crate::sys;

impl Keeper {
    /// Starts (or restarts: `again`) the daemon's process, answering the machine at
    /// each step: forked (then the pidfile and the record name it, before its gate
    /// opens), exec'd, or why not.
    pub(super) fn spawn_daemon(&mut self, again: bool, now: Now) {
        // A restart reads `env_file` again, as every start does (the first was read
        // when the keeper was set up); a file that now fails fails this run.
        if again {
            match ExecPlan::prepare(&self.daemon) {
                Ok(plan) => self.plan = plan,
                Err(reason) => {
                    let failed = Input::SpawnFailed {
                        reason,
                        unrecorded: false,
                    };
                    return self.feed(failed, now);
                }
            }
        }
        if let Some(matcher) = &mut self.ready_line {
            // No half line of the last run counts.
            matcher.reset();
        }
        let env = self.daemon_env();
        // `ready = { fd = N }`: a pipe of this run's, its write end at N in the daemon.
        self.ready_fd = None;
        let ready_pipe = match self.daemon.supervision.ready {
            Some(crate::config::ReadyCheck::Fd(number)) => {
                // Only the keeper's end is non-blocking: the daemon's is as any pipe.
                let made = nix::unistd::pipe2(OFlag::O_CLOEXEC).and_then(|(read, write)| {
                    nix::fcntl::fcntl(&read, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
                    Ok((read, write))
                });
                match made {
                    Ok((read, write)) => Some((read, write, number)),
                    Err(e) => {
                        let failed = Input::SpawnFailed {
                            reason: format!("cannot create the pipe of ready = {{ fd }}: {e}"),
                            unrecorded: false,
                        };
                        return self.feed(failed, now);
                    }
                }
            }
            _ => None,
        };
        let mut options =
            self.spawn_options(&self.plan.program, &self.daemon.process.command, &env, true);
        if let Some((_, write, number)) = &ready_pipe {
            options.pass_fd = Some((write.as_fd(), *number as std::os::fd::RawFd));
        }
        if self.daemon.process.watchdog.is_some() && self.notify_socket.is_some() {
            // Set in the child after the fork, so that it names the exec'd process.
            options.pid_variable = Some("WATCHDOG_PID");
        }
        let gated = match sys::spawn_gated(&self.single, &options) {
            Ok(gated) => gated,
            Err(e) => {
                let reason = self.spawn_reason(&e);
                let failed = Input::SpawnFailed {
                    reason,
                    unrecorded: false,
                };
                return self.feed(failed, now);
            }
        };
        // Only the daemon holds the write end: its end (or the daemon's close) reads
        // end-of-file.
        if let Some((read, write, _)) = ready_pipe {
            drop(write);
            self.ready_fd = Some(read);
        }
        // Into the cgroup and on record before it may run the command: should this
        // keeper die now, or the record not be written, the child finds its gate
        // closed and exits, and no copy runs that nobody knows of.
        let pid = gated.pid();
        self.join_cgroup(pid, now);
        let start = Stat::read(pid).map_or(0, |s| s.start);
        self.feed(
            Input::Forked {
                id: ProcId { pid, start },
            },
            now,
        );
        if let Some(pidfile) = &mut self.pidfile {
            // Only readers without the record use the PID in it; the lock is the truth.
            let _ = pidfile.write_pid(pid);
        }
        self.record.env_file_digest = self.plan.env_file_digest;
        if let Err(reason) = self.try_save() {
            drop(gated);
            let failed = Input::SpawnFailed {
                reason: format!("not started: {reason}"),
                unrecorded: true,
            };
            return self.feed(failed, now);
        }
        match gated.release() {
            Ok(()) => self.feed(Input::Spawned, now),
            Err(e) => {
                let reason = self.spawn_reason(&e);
                let failed = Input::SpawnFailed {
                    reason,
                    unrecorded: false,
                };
                self.feed(failed, now)
            }
        }
    }

    /// The daemon's environment for a run: the plan's, and for a notify daemon
    /// `NOTIFY_SOCKET` and, with `watchdog`, `WATCHDOG_USEC` (`WATCHDOG_PID` is set in
    /// the child).
    fn daemon_env(&self) -> Vec<(OsString, OsString)> {
        let mut env = self.plan.env.clone();
        let Some(socket) = &self.notify_socket else {
            return env;
        };
        let mut set = vec![("NOTIFY_SOCKET", socket.address().env_value())];
        if let Some(period) = self.daemon.process.watchdog {
            set.push(("WATCHDOG_USEC", period.as_micros().to_string().into()));
        }
        for (key, value) in set {
            env.retain(|(k, _)| k != key);
            env.push((key.into(), value));
        }
        env.retain(|(k, _)| k != "WATCHDOG_PID");
        env
    }

    /// Why a spawn of the daemon failed, in words.
    fn spawn_reason(&self, e: &sys::SpawnError) -> String {
        let program = self.plan.program.display();
        match e.step {
            sys::SpawnStep::Record => format!("not started: {}", e.error),
            // `exec`'s error alone, the step of any other (`chdir: ...`): `dmgr start`
            // says `cannot start: /usr/bin/nginx: No such file or directory`.
            _ => format!("{program}: {e}"),
        }
    }

    /// Runs `command`'s `argv` for the machine and answers it: `stop_command`'s output
    /// goes to the logs; `reload_command`'s into a pipe of its own, which the keeper
    /// copies into the log and of which it keeps the last lines (see `reloading`).
    pub(super) fn run_command(&mut self, command: Command, argv: &[String], main: i32, now: Now) {
        let answer = match command {
            Command::Stop => self.spawn_command(argv, main, None, now),
            Command::Reload => match nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK) {
                Err(e) => Err(format!("cannot create a pipe: {e}")),
                Ok((read, write)) => {
                    let started = self.spawn_command(argv, main, Some(write.as_fd()), now);
                    drop(write);
                    if let Ok(pid) = started {
                        self.captures.push(Capture::new(read, pid));
                    }
                    started
                }
            },
        };
        let input = match answer {
            Ok(pid) => Input::CommandStarted { command, pid },
            Err(reason) => Input::CommandFailed { command, reason },
        };
        self.feed(input, now);
    }

    /// Starts `argv` (`stop_command`, `reload_command`) with the daemon's user,
    /// directory and environment and `MAINPID` set to `main`, in a session of its own,
    /// in the daemon's tree (our child) and its cgroup where there is one, so that what
    /// it starts is the daemon's. Its output goes to `output`, or else to the logs.
    fn spawn_command(
        &mut self,
        argv: &[String],
        main: i32,
        output: Option<BorrowedFd<'_>>,
        now: Now,
    ) -> Result<i32, String> {
        let env = with_mainpid(&self.plan.env, main);
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
        self.join_cgroup(pid, now);
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
            credentials: self.plan.credentials.as_ref(),
            stdout: Some(self.out.write.as_fd()),
            stderr: Some(self.err.as_ref().unwrap_or(&self.out).write.as_fd()),
            new_session,
            keep_stdin: false,
            resources: Some(&self.plan.resources),
            pid_variable: None,
            pass_fd: None,
        }
    }

    /// Moves the new process `pid` into the daemon's cgroup. If the kernel refuses,
    /// the keeper goes on without cgroups (its tree still holds every process) and
    /// tells the machine, whose next `started` event says so.
    pub(super) fn join_cgroup(&mut self, pid: i32, now: Now) {
        let Some(cgroup) = &self.tracked.cgroup else {
            return;
        };
        let Err(e) = cgroup.add(pid) else {
            return;
        };
        let path = cgroup.path().display().to_string();
        cgroup.remove();
        self.tracked.cgroup = None;
        self.record.cgroup = None;
        self.record.no_cgroup = Some(format!("cannot use the cgroup {path}: {e}"));
        let note = format!("cannot use the cgroup {path} ({e}); going on without");
        // The memory ceiling is sampled from now on.
        let memory = self.memory_events.take().map(|_| MemoryMode::Sampled {
            reason: Some(super::checks::NO_CGROUP.to_string()),
        });
        self.feed(Input::CgroupLost { note, memory }, now);
    }
}

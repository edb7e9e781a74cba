//! Probes: the checks the keeper runs against its daemon, `ready` now and the liveness
//! check of issue 14 next. A probe never blocks the keeper's loop: a `file` check is a
//! stat(2), every other check is a process the loop waits for like any child.
//!
//! An `exec` check runs the given command with the daemon's environment, user and
//! directory; a `tcp` or `http` check runs this binary again as `dmgr __probe tcp
//! ADDRESS MS` (or `http URL MS`, see [`crate::probe`]), which resolves, connects and,
//! for http, reads the status line with plain blocking calls, out of the loop. Each probe process gets a
//! session and process group of its own, is on the state record while it runs (so
//! that what a dead keeper left behind includes it), and its whole group is killed
//! with SIGKILL at its deadline, at `ready_timeout` and when a stop begins.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::exec_plan::path_of;
use super::{sys, Keeper};
use crate::config::ReadyCheck;
use crate::probe::{ATTEMPT, INTERNAL};
use crate::procinfo::{ProcId, Stat};

/// How often a failing readiness probe is retried.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// A probe process that runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    /// The process, leader of its own process group.
    pub(super) id: ProcId,
    /// When it is killed if it has not ended.
    pub(super) deadline: Instant,
    /// Killed: its end says nothing about the daemon.
    killed: bool,
}

impl Keeper {
    /// Starts one attempt of `check`, to end by `deadline`. Returns the result when it
    /// is known at once (a `file` check, or a probe that could not be started).
    pub(super) fn start_probe(&mut self, check: &ReadyCheck, deadline: Instant) -> Option<bool> {
        let exe = Path::new("/proc/self/exe");
        let internal = |kind: &str, target: &str| -> Vec<String> {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .min(ATTEMPT);
            let ms = left.as_millis().max(1).to_string();
            ["dmgr", INTERNAL, kind, target, &ms]
                .map(str::to_string)
                .to_vec()
        };
        // tcp and http run as the keeper (the daemon's user may not reach this binary).
        // Every probe writes to the keeper's own /dev/null.
        let (program, argv, daemon_side) = match check {
            ReadyCheck::File(path) => return Some(path.exists()),
            // Never probed: `Launch::prepare` refuses them until the keeper reads them.
            ReadyCheck::Log(_) | ReadyCheck::Fd(_) => return Some(false),
            ReadyCheck::Tcp(address) => (exe.to_path_buf(), internal("tcp", address), false),
            ReadyCheck::Http(url) => (exe.to_path_buf(), internal("http", url), false),
            ReadyCheck::Exec(argv) => {
                let program = argv.first().and_then(|name| {
                    crate::config::resolve_program(name, path_of(&self.launch.env))
                });
                (program?, argv.clone(), true)
            }
        };
        let env: Vec<(OsString, OsString)> = Vec::new();
        let options = if daemon_side {
            // Its output is not the daemon's: the log holds only what the daemon wrote.
            sys::SpawnOptions {
                stdout: None,
                stderr: None,
                ..self.spawn_options(&program, &argv, &self.launch.env, true)
            }
        } else {
            sys::SpawnOptions {
                program: &program,
                argv: &argv,
                env: &env,
                working_dir: Path::new("/"),
                umask: 0o022,
                credentials: None,
                stdout: None,
                stderr: None,
                new_session: true,
                keep_stdin: false,
                // The keeper's own internal check, not the daemon's process.
                resources: None,
            }
        };
        let gated = sys::spawn_gated(&self.single, &options).ok()?;
        // On record before it runs, as the daemon is: a keeper killed now leaves no
        // probe that nothing names.
        let pid = gated.pid();
        let id = ProcId {
            pid,
            start: Stat::read(pid).map_or(0, |s| s.start),
        };
        self.record.probe = Some(id);
        self.save();
        self.probe = Some(Probe {
            id,
            deadline,
            killed: false,
        });
        if gated.release().is_err() {
            // It exits by itself; its reaping clears the record.
            self.kill_probe();
            return Some(false);
        }
        None
    }

    /// Kills the running probe's process group, if a probe runs. Its group ID is
    /// pinned while the probe, our child, is unreaped.
    pub(super) fn kill_probe(&mut self) {
        if let Some(probe) = self.probe.as_mut().filter(|p| !p.killed) {
            let _ = nix::sys::signal::killpg(Pid::from_raw(probe.id.pid), Signal::SIGKILL);
            probe.killed = true;
        }
    }

    /// The child `pid` ended with `status`: if it is the probe, clears it and returns
    /// whether it passed (`None` when it was killed, or is no probe).
    pub(super) fn probe_exited(&mut self, pid: i32, status: WaitStatus) -> Option<Option<bool>> {
        let probe = self.probe.filter(|p| p.id.pid == pid)?;
        // Its group may outlive it; reaped, it no longer pins the group's ID, so what
        // is left is stopped with the rest of the daemon's tree (see `tracked`).
        self.probe = None;
        self.record.probe = None;
        self.save();
        Some((!probe.killed).then_some(matches!(status, WaitStatus::Exited(_, 0))))
    }
}

//! Probes: the checks the keeper runs against its daemon, `ready` and `health`, when
//! its machine asks for one. A probe never blocks the keeper's loop: a `file` check is
//! a stat(2), every other check is a process the loop waits for like any child.
//!
//! An `exec` check runs the given command with the daemon's environment, user and
//! directory; a `tcp` or `http` check runs this binary again as `dmgr __probe tcp
//! ADDRESS MS` (or `http URL MS`, see [`crate::probe`]), which resolves, connects and,
//! for http, reads the status line with plain blocking calls, out of the loop. Each
//! probe process gets a session and process group of its own, is on the state record
//! while it runs (so that what a dead keeper left behind includes it), and its whole
//! group is killed with SIGKILL at its deadline, at `ready_timeout` and when a stop
//! begins.

use std::ffi::OsString;
use std::path::Path;
use std::time::Instant;

use super::core::machine::{Input, Now};
use super::exec_plan::path_of;
use super::Keeper;
use crate::config::ReadyCheck;
use crate::probe::{ATTEMPT, INTERNAL};
use crate::procinfo::{ProcId, Stat};
use crate::sys;

impl Keeper {
    /// Starts one attempt of `check`, to end by `deadline`, and tells the machine: the
    /// probe's process, or its result when that is known at once (a `file` check) or
    /// the probe could not run (a failed check).
    pub(super) fn start_probe(&mut self, check: &ReadyCheck, deadline: Instant, now: Now) {
        let answer = |passed| Input::ProbeAnswered { passed };
        let exe = Path::new("/proc/self/exe");
        let internal = |kind: &str, target: &str| -> Vec<String> {
            let left = deadline.saturating_duration_since(now.at).min(ATTEMPT);
            let ms = left.as_millis().max(1).to_string();
            ["dmgr", INTERNAL, kind, target, &ms]
                .map(str::to_string)
                .to_vec()
        };
        // tcp and http run as the keeper (the daemon's user may not reach this binary).
        // Every probe writes to the keeper's own /dev/null.
        let (program, argv, daemon_side) = match check {
            ReadyCheck::File(path) => return self.feed(answer(path.exists()), now),
            ReadyCheck::Tcp(address) => (exe.to_path_buf(), internal("tcp", address), false),
            ReadyCheck::Http(url) => (exe.to_path_buf(), internal("http", url), false),
            ReadyCheck::Exec(argv) => {
                let program = argv
                    .first()
                    .and_then(|name| crate::config::resolve_program(name, path_of(&self.plan.env)));
                match program {
                    Some(program) => (program, argv.clone(), true),
                    None => return self.feed(answer(false), now),
                }
            }
            // Not a probe the keeper runs (the daemon reports itself ready): answered
            // by the notify protocol once it is wired in.
            _ => return self.feed(answer(false), now),
        };
        let env: Vec<(OsString, OsString)> = Vec::new();
        let options = if daemon_side {
            // Its output is not the daemon's: the log holds only what the daemon wrote.
            sys::SpawnOptions {
                stdout: None,
                stderr: None,
                ..self.spawn_options(&program, &argv, &self.plan.env, true)
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
                pid_variable: None,
                pass_fd: None,
            }
        };
        let Ok(gated) = sys::spawn_gated(&self.single, &options) else {
            return self.feed(answer(false), now);
        };
        // On record before it runs, as the daemon is (the machine asks for the record
        // as it learns of the probe): a keeper killed now leaves no probe that nothing
        // names.
        let pid = gated.pid();
        let id = ProcId {
            pid,
            start: Stat::read(pid).map_or(0, |s| s.start),
        };
        self.feed(Input::ProbeStarted { id }, now);
        if gated.release().is_err() {
            // It exits by itself; its group is killed with it.
            kill_group(pid);
            self.feed(answer(false), now);
        }
    }
}

/// SIGKILL to the process group of `pid`, our unreaped child that leads it: its ID is
/// pinned while the child is unreaped.
pub(super) fn kill_group(pid: i32) {
    let group = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
}

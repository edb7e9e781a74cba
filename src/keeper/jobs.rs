//! The loop's side of hooks and schedules (the decisions are in
//! `core::machine::hooks` and `core::machine::jobs`): a hook's process, its output
//! into the daemon's log with a prefix naming it; the last scheduled time kept in the
//! run directory for `catch_up`; and the timer on the wall clock that wakes a
//! scheduled keeper, a timerfd armed with `TFD_TIMER_CANCEL_ON_SET` so that a change
//! of the clock wakes it too, without polling.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use super::core::machine::hooks::Hook;
use super::core::machine::jobs::{timestamp, Purpose};
use super::core::machine::{Input, Machine, Now};
use super::exec_plan::path_of;
use super::reloading::Capture;
use super::Keeper;
use crate::config::{Daemon, Dirs};
use crate::schedule::Clock;
use crate::sys;

/// Where the last scheduled time accounted for is kept: `RUN_DIR/NAME.last-run`, the
/// time in ms since the epoch.
pub(super) fn last_run_file(dirs: &Dirs, name: &str) -> PathBuf {
    dirs.run_dir.join(format!("{name}.last-run"))
}

/// The last scheduled time kept in `path`, if any.
fn read_last_run(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Keeps `ms` in `path`, through a temporary file renamed over it (a torn file would
/// lose the time `catch_up` counts from).
pub(super) fn write_last_run(path: &Path, ms: u64) -> std::io::Result<()> {
    let temporary = path.with_extension("last-run.tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(format!("{ms}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// Sets up `daemon`'s schedule in `machine` at `now_ms`, if it has one, and returns
/// the timer that wakes the keeper for it. A schedule counts from its first keeper:
/// with no time kept yet, `now_ms` is kept.
pub(super) fn set_up_schedule(
    dirs: &Dirs,
    daemon: &Daemon,
    machine: &mut Machine,
    now_ms: u64,
) -> Option<WallTimer> {
    let s = &daemon.supervision;
    let (cron, purpose) = match (&s.schedule, &s.restart_schedule) {
        (Some(cron), _) => (cron.clone(), Purpose::Run),
        (None, Some(cron)) => (cron.clone(), Purpose::Restart),
        (None, None) => return None,
    };
    let path = last_run_file(dirs, &daemon.name);
    let last = read_last_run(&path);
    if last.is_none() {
        let _ = write_last_run(&path, now_ms);
    }
    let clock = Clock::new(
        cron,
        crate::schedule::system_time_zone(),
        last.map(timestamp),
        s.catch_up && purpose == Purpose::Run,
        timestamp(now_ms),
    );
    machine.set_schedule(clock, purpose);
    WallTimer::new()
}

/// A timer on the wall clock (`CLOCK_REALTIME`), armed at an absolute time and
/// cancelled by the kernel when the clock is set.
#[derive(Debug)]
pub(super) struct WallTimer {
    fd: TimerFd,
    /// The time it is armed for (ms since the epoch), if it is.
    armed: Option<u64>,
}

impl WallTimer {
    fn new() -> Option<WallTimer> {
        let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
        let fd = TimerFd::new(ClockId::CLOCK_REALTIME, flags).ok()?;
        Some(WallTimer { fd, armed: None })
    }

    /// Arms it for `at` (ms since the epoch), or disarms it.
    pub(super) fn arm(&mut self, at: Option<u64>) {
        if at == self.armed {
            return;
        }
        let result = match at {
            // A zero time would disarm it: "at once" is the first instant after the epoch.
            Some(ms) => self.fd.set(
                Expiration::OneShot(TimeSpec::from_duration(Duration::from_millis(ms.max(1)))),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET,
            ),
            None => self.fd.unset(),
        };
        self.armed = if result.is_ok() { at } else { None };
    }

    pub(super) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Reads it once poll(2) said it is readable: true if and only if the clock was
    /// set (the timer is then disarmed, to be armed again).
    pub(super) fn take(&mut self) -> bool {
        let mut buffer = [0u8; 8];
        match nix::unistd::read(self.fd.as_fd(), &mut buffer) {
            Err(Errno::ECANCELED) => {
                self.armed = None;
                true
            }
            Ok(_) => {
                self.armed = None;
                false
            }
            Err(_) => false,
        }
    }
}

impl Keeper {
    /// Runs `hook`'s `argv` for the machine and answers it (see `Effect::RunHook`).
    pub(super) fn run_hook(
        &mut self,
        hook: Hook,
        argv: &[String],
        vars: Vec<(String, String)>,
        now: Now,
    ) {
        let answer = self.spawn_hook(hook, argv, vars, now);
        let input = match answer {
            Ok(pid) => Input::HookStarted { pid },
            Err(reason) => Input::HookFailed { reason },
        };
        self.feed(input, now);
    }

    fn spawn_hook(
        &mut self,
        hook: Hook,
        argv: &[String],
        vars: Vec<(String, String)>,
        now: Now,
    ) -> Result<i32, String> {
        let mut ours: Vec<(OsString, OsString)> = vec![
            ("DMGR_NAME".into(), self.daemon.name.clone().into()),
            ("DMGR_LOG".into(), self.daemon.process.log.clone().into()),
            ("DMGR_HOOK".into(), hook.key().into()),
        ];
        ours.extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        let mut env: Vec<(OsString, OsString)> = self
            .plan
            .env
            .iter()
            .filter(|(k, _)| !ours.iter().any(|(o, _)| o == k))
            .cloned()
            .collect();
        env.extend(ours);
        let program = crate::config::resolve_program(&argv[0], path_of(&env))
            .ok_or_else(|| format!("{}: not found in PATH", argv[0]))?;
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(|e| format!("cannot create a pipe: {e}"))?;
        let gated = {
            let mut options = self.spawn_options(&program, argv, &env, true);
            options.stdout = Some(write.as_fd());
            options.stderr = Some(write.as_fd());
            sys::spawn_gated(&self.single, &options).map_err(|e| e.to_string())?
        };
        drop(write);
        let pid = gated.pid();
        self.join_cgroup(pid, now);
        gated.release().map_err(|e| e.to_string())?;
        let prefix = format!("[{}] ", hook.key());
        self.captures
            .push(Capture::new(read, pid).with_prefix(prefix.into_bytes()));
        Ok(pid)
    }
}

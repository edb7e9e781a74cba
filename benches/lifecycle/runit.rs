//! runit as a peer (issue 15): one `runsvdir` on a scan directory of N `sleep`
//! services in the run's temporary directory, started before the rounds, so that its
//! supervisors (one `runsv` per service) are up before anything is timed, as the
//! issue's table has it. Each round times, as one command for all N:
//!
//! - `sv up DIR...`, until every service's `supervise/status` shows it running;
//! - `sv status DIR...` (it reads each `supervise/status`, and opens `supervise/ok`
//!   to see that `runsv` lives: runit's counterpart of the floor's probe);
//! - `sv down DIR...`, until every `supervise/status` shows it down, which `runsv`
//!   writes once it has reaped the service.
//!
//! `sv -w` would wait as well, but it polls every 420 ms; this module reads the
//! status files itself, every 200 us. Each service's `run` is `#!/bin/sh` +
//! `exec sleep`, as runit's services are written, and has a `down` file, so that
//! `runsv` waits for `sv up`. Once per N it reads each `runsv`'s PSS with the
//! services up, as it does for dmgr's keepers.
//!
//! Cleanup goes through [`guard`]: [`Supervisors`]' drop and every other cleanup path
//! kill `runsvdir`, then the `runsv`s, then their services, each by PID after
//! checking that it started after the bench and that its working directory is in the
//! scan directory (`runsv` and the services it starts run in their service's
//! directory), so nothing else is ever signalled.

use super::*;

/// The runit programs, where installed.
pub(crate) struct Runit {
    runsvdir: PathBuf,
    sv: PathBuf,
}

impl Runit {
    /// Finds `runsvdir`, `runsv` and `sv`, or says which is missing.
    pub(crate) fn find() -> Result<Runit, String> {
        let find = |name: &str| {
            which(name)
                .or_else(|| {
                    let p = PathBuf::from("/usr/bin").join(name);
                    p.is_file().then_some(p)
                })
                .ok_or_else(|| format!("runit not installed (no `{name}`), skipped"))
        };
        let runsvdir = find("runsvdir")?;
        // runsvdir starts `runsv` from PATH.
        find("runsv")?;
        let sv = find("sv")?;
        Ok(Runit { runsvdir, sv })
    }

    pub(crate) fn describe(&self) -> String {
        format!("{} and {}", self.runsvdir.display(), self.sv.display())
    }
}

/// A running `runsvdir` and its N services; dropping it kills them all.
pub(crate) struct Supervisors {
    runsvdir: Child,
    sv: PathBuf,
    scan: PathBuf,
    services: Vec<PathBuf>,
}

/// How long each service runs before `sv down` (see [`runit_round`]).
const MIN_RUN: Duration = Duration::from_millis(1100);

/// How long runsvdir may take to start N supervisors, and a service to go up or down.
const RUNIT_DEADLINE: Duration = Duration::from_secs(60);

impl Supervisors {
    /// Writes N services into `SCOPE/runit`, starts `runsvdir` on it and waits until
    /// every `runsv` has written its first status.
    pub(crate) fn start(scope: &guard::Scope, runit: &Runit, n: usize) -> Result<Self, String> {
        use std::os::unix::fs::PermissionsExt;
        guard::checkpoint();
        let scan = scope.path().join("runit");
        fs::create_dir_all(&scan).map_err(|e| format!("{}: {e}", scan.display()))?;
        let run = format!("#!/bin/sh\nexec sleep {SLEEP_SECS}\n");
        let mut services = Vec::with_capacity(n);
        for i in 0..n {
            let dir = scan.join(daemon_name(i));
            let script = dir.join("run");
            fs::create_dir_all(&dir)
                .and_then(|()| fs::write(&script, &run))
                .and_then(|()| fs::set_permissions(&script, fs::Permissions::from_mode(0o755)))
                .and_then(|()| fs::write(dir.join("down"), ""))
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            services.push(dir);
        }
        // Registered before the start, so that a panic from here on cleans up.
        scope.track_runit(&scan);
        let stderr = File::create(scope.path().join("runsvdir.stderr"))
            .map_err(|e| format!("runsvdir's stderr: {e}"))?;
        let runsvdir = Command::new(&runit.runsvdir)
            .arg(&scan)
            .env_clear()
            .envs(login_env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            // Out of the terminal's process group: a Ctrl-C reaches the bench, whose
            // cleanup then kills these in order.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", runit.runsvdir.display()))?;
        let supervisors = Supervisors {
            runsvdir,
            sv: runit.sv.clone(),
            scan,
            services,
        };
        supervisors.wait_all("runsv to start", |s| s.is_some())?;
        Ok(supervisors)
    }

    /// The live `runsv`s, for their memory.
    pub(crate) fn runsvs(&self) -> Vec<ProcId> {
        let parent = self.runsvdir.id() as i32;
        procfs::pids()
            .into_iter()
            .filter(|&pid| {
                procfs::stat(pid).is_some_and(|s| s.ppid == parent && !s.is_dead())
                    && procfs::comm(pid).as_deref() == Some("runsv")
            })
            .filter_map(ProcId::of)
            .collect()
    }

    /// `sv up` of all N, until each runs.
    pub(crate) fn up(&self) -> Result<Duration, String> {
        let t = Instant::now();
        timed(self.sv("up")).map_err(|e| format!("sv up: {e}"))?;
        self.wait_all("sv up", |s| s.is_some_and(|s| s.pid != 0 && s.running))?;
        Ok(t.elapsed())
    }

    /// `sv status` of all N.
    pub(crate) fn status(&self) -> Result<Duration, String> {
        timed(self.sv("status")).map_err(|e| format!("sv status: {e}"))
    }

    /// `sv down` of all N, until `runsv` has reaped each.
    pub(crate) fn down(&self) -> Result<Duration, String> {
        let t = Instant::now();
        timed(self.sv("down")).map_err(|e| format!("sv down: {e}"))?;
        self.wait_all("sv down", |s| s.is_some_and(|s| s.pid == 0 && !s.running))?;
        Ok(t.elapsed())
    }

    fn sv(&self, verb: &str) -> Command {
        let mut cmd = Command::new(&self.sv);
        cmd.arg(verb).args(&self.services);
        cmd
    }

    /// Waits until every service's status satisfies `done`.
    fn wait_all(&self, what: &str, done: impl Fn(Option<Status>) -> bool) -> Result<(), String> {
        let deadline = Instant::now() + RUNIT_DEADLINE;
        let mut next = 0;
        while next < self.services.len() {
            if done(Status::read(&self.services[next])) {
                next += 1;
                continue;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{what}: {} of {} services not there after {} s",
                    self.services.len() - next,
                    self.services.len(),
                    RUNIT_DEADLINE.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }
}

impl Drop for Supervisors {
    fn drop(&mut self) {
        // Our child, not yet reaped: its PID is still its own.
        let _ = self.runsvdir.kill();
        guard::kill_runit(&self.scan);
        let _ = self.runsvdir.wait();
    }
}

/// What `runsv` writes to `supervise/status` (20 bytes: TAI64N start time, PID
/// little-endian, paused, wanted `u`/`d`, terminated, state 0 down / 1 run / 2 finish).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Status {
    pid: u32,
    running: bool,
}

impl Status {
    fn read(service: &Path) -> Option<Status> {
        let mut buf = [0u8; 20];
        let mut file = File::open(service.join("supervise/status")).ok()?;
        file.read_exact(&mut buf).ok()?;
        Some(Status {
            pid: u32::from_le_bytes([buf[12], buf[13], buf[14], buf[15]]),
            running: buf[19] == 1,
        })
    }
}

/// One round: up, status, down, and the `runsv`s' memory in the first.
pub(crate) fn runit_round(
    figures: &mut Figures,
    supervisors: &Supervisors,
    first: bool,
) -> Result<(), String> {
    guard::checkpoint();
    figures.record(Metric::RunitUp, supervisors.up()?);
    if first {
        match memory_of(&supervisors.runsvs()) {
            Ok(memory) => figures.runit_memory = Some(memory),
            Err(e) => figures.fail("runsv memory", e),
        }
    }
    let up_at = Instant::now();
    figures.record(Metric::RunitStatus, supervisors.status()?);
    // A service that ran under a second makes `runsv` sleep a second once it has
    // reaped it (runit's brake on a crash loop), and the next round's `sv up` would
    // wait for that: let each run a second first, as any real daemon does.
    if let Some(rest) = MIN_RUN.checked_sub(up_at.elapsed()) {
        std::thread::sleep(rest);
    }
    figures.record(Metric::RunitDown, supervisors.down()?);
    Ok(())
}

//! dmgr as a command, and timing a command with a deadline.

use super::*;

pub(crate) struct Dmgr {
    pub(crate) bin: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) run: PathBuf,
    pub(crate) stderr: PathBuf,
}

impl Dmgr {
    pub(crate) fn new(bin: &Path, config: &Path, run: &Path, stderr: &Path) -> Dmgr {
        Dmgr {
            bin: bin.to_path_buf(),
            config: config.to_path_buf(),
            run: run.to_path_buf(),
            stderr: stderr.to_path_buf(),
        }
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config-dir")
            .arg(&self.config)
            .arg("--run-dir")
            .arg(&self.run)
            .args(args)
            .env_clear()
            .envs(login_env());
        cmd
    }

    /// Runs `dmgr ARGS` and returns how long it took; an exit code other than
    /// `expect` is an error carrying its stderr.
    pub(crate) fn timed(&self, args: &[&str], expect: i32) -> Result<Duration, String> {
        guard::checkpoint();
        let what = format!("dmgr {}", args.join(" "));
        let stderr = File::create(&self.stderr).map_err(|e| format!("{what}: {e}"))?;
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr));
        let t = Instant::now();
        let mut child = cmd.spawn().map_err(|e| format!("{what}: {e}"))?;
        let status =
            wait_deadline(&mut child, COMMAND_TIMEOUT).map_err(|e| format!("{what}: {e}"))?;
        let elapsed = t.elapsed();
        if status.code() != Some(expect) {
            let text = fs::read_to_string(&self.stderr).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(8).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "{what}: {}: {}",
                describe(status),
                tail.join(" | ")
            ));
        }
        Ok(elapsed)
    }

    /// Runs `dmgr ARGS` untimed and returns its stdout.
    pub(crate) fn run_untimed(&self, args: &[&str]) -> Result<String, String> {
        guard::checkpoint();
        let what = format!("dmgr {}", args.join(" "));
        let stderr = File::create(&self.stderr).map_err(|e| format!("{what}: {e}"))?;
        let stdout_path = self.stderr.with_extension("stdout");
        let stdout = File::create(&stdout_path).map_err(|e| format!("{what}: {e}"))?;
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("{what}: {e}"))?;
        let status =
            wait_deadline(&mut child, COMMAND_TIMEOUT).map_err(|e| format!("{what}: {e}"))?;
        let out = fs::read_to_string(&stdout_path).unwrap_or_default();
        if !status.success() {
            let err = fs::read_to_string(&self.stderr).unwrap_or_default();
            return Err(format!("{what}: {}: {}", describe(status), err.trim()));
        }
        Ok(out)
    }

    /// Checks, through `list --json`, that exactly `n` daemons are running.
    pub(crate) fn expect_running(&self, n: usize) -> Result<(), String> {
        let out = self.run_untimed(&["list", "--json"])?;
        let value: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("list --json: {e}"))?;
        let entries = value.as_array().ok_or("list --json: not an array")?;
        let running = entries
            .iter()
            .filter(|e| e["status"] == "running" && e["pid"].is_number())
            .count();
        if running != n || entries.len() != n {
            return Err(format!(
                "list --json shows {running} of {} daemons running, expected {n}",
                entries.len()
            ));
        }
        Ok(())
    }
}

/// Runs a command with no input or output and returns how long it took, whatever its
/// exit status (`check` of a bad file exits 2 by design).
pub(crate) fn timed_any(cmd: Command) -> Result<Duration, String> {
    let (elapsed, status) = timed_status(cmd, Stdio::null())?;
    match status.code() {
        Some(0..=2) => Ok(elapsed),
        _ => Err(describe(status)),
    }
}

/// Runs a command with no input or output and returns how long it took.
pub(crate) fn timed(cmd: Command) -> Result<Duration, String> {
    let (elapsed, status) = timed_status(cmd, Stdio::inherit())?;
    if !status.success() {
        return Err(describe(status));
    }
    Ok(elapsed)
}

/// Runs a command with no input or output (standard error as given), at most
/// `COMMAND_TIMEOUT`, and returns how long it took and how it ended.
pub(crate) fn timed_status(
    mut cmd: Command,
    stderr: Stdio,
) -> Result<(Duration, ExitStatus), String> {
    guard::checkpoint();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let t = Instant::now();
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let status = wait_deadline(&mut child, COMMAND_TIMEOUT).map_err(|e| e.to_string())?;
    Ok((t.elapsed(), status))
}

/// Waits for `child` at most `timeout`, then kills it. Waits on a pidfd, so the time
/// it returns is the child's exit, not the next tick of a polling loop.
pub(crate) fn wait_deadline(child: &mut Child, timeout: Duration) -> io::Result<ExitStatus> {
    if let Ok(pidfd) = sys::pidfd_open(child.id() as i32) {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        if !sys::poll_readable(&pidfd, ms)? {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no exit within {} s", timeout.as_secs()),
            ));
        }
    }
    child.wait()
}

pub(crate) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

pub(crate) fn sync() {
    let _ = Command::new("sync")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status();
}

pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

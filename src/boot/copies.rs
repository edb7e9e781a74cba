//! Daemons that systemd runs under the units `export systemd` wrote for this config
//! directory: `start` starts no second copy of one, and `list` shows it running under
//! systemd rather than stopped. Only daemons whose exported unit file is installed
//! are asked about, with one `systemctl show` for all of them, so a host without
//! exported units costs a few `stat` calls.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `systemctl show` may take before the answer is taken as "none".
const SHOW_TIMEOUT: Duration = Duration::from_secs(3);

/// A daemon that systemd runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdCopy {
    /// The unit that runs it (`dmgr-web.service`).
    pub unit: String,
    /// Its main process, where systemd knows one.
    pub pid: Option<i32>,
    /// Its `ActiveState=` (`active`, `activating`, `deactivating`, `reloading`).
    pub state: String,
    /// How long its main process has run.
    pub uptime: Option<Duration>,
}

impl SystemdCopy {
    /// What `start` says instead of starting a second copy.
    pub fn refusal(&self, user: bool) -> String {
        let pid = self.pid.map(|p| format!(", pid {p}")).unwrap_or_default();
        let user = if user { " --user" } else { "" };
        format!(
            "runs under systemd as {} ({}{pid}); not started a second time\nhint: `systemctl{user} stop {}` first to hand it to dmgr (and `systemctl{user} disable` the exported units for good)",
            self.unit, self.state, self.unit
        )
    }
}

/// Returns true if and only if dmgr would ask the user's manager rather than the
/// system's: it runs as a user other than root.
pub fn is_user_scope() -> bool {
    !nix::unistd::geteuid().is_root()
}

/// The daemons among `names` of `config_dir` that systemd runs under their exported
/// units now, by name.
pub fn running_under_systemd(config_dir: &Path, names: &[&str]) -> BTreeMap<String, SystemdCopy> {
    let Some(program) = super::systemctl() else {
        return BTreeMap::new();
    };
    let user = is_user_scope();
    let prefix = super::unit_prefix(config_dir, user);
    let dirs = unit_dirs(user);
    let units: Vec<(String, String)> = names
        .iter()
        .map(|name| (name.to_string(), format!("{prefix}-{name}.service")))
        .filter(|(_, unit)| dirs.iter().any(|d| d.join(unit).exists()))
        .collect();
    if units.is_empty() {
        return BTreeMap::new();
    }
    let mut args: Vec<String> = Vec::new();
    if user {
        args.push("--user".into());
    }
    args.push("show".into());
    args.push("--property=Id,ActiveState,MainPID,ExecMainStartTimestampMonotonic".into());
    args.extend(units.iter().map(|(_, unit)| unit.clone()));
    let Some(text) = run_with_timeout(&program, &args) else {
        return BTreeMap::new();
    };
    let now = monotonic_us();
    let shown = parse_show(&text, now);
    units
        .into_iter()
        .filter_map(|(name, unit)| {
            let copy = shown.iter().find(|c| c.unit == unit)?;
            is_active(&copy.state).then(|| (name, copy.clone()))
        })
        .collect()
}

/// Returns true if and only if a unit in `state` has (or is about to have) its
/// processes.
fn is_active(state: &str) -> bool {
    matches!(
        state,
        "active" | "activating" | "deactivating" | "reloading" | "refreshing"
    )
}

/// Where units of the manager are installed (systemd.unit(5), "Unit File Load Path"),
/// or only `DMGR_SYSTEMD_UNIT_DIR` where it is set.
fn unit_dirs(user: bool) -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os("DMGR_SYSTEMD_UNIT_DIR").filter(|v| !v.is_empty()) {
        return vec![PathBuf::from(dir)];
    }
    if !user {
        return [
            "/etc/systemd/system",
            "/run/systemd/system",
            "/usr/local/lib/systemd/system",
            "/usr/lib/systemd/system",
            "/lib/systemd/system",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(placement) = super::Placement::new(Path::new("/"), true, None) {
        dirs.push(placement.unit_dir);
    }
    dirs.extend(
        [
            "/etc/systemd/user",
            "/usr/local/lib/systemd/user",
            "/usr/lib/systemd/user",
        ]
        .iter()
        .map(PathBuf::from),
    );
    dirs
}

/// Runs `program ARGS` and returns its standard output, or `None` when it fails or
/// takes longer than [`SHOW_TIMEOUT`] (then it is killed).
fn run_with_timeout(program: &[std::ffi::OsString], args: &[String]) -> Option<String> {
    let (first, rest) = program.split_first()?;
    let mut child = Command::new(first)
        .args(rest)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + SHOW_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    Some(out)
}

/// CLOCK_MONOTONIC in microseconds, as systemd's `...TimestampMonotonic=` counts.
fn monotonic_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000
                + u64::try_from(t.tv_nsec()).unwrap_or(0) / 1000
        })
        .unwrap_or(0)
}

/// The units `systemctl show` describes: blocks of `KEY=VALUE` lines, one a unit,
/// separated by blank lines; `now_us` is the monotonic clock then.
fn parse_show(text: &str, now_us: u64) -> Vec<SystemdCopy> {
    text.split("\n\n")
        .filter_map(|block| {
            let value = |key: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            };
            let started = value("ExecMainStartTimestampMonotonic")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&us| us > 0 && us <= now_us);
            Some(SystemdCopy {
                unit: value("Id")?.trim().to_string(),
                pid: value("MainPID")
                    .and_then(|v| v.trim().parse::<i32>().ok())
                    .filter(|&p| p > 0),
                state: value("ActiveState")?.trim().to_string(),
                uptime: started.map(|us| Duration::from_micros(now_us - us)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemctl_show_reads_back() {
        let text = "Id=dmgr-web.service\nActiveState=active\nMainPID=42\nExecMainStartTimestampMonotonic=1000000\n\nMainPID=0\nId=dmgr-db.service\nActiveState=inactive\nExecMainStartTimestampMonotonic=0\n";
        let shown = parse_show(text, 3_000_000);
        assert_eq!(
            shown,
            [
                SystemdCopy {
                    unit: "dmgr-web.service".into(),
                    pid: Some(42),
                    state: "active".into(),
                    uptime: Some(Duration::from_secs(2)),
                },
                SystemdCopy {
                    unit: "dmgr-db.service".into(),
                    pid: None,
                    state: "inactive".into(),
                    uptime: None,
                }
            ]
        );
        assert!(is_active("active") && is_active("deactivating"));
        assert!(!is_active("inactive") && !is_active("failed"));
    }
}

//! What `dmgr boot` writes and runs to tie a config directory to the host's start-up:
//! the systemd unit (named after the config directory, so several never collide), the
//! `systemctl` calls, and, where systemd is not the init system, the crontab line and
//! OpenRC and sysvinit scripts to install by hand. `commands::boot` tells the story;
//! this module decides the names, paths and texts.
//!
//! The unit runs `dmgr start --all` as a `Type=notify` service that stays active
//! (`RemainAfterExit=yes`), so that at shutdown systemd runs its `ExecStop=`,
//! `dmgr stop --all`, while the network is still up; `start --all` sends `READY=1`
//! once every daemon it started is up (`ready`), so that `After=` on the unit holds.
mod copies;
mod host;
mod ready;
#[cfg(test)]
mod tests;
mod unit;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{self, Daemon, DaemonType, Dirs};
use crate::Error;

use crate::export::systemd::names::user_config_home;
pub use crate::export::systemd::names::{default_config_dir, escape_path, unit_name, unit_prefix};
pub use copies::{is_user_scope, running_under_systemd, SystemdCopy};
pub use host::{
    init_name, is_lingering, missing_user_manager, run_systemctl, systemctl, systemctl_args,
    systemd_is_init, this_binary, upgrade_risk, user_name,
};
pub use ready::tell_manager_ready;
pub use unit::{hand_install, parse_installed, unit_text, Installed};

/// The first line of every unit `boot install` writes: a unit without it is not
/// dmgr's, and `install` and `uninstall` leave it alone.
pub const MARKER: &str = "# Written by `dmgr boot install`";

/// Extra time beyond the slowest stop chain, for SIGKILL and reaping.
const STOP_SLACK: Duration = Duration::from_secs(30);
/// Extra time beyond the slowest start chain.
const START_SLACK: Duration = Duration::from_secs(60);
/// Extra time per level of `after`, for the keepers' own work.
const LEVEL_SLACK: Duration = Duration::from_secs(5);

/// Where a boot unit lives and what it is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// A unit of the user's systemd manager rather than the system's.
    pub user: bool,
    /// The unit's name: `dmgr.service` or `dmgr.ESCAPED-PATH.service`.
    pub name: String,
    /// The directory the unit file is written to.
    pub unit_dir: PathBuf,
}

impl Placement {
    /// The unit for `config_dir`, in `unit_dir` or the default directory of its scope.
    pub fn new(config_dir: &Path, user: bool, unit_dir: Option<&Path>) -> Result<Placement, Error> {
        let unit_dir = match unit_dir {
            Some(dir) => dir.to_path_buf(),
            None if user => user_config_home()?.join("systemd/user"),
            None => PathBuf::from("/etc/systemd/system"),
        };
        Ok(Placement {
            user,
            name: unit_name(config_dir, user),
            unit_dir,
        })
    }

    /// The unit file.
    pub fn path(&self) -> PathBuf {
        self.unit_dir.join(&self.name)
    }

    /// The target whose start starts the unit.
    pub fn wanted_by(&self) -> &'static str {
        if self.user {
            "default.target"
        } else {
            "multi-user.target"
        }
    }

    /// The symlink `systemctl enable` makes for the unit.
    pub fn enable_link(&self) -> PathBuf {
        self.unit_dir
            .join(format!("{}.wants", self.wanted_by()))
            .join(&self.name)
    }

    /// Returns true if and only if the unit is enabled (its symlink exists).
    pub fn is_enabled(&self) -> bool {
        std::fs::symlink_metadata(self.enable_link()).is_ok()
    }

    /// The name for hand-installed init scripts: the unit's without `.service`, and
    /// with `_` for what `systemd-escape` writes as `\xNN`, so that it needs no quoting.
    pub fn script_name(&self) -> String {
        let base = self.name.trim_end_matches(".service");
        let mut out = String::new();
        let mut rest = base;
        while let Some(at) = rest.find("\\x") {
            out.push_str(&rest[..at]);
            out.push('_');
            rest = rest.get(at + 4..).unwrap_or("");
        }
        out.push_str(rest);
        out
    }
}

/// The options that make a later `dmgr` call find exactly these directories: the
/// config directory always, and the run directory unless discovery finds it (and the
/// log directory beside it) from the config directory alone: root's system directory.
pub fn dir_args(dirs: &Dirs) -> Vec<String> {
    let mut args = vec![
        "--config-dir".to_string(),
        dirs.config_dir.display().to_string(),
    ];
    let system = dirs.config_dir == Path::new(config::SYSTEM_CONFIG_DIR)
        && dirs.run_dir == Path::new(config::SYSTEM_RUN_DIR)
        && dirs.log_dir == Path::new(config::SYSTEM_LOG_DIR);
    if !system {
        args.push("--run-dir".into());
        args.push(dirs.run_dir.display().to_string());
    }
    args
}

/// How long `start --all` or `stop --all` can take at most: levels of `after` one after
/// another, the daemons of a level together, each level as long as its slowest daemon,
/// with the slowest daemon of each level.
pub fn chain(
    levels: Vec<Vec<&Daemon>>,
    cost: impl Fn(&Daemon) -> Duration,
) -> (Duration, Vec<&Daemon>) {
    let mut total = Duration::ZERO;
    let mut slowest = Vec::new();
    for level in levels {
        if let Some(d) = level.iter().copied().max_by_key(|d| cost(d)) {
            total += cost(d) + LEVEL_SLACK;
            slowest.push(d);
        }
    }
    (total, slowest)
}

/// The longest a daemon's start may take: `start_wait`, and `ready_timeout` when it
/// waits for readiness, for a forking command to exit or for a notify daemon's READY=1.
fn start_cost(d: &Daemon) -> Duration {
    let waits = d.supervision.ready.is_some() || d.kind != DaemonType::Simple;
    d.supervision.start_wait
        + if waits {
            d.supervision.ready_timeout
        } else {
            Duration::ZERO
        }
}

/// The slowest stop chain of `daemons`, as `TimeoutStopSec=` is computed from it.
pub fn stop_timeout(daemons: &[Daemon]) -> Duration {
    let all: Vec<&Daemon> = daemons.iter().collect();
    chain(config::stop_order(&all), |d| d.supervision.stop_timeout).0 + STOP_SLACK
}

/// The slowest start chain of the autostart daemons of `daemons`, as
/// `TimeoutStartSec=` is computed from it, and the daemons on it (the slowest of
/// each level).
pub fn start_timeout(daemons: &[Daemon]) -> (Duration, Vec<&Daemon>) {
    let autostart: Vec<&Daemon> = daemons.iter().filter(|d| d.autostart).collect();
    let (total, slowest) = chain(config::start_order(&autostart), start_cost);
    (total + START_SLACK, slowest)
}

/// What no longer fits in the installed boot unit of `config_dir` (system or user,
/// in their usual unit directories or `unit_dir`): a `TimeoutStartSec=` or
/// `TimeoutStopSec=` shorter than `daemons` need now, each a sentence naming the
/// daemons that need it and what to do. Empty when no boot unit is installed.
pub fn stale_timeouts(
    config_dir: &Path,
    unit_dir: Option<&Path>,
    daemons: &[Daemon],
) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for user in [false, true] {
        let Ok(placement) = Placement::new(config_dir, user, unit_dir) else {
            continue;
        };
        // With one unit directory for both scopes, its unit is read once.
        if seen.contains(&placement.path()) {
            continue;
        }
        seen.push(placement.path());
        let Some(installed) = std::fs::read_to_string(placement.path())
            .ok()
            .and_then(|text| parse_installed(&text))
        else {
            continue;
        };
        if installed.config_dir.as_deref() != Some(config_dir) {
            continue;
        }
        let again = if user { " --user" } else { "" };
        let (start, slowest) = start_timeout(daemons);
        if installed.start_timeout.is_some_and(|t| t < start) {
            let names: Vec<String> = slowest
                .iter()
                .map(|d| {
                    format!(
                        "{} {}",
                        d.name,
                        config::units::format_duration(start_cost(d))
                    )
                })
                .collect();
            out.push(format!(
                "{}: its TimeoutStartSec= ({}) is shorter than the slowest start chain now ({}: {}): systemd would stop `start --all` at boot and every daemon it started; run `dmgr boot install{again}` again",
                placement.name,
                config::units::format_duration(installed.start_timeout.unwrap_or_default()),
                config::units::format_duration(start),
                names.join(", then ")
            ));
        }
        let stop = stop_timeout(daemons);
        if installed.stop_timeout.is_some_and(|t| t < stop) {
            out.push(format!(
                "{}: its TimeoutStopSec= ({}) is shorter than the slowest stop chain now ({}): systemd would kill daemons still stopping at shutdown; run `dmgr boot install{again}` again",
                placement.name,
                config::units::format_duration(installed.stop_timeout.unwrap_or_default()),
                config::units::format_duration(stop)
            ));
        }
    }
    out
}

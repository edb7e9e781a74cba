//! The texts `dmgr boot` writes: the systemd unit, what an installed one says about
//! itself, and the crontab line and init scripts to install by hand.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{self, Daemon, Dirs};
use crate::export::format_duration;
use crate::export::systemd::{environment_assignment, exec_line, value};

use super::{chain, dir_args, start_cost, Placement, MARKER, START_SLACK, STOP_SLACK};

/// The text of the boot unit for `dirs`, running `binary`.
pub fn unit_text(
    placement: &Placement,
    binary: &Path,
    dirs: &Dirs,
    daemons: &[Daemon],
    path_env: Option<&str>,
) -> String {
    let all: Vec<&Daemon> = daemons.iter().collect();
    let autostart: Vec<&Daemon> = daemons.iter().filter(|d| d.autostart).collect();
    let (stop_chain, stop_slowest) =
        chain(config::stop_order(&all), |d| d.supervision.stop_timeout);
    let (start_chain, start_slowest) = chain(config::start_order(&autostart), start_cost);
    let describe = |slowest: &[&Daemon], cost: &dyn Fn(&Daemon) -> Duration| {
        if slowest.is_empty() {
            return "no daemons yet".to_string();
        }
        let steps: Vec<String> = slowest
            .iter()
            .map(|d| format!("{} {}", d.name, config::units::format_duration(cost(d))))
            .collect();
        steps.join(", then ")
    };
    let config_dir = dirs.config_dir.display().to_string();
    let mut command = vec![binary.display().to_string()];
    command.extend(dir_args(dirs));
    let with = |verb: &[&str]| {
        let mut argv = command.clone();
        argv.extend(verb.iter().map(|s| s.to_string()));
        exec_line(&argv)
    };
    let mounts: Vec<String> = [&dirs.config_dir, &dirs.run_dir, &dirs.log_dir]
        .iter()
        .map(|p| p.display().to_string())
        .filter(|p| {
            !p.chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'))
        })
        .map(|p| value(&p))
        .collect();

    let mut t = String::new();
    let _ = writeln!(
        t,
        "{MARKER} (dmgr {}): {}.",
        env!("CARGO_PKG_VERSION"),
        placement.name
    );
    let _ = writeln!(
        t,
        "# At boot it runs `dmgr start --all` on {}; at shutdown `dmgr stop --all`.",
        value(&config_dir)
    );
    t.push_str(
        "# Run `dmgr boot install` again after moving dmgr or changing stop_timeout, ready_timeout or after\n# (`dmgr boot status`, `check`, `apply` and `start` say when its timeouts no longer fit).\n",
    );
    t.push_str("\n[Unit]\n");
    let _ = writeln!(t, "Description=dmgr daemons of {}", value(&config_dir));
    let target = format!("{}.target", placement.name.trim_end_matches(".service"));
    let _ = writeln!(
        t,
        "# `dmgr export systemd` writes {target} for the same daemons: one of the two runs them."
    );
    let _ = writeln!(t, "Conflicts={target}");
    if placement.user {
        t.push_str(
            "# A user manager cannot order itself after the system's network-online.target.\n",
        );
    } else {
        t.push_str("After=network-online.target\nWants=network-online.target\n");
    }
    if !mounts.is_empty() {
        let _ = writeln!(t, "RequiresMountsFor={}", mounts.join(" "));
    }
    t.push_str("\n[Service]\n# `start --all` says READY=1 once every daemon it started is up, so that units\n");
    t.push_str("# After= this one start only then; it stays active after `start --all` exits.\n");
    t.push_str("Type=notify\nNotifyAccess=main\nRemainAfterExit=yes\n");
    if !placement.user {
        // systemd sets HOME, USER, LOGNAME and SHELL only for a unit with User=: the
        // daemons get them as they would from root's login (a user manager has them).
        t.push_str(
            "# HOME, USER, LOGNAME and SHELL as for a login, which daemons pass on.\nUser=root\n",
        );
    }
    t.push_str(
        "# The keepers move into the leaf cgroup `keepers` of this unit, and each daemon gets a\n",
    );
    t.push_str("# cgroup of its own beside it: a subtree systemd leaves to dmgr (and the memory\n");
    t.push_str("# controller reaches memory_max where the host delegates it).\nDelegate=yes\n");
    if let Some(path) = path_env {
        t.push_str("# The PATH of `dmgr boot install`, so that daemons find their commands as they did then.\n");
        let _ = writeln!(t, "Environment={}", environment_assignment("PATH", path));
    }
    let _ = writeln!(t, "ExecStart={}", with(&["start", "--all"]));
    let _ = writeln!(t, "ExecStop={}", with(&["stop", "--all"]));
    t.push_str("# `systemctl reload`: start new autostart daemons, restart changed ones, stop removed ones.\n");
    let _ = writeln!(t, "ExecReload={}", with(&["apply"]));
    t.push_str(
        "# `start --all` exits 1 when some daemon did not start; the others must run on, and a\n",
    );
    t.push_str(
        "# failed unit would have systemd kill them: 1 counts as done (the journal has why).\n",
    );
    t.push_str("SuccessExitStatus=1\n");
    let _ = writeln!(
        t,
        "# Slowest start chain now: {}.",
        describe(&start_slowest, &start_cost)
    );
    let _ = writeln!(
        t,
        "TimeoutStartSec={}",
        format_duration(start_chain + START_SLACK)
    );
    let _ = writeln!(
        t,
        "# Slowest stop chain now: {}.",
        describe(&stop_slowest, &|d| d.supervision.stop_timeout)
    );
    let _ = writeln!(
        t,
        "TimeoutStopSec={}",
        format_duration(stop_chain + STOP_SLACK)
    );
    t.push_str("\n[Install]\n");
    let _ = writeln!(t, "WantedBy={}", placement.wanted_by());
    t
}

/// What an installed boot unit says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    /// The dmgr binary it runs.
    pub binary: Option<PathBuf>,
    /// Its `--config-dir`.
    pub config_dir: Option<PathBuf>,
    /// Its `--run-dir`, when it passes one.
    pub run_dir: Option<PathBuf>,
    /// Its `TimeoutStopSec=`.
    pub stop_timeout: Option<Duration>,
    /// Its `TimeoutStartSec=`.
    pub start_timeout: Option<Duration>,
}

/// Reads back a unit `unit_text` wrote; `None` when it is not dmgr's.
pub fn parse_installed(text: &str) -> Option<Installed> {
    if !text.starts_with(MARKER) {
        return None;
    }
    let mut installed = Installed::default();
    for line in text.lines() {
        if let Some(exec) = line.strip_prefix("ExecStart=") {
            let words: Vec<String> = shlex::split(exec)
                .unwrap_or_default()
                .into_iter()
                .map(|w| w.replace("$$", "$").replace("%%", "%"))
                .collect();
            installed.binary = words.first().map(PathBuf::from);
            for pair in words.windows(2) {
                match pair[0].as_str() {
                    "--config-dir" => installed.config_dir = Some(PathBuf::from(&pair[1])),
                    "--run-dir" => installed.run_dir = Some(PathBuf::from(&pair[1])),
                    _ => {}
                }
            }
        } else if let Some(timeout) = line.strip_prefix("TimeoutStopSec=") {
            installed.stop_timeout = config::units::parse_duration(timeout).ok();
        } else if let Some(timeout) = line.strip_prefix("TimeoutStartSec=") {
            installed.start_timeout = config::units::parse_duration(timeout).ok();
        }
    }
    Some(installed)
}

/// What to install by hand where systemd is not the init system: a crontab line, and
/// (for root) an OpenRC and a sysvinit script.
pub fn hand_install(
    placement: &Placement,
    binary: &Path,
    dirs: &Dirs,
    path_env: Option<&str>,
) -> String {
    let quote = |s: &str| {
        shlex::try_quote(s)
            .map(|q| q.into_owned())
            .unwrap_or_else(|_| s.to_string())
    };
    let mut command = vec![quote(&binary.display().to_string())];
    command.extend(dir_args(dirs).iter().map(|a| quote(a)));
    let command = command.join(" ");
    let path = path_env
        .map(|p| format!("PATH={} ", quote(p)))
        .unwrap_or_default();
    let config_dir = dirs.config_dir.display().to_string();
    let script = placement.script_name();
    let mut t = String::new();
    let who = if placement.user {
        "as yourself"
    } else {
        "as root"
    };
    let _ = writeln!(
        t,
        "# cron (`crontab -e` {who}): starts the daemons at boot. cron has no shutdown"
    );
    t.push_str("# hook: add `dmgr stop --all` to your shutdown scripts, or the daemons are killed, not stopped.\n");
    // cron turns an unescaped % into a newline.
    let _ = writeln!(
        t,
        "@reboot {}",
        format!("{path}{command} start --all").replace('%', "\\%")
    );
    if placement.user {
        t.push_str("\n# OpenRC and sysvinit scripts run as root: for a user's daemons, use the crontab line.\n");
        return t;
    }
    let export_path = path_env
        .map(|p| format!("export PATH={}\n", quote(p)))
        .unwrap_or_default();
    let _ = write!(
        t,
        r#"
# OpenRC: save as /etc/init.d/{script}, `chmod +x` it, then `rc-update add {script} default`.
#!/sbin/openrc-run
description="dmgr daemons of {config_dir}"
{export_path}depend() {{
    need net localmount
}}
start() {{
    ebegin "Starting dmgr daemons"
    {command} start --all
    eend $?
}}
stop() {{
    ebegin "Stopping dmgr daemons"
    {command} stop --all
    eend $?
}}

# sysvinit: save as /etc/init.d/{script}, `chmod +x` it, then `update-rc.d {script} defaults`
# (Debian) or `chkconfig --add {script}` (Red Hat).
#!/bin/sh
### BEGIN INIT INFO
# Provides:          {script}
# Required-Start:    $network $remote_fs $local_fs
# Required-Stop:     $network $remote_fs $local_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: dmgr daemons of {config_dir}
### END INIT INFO
{export_path}case "$1" in
    start) {command} start --all ;;
    stop) {command} stop --all ;;
    restart|force-reload) {command} stop --all; {command} start --all ;;
    status) {command} list || exit 4
        # LSB: 0 while any daemon runs, 3 when none does.
        {command} list --json | grep -q '"status": "running"' || exit 3 ;;
    *) echo "usage: $0 start|stop|restart|status" >&2; exit 3 ;;
esac
"#
    );
    t
}

//! What `dmgr boot` writes and runs to tie a config directory to the host's start-up:
//! the systemd unit (named after the config directory, so several never collide), the
//! `systemctl` calls, and, where systemd is not the init system, the crontab line and
//! OpenRC and sysvinit scripts to install by hand. `commands::boot` tells the story;
//! this module decides the names, paths and texts.
//!
//! The unit runs `dmgr start --all` as a `Type=oneshot` service that stays active
//! (`RemainAfterExit=yes`), so that at shutdown systemd runs its `ExecStop=`,
//! `dmgr stop --all`, while the network is still up.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::config::{self, Daemon, DaemonType, Dirs};
use crate::export::format_duration;
use crate::export::systemd::{environment_assignment, exec_line, value};
use crate::Error;

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

/// `${XDG_CONFIG_HOME:-~/.config}`.
fn user_config_home() -> Result<PathBuf, Error> {
    let nonempty = |key: &str| {
        std::env::var_os(key)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    nonempty("XDG_CONFIG_HOME")
        .or_else(|| nonempty("HOME").map(|h| h.join(".config")))
        .ok_or_else(|| Error::Usage("neither HOME nor XDG_CONFIG_HOME is set: cannot find the user unit directory; pass --unit-dir DIR".into()))
}

/// The config directory that gets the plain name `dmgr.service`: the one dmgr uses
/// by default for root (`/etc/dmgr/daemons.d`) or for a user.
pub fn default_config_dir(user: bool) -> Option<PathBuf> {
    if !user {
        return Some(PathBuf::from(config::SYSTEM_CONFIG_DIR));
    }
    user_config_home()
        .ok()
        .map(|base| base.join("dmgr/daemons.d"))
}

/// The unit name for `config_dir`: `dmgr.service` for the default directory,
/// `dmgr.ESCAPED-PATH.service` (the path escaped as `systemd-escape --path` does) for
/// any other, so that each directory gets a unit of its own.
pub fn unit_name(config_dir: &Path, user: bool) -> String {
    if default_config_dir(user).as_deref() == Some(config_dir) {
        return "dmgr.service".into();
    }
    let name = format!("dmgr.{}.service", escape_path(config_dir));
    if name.len() <= 255 {
        return name;
    }
    // systemd's limit on unit names; a hash keeps very long paths apart.
    let hash = config_dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("dmgr.{hash:016x}.service")
}

/// A path escaped as `systemd-escape --path` does: `/` between components becomes
/// `-`, and every byte but ASCII letters, digits, `:`, `_` and a `.` that does not
/// start the name becomes `\xNN`.
pub fn escape_path(path: &Path) -> String {
    let parts: Vec<&[u8]> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(part) => Some(part.as_encoded_bytes()),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        return "-".into();
    }
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        for (j, &byte) in part.iter().enumerate() {
            let keep = byte.is_ascii_alphanumeric()
                || byte == b':'
                || byte == b'_'
                || (byte == b'.' && !(i == 0 && j == 0));
            if keep {
                out.push(byte as char);
            } else {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out
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
/// waits for readiness or for a forking command to exit.
fn start_cost(d: &Daemon) -> Duration {
    let waits = d.supervision.ready.is_some() || d.kind == DaemonType::Forking;
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
        "# Run `dmgr boot install` again after moving dmgr or changing stop_timeout or after.\n",
    );
    t.push_str("\n[Unit]\n");
    let _ = writeln!(t, "Description=dmgr daemons of {}", value(&config_dir));
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
    t.push_str("\n[Service]\nType=oneshot\nRemainAfterExit=yes\n");
    if let Some(path) = path_env {
        t.push_str("# The PATH of `dmgr boot install`, so that daemons find their commands as they did then.\n");
        let _ = writeln!(t, "Environment={}", environment_assignment("PATH", path));
    }
    let _ = writeln!(t, "ExecStart={}", with(&["start", "--all"]));
    let _ = writeln!(t, "ExecStop={}", with(&["stop", "--all"]));
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
        }
    }
    Some(installed)
}

/// The path of this dmgr binary for the unit: the command as typed when it names this
/// very file (so a stable symlink such as `/usr/local/bin/dmgr` is kept), else the
/// resolved executable.
pub fn this_binary() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        action: "find the dmgr binary",
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let typed = std::env::args_os().next().map(PathBuf::from);
    // A relative path such as ./target/release/dmgr would need normalising; the
    // resolved executable serves as well there.
    let typed = typed.and_then(|argv0| {
        let name = argv0.to_str()?;
        let found = if argv0.is_absolute() {
            argv0.clone()
        } else if !name.contains('/') {
            crate::keeper::sys::resolve_program(name, std::env::var("PATH").ok().as_deref())?
        } else {
            return None;
        };
        let same = std::fs::canonicalize(&found).ok()? == std::fs::canonicalize(&exe).ok()?;
        (same
            && found.is_absolute()
            && !found
                .components()
                .any(|c| c == std::path::Component::ParentDir))
        .then_some(found)
    });
    Ok(typed.unwrap_or(exe))
}

/// Why a unit naming `binary` by path may break after an upgrade or a clean-up, when
/// it lives where one moves or replaces it (pm2's startup scripts broke this way).
pub fn upgrade_risk(binary: &Path, user: bool) -> Option<String> {
    let text = binary.display().to_string();
    let has = |part: &str| text.contains(part);
    if has("/target/debug/")
        || has("/target/release/")
        || text.contains("/target/") && has("/deps/")
    {
        return Some("a cargo build directory: the next `cargo build` replaces it and `cargo clean` removes it; install dmgr (for example `cargo install --path . --root /usr/local`) and run `boot install` with that binary".into());
    }
    const MANAGERS: &[&str] = &[
        "/.rustup/toolchains/",
        "/.nvm/",
        "/.asdf/",
        "/.local/share/mise/",
        "/.local/share/rtx/",
        "/.pyenv/",
        "/.rbenv/",
        "/.volta/",
        "/.sdkman/",
        "/nix/store/",
        "/Cellar/",
    ];
    if let Some(dir) = MANAGERS.iter().find(|dir| has(dir)) {
        return Some(format!(
            "a version manager's directory ({}): an upgrade installs the next version elsewhere and this path goes stale; install dmgr where it stays, such as /usr/local/bin",
            dir.trim_matches('/')
        ));
    }
    if has("/.cargo/bin/") && !user {
        return Some("a user's ~/.cargo/bin: `cargo install` replaces it in place, but a system unit should not depend on a home directory; copy it to /usr/local/bin".into());
    }
    if text.starts_with("/tmp/") || text.starts_with("/var/tmp/") {
        return Some("a temporary directory, which may be emptied at boot".into());
    }
    None
}

/// How to run `systemctl`: `DMGR_SYSTEMCTL` (words, for tests and for preparing
/// images) if set, else `systemctl` when systemd is the init system, else `None`.
pub fn systemctl() -> Option<Vec<OsString>> {
    if let Some(words) = std::env::var_os("DMGR_SYSTEMCTL").filter(|v| !v.is_empty()) {
        let text = words.to_string_lossy().into_owned();
        return Some(
            shlex::split(&text)
                .unwrap_or_default()
                .into_iter()
                .map(OsString::from)
                .collect(),
        );
    }
    systemd_is_init().then(|| vec![OsString::from("systemctl")])
}

/// Returns true if and only if systemd is the running init system (as sd_booted(3)
/// decides: `/run/systemd/system` exists).
pub fn systemd_is_init() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The name of the init system running as PID 1.
pub fn init_name() -> String {
    std::fs::read_to_string("/proc/1/comm")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The `systemctl` calls for `verb` on the unit, each as argv after the program.
pub fn systemctl_args(placement: &Placement, verbs: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    if placement.user {
        args.push("--user".to_string());
    }
    args.extend(verbs.iter().map(|s| s.to_string()));
    args
}

/// Runs `systemctl ARGS`, failing with its standard error.
pub fn run_systemctl(program: &[OsString], args: &[String]) -> Result<(), Error> {
    let shown = format!("systemctl {}", args.join(" "));
    let Some((first, rest)) = program.split_first() else {
        return Err(Error::daemon(
            "boot",
            format!("cannot run `{shown}`: DMGR_SYSTEMCTL is empty"),
        ));
    };
    let out = Command::new(first)
        .args(rest)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::daemon("boot", format!("cannot run `{shown}`: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(Error::daemon(
        "boot",
        format!("`{shown}` failed ({}): {}", out.status, stderr.trim()),
    ))
}

/// Returns true if and only if `user` lingers (`loginctl enable-linger`), so that its
/// manager starts at boot.
pub fn is_lingering(user: &str) -> bool {
    Path::new("/var/lib/systemd/linger").join(user).exists()
}

/// The name of the user running dmgr.
pub fn user_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| nix::unistd::geteuid().to_string())
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
    status) {command} list ;;
    *) echo "usage: $0 start|stop|restart|status" >&2; exit 3 ;;
esac
"#
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_escaped_as_systemd_escape_does() {
        assert_eq!(
            escape_path(Path::new("/srv/app/daemons.d")),
            "srv-app-daemons.d"
        );
        assert_eq!(
            escape_path(Path::new("/work/wt-handoff/daemons.d")),
            "work-wt\\x2dhandoff-daemons.d"
        );
        assert_eq!(escape_path(Path::new("/a b/.hidden")), "a\\x20b-.hidden");
        assert_eq!(escape_path(Path::new("/.dot")), "\\x2edot");
        assert_eq!(escape_path(Path::new("/")), "-");
    }

    #[test]
    fn unit_names_never_collide_and_the_default_directory_is_plain() {
        assert_eq!(
            unit_name(Path::new("/etc/dmgr/daemons.d"), false),
            "dmgr.service"
        );
        let a = unit_name(Path::new("/srv/a/daemons.d"), false);
        let b = unit_name(Path::new("/srv/b/daemons.d"), false);
        assert_eq!(a, "dmgr.srv-a-daemons.d.service");
        assert_ne!(a, b);
        // dmgr-NAME.service is what `export systemd` writes; boot units never look so.
        assert!(!a.starts_with("dmgr-"));
        let long = PathBuf::from(format!("/{}", "x".repeat(300)));
        let name = unit_name(&long, false);
        assert!(name.len() < 64 && name.starts_with("dmgr.") && name.ends_with(".service"));
    }

    #[test]
    fn the_system_directory_is_found_again_without_a_run_dir() {
        let system = Dirs {
            config_dir: config::SYSTEM_CONFIG_DIR.into(),
            run_dir: config::SYSTEM_RUN_DIR.into(),
            log_dir: config::SYSTEM_LOG_DIR.into(),
        };
        assert_eq!(dir_args(&system), ["--config-dir", "/etc/dmgr/daemons.d"]);
        let project = Dirs {
            config_dir: "/p/daemons.d".into(),
            run_dir: "/p/.dmgr".into(),
            log_dir: "/p/.dmgr/log".into(),
        };
        assert_eq!(
            dir_args(&project),
            ["--config-dir", "/p/daemons.d", "--run-dir", "/p/.dmgr"]
        );
    }

    #[test]
    fn binaries_that_upgrades_move_are_named() {
        let risk = |p: &str, user| upgrade_risk(Path::new(p), user);
        assert!(risk("/home/a/src/dmgr/target/release/dmgr", false)
            .unwrap()
            .contains("cargo build"));
        assert!(risk("/home/a/.rustup/toolchains/stable/bin/dmgr", true)
            .unwrap()
            .contains("version manager"));
        assert!(risk("/home/a/.nvm/versions/node/v20/bin/dmgr", true)
            .unwrap()
            .contains(".nvm"));
        assert!(risk("/home/a/.cargo/bin/dmgr", false)
            .unwrap()
            .contains("home directory"));
        assert_eq!(risk("/home/a/.cargo/bin/dmgr", true), None);
        assert_eq!(risk("/usr/local/bin/dmgr", false), None);
        assert_eq!(risk("/usr/bin/dmgr", true), None);
    }

    #[test]
    fn an_installed_unit_reads_back() {
        let placement = Placement {
            user: false,
            name: "dmgr.p-daemons.d.service".into(),
            unit_dir: "/etc/systemd/system".into(),
        };
        let dirs = Dirs {
            config_dir: "/p 1/daemons.d".into(),
            run_dir: "/p 1/.dmgr$x".into(),
            log_dir: "/p 1/.dmgr$x/log".into(),
        };
        let text = unit_text(
            &placement,
            Path::new("/usr/local/bin/dmgr"),
            &dirs,
            &[],
            Some("/usr/bin:/bin"),
        );
        let installed = parse_installed(&text).unwrap();
        assert_eq!(
            installed.binary.as_deref(),
            Some(Path::new("/usr/local/bin/dmgr"))
        );
        assert_eq!(
            installed.config_dir.as_deref(),
            Some(Path::new("/p 1/daemons.d"))
        );
        assert_eq!(
            installed.run_dir.as_deref(),
            Some(Path::new("/p 1/.dmgr$x"))
        );
        assert_eq!(installed.stop_timeout, Some(STOP_SLACK));
        assert!(parse_installed("[Unit]\n").is_none());
    }

    #[test]
    fn timeouts_cover_the_slowest_chain_of_after() {
        let files = crate::export::tests_support::Files::new();
        let a = files.daemon("a", "command = \"x\"\nstop_timeout = \"20s\"\nready = { tcp = \"127.0.0.1:1\" }\nready_timeout = \"9s\"\n");
        let b = files.daemon(
            "b",
            "command = \"x\"\nstop_timeout = \"7s\"\nafter = [\"a\"]\n",
        );
        let c = files.daemon("c", "command = \"x\"\nstop_timeout = \"3s\"\n");
        let daemons = [a, b, c];
        // b stops first, then a and c together: 7 + 20, and 5 s a level, and 30 s.
        assert_eq!(
            stop_timeout(&daemons),
            Duration::from_secs(7 + 20 + 10 + 30)
        );
        let placement =
            Placement::new(&files.dirs.config_dir, false, Some(files.tmp.path())).unwrap();
        let text = unit_text(
            &placement,
            Path::new("/usr/bin/dmgr"),
            &files.dirs,
            &daemons,
            None,
        );
        assert!(text.contains("\nTimeoutStopSec=67s\n"), "{text}");
        assert!(
            text.contains("# Slowest stop chain now: b 7s, then a 20s."),
            "{text}"
        );
        // a starts first (500 ms and 9 s for its check), then b: 9.5 + 0.5 + 10 + 60.
        assert!(text.contains("\nTimeoutStartSec=80s\n"), "{text}");
        assert!(!text.contains("Environment="));
    }

    #[test]
    fn a_user_unit_waits_for_no_system_target() {
        let files = crate::export::tests_support::Files::new();
        let placement =
            Placement::new(&files.dirs.config_dir, true, Some(files.tmp.path())).unwrap();
        let text = unit_text(
            &placement,
            Path::new("/usr/bin/dmgr"),
            &files.dirs,
            &[],
            Some("/bin"),
        );
        assert!(text.contains("\nWantedBy=default.target\n"));
        assert!(!text.contains("network-online.target\n"));
        assert!(text.contains("\nEnvironment=\"PATH=/bin\"\n"));
        assert_eq!(
            placement.enable_link(),
            files
                .tmp
                .path()
                .join("default.target.wants")
                .join(&placement.name)
        );
    }

    #[test]
    fn init_script_names_need_no_quoting() {
        let placement = Placement {
            user: false,
            name: unit_name(Path::new("/work/wt-handoff/daemons.d"), false),
            unit_dir: "/etc/systemd/system".into(),
        };
        assert_eq!(placement.script_name(), "dmgr.work-wt_handoff-daemons.d");
        let text = hand_install(
            &placement,
            Path::new("/usr/bin/dmgr"),
            &Dirs {
                config_dir: "/work/wt-handoff/daemons.d".into(),
                run_dir: "/r 1".into(),
                log_dir: "/r 1/log".into(),
            },
            Some("/usr/bin:/b%in"),
        );
        assert!(text.contains("@reboot PATH='/usr/bin:/b\\%in' /usr/bin/dmgr --config-dir /work/wt-handoff/daemons.d --run-dir '/r 1' start --all\n"), "{text}");
        assert!(text.contains("#!/sbin/openrc-run") && text.contains("### BEGIN INIT INFO"));
        assert!(text.contains("rc-update add dmgr.work-wt_handoff-daemons.d default"));
    }
}

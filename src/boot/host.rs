//! What `dmgr boot` asks of the host: this binary's path, whether systemd is init, and
//! the `systemctl` calls.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

use super::Placement;

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
            crate::config::resolve_program(name, std::env::var("PATH").ok().as_deref())?
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
        .map_err(|e| Error::cannot("boot", format!("run `{shown}`"), e))?;
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

/// Why no systemd manager of this user runs (`None` when one does): its private
/// socket, `$XDG_RUNTIME_DIR/systemd/private`, is where `systemctl --user` connects.
pub fn missing_user_manager() -> Option<String> {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", nix::unistd::geteuid())));
    let socket = runtime.join("systemd/private");
    if socket.exists() {
        None
    } else {
        Some(format!("{} does not exist", socket.display()))
    }
}

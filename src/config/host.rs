//! What `dmgr check` can tell about a valid daemon from this host, beyond its file:
//! whether its `user` and `group` exist and whether its programs (`command`,
//! `stop_command`, `reload_command`) resolve, as `start` (and the keeper, at a stop or
//! reload) would find them. Each problem is a warning, not an error: the file is
//! valid, and the user or program may exist on the host where the daemon will run
//! (an image being built), but here `start` would fail on it.

use std::path::{Path, PathBuf};

use super::diagnostic::{line_col, Severity};
use super::{raw, Daemon, Diagnostic};

/// The warnings about `daemon` on this host, located at the keys they concern.
pub(crate) fn problems(daemon: &Daemon) -> Vec<Diagnostic> {
    let mut found: Vec<(&str, String)> = Vec::new();
    let process = &daemon.process;
    if let Some(name) = &process.user {
        if matches!(nix::unistd::User::from_name(name), Ok(None)) {
            found.push((
                "user",
                format!("user `{name}` does not exist on this host; `start` fails until it does"),
            ));
        }
    }
    if let Some(name) = &process.group {
        if matches!(nix::unistd::Group::from_name(name), Ok(None)) {
            found.push((
                "group",
                format!("group `{name}` does not exist on this host; `start` fails until it does"),
            ));
        }
    }
    let path = path_of(daemon);
    let commands = [
        (
            "command",
            Some(&process.command),
            "`start` fails until it is found",
        ),
        (
            "stop_command",
            daemon.supervision.stop_command.as_ref(),
            "a stop goes on to the signals without it",
        ),
        (
            "reload_command",
            daemon.supervision.reload_command.as_ref(),
            "`reload` fails until it is found",
        ),
    ];
    for (key, argv, then) in commands {
        let Some(program) = argv.and_then(|a| a.first()) else {
            continue;
        };
        if let Some(why) = unresolved(program, path.as_deref()) {
            found.push((key, format!("{why}; {then}")));
        }
    }
    if found.is_empty() {
        return Vec::new();
    }
    let source = std::fs::read_to_string(&daemon.file).unwrap_or_default();
    let table = raw::parse(&source).table;
    found
        .into_iter()
        .map(|(key, message)| {
            let location = table
                .get(key)
                .map_or((1, 1), |value| line_col(&source, value.span().start));
            Diagnostic {
                file: daemon.file.clone(),
                location,
                severity: Severity::Warning,
                message,
            }
        })
        .collect()
}

/// The `PATH` the daemon's programs are looked up with: the file's own (`env`, then
/// `env_file`), else the environment `dmgr` runs in, which `start` hands on; none
/// with `clear_env` (the C library's default path then).
fn path_of(daemon: &Daemon) -> Option<String> {
    if let Some(path) = daemon.process.env.get("PATH") {
        return Some(path.clone());
    }
    if !daemon.process.env_file.is_empty() {
        if let Ok(loaded) = super::env_file::load(&daemon.process.env_file) {
            // Later files win, as at a start.
            if let Some((_, path)) = loaded.vars.iter().rev().find(|(k, _)| k == "PATH") {
                return Some(path.clone());
            }
        }
    }
    match daemon.process.clear_env {
        true => None,
        false => std::env::var("PATH").ok(),
    }
}

/// Why `program` would not run, found as execvp(3) finds it with `path`; `None` if it
/// would.
fn unresolved(program: &str, path: Option<&str>) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        let shown = crate::text::show_path(Path::new(program));
        return match std::fs::metadata(program) {
            Err(_) => Some(format!("{shown} does not exist")),
            Ok(m) if !m.is_file() || m.permissions().mode() & 0o111 == 0 => {
                Some(format!("{shown} is not an executable file"))
            }
            Ok(_) => None,
        };
    }
    match resolve_program(program, path) {
        Some(_) => None,
        None => Some(format!(
            "`{program}` is not in PATH ({}): install it, or write its absolute path",
            path.unwrap_or("/usr/local/bin:/usr/bin:/bin")
        )),
    }
}

/// Resolves `program` the way execvp(3) would, with the daemon's `PATH`.
pub(crate) fn resolve_program(program: &str, path_var: Option<&str>) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path_var = path_var.unwrap_or("/usr/local/bin:/usr/bin:/bin");
    path_var
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_resolves_as_execvp_finds_it() {
        assert_eq!(unresolved("sh", Some("/usr/bin:/bin")), None);
        assert!(unresolved("no-such-program-here", Some("/bin"))
            .is_some_and(|w| w.contains("is not in PATH (/bin)")));
        assert!(unresolved("/nonexistent/x", None).is_some_and(|w| w.contains("does not exist")));
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let plain = plain.to_str().unwrap();
        assert!(unresolved(plain, None).is_some_and(|w| w.contains("not an executable")));
        assert!(unresolved(dir.path().to_str().unwrap(), None)
            .is_some_and(|w| w.contains("not an executable")));
    }
}

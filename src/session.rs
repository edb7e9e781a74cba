//! Whether `dmgr` runs inside a systemd scope (a login session's `session-N.scope`, or
//! a transient `run-*.scope` or `app-*.scope`), whose end takes every process in it
//! along: keepers started from there die with the session. `start` warns, once, and
//! says what to do (see `man dmgr`, LOGIN SESSIONS).

use std::sync::atomic::{AtomicBool, Ordering};

/// The systemd scope unit of the cgroup in `cgroup_text` (`/proc/self/cgroup`): from
/// the cgroup v2 line (`0::PATH`), else from the v1 `name=systemd` hierarchy; `None`
/// outside a scope, and for `init.scope`, PID 1's own.
pub(crate) fn scope_of(cgroup_text: &str) -> Option<&str> {
    let path_of = |prefix: &str| {
        cgroup_text.lines().find_map(|l| {
            l.split_once(':')
                .and_then(|(_, rest)| rest.strip_prefix(prefix))
        })
    };
    let path = path_of(":")
        .filter(|p| *p != "/")
        .or_else(|| path_of("name=systemd:"))?;
    let unit = path.trim_end_matches('/').rsplit('/').next()?;
    (unit.ends_with(".scope") && unit != "init.scope").then_some(unit)
}

/// The warning for a start from the scope `unit`.
pub(crate) fn warning(unit: &str) -> String {
    let what = match unit.starts_with("session-") {
        true => format!("the login session scope {unit}"),
        false => format!("the transient scope {unit}"),
    };
    format!(
        "dmgr: warning: started from {what}: when it ends (a logout with KillUserProcesses=yes, `loginctl terminate-session`, `systemctl stop {unit}`), systemd stops every process in it, these keepers and daemons too\nhint: start them from dmgr's boot unit instead: `dmgr boot install` (for a user: `dmgr boot install --user` and `loginctl enable-linger`), then `systemctl start` of the unit it names (see `man dmgr`, LOGIN SESSIONS)"
    )
}

/// Prints [`warning`] to standard error, once per process, if this process runs in a
/// scope and `starting` (keepers are about to be made).
pub(crate) fn warn_if_in_scope(starting: bool) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !starting || WARNED.swap(true, Ordering::Relaxed) {
        return;
    }
    let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    if let Some(unit) = scope_of(&text) {
        for line in warning(unit).lines() {
            crate::output::print_stderr_line(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_or_transient_scope_is_found_and_a_service_is_not() {
        let v2 = "0::/user.slice/user-1000.slice/session-3.scope\n";
        assert_eq!(scope_of(v2), Some("session-3.scope"));
        let run = "0::/system.slice/run-r0123abcd.scope\n";
        assert_eq!(scope_of(run), Some("run-r0123abcd.scope"));
        let app = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-1.scope\n";
        assert_eq!(scope_of(app), Some("vte-spawn-1.scope"));
        let hybrid =
            "12:memory:/\n1:name=systemd:/user.slice/user-0.slice/session-c1.scope\n0::/\n";
        assert_eq!(scope_of(hybrid), Some("session-c1.scope"));
        assert_eq!(scope_of("0::/system.slice/dmgr.service\n"), None);
        assert_eq!(scope_of("0::/init.scope\n"), None);
        assert_eq!(scope_of("9:name=systemd:/\n4:memory:/x\n0::/\n"), None);
        assert_eq!(scope_of(""), None);
        assert!(warning("session-3.scope").contains("login session scope session-3.scope"));
        assert!(warning("run-x.scope").contains("transient scope run-x.scope"));
    }
}

//! What a notify daemon's keys become in its unit: `Type=notify` (or
//! `Type=notify-reload` where this host's systemd has it), `WatchdogSec=`,
//! `WatchdogSignal=` and `NotifyAccess=`, and the readiness forms systemd lacks.

use super::super::{format_duration, Lost, Source};
use super::Unit;
use crate::config::{Daemon, DaemonType, NotifyAccess};

/// The first systemd with `Type=notify-reload`, which sends `ReloadSignal=` and waits
/// for the daemon's `RELOADING=1` ... `READY=1` as `dmgr reload` does.
pub(crate) const NOTIFY_RELOAD_SINCE: u32 = 253;

/// The version of the systemd installed here, from `systemctl --version` ("systemd 252
/// (252.39-1~deb12u2)"); `None` when there is none, or it says something else.
pub(crate) fn local_version() -> Option<u32> {
    let out = std::process::Command::new("systemctl")
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

/// The version number in `systemctl --version`'s first line.
pub(crate) fn parse_version(text: &str) -> Option<u32> {
    let line = text.lines().next()?;
    line.strip_prefix("systemd ")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Returns true if and only if `d`'s unit is `Type=notify-reload`: a notify daemon
/// reloaded by its `reload_signal` (a `reload_command` is an `ExecReload=` of its
/// own), for a systemd that has that type.
pub(crate) fn uses_notify_reload(d: &Daemon, source: &Source) -> bool {
    d.kind == DaemonType::Notify
        && d.supervision.reload_command.is_none()
        && source
            .systemd_version
            .is_some_and(|v| v >= NOTIFY_RELOAD_SINCE)
}

/// The `Type=` line of a notify daemon, and what an older systemd loses.
pub(crate) fn kind(d: &Daemon, source: &Source, unit: &mut Unit) {
    if uses_notify_reload(d, source) {
        unit.service.push("Type=notify-reload".into());
        return;
    }
    unit.service.push("Type=notify".into());
    if d.supervision.reload_command.is_none() {
        unit.lost.push(Lost::new(
            "type = \"notify\"",
            format!(
                "`dmgr reload` waits for the daemon's RELOADING=1 ... READY=1 and reports its verdict; systemd {NOTIFY_RELOAD_SINCE} and later do that with Type=notify-reload, which this host's systemd{} lacks: `systemctl reload` returns once the signal is sent",
                source
                    .systemd_version
                    .map_or(String::new(), |v| format!(" {v}"))
            ),
        ));
    }
}

/// `watchdog`, `watchdog_signal` and `notify_access`, and the start's timeout, which
/// systemd applies to a notify daemon's `READY=1` as dmgr applies `ready_timeout`.
pub(crate) fn keys(d: &Daemon, _: &Source, unit: &mut Unit) {
    if d.kind != DaemonType::Notify {
        return;
    }
    unit.service.push(format!(
        "TimeoutStartSec={}",
        format_duration(d.supervision.ready_timeout)
    ));
    let access = match d.supervision.notify_access {
        NotifyAccess::Main => "main",
        NotifyAccess::All => "all",
    };
    unit.service.push(format!("NotifyAccess={access}"));
    if let Some(period) = d.process.watchdog {
        unit.service
            .push(format!("WatchdogSec={}", format_duration(period)));
        unit.service.push(format!(
            "WatchdogSignal={}",
            d.supervision.watchdog_signal.0.as_str()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tests_support::Files;
    use super::*;

    /// The value of every `KEY=` line of `unit`.
    fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
        let prefix = format!("{key}=");
        unit.lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect()
    }

    #[test]
    fn a_notify_daemon_is_type_notify_with_its_watchdog_and_access() {
        let files = Files::new();
        let d = files.daemon(
            "pg",
            "command = \"/bin/true\"\ntype = \"notify\"\nwatchdog = \"30s\"\nnotify_access = \"all\"\nready_timeout = \"90s\"\nreload_signal = \"USR1\"\n",
        );
        let mut source = files.source();
        source.systemd_version = Some(252);
        let unit = super::super::service(&d, &source).0.text;
        assert_eq!(values(&unit, "Type"), ["notify"]);
        assert_eq!(values(&unit, "WatchdogSec"), ["30s"]);
        assert_eq!(values(&unit, "WatchdogSignal"), ["SIGABRT"]);
        assert_eq!(values(&unit, "NotifyAccess"), ["all"]);
        assert_eq!(values(&unit, "TimeoutStartSec"), ["90s"]);
        assert!(
            values(&unit, "ExecReload")[0].contains("-s USR1 $MAINPID"),
            "{unit}"
        );
        assert!(
            unit.contains("Type=notify-reload, which this host's systemd 252 lacks"),
            "{unit}"
        );
        // systemd 253 and later wait for the reload's verdict themselves.
        source.systemd_version = Some(253);
        let unit = super::super::service(&d, &source).0.text;
        assert_eq!(values(&unit, "Type"), ["notify-reload"]);
        assert_eq!(values(&unit, "ReloadSignal"), ["SIGUSR1"]);
        assert!(values(&unit, "ExecReload").is_empty(), "{unit}");
        // A reload_command is ExecReload= whatever the version.
        let d = files.daemon(
            "web",
            "command = \"/bin/true\"\ntype = \"notify\"\nreload_command = [\"/bin/true\"]\n",
        );
        let unit = super::super::service(&d, &source).0.text;
        assert_eq!(values(&unit, "Type"), ["notify"]);
        assert_eq!(values(&unit, "ExecReload"), ["/bin/true"]);
        assert!(values(&unit, "WatchdogSec").is_empty());
        assert_eq!(values(&unit, "NotifyAccess"), ["main"]);
    }

    #[test]
    fn readiness_systemd_cannot_check_is_a_comment() {
        let files = Files::new();
        let d = files.daemon(
            "redis",
            "command = \"/bin/true\"\nready = { log = 'ready to accept' }\n",
        );
        let unit = super::super::service(&d, &files.source()).0.text;
        assert!(
            unit.contains(
                "# - ready = { log = \"ready to accept\" }: systemd has no readiness check"
            ),
            "{unit}"
        );
        let d = files.daemon("s6", "command = \"/bin/true\"\nready = { fd = 3 }\n");
        let unit = super::super::service(&d, &files.source()).0.text;
        assert!(
            unit.contains("# - ready = { fd = 3 }: systemd has no readiness check"),
            "{unit}"
        );
    }

    #[test]
    fn the_version_is_read_from_systemctls_first_line() {
        assert_eq!(
            parse_version("systemd 252 (252.39-1~deb12u2)\n+PAM +AUDIT"),
            Some(252)
        );
        assert_eq!(parse_version("systemd 257.4-1\n"), Some(257));
        assert_eq!(parse_version("systemd\n"), None);
        assert_eq!(parse_version("elogind 246\n"), None);
        assert_eq!(parse_version(""), None);
    }
}

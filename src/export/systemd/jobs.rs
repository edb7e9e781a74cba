//! Copies, oneshots, schedules and hooks as systemd has them: `instances` as a template unit
//! `PREFIX-NAME@.service` (`{instance}` becomes `%i`) whose copies the target wants
//! by number; `schedule` as a `PREFIX-NAME.timer` (`Persistent=` from `catch_up`);
//! `restart_schedule` as a timer and a oneshot that restarts the unit; the hooks as
//! `ExecStartPre=`, `ExecStopPost=` and `OnFailure=` on a unit that runs `on_failure`.

use std::fmt::Write as _;

use super::super::{format_duration, Lost, Source};
use super::{environment_assignment, exec_line, header, value, write_section, File, Names, Unit};
use crate::config::{Daemon, PLACEHOLDER};
use crate::schedule::Cron;

impl Names {
    /// The template unit of the copies of `base`: `PREFIX-BASE@.service`.
    pub(crate) fn template(&self, base: &str) -> String {
        format!("{}-{base}@.service", self.prefix)
    }

    /// The timer of a scheduled daemon: `PREFIX-NAME.timer`.
    pub(crate) fn timer(&self, name: &str) -> String {
        format!("{}-{name}.timer", self.prefix)
    }

    /// The timer and oneshot of `restart_schedule`: `PREFIX-NAME-restart.timer`, `.service`.
    pub(crate) fn restarter(&self, name: &str, suffix: &str) -> String {
        format!("{}-{name}-restart.{suffix}", self.prefix)
    }

    /// The unit that runs `on_failure`: `PREFIX-NAME-on-failure.service`, or for the
    /// copies of a daemon with `instances` the template `PREFIX-NAME-on-failure@.service`
    /// (`instance` is then `Some("")` for the template's own name, `Some("{instance}")`
    /// for the copy's).
    pub(crate) fn on_failure(&self, name: &str, instance: Option<&str>) -> String {
        match instance {
            Some(i) => format!("{}-{name}-on-failure@{i}.service", self.prefix),
            None => format!("{}-{name}-on-failure.service", self.prefix),
        }
    }

    /// What the target wants for `d`: its timer when it has a `schedule`, else its
    /// unit.
    pub(crate) fn wanted(&self, d: &Daemon) -> String {
        match d.supervision.schedule {
            Some(_) => self.timer(&d.name),
            None => self.service(&d.name),
        }
    }
}

/// `instances`: the template's copies learn their number and count.
pub(super) fn instances(d: &Daemon, _: &Source, unit: &mut Unit) {
    let Some(instance) = &d.instance else {
        return;
    };
    unit.service.push("Environment=DMGR_INSTANCE=%i".into());
    unit.service.push(format!(
        "Environment={}",
        environment_assignment("DMGR_INSTANCES", &instance.count.to_string())
    ));
}

/// `schedule` and `catch_up`: a timer beside the unit, which the target wants instead.
pub(super) fn schedule(d: &Daemon, source: &Source, unit: &mut Unit) {
    let Some(cron) = &d.supervision.schedule else {
        return;
    };
    let names = Names::of(source);
    let name = names.timer(&d.name);
    let mut text = header(&d.file, &name);
    let _ = writeln!(text, "# schedule = {:?}", cron.as_str());
    let mut lines = vec![format!(
        "Description={}",
        value(&format!("dmgr schedule of {}", d.name))
    )];
    lines.push(format!("PartOf={}", names.target()));
    write_section(&mut text, "Unit", &lines);
    let mut timer: Vec<String> = on_calendar(cron)
        .into_iter()
        .map(|c| format!("OnCalendar={c}"))
        .collect();
    timer.push(format!("Persistent={}", d.supervision.catch_up));
    // dmgr starts a run on the minute; systemd's default AccuracySec= is a minute.
    timer.push("AccuracySec=1s".into());
    timer.push(format!("Unit={}", names.service(&d.name)));
    write_section(&mut text, "Timer", &timer);
    if d.autostart {
        write_section(
            &mut text,
            "Install",
            &[format!("WantedBy={}", names.target())],
        );
    }
    unit.files.push(File { name, text });
    unit.lost.push(Lost::new(
        format!("schedule = {:?}", cron.as_str()),
        "systemd starts no run while the last is still going (as dmgr skips it), but records no skipped event",
    ));
}

/// `restart_schedule`: a timer that starts a oneshot which restarts the unit.
pub(super) fn restart_schedule(d: &Daemon, source: &Source, unit: &mut Unit) {
    let Some(cron) = &d.supervision.restart_schedule else {
        return;
    };
    let names = Names::of(source);
    let service = names.restarter(&d.name, "service");
    let timer = names.restarter(&d.name, "timer");
    let systemctl = crate::config::resolve_program("systemctl", source.path.as_deref())
        .unwrap_or_else(|| "/usr/bin/systemctl".into());
    let mut argv = vec![systemctl.display().to_string()];
    if source.user {
        argv.push("--user".into());
    }
    argv.extend(["try-restart".into(), names.service(&d.name)]);
    let mut text = header(&d.file, &service);
    write_section(
        &mut text,
        "Unit",
        &[format!(
            "Description={}",
            value(&format!("dmgr restart_schedule of {}", d.name))
        )],
    );
    write_section(
        &mut text,
        "Service",
        &[
            "Type=oneshot".into(),
            format!("ExecStart={}", exec_line(&argv)),
        ],
    );
    unit.files.push(File {
        name: service.clone(),
        text,
    });
    let mut text = header(&d.file, &timer);
    let _ = writeln!(text, "# restart_schedule = {:?}", cron.as_str());
    write_section(
        &mut text,
        "Unit",
        &[
            format!(
                "Description={}",
                value(&format!("dmgr restart_schedule of {}", d.name))
            ),
            format!("PartOf={}", names.target()),
        ],
    );
    let mut lines: Vec<String> = on_calendar(cron)
        .into_iter()
        .map(|c| format!("OnCalendar={c}"))
        .collect();
    lines.extend(["AccuracySec=1s".into(), format!("Unit={service}")]);
    write_section(&mut text, "Timer", &lines);
    write_section(
        &mut text,
        "Install",
        &[format!("WantedBy={}", names.target())],
    );
    unit.files.push(File { name: timer, text });
}

/// The hooks: `ExecStartPre=`, `ExecStopPost=`, and `OnFailure=` on a unit of its own.
pub(super) fn hooks(d: &Daemon, source: &Source, unit: &mut Unit) {
    let s = &d.supervision;
    if s.pre_start.is_none() && s.post_stop.is_none() && s.on_failure.is_none() {
        return;
    }
    let names = Names::of(source);
    // A copy's own name: `web@%i` in a template.
    let own_name = match d.instance {
        Some(_) => format!("{}@{PLACEHOLDER}", d.name),
        None => d.name.clone(),
    };
    let line = |argv: &[String], unit: &mut Unit, key: &str| {
        let (program, lost) = super::super::resolve(&argv[0], key, d, source);
        unit.lost.extend(lost);
        let mut words = vec![program.display().to_string()];
        words.extend(argv[1..].iter().cloned());
        exec_line(&words)
    };
    unit.service.push(format!(
        "Environment={}",
        environment_assignment("DMGR_NAME", &own_name)
    ));
    unit.service.push(format!(
        "Environment={}",
        environment_assignment("DMGR_LOG", &d.process.log.display().to_string())
    ));
    if let Some(argv) = &s.pre_start {
        let line = line(argv, unit, "pre_start");
        unit.service.push(format!("ExecStartPre={line}"));
    }
    if let Some(argv) = &s.post_stop {
        let line = line(argv, unit, "post_stop");
        unit.service.push(format!("ExecStopPost={line}"));
    }
    if s.pre_start.is_some() || s.post_stop.is_some() {
        unit.lost.push(Lost::new(
            format!("hook_timeout = {}", format_duration(s.hook_timeout)),
            "systemd bounds ExecStartPre= by TimeoutStartSec= and ExecStopPost= by TimeoutStopSec=, and gives them $SERVICE_RESULT, $EXIT_CODE and $EXIT_STATUS rather than DMGR_EVENT, DMGR_EXIT_CODE and DMGR_SIGNAL; their output goes where the daemon's does, without a prefix",
        ));
    }
    let Some(argv) = &s.on_failure else {
        return;
    };
    let (name, wanted) = match d.instance {
        Some(_) => (
            names.on_failure(&d.name, Some("")),
            names.on_failure(&d.name, Some(PLACEHOLDER)),
        ),
        None => (
            names.on_failure(&d.name, None),
            names.on_failure(&d.name, None),
        ),
    };
    unit.unit.push(format!("OnFailure={wanted}"));
    let exec = line(argv, unit, "on_failure");
    let mut service = vec![
        "Type=oneshot".to_string(),
        format!("ExecStart={exec}"),
        format!("TimeoutStartSec={}", format_duration(s.hook_timeout)),
        format!("WorkingDirectory={}", super::path(&d.process.working_dir)),
        format!("UMask={:04o}", d.process.umask),
        format!(
            "Environment={}",
            environment_assignment("DMGR_NAME", &own_name)
        ),
        format!(
            "Environment={}",
            environment_assignment("DMGR_EVENT", "gave-up")
        ),
        format!(
            "Environment={}",
            environment_assignment("DMGR_LOG", &d.process.log.display().to_string())
        ),
    ];
    if !source.user {
        if let Some(user) = &d.process.user {
            service.push(format!("User={}", value(user)));
        }
        if let Some(group) = &d.process.group {
            service.push(format!("Group={}", value(group)));
        }
    }
    for (key, val) in &d.process.env {
        service.push(format!("Environment={}", environment_assignment(key, val)));
    }
    let stderr = d.process.stderr_log.as_ref().unwrap_or(&d.process.log);
    service.push(format!(
        "StandardOutput=append:{}",
        super::path(&d.process.log)
    ));
    service.push(format!("StandardError=append:{}", super::path(stderr)));
    let mut text = header(&d.file, &name);
    text.push_str(
        "# on_failure: systemd starts this unit when the daemon's unit fails; it finds\n",
    );
    text.push_str("# $MONITOR_SERVICE_RESULT, $MONITOR_EXIT_CODE and $MONITOR_EXIT_STATUS (systemd 251 and later).\n");
    write_section(
        &mut text,
        "Unit",
        &[format!(
            "Description={}",
            value(&format!("dmgr on_failure of {}", d.name))
        )],
    );
    write_section(&mut text, "Service", &service);
    unit.files.push(File { name, text });
    unit.lost.push(Lost::new(
        "on_failure",
        "systemd runs it when the unit fails (a start limit hit, a failed start, a stop by timeout), not on unhealthy or memory-exceeded, which systemd does not check",
    ));
}

/// `cron` as `OnCalendar=` values: `DOW *-MONTH-DAY HOUR:MINUTE:00`, in the host's
/// time zone as dmgr's. crontab(5) runs a day that matches either day field when both
/// are restricted, where systemd needs both: that is two values.
pub(crate) fn on_calendar(cron: &Cron) -> Vec<String> {
    let [minute, hour, day, month, weekday] = cron.fields();
    let list = |field: &crate::schedule::Field, width: usize| -> String {
        if field.is_every() {
            return "*".into();
        }
        let values: Vec<String> = field
            .values()
            .iter()
            .map(|v| format!("{v:0width$}"))
            .collect();
        values.join(",")
    };
    let time = format!("{}:{}:00", list(hour, 2), list(minute, 2));
    let days: Vec<&str> = weekday
        .values()
        .iter()
        .map(|v| crate::schedule::Field::day_name(*v))
        .collect();
    let date = |d: &str| format!("*-{}-{d}", list(month, 2));
    let with_days = |date: String| match weekday.is_every() {
        true => format!("{date} {time}"),
        false => format!("{} {date} {time}", days.join(",")),
    };
    if !day.is_star() && !weekday.is_star() {
        return vec![
            format!("{date} {time}", date = date(&list(day, 2))),
            with_days(date("*")),
        ];
    }
    vec![with_days(date(&list(day, 2)))]
}

/// A template unit's text from that of one unit rendered from the template daemon:
/// `{instance}` becomes `%i` (quoting doubles a `%` written in the file, so the one
/// specifier is this).
pub(super) fn as_template(text: &str) -> String {
    text.replace(PLACEHOLDER, "%i")
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;

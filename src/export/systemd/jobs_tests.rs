//! The keys of copies, oneshots, schedules and hooks in exported units.

use super::super::super::tests_support::Files;
use super::*;

fn calendar(text: &str) -> Vec<String> {
    on_calendar(&Cron::parse(text).unwrap())
}

/// crontab(5) as `OnCalendar=`: the values each field stands for, Sunday for
/// `@weekly`, and two values where cron matches either day field.
#[test]
fn cron_becomes_on_calendar() {
    assert_eq!(calendar("30 3 * * *"), ["*-*-* 03:30:00"]);
    assert_eq!(calendar("@weekly"), ["Sun *-*-* 00:00:00"]);
    assert_eq!(calendar("@yearly"), ["*-01-01 00:00:00"]);
    assert_eq!(calendar("* * * * *"), ["*-*-* *:*:00"]);
    assert_eq!(
        calendar("*/20 9-11 * * mon-fri"),
        ["Mon,Tue,Wed,Thu,Fri *-*-* 09,10,11:00,20,40:00"]
    );
    assert_eq!(calendar("0 0 * * 7"), ["Sun *-*-* 00:00:00"]);
    assert_eq!(
        calendar("0 4 13 * fri"),
        ["*-*-13 04:00:00", "Fri *-*-* 04:00:00"]
    );
    // A step through every day of the week is no restriction: one value.
    assert_eq!(calendar("0 4 13 * */1"), ["*-*-13 04:00:00"]);
}

fn file<'a>(files: &'a [File], suffix: &str) -> &'a File {
    files
        .iter()
        .find(|f| f.name.ends_with(suffix))
        .unwrap_or_else(|| {
            panic!(
                "no {suffix} in {:?}",
                files.iter().map(|f| &f.name).collect::<Vec<_>>()
            )
        })
}

/// The copies of a daemon with `instances` are one template, `{instance}` as `%i`;
/// the target wants each copy.
#[test]
fn instances_are_a_template_the_target_wants_by_number() {
    let files = Files::new();
    let file_text = "command = [\"/bin/serve\", \"--port\", \"80{instance}\"]\ninstances = 2\n";
    std::fs::write(files.dirs.config_dir.join("web.toml"), file_text).unwrap();
    let loaded = crate::config::load(&files.dirs).unwrap();
    let all: Vec<&Daemon> = loaded.daemons.iter().collect();
    let out = super::super::files(&all, &all, &files.source());
    let template = file(&out, "-web@.service");
    assert!(
        template.text.contains("ExecStart=/bin/serve --port 80%i\n"),
        "{}",
        template.text
    );
    assert!(template.text.contains("Environment=DMGR_INSTANCE=%i\n"));
    assert!(template.text.contains("Environment=\"DMGR_INSTANCES=2\"\n"));
    assert!(template.text.contains("/web@%i.log\n"), "{}", template.text);
    assert!(!template.text.contains("{instance}"));
    assert_eq!(out.iter().filter(|f| f.name.contains("-web@")).count(), 1);
    let target = file(&out, ".target");
    assert!(
        target.text.contains("-web@1.service ") && target.text.contains("-web@2.service\n"),
        "{}",
        target.text
    );
}

/// A scheduled oneshot is a timer the target wants; its service is a plain
/// `Type=oneshot`, which the timer can start again.
#[test]
fn a_schedule_is_a_timer() {
    let files = Files::new();
    let d = files.daemon(
        "backup",
        "command = \"/bin/true\"\ntype = \"oneshot\"\nschedule = \"30 3 * * *\"\ncatch_up = true\n",
    );
    let out = super::super::files(&[&d], &[&d], &files.source());
    let timer = file(&out, "-backup.timer");
    assert!(
        timer.text.contains("OnCalendar=*-*-* 03:30:00\n"),
        "{}",
        timer.text
    );
    assert!(timer.text.contains("Persistent=true\n"));
    assert!(timer.text.contains("WantedBy="));
    let service = file(&out, "-backup.service");
    assert!(service.text.contains("Type=oneshot\n"));
    assert!(!service.text.contains("RemainAfterExit"));
    assert!(!service.text.contains("WantedBy="), "{}", service.text);
    assert!(file(&out, ".target").text.contains("-backup.timer"));
    // Unscheduled, a oneshot stays active once done, as `done` in dmgr.
    let once = files.daemon("migrate", "command = \"/bin/true\"\ntype = \"oneshot\"\n");
    let (unit, _) = super::super::service(&once, &files.source());
    assert!(
        unit.text.contains("Type=oneshot\nRemainAfterExit=yes\n"),
        "{}",
        unit.text
    );
}

/// The hooks: ExecStartPre=, ExecStopPost=, and OnFailure= on a unit that runs
/// `on_failure` as the daemon would, bounded by `hook_timeout`.
#[test]
fn hooks_are_exec_lines_and_an_on_failure_unit() {
    let files = Files::new();
    let d = files.daemon(
        "nginx",
        "command = \"/usr/sbin/nginx\"\npre_start = [\"/usr/sbin/nginx\", \"-t\"]\npost_stop = [\"/bin/rm\", \"-f\", \"/tmp/x\"]\non_failure = [\"/usr/bin/curl\", \"-d\", \"down\", \"http://127.0.0.1:9/\"]\nhook_timeout = \"7s\"\nuser = \"www-data\"\n",
    );
    let out = super::super::files(&[&d], &[&d], &files.source());
    let unit = file(&out, "-nginx.service");
    assert!(
        unit.text.contains("ExecStartPre=/usr/sbin/nginx -t\n"),
        "{}",
        unit.text
    );
    assert!(unit.text.contains("ExecStopPost=/bin/rm -f /tmp/x\n"));
    assert!(unit.text.contains("OnFailure="));
    let hook = file(&out, "-nginx-on-failure.service");
    assert!(
        hook.text
            .contains("ExecStart=/usr/bin/curl -d down http://127.0.0.1:9/\n"),
        "{}",
        hook.text
    );
    assert!(hook.text.contains("TimeoutStartSec=7s\n"));
    assert!(hook.text.contains("User=www-data\n"));
    assert!(hook.text.contains("Environment=\"DMGR_EVENT=gave-up\"\n"));
}

/// `restart_schedule`: a timer and a oneshot that restarts the unit if it runs.
#[test]
fn a_restart_schedule_is_a_timer_that_restarts_the_unit() {
    let files = Files::new();
    let d = files.daemon(
        "leaky",
        "command = \"/bin/sleep 1000\"\nrestart_schedule = \"@daily\"\n",
    );
    let out = super::super::files(&[&d], &[&d], &files.source());
    let timer = file(&out, "-leaky-restart.timer");
    assert!(timer.text.contains("OnCalendar=*-*-* 00:00:00\n"));
    let service = file(&out, "-leaky-restart.service");
    assert!(service.text.contains(" try-restart "), "{}", service.text);
    assert!(service.text.contains("-leaky.service\n"));
}

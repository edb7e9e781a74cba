//! The keys of copies, oneshots, schedules and hooks as `check` sees them.

use super::super::tests_support;
use super::*;
use crate::config::diagnostic::Diagnostic;
use crate::config::discover::Dirs;
use crate::config::Invalid;

fn dirs(root: &Path) -> Dirs {
    Dirs {
        config_dir: root.join("daemons.d"),
        run_dir: root.join("run"),
        log_dir: root.join("run/log"),
    }
}

/// Loads `text` as `daemons.d/NAME.toml` of a fresh directory.
fn load_as(name: &str, text: &str) -> (Dirs, Result<LoadedFile, Invalid>) {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = dirs(tmp.path());
    std::fs::create_dir_all(&dirs.config_dir).unwrap();
    let file = dirs.config_dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    let loaded = load_file(&dirs, &file);
    (dirs, loaded)
}

fn load(text: &str) -> LoadedFile {
    match load_as("web", text).1 {
        Ok(loaded) => loaded,
        Err(bad) => panic!("{:?}", bad.diagnostics),
    }
}

/// Every problem of `text`, as `LINE:COL: message`.
fn problems(text: &str) -> Vec<String> {
    match load_as("web", text).1 {
        Ok(_) => panic!("should be invalid: {text:?}"),
        Err(bad) => bad.diagnostics.iter().map(located).collect(),
    }
}

fn located(d: &Diagnostic) -> String {
    let (line, col) = d.location;
    format!("{line}:{col}: {}", d.message)
}

#[test]
fn the_keys_parse_into_supervision() {
    let d = load(
        r#"command = "backup"
type = "oneshot"
schedule = "30 3 * * *"
catch_up = true
pre_start = ["nginx", "-t"]
post_stop = ["/bin/rm", "-f", "/tmp/lock"]
on_failure = ["curl", "-d", "down", "http://127.0.0.1:9/hook"]
hook_timeout = "5s"
"#,
    )
    .daemon;
    assert_eq!(d.kind, DaemonType::Oneshot);
    let s = &d.supervision;
    assert_eq!(s.schedule.as_ref().map(Cron::as_str), Some("30 3 * * *"));
    assert!(s.catch_up);
    assert_eq!(
        s.pre_start.as_deref(),
        Some(&["nginx".to_string(), "-t".into()][..])
    );
    assert_eq!(s.post_stop.as_ref().map(Vec::len), Some(3));
    assert_eq!(s.on_failure.as_ref().map(|a| a[0].as_str()), Some("curl"));
    assert_eq!(s.hook_timeout, Duration::from_secs(5));
    let plain = load("command = \"x\"\nrestart_schedule = \"@daily\"\n").daemon;
    assert_eq!(
        plain
            .supervision
            .restart_schedule
            .as_ref()
            .map(Cron::as_str),
        Some("@daily")
    );
    assert_eq!(
        tests_support::minimal("a").supervision.hook_timeout,
        Duration::from_secs(30)
    );
}

/// A schedule's problem is located at its value, with the field that is wrong.
#[test]
fn a_bad_schedule_is_located_and_explained() {
    assert_eq!(
        problems("command = \"x\"\ntype = \"oneshot\"\nschedule = \"61 * * * *\"\n"),
        ["3:12: `schedule`: the minute field `61`: 61 is out of range 0-59"]
    );
    assert_eq!(
        problems("command = \"x\"\nrestart_schedule = 5\n"),
        ["2:20: expected a cron expression like \"30 3 * * *\" or \"@daily\", found an integer"]
    );
}

/// Keys that do not fit `type` are refused with what to use instead.
#[test]
fn schedule_keys_fit_the_type() {
    let only = |text: &str| {
        let found = problems(&format!("command = \"x\"\n{text}\n"));
        assert_eq!(found.len(), 1, "{found:?}");
        found[0].clone()
    };
    assert!(only("schedule = \"@daily\"").contains("needs type = \"oneshot\""));
    assert!(only("type = \"oneshot\"\nrestart_schedule = \"@daily\"").contains("with `schedule`"));
    assert!(only("catch_up = true").contains("set `schedule`"));
    assert!(only("type = \"oneshot\"\nrestart = \"always\"").contains("again and again"));
    assert!(only("type = \"oneshot\"\nready = { file = \"/tmp/x\" }")
        .contains("`ready` does not apply"));
    assert!(only("pre_start = \"nginx -t\"").contains("an array of strings"));
    assert!(only("hook_timeout = \"0s\"").contains("more than 0"));
    assert!(only("type = \"sometimes\"").contains("\"oneshot\""));
}

#[test]
fn instances_are_bounded() {
    let found = problems("command = \"x\"\ninstances = 0\n");
    assert_eq!(
        found,
        ["2:13: `instances` is 0; it is from 1 to 1000 (each copy is a keeper and a process)"]
    );
    assert_eq!(problems("command = \"x\"\ninstances = 1001\n").len(), 1);
}

/// With `instances`, the copies are `web@1` ... `web@N`, their default files named
/// after them, `{instance}` replaced in what the SPEC lists.
#[test]
fn instances_make_numbered_copies() {
    let file = load(
        r#"command = "serve --port 80{instance}"
instances = 3
env = { PORT = "80{instance}" }
stderr_log = "/var/tmp/web-{instance}.err"
ready = { tcp = "127.0.0.1:80{instance}" }
"#,
    );
    let copies = file.daemons();
    let names: Vec<&str> = copies.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["web@1", "web@2", "web@3"]);
    let third = &copies[2];
    assert_eq!(third.process.command, ["serve", "--port", "803"]);
    assert!(
        third.process.log.ends_with("run/log/web@3.log"),
        "{:?}",
        third.process.log
    );
    assert!(third.pidfile.ends_with("run/web@3.pid"));
    assert_eq!(
        third.process.stderr_log.as_deref(),
        Some(Path::new("/var/tmp/web-3.err"))
    );
    assert_eq!(
        third.instance,
        Some(Instance {
            base: "web".into(),
            number: 3,
            count: 3
        })
    );
    // Without `instances`: one daemon, no copy.
    assert_eq!(load("command = \"x\"\n").daemons()[0].instance, None);
}

/// A path every copy would share is an error; `{instance}` without `instances` a
/// warning, the value kept as written.
#[test]
fn copies_need_their_own_files() {
    assert_eq!(
        problems("command = \"x\"\ninstances = 2\nlog = \"/var/tmp/web.log\"\n"),
        ["3:7: with `instances`, every copy would write this one `log`; put `{instance}` in it, like \"/var/log/NAME-{instance}.log\""]
    );
    let file = load("command = \"x --id {instance}\"\n");
    assert_eq!(file.daemon.process.command, ["x", "--id", "{instance}"]);
    assert_eq!(file.warnings.len(), 1);
    assert!(file.warnings[0]
        .message
        .contains("replaced only in a daemon with `instances`"));
    // A port that does not fit the largest copy number.
    let found = problems(
        "command = \"x\"\ninstances = 10\nready = { tcp = \"127.0.0.1:6553{instance}\" }\n",
    );
    assert!(found[0].contains("invalid address"), "{found:?}");
}

/// `web@.toml`, as a systemd user would name a template, is refused with the way to
/// ask for copies.
#[test]
fn a_file_named_with_an_at_sign_gets_a_hint() {
    let (_, loaded) = load_as("web@", "command = \"x\"\n");
    let bad = loaded.err().unwrap();
    assert!(
        bad.diagnostics[0]
            .message
            .contains("name the file `web.toml` and set `instances = N`"),
        "{:?}",
        bad.diagnostics
    );
}

use super::super::tests_support::Files;
use super::*;
use serde_json::json;

/// The job parsed back from its HCL with hcl-rs.
fn parsed(job: &Job) -> hcl::Body {
    let text = job.to_hcl();
    hcl::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The body of the block `ident "label"` (or the first `ident` block) in `body`.
#[track_caller]
fn block<'a>(body: &'a hcl::Body, ident: &str, label: Option<&str>) -> &'a hcl::Body {
    body.blocks()
        .find(|b| {
            b.identifier() == ident
                && label.is_none_or(|l| b.labels().first().map(|x| x.as_str()) == Some(l))
        })
        .map(|b| b.body())
        .unwrap_or_else(|| panic!("no block {ident} {label:?} in {body:?}"))
}

#[track_caller]
fn attr(body: &hcl::Body, key: &str) -> hcl::Value {
    body.attributes()
        .find(|a| a.key() == key)
        .map(|a| hcl::Value::from(a.expr().clone()))
        .unwrap_or_else(|| panic!("no attribute {key} in {body:?}"))
}

fn task_of<'a>(body: &'a hcl::Body, group: &str, task: &str) -> &'a hcl::Body {
    let job = block(body, "job", None);
    block(block(job, "group", Some(group)), "task", Some(task))
}

#[test]
fn every_key_has_a_mapping() {
    super::super::check_coverage(MAPPINGS, "src/export/nomad/mappings.rs").unwrap();
}

#[test]
fn a_task_maps_field_by_field_in_hcl_and_json() {
    let files = Files::new();
    let d = files.daemon(
        "web.api",
        r#"
command = ["/bin/sh", "-c", "echo \"$HOME\" ${HOME} %{x} back\\slash", "two words"]
description = "the web server"
working_dir = "/srv/web"
env = { PORT = "8080", MODE = "prod" }
user = "www-data"
group = "adm"
umask = "0027"
log = "/var/log/web.log"
stderr_log = "/var/log/web.err"
log_max_size = "3MiB"
log_keep = 4
log_timestamps = true
restart = "always"
restart_delay = "2s"
max_restarts = 4
start_wait = "250ms"
ready = { tcp = "127.0.0.1:8080" }
ready_timeout = "7s"
stop_signal = "INT"
stop_timeout = "45s"
reload_signal = "USR2"
type = "forking"
pidfile = "/run/web.pid"
"#,
    );
    let job = job("site", &[&d], &files.source());
    let body = parsed(&job);
    let top = block(&body, "job", Some("site"));
    assert_eq!(attr(top, "type"), hcl::Value::from("service"));
    let group = block(top, "group", Some("web.api"));
    assert_eq!(attr(group, "count"), hcl::Value::from(1));
    let port = block(block(group, "network", None), "port", Some("web_api"));
    assert_eq!(attr(port, "static"), hcl::Value::from(8080));
    let task = task_of(&body, "web.api", "web.api");
    assert_eq!(attr(task, "driver"), hcl::Value::from("raw_exec"));
    assert_eq!(attr(task, "user"), hcl::Value::from("www-data"));
    assert_eq!(attr(task, "kill_signal"), hcl::Value::from("SIGINT"));
    // Cut to the client's max_kill_timeout (rules::MAX_KILL_TIMEOUT), with a note.
    assert_eq!(attr(task, "kill_timeout"), hcl::Value::from("30s"));
    let config = block(task, "config", None);
    assert_eq!(attr(config, "command"), hcl::Value::from("/bin/sh"));
    let args: Vec<hcl::Value> = d.process.command[1..]
        .iter()
        .map(|a| hcl::Value::from(a.as_str()))
        .collect();
    assert_eq!(attr(config, "args"), hcl::Value::from(args));
    assert_eq!(attr(config, "work_dir"), hcl::Value::from("/srv/web"));
    let env = block(task, "env", None);
    assert_eq!(attr(env, "PORT"), hcl::Value::from("8080"));
    assert_eq!(attr(env, "MODE"), hcl::Value::from("prod"));
    assert_eq!(
        attr(block(task, "meta", None), "description"),
        hcl::Value::from("the web server")
    );
    let restart = block(task, "restart", None);
    assert_eq!(attr(restart, "attempts"), hcl::Value::from(4));
    assert_eq!(attr(restart, "delay"), hcl::Value::from("2s"));
    assert_eq!(attr(restart, "interval"), hcl::Value::from("330s"));
    assert_eq!(attr(restart, "mode"), hcl::Value::from("fail"));
    let logs = block(task, "logs", None);
    assert_eq!(attr(logs, "max_files"), hcl::Value::from(4));
    assert_eq!(attr(logs, "max_file_size"), hcl::Value::from(3));
    assert_eq!(
        attr(block(task, "resources", None), "memory"),
        hcl::Value::from(300)
    );
    let service = block(task, "service", None);
    assert_eq!(attr(service, "name"), hcl::Value::from("web-api"));
    assert_eq!(attr(service, "provider"), hcl::Value::from("nomad"));
    assert_eq!(attr(service, "port"), hcl::Value::from("web_api"));
    assert_eq!(attr(service, "address"), hcl::Value::from("127.0.0.1"));
    let check = block(service, "check", None);
    assert_eq!(attr(check, "type"), hcl::Value::from("tcp"));
    assert_eq!(attr(check, "interval"), hcl::Value::from("10s"));
    assert_eq!(attr(check, "timeout"), hcl::Value::from("2s"));
    assert!(task.blocks().all(|b| b.identifier() != "lifecycle"));

    let text = job.to_hcl();
    for note in [
        "# - group = \"adm\": Nomad has no group setting",
        "# - umask = \"0027\": Nomad has no umask setting",
        "# - clear_env = false:",
        "# - log = /var/log/web.log, stderr_log = /var/log/web.err: Nomad keeps stdout and stderr apart",
        "# - log_timestamps = true:",
        "# - restart_delay: dmgr doubles the delay",
        "# - start_wait = 250ms:",
        "# - ready_timeout = 7s:",
        "# - stop_timeout = 45s: kill_timeout is the Nomad client's max_kill_timeout (30s)",
        "# - reload_signal = \"USR2\": send it with `nomad alloc signal -s SIGUSR2 ALLOC web.api`",
        "# - type = \"forking\": Nomad supervises the command's own process",
        "# - pidfile = \"/run/web.pid\": Nomad uses no pidfile",
        "# - command: Nomad replaces ${...}",
        "# dmgr sets no memory limit (no memory_max), but raw_exec enforces this one",
    ] {
        assert!(text.contains(note), "{note} not in:\n{text}");
    }

    let json = job.to_json();
    let j = &json["Job"];
    assert_eq!(
        (j["ID"].as_str(), j["Name"].as_str(), j["Type"].as_str()),
        (Some("site"), Some("site"), Some("service"))
    );
    let g = &j["TaskGroups"][0];
    assert_eq!(g["Name"], "web.api");
    assert_eq!(g["Count"], 1);
    assert_eq!(
        g["Networks"][0]["ReservedPorts"][0],
        json!({"Label": "web_api", "Value": 8080})
    );
    let t = &g["Tasks"][0];
    assert_eq!(t["Name"], "web.api");
    assert_eq!(t["Driver"], "raw_exec");
    assert_eq!(t["User"], "www-data");
    assert_eq!(t["Config"]["command"], "/bin/sh");
    assert_eq!(t["Config"]["args"], json!(d.process.command[1..]));
    assert_eq!(t["Config"]["work_dir"], "/srv/web");
    assert_eq!(t["Env"], json!({"PORT": "8080", "MODE": "prod"}));
    assert_eq!(t["Meta"], json!({"description": "the web server"}));
    assert_eq!(t["KillSignal"], "SIGINT");
    assert_eq!(t["KillTimeout"], 30_000_000_000_u64);
    assert_eq!(
        t["RestartPolicy"],
        json!({"Attempts": 4, "Delay": 2_000_000_000_u64, "Interval": 330_000_000_000_u64, "Mode": "fail"})
    );
    assert_eq!(t["LogConfig"], json!({"MaxFiles": 4, "MaxFileSizeMB": 3}));
    assert_eq!(t["Resources"], json!({"MemoryMB": 300}));
    assert_eq!(
        t["Services"],
        json!([{
            "Name": "web-api", "Provider": "nomad", "PortLabel": "web_api", "Address": "127.0.0.1",
            "Checks": [{"Type": "tcp", "Interval": 10_000_000_000_u64, "Timeout": 2_000_000_000_u64}]
        }])
    );
    assert!(t.get("Lifecycle").is_none() && g.get("ReschedulePolicy").is_none());
}

#[test]
fn strings_survive_hcl_escaping() {
    let files = Files::new();
    let odd = [
        "${HOME}",
        "%{if x}",
        "$${x}",
        "say \"hi\"",
        "back\\slash",
        "new\nline",
        "tab\t",
        "ünïcode",
    ];
    let mut text = String::from("command = [\"/bin/echo\"");
    for arg in odd {
        text.push_str(&format!(", {}", toml::Value::from(arg)));
    }
    text.push_str("]\nenv = { MY_VAR = \"a ${b}\", X2 = \"y\" }\n");
    let d = files.daemon("odd", &text);
    let job = job("dmgr", &[&d], &files.source());
    let body = parsed(&job);
    let task = task_of(&body, "odd", "odd");
    let args: Vec<hcl::Value> = odd.iter().map(|a| hcl::Value::from(*a)).collect();
    assert_eq!(
        attr(block(task, "config", None), "args"),
        hcl::Value::from(args)
    );
    let env = block(task, "env", None);
    assert_eq!(attr(env, "MY_VAR"), hcl::Value::from("a ${b}"));
    assert_eq!(attr(env, "X2"), hcl::Value::from("y"));
    assert!(job.to_hcl().contains("# - env: Nomad replaces ${...}"));
}

#[test]
fn restart_no_fails_and_stays_failed() {
    let files = Files::new();
    let d = files.daemon(
        "once",
        "command = \"/bin/true\"\nrestart = \"no\"\nautostart = false\n",
    );
    let job = job("dmgr", &[&d], &files.source());
    let body = parsed(&job);
    let group = block(block(&body, "job", None), "group", Some("once"));
    assert_eq!(attr(group, "count"), hcl::Value::from(0));
    let reschedule = block(group, "reschedule", None);
    assert_eq!(attr(reschedule, "attempts"), hcl::Value::from(0));
    assert_eq!(attr(reschedule, "unlimited"), hcl::Value::from(false));
    let restart = block(task_of(&body, "once", "once"), "restart", None);
    assert_eq!(attr(restart, "attempts"), hcl::Value::from(0));
    assert_eq!(attr(restart, "mode"), hcl::Value::from("fail"));
    let json = job.to_json();
    assert_eq!(
        json["Job"]["TaskGroups"][0]["ReschedulePolicy"],
        json!({"Attempts": 0, "Unlimited": false})
    );
    assert_eq!(json["Job"]["TaskGroups"][0]["Count"], 0);
    assert!(!job.to_hcl().contains("restart_delay: dmgr doubles"));
}

#[test]
fn after_becomes_a_prestart_sidecar_within_one_group() {
    let files = Files::new();
    let db = files.daemon("db", "command = \"/bin/true\"\n");
    let web = files.daemon("web", "command = \"/bin/true\"\nafter = [\"db\"]\n");
    let worker = files.daemon("worker", "command = \"/bin/true\"\nafter = [\"web\"]\n");
    let solo = files.daemon(
        "solo",
        "command = \"/bin/true\"\nafter = [\"elsewhere\"]\nautostart = false\n",
    );
    let other = files.daemon("other", "command = \"/bin/true\"\n");
    let job = job(
        "dmgr",
        &[&db, &web, &worker, &solo, &other],
        &files.source(),
    );
    let names: Vec<(&str, Vec<&str>)> = job
        .groups
        .iter()
        .map(|g| {
            (
                g.name.as_str(),
                g.tasks.iter().map(|t| t.name.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("db", vec!["db", "web", "worker"]),
            ("other", vec!["other"]),
            ("solo", vec!["solo"])
        ]
    );
    let body = parsed(&job);
    let lifecycle = block(task_of(&body, "db", "db"), "lifecycle", None);
    assert_eq!(attr(lifecycle, "hook"), hcl::Value::from("prestart"));
    assert_eq!(attr(lifecycle, "sidecar"), hcl::Value::from(true));
    for main in ["web", "worker"] {
        assert!(task_of(&body, "db", main)
            .blocks()
            .all(|b| b.identifier() != "lifecycle"));
    }
    let text = job.to_hcl();
    assert!(!text.contains("after = \"db\""), "{text}");
    assert!(text.contains("# - after = \"web\": Nomad starts web together with this task"));
    assert!(text.contains("# - after = \"elsewhere\": elsewhere is not in this job"));
    let json = job.to_json();
    assert_eq!(
        json["Job"]["TaskGroups"][0]["Tasks"][0]["Lifecycle"],
        json!({"Hook": "prestart", "Sidecar": true})
    );
    // A group runs when one of its daemons is autostart; solo alone is not.
    assert_eq!(json["Job"]["TaskGroups"][2]["Count"], 0);
}

#[test]
fn ready_checks_nomad_cannot_run_are_comments() {
    let files = Files::new();
    let d = files.daemon(
        "f",
        "command = \"/bin/true\"\nready = { file = \"/tmp/ready\" }\n",
    );
    let e = files.daemon(
        "e",
        "command = \"/bin/true\"\nready = { exec = [\"/bin/true\"] }\n",
    );
    let any = files.daemon(
        "any",
        "command = \"/bin/true\"\nready = { tcp = \"0.0.0.0:9000\" }\n",
    );
    let job = job("dmgr", &[&d, &e, &any], &files.source());
    let text = job.to_hcl();
    assert!(text
        .contains("# - ready = { file = \"/tmp/ready\" }: Nomad's checks are tcp and http only"));
    assert!(text.contains("# - ready = { exec = [\"/bin/true\"] }:"));
    let body = parsed(&job);
    let service = block(task_of(&body, "any", "any"), "service", None);
    assert!(service.attributes().all(|a| a.key() != "address"));
    assert!(task_of(&body, "f", "f")
        .blocks()
        .all(|b| b.identifier() != "service"));
}

/// Issue 24: `memory_max` and an `env_file` export as a job that keeps to Nomad's
/// rules: memory_max at least memory, and the file's variables in a template with
/// `env = true` (with `env` winning as it does in dmgr), in HCL and JSON alike.
#[test]
fn memory_max_and_env_file_pass_nomads_rules() {
    let files = Files::new();
    let env_path = files.tmp.path().join("web.env");
    std::fs::write(&env_path, "export EXPORTED=value1\nFROM_ENV=file-loses\n").unwrap();
    let d = files.daemon(
        "web",
        &format!(
            "command = \"/bin/true\"\nmemory_max = \"64MiB\"\nenv_file = {:?}\nenv = {{ FROM_ENV = \"env-wins\" }}\n",
            env_path.display().to_string()
        ),
    );
    let job = job("dmgr", &[&d], &files.source());
    assert_eq!(rules::violations(&job), Vec::<String>::new());
    let body = parsed(&job);
    let task = task_of(&body, "web", "web");
    let resources = block(task, "resources", None);
    assert_eq!(attr(resources, "memory"), hcl::Value::from(64));
    assert_eq!(attr(resources, "memory_max"), hcl::Value::from(64));
    let template = block(task, "template", None);
    assert_eq!(attr(template, "env"), hcl::Value::from(true));
    assert_eq!(
        attr(template, "destination"),
        hcl::Value::from("secrets/env_file.env")
    );
    assert_eq!(
        attr(template, "data"),
        hcl::Value::from("EXPORTED=\"value1\"\nFROM_ENV=\"file-loses\"\nFROM_ENV=\"env-wins\"\n")
    );
    let text = job.to_hcl();
    assert!(!text.contains("dmgr sets no memory limit"), "{text}");
    assert!(
        text.contains("# memory_max = \"64MiB\": dmgr restarts web over it"),
        "{text}"
    );
    let json = job.to_json();
    let t = &json["Job"]["TaskGroups"][0]["Tasks"][0];
    assert_eq!(t["Resources"], json!({"MemoryMB": 64, "MemoryMaxMB": 64}));
    assert_eq!(t["Templates"][0]["Envvars"], true);
    assert_eq!(t["Templates"][0]["DestPath"], "secrets/env_file.env");
}

/// Nomad signals the task's own process and kills the rest once it exits: the
/// behaviour of `kill_mode = "mixed"`, so only `group` gets a note.
#[test]
fn kill_mode_group_is_a_note_and_mixed_is_what_nomad_does() {
    let files = Files::new();
    let group = files.daemon("a", "command = \"/bin/true\"\n");
    let mixed = files.daemon("b", "command = \"/bin/true\"\nkill_mode = \"mixed\"\n");
    let job = job("dmgr", &[&group, &mixed], &files.source());
    let notes = |task: &str| {
        job.lost()
            .into_iter()
            .filter(|(t, _)| *t == task)
            .map(|(_, l)| l.key.clone())
            .collect::<Vec<_>>()
    };
    assert!(notes("a").contains(&"kill_mode = \"group\"".to_string()));
    assert!(!notes("b").iter().any(|k| k.starts_with("kill_mode")));
}

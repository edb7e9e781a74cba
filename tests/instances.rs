//! `instances`: several copies of one command, each with a keeper of its own
//! (issue 28). Each test checks its facts at the source: the copies' PIDs, their
//! ports, their logs and their environment.

use std::time::Duration;

use serde_json::Value;

use crate::support::{is_alive, wait_until, TestEnv};

/// The PID of each copy of `web` that `list --json` shows running, by copy name.
fn running_pids(env: &TestEnv) -> Vec<(String, i64)> {
    env.list()
        .into_iter()
        .filter(|e| e["status"] == "running")
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["pid"].as_i64()?)))
        .collect()
}

/// Three copies, `{instance}` in the port they listen on, the port their ready check
/// waits for and their log path; each copy has its number in `DMGR_INSTANCE`, and
/// `list` shows them together, in order.
#[test]
fn three_copies_each_get_their_number_in_port_and_log() {
    let Some(python) = crate::support::installed(
        "python3",
        "three_copies_each_get_their_number_in_port_and_log",
    ) else {
        return;
    };
    // The copies listen on PREFIX1, PREFIX2 and PREFIX3, reserved until the end of
    // the test, after the environment's cleanup.
    let (prefix, _ports) = crate::support::free_port_decade(3);
    let env = TestEnv::new();
    let logs = env.root().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    env.write(
        "web",
        &format!(
            r#"command = ["{python}", "-m", "http.server", "--bind", "127.0.0.1", "{prefix}{{instance}}"]
instances = 3
log = "{logs}/web-{{instance}}.log"
ready = {{ tcp = "127.0.0.1:{prefix}{{instance}}" }}
start_wait = "0s"
"#,
            python = python.display(),
            logs = logs.display()
        ),
    );
    let run = env.dmgr(&["start", "web"]).success();
    for n in 1..=3 {
        assert!(
            run.stdout().contains(&format!("web@{n}: started (pid ")),
            "{}",
            run.stdout()
        );
        let pid = env.pid(&format!("web@{n}")).expect("a pid");
        // The port is the copy's, and it answers.
        std::net::TcpStream::connect(("127.0.0.1", prefix * 10 + n as u16))
            .unwrap_or_else(|e| panic!("web@{n} listens on {prefix}{n}: {e}"));
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        assert!(
            vars.contains(&format!("DMGR_INSTANCE={n}").as_bytes()),
            "web@{n}"
        );
        assert!(vars.contains(&&b"DMGR_INSTANCES=3"[..]), "web@{n}");
        assert!(
            logs.join(format!("web-{n}.log")).exists(),
            "web@{n}'s own log"
        );
    }
    let list = env.list();
    let names: Vec<&str> = list.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["web@1", "web@2", "web@3"]);
    assert_eq!(list[1]["instance"], 2);
    // `NAME@N` is one copy.
    env.dmgr(&["stop", "web@2"])
        .success()
        .stdout_has("web@2: stopped");
    assert_eq!(
        running_pids(&env)
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["web@1", "web@3"]
    );
    env.dmgr(&["stop", "web"]).success();
    assert!(running_pids(&env).is_empty());
}

/// `apply` after a change of `instances` starts only the copies added and stops only
/// those removed: the others keep their PIDs, from 3 to 5 and back to 2.
#[test]
fn apply_after_a_change_of_instances_leaves_the_survivors_alone() {
    let copies = |n: u32| {
        format!("command = [\"sleep\", \"1000\"]\ninstances = {n}\nstart_wait = \"100ms\"\n")
    };
    let env = TestEnv::new().daemon("worker", &copies(3));
    env.dmgr(&["start", "--all"]).success();
    let before = running_pids(&env);
    assert_eq!(before.len(), 3);

    env.write("worker", &copies(5));
    let run = env.dmgr(&["apply"]).success();
    assert!(
        run.stdout().contains("worker@4: started (new)"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout()
            .contains("2 to start, 0 to restart, 0 to update live, 0 to stop"),
        "{}",
        run.stdout()
    );
    let grown = running_pids(&env);
    assert_eq!(grown.len(), 5);
    assert_eq!(grown[..3], before[..], "the first three kept their PIDs");

    env.write("worker", &copies(2));
    let run = env.dmgr(&["apply"]).success();
    assert!(
        run.stdout()
            .contains("worker@5: stopped (instances = 2 in worker.toml)"),
        "{}",
        run.stdout()
    );
    let shrunk = running_pids(&env);
    assert_eq!(shrunk, before[..2], "worker@1 and worker@2 kept their PIDs");
    for (_, pid) in &grown[2..] {
        wait_until("a removed copy is gone", Duration::from_secs(5), || {
            !is_alive(*pid as i32)
        });
    }
    // The stopped copies are no longer listed.
    let names: Vec<String> = env
        .list()
        .iter()
        .filter_map(|e| e["name"].as_str().map(String::from))
        .collect();
    assert_eq!(names, ["worker@1", "worker@2"]);
}

/// `restart --rolling` restarts one copy at a time, each ready before the next is
/// stopped: polled all along, `list --json` never shows two copies down.
#[test]
fn a_rolling_restart_never_has_two_copies_down() {
    let env = TestEnv::new().daemon(
        "worker",
        "command = [\"sleep\", \"1000\"]\ninstances = 3\nstart_wait = \"400ms\"\n",
    );
    env.dmgr(&["start", "worker"]).success();
    let before = running_pids(&env);
    assert_eq!(before.len(), 3);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        let command = env.command(&["list", "--json"]);
        let program = command.get_program().to_owned();
        let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
        let vars: Vec<_> = command
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
            .collect();
        std::thread::spawn(move || {
            let mut worst = 0;
            let mut polls = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut c = std::process::Command::new(&program);
                c.args(&args);
                for (k, v) in &vars {
                    match v {
                        Some(v) => c.env(k, v),
                        None => c.env_remove(k),
                    };
                }
                let out = c.output().unwrap();
                let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
                let down = list.iter().filter(|e| e["status"] != "running").count();
                worst = worst.max(down);
                polls += 1;
            }
            (worst, polls)
        })
    };
    let run = env.dmgr(&["restart", "worker", "--rolling"]).success();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (worst, polls) = poller.join().unwrap();
    assert!(polls >= 3, "polled {polls} times");
    assert!(worst <= 1, "{worst} copies were down at once");
    let stdout = run.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (n, line) in lines.iter().enumerate() {
        assert!(
            line.starts_with(&format!("worker@{}: restarted (pid ", n + 1)),
            "{line}"
        );
    }
    let after = running_pids(&env);
    assert_eq!(after.len(), 3);
    for ((_, old), (_, new)) in before.iter().zip(&after) {
        assert_ne!(old, new, "every copy was restarted");
    }
}

/// A file named like a systemd template is refused with the way to ask for copies, and
/// a copy number the file does not define is named as such.
#[test]
fn names_with_an_at_sign_are_kept_for_copies() {
    let env = TestEnv::new()
        .daemon("web@", "command = \"sleep 1000\"\n")
        .daemon("api", "command = \"sleep 1000\"\ninstances = 2\n");
    env.dmgr(&["check"])
        .code(2)
        .stderr_has("name the file `web.toml` and set `instances = N`");
    env.dmgr(&["start", "api@3"])
        .code(2)
        .stderr_has("`api` has no copy 3");
}

/// The exported template of a daemon with `instances`, the timer of a `schedule`, the
/// restart timer and the on-failure unit pass `systemd-analyze verify`, the template
/// through an instance of it, as systemd loads it.
#[test]
fn exported_templates_timers_and_hooks_pass_systemd_analyze_verify() {
    let test = "exported_templates_timers_and_hooks_pass_systemd_analyze_verify";
    let Some(analyze) = crate::support::required("systemd-analyze", test) else {
        return;
    };
    let env = TestEnv::new()
        .daemon(
            "worker",
            "command = [\"/bin/sh\", \"-c\", \"exec sleep 1000\", \"worker-{instance}\"]\ninstances = 3\non_failure = [\"/bin/echo\", \"failed\"]\n",
        )
        .daemon(
            "backup",
            "command = \"/bin/true\"\ntype = \"oneshot\"\nschedule = \"0 4 13 * fri\"\ncatch_up = true\n",
        )
        .daemon(
            "web",
            "command = \"/bin/sleep 1000\"\nafter = [\"worker\"]\npre_start = [\"/bin/true\"]\npost_stop = [\"/bin/true\"]\nrestart_schedule = \"@daily\"\n",
        );
    let dir = env.root().join("units");
    env.dmgr(&["export", "systemd", "--all", "-o", dir.to_str().unwrap()])
        .success();
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".env") {
            continue;
        }
        // A template is verified as the instance systemd would load.
        if let Some(stem) = name.strip_suffix("@.service") {
            let instance = dir.join(format!("{stem}@1.service"));
            std::os::unix::fs::symlink(entry.path(), &instance).unwrap();
            files.push(instance);
        } else {
            files.push(entry.path());
        }
    }
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for wanted in [
        "-worker@1.service",
        "-backup.timer",
        "-web-restart.timer",
        "-worker-on-failure@1.service",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(wanted)),
            "{wanted} in {names:?}"
        );
    }
    let out = std::process::Command::new(analyze)
        .args(["verify", "--man=no"])
        .args(&files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let complaints: Vec<&str> = text.lines().filter(|l| l.contains("dmgr")).collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify: {text}"
    );
}

/// `after = ["web"]` waits for every copy of `web`, and `start` of the dependent
/// starts them first.
#[test]
fn after_a_daemon_with_instances_waits_for_every_copy() {
    let env = TestEnv::new()
        .daemon(
            "web",
            "command = [\"sleep\", \"1000\"]\ninstances = 2\nstart_wait = \"200ms\"\n",
        )
        .daemon(
            "proxy",
            "command = [\"sleep\", \"1000\"]\nafter = [\"web\"]\nstart_wait = \"0s\"\n",
        );
    let run = env.dmgr(&["start", "proxy"]).success();
    let stdout = run.stdout();
    let at = |name: &str| {
        stdout
            .find(&format!("{name}: started"))
            .unwrap_or_else(|| panic!("{name} in {stdout}"))
    };
    assert!(
        at("web@1") < at("proxy") && at("web@2") < at("proxy"),
        "{stdout}"
    );
    let started = |name: &str| env.record(name).unwrap().started_at_ms.unwrap();
    assert!(started("proxy") >= started("web@1").max(started("web@2")));
}

/// A copy the file no longer asks for still runs until `apply` or `stop NAME`, which
/// stops it with the others; a copy of a file that turned invalid stays listed, with
/// what runs of it.
#[test]
fn copies_the_file_no_longer_defines_are_still_reached() {
    let env = TestEnv::new().daemon(
        "worker",
        "command = [\"sleep\", \"1000\"]\ninstances = 3\nstart_wait = \"0s\"\n",
    );
    env.dmgr(&["start", "worker"]).success();
    env.write("worker", "command = [\"sleep\", \"1000\"]\ninstances = 1\n");
    let third = env.pid("worker@3").unwrap();
    assert_eq!(env.entry("worker@3")["status"], "orphaned");
    env.write("worker", "command = [\"sleep\", \"1000\"]\ninstances = 0\n");
    let list = env.list();
    let copy = list.iter().find(|e| e["name"] == "worker@2").unwrap();
    assert_eq!(copy["status"], "invalid");
    assert!(copy["pid"].is_i64());
    env.write("worker", "command = [\"sleep\", \"1000\"]\ninstances = 1\n");
    let run = env.dmgr(&["stop", "worker"]).success();
    for n in 1..=3 {
        assert!(
            run.stdout().contains(&format!("worker@{n}: stopped")),
            "{}",
            run.stdout()
        );
    }
    wait_until("worker@3 is gone", Duration::from_secs(5), || {
        !is_alive(third)
    });
}

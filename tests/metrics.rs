//! `dmgr metrics`: the exposition passes Prometheus's own checker for daemons in
//! every status, `--textfile` is replaced atomically, and `--serve` answers `GET
//! /metrics`, refuses what it must, and does not grow.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{required, sigkill, sleeper, wait_until, KillOnDrop, TestEnv};

/// Runs `promtool check metrics` on `text`; its complaints, if any.
fn promtool_problems(promtool: &std::path::Path, text: &str) -> Option<String> {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (!out.status.success() || !said.trim().is_empty()).then_some(said)
}

/// Every status `list` can show is in the exposition, `dmgr_daemon_info` names it,
/// and `promtool check metrics` finds nothing to say about any of it.
#[test]
fn metrics_of_daemons_in_every_status_pass_promtool() {
    let test = "metrics_of_daemons_in_every_status_pass_promtool";
    let Some(promtool) = required("promtool", test) else {
        return;
    };
    let env = TestEnv::new()
        .daemon("up", &format!("{}memory_max = \"1GiB\"\nhealth = {{ exec = [\"true\"] }}\n", sleeper("m-up")))
        .daemon("idle", &sleeper("m-idle"))
        .daemon(
            "crashed",
            "command = [\"sh\", \"-c\", \"sleep 0.3; exit 3\"]\nrestart = \"no\"\nstart_wait = \"100ms\"\n",
        )
        .daemon(
            "flapping",
            "command = [\"sh\", \"-c\", \"sleep 0.3; exit 1\"]\nrestart = \"always\"\nrestart_delay = \"60s\"\nstart_wait = \"100ms\"\n",
        )
        .daemon(
            "slow",
            &format!(
                "command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\nready = {{ file = \"{}\" }}\nready_timeout = \"60s\"\n",
                std::env::temp_dir().join("dmgr-test-never-there").display()
            ),
        )
        .daemon(
            "lingering",
            "command = [\"sh\", \"-c\", \"trap '' TERM; while :; do sleep 0.1; done\"]\nstart_wait = \"100ms\"\nstop_timeout = \"60s\"\n",
        )
        .daemon("gone", &sleeper("m-gone"))
        .daemon("garbled", &sleeper("m-garbled"))
        .daemon("broken", "command = 5\n")
        // Not a daemon name: invalid, and its name needs escaping in a label.
        .daemon("odd\"name\\", "command = [\"true\"]\n");
    env.dmgr(&[
        "start",
        "up",
        "crashed",
        "flapping",
        "lingering",
        "gone",
        "garbled",
    ])
    .success();
    env.remove("gone");
    // A record emptied by hand: dmgr cannot tell, and says `unknown`.
    std::fs::write(env.run_dir().join("garbled.state"), "").unwrap();
    let starting = KillOnDrop(env.command(&["start", "slow"]).spawn().unwrap());
    wait_until("slow is starting", Duration::from_secs(15), || {
        env.entry("slow")["status"] == "starting"
    });
    let stopping = KillOnDrop(env.command(&["stop", "lingering"]).spawn().unwrap());
    let want = [
        ("up", "running"),
        ("idle", "stopped"),
        ("crashed", "failed"),
        ("flapping", "backoff"),
        ("slow", "starting"),
        ("lingering", "stopping"),
        ("gone", "orphaned"),
        ("garbled", "unknown"),
        ("broken", "invalid"),
        ("odd\"name\\", "invalid"),
    ];
    wait_until(
        "every daemon is in its status",
        Duration::from_secs(15),
        || {
            let list = env.list();
            want.iter().all(|(name, status)| {
                list.iter()
                    .any(|e| e["name"] == *name && e["status"] == *status)
            })
        },
    );
    let text = env.dmgr(&["metrics"]).success().stdout();
    if let Some(problems) = promtool_problems(&promtool, &text) {
        panic!("promtool check metrics:\n{problems}\n--- the exposition\n{text}");
    }
    for (name, status) in want {
        let name = name.replace('\\', "\\\\").replace('"', "\\\"");
        let info = format!("dmgr_daemon_info{{daemon=\"{name}\",status=\"{status}\"");
        assert!(text.contains(&info), "no {info} in\n{text}");
    }
    for line in [
        "dmgr_daemon_up{daemon=\"up\"} 1",
        "dmgr_daemon_ready{daemon=\"up\"} 1",
        "dmgr_daemon_up{daemon=\"idle\"} 0",
        "dmgr_daemon_up{daemon=\"gone\"} 1",
        "dmgr_daemon_ready{daemon=\"slow\"} 0",
        "dmgr_daemon_last_exit_code{daemon=\"crashed\"} 3",
        "dmgr_daemon_last_exit_code{daemon=\"flapping\"} 1",
        "dmgr_daemon_memory_max_bytes{daemon=\"up\"} 1073741824",
        "dmgr_daemon_health_failures{daemon=\"up\"} 0",
        "dmgr_daemon_info{daemon=\"up\",status=\"running\",type=\"simple\"} 1",
    ] {
        assert!(text.contains(line), "no `{line}` in\n{text}");
    }
    for family in ["memory_bytes", "cpu_seconds_total", "start_time_seconds"] {
        let running = format!("dmgr_daemon_{family}{{daemon=\"up\"}} ");
        let stopped = format!("dmgr_daemon_{family}{{daemon=\"idle\"}}");
        assert!(text.contains(&running), "no {running} in\n{text}");
        assert!(
            !text.contains(&stopped),
            "a stopped daemon has {stopped}:\n{text}"
        );
    }
    // The stop under way ends once its daemon, which ignores SIGTERM, is killed.
    if let Some(pid) = env.entry("lingering")["pid"].as_i64() {
        let _ = sigkill(pid as i32);
    }
    drop(stopping);
    drop(starting);
}

/// A reader that reads the file over and over while `--textfile` rewrites it sees
/// the whole exposition every time, never a part of it.
#[test]
fn metrics_textfile_is_never_seen_half_written() {
    let mut env = TestEnv::new();
    for i in 0..40 {
        env = env.daemon(
            &format!("daemon-{i:02}"),
            "command = [\"sleep\", \"1000\"]\n",
        );
    }
    let whole = env.dmgr(&["metrics"]).success().stdout();
    let path = env.root().join("textfile/dmgr.prom");
    std::fs::create_dir(path.parent().unwrap()).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (path, done, whole_len) = (path.clone(), done.clone(), whole.len());
        std::thread::spawn(move || {
            let (mut reads, mut torn) = (0, Vec::new());
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match std::fs::read_to_string(&path) {
                    Ok(text) => {
                        reads += 1;
                        if text.len() != whole_len {
                            torn.push(text.len());
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => panic!("read {}: {e}", path.display()),
                }
            }
            (reads, torn)
        })
    };
    let path_arg = path.to_str().unwrap();
    for _ in 0..40 {
        env.dmgr(&["metrics", "--textfile", path_arg]).success();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, torn) = reader.join().unwrap();
    assert!(reads > 0, "the reader never found the file");
    assert!(
        torn.is_empty(),
        "{} of {reads} reads saw part of the file (lengths {:?}, whole {})",
        torn.len(),
        &torn[..torn.len().min(20)],
        whole.len()
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), whole);
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["dmgr.prom"], "temporary files left behind");
}

/// Peak resident memory of `pid` (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// `--serve` answers curl's `GET /metrics`, 404 elsewhere; an idle connection holds it
/// up for its timeout only; a 1 MiB request line is refused with 414 and leaves its
/// peak memory as it was.
#[test]
fn metrics_serve_answers_curl_and_refuses_a_huge_request_line() {
    let test = "metrics_serve_answers_curl_and_refuses_a_huge_request_line";
    let Some(curl) = required("curl", test) else {
        return;
    };
    let env = TestEnv::new().daemon("web", &sleeper("m-serve"));
    env.dmgr(&["start", "web"]).success();
    let mut server = KillOnDrop(
        env.command(&["metrics", "--serve", "127.0.0.1:0"])
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    std::io::BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("serving metrics on ")
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string();
    let get = |url: &str| {
        let out = Command::new(&curl)
            .args(["-s", "--max-time", "20", "-w", "\n%{http_code}", url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let answer = get(&url);
    assert!(answer.ends_with("\n200"), "{answer}");
    assert!(
        answer.contains("dmgr_daemon_up{daemon=\"web\"} 1"),
        "{answer}"
    );
    assert!(get(&url.replace("/metrics", "/")).ends_with("\n404"));

    // A client that connects and says nothing holds the one thread up until the
    // timeout, not for ever.
    let idle = TcpStream::connect(&addr).unwrap();
    let began = Instant::now();
    assert!(get(&url).ends_with("\n200"));
    assert!(began.elapsed() < Duration::from_secs(15));
    drop(idle);

    let before = peak_rss_kib(server.0.id());
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = b"GET /".to_vec();
    request.resize(1 << 20, b'a');
    request.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    // The server stops reading and closes: the rest of the write may fail.
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = stream.write_all(&request);
        })
    };
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let _ = writer.join();
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 414 "),
        "a 1 MiB request line: {response:?}"
    );
    let after = peak_rss_kib(server.0.id());
    assert!(
        after < before + 256,
        "peak memory grew from {before} KiB to {after} KiB"
    );
    assert!(
        get(&url).ends_with("\n200"),
        "the server answers afterwards"
    );
    assert!(server.0.try_wait().unwrap().is_none());
}

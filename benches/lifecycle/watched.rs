//! Keepers that watch their daemon (issue 14): the idle CPU of keepers with a 10 s
//! `health` check and with `memory_max`, beside plain keepers measured in the same
//! run. Plain keepers sleep with no timeout (0 ticks); the others wake for each check
//! or sample, and this says what that costs. `memory_max` is sampled every 2 s, or
//! left to the cgroup's `memory.events` (no timer) where the memory controller is
//! available; the row says which the keepers used.
//!
//! Notify keepers (issue 26) beside them: daemons that say READY=1 on their keeper's
//! socket and then sleep (a Python sender that execs `sleep`), and ones that ping a
//! 10 s `watchdog` every 5 s; each row gives the keepers' median PSS too, so a notify
//! keeper's memory reads beside a plain one's from the same run.
//!
//! A scheduled oneshot (issues 28 and 30) too: `true` run `@yearly`, whose keeper
//! sleeps until the next run, most of a year away; it must cost nothing meanwhile.
//! And a keeper holding two sockets (issues 27 and 30), a TCP port on 127.0.0.1 and
//! a Unix socket, which it binds at start-up and keeps open for its daemon.

use super::*;

/// How many daemons of each kind.
const WATCHED: usize = 10;

/// One kind of keeper and its idle CPU.
pub(crate) struct Watched {
    pub(crate) kind: String,
    pub(crate) idle: Result<Idle, String>,
    /// The keepers' median PSS, in KiB.
    pub(crate) pss_kb: Option<u64>,
}

/// A notify daemon: READY=1 on `NOTIFY_SOCKET` (a path or an `@` abstract name), then,
/// with a period, a WATCHDOG=1 every period; else an exec of `sleep`.
fn notify_command(ping_secs: Option<u32>) -> String {
    let tail = match ping_secs {
        Some(secs) => {
            format!("while True:\n    time.sleep({secs})\n    s.sendto(b'WATCHDOG=1', a)\n")
        }
        None => format!("os.execvp('sleep', ['sleep', '{SLEEP_SECS}'])\n"),
    };
    let script = format!(
        "import os, socket, time\na = os.environ['NOTIFY_SOCKET']\na = '\\0' + a[1:] if a.startswith('@') else a\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.sendto(b'READY=1', a)\n{tail}"
    );
    format!("command = [\"python3\", \"-c\", {script:?}]\ntype = \"notify\"\n")
}

/// Starts [`WATCHED`] daemons of each kind, measures their keepers' idle CPU over
/// `secs`, and stops them.
pub(crate) fn bench_watched(opts: &Options, secs: u64) -> Vec<Watched> {
    let sleep = format!("command = [\"sleep\", \"{SLEEP_SECS}\"]\n");
    let kinds: [(&str, String); 7] = [
        ("plain", sleep.clone()),
        (
            "health exec every 10s",
            format!("{sleep}health = {{ exec = [\"true\"] }}\nhealth_interval = \"10s\"\n"),
        ),
        ("memory_max", format!("{sleep}memory_max = \"1GiB\"\n")),
        ("notify, READY=1 then idle", notify_command(None)),
        (
            "notify, watchdog 10s pinged every 5s",
            format!("{}watchdog = \"10s\"\n", notify_command(Some(5))),
        ),
        (
            "two held sockets (tcp, unix)",
            format!("{sleep}sockets = {{ http = \"tcp://127.0.0.1:{{port}}\", admin = \"unix:{{dir}}/{{name}}.sock\" }}\n"),
        ),
        (
            "oneshot, schedule between runs",
            "command = [\"true\"]\ntype = \"oneshot\"\nschedule = \"@yearly\"\n".into(),
        ),
    ];
    kinds
        .iter()
        .map(|(kind, text)| {
            let (idle, how, pss_kb) = match measure(opts, kind, text, secs) {
                Ok((idle, how, pss)) => (Ok(idle), how, pss),
                Err(e) => (Err(e), Vec::new(), None),
            };
            let kind = match how.as_slice() {
                [] => kind.to_string(),
                how => format!("{kind} ({})", how.join(", ")),
            };
            Watched { kind, idle, pss_kb }
        })
        .collect()
}

/// The keepers' idle CPU, and how they watched `memory_max` (`list --json`'s
/// `memory.mechanism`, each one once), if they did.
fn measure(
    opts: &Options,
    kind: &str,
    text: &str,
    secs: u64,
) -> Result<(Idle, Vec<String>, Option<u64>), String> {
    let scope = guard::Scope::new(&format!("{}watched-", temp_tag()))
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let root = scope.path().to_path_buf();
    let config = root.join("daemons.d");
    fs::create_dir_all(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    for i in 0..WATCHED {
        let name = daemon_name(i);
        let file = config.join(format!("{name}.toml"));
        // Each daemon's own sockets.
        let text = match text.contains("{port}") {
            true => text
                .replace("{port}", &free_port()?.to_string())
                .replace("{dir}", &root.display().to_string())
                .replace("{name}", &name),
            false => text.to_string(),
        };
        // A oneshot has no `start_wait`: it has succeeded when it exits 0.
        let text = match text.contains("type = \"oneshot\"") {
            true => text,
            false => format!("{text}start_wait = \"0s\"\n"),
        };
        fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let dmgr = Dmgr::new(&opts.bin, &config, &root.join("run"), &root.join("stderr"));
    scope.track_dmgr(&opts.bin, &config, &dmgr.run);
    eprintln!("watched keepers: {kind}");
    dmgr.timed(&["-q", "start", "--all"], 0)?;
    let idle = idle_cpu(&dmgr.run, secs);
    let pss_kb = memory_of(&keepers(&dmgr.run)).ok().map(|m| {
        let mut pss = m.pss_kb;
        pss.sort_unstable();
        pss[pss.len() / 2]
    });
    let how = dmgr
        .run_untimed(&["list", "--json"])
        .map(|out| mechanisms(&out))
        .unwrap_or_default();
    let _ = dmgr.run_untimed(&["-q", "stop", "--all"]);
    Ok((idle?, how, pss_kb))
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// The distinct `memory.mechanism` values of a `list --json` output.
fn mechanisms(list_json: &str) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_str(list_json).unwrap_or_default();
    let mut found: Vec<String> = value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["memory"]["mechanism"].as_str().map(str::to_string))
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Prints the kinds side by side.
pub(crate) fn print_watched(watched: &[Watched]) {
    println!("\nwatching keepers, {WATCHED} of each kind, idle CPU in the same run:");
    for w in watched {
        match &w.idle {
            Ok(idle) => println!(
                "  {:<40} {:>4} ticks over {} s ({} of {} keepers woke; {} ticks = 1 s); median PSS {}",
                w.kind,
                idle.ticks,
                idle.secs,
                idle.busy_keepers,
                idle.keepers,
                idle.clock_ticks_per_sec,
                w.pss_kb.map_or("?".to_string(), |kb| format!("{kb} KiB"))
            ),
            Err(e) => println!("  {:<40} failed: {e}", w.kind),
        }
    }
}

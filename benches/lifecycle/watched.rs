//! Keepers that watch their daemon (issue 14): the idle CPU of keepers with a 10 s
//! `health` check and with `memory_max`, beside plain keepers measured in the same
//! run. Plain keepers sleep with no timeout (0 ticks); the others wake for each check
//! or sample, and this says what that costs. `memory_max` is sampled every 2 s, or
//! left to the cgroup's `memory.events` (no timer) where the memory controller is
//! available; the row says which the keepers used. A scheduled oneshot's keeper
//! (issue 28) waits for its next time on a timer of the wall clock: between runs it
//! should cost what a plain keeper does.

use super::*;

/// How many daemons of each kind.
const WATCHED: usize = 10;

/// One kind of keeper and its idle CPU.
pub(crate) struct Watched {
    pub(crate) kind: String,
    pub(crate) idle: Result<Idle, String>,
}

/// Starts [`WATCHED`] daemons of each kind, measures their keepers' idle CPU over
/// `secs`, and stops them.
pub(crate) fn bench_watched(opts: &Options, secs: u64) -> Vec<Watched> {
    let kinds: [(&str, &str); 4] = [
        ("plain", ""),
        (
            "health exec every 10s",
            "health = { exec = [\"true\"] }\nhealth_interval = \"10s\"\n",
        ),
        ("memory_max", "memory_max = \"1GiB\"\n"),
        (
            "schedule, waiting for New Year",
            "type = \"oneshot\"\nschedule = \"0 0 1 1 *\"\n",
        ),
    ];
    kinds
        .iter()
        .map(|(kind, extra)| {
            let (idle, how) = match measure(opts, kind, extra, secs) {
                Ok((idle, how)) => (Ok(idle), how),
                Err(e) => (Err(e), Vec::new()),
            };
            let kind = match how.as_slice() {
                [] => kind.to_string(),
                how => format!("{kind} ({})", how.join(", ")),
            };
            Watched { kind, idle }
        })
        .collect()
}

/// The keepers' idle CPU, and how they watched `memory_max` (`list --json`'s
/// `memory.mechanism`, each one once), if they did.
fn measure(
    opts: &Options,
    kind: &str,
    extra: &str,
    secs: u64,
) -> Result<(Idle, Vec<String>), String> {
    let scope = guard::Scope::new(&format!("{}watched-", temp_tag()))
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let root = scope.path().to_path_buf();
    let config = root.join("daemons.d");
    fs::create_dir_all(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    for i in 0..WATCHED {
        let file = config.join(format!("{}.toml", daemon_name(i)));
        // A oneshot has no `start_wait`.
        let wait = match extra.contains("oneshot") {
            true => "",
            false => "start_wait = \"0s\"\n",
        };
        let text = format!("command = [\"sleep\", \"{SLEEP_SECS}\"]\n{wait}{extra}");
        fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let dmgr = Dmgr::new(&opts.bin, &config, &root.join("run"), &root.join("stderr"));
    scope.track_dmgr(&opts.bin, &config, &dmgr.run);
    eprintln!("watched keepers: {kind}");
    dmgr.timed(&["-q", "start", "--all"], 0)?;
    let idle = idle_cpu(&dmgr.run, secs);
    let how = dmgr
        .run_untimed(&["list", "--json"])
        .map(|out| mechanisms(&out))
        .unwrap_or_default();
    let _ = dmgr.run_untimed(&["-q", "stop", "--all"]);
    Ok((idle?, how))
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
                "  {:<32} {:>4} ticks over {} s ({} of {} keepers woke; {} ticks = 1 s)",
                w.kind,
                idle.ticks,
                idle.secs,
                idle.busy_keepers,
                idle.keepers,
                idle.clock_ticks_per_sec
            ),
            Err(e) => println!("  {:<32} failed: {e}", w.kind),
        }
    }
}

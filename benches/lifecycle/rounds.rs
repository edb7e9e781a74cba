//! One N: the floor, dmgr, start-stop-daemon and runit rounds in a fresh directory.

use super::*;

pub(crate) fn bench_n(
    opts: &Options,
    n: usize,
    idle_secs: Option<u64>,
    sleep: &Path,
    ssd: Option<&Path>,
    runit: Option<&runit::Runit>,
) -> Result<Figures, String> {
    let restart_rounds = if n >= 500 {
        opts.rounds.min(2)
    } else {
        opts.rounds
    };
    let ssd_rounds = match ssd {
        None => 0,
        Some(_) if n >= 500 => opts.rounds.min(2),
        Some(_) => opts.rounds,
    };
    let mut figures = Figures {
        n,
        rounds: opts.rounds,
        restart_rounds,
        ssd_rounds,
        runit_rounds: if runit.is_some() { opts.rounds } else { 0 },
        load_before: procfs::load_average(),
        ..Figures::default()
    };
    let cpu_before = procfs::cpu_times();
    noise::take();
    let scope = guard::Scope::new(&format!("{}n{n}-", temp_tag()))
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let root = scope.path().to_path_buf();
    let config = root.join("daemons.d");
    let floor_dir = root.join("floor");
    let ssd_dir = root.join("ssd");
    for dir in [&config, &floor_dir, &ssd_dir] {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    for i in 0..n {
        let file = config.join(format!("{}.toml", daemon_name(i)));
        let text = format!(
            "command = [\"sleep\", \"{SLEEP_SECS}\"]\nstart_wait = \"0s\"\nstop_timeout = \"10s\"\n"
        );
        fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let dmgr = Dmgr::new(&opts.bin, &config, &root.join("run"), &root.join("stderr"));
    scope.track_dmgr(&opts.bin, &config, &dmgr.run);
    scope.track_pidfiles(&floor_dir);
    scope.track_pidfiles(&ssd_dir);
    // runit's supervisors are up before any round, as the table has it.
    let supervisors = match runit.map(|r| runit::Supervisors::start(&scope, r, n)) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            figures.fail("runit", e);
            None
        }
        None => None,
    };

    for round in 0..opts.rounds {
        eprintln!("N = {n}: round {}/{}", round + 1, opts.rounds);
        if let Err(e) = floor_round(&mut figures, &floor_dir, sleep) {
            figures.fail("floor", e);
            scope.kill_pidfile_processes(&floor_dir);
        }
        let first = round == 0;
        let restart = round < restart_rounds;
        if let Err(e) = dmgr_round(&mut figures, &dmgr, first, restart, idle_secs) {
            figures.fail("dmgr", e);
            let _ = dmgr.run_untimed(&["-q", "stop", "--all"]);
            scope.kill_dmgr_leftovers();
        }
        if let (Some(ssd), true) = (ssd, round < ssd_rounds) {
            match ssd_round(&ssd_dir, n, ssd) {
                Ok((start, stop)) => {
                    figures.record(Metric::SsdStart, start);
                    figures.record(Metric::SsdStop, stop);
                }
                Err(e) => {
                    figures.fail("start-stop-daemon", e);
                    scope.kill_pidfile_processes(&ssd_dir);
                }
            }
        }
        if let Some(supervisors) = &supervisors {
            if let Err(e) = runit::runit_round(&mut figures, supervisors, first) {
                figures.fail("runit", e);
            }
        }
    }
    drop(supervisors);
    drop(scope);
    figures.foreign = noise::take();
    if let (Some((total0, steal0)), Some((total1, steal1))) = (cpu_before, procfs::cpu_times()) {
        if total1 > total0 {
            figures.steal_percent =
                Some((steal1 - steal0) as f64 * 100.0 / (total1 - total0) as f64);
        }
    }
    Ok(figures)
}

/// The start of every temporary directory's name: `dmgr-bench-PID-`, so that this
/// run's processes can be told from those of another run (see `noise`).
pub(crate) fn temp_tag() -> String {
    format!("dmgr-bench-{}-", std::process::id())
}

pub(crate) fn daemon_name(i: usize) -> String {
    format!("d{:04}", i + 1)
}

pub(crate) fn floor_round(figures: &mut Figures, dir: &Path, sleep: &Path) -> Result<(), String> {
    let n = figures.n;
    let ns = n.to_string();
    let me = std::env::current_exe().map_err(|e| format!("cannot find this benchmark: {e}"))?;
    let floor = |args: &[&str]| -> Result<Duration, String> {
        let mut cmd = Command::new(&me);
        cmd.arg("__floor").args(args);
        timed(cmd)
    };
    let dir_s = dir.to_str().ok_or("temporary path is not UTF-8")?;
    let sleep_s = sleep.to_str().ok_or("sleep path is not UTF-8")?;

    figures.record(Metric::FloorExec, floor(&["noop"])?);
    figures.record(
        Metric::FloorStart,
        floor(&["start", dir_s, &ns, sleep_s]).map_err(|e| format!("start: {e}"))?,
    );
    // Untimed first, as dmgr's side checks with `list --json` before its timed `list`:
    // the first look at a new /proc/PID pays for creating its dentries.
    let alive = floor::probe(dir, n, &mut io::sink()).map_err(|e| format!("probe: {e}"))?;
    if alive != n {
        return Err(format!("{alive} of {n} floor sleeps are alive after start"));
    }
    let t = Instant::now();
    floor::probe(dir, n, &mut io::sink()).map_err(|e| format!("probe: {e}"))?;
    figures.record(Metric::FloorProbeInProcess, t.elapsed());
    figures.record(
        Metric::FloorProbe,
        floor(&["probe", dir_s, &ns]).map_err(|e| format!("probe: {e}"))?,
    );
    figures.record(
        Metric::FloorProbeOne,
        floor(&["probe", dir_s, "1"]).map_err(|e| format!("probe 1: {e}"))?,
    );
    figures.record(
        Metric::FloorStop,
        floor(&["stop", dir_s, &ns]).map_err(|e| format!("stop: {e}"))?,
    );
    let left = fs::read_dir(dir).map(Iterator::count).unwrap_or(0);
    if left != 0 {
        return Err(format!("{left} pidfiles left after stop"));
    }
    Ok(())
}

pub(crate) fn dmgr_round(
    figures: &mut Figures,
    dmgr: &Dmgr,
    first: bool,
    restart: bool,
    idle_secs: Option<u64>,
) -> Result<(), String> {
    let n = figures.n;
    figures.record(Metric::DmgrStart, dmgr.timed(&["start", "--all"], 0)?);
    dmgr.expect_running(n)?;
    // Checks the cleanup: a panic with N keepers, N daemons and nothing stopped.
    if std::env::var_os("DMGR_BENCH_PANIC_AFTER_START").is_some() {
        panic!("DMGR_BENCH_PANIC_AFTER_START is set");
    }
    if first {
        match keeper_memory(&dmgr.run) {
            Ok(memory) => figures.memory = Some(memory),
            Err(e) => figures.fail("keeper memory", e),
        }
        match holder_memory(&dmgr.run) {
            Ok(memory) => figures.holder_memory = Some(memory),
            Err(e) => figures.fail("holder memory", e),
        }
        if let Some(secs) = idle_secs {
            eprintln!("N = {n}: idle CPU over {secs} s");
            match idle_cpu(&dmgr.run, secs) {
                Ok(idle) => figures.idle = Some(idle),
                Err(e) => figures.fail("idle CPU", e),
            }
        }
    }
    figures.record(Metric::DmgrList, dmgr.timed(&["list"], 0)?);
    figures.record(Metric::DmgrListJson, dmgr.timed(&["list", "--json"], 0)?);
    // Until keepers record their file's identity, give the records one, as a keeper
    // would, and time `list` reading no daemon file (issue 15).
    if record_identities(&dmgr.config, &dmgr.run)? > 0 {
        figures.record(Metric::DmgrListRecorded, dmgr.timed(&["list"], 0)?);
        figures.record(
            Metric::DmgrListJsonRecorded,
            dmgr.timed(&["list", "--json"], 0)?,
        );
    }
    let name = daemon_name(n / 2);
    figures.record(Metric::DmgrStatus, dmgr.timed(&["status", &name], 0)?);
    if restart {
        figures.record(Metric::DmgrRestart, dmgr.timed(&["restart", "--all"], 0)?);
        dmgr.expect_running(n)?;
    }
    figures.record(Metric::DmgrStop, dmgr.timed(&["stop", "--all"], 0)?);
    let alive = keepers(&dmgr.run).len();
    if alive != 0 {
        return Err(format!("{alive} keepers alive after stop --all"));
    }
    Ok(())
}

pub(crate) fn ssd_round(dir: &Path, n: usize, ssd: &Path) -> Result<(Duration, Duration), String> {
    guard::checkpoint();
    let me = std::env::current_exe().map_err(|e| format!("cannot find this benchmark: {e}"))?;
    let out = Command::new(me)
        .arg("__ssd")
        .arg(dir)
        .arg(n.to_string())
        .arg(ssd)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run: {e}"))?;
    if !out.status.success() {
        return Err(format!("runner {}", describe(out.status)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut nanos = text.split_whitespace().map(str::parse::<u64>);
    match (nanos.next(), nanos.next()) {
        (Some(Ok(start)), Some(Ok(stop))) => {
            Ok((Duration::from_nanos(start), Duration::from_nanos(stop)))
        }
        _ => Err(format!("unexpected runner output {text:?}")),
    }
}

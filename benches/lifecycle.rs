//! `cargo bench --bench lifecycle`: dmgr's lifecycle against the physical floor (issue 7).
//!
//! For each N (`DMGR_BENCH_N`, default `10,100,500,1000`), in a fresh temporary directory
//! with N daemon files running `sleep 100000`, every round measures:
//!
//! - the floor, written here: a minimal double fork + flock'd pidfile + exec of N
//!   sleeps, a probe of N pidfiles (shared-flock test, read the PID, read
//!   `/proc/PID/stat`) and a SIGTERM of N waited until each is dead. Each runs as a
//!   command of its own (this binary re-executed with `__floor`), as `dmgr` does, so
//!   both sides pay one process start;
//! - dmgr: `start --all`, `list`, `list --json`, `status NAME`, `restart --all`,
//!   `stop --all`, each from the right state;
//! - where installed, `start-stop-daemon` starting and stopping N sleeps in a loop.
//!
//! Once per N it reads the keepers' PSS and RSS from `/proc/PID/smaps_rollup`; once per
//! run it measures the keepers' idle CPU over `DMGR_BENCH_IDLE_SECS` and the log path's
//! throughput against `cat`. It prints medians with min-max, each dmgr figure as a
//! ratio to its floor, and the budgets of issue 7.
//!
//! Then it times `check` and `list` on large inputs (issue 16) beside the clean case
//! of the same size: one 1 MiB file of errors against one clean file, and 10,000
//! files that name unknown daemons in `after` against 10,000 clean ones. With
//! `DMGR_BENCH_BASELINE=/path/to/an/older/dmgr` it times that binary too, once per
//! case and at most `COMMAND_TIMEOUT`; `DMGR_BENCH_ONLY=large` runs this part alone. It exits non-zero only when it could
//! not run (or a measurement failed); a budget that is not met is reported, not fatal.
//!
//! Every process it starts is cleaned up, even on panic or Ctrl-C: each temporary
//! directory is a [`guard::Scope`] whose drop runs `dmgr stop --all` and SIGKILLs what
//! is left (keepers, daemon process groups, the floor's and start-stop-daemon's
//! sleeps), identity-checked against `/proc` so an unrelated process is never hit.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The line `yes` repeats for the log throughput test.
const PAYLOAD_LINE: &str = "0123456789 the quick brown fox jumps over the lazy dog 0123456789";
/// How many payload lines the log test pushes.
const PAYLOAD_LINES: u64 = 2_000_000;
/// The daemon's argv in the lifecycle tests.
const SLEEP_SECS: &str = "100000";
/// Bounds every command the bench waits on, so a hang is reported, not waited out.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// The keeper PSS of runsv, the budget of issue 7, in KiB.
const PSS_BUDGET_KB: f64 = 93.0;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("__floor") => return floor::main(&args[2..]),
        Some("__ssd") => return ssd::main(&args[2..]),
        _ => {}
    }
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs bench targets
    // with no arguments, and should not start a benchmark of several minutes.
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("lifecycle: skipped; run it with `cargo bench --bench lifecycle`");
        return ExitCode::SUCCESS;
    }
    guard::install();
    noise::start();
    let code = match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("lifecycle: cannot run: {e}");
            ExitCode::from(2)
        }
    };
    guard::cleanup_all();
    code
}

/// What the environment asks for.
struct Options {
    ns: Vec<usize>,
    rounds: usize,
    idle_secs: u64,
    bin: PathBuf,
    /// An older dmgr to time on the large inputs beside this one.
    baseline: Option<PathBuf>,
    /// Only the large inputs.
    only_large: bool,
}

impl Options {
    fn from_env() -> Result<Options, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let ns = var("DMGR_BENCH_N")
            .unwrap_or_else(|| "10,100,500,1000".to_string())
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=9999).contains(n))
                    .ok_or_else(|| format!("DMGR_BENCH_N: {s:?} is not a number in 1..=9999"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rounds = match var("DMGR_BENCH_ROUNDS") {
            None => 5,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&r| r >= 1)
                .ok_or_else(|| format!("DMGR_BENCH_ROUNDS: {v:?} is not a positive number"))?,
        };
        let idle_secs = match var("DMGR_BENCH_IDLE_SECS") {
            None => 30,
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("DMGR_BENCH_IDLE_SECS: {v:?} is not a number"))?,
        };
        // A development override; the documented command runs the binary cargo built.
        let bin = var("DMGR_BENCH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_dmgr")));
        let baseline = var("DMGR_BENCH_BASELINE").map(PathBuf::from);
        let only_large = match var("DMGR_BENCH_ONLY").as_deref() {
            None => false,
            Some("large") => true,
            Some(other) => return Err(format!("DMGR_BENCH_ONLY: {other:?} is not `large`")),
        };
        Ok(Options {
            ns,
            rounds,
            idle_secs,
            bin,
            baseline,
            only_large,
        })
    }
}

fn run() -> Result<bool, String> {
    let opts = Options::from_env()?;
    if !opts.bin.is_file() {
        return Err(format!("no dmgr binary at {}", opts.bin.display()));
    }
    let sleep = which("sleep").ok_or("no `sleep` on PATH")?;
    let ssd = which("start-stop-daemon").or_else(|| {
        let p = PathBuf::from("/usr/sbin/start-stop-daemon");
        p.is_file().then_some(p)
    });
    let machine = Machine::read();
    println!("dmgr lifecycle benchmark (issue 7)");
    println!("  dmgr:     {}", opts.bin.display());
    println!("  machine:  {machine}");
    println!(
        "  N = {:?}, rounds = {}, idle window = {} s, temp dir = {}",
        opts.ns,
        opts.rounds,
        opts.idle_secs,
        std::env::temp_dir().display()
    );
    match &ssd {
        Some(p) => println!("  peer:     {}", p.display()),
        None => println!("  peer:     start-stop-daemon not installed, skipped"),
    }
    println!();
    // Freshly written binaries otherwise show as dirty page cache in smaps, and
    // writeback would run during the timings.
    sync();
    if opts.only_large {
        let large = bench_large(&opts)?;
        print_large(&opts, &large);
        return Ok(true);
    }

    let idle_n = opts
        .ns
        .iter()
        .copied()
        .filter(|&n| n <= 100)
        .max()
        .or_else(|| opts.ns.iter().copied().min());
    let mut all = Vec::new();
    for &n in &opts.ns {
        let idle = (Some(n) == idle_n).then_some(opts.idle_secs);
        let figures = bench_n(&opts, n, idle, &sleep, ssd.as_deref())?;
        print_figures(&figures);
        all.push(figures);
    }
    let log = bench_log(&opts);
    print_log(&log);
    let large = bench_large(&opts)?;
    print_large(&opts, &large);
    print_summary(&all);
    let budgets = budgets(&all, &log);
    print_budgets(&budgets);

    let failures: Vec<&String> = all
        .iter()
        .flat_map(|f| &f.failures)
        .chain(&log.failures)
        .collect();
    if failures.is_empty() {
        Ok(true)
    } else {
        println!("\nmeasurements that failed:");
        for failure in failures {
            println!("  {failure}");
        }
        Ok(false)
    }
}

// ---------------------------------------------------------------------------------------
// Figures

/// One timed quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Metric {
    FloorExec,
    FloorStart,
    FloorProbe,
    FloorProbeInProcess,
    FloorProbeOne,
    FloorStop,
    DmgrStart,
    DmgrList,
    DmgrListJson,
    DmgrStatus,
    DmgrRestart,
    DmgrStop,
    SsdStart,
    SsdStop,
}

impl Metric {
    const ALL: [Metric; 14] = [
        Metric::FloorExec,
        Metric::FloorStart,
        Metric::FloorProbe,
        Metric::FloorProbeInProcess,
        Metric::FloorProbeOne,
        Metric::FloorStop,
        Metric::DmgrStart,
        Metric::DmgrList,
        Metric::DmgrListJson,
        Metric::DmgrStatus,
        Metric::DmgrRestart,
        Metric::DmgrStop,
        Metric::SsdStart,
        Metric::SsdStop,
    ];

    fn label(self) -> &'static str {
        match self {
            Metric::FloorExec => "floor  exec of a no-op command",
            Metric::FloorStart => "floor  start N",
            Metric::FloorProbe => "floor  probe N (a command)",
            Metric::FloorProbeInProcess => "floor  probe N (in-process)",
            Metric::FloorProbeOne => "floor  probe 1 (a command)",
            Metric::FloorStop => "floor  stop N",
            Metric::DmgrStart => "dmgr   start --all",
            Metric::DmgrList => "dmgr   list",
            Metric::DmgrListJson => "dmgr   list --json",
            Metric::DmgrStatus => "dmgr   status NAME",
            Metric::DmgrRestart => "dmgr   restart --all",
            Metric::DmgrStop => "dmgr   stop --all",
            Metric::SsdStart => "s-s-d  --start N times",
            Metric::SsdStop => "s-s-d  --stop --retry N times",
        }
    }

    /// The floor figures this one is compared with, and how the ratio is labelled.
    fn floor(self) -> Option<(&'static [Metric], &'static str)> {
        match self {
            Metric::DmgrStart | Metric::SsdStart => Some((&[Metric::FloorStart], "floor start")),
            Metric::DmgrList | Metric::DmgrListJson => {
                Some((&[Metric::FloorProbe], "floor probe N"))
            }
            Metric::DmgrStatus => Some((&[Metric::FloorProbeOne], "floor probe 1")),
            Metric::DmgrStop | Metric::SsdStop => Some((&[Metric::FloorStop], "floor stop")),
            Metric::DmgrRestart => Some((
                &[Metric::FloorStop, Metric::FloorStart],
                "floor stop + start",
            )),
            _ => None,
        }
    }
}

/// Repeated measurements of one quantity, in seconds.
#[derive(Debug, Clone, Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64());
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    fn median(&self) -> Option<f64> {
        let v = self.sorted();
        match v.len() {
            0 => None,
            n if n % 2 == 1 => Some(v[n / 2]),
            n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    fn min(&self) -> Option<f64> {
        self.sorted().first().copied()
    }

    fn max(&self) -> Option<f64> {
        self.sorted().last().copied()
    }
}

/// The keepers' memory with N running.
#[derive(Debug, Clone, Default)]
struct Memory {
    pss_kb: Vec<u64>,
    rss_kb: Vec<u64>,
    /// Private_Dirty of each keeper, the part no other keeper shares.
    private_dirty_kb: Vec<u64>,
    threads: u64,
    /// Where the PSS of the median keeper sits: (mapping, PSS KiB, Private_Dirty KiB).
    breakdown: Vec<(String, u64, u64)>,
}

/// The keepers' CPU use while idle.
#[derive(Debug, Clone)]
struct Idle {
    secs: u64,
    keepers: usize,
    ticks: u64,
    busy_keepers: usize,
    clock_ticks_per_sec: i64,
}

/// Everything measured at one N.
#[derive(Debug, Default)]
struct Figures {
    n: usize,
    rounds: usize,
    restart_rounds: usize,
    ssd_rounds: usize,
    times: BTreeMap<Metric, Samples>,
    memory: Option<Memory>,
    idle: Option<Idle>,
    failures: Vec<String>,
    /// The 1-minute load average when this N began, and the share of CPU time the
    /// hypervisor stole meanwhile: other load makes every figure of this N suspect.
    load_before: String,
    steal_percent: Option<f64>,
    /// CPU seconds used meanwhile by other programs, by command name.
    foreign: Vec<(String, f64)>,
}

impl Figures {
    fn record(&mut self, metric: Metric, d: Duration) {
        self.times.entry(metric).or_default().push(d);
    }

    fn median(&self, metric: Metric) -> Option<f64> {
        self.times.get(&metric).and_then(Samples::median)
    }

    /// The ratio of `metric` to its floor, by medians.
    fn ratio(&self, metric: Metric) -> Option<(f64, &'static str)> {
        let (floors, label) = metric.floor()?;
        let floor: f64 = floors
            .iter()
            .map(|&m| self.median(m))
            .sum::<Option<f64>>()?;
        let value = self.median(metric)?;
        (floor > 0.0).then(|| (value / floor, label))
    }

    fn fail(&mut self, what: &str, error: impl std::fmt::Display) {
        let message = format!("N = {}: {what}: {error}", self.n);
        eprintln!("  FAILED {message}");
        self.failures.push(message);
    }
}

// ---------------------------------------------------------------------------------------
// One N

fn bench_n(
    opts: &Options,
    n: usize,
    idle_secs: Option<u64>,
    sleep: &Path,
    ssd: Option<&Path>,
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
    }
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
fn temp_tag() -> String {
    format!("dmgr-bench-{}-", std::process::id())
}

fn daemon_name(i: usize) -> String {
    format!("d{:04}", i + 1)
}

fn floor_round(figures: &mut Figures, dir: &Path, sleep: &Path) -> Result<(), String> {
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

fn dmgr_round(
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

fn ssd_round(dir: &Path, n: usize, ssd: &Path) -> Result<(Duration, Duration), String> {
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

// ---------------------------------------------------------------------------------------
// dmgr as a command

struct Dmgr {
    bin: PathBuf,
    config: PathBuf,
    run: PathBuf,
    stderr: PathBuf,
}

impl Dmgr {
    fn new(bin: &Path, config: &Path, run: &Path, stderr: &Path) -> Dmgr {
        Dmgr {
            bin: bin.to_path_buf(),
            config: config.to_path_buf(),
            run: run.to_path_buf(),
            stderr: stderr.to_path_buf(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config-dir")
            .arg(&self.config)
            .arg("--run-dir")
            .arg(&self.run)
            .args(args)
            .env_remove("DMGR_CONFIG_DIR")
            .env_remove("DMGR_RUN_DIR");
        cmd
    }

    /// Runs `dmgr ARGS` and returns how long it took; an exit code other than
    /// `expect` is an error carrying its stderr.
    fn timed(&self, args: &[&str], expect: i32) -> Result<Duration, String> {
        guard::checkpoint();
        let what = format!("dmgr {}", args.join(" "));
        let stderr = File::create(&self.stderr).map_err(|e| format!("{what}: {e}"))?;
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr));
        let t = Instant::now();
        let mut child = cmd.spawn().map_err(|e| format!("{what}: {e}"))?;
        let status =
            wait_deadline(&mut child, COMMAND_TIMEOUT).map_err(|e| format!("{what}: {e}"))?;
        let elapsed = t.elapsed();
        if status.code() != Some(expect) {
            let text = fs::read_to_string(&self.stderr).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(8).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "{what}: {}: {}",
                describe(status),
                tail.join(" | ")
            ));
        }
        Ok(elapsed)
    }

    /// Runs `dmgr ARGS` untimed and returns its stdout.
    fn run_untimed(&self, args: &[&str]) -> Result<String, String> {
        guard::checkpoint();
        let what = format!("dmgr {}", args.join(" "));
        let stderr = File::create(&self.stderr).map_err(|e| format!("{what}: {e}"))?;
        let stdout_path = self.stderr.with_extension("stdout");
        let stdout = File::create(&stdout_path).map_err(|e| format!("{what}: {e}"))?;
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("{what}: {e}"))?;
        let status =
            wait_deadline(&mut child, COMMAND_TIMEOUT).map_err(|e| format!("{what}: {e}"))?;
        let out = fs::read_to_string(&stdout_path).unwrap_or_default();
        if !status.success() {
            let err = fs::read_to_string(&self.stderr).unwrap_or_default();
            return Err(format!("{what}: {}: {}", describe(status), err.trim()));
        }
        Ok(out)
    }

    /// Checks, through `list --json`, that exactly `n` daemons are running.
    fn expect_running(&self, n: usize) -> Result<(), String> {
        let out = self.run_untimed(&["list", "--json"])?;
        let value: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("list --json: {e}"))?;
        let entries = value.as_array().ok_or("list --json: not an array")?;
        let running = entries
            .iter()
            .filter(|e| e["status"] == "running" && e["pid"].is_number())
            .count();
        if running != n || entries.len() != n {
            return Err(format!(
                "list --json shows {running} of {} daemons running, expected {n}",
                entries.len()
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Large inputs (issue 16)

/// One directory of large input, and `check` and `list` timed on it.
struct Large {
    what: &'static str,
    check: Samples,
    list: Samples,
    /// The baseline binary's figures, when one was given: `None` past the timeout.
    baseline: Option<(Option<f64>, Option<f64>)>,
}

/// Times `check` and `list` on the four directories, each beside its clean case.
fn bench_large(opts: &Options) -> Result<Vec<Large>, String> {
    let temp = tempfile::Builder::new()
        .prefix(&temp_tag())
        .tempdir()
        .map_err(|e| e.to_string())?;
    // What a case is, its directory, how many files, and file number i's text.
    type Case = (&'static str, &'static str, usize, fn(usize) -> String);
    let cases: [Case; 4] = [
        ("1 clean file", "one", 1, |_| {
            "command = \"sleep 1\"\n".into()
        }),
        ("1 MiB file of errors", "errors", 1, |_| {
            "=\n".repeat(1 << 19)
        }),
        ("10,000 clean files", "clean", 10_000, |_| {
            "command = \"sleep 1\"\n".into()
        }),
        ("10,000 files, unknown `after`", "after", 10_000, |i| {
            format!("command = \"sleep 1\"\nafter = [\"nosuch{i:05}\"]\n")
        }),
    ];
    let mut out = Vec::new();
    for (what, dir, files, text) in cases {
        let config = temp.path().join(dir).join("daemons.d");
        fs::create_dir_all(&config).map_err(|e| e.to_string())?;
        for i in 0..files {
            fs::write(config.join(format!("d{i:05}.toml")), text(i)).map_err(|e| e.to_string())?;
        }
        let run = temp.path().join(dir).join("run");
        let time = |bin: &Path, verb: &str| -> Result<Duration, String> {
            let mut cmd = Command::new(bin);
            cmd.arg("--config-dir")
                .arg(&config)
                .arg("--run-dir")
                .arg(&run)
                .arg(verb);
            timed_any(cmd)
        };
        let mut case = Large {
            what,
            check: Samples::default(),
            list: Samples::default(),
            baseline: None,
        };
        // One untimed call first, so that every timed one finds the files in the cache.
        time(&opts.bin, "check")?;
        for _ in 0..opts.rounds {
            case.check.push(time(&opts.bin, "check")?);
            case.list.push(time(&opts.bin, "list")?);
        }
        if let Some(baseline) = &opts.baseline {
            let once = |verb| time(baseline, verb).ok().map(|d| d.as_secs_f64());
            case.baseline = Some((once("check"), once("list")));
        }
        out.push(case);
    }
    Ok(out)
}

fn print_large(opts: &Options, large: &[Large]) {
    println!(
        "\n== large inputs (issue 16): medians of {} rounds, min-max ==",
        opts.rounds
    );
    let range = |s: &Samples| match (s.median(), s.min(), s.max()) {
        (Some(m), Some(lo), Some(hi)) => format!("{} ({}-{})", ms(m), ms(lo), ms(hi)),
        _ => "-".into(),
    };
    let base = |v: Option<f64>| v.map_or(format!("> {} s", COMMAND_TIMEOUT.as_secs()), ms);
    print!("{:<32}{:>28}{:>28}", "", "check", "list");
    if let Some(path) = &opts.baseline {
        print!("   baseline {}: check, list", path.display());
    }
    println!();
    for case in large {
        print!(
            "{:<32}{:>28}{:>28}",
            case.what,
            range(&case.check),
            range(&case.list)
        );
        if let Some((check, list)) = case.baseline {
            print!("   {:>10} {:>10}", base(check), base(list));
        }
        println!();
    }
}

/// Runs a command with no input or output and returns how long it took, whatever its
/// exit status (`check` of a bad file exits 2 by design).
fn timed_any(cmd: Command) -> Result<Duration, String> {
    let (elapsed, status) = timed_status(cmd, Stdio::null())?;
    match status.code() {
        Some(0..=2) => Ok(elapsed),
        _ => Err(describe(status)),
    }
}

/// Runs a command with no input or output and returns how long it took.
fn timed(cmd: Command) -> Result<Duration, String> {
    let (elapsed, status) = timed_status(cmd, Stdio::inherit())?;
    if !status.success() {
        return Err(describe(status));
    }
    Ok(elapsed)
}

/// Runs a command with no input or output (standard error as given), at most
/// `COMMAND_TIMEOUT`, and returns how long it took and how it ended.
fn timed_status(mut cmd: Command, stderr: Stdio) -> Result<(Duration, ExitStatus), String> {
    guard::checkpoint();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let t = Instant::now();
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let status = wait_deadline(&mut child, COMMAND_TIMEOUT).map_err(|e| e.to_string())?;
    Ok((t.elapsed(), status))
}

/// Waits for `child` at most `timeout`, then kills it. Waits on a pidfd, so the time
/// it returns is the child's exit, not the next tick of a polling loop.
fn wait_deadline(child: &mut Child, timeout: Duration) -> io::Result<ExitStatus> {
    if let Ok(pidfd) = sys::pidfd_open(child.id() as i32) {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        if !sys::poll_readable(&pidfd, ms)? {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no exit within {} s", timeout.as_secs()),
            ));
        }
    }
    child.wait()
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

fn sync() {
    let _ = Command::new("sync")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status();
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------------------
// Keepers: memory and idle CPU

/// A process identity from a state record: PID plus start time in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcId {
    pid: i32,
    start: u64,
}

impl ProcId {
    fn is_alive(self) -> bool {
        procfs::stat(self.pid).is_some_and(|s| s.start == self.start && s.state != 'Z')
    }
}

/// The identities in `RUN/NAME.state` (`keeper`, `daemon`), read without a lock; the
/// keeper rewrites the record in place, so a torn read is retried.
fn state_ids(path: &Path) -> Option<(Option<ProcId>, Option<ProcId>)> {
    let id = |v: &serde_json::Value| -> Option<ProcId> {
        Some(ProcId {
            pid: i32::try_from(v.get("pid")?.as_i64()?).ok()?,
            start: v.get("start")?.as_u64()?,
        })
    };
    for _ in 0..5 {
        let Ok(bytes) = fs::read(path) else {
            return None;
        };
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            return Some((id(&value["keeper"]), id(&value["daemon"])));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// The live keepers recorded in a run directory.
fn keepers(run: &Path) -> Vec<ProcId> {
    let Ok(entries) = fs::read_dir(run) else {
        return Vec::new();
    };
    let mut ids: Vec<ProcId> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "state"))
        .filter_map(|p| state_ids(&p)?.0)
        .filter(|k| k.is_alive())
        .collect();
    ids.sort_by_key(|k| k.pid);
    ids
}

fn keeper_memory(run: &Path) -> Result<Memory, String> {
    sync();
    let keepers = keepers(run);
    if keepers.is_empty() {
        return Err("no live keeper found".into());
    }
    let mut memory = Memory::default();
    let mut by_pss = Vec::new();
    for keeper in &keepers {
        let path = format!("/proc/{}/smaps_rollup", keeper.pid);
        let text = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let field = |name: &str| procfs::kb_field(&text, name).unwrap_or(0);
        memory.pss_kb.push(field("Pss:"));
        memory.rss_kb.push(field("Rss:"));
        memory.private_dirty_kb.push(field("Private_Dirty:"));
        by_pss.push((field("Pss:"), keeper.pid));
    }
    by_pss.sort_unstable();
    let median_pid = by_pss[by_pss.len() / 2].1;
    memory.breakdown = procfs::smaps_breakdown(median_pid);
    memory.threads = fs::read_to_string(format!("/proc/{median_pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0);
    Ok(memory)
}

fn idle_cpu(run: &Path, secs: u64) -> Result<Idle, String> {
    let keepers = keepers(run);
    if keepers.is_empty() {
        return Err("no live keeper found".into());
    }
    // Let every keeper finish its start-up (the last state write) first.
    std::thread::sleep(Duration::from_secs(1));
    let ticks = |k: &ProcId| procfs::stat(k.pid).map(|s| s.utime + s.stime);
    let before: Vec<Option<u64>> = keepers.iter().map(ticks).collect();
    std::thread::sleep(Duration::from_secs(secs));
    let after: Vec<Option<u64>> = keepers.iter().map(ticks).collect();
    if keepers.iter().any(|k| !k.is_alive()) {
        return Err("a keeper exited during the idle window".into());
    }
    let deltas: Vec<u64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| match (b, a) {
            (Some(b), Some(a)) => a.saturating_sub(*b),
            _ => 0,
        })
        .collect();
    Ok(Idle {
        secs,
        keepers: keepers.len(),
        ticks: deltas.iter().sum(),
        busy_keepers: deltas.iter().filter(|&&d| d > 0).count(),
        clock_ticks_per_sec: sys::clock_ticks_per_sec(),
    })
}

// ---------------------------------------------------------------------------------------
// Log throughput

#[derive(Debug, Default)]
struct LogFigures {
    dmgr: Samples,
    floor: Samples,
    failures: Vec<String>,
    foreign: Vec<(String, f64)>,
}

impl LogFigures {
    fn fail(&mut self, error: impl std::fmt::Display) {
        let message = format!("log throughput: {error}");
        eprintln!("  FAILED {message}");
        self.failures.push(message);
    }
}

fn payload_bytes() -> u64 {
    (PAYLOAD_LINE.len() as u64 + 1) * PAYLOAD_LINES
}

fn bench_log(opts: &Options) -> LogFigures {
    let mut figures = LogFigures::default();
    noise::take();
    let scope = match guard::Scope::new(&format!("{}log-", temp_tag())) {
        Ok(scope) => scope,
        Err(e) => {
            figures.fail(format!("cannot create a temporary directory: {e}"));
            return figures;
        }
    };
    let root = scope.path().to_path_buf();
    let config = root.join("daemons.d");
    if let Err(e) = fs::create_dir_all(&config) {
        figures.fail(format!("{}: {e}", config.display()));
        return figures;
    }
    let dmgr = Dmgr::new(&opts.bin, &config, &root.join("run"), &root.join("stderr"));
    scope.track_dmgr(&opts.bin, &config, &dmgr.run);
    for round in 0..opts.rounds {
        eprintln!("log throughput: round {}/{}", round + 1, opts.rounds);
        let file = root.join("floor.out");
        match log_floor(&file) {
            Ok(d) => figures.floor.push(d),
            Err(e) => figures.fail(format!("floor: {e}")),
        }
        let _ = fs::remove_file(&file);
        let name = format!("log{}", round + 1);
        match log_dmgr(&dmgr, &config, &name) {
            Ok(d) => figures.dmgr.push(d),
            Err(e) => figures.fail(format!("dmgr: {e}")),
        }
        let _ = dmgr.run_untimed(&["-q", "stop", &name]);
        let _ = fs::remove_file(dmgr.run.join("log").join(format!("{name}.log")));
    }
    drop(scope);
    figures.foreign = noise::take();
    figures
}

fn yes_head() -> String {
    format!("yes \"{PAYLOAD_LINE}\" | head -n {PAYLOAD_LINES}")
}

/// `yes | head | cat > FILE` under `sh -c`: the same pipeline as the daemon's, into a
/// file through one extra process, as the keeper is one.
fn log_floor(file: &Path) -> Result<Duration, String> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{} | cat > \"$1\"", yes_head()))
        .arg("sh")
        .arg(file);
    let elapsed = timed(cmd)?;
    let size = fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if size != payload_bytes() {
        return Err(format!(
            "cat wrote {size} bytes, expected {}",
            payload_bytes()
        ));
    }
    Ok(elapsed)
}

/// Starts a daemon that writes the payload and then sleeps; the time runs from
/// `dmgr start` until the log holds the payload (and the note lines an older keeper
/// wrote, for the baseline).
fn log_dmgr(dmgr: &Dmgr, config: &Path, name: &str) -> Result<Duration, String> {
    let command = format!("{}; sleep {SLEEP_SECS}", yes_head());
    let toml = format!(
        "command = [\"sh\", \"-c\", {}]\nstart_wait = \"0s\"\nstop_timeout = \"10s\"\nlog_max_size = 0\n",
        toml_string(&command)
    );
    let file = config.join(format!("{name}.toml"));
    fs::write(&file, toml).map_err(|e| format!("{}: {e}", file.display()))?;
    let log = dmgr.run.join("log").join(format!("{name}.log"));
    let payload = payload_bytes();
    let t = Instant::now();
    dmgr.timed(&["start", name], 0)?;
    let deadline = t + Duration::from_secs(120);
    let mut target = None;
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    loop {
        let now = size(&log);
        if now >= payload {
            // An older keeper noted `started (pid N): ...` before the first payload line.
            let target = *target.get_or_insert_with(|| payload + note_bytes(&log));
            if now >= target {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} holds {} of {payload} payload bytes after 120 s",
                log.display(),
                size(&log)
            ));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let elapsed = t.elapsed();
    let text = fs::read(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let lines = text
        .split(|&b| b == b'\n')
        .filter(|l| *l == PAYLOAD_LINE.as_bytes())
        .count() as u64;
    if lines != PAYLOAD_LINES {
        return Err(format!(
            "{} holds {lines} payload lines, expected {PAYLOAD_LINES}",
            log.display()
        ));
    }
    Ok(elapsed)
}

/// The bytes of the keeper's note lines (`[dmgr ...] ...`) at the head of a log.
fn note_bytes(log: &Path) -> u64 {
    let mut head = vec![0u8; 8192];
    let len = File::open(log)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    head[..len]
        .split_inclusive(|&b| b == b'\n')
        .take_while(|l| l.starts_with(b"[dmgr ") && l.ends_with(b"\n"))
        .map(|l| l.len() as u64)
        .sum()
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

// ---------------------------------------------------------------------------------------
// Report

struct Machine {
    nproc: usize,
    model: String,
    kernel: String,
}

impl Machine {
    fn read() -> Machine {
        let model = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
            model,
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} CPUs ({}), Linux {}",
            self.nproc, self.model, self.kernel
        )
    }
}

fn ms(secs: f64) -> String {
    let ms = secs * 1000.0;
    if ms >= 10_000.0 {
        format!("{:.1} s", secs)
    } else if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

fn median_u64(v: &[u64]) -> Option<u64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

fn print_figures(f: &Figures) {
    println!(
        "== N = {} ({} rounds; restart {}, start-stop-daemon {}) ==",
        f.n, f.rounds, f.restart_rounds, f.ssd_rounds
    );
    println!(
        "machine: load average {} at the start, CPU steal {} meanwhile",
        f.load_before,
        f.steal_percent
            .map_or("unknown".to_string(), |p| format!("{p:.1}%"))
    );
    print_foreign(&f.foreign);
    println!(
        "{:<34} {:>10} {:>22} {:>11}   vs floor (medians)",
        "", "median", "min - max", "per daemon"
    );
    for metric in Metric::ALL {
        let Some(samples) = f.times.get(&metric) else {
            continue;
        };
        let (Some(median), Some(min), Some(max)) = (samples.median(), samples.min(), samples.max())
        else {
            continue;
        };
        let per = match metric {
            Metric::FloorExec | Metric::FloorProbeOne | Metric::DmgrStatus => String::new(),
            _ => format!("{:.1} us", median * 1e6 / f.n as f64),
        };
        let ratio = f
            .ratio(metric)
            .map(|(r, label)| format!("{r:.2}x {label}"))
            .unwrap_or_default();
        println!(
            "{:<34} {:>10} {:>22} {:>11}   {}",
            metric.label(),
            ms(median),
            format!("{} - {}", ms(min), ms(max)),
            per,
            ratio
        );
    }
    if let Some(m) = &f.memory {
        let row = |label: &str, v: &[u64]| {
            let mut s = v.to_vec();
            s.sort_unstable();
            if let (Some(med), Some(min), Some(max)) = (median_u64(v), s.first(), s.last()) {
                println!(
                    "{:<34} {:>10} {:>22}",
                    label,
                    format!("{med} KB"),
                    format!("{min} - {max} KB")
                );
            }
        };
        row("keeper PSS (smaps_rollup)", &m.pss_kb);
        row("keeper RSS", &m.rss_kb);
        row("keeper Private_Dirty", &m.private_dirty_kb);
        println!(
            "  median keeper: {} thread(s); PSS by mapping (PSS KB / private dirty KB):",
            m.threads
        );
        for (name, pss, dirty) in m.breakdown.iter().take(8) {
            println!("    {pss:>5} / {dirty:>4}  {name}");
        }
    }
    if let Some(idle) = &f.idle {
        println!(
            "keepers' idle CPU over {} s: {} ticks in all ({} of {} keepers used any; {} ticks = 1 s)",
            idle.secs, idle.ticks, idle.busy_keepers, idle.keepers, idle.clock_ticks_per_sec
        );
    }
    println!();
}

fn print_foreign(foreign: &[(String, f64)]) {
    let total: f64 = foreign.iter().map(|(_, s)| s).sum();
    if total >= 0.5 {
        let top: Vec<String> = foreign
            .iter()
            .take(4)
            .map(|(name, secs)| format!("{name} {secs:.1} s"))
            .collect();
        println!(
            "WARNING: other programs used {total:.1} CPU-seconds meanwhile ({}); these figures are suspect",
            top.join(", ")
        );
    }
}

fn rate(secs: Option<f64>) -> Option<(f64, f64)> {
    let secs = secs.filter(|&s| s > 0.0)?;
    Some((
        payload_bytes() as f64 / secs / 1e6,
        PAYLOAD_LINES as f64 / secs,
    ))
}

fn print_log(log: &LogFigures) {
    println!(
        "== log throughput: {PAYLOAD_LINES} lines, {:.0} MB ({} rounds) ==",
        payload_bytes() as f64 / 1e6,
        log.dmgr.0.len().max(log.floor.0.len())
    );
    for (label, samples) in [
        ("floor  sh -c 'yes | head | cat > file'", &log.floor),
        ("dmgr   yes | head through the keeper", &log.dmgr),
    ] {
        let (Some(median), Some(min), Some(max)) = (samples.median(), samples.min(), samples.max())
        else {
            continue;
        };
        let (mbs, lps) = rate(Some(median)).unwrap_or_default();
        println!(
            "{label:<42} {:>9} ({} - {})  {mbs:>7.1} MB/s  {:>5.2} M lines/s",
            ms(median),
            ms(min),
            ms(max),
            lps / 1e6
        );
    }
    if let (Some((dmgr, _)), Some((floor, _))) = (rate(log.dmgr.median()), rate(log.floor.median()))
    {
        println!("dmgr's throughput is {:.2}x cat's", dmgr / floor);
    }
    print_foreign(&log.foreign);
    println!();
}

fn print_summary(all: &[Figures]) {
    if all.len() < 2 {
        return;
    }
    println!("== side by side (medians; ratio to floor in brackets) ==");
    print!("{:<34}", "");
    for f in all {
        print!(" {:>20}", format!("N = {}", f.n));
    }
    println!();
    for metric in Metric::ALL {
        if all.iter().all(|f| f.median(metric).is_none()) {
            continue;
        }
        print!("{:<34}", metric.label());
        for f in all {
            let cell = match (f.median(metric), f.ratio(metric)) {
                (Some(m), Some((r, _))) => format!("{} ({r:.2}x)", ms(m)),
                (Some(m), None) => ms(m),
                _ => "-".into(),
            };
            print!(" {cell:>20}");
        }
        println!();
    }
    print!("{:<34}", "keeper PSS, median");
    for f in all {
        let cell = f
            .memory
            .as_ref()
            .and_then(|m| median_u64(&m.pss_kb))
            .map_or("-".into(), |k| format!("{k} KB"));
        print!(" {cell:>20}");
    }
    println!();
    print!("{:<34}", "keeper RSS, median");
    for f in all {
        let cell = f
            .memory
            .as_ref()
            .and_then(|m| median_u64(&m.rss_kb))
            .map_or("-".into(), |k| format!("{k} KB"));
        print!(" {cell:>20}");
    }
    println!("\n");
}

struct Budget {
    what: String,
    value: String,
    limit: String,
    met: bool,
    miss: String,
}

fn ratio_budget(f: &Figures, metric: Metric, limit: f64, what: &str) -> Option<Budget> {
    let (r, label) = f.ratio(metric)?;
    Some(Budget {
        what: format!("N = {}: {what}", f.n),
        value: format!("{r:.2}x {label}"),
        limit: format!("<= {limit:.1}x"),
        met: r <= limit,
        miss: format!("{:.0}% over", (r / limit - 1.0) * 100.0),
    })
}

fn budgets(all: &[Figures], log: &LogFigures) -> Vec<Budget> {
    let official: Vec<&Figures> = all.iter().filter(|f| f.n == 100 || f.n == 500).collect();
    let checked: Vec<&Figures> = if official.is_empty() {
        all.iter().collect()
    } else {
        official
    };
    let mut out = Vec::new();
    for f in &checked {
        out.extend(ratio_budget(f, Metric::DmgrStart, 1.3, "start --all"));
        out.extend(ratio_budget(f, Metric::DmgrList, 1.4, "list"));
        out.extend(ratio_budget(f, Metric::DmgrStop, 5.0, "stop --all"));
        if let Some(pss) = f.memory.as_ref().and_then(|m| median_u64(&m.pss_kb)) {
            out.push(Budget {
                what: format!("N = {}: keeper PSS", f.n),
                value: format!("{pss} KB"),
                limit: format!("< {PSS_BUDGET_KB:.0} KB"),
                met: (pss as f64) < PSS_BUDGET_KB,
                miss: format!(
                    "{:.0} KB over ({:.1}x)",
                    pss as f64 - PSS_BUDGET_KB,
                    pss as f64 / PSS_BUDGET_KB
                ),
            });
        }
    }
    for f in all {
        if let Some(idle) = &f.idle {
            out.push(Budget {
                what: format!("N = {}: idle keepers, {} s", f.n, idle.secs),
                value: format!("{} ticks", idle.ticks),
                limit: "0 ticks".into(),
                met: idle.ticks == 0,
                miss: format!("{} keepers woke", idle.busy_keepers),
            });
        }
    }
    if let (Some((dmgr, _)), Some((floor, _))) = (rate(log.dmgr.median()), rate(log.floor.median()))
    {
        let r = dmgr / floor;
        out.push(Budget {
            what: "log throughput".into(),
            value: format!("{dmgr:.0} MB/s = {r:.2}x cat"),
            limit: ">= 0.5x cat".into(),
            met: r >= 0.5,
            miss: format!("{:.0}% short", (1.0 - r / 0.5) * 100.0),
        });
    }
    out
}

fn print_budgets(budgets: &[Budget]) {
    println!("== budgets of issue 7 ==");
    for b in budgets {
        let verdict = if b.met {
            "met".to_string()
        } else {
            format!("NOT MET ({})", b.miss)
        };
        println!("{:<32} {:>26}  {:<12} {verdict}", b.what, b.value, b.limit);
    }
}

// ---------------------------------------------------------------------------------------
// /proc

mod procfs {
    //! Reads of `/proc` that tolerate processes vanishing underneath.

    use std::collections::BTreeMap;
    use std::fs::File;
    use std::io::Read;

    /// The fields of `/proc/PID/stat` the bench uses.
    #[derive(Debug, Clone, Copy)]
    pub struct Stat {
        pub state: char,
        pub ppid: i32,
        pub pgrp: i32,
        pub utime: u64,
        pub stime: u64,
        /// CPU time of reaped children (`cutime + cstime`).
        pub children: u64,
        pub start: u64,
    }

    /// Reads `/proc/PID/stat` into a stack buffer; `None` if the process is gone.
    pub fn stat(pid: i32) -> Option<Stat> {
        let mut buf = [0u8; 1024];
        let mut file = File::open(format!("/proc/{pid}/stat")).ok()?;
        let len = file.read(&mut buf).ok()?;
        parse_stat(&buf[..len])
    }

    /// Parses the text of `/proc/PID/stat`; the command name may hold spaces and
    /// parentheses, so fields are counted from the last `)`.
    fn parse_stat(text: &[u8]) -> Option<Stat> {
        let close = text.iter().rposition(|&b| b == b')')?;
        let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
        let f: Vec<&str> = rest.split_ascii_whitespace().collect();
        // f[0] is field 3 (state); field k is f[k - 3].
        Some(Stat {
            state: f.first()?.chars().next()?,
            ppid: f.get(1)?.parse().ok()?,
            pgrp: f.get(2)?.parse().ok()?,
            utime: f.get(11)?.parse().ok()?,
            stime: f.get(12)?.parse().ok()?,
            children: f.get(13)?.parse::<u64>().ok()? + f.get(14)?.parse::<u64>().ok()?,
            start: f.get(19)?.parse().ok()?,
        })
    }

    /// The command name (from between the parentheses) and the fields of
    /// `/proc/PID/stat`, in one read.
    pub fn comm_and_stat(pid: i32) -> Option<(String, Stat)> {
        let mut buf = [0u8; 1024];
        let mut file = File::open(format!("/proc/{pid}/stat")).ok()?;
        let len = file.read(&mut buf).ok()?;
        let text = &buf[..len];
        let open = text.iter().position(|&b| b == b'(')?;
        let close = text.iter().rposition(|&b| b == b')')?;
        let comm = String::from_utf8_lossy(text.get(open + 1..close)?).into_owned();
        Some((comm, parse_stat(text)?))
    }

    /// The command name of a process (`/proc/PID/comm`).
    pub fn comm(pid: i32) -> Option<String> {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|s| s.trim_end().to_string())
    }

    /// A `Name:   123 kB` field of smaps text, in KiB.
    pub fn kb_field(text: &str, name: &str) -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    /// PSS and Private_Dirty of a process summed by mapping, largest PSS first.
    pub fn smaps_breakdown(pid: i32) -> Vec<(String, u64, u64)> {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
            return Vec::new();
        };
        let mut sums: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut current = String::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or("");
            if first.contains('-') && !first.ends_with(':') {
                // A mapping header: address perms offset dev inode [path].
                let perms = words.next().unwrap_or("");
                let path = words.nth(3).unwrap_or("[anon]");
                let short = path.rsplit('/').next().unwrap_or(path);
                current = format!("{short} ({perms})");
            } else if first == "Pss:" {
                let v: u64 = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                sums.entry(current.clone()).or_default().0 += v;
            } else if first == "Private_Dirty:" {
                let v: u64 = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                sums.entry(current.clone()).or_default().1 += v;
            }
        }
        let mut out: Vec<(String, u64, u64)> =
            sums.into_iter().map(|(k, (p, d))| (k, p, d)).collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out.retain(|e| e.1 > 0);
        out
    }

    /// The 1-minute load average.
    pub fn load_average() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|t| t.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| "unknown".into())
    }

    /// All CPUs' time in clock ticks since boot, and the part of it stolen by the
    /// hypervisor, from the `cpu` line of `/proc/stat`.
    pub fn cpu_times() -> Option<(u64, u64)> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let line = text.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest times are in user).
        Some((v.iter().take(8).sum(), *v.get(7)?))
    }

    /// Every PID in `/proc`.
    pub fn pids() -> Vec<i32> {
        std::fs::read_dir("/proc")
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------
// Other load

mod noise {
    //! A shared machine makes timings lie. A thread samples every process's CPU time
    //! every 2 s (and at each section's boundaries) and adds up what other programs
    //! used, by command name, so each section can say whether it ran undisturbed.
    //! The benchmark's processes leave its process tree (double forks), so they are
    //! told apart by command lines: theirs, or an ancestor's, name this run's
    //! temporary directories. A process that starts and exits between two samples
    //! is counted in its parent, when reaped.

    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Mutex, PoisonError};
    use std::time::Duration;

    /// One process as last sampled.
    #[derive(Clone, Copy)]
    struct Seen {
        /// Its CPU time plus that of the children it reaped.
        total: u64,
        ppid: i32,
        foreign: bool,
    }

    /// What the sampler knows: every process as last sampled, and the foreign ticks
    /// added up since the last [`take`].
    struct Sampler {
        me_start: u64,
        seen: HashMap<(i32, u64), Seen>,
        foreign: BTreeMap<String, u64>,
    }

    static SAMPLER: Mutex<Option<Sampler>> = Mutex::new(None);

    /// Starts the sampling thread.
    pub fn start() {
        let me_start = super::procfs::stat(std::process::id() as i32).map_or(0, |s| s.start);
        *lock() = Some(Sampler {
            me_start,
            seen: HashMap::new(),
            foreign: BTreeMap::new(),
        });
        sample();
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_secs(2));
            sample();
        });
    }

    fn lock() -> std::sync::MutexGuard<'static, Option<Sampler>> {
        SAMPLER.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a process's CPU time is other load: not this benchmark's, not PID 1
    /// (which reaps our orphans) and not a kernel thread (our writeback, softirqs).
    /// Ours are this process and whatever has it, or a command line naming one of our
    /// temporary directories, among its first few ancestors; and `sleep 100000`,
    /// idle, whose parent is PID 1 after the floor's double fork.
    fn is_foreign(pid: i32, comm: &str, ppid: i32) -> bool {
        if pid <= 2 || ppid == 2 {
            return false;
        }
        let cmdline = |pid: i32| {
            let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&bytes).replace('\0', " ")
        };
        if comm == "sleep" && cmdline(pid).trim_end().ends_with(" 100000") {
            return false;
        }
        let me = std::process::id() as i32;
        let tag = super::temp_tag();
        let mut p = pid;
        for _ in 0..6 {
            if p == me || cmdline(p).contains(&tag) {
                return false;
            }
            match super::procfs::stat(p) {
                Some(stat) if stat.ppid > 1 => p = stat.ppid,
                _ => break,
            }
        }
        true
    }

    /// Reads every process's CPU time and adds what foreign ones used since last time.
    /// A short-lived process is counted when its parent reaps it (its time moves into
    /// the parent's `cutime`); a child counted while it lived is credited back then.
    fn sample() {
        let mut guard = lock();
        let Some(sampler) = guard.as_mut() else {
            return;
        };
        let mut now = HashMap::new();
        let mut procs = Vec::new();
        for pid in super::procfs::pids() {
            if let Some((comm, stat)) = super::procfs::comm_and_stat(pid) {
                procs.push((pid, comm, stat));
                now.insert((pid, stat.start), ());
            }
        }
        // Processes gone since the last sample were reaped: their time, already
        // counted or from before we looked, now shows again in the parent's, or, if
        // the parent is gone too, in the first ancestor still alive.
        let gone: HashMap<i32, i32> = sampler
            .seen
            .iter()
            .filter(|(key, _)| !now.contains_key(key))
            .map(|(key, seen)| (key.0, seen.ppid))
            .collect();
        let mut credit: HashMap<i32, u64> = HashMap::new();
        for (key, seen) in &sampler.seen {
            if now.contains_key(key) {
                continue;
            }
            let mut heir = seen.ppid;
            for _ in 0..8 {
                match gone.get(&heir) {
                    Some(&ppid) => heir = ppid,
                    None => break,
                }
            }
            *credit.entry(heir).or_default() += seen.total;
        }
        let mut next = HashMap::new();
        for (pid, comm, stat) in procs {
            let total = stat.utime + stat.stime + stat.children;
            let key = (pid, stat.start);
            let (before, foreign) = match sampler.seen.get(&key) {
                Some(seen) => (seen.total, seen.foreign),
                None => {
                    let foreign = is_foreign(pid, &comm, stat.ppid);
                    // Started after us: all its time is new; else count from now.
                    let before = if stat.start >= sampler.me_start {
                        0
                    } else {
                        total
                    };
                    (before, foreign)
                }
            };
            let added = total
                .saturating_sub(before)
                .saturating_sub(credit.get(&pid).copied().unwrap_or(0));
            if foreign && added > 0 {
                *sampler.foreign.entry(comm).or_default() += added;
            }
            next.insert(
                key,
                Seen {
                    total,
                    ppid: stat.ppid,
                    foreign,
                },
            );
        }
        sampler.seen = next;
    }

    /// The CPU seconds by command name since the last call, largest first.
    pub fn take() -> Vec<(String, f64)> {
        sample();
        let hz = super::sys::clock_ticks_per_sec().max(1) as f64;
        let taken = lock()
            .as_mut()
            .map(|s| std::mem::take(&mut s.foreign))
            .unwrap_or_default();
        let mut out: Vec<(String, f64)> = taken
            .into_iter()
            .map(|(name, ticks)| (name, ticks as f64 / hz))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}

// ---------------------------------------------------------------------------------------
// System calls

mod sys {
    //! The few raw system calls the bench makes, each behind a safe function.

    use std::ffi::CStr;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// A pidfd for `pid` (Linux 5.3+).
    pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
        // SAFETY: pidfd_open takes a PID and flags by value and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd to us and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    /// Sends `signal` to the process a pidfd refers to.
    pub fn pidfd_send_signal(fd: &OwnedFd, signal: i32) -> io::Result<()> {
        // SAFETY: a valid fd, a signal number, a null siginfo (allowed) and no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until `fd` is readable (a pidfd: its process has exited) or `ms` pass.
    pub fn poll_readable(fd: &impl AsRawFd, ms: i32) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd, and its count.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc >= 0 {
                return Ok(rc > 0);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Tries a lock on an open file without blocking; `Ok(false)` if another holds it.
    pub fn try_flock(fd: &impl AsRawFd, operation: i32) -> io::Result<bool> {
        // SAFETY: flock on an fd the caller keeps open for the duration of the call.
        if unsafe { libc::flock(fd.as_raw_fd(), operation | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(false)
        } else {
            Err(err)
        }
    }

    /// Sends `signal` to a PID; errors (it is gone) are ignored.
    pub fn kill(pid: i32, signal: i32) {
        if pid > 1 {
            // SAFETY: kill(2) takes plain integers; a positive PID > 1 addresses one process.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// Sends `signal` to a process group; errors are ignored.
    pub fn killpg(pgrp: i32, signal: i32) {
        if pgrp > 1 {
            // SAFETY: killpg(3) takes plain integers; pgrp > 1 never means "every process".
            unsafe { libc::killpg(pgrp, signal) };
        }
    }

    /// A close-on-exec pipe: (read end, raw write end kept open for good).
    pub fn pipe_cloexec() -> io::Result<(OwnedFd, i32)> {
        let mut fds = [-1; 2];
        // SAFETY: pipe2 writes two fds into the array we pass.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd and nothing else owns it.
        Ok((unsafe { OwnedFd::from_raw_fd(fds[0]) }, fds[1]))
    }

    /// The kernel's clock tick rate (`USER_HZ`).
    pub fn clock_ticks_per_sec() -> i64 {
        // SAFETY: sysconf takes a constant and returns a value.
        unsafe { libc::sysconf(libc::_SC_CLK_TCK) }
    }

    /// Raises the soft open-file limit to the hard one.
    pub fn raise_nofile_limit() {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass; setrlimit reads it.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    }

    /// Makes this process a child subreaper: orphans below it are reparented to it.
    pub fn set_child_subreaper() -> io::Result<()> {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reaps any child, blocking; returns its PID and wait status.
    pub fn wait_any() -> io::Result<(i32, i32)> {
        let mut status = 0;
        loop {
            // SAFETY: waitpid writes the status into the int we pass.
            let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
            if pid > 0 {
                return Ok((pid, status));
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Formats `n` in decimal into `buf` and returns the length; no allocation, so it
    /// may run between fork and exec.
    pub fn format_decimal(mut n: u32, buf: &mut [u8; 16]) -> usize {
        let mut tmp = [0u8; 16];
        let mut len = 0;
        loop {
            tmp[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in 0..len {
            buf[i] = tmp[len - 1 - i];
        }
        buf[len] = b'\n';
        len + 1
    }

    /// In the child of a fork, before exec: `setsid`, fork again (the first child
    /// `_exit`s), then lock `pidfile` exclusively and write our PID into it. The lock's
    /// fd is left open, without close-on-exec, so the exec'd program holds the lock.
    ///
    /// # Safety
    ///
    /// Only to be called between fork and exec (a `pre_exec` closure): it calls
    /// `_exit` in the first child. It allocates nothing and makes only
    /// async-signal-safe calls (signal-safety(7)).
    pub unsafe fn detach_and_lock(pidfile: &CStr) -> io::Result<()> {
        // SAFETY: setsid, fork, _exit, open, flock, getpid, ftruncate and write are all
        // async-signal-safe; the path was built before the fork and the pid is
        // formatted into a stack buffer.
        unsafe {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            match libc::fork() {
                -1 => return Err(io::Error::last_os_error()),
                0 => {}
                _ => libc::_exit(0),
            }
            let fd = libc::open(
                pidfile.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW,
                0o644,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut buf = [0u8; 16];
            let len = format_decimal(libc::getpid() as u32, &mut buf);
            if libc::ftruncate(fd, 0) != 0
                || libc::write(fd, buf.as_ptr().cast(), len) != len as isize
            {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The floor

mod floor {
    //! The physical floor, run as `lifecycle __floor OP ...` so that, like `dmgr`, each
    //! operation is one command: `noop`, `start DIR N SLEEP`, `probe DIR N`,
    //! `stop DIR N`. Pidfiles are `DIR/I.pid`.

    use super::*;

    pub fn main(args: &[String]) -> ExitCode {
        let result = match args {
            [op] if op == "noop" => Ok(()),
            [op, dir, n, sleep] if op == "start" => {
                count(n).and_then(|n| start(Path::new(dir), n, Path::new(sleep)))
            }
            [op, dir, n] if op == "probe" => count(n).and_then(|n| {
                let stdout = io::stdout();
                let mut out = BufWriter::new(stdout.lock());
                let alive = probe(Path::new(dir), n, &mut out)?;
                out.flush()?;
                if alive == n {
                    Ok(())
                } else {
                    Err(io::Error::other(format!("{alive} of {n} alive")))
                }
            }),
            [op, dir, n] if op == "stop" => count(n).and_then(|n| stop(Path::new(dir), n)),
            _ => Err(io::Error::other(format!("bad arguments {args:?}"))),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lifecycle __floor: {e}");
                ExitCode::from(1)
            }
        }
    }

    fn count(n: &str) -> io::Result<usize> {
        n.parse()
            .map_err(|_| io::Error::other(format!("bad count {n:?}")))
    }

    pub fn pidfile(dir: &Path, i: usize) -> PathBuf {
        dir.join(format!("{i}.pid"))
    }

    /// N times: fork, setsid, fork, lock the pidfile, write the PID, exec `sleep`.
    /// `spawn` returns once the grandchild has exec'd: std's exec-error pipe is
    /// close-on-exec and the grandchild holds its write end until then.
    fn start(dir: &Path, n: usize, sleep: &Path) -> io::Result<()> {
        for i in 0..n {
            let path = CString::new(pidfile(dir, i).as_os_str().as_bytes())?;
            let mut cmd = Command::new(sleep);
            cmd.arg(SLEEP_SECS)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: the closure runs between fork and exec in the child of this
            // single-threaded process; `detach_and_lock` makes only async-signal-safe
            // calls on a path prepared before the fork.
            unsafe {
                cmd.pre_exec(move || sys::detach_and_lock(&path));
            }
            // The first child exits at once; reap it.
            let status = cmd.spawn()?.wait()?;
            if !status.success() {
                return Err(io::Error::other(format!("first child {status}")));
            }
        }
        Ok(())
    }

    /// For each pidfile: try a shared lock (held: a live owner), read the PID, read
    /// `/proc/PID/stat`; writes one line per daemon and returns how many are alive.
    pub fn probe(dir: &Path, n: usize, out: &mut impl Write) -> io::Result<usize> {
        let mut alive = 0;
        let mut buf = [0u8; 32];
        for i in 0..n {
            let mut file = File::open(pidfile(dir, i))?;
            // Got the lock: nobody holds it, stale. Closing the file releases it.
            let locked = !sys::try_flock(&file, libc::LOCK_SH)?;
            let len = file.read(&mut buf)?;
            drop(file);
            let pid: i32 = std::str::from_utf8(&buf[..len])
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            let stat = procfs::stat(pid);
            let running = locked && stat.is_some_and(|s| s.state != 'Z');
            alive += usize::from(running);
            let status = if running { "running" } else { "stale" };
            writeln!(out, "{i} {status} {pid} {}", stat.map_or(0, |s| s.start))?;
        }
        Ok(alive)
    }

    /// SIGTERM each, then wait until each is dead: its pidfd turns readable when it
    /// exits, zombie or not (PID 1 reaps lazily). Removes the pidfiles.
    fn stop(dir: &Path, n: usize) -> io::Result<()> {
        sys::raise_nofile_limit();
        let mut waiting: Vec<(i32, Option<OwnedFd>)> = Vec::with_capacity(n);
        for i in 0..n {
            let text = fs::read_to_string(pidfile(dir, i))?;
            let pid: i32 = text
                .trim()
                .parse()
                .map_err(|_| io::Error::other(format!("bad pidfile {i}: {text:?}")))?;
            match sys::pidfd_open(pid) {
                Ok(fd) => {
                    sys::pidfd_send_signal(&fd, libc::SIGTERM)?;
                    waiting.push((pid, Some(fd)));
                }
                Err(_) => {
                    sys::kill(pid, libc::SIGTERM);
                    waiting.push((pid, None));
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for (pid, fd) in &waiting {
            if let Some(fd) = fd {
                if !sys::poll_readable(fd, 30_000)? {
                    return Err(io::Error::other(format!("pid {pid} survived SIGTERM")));
                }
            }
            while procfs::stat(*pid).is_some_and(|s| s.state != 'Z') {
                if Instant::now() > deadline {
                    return Err(io::Error::other(format!("pid {pid} survived SIGTERM")));
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        for i in 0..n {
            fs::remove_file(pidfile(dir, i))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// start-stop-daemon

mod ssd {
    //! `lifecycle __ssd DIR N SSD`: start N sleeps with start-stop-daemon in a loop,
    //! then stop them in a loop, and print both times in nanoseconds.
    //!
    //! `--stop --retry` waits until the PID is gone, and a zombie still has its PID.
    //! Where PID 1 reaps lazily (here, 1-2 s late) that would time PID 1, not
    //! start-stop-daemon, so this runner is a child subreaper: the detached sleeps
    //! are reparented to it and it reaps each as soon as it dies, as a prompt init does.

    use super::*;

    pub fn main(args: &[String]) -> ExitCode {
        let result = match args {
            [dir, n, ssd] => n
                .parse::<usize>()
                .map_err(|_| io::Error::other(format!("bad count {n:?}")))
                .and_then(|n| run(Path::new(dir), n, Path::new(ssd))),
            _ => Err(io::Error::other(format!("bad arguments {args:?}"))),
        };
        match result {
            Ok((start, stop)) => {
                println!("{} {}", start.as_nanos(), stop.as_nanos());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lifecycle __ssd: {e}");
                ExitCode::from(1)
            }
        }
    }

    fn run(dir: &Path, n: usize, ssd: &Path) -> io::Result<(Duration, Duration)> {
        sys::set_child_subreaper()?;
        let pidfile = |i: usize| dir.join(format!("{i}.pid"));
        let t = Instant::now();
        for i in 0..n {
            let mut cmd = Command::new(ssd);
            cmd.args(["--start", "--background", "--make-pidfile", "--pidfile"])
                .arg(pidfile(i))
                .args(["--exec", "/bin/sleep", "--", SLEEP_SECS]);
            run_reaping(cmd)?;
        }
        let start = t.elapsed();
        for i in 0..n {
            let text = fs::read_to_string(pidfile(i))?;
            let pid: i32 = text.trim().parse().unwrap_or(0);
            if procfs::stat(pid).is_none_or(|s| s.state == 'Z') {
                return Err(io::Error::other(format!(
                    "sleep {i} (pid {pid}) is not running"
                )));
            }
        }
        let t = Instant::now();
        for i in 0..n {
            let mut cmd = Command::new(ssd);
            cmd.args(["--stop", "--pidfile"])
                .arg(pidfile(i))
                .args(["--retry", "TERM/5"]);
            run_reaping(cmd)?;
        }
        let stop = t.elapsed();
        for i in 0..n {
            let _ = fs::remove_file(pidfile(i));
        }
        Ok((start, stop))
    }

    /// Runs `cmd` and reaps every child until it has exited: the orphans this
    /// subreaper adopts die while start-stop-daemon waits for them.
    fn run_reaping(mut cmd: Command) -> io::Result<()> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // Dropping a `Child` neither waits nor kills; we reap it below by PID.
        let pid = cmd.spawn()?.id() as i32;
        loop {
            let (reaped, status) = sys::wait_any()?;
            if reaped == pid {
                let status = ExitStatus::from_raw(status);
                if !status.success() {
                    return Err(io::Error::other(format!(
                        "start-stop-daemon {}",
                        describe(status)
                    )));
                }
                return Ok(());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Cleanup

mod guard {
    //! Everything the bench starts lives under a [`Scope`], a temporary directory. A
    //! scope's drop, the panic hook and SIGINT/SIGTERM/SIGHUP all lead to the same
    //! cleanup: `dmgr stop --all` for each dmgr config, then SIGKILL to every keeper
    //! and daemon process group its state records name, to every process whose command
    //! line mentions the scope's directory, and to every `sleep` named in its pidfile
    //! directories. Each target is identity-checked (start time after the bench began,
    //! or matching the recorded one), so no unrelated process is ever signalled.

    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
    use std::sync::{Mutex, PoisonError};

    struct Entry {
        id: u64,
        temp: tempfile::TempDir,
        dmgr: Vec<(PathBuf, PathBuf, PathBuf)>,
        pidfile_dirs: Vec<PathBuf>,
    }

    static ENTRIES: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
    /// Held by whoever is cleaning up, so that `main` does not return mid-cleanup.
    static CLEANING: Mutex<()> = Mutex::new(());
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
    /// This process's start time in clock ticks; what we start begins after it.
    static BENCH_START: AtomicU64 = AtomicU64::new(0);

    /// Installs the panic hook, the SIGINT/SIGTERM/SIGHUP handler and the thread that
    /// cleans up when one arrives.
    pub fn install() {
        let me = procfs::stat(std::process::id() as i32).map_or(0, |s| s.start);
        BENCH_START.store(me, Ordering::SeqCst);
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            cleanup_all();
        }));
        match sys::pipe_cloexec() {
            Ok((read, write)) => {
                SIGNAL_PIPE.store(write, Ordering::SeqCst);
                let handler = nix::sys::signal::SigAction::new(
                    nix::sys::signal::SigHandler::Handler(on_signal),
                    nix::sys::signal::SaFlags::SA_RESTART,
                    nix::sys::signal::SigSet::empty(),
                );
                for signal in [
                    nix::sys::signal::Signal::SIGINT,
                    nix::sys::signal::Signal::SIGTERM,
                    nix::sys::signal::Signal::SIGHUP,
                ] {
                    // SAFETY: `on_signal` only makes one write(2), which is
                    // async-signal-safe, to a pipe that stays open for our whole life.
                    let _ = unsafe { nix::sys::signal::sigaction(signal, &handler) };
                }
                std::thread::spawn(move || {
                    let mut read = File::from(read);
                    let mut byte = [0u8; 1];
                    if matches!(read.read(&mut byte), Ok(1)) {
                        eprintln!("lifecycle: signal {}: cleaning up", byte[0]);
                        SHUTTING_DOWN.store(true, Ordering::SeqCst);
                        cleanup_all();
                        std::process::exit(130);
                    }
                });
            }
            Err(e) => eprintln!("lifecycle: no cleanup on Ctrl-C: {e}"),
        }
    }

    /// The write end of the self-pipe the signal handler writes to.
    static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

    /// A signal handler that only writes the signal number to the self-pipe. A handler,
    /// not a blocked mask and sigwait: std's `Command` passes the signal mask on to
    /// children, and a blocked SIGTERM would make every daemon immune to `stop`.
    extern "C" fn on_signal(signal: libc::c_int) {
        let byte = signal as u8;
        let fd = SIGNAL_PIPE.load(Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
            unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
        }
    }

    /// A temporary directory and what runs in it; dropping it cleans both up.
    pub struct Scope {
        id: u64,
        path: PathBuf,
    }

    impl Scope {
        pub fn new(prefix: &str) -> io::Result<Scope> {
            if SHUTTING_DOWN.load(Ordering::SeqCst) {
                return Err(io::Error::other("interrupted"));
            }
            let temp = tempfile::Builder::new().prefix(prefix).tempdir()?;
            let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
            let path = temp.path().to_path_buf();
            entries().push(Entry {
                id,
                temp,
                dmgr: Vec::new(),
                pidfile_dirs: Vec::new(),
            });
            Ok(Scope { id, path })
        }

        pub fn path(&self) -> &Path {
            &self.path
        }

        /// Registers a dmgr config and run directory to stop on cleanup.
        pub fn track_dmgr(&self, bin: &Path, config: &Path, run: &Path) {
            self.with(|e| {
                e.dmgr
                    .push((bin.to_path_buf(), config.to_path_buf(), run.to_path_buf()))
            });
        }

        /// Registers a directory of pidfiles whose `sleep`s to kill on cleanup.
        pub fn track_pidfiles(&self, dir: &Path) {
            self.with(|e| e.pidfile_dirs.push(dir.to_path_buf()));
        }

        /// Kills the sleeps named in one pidfile directory and removes the pidfiles.
        pub fn kill_pidfile_processes(&self, dir: &Path) {
            while kill_pidfile_sleeps(dir) > 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(entries) = fs::read_dir(dir) {
                for e in entries.filter_map(Result::ok) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }

        /// Kills whatever dmgr left behind in this scope (after a failed round).
        pub fn kill_dmgr_leftovers(&self) {
            let runs: Vec<PathBuf> = {
                let all = entries();
                all.iter()
                    .filter(|e| e.id == self.id)
                    .flat_map(|e| e.dmgr.iter().map(|d| d.2.clone()))
                    .collect()
            };
            for run in runs {
                kill_recorded(&run);
            }
            kill_mentioning(&self.path, true);
        }

        fn with(&self, f: impl FnOnce(&mut Entry)) {
            if let Some(e) = entries().iter_mut().find(|e| e.id == self.id) {
                f(e);
            }
        }
    }

    impl Drop for Scope {
        fn drop(&mut self) {
            let taken: Vec<Entry> = {
                let mut all = entries();
                let (mine, rest): (Vec<Entry>, Vec<Entry>) =
                    all.drain(..).partition(|e| e.id == self.id);
                *all = rest;
                mine
            };
            let _cleaning = CLEANING.lock().unwrap_or_else(PoisonError::into_inner);
            taken.into_iter().for_each(clean);
        }
    }

    /// Once a signal has started the cleanup, the main thread stops here, at its next
    /// command, rather than start processes or recreate directories behind it.
    pub fn checkpoint() {
        while SHUTTING_DOWN.load(Ordering::SeqCst) {
            std::thread::park();
        }
    }

    fn entries() -> std::sync::MutexGuard<'static, Vec<Entry>> {
        ENTRIES.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Cleans every scope; safe to call more than once and from any thread.
    pub fn cleanup_all() {
        let _cleaning = CLEANING.lock().unwrap_or_else(PoisonError::into_inner);
        let taken: Vec<Entry> = entries().drain(..).collect();
        taken.into_iter().for_each(clean);
    }

    fn clean(entry: Entry) {
        // Commands in flight first (a `dmgr start` or a floor start may still be
        // creating processes), then a graceful stop, then SIGKILL for what is left.
        // A child forked by a command just killed can still write its pidfile and
        // exec, so the passes repeat until one finds nothing.
        while kill_mentioning(entry.temp.path(), false) > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        for (bin, config, run) in &entry.dmgr {
            let child = Command::new(bin)
                .arg("--config-dir")
                .arg(config)
                .arg("--run-dir")
                .arg(run)
                .args(["-q", "stop", "--all"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            if let Ok(mut child) = child {
                let _ = wait_deadline(&mut child, Duration::from_secs(60));
            }
        }
        for _ in 0..10 {
            let mut killed = kill_mentioning(entry.temp.path(), true);
            for (_, _, run) in &entry.dmgr {
                killed += kill_recorded(run);
            }
            for dir in &entry.pidfile_dirs {
                killed += kill_pidfile_sleeps(dir);
            }
            if killed == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(entry.temp);
    }

    fn started_by_us(start: u64) -> bool {
        start >= BENCH_START.load(Ordering::SeqCst)
    }

    /// SIGKILLs the keepers and daemon process groups that a run directory's state
    /// records name, when the recorded identity still matches.
    fn kill_recorded(run: &Path) -> usize {
        let Ok(entries) = fs::read_dir(run) else {
            return 0;
        };
        let mut killed = 0;
        let mut groups = Vec::new();
        for path in entries.filter_map(Result::ok).map(|e| e.path()) {
            if path.extension().is_none_or(|x| x != "state") {
                continue;
            }
            let Some((keeper, daemon)) = state_ids(&path) else {
                continue;
            };
            if let Some(k) = keeper.filter(|k| k.is_alive() && started_by_us(k.start)) {
                sys::kill(k.pid, libc::SIGKILL);
                killed += 1;
            }
            if let Some(d) = daemon.filter(|d| started_by_us(d.start)) {
                groups.push(d.pid);
            }
        }
        if groups.is_empty() {
            return killed;
        }
        // A daemon's process group is led by the daemon; members may outlive it.
        for pid in procfs::pids() {
            if let Some(s) = procfs::stat(pid) {
                if groups.contains(&s.pgrp) && s.state != 'Z' && started_by_us(s.start) {
                    sys::killpg(s.pgrp, libc::SIGKILL);
                    killed += 1;
                }
            }
        }
        killed
    }

    /// SIGKILLs every process started after us whose command line mentions `dir`:
    /// dmgr commands, `__floor` and `__ssd` runners, and keepers too if `keepers`
    /// (they carry `--config-dir DIR/...` and `__keeper`).
    fn kill_mentioning(dir: &Path, keepers: bool) -> usize {
        let needle = dir.as_os_str().as_bytes();
        if needle.len() < 8 {
            return 0;
        }
        let mut killed = 0;
        let me = std::process::id() as i32;
        for pid in procfs::pids() {
            if pid == me {
                continue;
            }
            let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let is_keeper = cmdline.split(|&b| b == 0).any(|arg| arg == b"__keeper");
            if cmdline.windows(needle.len()).any(|w| w == needle)
                && (keepers || !is_keeper)
                && procfs::stat(pid).is_some_and(|s| s.state != 'Z' && started_by_us(s.start))
            {
                sys::kill(pid, libc::SIGKILL);
                killed += 1;
            }
        }
        killed
    }

    /// SIGKILLs each live `sleep` started after us whose PID a pidfile in `dir` holds.
    fn kill_pidfile_sleeps(dir: &Path) -> usize {
        let Ok(entries) = fs::read_dir(dir) else {
            return 0;
        };
        let mut killed = 0;
        for path in entries.filter_map(Result::ok).map(|e| e.path()) {
            let Some(pid) = fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            else {
                continue;
            };
            let ours = procfs::stat(pid).is_some_and(|s| s.state != 'Z' && started_by_us(s.start));
            if ours && procfs::comm(pid).as_deref() == Some("sleep") {
                sys::kill(pid, libc::SIGKILL);
                killed += 1;
            }
        }
        killed
    }
}

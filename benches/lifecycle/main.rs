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
//! - where installed, `start-stop-daemon` starting and stopping N sleeps in a loop;
//! - where installed, runit: `sv up`, `sv status` and `sv down` of N services under
//!   one `runsvdir`, and each `runsv`'s PSS (issue 15; see `runit`).
//!
//! Once per N it reads the keepers' PSS and RSS from `/proc/PID/smaps_rollup`; once per
//! run it measures the keepers' idle CPU over `DMGR_BENCH_IDLE_SECS` and the log path's
//! throughput against `cat`. It prints medians with min-max, each dmgr figure as a
//! ratio to its floor, and the budgets of issue 7. `DMGR_BENCH_ONLY=lifecycle` skips
//! the log throughput and the large inputs (for a quick run on a busy machine).
//!
//! At the N of the idle window it leaves `dmgr top` open on N idle daemons for
//! `DMGR_BENCH_IDLE_SECS` and reports its CPU time beside one `list`'s, and its
//! resident memory (issue 29; `DMGR_BENCH_ONLY=top` runs this part alone). The
//! keepers that watch their daemon, and notify keepers, are measured beside plain
//! ones (`watched`; `DMGR_BENCH_ONLY=watched` runs this part alone).
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
//! sleeps, runit's supervisors and services), identity-checked against `/proc` so an unrelated process is never hit.

mod command;
mod figures;
mod floor;
mod guard;
mod keepers;
mod large;
mod log;
mod noise;
mod procfs;
mod report;
mod rounds;
mod runit;
mod ssd;
mod sys;
mod top;
mod watched;

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

use command::*;
use figures::*;
use keepers::*;
use large::*;
use log::*;
use report::*;
use rounds::*;
use top::*;
use watched::*;

/// The line `yes` repeats for the log throughput test.
pub(crate) const PAYLOAD_LINE: &str =
    "0123456789 the quick brown fox jumps over the lazy dog 0123456789";
/// How many payload lines the log test pushes.
pub(crate) const PAYLOAD_LINES: u64 = 2_000_000;
/// The daemon's argv in the lifecycle tests.
pub(crate) const SLEEP_SECS: &str = "100000";
/// Bounds every command the bench waits on, so a hang is reported, not waited out.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// The keeper PSS budget of issue 15, in KiB (runsv: 94-102 KB).
pub(crate) const PSS_BUDGET_KB: f64 = 80.0;

/// The variables that dmgr and runsvdir are started with: a login shell's, not the
/// bench's own (`cargo bench` adds dozens of `CARGO_*` ones, which every keeper
/// would copy for its daemon, and no user's shell has).
pub(crate) fn login_env() -> Vec<(String, String)> {
    ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TERM"]
        .iter()
        .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
        .collect()
}

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
    /// Only the lifecycle rounds: no log throughput, no large inputs.
    only_lifecycle: bool,
    /// Only `dmgr top` on idle daemons.
    only_top: bool,
    /// Only the watching and notify keepers' idle CPU and memory.
    only_watched: bool,
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
        let only = var("DMGR_BENCH_ONLY");
        let only_watched = only.as_deref() == Some("watched");
        let (only_large, only_lifecycle, only_top) = match only.as_deref() {
            None | Some("watched") => (false, false, false),
            Some("large") => (true, false, false),
            Some("lifecycle") => (false, true, false),
            Some("top") => (false, false, true),
            Some(other) => {
                return Err(format!(
                    "DMGR_BENCH_ONLY: {other:?} is not `large`, `lifecycle`, `top` or `watched`"
                ))
            }
        };
        Ok(Options {
            ns,
            rounds,
            idle_secs,
            bin,
            baseline,
            only_large,
            only_lifecycle,
            only_top,
            only_watched,
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
    let runit = runit::Runit::find();
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
    match &runit {
        Ok(r) => println!("  peer:     runit: {}", r.describe()),
        Err(reason) => println!("  peer:     {reason}"),
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
    if opts.only_watched {
        print_watched(&bench_watched(&opts, opts.idle_secs.max(1)));
        return Ok(true);
    }
    if opts.only_top {
        let n = idle_n.unwrap_or(100);
        let top = bench_top(&opts, n, opts.idle_secs.max(1));
        print_top(&top);
        return Ok(top.is_ok());
    }
    let mut all = Vec::new();
    for &n in &opts.ns {
        let idle = (Some(n) == idle_n).then_some(opts.idle_secs);
        let figures = bench_n(&opts, n, idle, &sleep, ssd.as_deref(), runit.as_ref().ok())?;
        print_figures(&figures);
        all.push(figures);
    }
    if opts.idle_secs > 0 {
        print_watched(&bench_watched(&opts, opts.idle_secs));
        if let Some(n) = idle_n {
            print_top(&bench_top(&opts, n, opts.idle_secs));
        }
    }
    let log = if opts.only_lifecycle {
        LogFigures::default()
    } else {
        let log = bench_log(&opts);
        print_log(&log);
        let large = bench_large(&opts)?;
        print_large(&opts, &large);
        log
    };
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

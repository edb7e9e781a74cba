//! A fuzz and property test of the config loader (issue 10, item 5; issue 16): random
//! bytes, grammar-aware mutations of files that use every key, huge numbers and
//! durations, deep nesting, long strings, NUL bytes, invalid UTF-8, CRLF, a BOM and
//! duplicate keys. Every input must give a daemon or located problems, never a
//! panic, and never take more than a second. A sample of the inputs then drives the
//! real binary through `check`, `start --all` and `stop --all` in a temporary
//! directory, and no file outside the run directory and the configured pidfiles and
//! logs may change.
//!
//! `cargo test` runs a short fixed-seed round; the long run is
//! `DMGR_FUZZ_ROUNDS=1000000 DMGR_FUZZ_SEED=random cargo test --release fuzz -- --nocapture`
//! (see the README's Development section), which prints the seed to replay with.

mod input;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dmgr::config::{self, Daemon, Dirs, Invalid};

use crate::support::TestEnv;
use input::{env_number, input, mutate, seed, show, well_formed, Rng};

/// The longest one input may take the loader.
const PER_INPUT: Duration = Duration::from_secs(1);

/// The CPU time this thread has used: the per-input bound is on the loader's work,
/// not on how long a busy machine kept the test waiting for a CPU.
fn thread_cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage(RUSAGE_THREAD)");
    let (user, system) = (usage.user_time(), usage.system_time());
    let micros = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    micros(user) + micros(system)
}

/// Checks what the loader made of one input.
fn check_outcome(
    bytes: &[u8],
    dirs: &Dirs,
    result: &Result<Daemon, Invalid>,
) -> Result<(), String> {
    match result {
        Ok(d) => {
            if d.process.command.is_empty() || d.process.command[0].is_empty() {
                return Err("a daemon with an empty command".into());
            }
            if !d.pidfile.is_absolute()
                || !d.process.log.is_absolute()
                || !d.process.working_dir.is_absolute()
            {
                return Err(format!("a relative path: {d:?}"));
            }
            if d.pidfile.starts_with(&dirs.config_dir)
                || d.process.log.starts_with(&dirs.config_dir)
            {
                return Err("a pidfile or log inside the config directory".into());
            }
            if d.logs.log_keep > config::MAX_LOG_KEEP
                || d.supervision.max_restarts > config::MAX_RESTARTS
            {
                return Err("a number past its bound".into());
            }
            if d.logs.log_max_size.0 != 0
                && !(config::MIN_LOG_SIZE..=config::MAX_LOG_SIZE).contains(&d.logs.log_max_size.0)
            {
                return Err("a log size past its bounds".into());
            }
            if d.supervision.stop_signal.check_stop().is_err()
                || d.supervision.reload_signal.check_reload().is_err()
            {
                return Err("a signal its key refuses".into());
            }
            Ok(())
        }
        Err(invalid) => {
            let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
            if invalid.diagnostics.is_empty() {
                return Err("invalid without a reason".into());
            }
            if invalid.diagnostics.len() > config::MAX_SHOWN + 1 {
                return Err(format!("{} problems shown", invalid.diagnostics.len()));
            }
            for d in &invalid.diagnostics {
                let (line, col) = d.location;
                if line < 1 || col < 1 || line > lines {
                    return Err(format!("{d} is outside the file of {lines} lines"));
                }
                if d.message.is_empty() || d.message.len() > 8192 {
                    return Err(format!("a message of {} bytes", d.message.len()));
                }
                if !d.is_error() {
                    return Err(format!("a warning in an invalid file: {d}"));
                }
            }
            Ok(())
        }
    }
}

/// Every input gives a daemon or located problems, never a panic, never more than a
/// second.
#[test]
fn fuzz_config_loader_survives_hostile_input() {
    let rounds = env_number("DMGR_FUZZ_ROUNDS", 6_000);
    let seed = seed();
    let big = rounds > 100_000 || !cfg!(debug_assertions);
    eprintln!("fuzz: DMGR_FUZZ_SEED={seed} DMGR_FUZZ_ROUNDS={rounds}");
    let tmp = tempfile::tempdir().unwrap();
    let dirs = Dirs {
        config_dir: tmp.path().join("daemons.d"),
        run_dir: tmp.path().join("run"),
        log_dir: tmp.path().join("run/log"),
    };
    std::fs::create_dir(&dirs.config_dir).unwrap();
    let file = dirs.config_dir.join("web.toml");
    let mut rng = Rng(seed);
    let (mut accepted, mut bytes_total, mut slowest) = (0usize, 0usize, Duration::ZERO);
    let started = Instant::now();
    // A panic is caught (the default hook prints it), reported with its input and
    // seed, and fails the test.
    let mut failure = None;
    for round in 0..rounds {
        let bytes = input(&mut rng, round, big);
        bytes_total += bytes.len();
        let at = thread_cpu_time();
        let result = std::panic::catch_unwind(|| config::load_bytes(&dirs, &file, &bytes));
        let took = thread_cpu_time().saturating_sub(at);
        slowest = slowest.max(took);
        let verdict = match &result {
            Err(_) => Err("the loader panicked".to_string()),
            Ok(outcome) => check_outcome(&bytes, &dirs, outcome),
        }
        .and_then(|()| {
            if took > PER_INPUT {
                Err(format!("took {took:?}"))
            } else {
                Ok(())
            }
        });
        match verdict {
            Ok(()) => accepted += usize::from(matches!(result, Ok(Ok(_)))),
            Err(why) => {
                failure = Some(format!(
                    "round {round} (seed {seed}): {why}; input {}",
                    show(&bytes)
                ));
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "fuzz: {rounds} inputs ({:.1} MB) in {:.1} s, {:.0} inputs/s; {accepted} accepted; slowest {slowest:?} of CPU",
        bytes_total as f64 / 1e6,
        elapsed.as_secs_f64(),
        rounds as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    if let Some(failure) = failure {
        panic!("{failure}");
    }
    assert!(
        accepted > 0,
        "no input was accepted: the generator is broken"
    );
}

/// One file or directory as a snapshot sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    inode: u64,
    len: u64,
    mtime_ns: i128,
    content: Option<Vec<u8>>,
}

/// Every file and directory under `root` except `skip` (the run directory).
fn snapshot(root: &Path, skip: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.starts_with(skip) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let kind = if meta.is_dir() {
                todo.push(path.clone());
                "dir"
            } else if meta.file_type().is_symlink() {
                "symlink"
            } else {
                "file"
            };
            let content = (kind == "file" && meta.len() < 1 << 16)
                .then(|| std::fs::read(&path).unwrap_or_default());
            out.insert(
                path,
                Entry {
                    kind,
                    inode: meta.ino(),
                    // A directory's size and time change with its entries, which are
                    // compared on their own.
                    len: if kind == "dir" { 0 } else { meta.len() },
                    mtime_ns: if kind == "dir" {
                        0
                    } else {
                        i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
                    },
                    content,
                },
            );
        }
    }
    out
}

/// A sample of generated inputs, accepted and refused, drives the real binary; no file
/// outside the run directory and the pidfiles and logs the files configure changes.
#[test]
fn fuzz_accepted_inputs_change_nothing_outside_their_paths() {
    let drives = env_number("DMGR_FUZZ_DRIVES", 8);
    let seed = seed() ^ 0xd21e;
    eprintln!(
        "fuzz drive: DMGR_FUZZ_SEED={} DMGR_FUZZ_DRIVES={drives}",
        seed ^ 0xd21e
    );
    let mut rng = Rng(seed);
    for drive in 0..drives {
        let env = TestEnv::new();
        let dirs = Dirs {
            config_dir: env.config_dir(),
            run_dir: env.run_dir(),
            log_dir: env.run_dir().join("log"),
        };
        for dir in ["elsewhere", "tree", "daemons.d/sub"] {
            std::fs::create_dir_all(env.root().join(dir)).unwrap();
        }
        std::fs::write(env.root().join("tree/precious"), "precious\n").unwrap();
        std::fs::write(env.root().join("elsewhere/shared"), "shared\n").unwrap();
        env.write(
            "other",
            "command = [\"sleep\", \"2\"]\nstart_wait = \"0s\"\nstop_timeout = \"1s\"\n",
        );
        // Half the drives use an input the loader accepts.
        let want_accepted = drive % 2 == 0;
        let mut text = Vec::new();
        for _ in 0..200 {
            text = well_formed(&mut rng, true, if want_accepted { 97 } else { 50 }).into_bytes();
            for _ in 0..rng.below(3) {
                mutate(&mut rng, &mut text, true);
            }
            let accepted =
                config::load_bytes(&dirs, &dirs.config_dir.join("web.toml"), &text).is_ok();
            if accepted == want_accepted {
                break;
            }
        }
        std::fs::write(dirs.config_dir.join("web.toml"), &text).unwrap();
        let mut allowed: Vec<PathBuf> = Vec::new();
        for name in ["web", "other"] {
            let file = dirs.config_dir.join(format!("{name}.toml"));
            let bytes = std::fs::read(&file).unwrap();
            if let Ok(d) = config::load_bytes(&dirs, &file, &bytes) {
                allowed.push(d.pidfile.clone());
                for log in std::iter::once(&d.process.log).chain(&d.process.stderr_log) {
                    allowed.push(log.clone());
                    for n in 1..=d.logs.log_keep.min(1000) {
                        allowed.push(dmgr::logfile::rotated(log, n));
                    }
                }
            }
        }
        let before = snapshot(env.root(), &env.run_dir());
        let check = env.dmgr(&["check"]);
        let start = env.dmgr(&["start", "--all"]);
        let what = format!(
            "drive {drive} (seed {}): check exited {:?}, start --all {:?}, input {}",
            seed ^ 0xd21e,
            check.exit_code(),
            start.exit_code(),
            show(&text)
        );
        if check.exit_code() == Some(2) {
            assert_ne!(
                start.exit_code(),
                Some(0),
                "{what}: an invalid file started"
            );
        }
        let stop = env.dmgr(&["stop", "--all"]);
        assert_eq!(
            stop.exit_code(),
            Some(0),
            "{what}: stop --all failed: {}",
            stop.stderr()
        );
        let after = snapshot(env.root(), &env.run_dir());
        let is_allowed = |path: &Path| {
            allowed.iter().any(|a| {
                a == path
                    || (a.starts_with(path) && after.get(path).is_some_and(|e| e.kind == "dir"))
            })
        };
        for path in before.keys().chain(after.keys()) {
            if before.get(path) != after.get(path) && !is_allowed(path) {
                panic!(
                    "{what}: {} changed outside the run directory and the configured paths\nbefore {:?}\nafter {:?}",
                    path.display(),
                    before.get(path),
                    after.get(path)
                );
            }
        }
        crate::support::wait_until(
            &format!("{what}: every keeper and daemon is gone"),
            Duration::from_secs(10),
            || env.seen().iter().all(|p| !p.is_alive()),
        );
    }
}

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

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dmgr::config::{self, Daemon, Dirs, Invalid};

use crate::support::TestEnv;

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

/// xorshift64*: deterministic, so that a seed replays a failure.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The seed from `DMGR_FUZZ_SEED` (a number or `random`), else a fixed one.
fn seed() -> u64 {
    match std::env::var("DMGR_FUZZ_SEED").ok().as_deref() {
        None | Some("") => 0x5eed_f0dd_15c0_b0e5,
        Some("random") => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        }
        Some(n) => n.parse().expect("DMGR_FUZZ_SEED: a number or `random`"),
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Values worth trying for each key, valid and hostile, and how many of them (from
/// the start) are valid; `safe` keeps to values a real start may use (commands that
/// write nothing, short timeouts).
fn values(key: &str, safe: bool) -> (&'static [&'static str], usize) {
    const NUMBERS: &[&str] = &[
        "0",
        "1",
        "3",
        "5",
        "1000",
        "0x10",
        "0o17",
        "0b11",
        "1_000",
        "1001",
        "4294967295",
        "-1",
        "99999999999999999999999999999999999999999",
        "+7",
        "1e3",
        "\"5\"",
    ];
    const DURATIONS: &[&str] = &[
        "\"0\"",
        "\"1ms\"",
        "\"250ms\"",
        "\"10s\"",
        "\"2m\"",
        "\"1h 30m\"",
        "\"366days\"",
        "\"367days\"",
        "\"99999999999999999h\"",
        "\"ten\"",
        "10",
        "\"\"",
        "\"-1s\"",
    ];
    const PATHS: &[&str] = &[
        "\"../elsewhere/web.pid\"",
        "\"../elsewhere/web.log\"",
        "\"../elsewhere/shared\"",
        "\"../tree/precious\"",
        "\"../run/log/web.log.1\"",
        "\"x.pid\"",
        "\"pf.toml\"",
        "\"web.toml\"",
        "\"sub/x.log\"",
        "\"../run/web.state\"",
        "\"../run/web.lock\"",
        "\"../run/other.lock\"",
        "\"../run/web.events\"",
        "\"../run/log/other.log\"",
        "\"../run/other.pid\"",
        "\"/\"",
        "\"../elsewhere/\"",
        "\"\"",
        "\"a\\u0000b\"",
        "1",
    ];
    match (key, safe) {
        ("command", true) => (
            &[
                "[\"sleep\", \"2\"]",
                "\"sleep 1\"",
                "[\"true\"]",
                "[\"false\"]",
                "[\"printf\", \"hi\\\\n\"]",
                "[\"/nonexistent/x\"]",
                "[]",
            ],
            6,
        ),
        ("command", false) => (
            &[
                "\"sleep 1\"",
                "[\"sleep\", \"1\"]",
                "\"./bin/x\"",
                "[\"sh\", \"-c\", \"exit 0\"]",
                "\"\\u001b[2J\"",
                "\"a 'b\"",
                "[]",
                "[\"\", \"x\"]",
                "\"\\u0000\"",
                "[1, 2]",
                "{}",
            ],
            5,
        ),
        ("description", _) => (
            &[
                "\"web\"",
                "\"\\u001b]0;pwned\\u0007\"",
                "\"\"",
                "\"\\u202e\"",
                "1",
            ],
            4,
        ),
        ("working_dir", _) => (
            &[
                "\".\"",
                "\"/\"",
                "\"../elsewhere\"",
                "\"/nonexistent\"",
                "\"\"",
                "[]",
            ],
            4,
        ),
        ("env", _) => (
            &[
                "{ A = \"1\" }",
                "{}",
                "{ PATH = \"/usr/bin:/bin\" }",
                "{ 1X = \"a\" }",
                "{ \"A B\" = \"1\" }",
                "{ A = 1 }",
                "{ A = { B = \"c\" } }",
                "\"A=1\"",
            ],
            3,
        ),
        ("clear_env" | "log_timestamps" | "autostart", _) => {
            (&["true", "false", "\"yes\"", "1"], 2)
        }
        ("user" | "group", true) => (&["\"-rf\"", "\"../etc\"", "\"\"", "\"a b\""], 0),
        ("user", false) => (
            &[
                "\"nobody\"",
                "\"root\"",
                "\"-rf\"",
                "\"../etc\"",
                "\"\"",
                "\"a b\"",
            ],
            2,
        ),
        ("group", false) => (&["\"nogroup\"", "\"root\"", "\"-rf\"", "\"a:b\""], 2),
        ("umask", _) => (
            &[
                "\"022\"", "\"0027\"", "\"+22\"", "\"999\"", "\"\"", "22", "\"7777\"",
            ],
            2,
        ),
        ("pidfile" | "log" | "stderr_log", _) => (PATHS, 5),
        ("log_max_size", true) => (&["0", "\"4KiB\"", "\"10MiB\"", "\"100\""], 3),
        ("log_max_size", false) => (
            &[
                "\"10MiB\"",
                "0",
                "0x1000",
                "\"4KiB\"",
                "\"100\"",
                "\"2TiB\"",
                "\"99999999999999999999TiB\"",
                "-1",
                "\"1.5MB\"",
            ],
            4,
        ),
        ("log_keep" | "max_restarts", true) => (&["0", "1", "3", "4294967295"], 3),
        ("restart", _) => (
            &[
                "\"no\"",
                "\"on-failure\"",
                "\"always\"",
                "\"sometimes\"",
                "1",
            ],
            3,
        ),
        ("restart_delay", true) => (&["\"0\"", "\"10ms\"", "\"100ms\""], 3),
        ("start_wait", true) => (&["\"0s\"", "\"50ms\"", "\"100ms\""], 3),
        ("ready_timeout", true) => (&["\"200ms\"", "\"300ms\""], 2),
        ("stop_timeout", true) => (&["\"200ms\"", "\"1s\""], 2),
        ("restart_delay" | "start_wait" | "ready_timeout" | "stop_timeout", false) => {
            (DURATIONS, 7)
        }
        ("ready", true) => (
            &[
                "{ file = \"../elsewhere/ready\" }",
                "{ exec = [\"true\"] }",
                "{ tcp = \"127.0.0.1:1\" }",
                "{ tcp = \"h:0\" }",
            ],
            3,
        ),
        ("ready", false) => (
            &[
                "{ tcp = \"127.0.0.1:1\" }",
                "{ tcp = \"[::1]:80\" }",
                "{ file = \"ready\" }",
                "{ exec = [\"true\"] }",
                "{ tcp = \"h:0\" }",
                "{ tcp = \"[::1:80\" }",
                "{ exe = [\"true\"] }",
                "{}",
                "{ tcp = \"a\", file = \"b\" }",
                "\"x\"",
            ],
            4,
        ),
        ("stop_signal" | "reload_signal", _) => (
            &[
                "\"USR1\"",
                "\"SIGHUP\"",
                "\"term\"",
                "15",
                "0o17",
                "0xF",
                "\"KILL\"",
                "\"STOP\"",
                "\"CHLD\"",
                "\"TERM\"",
                "0",
                "99",
                "-1",
                "\"9999999999999\"",
            ],
            4,
        ),
        ("after", _) => (
            &[
                "[\"other\"]",
                "[]",
                "[\"other\", \"other\"]",
                "[\"web\"]",
                "[\"../x\"]",
                "[1]",
                "\"other\"",
                "[\"nosuch\"]",
            ],
            3,
        ),
        ("type", _) => (&["\"simple\"", "\"forking\"", "\"weird\""], 2),
        // Numbers, and whatever keys other work adds: the loader must hold anyway.
        (_, _) => (NUMBERS, 8),
    }
}

/// A daemon file that sets most keys, each to a value from [`values`]: a valid one
/// with `valid` percent odds, any other time.
fn well_formed(rng: &mut Rng, safe: bool, valid: usize) -> String {
    let mut out = String::new();
    for key in config::KEYS {
        let wanted = if *key == "command" { 97 } else { 55 };
        if rng.chance(wanted) {
            let (all, good) = values(key, safe);
            let value = if good > 0 && rng.chance(valid) {
                all[rng.below(good)]
            } else {
                *rng.pick(all)
            };
            out.push_str(&format!("{key} = {value}\n"));
        }
    }
    if !safe && rng.chance(5) {
        out.push_str("comand = \"typo\"\n");
    }
    out
}

const TOKENS: &[&str] = &[
    "=",
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    "#",
    ".",
    "\\",
    "\0",
    "\u{feff}",
    "\r\n",
    "0x",
    "-",
    "\"\"\"",
    "'''",
    "[[",
    "]]",
    " ",
    "\t",
    "\r",
    "é",
    "\u{1b}",
    "inf",
    "nan",
    "1979-05-27T07:32:00Z",
    "true",
];

/// One grammar-aware change to a file: a token, a lost range, a doubled or swapped
/// line, a table header, a huge value.
fn mutate(rng: &mut Rng, text: &mut Vec<u8>, structural_only: bool) {
    let at = rng.below(text.len() + 1);
    let lines =
        |t: &[u8]| -> Vec<Vec<u8>> { t.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect() };
    match rng.below(if structural_only { 3 } else { 8 }) {
        0 => {
            // Double a line: a duplicate key.
            let mut all = lines(text);
            let i = rng.below(all.len());
            let line = all[i].clone();
            all.insert(i, line);
            *text = all.join(&b'\n');
        }
        1 => {
            let mut all = lines(text);
            let (i, j) = (rng.below(all.len()), rng.below(all.len()));
            all.swap(i, j);
            *text = all.join(&b'\n');
        }
        2 => {
            let header = *rng.pick(&[
                "[env]\n",
                "[ready]\n",
                "[[after]]\n",
                "[a.b.c]\n",
                "\n[command]\n",
            ]);
            text.extend_from_slice(header.as_bytes());
            text.extend_from_slice(b"x = 1\n");
        }
        3 => {
            let token = rng.pick(TOKENS).as_bytes();
            text.splice(at..at, token.iter().copied());
        }
        4 => {
            let end = (at + rng.below(16)).min(text.len());
            text.drain(at..end);
        }
        5 => {
            if let Some(b) = text.get_mut(at) {
                *b = *rng.pick(b"=\"'[]{},\n#.\\0123456789xo_-+ \xff\xc3\x80");
            }
        }
        6 => {
            let huge = *rng.pick(&[
                "99999999999999999999999999999999999999999999",
                "-0x7fffffffffffffff",
                "\"99999999999999999999h\"",
                "\"18446744073709551616TiB\"",
                "0o7777777777777777777777777",
            ]);
            text.splice(at..at, huge.bytes());
        }
        _ => {
            // Invalid UTF-8 of several kinds: a lone continuation byte, a truncated
            // sequence, an encoded surrogate, an overlong NUL.
            let bad = *rng.pick(&[
                &b"\x80"[..],
                b"\xc3",
                b"\xed\xa0\x80",
                b"\xc0\x80",
                b"\xff\xfe",
            ]);
            text.splice(at..at, bad.iter().copied());
        }
    }
}

/// One input of each kind in turn; `big` allows inputs up to the 1 MiB cap.
fn input(rng: &mut Rng, round: usize, big: bool) -> Vec<u8> {
    let max = if big { 1 << 20 } else { 128 << 10 };
    match round % 10 {
        0 => (0..rng.below(512)).map(|_| rng.next() as u8).collect(),
        1 => (0..rng.below(400))
            .map(|_| *rng.pick(b"[]{}=\"'\\\n #.,:-0123456789abcdefxo_\t\r"))
            .collect(),
        2 => well_formed(rng, false, 97).into_bytes(),
        3 => {
            let mut text = well_formed(rng, false, 80).into_bytes();
            for _ in 0..1 + rng.below(6) {
                mutate(rng, &mut text, false);
            }
            text
        }
        4 => {
            let key = *rng.pick(config::KEYS);
            let digits = "9".repeat(rng.below(60) + 1);
            let value = match rng.below(6) {
                0 => "99999999999999999999999999999999999999999".to_string(),
                1 => format!("\"{digits}h\""),
                2 => format!("\"{digits}TiB\""),
                3 => format!("0x{}", "f".repeat(digits.len())),
                4 => format!("-{digits}"),
                _ => "1e308".to_string(),
            };
            format!("command = \"sleep 1\"\n{key} = {value}\n").into_bytes()
        }
        5 => {
            let depth = rng.below(if big { 20_000 } else { 3_000 }) + 1;
            let (open, close) = *rng.pick(&[("[", "]"), ("{a=", "}"), ("[{a=", "}]")]);
            let mut text = format!(
                "command = \"x\"\nafter = {}1{}\n",
                open.repeat(depth),
                close.repeat(depth)
            );
            if rng.chance(30) {
                text = format!("[{}]\nx = 1\n", vec!["a"; depth.min(5000)].join("."));
            }
            text.into_bytes()
        }
        6 => {
            let len = rng.below(max - 64);
            let filler = *rng.pick(&["x", "é", "\\u001b", ",", "a.", "\\\""]);
            let n = len / filler.len().max(1);
            match rng.below(4) {
                0 => format!(
                    "command = \"sleep 1\"\ndescription = \"{}\"\n",
                    filler.repeat(n)
                ),
                1 => format!("command = \"sleep 1\"\n{} = 1\n", "k".repeat(len)),
                2 => format!("command = \"sleep 1\"\npidfile = \"{}\"\n", "p".repeat(len)),
                _ => format!("command = [{}\"x\"]\n", "\"a\",".repeat(len / 4)),
            }
            .into_bytes()
        }
        7 => {
            let mut text = well_formed(rng, false, 80).into_bytes();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(text.len() + 1);
                const BAD: &[&[u8]] = &[b"\0", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\\u0000"];
                let bad = *rng.pick(BAD);
                text.splice(at..at, bad.iter().copied());
            }
            text
        }
        8 => {
            let text = well_formed(rng, false, 97);
            let mut text = match rng.below(3) {
                0 => text.replace('\n', "\r\n"),
                1 => text.replace('\n', "\r"),
                _ => text,
            }
            .into_bytes();
            if rng.chance(60) {
                text.splice(0..0, *b"\xef\xbb\xbf");
            }
            if rng.chance(50) {
                // Every line twice, and a table set twice.
                let copy = text.clone();
                text.extend_from_slice(&copy);
                text.extend_from_slice(b"\n[env]\nA = \"1\"\n[env]\nA = \"2\"\n");
            }
            text
        }
        _ => {
            let unit = *rng.pick(&["=\n", "a = = 1\n", "x = 1\n", "[\n", "\"\n", "]]]\n"]);
            let len = rng.below(max);
            unit.repeat(len / unit.len()).into_bytes()
        }
    }
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

/// What the input was, short enough to print.
fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(600)]);
    format!("{} bytes: {text:?}", bytes.len())
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

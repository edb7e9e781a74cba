//! The fuzz inputs: a seeded generator of daemon files that use every key, the
//! grammar-aware mutations of them, and hostile bytes.

use dmgr::config;

/// xorshift64*: deterministic, so that a seed replays a failure.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub(super) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The seed from `DMGR_FUZZ_SEED` (a number or `random`), else a fixed one.
pub(super) fn seed() -> u64 {
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

pub(super) fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Values worth trying for each key, valid and hostile, and how many of them (from
/// the start) are valid; `safe` keeps to values a real start may use (commands that
/// write nothing, short timeouts).
pub(super) fn values(key: &str, safe: bool) -> (&'static [&'static str], usize) {
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
pub(super) fn well_formed(rng: &mut Rng, safe: bool, valid: usize) -> String {
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

pub(super) const TOKENS: &[&str] = &[
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
pub(super) fn mutate(rng: &mut Rng, text: &mut Vec<u8>, structural_only: bool) {
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
pub(super) fn input(rng: &mut Rng, round: usize, big: bool) -> Vec<u8> {
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

/// What the input was, short enough to print.
pub(super) fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(600)]);
    format!("{} bytes: {text:?}", bytes.len())
}

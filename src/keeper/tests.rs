//! The keeper's core is pure: the check, and a check of the check.

use std::path::{Path, PathBuf};

/// What no file under `keeper/core/` may use: the core makes no system call and
/// reads no clock, so that its tests can drive it with made-up facts and time.
const IMPURE: [&str; 8] = [
    "nix::",
    "libc::",
    "std::fs",
    "std::process",
    "std::net",
    "Instant::now",
    "SystemTime::now",
    "unsafe",
];

/// The forbidden uses in `text`, by line.
fn impurities(text: &str) -> Vec<(usize, &'static str)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for word in IMPURE {
            if code.contains(word) {
                found.push((n + 1, word));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The keeper's core is pure: no file under `keeper/core/` uses `nix::`,
/// `std::fs`, `std::process` or the clock (quinn-proto's crate boundary, as a
/// module boundary). Its decisions can then be tested with a fake clock, and the
/// loop is the only place that does IO.
#[test]
fn the_keepers_core_does_no_io_and_reads_no_clock() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/keeper/core");
    let mut files = Vec::new();
    rust_files(&core, &mut files);
    assert!(files.len() >= 8, "the core's files: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let found = impurities(&text);
        assert!(found.is_empty(), "{}: {found:?}", file.display());
    }
}

/// The check itself finds each forbidden use, and ignores comments.
#[test]
fn the_purity_check_finds_what_it_forbids() {
    let text = "use nix::unistd::Pid;\nlet t = Instant::now(); // fine: Instant::now\nstd::fs::read(p);\n// std::process in a comment\n";
    let found = impurities(text);
    assert_eq!(found, [(1, "nix::"), (2, "Instant::now"), (3, "std::fs")]);
}

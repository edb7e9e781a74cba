//! The shape of the source tree, as `src/lib.rs` describes it: no file under `src/`
//! over 600 lines, and no cycle between the layers `config`, `state`, `output`,
//! `keeper`, `export` and `boot` (a cycle would make each impossible to read, test or
//! move without the other); and the keeper's core pure: no file under `keeper/core/`
//! makes a system call or reads the clock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules that must not depend on each other in a cycle.
const LAYERS: [&str; 6] = ["config", "state", "output", "keeper", "export", "boot"];

/// Every `.rs` file under `dir`.
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

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Returns true if and only if `path` holds tests only (`tests.rs`, `*_tests.rs`, a
/// `tests/` folder), which may reach anywhere.
fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || path.components().any(|c| c.as_os_str() == "tests")
}

/// The layers each layer's code (tests aside) names as `crate::LAYER`.
fn dependencies() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let mut deps = BTreeMap::new();
    for layer in LAYERS {
        let mut files = Vec::new();
        let dir = src().join(layer);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let file = src().join(format!("{layer}.rs"));
        if file.is_file() {
            files.push(file);
        }
        let mut uses = BTreeSet::new();
        for file in files.iter().filter(|f| !is_test_file(f)) {
            let text = std::fs::read_to_string(file).unwrap();
            // Code before the first `#[cfg(test)]` module of the file.
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            for other in LAYERS.iter().filter(|o| **o != layer) {
                if code.contains(&format!("crate::{other}::"))
                    || code.contains(&format!("crate::{other};"))
                    || code.contains(&format!("crate::{other}}}"))
                    || code.contains(&format!("crate::{{{other}"))
                {
                    uses.insert(*other);
                }
            }
        }
        deps.insert(layer, uses);
    }
    deps
}

/// A cycle in `deps`, if there is one, as the layers along it.
fn cycle(deps: &BTreeMap<&'static str, BTreeSet<&'static str>>) -> Option<Vec<&'static str>> {
    fn visit(
        node: &'static str,
        deps: &BTreeMap<&'static str, BTreeSet<&'static str>>,
        path: &mut Vec<&'static str>,
        done: &mut BTreeSet<&'static str>,
    ) -> Option<Vec<&'static str>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut found = path[at..].to_vec();
            found.push(node);
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node);
        for next in deps.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, deps, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    deps.keys()
        .find_map(|node| visit(node, deps, &mut Vec::new(), &mut done))
}

/// No module cycle between the layers: each can be read and tested on top of the
/// ones below it.
#[test]
fn the_layers_have_no_module_cycle() {
    let deps = dependencies();
    assert!(
        deps["config"].is_empty(),
        "config is the bottom layer, and uses {:?}",
        deps["config"]
    );
    assert_eq!(cycle(&deps), None, "{deps:?}");
}

/// The cycle check itself finds a cycle where there is one.
#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut deps = BTreeMap::new();
    deps.insert("config", BTreeSet::new());
    deps.insert("state", BTreeSet::from(["config", "keeper"]));
    deps.insert("keeper", BTreeSet::from(["state"]));
    assert_eq!(cycle(&deps), Some(vec!["keeper", "state", "keeper"]));
}

/// No file under `src/` is over 600 lines: past that, split it by responsibility.
#[test]
fn no_source_file_is_over_600_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<(String, usize)> = files
        .iter()
        .map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (f.strip_prefix(src()).unwrap().display().to_string(), lines)
        })
        .filter(|(_, lines)| *lines > 600)
        .collect();
    assert!(long.is_empty(), "over 600 lines: {long:?}");
}

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

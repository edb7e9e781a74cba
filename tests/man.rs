//! The man pages: `man/dmgr.1` is what `dmgr::manpage::render` produces (regenerate
//! with `DMGR_BLESS=1 cargo test man`), both pages cover every command, option and
//! key, and both render without warnings.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(man_dir().join(name)).unwrap_or_else(|e| panic!("man/{name}: {e}"))
}

/// The committed dmgr.1 is exactly what the generator renders.
#[test]
fn man_page_matches_the_cli_definition() {
    let rendered = dmgr::manpage::render();
    let path = man_dir().join("dmgr.1");
    if std::env::var_os("DMGR_BLESS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "man/dmgr.1 is stale: run `DMGR_BLESS=1 cargo test man` and commit the result"
    );
}

/// Every visible subcommand and every global option appears in dmgr.1.
#[test]
fn man_page_covers_every_command_and_option() {
    let page = read("dmgr.1");
    let cli = dmgr::cli::Cli::command();
    let mut commands = Vec::new();
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        commands.push((sub.get_name().to_string(), sub));
        for nested in sub.get_subcommands().filter(|s| !s.is_hide_set()) {
            commands.push((format!("{} {}", sub.get_name(), nested.get_name()), nested));
        }
    }
    for (name, sub) in commands {
        assert!(
            page.contains(&format!(".SS \"dmgr {}", name.replace('-', "\\-"))),
            "dmgr.1 lacks `{name}`"
        );
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(
                    page.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                    "dmgr.1 lacks --{long} of {name}"
                );
            }
        }
    }
    for arg in cli.get_arguments().filter(|a| !a.is_hide_set()) {
        if let Some(long) = arg.get_long() {
            assert!(
                page.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                "dmgr.1 lacks --{long}"
            );
        }
    }
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "COMMANDS",
        "ENVIRONMENT",
        "FILES",
        "\"EXIT STATUS\"",
        "EXAMPLES",
        "SECURITY",
        "\"SEE ALSO\"",
    ] {
        assert!(
            page.contains(&format!(".SH {section}")),
            "dmgr.1 lacks section {section}"
        );
    }
}

/// Every key the parser accepts is documented in dmgr.toml.5.
#[test]
fn toml_page_covers_every_key() {
    let page = read("dmgr.toml.5");
    for key in dmgr::config::KEYS.iter().chain(dmgr::config::READY_KEYS) {
        let documented =
            page.contains(&format!(".B {key}\n")) || page.contains(&format!(".BR {key} "));
        assert!(documented, "dmgr.toml.5 does not document `{}`", key);
    }
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "KEYS",
        "EXAMPLES",
        "\"SEE ALSO\"",
    ] {
        assert!(
            page.contains(&format!(".SH {section}")),
            "dmgr.toml.5 lacks section {section}"
        );
    }
}

/// Both pages render without warnings where groff or mandoc is installed (.ci/run
/// installs both).
#[test]
fn man_pages_render_without_warnings() {
    let mut checked = 0;
    for page in ["dmgr.1", "dmgr.toml.5"] {
        let path = man_dir().join(page);
        if let Ok(out) = Command::new("groff")
            .args(["-man", "-ww", "-z"])
            .arg(&path)
            .output()
        {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && stderr.trim().is_empty(),
                "groff on {page}:\n{stderr}"
            );
            checked += 1;
        }
        if let Ok(out) = Command::new("mandoc")
            .args(["-T", "lint", "-W", "warning"])
            .arg(&path)
            .output()
        {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "mandoc -T lint on {page}:\n{stdout}{stderr}"
            );
            checked += 1;
        }
    }
    if checked == 0 {
        eprintln!("note: neither groff nor mandoc is installed; man page lint skipped");
    }
}

/// `dmgr completions bash` prints a script that knows the subcommands.
#[test]
fn completions_know_the_subcommands() {
    let out = Command::new(env!("CARGO_BIN_EXE_dmgr"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    for word in ["start", "stop", "list", "status", "--config-dir"] {
        assert!(script.contains(word), "completion script lacks {word}");
    }
    assert!(!script.contains("__keeper"));
}

/// Every example file in dmgr.toml.5's EXAMPLES passes `dmgr check`, so the page never
/// shows a key or value that dmgr refuses.
#[test]
fn toml_page_examples_are_valid_files() {
    let page = read("dmgr.toml.5");
    let examples = &page[page.find(".SH EXAMPLES").expect("an EXAMPLES section")..];
    let env = crate::support::TestEnv::new();
    let mut names = Vec::new();
    for block in examples.split(".EX\n").skip(1) {
        let block = block.split(".EE").next().unwrap_or_default();
        let mut current: Option<(String, String)> = None;
        for line in block.lines().map(|l| l.replace("\\-", "-")) {
            if let Some(name) = line
                .strip_prefix("# daemons.d/")
                .and_then(|n| n.strip_suffix(".toml"))
            {
                if let Some((name, text)) = current.take() {
                    env.write(&name, &text);
                }
                names.push(name.to_string());
                current = Some((name.to_string(), String::new()));
            } else if let Some((_, text)) = &mut current {
                text.push_str(&line);
                text.push('\n');
            }
        }
        if let Some((name, text)) = current {
            env.write(&name, &text);
        }
    }
    for expected in ["web", "db", "worker", "pg", "nginx", "redis", "classic"] {
        assert!(
            names.iter().any(|n| n == expected),
            "no {expected} example: {names:?}"
        );
    }
    env.dmgr(&["check"]).success();
}

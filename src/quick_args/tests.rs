//! The quick parser against clap: wherever it answers, it answers as clap does.

use std::ffi::OsString;

use super::parse;
use crate::cli::Cli;

fn argv(line: &str) -> Vec<OsString> {
    std::iter::once("dmgr")
        .chain(line.split(' ').filter(|w| !w.is_empty()))
        .map(OsString::from)
        .collect()
}

/// No environment: clap's `env = ...` options are then taken from the command line
/// alone, as the quick parser's are.
fn no_env(_: &str) -> Option<OsString> {
    None
}

/// What clap makes of `line`, with the test's own environment cleared of the two
/// variables clap reads.
fn clap(line: &str) -> Option<String> {
    let mut command = <Cli as clap::CommandFactory>::command();
    // The global options' `env` would read this process's environment.
    command = command
        .mut_arg("config_dir", |a| a.env(None::<&str>))
        .mut_arg("run_dir", |a| a.env(None::<&str>));
    let matches = command.try_get_matches_from(argv(line)).ok()?;
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).ok()?;
    Some(format!("{cli:?}"))
}

/// Every line the quick parser takes, it parses as clap does; the plain forms of
/// `list` and `status` are among them.
#[test]
fn quick_parser_agrees_with_clap_wherever_it_answers() {
    let taken = [
        "list",
        "list --json",
        "list web db",
        "list web --json db",
        "-c /etc/d list",
        "-c/etc/d list",
        "--config-dir /etc/d list",
        "--config-dir=/etc/d list --json",
        "list -c /etc/d",
        "--run-dir /run/x list",
        "list --run-dir=/run/x",
        "-q list",
        "list --quiet",
        "--color never list",
        "--color=always list",
        "list --color auto",
        "status",
        "status web",
        "status web db --json",
        "status --all",
        "status --all --json -n 5",
        "status web -n 0",
        "status web -n5",
        "status web --lines 20",
        "status web --lines=20",
        "-c /etc/d --run-dir /r -q --color never status web -n 3 --json",
        "status list",
        "list status",
    ];
    for line in taken {
        let quick = parse(&argv(line), no_env).map(|cli| format!("{cli:?}"));
        assert!(quick.is_some(), "the quick parser leaves `{line}` to clap");
        assert_eq!(quick, clap(line), "`{line}`");
    }
}

/// Help, versions, errors and unusual spellings are clap's: the quick parser leaves
/// them alone, so that clap's messages and exit codes stay as they were.
#[test]
fn quick_parser_leaves_help_errors_and_odd_spellings_to_clap() {
    let left = [
        "",
        "--help",
        "-h",
        "--version",
        "-V",
        "list --help",
        "list -h",
        "status -V",
        "start web",
        "stop --all",
        "help list",
        "list --",
        "list -- web",
        "list --json --json",
        "list -",
        "list -x",
        "list --nope",
        "-c",
        "list -c",
        "-c -q list",
        "-c=/etc/d list",
        "--config-dir= list",
        "-c /a -c /b list",
        "-c /a list --config-dir /b",
        "-q -q list",
        "-qc /etc/d list",
        "--color list",
        "--color maybe list",
        "--color never --color never list",
        "--quiet=yes list",
        "status --all web",
        "status -n",
        "status -n x",
        "status -n -1",
        "status -n +3",
        "status -n 3 -n 4",
        "status --lines",
        "list -n 3",
        "list --all",
        "lis",
        "List",
    ];
    for line in left {
        assert!(
            parse(&argv(line), no_env).is_none(),
            "the quick parser took `{line}`"
        );
    }
}

/// The environment's directories count as clap's `env = ...` makes them count: used
/// when the option is not given; an empty value is clap's to refuse.
#[test]
fn quick_parser_reads_the_directories_from_the_environment_as_clap_does() {
    let env = |value: &'static str| {
        move |var: &str| match var {
            "DMGR_CONFIG_DIR" | "DMGR_RUN_DIR" => Some(OsString::from(value)),
            _ => None,
        }
    };
    let cli = parse(&argv("list"), env("/from/env")).expect("taken");
    assert_eq!(cli.config_dir.as_deref(), Some("/from/env".as_ref()));
    assert_eq!(cli.run_dir.as_deref(), Some("/from/env".as_ref()));
    let cli = parse(&argv("-c /given list"), env("/from/env")).expect("taken");
    assert_eq!(cli.config_dir.as_deref(), Some("/given".as_ref()));
    assert_eq!(cli.run_dir.as_deref(), Some("/from/env".as_ref()));
    assert!(parse(&argv("list"), env("")).is_none());
}

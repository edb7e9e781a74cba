//! The `dmgr` binary: parse the command line, run it, print any error, exit.

use std::process::ExitCode;

use clap::Parser;

// std reopens a closed standard output as /dev/null before `main` runs, after which
// `dmgr list >&-` could not tell that it printed nowhere: look before it does. A
// function in `.init_array` runs before std's start-up (see ld.so(8)).
#[used]
#[link_section = ".init_array"]
static NOTE_CLOSED_STDOUT: extern "C" fn() = dmgr::note_closed_stdout;

/// The command line as users type it. A function of its own, never inlined, so that
/// clap's large frame is not part of `main`'s, which stays on the stack of every
/// keeper for its whole life.
#[inline(never)]
fn run_cli() -> dmgr::Result<u8> {
    dmgr::run(dmgr::cli::Cli::parse())
}

/// `list` and `status` as typed most often, parsed without building clap's command
/// (see `quick_args`); `None` for every other command line. Not inlined either, so
/// that its `Cli` stays out of `main`'s frame.
#[inline(never)]
fn run_quick(args: &[std::ffi::OsString]) -> Option<dmgr::Result<u8>> {
    let cli = dmgr::quick_args::parse(args, |var| std::env::var_os(var))?;
    Some(dmgr::run(cli))
}

fn main() -> ExitCode {
    // The launcher of keepers is started by dmgr itself with a fixed argv, and its
    // keepers live for as long as their daemons: parsing that argv by hand spares
    // every keeper the memory that clap's full command tree leaves behind.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `list` and `status`; else a keeper's probe, or the launcher of keepers (which
    // returns in each keeper); else clap.
    let result = match run_quick(&args) {
        Some(result) => result,
        None => dmgr::run_internal(args).unwrap_or_else(run_cli),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if !err.is_reported() {
                dmgr::print_error(&err);
            }
            ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(1))
        }
    }
}

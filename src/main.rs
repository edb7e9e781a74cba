//! The `dmgr` binary: parse the command line, run it, print any error, exit.

use std::process::ExitCode;

use clap::Parser;

// std reopens a closed standard output as /dev/null before `main` runs, after which
// `dmgr list >&-` could not tell that it printed nowhere: look before it does. A
// function in `.init_array` runs before std's start-up (see ld.so(8)).
#[used]
#[link_section = ".init_array"]
static NOTE_CLOSED_STDOUT: extern "C" fn() = dmgr::output::note_closed_stdout;

fn main() -> ExitCode {
    // A keeper is started by dmgr itself with a fixed argv, and then lives for as long
    // as its daemon: parsing that argv by hand spares every keeper the memory that
    // clap's full command tree leaves behind.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // A tcp or http probe of a keeper: connect, answer with the exit status.
    if let Some(code) = dmgr::keeper::probe::run_internal(&args) {
        return ExitCode::from(code);
    }
    let result = match dmgr::keeper::argv::KeeperArgv::parse(args) {
        Some(keeper) => dmgr::keeper::run(&keeper.dirs, &keeper.name, Some(keeper.notify_fd)),
        None => dmgr::run(dmgr::cli::Cli::parse()),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if !err.is_reported() {
                dmgr::output::print_error(&err);
            }
            ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(1))
        }
    }
}

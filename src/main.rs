//! The `dmgr` binary: parse the command line, run it, print any error, exit.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A keeper is started by dmgr itself with a fixed argv, and then lives for as long
    // as its daemon: parsing that argv by hand spares every keeper the memory that
    // clap's full command tree leaves behind.
    let result = match dmgr::cli::KeeperArgs::from_internal_argv(std::env::args_os()) {
        Some((dirs, args)) => dmgr::keeper::run(&dirs, &args),
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

//! The `dmgr` binary: parse the command line, run it, print any error, exit.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = dmgr::cli::Cli::parse();
    match dmgr::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if !err.is_reported() {
                dmgr::output::print_error(&err);
            }
            ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(1))
        }
    }
}

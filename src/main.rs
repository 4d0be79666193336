//! The `vigil` binary: parses flags and calls into the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use vigil::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::run(cli.command)
}

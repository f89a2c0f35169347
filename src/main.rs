use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = streamstack::cli::Cli::parse();
    ExitCode::from(streamstack::cli::run(cli) as u8)
}

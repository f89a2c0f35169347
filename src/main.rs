use std::process::ExitCode;

use clap::Parser;

/// mimalloc, not the system allocator: the processor's hot path (above all
/// a jq transform) is short-lived allocations, where glibc's malloc spent a
/// third of the time (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = streamstack::cli::Cli::parse();
    ExitCode::from(streamstack::cli::run(cli) as u8)
}

//! `streamstack produce`: run a source into the stack's stream: the stack
//! file's `processor.source` by default, or a replay file or synthetic load
//! named on the command line.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::{Cli, Exit, Output, StackArgs, calls_line, in_environment, shutdown_signal};
use crate::app::produce::{SourceOverrides, choose_source, produce};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Replay this NDJSON file (X API v2 pages or messages, v1.1 statuses).
    #[arg(long, value_name = "FILE", conflicts_with = "synthetic")]
    pub replay: Option<PathBuf>,
    /// Generate realistic tweets.
    #[arg(long)]
    pub synthetic: bool,
    /// Records a second (default: the stack file's, else as fast as the stream takes them).
    #[arg(long, value_name = "N")]
    pub rate: Option<u32>,
    /// Replay the file again and again (until Ctrl-C or --count).
    #[arg(long = "loop")]
    pub repeat: bool,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Seed of the synthetic generator (the same seed, the same tweets).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First tweet id of the synthetic generator.
    #[arg(long, default_value_t = 1_900_000_000_000_000_000)]
    pub first_id: u64,
}

pub fn run(args: &ProduceArgs, cli: &Cli) -> Exit {
    let overrides = SourceOverrides {
        replay: args.replay.clone(),
        synthetic: args.synthetic,
        rate: args.rate,
        repeat: args.repeat,
        count: args.count,
        seed: args.seed,
        first_id: args.first_id,
    };
    let report = match in_environment(cli, &args.stack, async |env| {
        let source = choose_source(&env.resolved, &overrides)?;
        produce(&env, source, shutdown_signal()).await
    }) {
        Ok(report) => report,
        Err(exit) => return exit,
    };
    match cli.output {
        Output::Json => println!(
            "{}",
            json!({ "stream": report.stream, "producer": report.producer, "aws_calls": report.aws_calls })
        ),
        Output::Text => {
            eprintln!("{}", report.producer.line());
            eprintln!("produce: {}", calls_line(report.aws_calls));
        }
    }
    for e in report.source_error.iter().chain(&report.producer_error) {
        eprintln!("error: {e}");
    }
    if report.producer.failed > 0 {
        eprintln!(
            "error: {} record(s) could not be sent",
            report.producer.failed
        );
    }
    if report.ok() { Exit::Ok } else { Exit::Failed }
}

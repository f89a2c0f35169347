//! `streamstack consume`: run the processor (stream -> DynamoDB, dead
//! letters -> S3) until Ctrl-C or SIGTERM, sharing the shards with every
//! other consumer of the stack through the lease table.

use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::{Cli, Exit, Output, StackArgs, calls_line, in_environment, shutdown_signal};
use crate::app::consume::{ConsumeOptions, consume};
use crate::logging::cloudwatch::Activator;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Stop (gracefully) once nothing new has arrived for this many seconds
    /// and every open shard is read to its tip (by this worker or another
    /// live one); for batch runs and CI.
    #[arg(long, value_name = "SECONDS")]
    pub exit_when_idle: Option<u64>,
    /// Seconds between progress lines and CloudWatch publications.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub report_every: u64,
    /// Do not publish metrics to CloudWatch.
    #[arg(long)]
    pub no_metrics: bool,
    /// Seconds without renewal after which another worker takes a lease over.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub lease_seconds: u64,
    /// Milliseconds between lease passes (renew, take, balance).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub lease_interval_ms: u64,
    /// Milliseconds to wait after an empty read of a shard.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub idle_poll_ms: u64,
    /// A shard whose reader has retried the same work this long is stalled:
    /// counted in the StalledShards metric (alarmed), shown by `status`.
    #[arg(long, env = "STREAMSTACK_STALL_AFTER", default_value = "60s", value_name = "DURATION",
          value_parser = humantime::parse_duration)]
    pub stall_after: Duration,
}

pub fn run(args: &ConsumeArgs, cli: &Cli, logs: Activator) -> Exit {
    let options = ConsumeOptions {
        exit_when_idle: args.exit_when_idle,
        report_every: args.report_every,
        no_metrics: args.no_metrics,
        lease_seconds: args.lease_seconds,
        lease_interval_ms: args.lease_interval_ms,
        idle_poll_ms: args.idle_poll_ms,
        stall_after: args.stall_after,
    };
    let report = match in_environment(cli, &args.stack, async |env| {
        consume(&env, &options, logs, shutdown_signal()).await
    }) {
        Ok(report) => report,
        Err(exit) => return exit,
    };
    eprintln!("consume: {}", calls_line(report.aws_calls));
    if cli.output == Output::Json {
        println!(
            "{}",
            json!({ "worker": report.worker, "metrics": report.metrics, "aws_calls": report.aws_calls, "log_lines": report.log_lines })
        );
    }
    Exit::Ok
}

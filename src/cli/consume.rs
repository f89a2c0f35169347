//! `streamstack consume`: run the processor (stream -> DynamoDB, dead
//! letters -> S3) until Ctrl-C or SIGTERM, sharing the shards with every
//! other consumer of the stack through the lease table.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::{Cli, Exit, Output, StackArgs, calls_line, load, pipeline, shutdown_signal, with_aws};
use crate::aws::call_stats;
use crate::processor::read::consumer::{
    self, WorkerConfig, lease::LeaseTable, shard::ReaderContext,
};
use crate::processor::read::metrics::{self, ConsumerMetrics};
use crate::processor::read::sink::{Sink, SinkTargets};

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

pub fn run(args: &ConsumeArgs, cli: &Cli) -> Exit {
    let resolved = match load(&args.stack, cli.output) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    with_aws(cli, &resolved, async |aws| {
        let p = match pipeline(&aws, &resolved).await {
            Ok(p) => p,
            Err(exit) => return exit,
        };
        let metrics = Arc::new(ConsumerMetrics::default());
        let sink = Sink::new(
            aws.dynamodb(),
            aws.s3(),
            SinkTargets {
                tweets_table: p.names.table.clone(),
                aggregates_table: p.names.aggregates_table.clone(),
                bucket: p.bucket.clone(),
                dead_letter_prefix: p.dead_letter_prefix.clone(),
            },
            p.batch.write_items as usize,
            metrics.clone(),
        );
        let worker = consumer::worker_id();
        let ctx = Arc::new(ReaderContext {
            kinesis: aws.kinesis(),
            stream: p.names.stream.clone(),
            leases: LeaseTable::new(aws.dynamodb(), &p.names.lease_table, &worker),
            sink,
            shape: p.shape.clone(),
            metrics: metrics.clone(),
            get_records: p.batch.get_records as i32,
            idle_poll: Duration::from_millis(args.idle_poll_ms),
            stall_after: args.stall_after,
            settled: Default::default(),
        });
        let config = WorkerConfig {
            lease_duration: Duration::from_secs(args.lease_seconds),
            lease_interval: Duration::from_millis(args.lease_interval_ms),
            ..WorkerConfig::default()
        };
        eprintln!(
            "consume: worker {worker} reading {} into {} (dead letters: s3://{}/{})",
            p.names.stream, p.names.table, p.bucket, p.dead_letter_prefix
        );
        let cancel = shutdown_signal();
        let reporter_cancel = tokio_util::sync::CancellationToken::new();
        let reporter = {
            let metrics = metrics.clone();
            let cloudwatch = (!args.no_metrics).then(|| aws.cloudwatch());
            let stack = p.names.stack.clone();
            let every = Duration::from_secs(args.report_every.max(1));
            let stop = reporter_cancel.clone();
            tokio::spawn(async move {
                metrics::report_loop(&metrics, cloudwatch, &stack, every, stop).await;
            })
        };
        if let Some(idle) = args.exit_when_idle {
            consumer::idle::stop_when_idle(
                &ctx,
                &config,
                Duration::from_secs(idle),
                cancel.clone(),
            );
        }
        let stopping = cancel.clone();
        let stop_requested = tokio::spawn(async move {
            stopping.cancelled().await;
            tokio::time::Instant::now()
        });
        let result = consumer::run(ctx, config, cancel).await;
        if stop_requested.is_finished()
            && let Ok(at) = stop_requested.await
        {
            eprintln!(
                "consume: shut down in {} ms (batches stored, checkpoints written, leases released)",
                at.elapsed().as_millis()
            );
        }
        reporter_cancel.cancel();
        let _ = reporter.await;
        let snapshot = metrics.snapshot();
        let calls = call_stats();
        eprintln!("consume: {}", calls_line(calls));
        if cli.output == Output::Json {
            println!(
                "{}",
                json!({ "worker": worker, "metrics": snapshot, "aws_calls": calls })
            );
        }
        match result {
            Ok(()) => Exit::Ok,
            Err(e) => {
                eprintln!("error: {e}");
                Exit::Failed
            }
        }
    })
}

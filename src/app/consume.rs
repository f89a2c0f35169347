//! `consume`: the processor (stream -> DynamoDB, dead letters -> S3) until
//! cancelled, sharing the shards with every other consumer of the stack
//! through the lease table.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{AppError, Environment};
use crate::aws::{CallStats, call_stats};
use crate::logging::cloudwatch::{Activator, ShipStats};
use crate::processor::read::consumer::{
    self, WorkerConfig, lease::LeaseTable, shard::ReaderContext,
};
use crate::processor::read::metrics::{self, ConsumerMetrics, ConsumerSnapshot};
use crate::processor::read::sink::{Sink, SinkTargets};

/// How the worker runs (the command line's options).
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// Stop once nothing new arrived for this many seconds and every open shard is read.
    pub exit_when_idle: Option<u64>,
    /// Seconds between progress events and CloudWatch publications.
    pub report_every: u64,
    pub no_metrics: bool,
    pub lease_seconds: u64,
    pub lease_interval_ms: u64,
    pub idle_poll_ms: u64,
    pub stall_after: Duration,
}

/// What a worker did until it stopped.
#[derive(Debug)]
pub struct ConsumeReport {
    pub worker: String,
    /// What reached CloudWatch Logs, and what was dropped.
    pub log_lines: ShipStats,
    pub metrics: ConsumerSnapshot,
    pub aws_calls: CallStats,
}

/// Runs a worker until `cancel` (or idle, when asked); stores its last
/// batch, checkpoints and releases its leases before it returns.
/// `logs` ships the worker's log lines to the stack's log group from the
/// moment the worker is known until it stops.
/// Item writes a shard reader has in flight at most, whatever `batch.write_items`
/// says: DynamoDB answers a write in a few milliseconds, so 8 carry well over a
/// shard's 1,000 records a second, and more only queue (on the emulator, they
/// starve the lease renewals sharing it).
const WRITES_IN_FLIGHT: usize = 8;

pub async fn consume(
    env: &Environment,
    options: &ConsumeOptions,
    logs: Activator,
    cancel: CancellationToken,
) -> Result<ConsumeReport, AppError> {
    let p = env.pipeline().await?;
    let aws = &env.aws;
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
        WRITES_IN_FLIGHT.min(p.batch.write_items as usize),
        metrics.clone(),
    );
    let worker = consumer::worker_id();
    let shipper = logs.start(aws.logs(), &p.names.processor_log_group, &worker);
    let ctx = Arc::new(ReaderContext {
        kinesis: aws.kinesis(),
        stream: p.names.stream.clone(),
        leases: LeaseTable::new(aws.dynamodb(), &p.names.lease_table, &worker),
        sink,
        program: p.program.clone(),
        metrics: metrics.clone(),
        get_records: p.batch.get_records as i32,
        idle_poll: Duration::from_millis(options.idle_poll_ms),
        stall_after: options.stall_after,
        settled: Default::default(),
    });
    let config = WorkerConfig {
        lease_duration: Duration::from_secs(options.lease_seconds),
        lease_interval: Duration::from_millis(options.lease_interval_ms),
        ..WorkerConfig::default()
    };
    tracing::info!(
        worker = %worker,
        stream = %p.names.stream,
        table = %p.names.table,
        "consume: worker {worker} reading {} into {} (dead letters: s3://{}/{})",
        p.names.stream, p.names.table, p.bucket, p.dead_letter_prefix
    );
    let reporter_cancel = tokio_util::sync::CancellationToken::new();
    let reporter = {
        let metrics = metrics.clone();
        let cloudwatch = (!options.no_metrics).then(|| aws.cloudwatch());
        let stack = p.names.stack.clone();
        let every = Duration::from_secs(options.report_every.max(1));
        let stop = reporter_cancel.clone();
        tokio::spawn(async move {
            metrics::report_loop(&metrics, cloudwatch, &stack, every, stop).await;
        })
    };
    if let Some(idle) = options.exit_when_idle {
        consumer::idle::stop_when_idle(&ctx, &config, Duration::from_secs(idle), cancel.clone());
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
        let shutdown_ms = at.elapsed().as_millis() as u64;
        tracing::info!(
            shutdown_ms,
            "consume: shut down in {shutdown_ms} ms (batches stored, checkpoints written, leases released)"
        );
    }
    reporter_cancel.cancel();
    let _ = reporter.await;
    if let Err(e) = &result {
        tracing::error!(worker = %worker, error = %e, "the processor stopped");
    }
    // The log lines go last, so that the calls counted include theirs.
    let log_lines = shipper.flush_and_stop().await;
    let snapshot = metrics.snapshot();
    let calls = call_stats();
    result.map_err(|e| AppError::step("the processor stopped", e))?;
    Ok(ConsumeReport {
        worker,
        log_lines,
        metrics: snapshot,
        aws_calls: calls,
    })
}

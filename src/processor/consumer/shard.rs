//! Reads one leased shard: GetRecords within the per-shard limits, each
//! batch planned, stored by the sink and only then checkpointed. Expired
//! iterators are renewed from the last checkpoint; throttling backs off; a
//! shard read to its end is checkpointed as [`SHARD_END`] so its children
//! can start.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::types::ShardIteratorType;
use backon::BackoffBuilder;
use tokio_util::sync::CancellationToken;

use super::lease::{LeaseTable, SHARD_END};
use crate::aws::{AwsError, ResultExt, service_code};
use crate::processor::batch::{self, InRecord, ItemShape};
use crate::processor::metrics::ConsumerMetrics;
use crate::processor::sink::Sink;

/// Kinesis allows five GetRecords a second a shard: never call faster.
pub const MIN_CALL_INTERVAL: Duration = Duration::from_millis(200);

/// Records stored and checkpointed at once.
pub const STORE_SLICE: usize = 100;

/// What a shard reader shares with the others of its worker.
pub struct ReaderContext {
    pub kinesis: aws_sdk_kinesis::Client,
    pub stream: String,
    pub leases: LeaseTable,
    pub sink: Sink,
    pub shape: ItemShape,
    pub metrics: Arc<ConsumerMetrics>,
    /// Records a GetRecords call asks for.
    pub get_records: i32,
    /// Wait after an empty read (nothing new at the tip).
    pub idle_poll: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderEnd {
    /// Read to its end and checkpointed as such.
    ShardEnd,
    /// Cancelled: the last batch was stored and checkpointed.
    Stopped,
    /// Another worker owns the lease now.
    Lost,
}

/// An iterator just after `after` (a checkpoint), or at the shard's start
/// when there is none. Also what `status` and `down` use to see what is unread.
pub async fn iterator_after(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    after: Option<&str>,
) -> Result<Option<String>, AwsError> {
    let request = kinesis
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard);
    let request = match after {
        Some(seq) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(seq),
        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    let out = request
        .send()
        .await
        .aws(format!("getting an iterator for shard {shard} of {stream}"))?;
    Ok(out.shard_iterator().map(str::to_string))
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Delays between retries of a failed read or store: jittered, 250 ms
/// doubling to 10 s, never giving up (nothing is skipped; cancellation ends it).
fn retry_delays() -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Waits `delay`, or less when cancelled; true when cancelled.
async fn pause(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = cancel.cancelled() => true,
    }
}

/// Reads `shard` from after `checkpoint` (its start when None) until its
/// end, cancellation, or the loss of its lease.
pub async fn read(
    ctx: Arc<ReaderContext>,
    shard: String,
    checkpoint: Option<String>,
    cancel: CancellationToken,
) -> Result<ReaderEnd, AwsError> {
    let mut last = checkpoint;
    let mut errors = retry_delays();
    'iterators: loop {
        let mut next =
            match iterator_after(&ctx.kinesis, &ctx.stream, &shard, last.as_deref()).await {
                Ok(it) => it,
                Err(e) => {
                    eprintln!("consume: {e}; retrying");
                    if pause(errors.next().unwrap_or(MIN_CALL_INTERVAL), &cancel).await {
                        return Ok(ReaderEnd::Stopped);
                    }
                    continue;
                }
            };
        loop {
            if cancel.is_cancelled() {
                return Ok(ReaderEnd::Stopped);
            }
            let Some(it) = next.take() else {
                // The shard is closed and every record of it is stored.
                return Ok(if ctx.leases.checkpoint(&shard, SHARD_END).await? {
                    ctx.metrics.forget_shard(&shard);
                    ReaderEnd::ShardEnd
                } else {
                    ReaderEnd::Lost
                });
            };
            let called = tokio::time::Instant::now();
            // GetRecords changes nothing: on shutdown it is abandoned, not awaited.
            let call = ctx
                .kinesis
                .get_records()
                .shard_iterator(&it)
                .limit(ctx.get_records)
                .send();
            let answer = tokio::select! {
                answer = call => answer,
                _ = cancel.cancelled() => return Ok(ReaderEnd::Stopped),
            };
            let out = match answer {
                Ok(out) => out,
                Err(e) => {
                    ctx.metrics.at_tip(&shard, false);
                    let code = service_code(&e).map(str::to_string);
                    if code.as_deref() == Some("ExpiredIteratorException") {
                        // Iterators live five minutes: start again from the checkpoint.
                        continue 'iterators;
                    }
                    let e = AwsError::new(format!("reading shard {shard} of {}", ctx.stream), e);
                    if code.as_deref() != Some("ProvisionedThroughputExceededException") {
                        eprintln!("consume: {e}; retrying");
                    }
                    next = Some(it);
                    if pause(errors.next().unwrap_or(MIN_CALL_INTERVAL), &cancel).await {
                        return Ok(ReaderEnd::Stopped);
                    }
                    continue;
                }
            };
            next = out.next_shard_iterator().map(str::to_string);
            if let Some(behind) = out.millis_behind_latest() {
                ctx.metrics.behind(&shard, behind);
            }
            let records = out.records();
            ctx.metrics.at_tip(
                &shard,
                records.is_empty() && out.millis_behind_latest().unwrap_or(0) == 0,
            );
            // A GetRecords answer holds up to 10,000 records: stored and
            // checkpointed a slice at a time, memory stays bounded and a
            // shutdown waits for one slice, not for the whole answer.
            for slice in records.chunks(STORE_SLICE) {
                let received = std::time::Instant::now();
                let inputs: Vec<InRecord<'_>> = slice
                    .iter()
                    .map(|r| InRecord {
                        shard_id: &shard,
                        sequence_number: r.sequence_number(),
                        partition_key: r.partition_key().unwrap_or_default(),
                        data: r.data().as_ref(),
                    })
                    .collect();
                let plan = batch::plan(&inputs, &ctx.shape, now_s());
                drop(inputs);
                ctx.metrics
                    .records_in
                    .fetch_add(plan.records as u64, Relaxed);
                ctx.metrics
                    .user_records
                    .fetch_add(plan.user_records as u64, Relaxed);
                // Nothing is checkpointed before the sink has it all; a failed
                // store is retried as a whole (its writes are idempotent).
                let mut store_errors = retry_delays();
                while let Err(e) = ctx.sink.store(&plan).await {
                    ctx.metrics.at_tip(&shard, false);
                    ctx.metrics.store_retries.fetch_add(1, Relaxed);
                    eprintln!("consume: storing a batch of shard {shard} failed: {e}; retrying");
                    if pause(store_errors.next().unwrap_or(MIN_CALL_INTERVAL), &cancel).await {
                        return Ok(ReaderEnd::Stopped);
                    }
                }
                let sequence = slice
                    .last()
                    .expect("chunks are not empty")
                    .sequence_number()
                    .to_string();
                if !ctx.leases.checkpoint(&shard, &sequence).await? {
                    return Ok(ReaderEnd::Lost);
                }
                ctx.metrics.batch_stored(received.elapsed());
                last = Some(sequence);
                if cancel.is_cancelled() {
                    return Ok(ReaderEnd::Stopped);
                }
            }
            errors = retry_delays();
            let caught_up = records.is_empty() || out.millis_behind_latest() == Some(0);
            let wait = if caught_up && next.is_some() {
                ctx.idle_poll
            } else {
                MIN_CALL_INTERVAL.saturating_sub(called.elapsed())
            };
            if !wait.is_zero() && pause(wait, &cancel).await {
                return Ok(ReaderEnd::Stopped);
            }
        }
    }
}

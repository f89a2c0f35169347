//! Reads one leased shard: GetRecords within the per-shard limits, each
//! batch planned, stored by the sink and only then checkpointed. Expired
//! iterators are renewed from the last checkpoint; throttling backs off; a
//! shard read to its end, or gone past retention, is checkpointed as
//! [`SHARD_END`] so its children can start. Records DynamoDB refuses for
//! good become dead letters and the shard moves on; work retried longer
//! than the stall bound ([`STALL_AFTER`]) is reported, never silent.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use aws_sdk_kinesis::types::ShardIteratorType;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::idle::Settledness;
use super::lease::{LeaseTable, SHARD_END};
use crate::aws::{AwsError, ResultExt};
use crate::processor::read::batch::{self, InRecord};
use crate::processor::read::item::write_units;
use crate::processor::read::metrics::ConsumerMetrics;
use crate::processor::read::partial::{self, Commit};
use crate::processor::read::program::Program;
use crate::processor::read::sink::Sink;

/// Kinesis allows five GetRecords a second a shard, shared by everything
/// that reads it, and Firehose reads the same shards. A reader that is
/// behind calls at most every 400 ms (2.5 a second), leaving the rest.
pub const MIN_CALL_INTERVAL: Duration = Duration::from_millis(400);

/// A reader retrying the same work (a read, a store) this long is stalled,
/// by default: counted in the StalledShards metric (alarmed) and recorded
/// in its lease for `status`, with the last error.
pub const STALL_AFTER: Duration = Duration::from_secs(60);

/// Records stored at once, and the most a run's counts are committed for.
pub const STORE_SLICE: usize = 100;

/// A run of counts open this long is committed with the next slice (or
/// when the shard is caught up, or on stopping): a slow stream commits
/// about once a second per shard, not once a slice. `top` sees counts
/// that much later; the items themselves are stored slice by slice.
pub const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// What a shard reader shares with the others of its worker.
pub struct ReaderContext {
    pub kinesis: aws_sdk_kinesis::Client,
    pub stream: String,
    pub leases: LeaseTable,
    pub sink: Sink,
    /// The stack's transform, aggregates and item shape.
    pub program: std::sync::Arc<Program>,
    pub metrics: Arc<ConsumerMetrics>,
    /// Records a GetRecords call asks for.
    pub get_records: i32,
    /// Wait after an empty read (nothing new at the tip).
    pub idle_poll: Duration,
    /// Retrying the same work this long is a stall ([`STALL_AFTER`] by default).
    pub stall_after: Duration,
    /// How far the shards are read, for control (`--exit-when-idle`): apart
    /// from `metrics`, which are figures only.
    pub settled: Settledness,
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
/// when there is none; None for a shard read to its end ([`SHARD_END`] is
/// no sequence number: Kinesis refuses it). Also what `status` and `down`
/// use to see what is unread.
pub async fn iterator_after(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    after: Option<&str>,
) -> Result<Option<String>, AwsError> {
    if after == Some(SHARD_END) {
        return Ok(None);
    }
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
    super::lease::now_ms() as i64 / 1000
}

/// Delays between retries of a failed read or store: jittered, 250 ms
/// doubling to 10 s, never giving up (nothing is skipped; cancellation ends it).
fn retry_delays() -> backon::ExponentialBackoff {
    crate::aws::backoff(Duration::from_millis(250), Duration::from_secs(10), None)
}

/// Waits `delay`, or less when cancelled; true when cancelled.
async fn pause(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = cancel.cancelled() => true,
    }
}

/// How long to wait before the next GetRecords: the idle poll once the
/// reader is at the tip, else what is left of [`MIN_CALL_INTERVAL`]. At
/// the tip means Kinesis says 0 ms behind; an empty page that is still
/// behind (a gap in the shard, or a shard just after a reshard) is not.
pub fn next_read_wait(
    records: usize,
    millis_behind: Option<i64>,
    since_call: Duration,
    idle_poll: Duration,
) -> Duration {
    let at_tip = match millis_behind {
        Some(ms) => ms == 0,
        // An endpoint that does not say: an empty page is the tip.
        None => records == 0,
    };
    if at_tip {
        idle_poll.max(MIN_CALL_INTERVAL.saturating_sub(since_call))
    } else {
        MIN_CALL_INTERVAL.saturating_sub(since_call)
    }
}

/// Tracks how long a reader has been retrying the same work, and reports a
/// stall (metric, lease) once it passes the context's `stall_after`.
struct StallWatch {
    /// When the current run of failures began, and the same as Unix milliseconds.
    since: Option<(std::time::Instant, u64)>,
    reported: bool,
}

impl StallWatch {
    fn new() -> Self {
        Self {
            since: None,
            reported: false,
        }
    }

    async fn failed(&mut self, ctx: &ReaderContext, shard: &str, error: &str) {
        let (began, since_ms) = *self
            .since
            .get_or_insert_with(|| (std::time::Instant::now(), super::lease::now_ms()));
        if self.reported || began.elapsed() < ctx.stall_after {
            return;
        }
        self.reported = true;
        ctx.metrics.stalled(shard, true);
        error!(
            failing_s = began.elapsed().as_secs(),
            error, "shard is STALLED: the same work keeps failing"
        );
        if let Err(e) = ctx
            .leases
            .record_stall(shard, Some((since_ms, error)))
            .await
        {
            warn!(error = %e, "recording the stall in the lease failed");
        }
    }

    /// The work succeeded. A checkpoint clears the lease's record itself;
    /// `checkpointed` false clears it here.
    async fn recovered(&mut self, ctx: &ReaderContext, shard: &str, checkpointed: bool) {
        self.since = None;
        if !std::mem::take(&mut self.reported) {
            return;
        }
        ctx.metrics.stalled(shard, false);
        info!("shard moves again");
        if !checkpointed && let Err(e) = ctx.leases.record_stall(shard, None).await {
            warn!(error = %e, "clearing the stall from the lease failed");
        }
    }
}

/// Reads `shard` from after `checkpoint` (its start when None) until its
/// end, cancellation, or the loss of its lease. However it ends, the shard
/// stops counting in this process's lag and stall figures.
pub async fn read(
    ctx: Arc<ReaderContext>,
    shard: String,
    checkpoint: Option<String>,
    cancel: CancellationToken,
) -> Result<ReaderEnd, AwsError> {
    let end = read_until_end(&ctx, &shard, checkpoint, &cancel).await;
    ctx.metrics.forget_shard(&shard);
    ctx.settled.at_tip(&shard, false);
    end
}

/// Runs `work` until it succeeds, retrying with backoff (nothing is
/// skipped) and reporting a stall once it has failed for the stall bound;
/// None when cancelled first.
async fn until_done<T, E, F>(
    ctx: &ReaderContext,
    shard: &str,
    stall: &mut StallWatch,
    cancel: &CancellationToken,
    what: &str,
    mut work: impl FnMut() -> F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: std::future::Future<Output = Result<T, E>>,
{
    let mut delays = retry_delays();
    loop {
        match work().await {
            Ok(done) => return Some(done),
            Err(e) => {
                ctx.settled.at_tip(shard, false);
                ctx.metrics.store_retries.fetch_add(1, Relaxed);
                warn!(work = what, error = %e, "failed; retrying");
                stall.failed(ctx, shard, &e.to_string()).await;
                if pause(delays.next().unwrap_or(MIN_CALL_INTERVAL), cancel).await {
                    return None;
                }
            }
        }
    }
}

/// Whether `shard` is gone from `stream` (past retention): ListShards,
/// which just answered for the stream, no longer has it. Kinesis answers
/// ResourceNotFound for a missing stream too, which must not end a shard.
async fn shard_is_gone(ctx: &ReaderContext, shard: &str) -> Result<bool, AwsError> {
    let shards = super::list_shards(&ctx.kinesis, &ctx.stream).await?;
    Ok(!shards.iter().any(|s| s.shard_id() == shard))
}

async fn read_until_end(
    ctx: &ReaderContext,
    shard: &str,
    checkpoint: Option<String>,
    cancel: &CancellationToken,
) -> Result<ReaderEnd, AwsError> {
    let shard = shard.to_string();
    let mut last = checkpoint;
    let mut errors = retry_delays();
    let mut stall = StallWatch::new();
    // When a read last succeeded: while reads fail, the shard's lag grows from it.
    let mut last_read_ms = super::lease::now_ms() as i64;
    // Counts read since the checkpoint and not committed yet, and since when.
    let mut runs = partial::Runs::new(&shard);
    let mut run_since: Option<std::time::Instant> = None;
    // Stopping (cancelled) commits the open run first: its items are
    // stored, and a worker stopping between polls leaves nothing to read again.
    macro_rules! stopped {
        () => {{
            let closed = runs.close(&ctx.program, now_s());
            let end = commit_all(
                ctx,
                &shard,
                &mut stall,
                cancel,
                &mut last,
                closed.as_slice(),
            )
            .await;
            return Ok(match end {
                Some(false) => ReaderEnd::Lost,
                _ => ReaderEnd::Stopped,
            });
        }};
    }
    // Commits in order; a stop or the lease's loss ends the reader.
    macro_rules! commit_or_end {
        ($commits:expr) => {
            match commit_all(ctx, &shard, &mut stall, cancel, &mut last, $commits).await {
                None => stopped!(),
                Some(false) => return Ok(ReaderEnd::Lost),
                Some(true) => {}
            }
        };
    }
    'iterators: loop {
        let failure = match iterator_after(&ctx.kinesis, &ctx.stream, &shard, last.as_deref()).await
        {
            Ok(it) => Ok(it),
            Err(e) if e.is_not_found() => match shard_is_gone(ctx, &shard).await {
                Ok(true) => {
                    // Past retention after a reshard (the KCL treats it so):
                    // ended, so its children are read.
                    warn!(error = %e, "shard no longer exists; counting it as ended");
                    Ok(None)
                }
                Ok(false) => Err(e),
                Err(listing) => Err(listing),
            },
            Err(e) => Err(e),
        };
        let mut next = match failure {
            Ok(it) => it,
            Err(e) => {
                warn!(error = %e, "getting a shard iterator failed; retrying");
                ctx.metrics.pending(&shard, Some(last_read_ms));
                stall.failed(ctx, &shard, &e.to_string()).await;
                if pause(errors.next().unwrap_or(MIN_CALL_INTERVAL), cancel).await {
                    stopped!();
                }
                continue;
            }
        };
        loop {
            if cancel.is_cancelled() {
                stopped!();
            }
            let Some(it) = next.take() else {
                // The shard is closed and every record of it is stored: its
                // counts committed, then the end.
                commit_or_end!(runs.close(&ctx.program, now_s()).as_slice());
                let checkpointed = until_done(
                    ctx,
                    &shard,
                    &mut stall,
                    cancel,
                    "checkpointing the end",
                    || counted_checkpoint(ctx, &shard, SHARD_END),
                )
                .await;
                return Ok(match checkpointed {
                    None => ReaderEnd::Stopped,
                    Some(true) => ReaderEnd::ShardEnd,
                    Some(false) => ReaderEnd::Lost,
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
                _ = cancel.cancelled() => stopped!(),
            };
            let out = match answer {
                Ok(out) => out,
                Err(e) => {
                    ctx.settled.at_tip(&shard, false);
                    let service = e.as_service_error();
                    let throttled =
                        service.is_some_and(|s| s.is_provisioned_throughput_exceeded_exception());
                    if service.is_some_and(|s| s.is_expired_iterator_exception()) {
                        // Iterators live five minutes: start again from the
                        // checkpoint, the open run committed first, or its
                        // records would be read into it a second time.
                        commit_or_end!(runs.close(&ctx.program, now_s()).as_slice());
                        run_since = None;
                        continue 'iterators;
                    }
                    let e = AwsError::new(format!("reading shard {shard} of {}", ctx.stream), e);
                    // Throttling is expected (the reader paces itself into
                    // it, sharing the shard with Firehose); anything else is
                    // worth a line.
                    if !throttled {
                        warn!(error = %e, "reading the shard failed; retrying");
                    }
                    stall.failed(ctx, &shard, &e.to_string()).await;
                    ctx.metrics.pending(&shard, Some(last_read_ms));
                    next = Some(it);
                    if pause(errors.next().unwrap_or(MIN_CALL_INTERVAL), cancel).await {
                        stopped!();
                    }
                    continue;
                }
            };
            last_read_ms = super::lease::now_ms() as i64;
            ctx.metrics.pending(&shard, None);
            next = out.next_shard_iterator().map(str::to_string);
            if let Some(behind) = out.millis_behind_latest() {
                ctx.metrics.behind(&shard, behind);
            }
            let records = out.records();
            ctx.settled.at_tip(
                &shard,
                records.is_empty() && out.millis_behind_latest().unwrap_or(0) == 0,
            );
            if records.is_empty() {
                stall.recovered(ctx, &shard, false).await;
            }
            // A GetRecords answer holds up to 10,000 records: stored and
            // checkpointed a slice at a time, memory stays bounded and a
            // shutdown waits for one slice, not for the whole answer.
            for slice in records.chunks(STORE_SLICE) {
                let received = std::time::Instant::now();
                ctx.metrics.pending(
                    &shard,
                    slice[0]
                        .approximate_arrival_timestamp()
                        .and_then(|t| t.to_millis().ok()),
                );
                let inputs: Vec<InRecord<'_>> = slice
                    .iter()
                    .map(|r| InRecord {
                        shard_id: &shard,
                        sequence_number: r.sequence_number(),
                        partition_key: r.partition_key().unwrap_or_default(),
                        data: r.data().as_ref(),
                        arrival_s: r.approximate_arrival_timestamp().map(|t| t.secs()),
                    })
                    .collect();
                let plan = batch::plan(&inputs, &ctx.program, now_s());
                ctx.metrics
                    .records_in
                    .fetch_add(plan.records as u64, Relaxed);
                ctx.metrics
                    .user_records
                    .fetch_add(plan.user_records as u64, Relaxed);
                // Nothing is checkpointed before the sink has it all; a failed
                // store is retried as a whole (its writes are idempotent).
                let Some(stored) =
                    until_done(ctx, &shard, &mut stall, cancel, "storing a batch", || {
                        ctx.sink.store(&plan, &ctx.program)
                    })
                    .await
                else {
                    stopped!();
                };
                let rejected = &stored.rejected;
                ctx.metrics.stored(
                    slice.iter().filter_map(|r| {
                        r.approximate_arrival_timestamp()
                            .and_then(|t| t.to_millis().ok())
                    }),
                    super::lease::now_ms() as i64,
                );
                // What DynamoDB refuses for good is stored as dead letters
                // (retried on its own: the store is not run again).
                if !rejected.is_empty() {
                    let letters = batch::rejected_dead_letters(&inputs, &plan, rejected);
                    warn!(
                        dead_letters = letters.len(),
                        first_error = letters.first().map_or("", |l| l.error.as_str()),
                        "records DynamoDB refuses stored as dead letters"
                    );
                    if until_done(
                        ctx,
                        &shard,
                        &mut stall,
                        cancel,
                        "storing dead letters",
                        || ctx.sink.store_dead_letters(&letters),
                    )
                    .await
                    .is_none()
                    {
                        stopped!();
                    }
                    ctx.metrics
                        .dead_letters
                        .fetch_add(letters.len() as u64, Relaxed);
                }
                // The slice's counts join the open run; a run is committed
                // with its checkpoint when full, after COMMIT_EVERY, or on
                // stopping.
                let mut commits = runs.add(&inputs, &plan, &stored.counted, &ctx.program, now_s());
                drop(inputs);
                if commits.iter().any(|c| c.checkpoint.is_some()) {
                    run_since = None;
                }
                if runs.open_records() > 0 {
                    run_since.get_or_insert_with(std::time::Instant::now);
                }
                if runs.open_records() >= STORE_SLICE
                    || run_since.is_some_and(|t| t.elapsed() >= COMMIT_EVERY)
                    || cancel.is_cancelled()
                {
                    commits.extend(runs.close(&ctx.program, now_s()));
                    run_since = None;
                }
                commit_or_end!(&commits);
                ctx.metrics.pending(&shard, None);
                let checkpointed = commits.iter().any(|c| c.checkpoint.is_some());
                stall.recovered(ctx, &shard, checkpointed).await;
                ctx.metrics.batch_stored(received.elapsed());
                if cancel.is_cancelled() {
                    stopped!();
                }
            }
            errors = retry_delays();
            // Caught up, or open long enough: the open run is committed now,
            // not when the next record comes.
            if runs.open_records() > 0
                && (records.is_empty() || run_since.is_some_and(|t| t.elapsed() >= COMMIT_EVERY))
            {
                run_since = None;
                commit_or_end!(runs.close(&ctx.program, now_s()).as_slice());
            }
            let wait = if next.is_some() {
                next_read_wait(
                    records.len(),
                    out.millis_behind_latest(),
                    called.elapsed(),
                    ctx.idle_poll,
                )
            } else {
                Duration::ZERO
            };
            if !wait.is_zero() && pause(wait, cancel).await {
                stopped!();
            }
        }
    }
}

/// Commits `commits` in order, `last` following each checkpoint they move.
/// None when cancelled first; Some(false) when the lease is lost.
async fn commit_all(
    ctx: &ReaderContext,
    shard: &str,
    stall: &mut StallWatch,
    cancel: &CancellationToken,
    last: &mut Option<String>,
    commits: &[Commit],
) -> Option<bool> {
    for commit in commits {
        let expected = last.clone();
        let landed = until_done(ctx, shard, stall, cancel, "committing", || {
            committed(ctx, shard, expected.as_deref(), commit)
        })
        .await?;
        if !landed {
            return Some(false);
        }
        if let Some(sequence) = &commit.checkpoint {
            *last = Some(sequence.clone());
        }
    }
    Some(true)
}

/// One checkpoint attempt, its write unit counted: the lease item is well
/// under 1 KB, and DynamoDB charges a conditional write whose condition
/// fails as it charges one that succeeds.
async fn counted_checkpoint(
    ctx: &ReaderContext,
    shard: &str,
    sequence: &str,
) -> Result<bool, AwsError> {
    ctx.metrics.write_units_checkpoints.fetch_add(1, Relaxed);
    ctx.leases.checkpoint(shard, sequence).await
}

/// One commit attempt ([`LeaseTable::commit`]), its write units counted:
/// a transaction takes twice an item's units, and the lease's write is
/// charged whether or not its condition holds. A commit with no counts is
/// a plain conditional checkpoint.
async fn committed(
    ctx: &ReaderContext,
    shard: &str,
    expected: Option<&str>,
    commit: &Commit,
) -> Result<bool, AwsError> {
    if commit.puts.is_empty()
        && let Some(sequence) = &commit.checkpoint
    {
        ctx.metrics.write_units_checkpoints.fetch_add(1, Relaxed);
        return ctx.leases.advance(shard, expected, sequence).await;
    }
    ctx.metrics.write_units_checkpoints.fetch_add(2, Relaxed);
    let landed = ctx
        .leases
        .commit(
            shard,
            expected,
            commit.checkpoint.as_deref(),
            &ctx.sink.targets().aggregates_table,
            &commit.puts,
        )
        .await?;
    if landed {
        let units: u64 = commit.puts.iter().map(|p| 2 * write_units(p)).sum();
        ctx.metrics.write_units_aggregates.fetch_add(units, Relaxed);
        ctx.metrics
            .aggregate_items
            .fetch_add(commit.puts.len() as u64, Relaxed);
    }
    Ok(landed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(1);

    #[test]
    fn a_reader_behind_leaves_room_for_firehose() {
        // Right after a call that returned records and is behind: wait out
        // the rest of the interval, so at most 2.5 calls a second.
        let wait = next_read_wait(500, Some(30_000), Duration::from_millis(50), IDLE);
        assert_eq!(wait, Duration::from_millis(350));
        assert!(MIN_CALL_INTERVAL >= Duration::from_millis(400));
        // A slow store already took the interval: no more waiting.
        assert_eq!(
            next_read_wait(500, Some(30_000), Duration::from_secs(2), IDLE),
            Duration::ZERO
        );
    }

    #[test]
    fn an_empty_page_still_behind_is_not_the_tip() {
        // Kinesis can answer empty pages while records wait further on.
        let wait = next_read_wait(0, Some(86_000_000), Duration::from_millis(10), IDLE);
        assert_eq!(wait, Duration::from_millis(390));
        // At the tip, the idle poll.
        assert_eq!(
            next_read_wait(0, Some(0), Duration::from_millis(10), IDLE),
            IDLE
        );
        assert_eq!(
            next_read_wait(0, None, Duration::from_millis(10), IDLE),
            IDLE
        );
        // Records up to the tip: the idle poll too.
        assert_eq!(
            next_read_wait(20, Some(0), Duration::from_millis(10), IDLE),
            IDLE
        );
    }
}

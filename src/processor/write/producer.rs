//! Puts records into the stream: batches of at most 500 records and 5 MiB
//! (the PutRecords limits), sent when full or after a short linger; only the
//! entries that failed are retried, with jittered exponential backoff; a
//! bounded channel and a bounded number of calls in flight give
//! back-pressure instead of growing memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{error, warn};

use crate::aws::AwsError;
use crate::processor::Record;

/// PutRecords takes at most 500 entries and 5 MiB (data plus partition keys).
pub const MAX_BATCH_RECORDS: usize = 500;
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// One record takes at most 1 MiB (data plus partition key).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub stream: String,
    /// Records a call (1 to 500).
    pub batch_records: usize,
    /// How long a partial batch waits for more records.
    pub linger: Duration,
    /// PutRecords calls in flight at once.
    pub in_flight: usize,
    /// Attempts for an entry before it counts as failed.
    pub max_attempts: usize,
}

impl ProducerConfig {
    pub fn new(stream: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            batch_records: MAX_BATCH_RECORDS,
            linger: Duration::from_millis(50),
            in_flight: 4,
            max_attempts: 10,
        }
    }
}

#[derive(Debug, Default)]
pub struct ProducerStats {
    /// Records the stream accepted.
    pub sent: AtomicU64,
    /// Entry retries (a record retried twice counts twice).
    pub retried: AtomicU64,
    /// Records given up on after `max_attempts`, or too large to send.
    pub failed: AtomicU64,
    /// PutRecords calls made.
    pub calls: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProducerSnapshot {
    pub sent: u64,
    pub retried: u64,
    pub failed: u64,
    pub calls: u64,
}

impl ProducerStats {
    pub fn snapshot(&self) -> ProducerSnapshot {
        ProducerSnapshot {
            sent: self.sent.load(Relaxed),
            retried: self.retried.load(Relaxed),
            failed: self.failed.load(Relaxed),
            calls: self.calls.load(Relaxed),
        }
    }
}

impl ProducerSnapshot {
    pub fn line(&self) -> String {
        format!(
            "produce: {} sent, {} retried, {} failed, {} PutRecords calls",
            self.sent, self.retried, self.failed, self.calls
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// The channel a source writes into; its capacity bounds what is buffered.
pub fn channel(config: &ProducerConfig) -> (mpsc::Sender<Record>, mpsc::Receiver<Record>) {
    mpsc::channel(config.batch_records * 2)
}

fn record_size(r: &Record) -> usize {
    r.data.len() + r.partition_key.len()
}

/// Sends everything the channel yields until every sender is dropped, then
/// flushes. A call that fails as a whole (after the SDK's own retries) is
/// retried like failed entries; only a non-retryable error (the stream does
/// not exist, access denied) stops the producer.
pub async fn run(
    kinesis: aws_sdk_kinesis::Client,
    config: ProducerConfig,
    mut rx: mpsc::Receiver<Record>,
    stats: Arc<ProducerStats>,
) -> Result<(), ProducerError> {
    let config = Arc::new(config);
    let mut tasks: JoinSet<Result<(), ProducerError>> = JoinSet::new();
    let limit = config.batch_records.clamp(1, MAX_BATCH_RECORDS);
    loop {
        let Some(first) = rx.recv().await else { break };
        let mut batch = Vec::with_capacity(limit);
        let mut bytes = 0;
        let push = |r: Record, batch: &mut Vec<Record>, bytes: &mut usize| {
            if record_size(&r) > MAX_RECORD_BYTES {
                // Kinesis would refuse it on every attempt.
                stats.failed.fetch_add(1, Relaxed);
                warn!(
                    bytes = record_size(&r),
                    partition_key = %r.partition_key,
                    "dropped a record over Kinesis's 1 MiB limit"
                );
                return;
            }
            *bytes += record_size(&r);
            batch.push(r);
        };
        push(first, &mut batch, &mut bytes);
        let deadline = tokio::time::Instant::now() + config.linger;
        while batch.len() < limit {
            let next = tokio::select! {
                r = rx.recv() => r,
                _ = tokio::time::sleep_until(deadline) => None,
            };
            let Some(r) = next else { break };
            if bytes + record_size(&r) > MAX_BATCH_BYTES {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(limit));
                bytes = 0;
                send_when_free(&mut tasks, &kinesis, &config, &stats, full).await?;
            }
            push(r, &mut batch, &mut bytes);
        }
        if !batch.is_empty() {
            send_when_free(&mut tasks, &kinesis, &config, &stats, batch).await?;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a producer task does not panic")?;
    }
    Ok(())
}

async fn send_when_free(
    tasks: &mut JoinSet<Result<(), ProducerError>>,
    kinesis: &aws_sdk_kinesis::Client,
    config: &Arc<ProducerConfig>,
    stats: &Arc<ProducerStats>,
    batch: Vec<Record>,
) -> Result<(), ProducerError> {
    while tasks.len() >= config.in_flight.max(1) {
        if let Some(done) = tasks.join_next().await {
            done.expect("a producer task does not panic")?;
        }
    }
    let (kinesis, config, stats) = (kinesis.clone(), config.clone(), stats.clone());
    tasks.spawn(async move { put_batch(&kinesis, &config, &stats, batch).await });
    Ok(())
}

async fn put_batch(
    kinesis: &aws_sdk_kinesis::Client,
    config: &ProducerConfig,
    stats: &ProducerStats,
    batch: Vec<Record>,
) -> Result<(), ProducerError> {
    let mut pending = batch;
    let mut delays = crate::aws::backoff(
        Duration::from_millis(100),
        Duration::from_secs(5),
        Some(config.max_attempts.saturating_sub(1)),
    );
    loop {
        let entries: Vec<PutRecordsRequestEntry> = pending
            .iter()
            .map(|r| {
                PutRecordsRequestEntry::builder()
                    .partition_key(&r.partition_key)
                    .data(Blob::new(r.data.clone()))
                    .build()
                    .expect("data and partition key are set")
            })
            .collect();
        stats.calls.fetch_add(1, Relaxed);
        let failed: Vec<Record> = match kinesis
            .put_records()
            .stream_name(&config.stream)
            .set_records(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                // Entries answer in request order; those with an error code failed.
                let failed: Vec<Record> = out
                    .records()
                    .iter()
                    .zip(pending)
                    .filter(|(result, _)| result.error_code().is_some())
                    .map(|(_, record)| record)
                    .collect();
                let accepted = out.records().len() - failed.len();
                stats.sent.fetch_add(accepted as u64, Relaxed);
                failed
            }
            Err(e) => {
                // A missing stream, a refused request or key: the same
                // call fails the same way again (src/aws decides which).
                if !crate::aws::is_retryable(&e) {
                    stats.failed.fetch_add(pending.len() as u64, Relaxed);
                    return Err(AwsError::new(
                        format!("putting records into {}", config.stream),
                        e,
                    )
                    .into());
                }
                pending
            }
        };
        if failed.is_empty() {
            return Ok(());
        }
        match delays.next() {
            Some(delay) => {
                stats.retried.fetch_add(failed.len() as u64, Relaxed);
                tokio::time::sleep(delay).await;
                pending = failed;
            }
            None => {
                stats.failed.fetch_add(failed.len() as u64, Relaxed);
                error!(
                    stream = %config.stream,
                    records = failed.len(),
                    attempts = config.max_attempts,
                    "gave up on records after the last attempt"
                );
                return Ok(());
            }
        }
    }
}

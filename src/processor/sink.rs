//! Stores a planned batch: dead letters to S3, then tweets and aggregate
//! memberships to DynamoDB with BatchWriteItem (at most 25 items a call,
//! several calls in flight), retrying UnprocessedItems with jittered
//! backoff. Every write is idempotent (see [`super::batch`]), so a batch
//! stored twice leaves the same data; the consumer checkpoints only after
//! `store` returns Ok.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_s3::primitives::ByteStream;
use backon::BackoffBuilder;
use serde_json::{Map, Value};
use tokio::task::JoinSet;

use super::batch::BatchPlan;
use super::metrics::ConsumerMetrics;
use crate::aws::{AwsError, ResultExt};

/// Where a batch goes.
#[derive(Debug, Clone)]
pub struct SinkTargets {
    pub tweets_table: String,
    pub aggregates_table: String,
    pub bucket: String,
    pub dead_letter_prefix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("an item of tweet {id} cannot be written as DynamoDB attributes: {message}")]
    Item { id: String, message: String },
    #[error("{table}: {left} item(s) still unprocessed after {attempts} attempts")]
    Unprocessed {
        table: String,
        left: usize,
        attempts: usize,
    },
    #[error("a write task failed: {0}")]
    Task(String),
}

#[derive(Clone)]
pub struct Sink {
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    targets: Arc<SinkTargets>,
    /// Items a BatchWriteItem call (DynamoDB takes at most 25).
    write_items: usize,
    /// BatchWriteItem calls in flight at once.
    concurrency: usize,
    metrics: Arc<ConsumerMetrics>,
}

/// Attempts at a chunk's UnprocessedItems before the batch fails (it is
/// then retried whole by the consumer, which has not checkpointed).
const UNPROCESSED_ATTEMPTS: usize = 8;

impl Sink {
    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        s3: aws_sdk_s3::Client,
        targets: SinkTargets,
        write_items: usize,
        metrics: Arc<ConsumerMetrics>,
    ) -> Self {
        Self {
            dynamodb,
            s3,
            targets: Arc::new(targets),
            write_items: write_items.clamp(1, 25),
            concurrency: 4,
            metrics,
        }
    }

    pub fn targets(&self) -> &SinkTargets {
        &self.targets
    }

    /// Stores everything the plan holds; Ok means all of it is durable.
    pub async fn store(&self, plan: &BatchPlan) -> Result<(), SinkError> {
        self.store_dead_letters(plan).await?;
        let tweets = to_requests(plan.tweets.iter().map(|(id, item)| (id.as_str(), item)))?;
        let aggregates = to_requests(
            plan.aggregates
                .iter()
                .map(|((_, sk), item)| (sk.as_str(), item)),
        )?;
        let mut chunks: Vec<(String, Vec<WriteRequest>)> = Vec::new();
        for (table, requests) in [
            (&self.targets.tweets_table, tweets),
            (&self.targets.aggregates_table, aggregates),
        ] {
            for chunk in requests.chunks(self.write_items) {
                chunks.push((table.clone(), chunk.to_vec()));
            }
        }
        let mut tasks = JoinSet::new();
        let mut pending = chunks.into_iter();
        let mut result = Ok(());
        loop {
            while tasks.len() < self.concurrency {
                let Some((table, chunk)) = pending.next() else {
                    break;
                };
                let sink = self.clone();
                tasks.spawn(async move { sink.write_chunk(table, chunk).await });
            }
            let Some(done) = tasks.join_next().await else {
                break;
            };
            let outcome = done
                .map_err(|e| SinkError::Task(e.to_string()))
                .and_then(|r| r);
            if let Err(e) = outcome
                && result.is_ok()
            {
                result = Err(e);
            }
        }
        result?;
        self.metrics
            .tweets_stored
            .fetch_add(plan.tweets.len() as u64, Relaxed);
        self.metrics
            .aggregate_items
            .fetch_add(plan.aggregates.len() as u64, Relaxed);
        self.metrics
            .dead_letters
            .fetch_add(plan.dead_letters.len() as u64, Relaxed);
        Ok(())
    }

    async fn store_dead_letters(&self, plan: &BatchPlan) -> Result<(), SinkError> {
        let mut tasks = JoinSet::new();
        for dead in &plan.dead_letters {
            let key = dead.key(&self.targets.dead_letter_prefix);
            let body = serde_json::to_vec(dead).expect("a dead letter serializes");
            let s3 = self.s3.clone();
            let bucket = self.targets.bucket.clone();
            tasks.spawn(async move {
                s3.put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .content_type("application/json")
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .aws(format!("storing dead letter s3://{bucket}/{key}"))
                    .map(|_| ())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(|e| SinkError::Task(e.to_string()))??;
        }
        Ok(())
    }

    /// One BatchWriteItem and its UnprocessedItems, retried with backoff.
    async fn write_chunk(&self, table: String, chunk: Vec<WriteRequest>) -> Result<(), SinkError> {
        let mut requests = chunk;
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .with_max_times(UNPROCESSED_ATTEMPTS)
            .build();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let count = requests.len();
            let out = self
                .dynamodb
                .batch_write_item()
                .request_items(&table, requests)
                .send()
                .await
                .aws(format!("writing {count} item(s) to table {table}"))?;
            self.metrics.write_calls.fetch_add(1, Relaxed);
            let left: Vec<WriteRequest> = out
                .unprocessed_items()
                .and_then(|u| u.get(&table))
                .cloned()
                .unwrap_or_default();
            self.metrics
                .items_written
                .fetch_add((count - left.len()) as u64, Relaxed);
            if left.is_empty() {
                return Ok(());
            }
            self.metrics.unprocessed_retries.fetch_add(1, Relaxed);
            let Some(delay) = delays.next() else {
                return Err(SinkError::Unprocessed {
                    table,
                    left: left.len(),
                    attempts,
                });
            };
            tokio::time::sleep(delay).await;
            requests = left;
        }
    }
}

fn to_requests<'a>(
    items: impl Iterator<Item = (&'a str, &'a Map<String, Value>)>,
) -> Result<Vec<WriteRequest>, SinkError> {
    items
        .map(|(id, item)| {
            let attributes: HashMap<String, AttributeValue> =
                serde_dynamo::to_item(item).map_err(|e| SinkError::Item {
                    id: id.to_string(),
                    message: e.to_string(),
                })?;
            let put = PutRequest::builder()
                .set_item(Some(attributes))
                .build()
                .expect("an item is set");
            Ok(WriteRequest::builder().put_request(put).build())
        })
        .collect()
}

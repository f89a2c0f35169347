//! Stores a planned batch: dead letters to S3, then tweets and aggregate
//! memberships to DynamoDB with BatchWriteItem (at most 25 items a call,
//! several calls in flight), retrying UnprocessedItems with jittered
//! backoff. Every write is idempotent (see [`super::batch`]), so a batch
//! stored twice leaves the same data; the consumer checkpoints only after
//! `store` returns Ok.
//!
//! A call DynamoDB refuses because of an item (a ValidationException for an
//! item or key over its limits, an item collection too large, an item that
//! is not valid attributes) fails the whole call, whatever the other 24
//! items are. The call is split in halves until the refused items stand
//! alone; those are returned as [`Rejected`] (the consumer makes their
//! records dead letters) and everything else is stored. Any other failure
//! fails the store, to be retried whole and, if it lasts, reported as a
//! stall: throttling, 5xx and timeouts, but also errors about the caller
//! rather than an item (access denied, expired credentials, a clock skew),
//! which would otherwise turn every record into a dead letter. For the same
//! reason a store whose every item (more than one) is refused fails too:
//! that is a table or schema problem, not bad records.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use aws_sdk_s3::primitives::ByteStream;
use tokio::task::JoinSet;

use super::batch::{BatchPlan, DeadLetter, ItemKey, Rejected};
use super::item::{Item, write_units};
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
    #[error("a write task failed: {0}")]
    Task(String),
    #[error(
        "DynamoDB refused every one of the {count} item(s) of a batch ({table}: {code}: {message}): a table or schema problem, not bad records"
    )]
    AllRefused {
        count: usize,
        table: String,
        code: String,
        message: String,
    },
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

/// Error codes DynamoDB gives for an item of a write, not for the caller:
/// the only ones that make a record a dead letter.
const ITEM_ERRORS: [&str; 3] = [
    "ValidationException",
    "ItemCollectionSizeLimitExceededException",
    "SerializationError",
];

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

    /// Stores everything the plan holds; Ok means all of it is durable but
    /// the items returned as rejected, which DynamoDB refuses for good.
    pub async fn store(&self, plan: &BatchPlan) -> Result<Vec<Rejected>, SinkError> {
        self.store_dead_letters(&plan.dead_letters).await?;
        let mut rejected = Vec::new();
        let tweets = to_requests(
            plan.items
                .iter()
                .map(|(key, item)| (ItemKey::Item(key.clone()), item)),
        );
        let aggregates = to_requests(
            plan.aggregates
                .iter()
                .map(|((pk, sk), item)| (ItemKey::Aggregate(pk.clone(), sk.clone()), item)),
        );
        let mut chunks: Vec<(String, Vec<(ItemKey, WriteRequest)>)> = Vec::new();
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
            match done
                .map_err(|e| SinkError::Task(e.to_string()))
                .and_then(|r| r)
            {
                Ok(refused) => rejected.extend(refused),
                Err(e) if result.is_ok() => result = Err(e),
                Err(_) => {}
            }
        }
        result?;
        let written = plan.items.len() + plan.aggregates.len();
        if written > 1
            && rejected.len() == written
            && let Some(first) = rejected.first()
        {
            return Err(SinkError::AllRefused {
                count: written,
                table: first.table.clone(),
                code: first.code.clone(),
                message: first.message.clone(),
            });
        }
        // Counted once the whole store succeeded: a store retried after a
        // transient failure counts nothing twice.
        self.metrics
            .dead_letters
            .fetch_add(plan.dead_letters.len() as u64, Relaxed);
        let refused_tweets = rejected
            .iter()
            .filter(|r| matches!(r.key, ItemKey::Item(_)))
            .count();
        self.metrics.tweets_stored.fetch_add(
            plan.items.len().saturating_sub(refused_tweets) as u64,
            Relaxed,
        );
        let refused_aggregates = rejected.len() - refused_tweets;
        self.metrics.aggregate_items.fetch_add(
            plan.aggregates.len().saturating_sub(refused_aggregates) as u64,
            Relaxed,
        );
        Ok(rejected)
    }

    /// Stores dead letters in S3 (one object each, idempotent keys); the
    /// caller counts them once they are all stored.
    pub async fn store_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), SinkError> {
        let mut tasks = JoinSet::new();
        for dead in letters {
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

    /// One chunk of writes: a BatchWriteItem and its UnprocessedItems,
    /// retried with backoff; refused for good, split until the refused
    /// items stand alone (they are returned, the rest is stored).
    async fn write_chunk(
        &self,
        table: String,
        chunk: Vec<(ItemKey, WriteRequest)>,
    ) -> Result<Vec<Rejected>, SinkError> {
        let mut rejected = Vec::new();
        // Halves still to write; a refused call puts its two halves here.
        let mut work = vec![chunk];
        while let Some(part) = work.pop() {
            match self.write_part(&table, &part).await {
                Ok(()) => {}
                Err(e) if refuses_an_item(&e) && part.len() > 1 => {
                    let mut first = part;
                    let second = first.split_off(first.len() / 2);
                    work.push(second);
                    work.push(first);
                }
                Err(e) if refuses_an_item(&e) => {
                    let (key, _) = part.into_iter().next().expect("a part is not empty");
                    rejected.push(Rejected {
                        key,
                        table: table.clone(),
                        code: e.code.clone().unwrap_or_else(|| "refused".into()),
                        message: e.detail.clone(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(rejected)
    }

    /// One BatchWriteItem and its UnprocessedItems, retried with backoff.
    async fn write_part(
        &self,
        table: &str,
        part: &[(ItemKey, WriteRequest)],
    ) -> Result<(), AwsError> {
        let mut requests: Vec<WriteRequest> = part.iter().map(|(_, r)| r.clone()).collect();
        // Write units are counted for the items DynamoDB processed.
        let units = match part.first() {
            Some((ItemKey::Item(_), _)) => &self.metrics.write_units_items,
            _ => &self.metrics.write_units_aggregates,
        };
        let mut delays = crate::aws::backoff(
            Duration::from_millis(50),
            Duration::from_secs(5),
            Some(UNPROCESSED_ATTEMPTS),
        );
        let mut attempts = 0;
        loop {
            attempts += 1;
            let count = requests.len();
            let sent_units = request_units(&requests);
            let out = self
                .dynamodb
                .batch_write_item()
                .request_items(table, requests)
                .send()
                .await
                .aws(format!("writing {count} item(s) to table {table}"))?;
            self.metrics.write_calls.fetch_add(1, Relaxed);
            let left: Vec<WriteRequest> = out
                .unprocessed_items()
                .and_then(|u| u.get(table))
                .cloned()
                .unwrap_or_default();
            self.metrics
                .items_written
                .fetch_add((count - left.len()) as u64, Relaxed);
            units.fetch_add(sent_units.saturating_sub(request_units(&left)), Relaxed);
            if left.is_empty() {
                return Ok(());
            }
            self.metrics.unprocessed_retries.fetch_add(1, Relaxed);
            let Some(delay) = delays.next() else {
                return Err(AwsError {
                    action: format!("writing {count} item(s) to table {table}"),
                    code: None,
                    detail: format!(
                        "{} item(s) still unprocessed after {attempts} attempts",
                        left.len()
                    ),
                    class: crate::aws::ErrorClass::Transient,
                });
            };
            tokio::time::sleep(delay).await;
            requests = left;
        }
    }
}

/// Whether DynamoDB refused the call because of an item in it.
/// The write units of the puts among `requests`.
fn request_units(requests: &[WriteRequest]) -> u64 {
    requests
        .iter()
        .filter_map(|r| r.put_request())
        .map(|put| write_units(put.item()))
        .sum()
}

fn refuses_an_item(e: &AwsError) -> bool {
    e.is_permanent() && e.code.as_deref().is_some_and(|c| ITEM_ERRORS.contains(&c))
}

/// Put requests of the items.
fn to_requests<'a>(
    items: impl Iterator<Item = (ItemKey, &'a Item)>,
) -> Vec<(ItemKey, WriteRequest)> {
    items
        .map(|(key, item)| {
            let put = PutRequest::builder()
                .set_item(Some(item.clone()))
                .build()
                .expect("an item is set");
            (key, WriteRequest::builder().put_request(put).build())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::class_of;

    fn error(code: &str, status: u16) -> AwsError {
        AwsError {
            action: "writing".into(),
            code: Some(code.into()),
            detail: format!("{code}: ..."),
            class: class_of(Some(code), status, false),
        }
    }

    #[test]
    fn only_errors_about_an_item_make_dead_letters() {
        // An item or key over DynamoDB's limits: the record is at fault.
        assert!(refuses_an_item(&error("ValidationException", 400)));
        assert!(refuses_an_item(&error(
            "ItemCollectionSizeLimitExceededException",
            400
        )));
        // The caller is at fault (a policy still propagating, expired
        // credentials, a skewed clock): retried and reported as a stall,
        // never every record of the stream dead-lettered.
        for code in [
            "AccessDeniedException",
            "UnrecognizedClientException",
            "ExpiredTokenException",
            "InvalidSignatureException",
        ] {
            assert!(!refuses_an_item(&error(code, 400)), "{code}");
        }
        assert!(!refuses_an_item(&error(
            "ProvisionedThroughputExceededException",
            400
        )));
        assert!(!refuses_an_item(&error("ResourceNotFoundException", 400)));
    }
}

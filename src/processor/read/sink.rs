//! Stores a planned batch: dead letters to S3, then each item to DynamoDB
//! with a conditional PutItem (several in flight). Every write is
//! idempotent (see [`super::batch`]), so a batch stored twice leaves the
//! same data; the consumer commits the slice's counts and checkpoint only
//! after `store` returns Ok.
//!
//! The write also decides which occurrence of a key counts in the
//! aggregates. The item is put whole, holding `streamstack_counted_in =
//! :pos`, `:pos` being the key's first position in the slice, on condition
//! `attribute_not_exists(streamstack_counted_in) OR streamstack_counted_in
//! = :pos`. When the condition fails, DynamoDB returns the item as it is
//! (ReturnValuesOnConditionCheckFailure ALL_OLD) and the item is put again
//! holding the position it already held, on condition that it still holds
//! it. So the position is set once, atomically, by the first write of the
//! key ever, and never changes: whichever read of whichever slice holds
//! that position counts the key, and every other occurrence (a duplicate
//! in the stream, a replay) does not. One write a new key, two for a
//! duplicate.
//!
//! Why a PutItem and not an UpdateItem with `if_not_exists`, which says the
//! same in one call: the update must list every field (and REMOVE the ones
//! the event lacks) in an expression that DynamoDB, and more so the
//! emulator, parses on every call. On moto the update of a tweet cost 22 ms
//! of the server's CPU, the PutItem 4 ms (2026-12-03), and the emulator's
//! item writes bound the whole local pipeline.
//!
//! A write DynamoDB refuses because of its item (a ValidationException for
//! an item or key over its limits, an item collection too large, an item
//! that is not valid attributes) is returned as [`Rejected`] (the consumer
//! makes its record a dead letter) and everything else is stored. Any
//! other failure fails the store, to be retried whole and, if it lasts,
//! reported as a stall: throttling, 5xx and timeouts, but also errors about
//! the caller rather than an item (access denied, expired credentials, a
//! clock skew), which would otherwise turn every record into a dead
//! letter. For the same reason a store whose every item (more than one) is
//! refused fails too: that is a table or schema problem, not bad records.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_s3::primitives::ByteStream;
use tokio::task::JoinSet;

use super::batch::{BatchPlan, DeadLetter, Rejected};
use super::item::{Item, write_units};
use super::metrics::ConsumerMetrics;
use super::program::Program;
use crate::aws::{AwsError, ErrorClass, ResultExt};
use crate::names::attribute::COUNTED_IN;

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

/// What a store did.
#[derive(Debug, Default)]
pub struct Stored {
    /// Items DynamoDB refuses for good.
    pub rejected: Vec<Rejected>,
    /// Key -> the position that counts it (the one its item holds).
    pub counted: HashMap<String, String>,
}

#[derive(Clone)]
pub struct Sink {
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    targets: Arc<SinkTargets>,
    /// Writes in flight at once.
    concurrency: usize,
    metrics: Arc<ConsumerMetrics>,
}

/// Error codes DynamoDB gives for an item of a write, not for the caller:
/// the only ones that make a record a dead letter.
const ITEM_ERRORS: [&str; 3] = [
    "ValidationException",
    "ItemCollectionSizeLimitExceededException",
    "SerializationError",
];

/// Conditional puts of one item before the store fails (to be retried
/// whole): the second always holds, unless the item is deleted between the
/// two, so a third is already the unexpected case.
const WRITE_ATTEMPTS: usize = 4;

impl Sink {
    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        s3: aws_sdk_s3::Client,
        targets: SinkTargets,
        concurrency: usize,
        metrics: Arc<ConsumerMetrics>,
    ) -> Self {
        Self {
            dynamodb,
            s3,
            targets: Arc::new(targets),
            concurrency: concurrency.max(1),
            metrics,
        }
    }

    pub fn targets(&self) -> &SinkTargets {
        &self.targets
    }

    /// Stores everything the plan holds; Ok means all of it is durable but
    /// the items returned as rejected, which DynamoDB refuses for good.
    pub async fn store(&self, plan: &BatchPlan, program: &Program) -> Result<Stored, SinkError> {
        self.store_dead_letters(&plan.dead_letters).await?;
        let key_attribute: Arc<str> = program.shape.partition_key.as_str().into();
        let mut tasks = JoinSet::new();
        let mut pending = plan.items.iter().map(|(key, item)| {
            let position = plan
                .occurrences
                .get(key)
                .and_then(|o| o.first())
                .map(|o| o.position.clone())
                .unwrap_or_default();
            (key.clone(), item.clone(), position)
        });
        let mut stored = Stored::default();
        let mut result = Ok(());
        loop {
            while tasks.len() < self.concurrency {
                let Some((key, item, position)) = pending.next() else {
                    break;
                };
                let (sink, key_attribute) = (self.clone(), key_attribute.clone());
                tasks.spawn(async move {
                    let written = sink.write_item(&key_attribute, &key, item, &position).await;
                    (key, position, written)
                });
            }
            let Some(done) = tasks.join_next().await else {
                break;
            };
            match done.map_err(|e| SinkError::Task(e.to_string())) {
                Ok((key, position, Ok(held))) => {
                    stored.counted.insert(key, held.unwrap_or(position));
                }
                Ok((key, _, Err(e))) if refuses_an_item(&e) => stored.rejected.push(Rejected {
                    key,
                    table: self.targets.tweets_table.clone(),
                    code: e.code.clone().unwrap_or_else(|| "refused".into()),
                    message: e.detail.clone(),
                }),
                Ok((_, _, Err(e))) if result.is_ok() => result = Err(e.into()),
                Err(e) if result.is_ok() => result = Err(e),
                _ => {}
            }
        }
        result?;
        let written = plan.items.len();
        if written > 1
            && stored.rejected.len() == written
            && let Some(first) = stored.rejected.first()
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
        self.metrics
            .tweets_stored
            .fetch_add((written - stored.rejected.len()) as u64, Relaxed);
        Ok(stored)
    }

    /// Writes one item (see the module's notes); the position the item
    /// held before, when it held another than `position`.
    async fn write_item(
        &self,
        key_attribute: &str,
        key: &str,
        mut item: Item,
        position: &str,
    ) -> Result<Option<String>, AwsError> {
        let table = &self.targets.tweets_table;
        item.entry(key_attribute.to_string())
            .or_insert_with(|| AttributeValue::S(key.to_string()));
        // The position this write claims: the slice's own, until the item
        // is seen to hold another.
        let mut claim = position.to_string();
        for _ in 0..WRITE_ATTEMPTS {
            let mut put = item.clone();
            put.insert(COUNTED_IN.to_string(), AttributeValue::S(claim.clone()));
            let new_units = write_units(&put);
            let condition = if claim == position {
                "attribute_not_exists(#counted) OR #counted = :position"
            } else {
                "#counted = :position"
            };
            let sent = self
                .dynamodb
                .put_item()
                .table_name(table)
                .set_item(Some(put))
                .condition_expression(condition)
                .expression_attribute_names("#counted", COUNTED_IN)
                .expression_attribute_values(":position", AttributeValue::S(claim.clone()))
                .return_values(ReturnValue::AllOld)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            self.metrics.write_calls.fetch_add(1, Relaxed);
            let old = match sent {
                Ok(out) => {
                    self.metrics.items_written.fetch_add(1, Relaxed);
                    // DynamoDB charges a put for the larger of the item before and after.
                    let old_units = out.attributes().map_or(0, write_units);
                    self.metrics
                        .write_units_items
                        .fetch_add(new_units.max(old_units), Relaxed);
                    return Ok((claim != position).then_some(claim));
                }
                Err(e) => match e.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                        failed.item().cloned()
                    }
                    _ => return Err(e).aws(format!("writing item {key} to table {table}")),
                },
            };
            // A failed condition is charged for the item as it is (1 unit at least).
            self.metrics
                .write_units_items
                .fetch_add(old.as_ref().map_or(1, write_units), Relaxed);
            claim = old
                .as_ref()
                .and_then(|old| old.get(COUNTED_IN))
                .and_then(|p| p.as_s().ok())
                .cloned()
                .unwrap_or_else(|| position.to_string());
        }
        Err(AwsError {
            action: format!("writing item {key} to table {table}"),
            code: None,
            detail: format!(
                "the item's counted position changed under {WRITE_ATTEMPTS} conditional writes in a row"
            ),
            class: ErrorClass::Transient,
        })
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
}

fn refuses_an_item(e: &AwsError) -> bool {
    e.is_permanent() && e.code.as_deref().is_some_and(|c| ITEM_ERRORS.contains(&c))
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

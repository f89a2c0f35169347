//! Stores a planned batch: dead letters to S3, then each item to DynamoDB
//! with an UpdateItem (several in flight). Every write is idempotent (see
//! [`super::batch`]), so a batch stored twice leaves the same data; the
//! consumer commits the slice's counts and checkpoint only after `store`
//! returns Ok.
//!
//! The write also decides which occurrence of a key counts in the
//! aggregates. It sets the item's fields (and removes the stack's
//! attributes the event lacks, so the item is replaced whole) and
//! `streamstack_counted_in = if_not_exists(streamstack_counted_in, :pos)`,
//! `:pos` being the key's first position in the slice, and asks for the
//! item as it was (ReturnValues ALL_OLD). The position the item holds
//! afterwards counts the key: set once by the first write of the key ever,
//! it never changes, so whichever read of whichever slice holds that
//! position counts the key, and every other occurrence (a duplicate in the
//! stream, a replay) does not. One write a key, as before.
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

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_s3::primitives::ByteStream;
use tokio::task::JoinSet;

use super::batch::{BatchPlan, DeadLetter, Rejected};
use super::item::{Item, write_units};
use super::metrics::ConsumerMetrics;
use super::program::Program;
use crate::aws::{AwsError, ResultExt};
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
        let removable: Arc<[String]> = program.item_attributes().into();
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
                let (sink, removable, key_attribute) =
                    (self.clone(), removable.clone(), key_attribute.clone());
                tasks.spawn(async move {
                    let written = sink
                        .write_item(&key_attribute, &key, item, &position, &removable)
                        .await;
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

    /// Writes one item (see the module's notes); the position the item held
    /// before, if it held one.
    async fn write_item(
        &self,
        key_attribute: &str,
        key: &str,
        mut item: Item,
        position: &str,
        removable: &[String],
    ) -> Result<Option<String>, AwsError> {
        let table = &self.targets.tweets_table;
        let key_value = item
            .remove(key_attribute)
            .unwrap_or_else(|| AttributeValue::S(key.to_string()));
        let new_units = write_units(&item);
        let mut set = Vec::with_capacity(item.len() + 1);
        let mut request = self
            .dynamodb
            .update_item()
            .table_name(table)
            .key(key_attribute, key_value)
            .return_values(ReturnValue::AllOld)
            .expression_attribute_names("#counted", COUNTED_IN)
            .expression_attribute_values(":position", AttributeValue::S(position.to_string()));
        let removed: Vec<&String> = removable
            .iter()
            .filter(|a| !item.contains_key(*a))
            .collect();
        for (n, (name, value)) in item.into_iter().enumerate() {
            set.push(format!("#a{n} = :a{n}"));
            request = request
                .expression_attribute_names(format!("#a{n}"), name)
                .expression_attribute_values(format!(":a{n}"), value);
        }
        set.push("#counted = if_not_exists(#counted, :position)".to_string());
        let mut update = format!("SET {}", set.join(", "));
        if !removed.is_empty() {
            let names: Vec<String> = (0..removed.len()).map(|n| format!("#r{n}")).collect();
            update.push_str(" REMOVE ");
            update.push_str(&names.join(", "));
            for (name, attribute) in names.into_iter().zip(removed) {
                request = request.expression_attribute_names(name, attribute);
            }
        }
        let out = request
            .update_expression(update)
            .send()
            .await
            .aws(format!("writing item {key} to table {table}"))?;
        self.metrics.write_calls.fetch_add(1, Relaxed);
        self.metrics.items_written.fetch_add(1, Relaxed);
        // DynamoDB charges an update for the larger of the item before and after.
        let old = out.attributes();
        let old_units = old.map_or(0, write_units);
        self.metrics
            .write_units_items
            .fetch_add(new_units.max(old_units), Relaxed);
        Ok(old
            .and_then(|old| old.get(COUNTED_IN))
            .and_then(|p| p.as_s().ok())
            .cloned())
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

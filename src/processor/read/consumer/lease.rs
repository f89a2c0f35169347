//! Shard leases and checkpoints in the stack's DynamoDB lease table, one
//! item a shard. Every change is a conditional write, so two workers can
//! never both believe they hold a shard:
//!
//! - `take`: only if the lease counter is still the one observed (an
//!   expired or free lease), sets the owner and bumps the counter;
//! - `renew`: only if the owner is still this worker and the counter is the
//!   one it set, bumps the counter (a renewal is the owner's heartbeat);
//! - `checkpoint`: only while this worker owns the lease;
//! - `release`: only while this worker owns it, removes the owner, so
//!   another worker can take it at once instead of waiting for expiry.
//!
//! Expiry needs no shared clock: a worker calls a lease expired when its
//! counter has not moved for the lease duration *by its own clock* (the
//! Kinesis Client Library's scheme).

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};

use crate::aws::{AwsError, ResultExt, is_conditional_failure};
use crate::names::attribute::{LEASE_CHECKPOINT, LEASES_PK};

/// The checkpoint of a shard read to its end.
pub const SHARD_END: &str = "SHARD_END";

const OWNER: &str = "owner";
const COUNTER: &str = "counter";
const PARENTS: &str = "parents";
/// When the checkpoint was last written (Unix milliseconds), for `status`.
const CHECKPOINTED_AT: &str = "checkpointed_at";
/// Since when the reader has been retrying the same slice (Unix
/// milliseconds), and the last error: set once a reader is stalled, removed
/// by the next checkpoint. `status` names the shard and the error.
const STALLED_SINCE: &str = "stalled_since";
const LAST_ERROR: &str = "last_error";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub shard_id: String,
    pub owner: Option<String>,
    pub counter: u64,
    /// Last sequence number stored, or [`SHARD_END`].
    pub checkpoint: Option<String>,
    /// Parent shards (after a reshard): read to their end first.
    pub parents: Vec<String>,
    /// When the checkpoint was last written (Unix milliseconds).
    pub checkpointed_at: Option<i64>,
    /// Since when its reader has been retrying the same work (Unix
    /// milliseconds), and the last error, while it is stalled.
    pub stalled_since: Option<i64>,
    pub last_error: Option<String>,
}

impl Lease {
    pub fn finished(&self) -> bool {
        self.checkpoint.as_deref() == Some(SHARD_END)
    }
}

#[derive(Debug, Clone)]
pub struct LeaseTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
    worker: String,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn parse(item: &HashMap<String, AttributeValue>) -> Option<Lease> {
    Some(Lease {
        shard_id: item.get(LEASES_PK)?.as_s().ok()?.clone(),
        owner: item.get(OWNER).and_then(|v| v.as_s().ok()).cloned(),
        counter: item
            .get(COUNTER)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        checkpoint: item
            .get(LEASE_CHECKPOINT)
            .and_then(|v| v.as_s().ok())
            .cloned(),
        parents: item
            .get(PARENTS)
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|p| p.as_s().ok().cloned()).collect())
            .unwrap_or_default(),
        checkpointed_at: item
            .get(CHECKPOINTED_AT)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok()),
        stalled_since: item
            .get(STALLED_SINCE)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok()),
        last_error: item.get(LAST_ERROR).and_then(|v| v.as_s().ok()).cloned(),
    })
}

impl LeaseTable {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        worker: impl Into<String>,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            worker: worker.into(),
        }
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Every lease (a consistent read: decisions are made on it).
    pub async fn scan(&self) -> Result<Vec<Lease>, AwsError> {
        let mut leases = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .aws(format!("reading the leases in {}", self.table))?;
            leases.extend(out.items().iter().filter_map(parse));
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        leases.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
        Ok(leases)
    }

    /// One lease, read consistently.
    pub async fn get(&self, shard_id: &str) -> Result<Option<Lease>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(LEASES_PK, s(shard_id))
            .consistent_read(true)
            .send()
            .await
            .aws(format!("reading the lease of shard {shard_id}"))?;
        Ok(out.item().and_then(parse))
    }

    /// Adds a lease for a new shard; a lease that exists is left alone.
    pub async fn create_if_missing(
        &self,
        shard_id: &str,
        parents: &[String],
    ) -> Result<(), AwsError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(LEASES_PK, s(shard_id))
            .item(COUNTER, n(0))
            .item(
                PARENTS,
                AttributeValue::L(parents.iter().map(|p| s(p)).collect()),
            )
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", LEASES_PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(AwsError::new(
                format!("creating the lease of shard {shard_id}"),
                e,
            )),
        }
    }

    /// Takes a lease observed with `counter`; the new counter, or None when
    /// someone else changed it first.
    pub async fn take(&self, lease: &Lease) -> Result<Option<u64>, AwsError> {
        let next = lease.counter + 1;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(LEASES_PK, s(&lease.shard_id))
            // A stall recorded by the previous owner is not this reader's.
            .update_expression("SET #owner = :me, #counter = :next REMOVE #stalled, #error")
            .condition_expression("attribute_exists(#pk) AND #counter = :seen")
            .expression_attribute_names("#stalled", STALLED_SINCE)
            .expression_attribute_names("#error", LAST_ERROR)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#counter", COUNTER)
            .expression_attribute_names("#pk", LEASES_PK)
            .expression_attribute_values(":me", s(&self.worker))
            .expression_attribute_values(":next", n(next))
            .expression_attribute_values(":seen", n(lease.counter))
            .send()
            .await;
        let taken = conditional(
            result,
            next,
            format!("taking the lease of shard {}", lease.shard_id),
        )?;
        self.confirm(&lease.shard_id, next, taken).await
    }

    /// Renews a lease held with `counter`; the new counter, or None when it was lost.
    pub async fn renew(&self, shard_id: &str, counter: u64) -> Result<Option<u64>, AwsError> {
        let next = counter + 1;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(LEASES_PK, s(shard_id))
            .update_expression("SET #counter = :next")
            .condition_expression("#owner = :me AND #counter = :held")
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#counter", COUNTER)
            .expression_attribute_values(":me", s(&self.worker))
            .expression_attribute_values(":next", n(next))
            .expression_attribute_values(":held", n(counter))
            .send()
            .await;
        let renewed = conditional(
            result,
            next,
            format!("renewing the lease of shard {shard_id}"),
        )?;
        self.confirm(shard_id, next, renewed).await
    }

    /// A conditional write that failed may have been this worker's own,
    /// retried: the first attempt was applied but its reply was lost (a
    /// 5xx, a timeout, a reset), so the retry finds the counter moved. The
    /// lease is still ours if the table shows us as owner at `next`.
    async fn confirm(
        &self,
        shard_id: &str,
        next: u64,
        outcome: Option<u64>,
    ) -> Result<Option<u64>, AwsError> {
        if outcome.is_some() {
            return Ok(outcome);
        }
        Ok(self.get(shard_id).await?.and_then(|l| {
            (l.owner.as_deref() == Some(self.worker.as_str()) && l.counter == next).then_some(next)
        }))
    }

    /// Records that everything up to `sequence` is stored; false when the
    /// lease is no longer this worker's (the batch is stored regardless:
    /// writes are idempotent, the new owner re-reads from its checkpoint).
    pub async fn checkpoint(&self, shard_id: &str, sequence: &str) -> Result<bool, AwsError> {
        self.move_checkpoint(shard_id, None, sequence).await
    }

    /// [`Self::checkpoint`], only from `expected` (None: no checkpoint yet),
    /// as [`Self::commit`] does for a run that counts nothing. A retry after
    /// a lost reply finds this worker at `sequence`: done.
    pub async fn advance(
        &self,
        shard_id: &str,
        expected: Option<&str>,
        sequence: &str,
    ) -> Result<bool, AwsError> {
        if self
            .move_checkpoint(shard_id, Some(expected), sequence)
            .await?
        {
            return Ok(true);
        }
        Ok(self.get(shard_id).await?.is_some_and(|l| {
            l.owner.as_deref() == Some(self.worker.as_str())
                && l.checkpoint.as_deref() == Some(sequence)
        }))
    }

    /// Moves the checkpoint to `sequence` while this worker owns the lease
    /// and, when `expected` is given, the checkpoint is that one.
    async fn move_checkpoint(
        &self,
        shard_id: &str,
        expected: Option<Option<&str>>,
        sequence: &str,
    ) -> Result<bool, AwsError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(LEASES_PK, s(shard_id))
            // A checkpoint is progress: whatever stall was recorded is over.
            .update_expression("SET #checkpoint = :seq, #at = :now REMOVE #stalled, #error")
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#checkpoint", LEASE_CHECKPOINT)
            .expression_attribute_names("#at", CHECKPOINTED_AT)
            .expression_attribute_names("#stalled", STALLED_SINCE)
            .expression_attribute_names("#error", LAST_ERROR)
            .expression_attribute_values(":me", s(&self.worker))
            .expression_attribute_values(":seq", s(sequence))
            .expression_attribute_values(":now", n(now_ms()));
        let request = match expected {
            None => request.condition_expression("#owner = :me"),
            Some(None) => {
                request.condition_expression("#owner = :me AND attribute_not_exists(#checkpoint)")
            }
            Some(Some(expected)) => request
                .condition_expression("#owner = :me AND #checkpoint = :expected")
                .expression_attribute_values(":expected", s(expected)),
        };
        let result = request.send().await;
        Ok(conditional(result, 0, format!("checkpointing shard {shard_id}"))?.is_some())
    }

    /// Commits a run of records ([`crate::processor::read::partial`]): its
    /// partial counts (`puts`, into `table`) and the checkpoint's move from
    /// `expected` to `checkpoint`, in one TransactWriteItems, on condition
    /// that the lease is this worker's at `expected`. `checkpoint` None
    /// adds counts under the same condition and leaves the checkpoint (one
    /// record's counts in several transactions). False when the lease is
    /// no longer this worker's at `expected`: nothing was written.
    ///
    /// A retry after a lost reply (the transaction applied, its answer
    /// lost) finds the checkpoint moved: it is this worker's own commit
    /// when the lease shows this worker at `checkpoint`.
    pub async fn commit(
        &self,
        shard_id: &str,
        expected: Option<&str>,
        checkpoint: Option<&str>,
        table: &str,
        puts: &[HashMap<String, AttributeValue>],
    ) -> Result<bool, AwsError> {
        let action = format!("committing counts and checkpoint of shard {shard_id}");
        let condition = match expected {
            Some(_) => "#owner = :me AND #checkpoint = :expected",
            None => "#owner = :me AND attribute_not_exists(#checkpoint)",
        };
        let mut names = HashMap::from([
            ("#owner".to_string(), OWNER.to_string()),
            ("#checkpoint".to_string(), LEASE_CHECKPOINT.to_string()),
        ]);
        let mut values = HashMap::from([(":me".to_string(), s(&self.worker))]);
        if let Some(expected) = expected {
            values.insert(":expected".into(), s(expected));
        }
        let built = |e: aws_sdk_dynamodb::error::BuildError| AwsError {
            action: action.clone(),
            code: None,
            detail: e.to_string(),
            class: crate::aws::ErrorClass::Permanent,
        };
        let lease_action = match checkpoint {
            Some(sequence) => {
                names.insert("#at".into(), CHECKPOINTED_AT.into());
                names.insert("#stalled".into(), STALLED_SINCE.into());
                names.insert("#error".into(), LAST_ERROR.into());
                values.insert(":seq".into(), s(sequence));
                values.insert(":now".into(), n(now_ms()));
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .key(LEASES_PK, s(shard_id))
                            .update_expression(
                                "SET #checkpoint = :seq, #at = :now REMOVE #stalled, #error",
                            )
                            .condition_expression(condition)
                            .set_expression_attribute_names(Some(names))
                            .set_expression_attribute_values(Some(values))
                            .build()
                            .map_err(built)?,
                    )
                    .build()
            }
            None => TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .key(LEASES_PK, s(shard_id))
                        .condition_expression(condition)
                        .set_expression_attribute_names(Some(names))
                        .set_expression_attribute_values(Some(values))
                        .build()
                        .map_err(built)?,
                )
                .build(),
        };
        let mut items = Vec::with_capacity(puts.len() + 1);
        for item in puts {
            items.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(table)
                            .set_item(Some(item.clone()))
                            .build()
                            .map_err(built)?,
                    )
                    .build(),
            );
        }
        items.push(lease_action);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let refused = match result {
            Ok(_) => return Ok(true),
            Err(e) => e,
        };
        let lease_condition_failed = refused
            .as_service_error()
            .and_then(|e| match e {
                TransactWriteItemsError::TransactionCanceledException(c) => Some(c),
                _ => None,
            })
            .is_some_and(|c| {
                c.cancellation_reasons()
                    .iter()
                    .any(|r| r.code() == Some("ConditionalCheckFailed"))
            });
        if !lease_condition_failed {
            return Err(AwsError::new(action, refused));
        }
        let Some(checkpoint) = checkpoint else {
            return Ok(false);
        };
        Ok(self.get(shard_id).await?.is_some_and(|l| {
            l.owner.as_deref() == Some(self.worker.as_str())
                && l.checkpoint.as_deref() == Some(checkpoint)
        }))
    }

    /// Records that the reader of `shard_id` has been retrying the same
    /// work since a time (Unix milliseconds) and why, so `status` can say
    /// so; `None` clears it (the reader recovered without a checkpoint).
    /// False when the lease is no longer this worker's.
    pub async fn record_stall(
        &self,
        shard_id: &str,
        stall: Option<(u64, &str)>,
    ) -> Result<bool, AwsError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(LEASES_PK, s(shard_id))
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#stalled", STALLED_SINCE)
            .expression_attribute_names("#error", LAST_ERROR)
            .expression_attribute_values(":me", s(&self.worker));
        let request = match stall {
            Some((since_ms, error)) => {
                // An attribute has room for far more, but a status line does not.
                let error: String = error.chars().take(1000).collect();
                request
                    .update_expression("SET #stalled = :since, #error = :error")
                    .expression_attribute_values(":since", n(since_ms))
                    .expression_attribute_values(":error", s(&error))
            }
            None => request.update_expression("REMOVE #stalled, #error"),
        };
        let result = request.send().await;
        Ok(conditional(
            result,
            0,
            format!("recording the stall of shard {shard_id}"),
        )?
        .is_some())
    }

    /// Removes the lease of a shard the stream no longer has (past
    /// retention after a reshard): nothing is left to read in it. Only a
    /// finished or unowned lease goes, so no reader loses its lease.
    pub async fn delete(&self, shard_id: &str) -> Result<bool, AwsError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(LEASES_PK, s(shard_id))
            .condition_expression("#checkpoint = :end OR attribute_not_exists(#owner)")
            .expression_attribute_names("#checkpoint", LEASE_CHECKPOINT)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":end", s(SHARD_END))
            .send()
            .await;
        Ok(conditional(
            result,
            0,
            format!("removing the lease of vanished shard {shard_id}"),
        )?
        .is_some())
    }

    /// Gives a lease up, so another worker can take it without waiting.
    pub async fn release(&self, shard_id: &str) -> Result<bool, AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(LEASES_PK, s(shard_id))
            // Nobody reads it now: nothing of it is stalled.
            .update_expression("REMOVE #owner, #stalled, #error ADD #counter :one")
            .condition_expression("#owner = :me")
            .expression_attribute_names("#stalled", STALLED_SINCE)
            .expression_attribute_names("#error", LAST_ERROR)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#counter", COUNTER)
            .expression_attribute_values(":me", s(&self.worker))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        Ok(conditional(
            result,
            0,
            format!("releasing the lease of shard {shard_id}"),
        )?
        .is_some())
    }
}

fn conditional<T, E>(
    result: Result<
        T,
        aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    >,
    value: u64,
    action: String,
) -> Result<Option<u64>, AwsError>
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + aws_smithy_types::retry::ProvideErrorKind
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    match result {
        Ok(_) => Ok(Some(value)),
        Err(e) if is_conditional_failure(&e) => Ok(None),
        Err(e) => Err(AwsError::new(action, e)),
    }
}

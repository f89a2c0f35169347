//! `down`: teardown that never deletes data silently.
//!
//! The template retains the archive bucket, the tweets and aggregates tables
//! and the stack's KMS key when the stack is deleted. So `down` first takes
//! stock of the data; with data present it stops unless told
//! `--delete-data` (empty and delete them too) or `--keep-data` (delete the
//! rest, keep them, say where they are).

use std::time::Duration;

use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use serde::Serialize;

use super::DeployError;
use super::progress::Progress;
use super::stack::{self, Resource, Settled, Watch};
use crate::aws::{Aws, AwsError, ResultExt, is_not_found};
use crate::names::{Names, logical};

/// The data a stack still holds.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Inventory {
    pub bucket: Option<BucketData>,
    pub tables: Vec<TableData>,
    pub stream: Option<StreamData>,
    pub kms_key: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BucketData {
    pub name: String,
    /// Current object versions.
    pub objects: u64,
    /// Older versions and delete markers (a versioned bucket keeps them).
    pub noncurrent_versions: u64,
    pub delete_markers: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableData {
    pub name: String,
    pub empty: bool,
    /// DynamoDB's own count, refreshed about every six hours.
    pub approximate_items: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamData {
    pub name: String,
    /// Records after the processor's checkpoints (or all retained records when none), capped per shard.
    pub unread_records: u64,
}

impl Inventory {
    /// Nothing found at all (not even empty resources).
    pub fn is_empty(&self) -> bool {
        self.bucket.is_none() && self.tables.is_empty() && self.stream.is_none()
    }

    pub fn has_data(&self) -> bool {
        self.bucket
            .as_ref()
            .is_some_and(|b| b.objects + b.noncurrent_versions + b.delete_markers > 0)
            || self.tables.iter().any(|t| !t.empty)
            || self.stream.as_ref().is_some_and(|s| s.unread_records > 0)
    }

    /// Lines for people.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(b) = &self.bucket {
            lines.push(format!(
                "bucket {}: {} object(s), {} older version(s), {} delete marker(s)",
                b.name, b.objects, b.noncurrent_versions, b.delete_markers
            ));
        }
        for t in &self.tables {
            lines.push(if t.empty {
                format!("table {}: empty", t.name)
            } else {
                format!(
                    "table {}: holds items (about {} by DynamoDB's periodic count)",
                    t.name, t.approximate_items
                )
            });
        }
        if let Some(s) = &self.stream {
            lines.push(format!(
                "stream {}: {} record(s) not yet read by the processor",
                s.name, s.unread_records
            ));
        }
        lines
    }
}

fn physical<'r>(resources: &'r [Resource], logical_id: &str) -> Option<&'r str> {
    resources
        .iter()
        .find(|r| r.logical_id == logical_id)
        .and_then(|r| r.physical_id.as_deref())
}

/// Takes stock of the data in the stack's bucket and tables; `stream` is
/// what the caller counted in the stream (the consumer knows where it stands).
pub async fn inventory(
    aws: &Aws,
    resources: &[Resource],
    stream: Option<StreamData>,
) -> Result<Inventory, AwsError> {
    let mut inv = Inventory {
        kms_key: physical(resources, logical::STACK_KEY).map(str::to_string),
        ..Default::default()
    };
    if let Some(bucket) = physical(resources, logical::ARCHIVE_BUCKET) {
        inv.bucket = bucket_data(aws, bucket).await?;
    }
    for table in [logical::TWEETS_TABLE, logical::AGGREGATES_TABLE] {
        if let Some(name) = physical(resources, table) {
            inv.tables.extend(table_data(aws, name).await?);
        }
    }
    inv.stream = stream;
    Ok(inv)
}

/// The retained data resources of `stack`, found by their names: what a
/// deleted stack leaves behind (`down --keep-data`, or a teardown cut
/// short after the stack went). The stack's KMS key has no name to find it by.
pub async fn leftovers(aws: &Aws, stack: &str) -> Result<Inventory, AwsError> {
    let mut inv = Inventory::default();
    for table in [
        Names::tweets_table_of(stack),
        Names::aggregates_table_of(stack),
    ] {
        inv.tables.extend(table_data(aws, &table).await?);
    }
    let mut pages = aws.s3().list_buckets().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = match page.aws("listing the account's buckets") {
            Ok(page) => page,
            // ListBuckets needs s3:ListAllMyBuckets, which a deployer may
            // lack: the tables are still checked, and a bucket in the way
            // still fails the creation with its name.
            Err(e) if e.is_permanent() => {
                tracing::warn!(error = %e, stack, "a bucket left by an earlier stack is not looked for");
                break;
            }
            Err(e) => return Err(e),
        };
        for bucket in page.buckets().iter().filter_map(|b| b.name()) {
            if Names::is_archive_bucket_of(bucket, stack, aws.region()) {
                inv.bucket = bucket_data(aws, bucket).await?;
            }
        }
    }
    Ok(inv)
}

async fn bucket_data(aws: &Aws, bucket: &str) -> Result<Option<BucketData>, AwsError> {
    let s3 = aws.s3();
    let mut data = BucketData {
        name: bucket.to_string(),
        objects: 0,
        noncurrent_versions: 0,
        delete_markers: 0,
    };
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    loop {
        let page = match s3
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
        {
            Ok(page) => page,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => {
                return Err(AwsError::new(
                    format!("listing objects of bucket {bucket}"),
                    e,
                ));
            }
        };
        for v in page.versions() {
            if v.is_latest() == Some(true) {
                data.objects += 1;
            } else {
                data.noncurrent_versions += 1;
            }
        }
        data.delete_markers += page.delete_markers().len() as u64;
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
    Ok(Some(data))
}

async fn table_data(aws: &Aws, table: &str) -> Result<Option<TableData>, AwsError> {
    let ddb = aws.dynamodb();
    let described = match ddb.describe_table().table_name(table).send().await {
        Ok(d) => d,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(AwsError::new(format!("describing table {table}"), e)),
    };
    // One item is enough to know the table is not empty; a full count would read it all.
    let scan = ddb
        .scan()
        .table_name(table)
        .limit(1)
        .send()
        .await
        .aws(format!("looking for items in table {table}"))?;
    Ok(Some(TableData {
        name: table.to_string(),
        empty: scan.items().is_empty() && scan.last_evaluated_key().is_none(),
        approximate_items: described.table().and_then(|t| t.item_count()).unwrap_or(0),
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPolicy {
    /// Stop when data is present.
    Refuse,
    Delete,
    Keep,
}

#[derive(Debug)]
pub enum DownOutcome {
    /// There was no stack, and nothing of it is left.
    NothingToDo,
    /// The stack was gone, but data resources it retained were left
    /// (`deleted`: now deleted too; else kept, as asked).
    Leftovers { inventory: Inventory, deleted: bool },
    /// The stack is gone; `kept` lists the data resources left in place.
    Deleted {
        inventory: Inventory,
        kept: Vec<String>,
    },
}

/// Tears `stack` down by `policy`. `stream` is what the stack's stream
/// still holds unread (None: no stream), counted by the caller before.
pub async fn down(
    aws: &Aws,
    stack: &str,
    policy: DataPolicy,
    stream: Option<StreamData>,
    poll: Duration,
) -> Result<DownOutcome, DeployError> {
    let cfn = aws.cloudformation();
    let Some(info) = stack::describe(&cfn, stack).await? else {
        return down_leftovers(aws, stack, policy).await;
    };
    let resources = stack::resources(&cfn, &info.id).await?;
    let inventory = inventory(aws, &resources, stream).await?;
    let has_data = inventory.has_data();
    for line in inventory.describe() {
        tracing::info!(stack, "{line}");
    }
    if has_data && policy == DataPolicy::Refuse {
        return Err(DeployError::DataPresent {
            stack: stack.to_string(),
            data: inventory.describe().join("; "),
        });
    }
    // The artifacts bucket holds the tool's own binaries, rebuilt from
    // source: not data. It is emptied so that CloudFormation can delete it.
    if let Some(artifacts) = physical(&resources, logical::ARTIFACTS_BUCKET) {
        empty_bucket(aws, artifacts).await?;
    }
    // The data goes after the stack: the bucket and tables are retained by
    // the template, and deleting the stack first stops Firehose and the
    // hosts from writing into a bucket already emptied.
    let delete_data = policy == DataPolicy::Delete || !has_data;

    let mut watch = Watch::start(&cfn, &info.id).await?;
    cfn.delete_stack()
        .stack_name(&info.id)
        .send()
        .await
        .aws(format!("deleting stack {stack}"))?;
    let mut progress = Progress::new("Deleting", stack, resources.len());
    match stack::wait(&cfn, &mut watch, &mut progress, poll).await? {
        Settled::Gone => progress.finish("DELETE_COMPLETE"),
        Settled::At(after) => {
            progress.finish(&after.status);
            let cause = watch
                .root_cause(stack)
                .or(after.reason)
                .unwrap_or_else(|| "no reason given".into());
            let hint = if cause.contains("BucketNotEmpty") || cause.contains("not empty") {
                " (a bucket still holds objects: `down --delete-data` empties it first)"
            } else {
                ""
            };
            return Err(DeployError::Failed {
                stack: stack.to_string(),
                operation: "deletion",
                status: after.status,
                cause: format!("{cause}{hint}"),
            });
        }
    }

    let mut kept = Vec::new();
    if delete_data {
        if let Some(bucket) = &inventory.bucket {
            empty_bucket(aws, &bucket.name).await?;
        }
        delete_retained(aws, &inventory).await?;
    } else {
        kept.extend(
            inventory
                .bucket
                .iter()
                .map(|b| format!("bucket {}", b.name)),
        );
        kept.extend(inventory.tables.iter().map(|t| format!("table {}", t.name)));
        kept.extend(
            inventory
                .kms_key
                .iter()
                .map(|k| format!("KMS key {k} (it encrypts the kept data)")),
        );
    }
    Ok(DownOutcome::Deleted { inventory, kept })
}

/// `down` of a stack that is gone: what it retained is found by name, and
/// deleted, kept or refused by the same rules as with the stack.
async fn down_leftovers(
    aws: &Aws,
    stack: &str,
    policy: DataPolicy,
) -> Result<DownOutcome, DeployError> {
    let inventory = leftovers(aws, stack).await?;
    if inventory.is_empty() {
        return Ok(DownOutcome::NothingToDo);
    }
    tracing::info!(
        stack,
        "the stack is gone, but resources it retained are left"
    );
    for line in inventory.describe() {
        tracing::info!(stack, "{line}");
    }
    let has_data = inventory.has_data();
    match policy {
        DataPolicy::Refuse if has_data => Err(DeployError::DataPresent {
            stack: stack.to_string(),
            data: inventory.describe().join("; "),
        }),
        DataPolicy::Keep => Ok(DownOutcome::Leftovers {
            inventory,
            deleted: false,
        }),
        _ => {
            if let Some(bucket) = &inventory.bucket {
                empty_bucket(aws, &bucket.name).await?;
            }
            delete_retained(aws, &inventory).await?;
            Ok(DownOutcome::Leftovers {
                inventory,
                deleted: true,
            })
        }
    }
}

/// Deletes every object version and delete marker, a thousand at a time.
pub async fn empty_bucket(aws: &Aws, bucket: &str) -> Result<u64, AwsError> {
    let s3 = aws.s3();
    let mut deleted = 0;
    loop {
        let page = match s3
            .list_object_versions()
            .bucket(bucket)
            .max_keys(1000)
            .send()
            .await
        {
            Ok(page) => page,
            Err(e) if is_not_found(&e) => return Ok(deleted),
            Err(e) => {
                return Err(AwsError::new(
                    format!("listing objects of bucket {bucket}"),
                    e,
                ));
            }
        };
        let ids: Vec<ObjectIdentifier> = page
            .versions()
            .iter()
            .filter_map(|v| {
                ObjectIdentifier::builder()
                    .key(v.key()?)
                    .set_version_id(v.version_id().map(str::to_string))
                    .build()
                    .ok()
            })
            .chain(page.delete_markers().iter().filter_map(|m| {
                ObjectIdentifier::builder()
                    .key(m.key()?)
                    .set_version_id(m.version_id().map(str::to_string))
                    .build()
                    .ok()
            }))
            .collect();
        if ids.is_empty() {
            return Ok(deleted);
        }
        let count = ids.len() as u64;
        let delete = Delete::builder()
            .set_objects(Some(ids))
            .quiet(true)
            .build()
            .expect("objects are set");
        let out = s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .aws(format!("emptying bucket {bucket}"))?;
        if let Some(err) = out.errors().first() {
            return Err(AwsError {
                action: format!("emptying bucket {bucket}"),
                code: err.code().map(str::to_string),
                detail: format!(
                    "{}: {} ({})",
                    err.code().unwrap_or("?"),
                    err.message().unwrap_or(""),
                    err.key().unwrap_or("")
                ),
                class: crate::aws::class_of(err.code(), 400, false),
            });
        }
        deleted += count;
        tracing::info!(
            bucket,
            deleted,
            "emptied {deleted} object version(s) from {bucket}"
        );
    }
}

/// Removes what the template retains on stack deletion.
pub async fn delete_retained(aws: &Aws, inventory: &Inventory) -> Result<(), AwsError> {
    if let Some(bucket) = &inventory.bucket {
        match aws.s3().delete_bucket().bucket(&bucket.name).send().await {
            Ok(_) => tracing::info!(bucket = %bucket.name, "deleted bucket {}", bucket.name),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(AwsError::new(format!("deleting bucket {}", bucket.name), e)),
        }
    }
    for table in &inventory.tables {
        match aws
            .dynamodb()
            .delete_table()
            .table_name(&table.name)
            .send()
            .await
        {
            Ok(_) => tracing::info!(table = %table.name, "deleted table {}", table.name),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(AwsError::new(format!("deleting table {}", table.name), e)),
        }
    }
    if let Some(key) = &inventory.kms_key {
        // KMS keys are never deleted at once: seven days is the shortest wait AWS allows.
        match aws
            .kms()
            .schedule_key_deletion()
            .key_id(key)
            .pending_window_in_days(7)
            .send()
            .await
        {
            Ok(_) => tracing::info!(key, "scheduled KMS key {key} for deletion in 7 days"),
            // Gone, or already pending deletion.
            Err(e)
                if is_not_found(&e)
                    || e.as_service_error()
                        .is_some_and(|s| s.is_kms_invalid_state_exception()) => {}
            Err(e) => {
                return Err(AwsError::new(
                    format!("scheduling deletion of KMS key {key}"),
                    e,
                ));
            }
        }
    }
    Ok(())
}

//! The names every layer shares: the template compiler writes them, the
//! processor, the deployer and the commands read them. A leaf: it imports
//! nothing from `template`, `processor`, `deploy` or `app`, so none of them
//! has to import another to agree on a name.
//!
//! - [`Names`]: physical names, derived from the stack name, so that every
//!   command (and a person reading the console) finds the same resource
//!   without a lookup;
//! - [`logical`]: the template's logical ids that teardown looks resources up by;
//! - [`attribute`]: the key attributes of the tables;
//! - [`output`]: the stack outputs commands read;
//! - [`metrics`]: the processor's CloudWatch namespace, dimension and metric names;
//! - [`artifacts`]: the keys of what `up` ships to the hosts.

use crate::spec::Resolved;

/// Logical ids of the resources commands outside the compiler look up.
pub mod logical {
    pub const STREAM: &str = "Stream";
    pub const DELIVERY_STREAM: &str = "ArchiveDeliveryStream";
    pub const ARCHIVE_BUCKET: &str = "ArchiveBucket";
    pub const ARTIFACTS_BUCKET: &str = "ArtifactsBucket";
    pub const STACK_KEY: &str = "StackKey";
    pub const TWEETS_TABLE: &str = "TweetsTable";
    pub const AGGREGATES_TABLE: &str = "AggregatesTable";
    pub const LEASE_TABLE: &str = "LeaseTable";
}

/// Attribute names of the tables' keys, and of what the processor writes
/// beside the keys the template declares.
pub mod attribute {
    /// Aggregates: `{aggregate}#{window start}#{bucket}` (processor::read::partial).
    pub const AGGREGATES_PK: &str = "pk";
    /// Aggregates: `{shard}#{first sequence number}#{part}`, one partial count a run.
    pub const AGGREGATES_SK: &str = "sk";
    /// Aggregates: the epoch second DynamoDB's TTL deletes a partial count at.
    pub const AGGREGATES_TTL: &str = "expires_at";
    /// Items: the position (`shard:sequence:sub:index`) of the event that
    /// counts the item's key in the aggregates; set once, never changed.
    pub const COUNTED_IN: &str = "streamstack_counted_in";
    /// Leases: one item a shard.
    pub const LEASES_PK: &str = "shard_id";
    /// Leases: the last sequence number stored (or `SHARD_END`).
    pub const LEASE_CHECKPOINT: &str = "checkpoint";
}

/// Stack outputs that commands read.
pub mod output {
    pub const ARCHIVE_BUCKET_NAME: &str = "ArchiveBucketName";
    pub const ARTIFACTS_BUCKET_NAME: &str = "ArtifactsBucketName";
}

/// The processor's own CloudWatch metrics.
pub mod metrics {
    pub const NAMESPACE: &str = "Streamstack";
    /// The one dimension every processor metric has: the stack name.
    pub const STACK_DIMENSION: &str = "Stack";
    pub const RECORDS_IN: &str = "RecordsIn";
    pub const ITEMS_WRITTEN: &str = "ItemsWritten";
    pub const DEAD_LETTERS: &str = "DeadLetters";
    pub const MILLIS_BEHIND_LATEST: &str = "MillisBehindLatest";
    pub const HEARTBEAT: &str = "Heartbeat";
    pub const STALLED_SHARDS: &str = "StalledShards";
    pub const BATCH_LATENCY_MILLIS: &str = "BatchLatencyMillis";
    pub const RETRIES: &str = "Retries";
    /// DynamoDB write units the processor used, by what it wrote: the
    /// items, the aggregates, the checkpoints (computed from item sizes by
    /// DynamoDB's rules, see processor::read::item::write_units).
    pub const WRITE_UNITS_ITEMS: &str = "WriteUnitsItems";
    pub const WRITE_UNITS_AGGREGATES: &str = "WriteUnitsAggregates";
    pub const WRITE_UNITS_CHECKPOINTS: &str = "WriteUnitsCheckpoints";
}

/// Keys in the artifacts bucket (see scripts/host-bootstrap.sh, which reads them).
pub mod artifacts {
    /// Everything `up` ships lives under this prefix; the host role may read only it.
    pub const PREFIX: &str = "processor/";

    /// The pointer the hosts' bootstrap reads.
    pub fn pointer_key() -> String {
        format!("{PREFIX}current")
    }

    /// A processor binary, under its SHA-256.
    pub fn binary_key(sha256: &str) -> String {
        format!("{PREFIX}{sha256}/streamstack")
    }

    /// A stack file, under its SHA-256.
    pub fn stack_file_key(sha256: &str) -> String {
        format!("{PREFIX}stacks/{sha256}.yaml")
    }
}

/// Physical names of every resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The CloudFormation stack name: `{name}` or `{name}-{environment}`.
    pub stack: String,
    pub environment: Option<String>,
    pub stream: String,
    pub delivery_stream: String,
    pub table: String,
    pub aggregates_table: String,
    pub lease_table: String,
    pub dashboard: String,
    pub firehose_log_group: String,
    /// The processor's log lines (one log stream a worker), written by
    /// `logging::cloudwatch` and read by `logs` and `status`.
    pub processor_log_group: String,
}

impl Names {
    pub fn new(resolved: &Resolved) -> Self {
        let stack = resolved.stack_name();
        Self {
            stream: format!("{stack}-stream"),
            delivery_stream: format!("{stack}-archive"),
            table: Self::tweets_table_of(&stack),
            aggregates_table: Self::aggregates_table_of(&stack),
            lease_table: format!("{stack}-leases"),
            dashboard: stack.clone(),
            firehose_log_group: format!("/aws/kinesisfirehose/{stack}-archive"),
            processor_log_group: Self::processor_log_group_of(&stack),
            environment: resolved.environment.clone(),
            stack,
        }
    }

    /// The tweets table of a stack (also for a stack that is gone).
    pub fn tweets_table_of(stack: &str) -> String {
        format!("{stack}-tweets")
    }

    /// The processor's log group of a stack.
    pub fn processor_log_group_of(stack: &str) -> String {
        format!("/streamstack/{stack}/processor")
    }

    pub fn aggregates_table_of(stack: &str) -> String {
        format!("{stack}-aggregates")
    }

    /// Whether `bucket` is the archive bucket of `stack` in `region`:
    /// `{stack}-archive-{12-digit account}-{region}` (see [`Names::bucket`]).
    pub fn is_archive_bucket_of(bucket: &str, stack: &str, region: &str) -> bool {
        bucket
            .strip_prefix(&format!("{stack}-archive-"))
            .and_then(|rest| rest.strip_suffix(&format!("-{region}")))
            .is_some_and(|account| {
                account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
            })
    }

    /// The archive bucket's name, a CloudFormation `Fn::Sub` pattern:
    /// globally unique through account and region.
    pub fn bucket_pattern(&self) -> String {
        format!(
            "{}-archive-${{AWS::AccountId}}-${{AWS::Region}}",
            self.stack
        )
    }

    pub fn alarm(&self, what: &str) -> String {
        format!("{}-{what}", self.stack)
    }
}

#[cfg(test)]
mod leftover_tests {
    use super::Names;

    #[test]
    fn an_archive_bucket_is_recognised_by_stack_account_and_region() {
        let of = |b| Names::is_archive_bucket_of(b, "tweets", "us-east-1");
        assert!(of("tweets-archive-123456789012-us-east-1"));
        // Another stack whose name starts the same, another region, not an account.
        assert!(!of("tweets-prod-archive-123456789012-us-east-1"));
        assert!(!of("tweets-archive-123456789012-eu-west-1"));
        assert!(!of("tweets-archive-artifacts-us-east-1"));
    }
}

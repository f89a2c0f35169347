//! The stack file's model: the whole pipeline in its user's terms.
//!
//! The serde attributes are the contract: `deny_unknown_fields` everywhere,
//! defaults a practitioner would pick, and schemars ranges/patterns that the
//! JSON Schema (used both for validation and by editors) carries.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::transform::{
    AggregateSpec, Builtin, ExpectedDeadLetter, JqTransform, TWEET_AGGREGATES, TestCase,
    TransformSpec,
};

/// A streamstack stack file: one real-time pipeline (Kinesis stream ->
/// processor on EC2 -> DynamoDB, Firehose archive to S3, CloudWatch alarms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stack {
    /// Stack name: lowercase letters, digits and hyphens, starting with a letter. Names every resource.
    #[schemars(
        length(min = 3, max = 24),
        regex(pattern = r"^[a-z][a-z0-9-]*[a-z0-9]$")
    )]
    pub name: String,
    /// AWS region, such as us-east-1.
    #[schemars(regex(pattern = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$"))]
    pub region: String,
    /// Where the environment runs: `aws`, or `emulator` (the local moto server; the processor runs as a local process).
    #[serde(default)]
    pub target: Target,
    /// Tags put on the stack and on every resource that takes tags.
    #[serde(default)]
    #[schemars(length(max = 40))]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub stream: StreamSpec,
    #[serde(default)]
    pub archive: ArchiveSpec,
    #[serde(default)]
    pub table: TableSpec,
    #[serde(default)]
    pub host: HostSpec,
    #[serde(default)]
    pub processor: ProcessorSpec,
    #[serde(default)]
    pub alarms: AlarmsSpec,
    /// Cases `streamstack test` runs on the transform (more may live beside the file, in `<name>.tests.yaml`).
    #[serde(default)]
    #[schemars(length(max = 1000))]
    pub tests: Vec<TestCase>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    #[default]
    Aws,
    Emulator,
}

/// Encryption at rest: the service's AWS-managed key, or a customer-managed KMS key the stack creates (rotated yearly).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Encryption {
    #[default]
    AwsManaged,
    StackKey,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityMode {
    #[default]
    Provisioned,
    OnDemand,
}

/// The Kinesis data stream the producer writes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StreamSpec {
    /// `provisioned` (you pick the shards) or `on-demand` (Kinesis scales and bills per GB).
    pub mode: CapacityMode,
    /// Shards of a provisioned stream: each takes 1 MB/s or 1,000 records/s in, 2 MB/s out.
    #[schemars(range(min = 1, max = 500))]
    pub shards: Option<u32>,
    /// How long records stay readable, in hours (24 to 8760).
    #[schemars(range(min = 24, max = 8760))]
    pub retention_hours: u32,
    pub encryption: Encryption,
}

impl Default for StreamSpec {
    fn default() -> Self {
        Self {
            mode: CapacityMode::Provisioned,
            shards: None,
            retention_hours: 24,
            encryption: Encryption::AwsManaged,
        }
    }
}

impl StreamSpec {
    /// Shards of a provisioned stream (one when not given).
    pub fn shard_count(&self) -> u32 {
        self.shards.unwrap_or(1)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

/// Firehose buffering: it delivers when either limit is reached first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BufferSpec {
    /// Buffer size in MB before delivery (1 to 128).
    #[schemars(range(min = 1, max = 128))]
    pub size_mb: u32,
    /// Longest wait in seconds before delivery (0 to 900).
    #[schemars(range(min = 0, max = 900))]
    pub interval_s: u32,
}

impl Default for BufferSpec {
    fn default() -> Self {
        Self {
            size_mb: 5,
            interval_s: 300,
        }
    }
}

/// The raw archive: Firehose reads the stream and writes it to an S3 bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveSpec {
    pub buffer: BufferSpec,
    pub compression: Compression,
    /// S3 key prefix of archived records; Firehose expressions such as `!{timestamp:yyyy/MM/dd/HH}` partition by time.
    #[schemars(length(min = 1, max = 1024))]
    pub prefix: String,
    /// S3 key prefix for records Firehose failed to deliver; must contain `!{firehose:error-output-type}` when the prefix uses expressions.
    #[schemars(length(min = 1, max = 1024))]
    pub error_prefix: String,
    /// S3 key prefix where the processor writes records it could not parse.
    #[schemars(length(min = 1, max = 1024))]
    pub dead_letter_prefix: String,
    /// Delete archived objects this many days after they were written (absent: keep forever).
    #[schemars(range(min = 1, max = 36500))]
    pub expire_after_days: Option<u32>,
    /// Keep earlier versions of overwritten or deleted objects.
    pub versioning: bool,
    pub encryption: Encryption,
}

impl Default for ArchiveSpec {
    fn default() -> Self {
        Self {
            buffer: BufferSpec::default(),
            compression: Compression::Gzip,
            prefix: "raw/!{timestamp:yyyy/MM/dd/HH}/".into(),
            error_prefix: "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/".into(),
            dead_letter_prefix: "dead-letters/".into(),
            expire_after_days: Some(90),
            versioning: true,
            encryption: Encryption::AwsManaged,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BillingMode {
    #[default]
    OnDemand,
    Provisioned,
}

/// The DynamoDB table of extracted tweets (one item a tweet). The stack also
/// creates the aggregates table and the processor's lease table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TableSpec {
    /// Name of the partition key attribute (a string holding the tweet id).
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    )]
    pub partition_key: String,
    /// `on-demand` (pay per request) or `provisioned` (set read_capacity and write_capacity).
    pub billing: BillingMode,
    #[schemars(range(min = 1, max = 40000))]
    pub read_capacity: Option<u32>,
    #[schemars(range(min = 1, max = 40000))]
    pub write_capacity: Option<u32>,
    /// Attribute holding each item's expiry time (epoch seconds); DynamoDB deletes expired items.
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    )]
    pub ttl_attribute: Option<String>,
    /// How long the processor keeps a tweet before it expires (needs ttl_attribute).
    #[schemars(range(min = 1, max = 36500))]
    pub ttl_days: Option<u32>,
    /// Continuous backups for restoring to any second of the last 35 days.
    pub point_in_time_recovery: bool,
    pub encryption: Encryption,
}

impl Default for TableSpec {
    fn default() -> Self {
        Self {
            partition_key: "tweet_id".into(),
            billing: BillingMode::OnDemand,
            read_capacity: None,
            write_capacity: None,
            ttl_attribute: None,
            ttl_days: None,
            point_in_time_recovery: true,
            encryption: Encryption::AwsManaged,
        }
    }
}

/// The EC2 host(s) running the processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HostSpec {
    /// EC2 instance type, such as t3.micro (x86_64).
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"))]
    pub instance_type: String,
    /// An AMI id (`ami-...`) or `ssm:/path` of a public SSM parameter that holds one.
    #[schemars(regex(pattern = r"^(ami-[0-9a-f]{8,17}|ssm:/[A-Za-z0-9_./-]+)$"))]
    pub ami: String,
    /// Hosts sharing the shards through the lease table (an Auto Scaling group of this many).
    #[schemars(range(min = 1, max = 20))]
    pub count: u32,
    /// VPC for the host(s), with `subnet_ids` (default: a VPC of the stack's own, one public subnet in each of two zones).
    #[schemars(regex(pattern = r"^vpc-[0-9a-f]{8,17}$"))]
    pub vpc_id: Option<String>,
    /// Subnets for the host(s), in that VPC.
    #[schemars(inner(regex(pattern = r"^subnet-[0-9a-f]{8,17}$")))]
    pub subnet_ids: Vec<String>,
    /// Root volume size in GiB (encrypted).
    #[schemars(range(min = 8, max = 1024))]
    pub volume_gb: u32,
}

pub const DEFAULT_AMI: &str =
    "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";

impl Default for HostSpec {
    fn default() -> Self {
        Self {
            instance_type: "t3.micro".into(),
            ami: DEFAULT_AMI.into(),
            count: 1,
            vpc_id: None,
            subnet_ids: Vec::new(),
            volume_gb: 8,
        }
    }
}

/// The bundled ingestion processor.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorSpec {
    /// Where records come from when the host also runs a producer; absent: records come from elsewhere.
    pub source: Option<SourceSpec>,
    pub batch: BatchSpec,
    /// How a record becomes items: `tweets` (the built-in transform, the default) or a jq transform.
    pub transform: TransformSpec,
    /// What is counted live, per window of event time (absent with `tweets`: hashtag and lang a minute).
    #[schemars(length(max = 20))]
    pub aggregates: Vec<AggregateSpec>,
}

impl ProcessorSpec {
    /// The aggregates kept: those declared, or the built-in transform's own.
    pub fn aggregates(&self) -> Vec<AggregateSpec> {
        match (&self.transform, self.aggregates.is_empty()) {
            // What the built-in transform counts natively, written as the
            // jq that would count the same on a tweet's item.
            (TransformSpec::Builtin(Builtin::Tweets), true) => TWEET_AGGREGATES
                .iter()
                .zip(["[.hashtags[] | ascii_downcase] | unique | .[]", ".lang"])
                .map(|(name, by)| AggregateSpec {
                    name: (*name).to_string(),
                    by: by.to_string(),
                    window: "1m".into(),
                })
                .collect(),
            _ => self.aggregates.clone(),
        }
    }
}

/// Exactly one source.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SourceSpec {
    pub x_api: Option<XApiSource>,
    pub replay: Option<ReplaySource>,
    pub synthetic: Option<SyntheticSource>,
}

/// The X API v2 filtered stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct XApiSource {
    /// Filtered-stream rules, kept in sync with the stream (missing ones added, stale ones deleted).
    #[schemars(length(min = 1, max = 1000))]
    pub rules: Vec<XRule>,
    /// Where the bearer token is: `ssm:/parameter/name` (a SecureString) or `env:VARIABLE`. Never the token itself.
    #[schemars(regex(pattern = r"^(ssm:/[A-Za-z0-9_./-]+|env:[A-Za-z_][A-Za-z0-9_]*)$"))]
    pub token: String,
    /// API base URL (tests point it at a local server).
    #[serde(default = "default_x_api_url")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub base_url: String,
}

fn default_x_api_url() -> String {
    "https://api.x.com".into()
}

/// A filtered-stream rule: its query (`"#rustlang lang:en"`), or the query and a tag naming it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum XRule {
    Query(#[schemars(length(min = 1, max = 1024))] String),
    Tagged(TaggedRule),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaggedRule {
    /// The rule query, such as `#rustlang lang:en`.
    #[schemars(length(min = 1, max = 1024))]
    pub value: String,
    /// A name for the rule; matching tweets carry it.
    #[schemars(length(min = 1, max = 255))]
    pub tag: Option<String>,
}

impl XRule {
    pub fn value(&self) -> &str {
        match self {
            XRule::Query(v) => v,
            XRule::Tagged(t) => &t.value,
        }
    }

    pub fn tag(&self) -> Option<&str> {
        match self {
            XRule::Query(_) => None,
            XRule::Tagged(t) => t.tag.as_deref(),
        }
    }
}

/// Replays an NDJSON file of tweets or X API response pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaySource {
    /// Path of the NDJSON file on the host.
    #[schemars(length(min = 1))]
    pub file: String,
    /// Records a second (absent: as fast as the stream takes them).
    #[schemars(range(min = 1, max = 1000000))]
    pub rate_per_s: Option<u32>,
    /// Start again at the end of the file.
    #[serde(default, rename = "loop")]
    pub repeat: bool,
}

/// Generated, realistic tweets for load tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSource {
    /// Records a second.
    #[schemars(range(min = 1, max = 1000000))]
    pub rate_per_s: u32,
}

/// Batch sizes of the processor's AWS calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSpec {
    /// Records a PutRecords call (at most 500, the Kinesis limit).
    #[schemars(range(min = 1, max = 500))]
    pub put_records: u32,
    /// Records a GetRecords call asks for (at most 10,000, the Kinesis limit).
    #[schemars(range(min = 1, max = 10000))]
    pub get_records: u32,
    /// Item writes (PutItem calls) a shard reader has in flight at once (the processor uses at most 8).
    #[schemars(range(min = 1, max = 25))]
    pub write_items: u32,
}

impl Default for BatchSpec {
    fn default() -> Self {
        Self {
            put_records: 500,
            get_records: 10_000,
            write_items: 25,
        }
    }
}

/// CloudWatch alarm thresholds. Defaults suit a pipeline that should be minutes fresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmsSpec {
    /// Alarm when the oldest unread record is older than this, in seconds (the processor is falling behind).
    #[schemars(range(min = 1))]
    pub iterator_age_s: u64,
    /// Alarm when the newest archived record is older than this, in seconds (must exceed archive.buffer.interval_s).
    #[schemars(range(min = 1, max = 86400))]
    pub archive_freshness_s: u64,
    /// Alarm when at least this many records go to dead letters within five minutes.
    #[schemars(range(min = 1))]
    pub dead_letters: u64,
    /// Alarm when throttled requests (Kinesis or DynamoDB) reach this count within five minutes.
    #[schemars(range(min = 1))]
    pub throttles: u64,
    /// Alarm when the processor sends no heartbeat for this many seconds (missing data counts as breaching).
    #[schemars(range(min = 60, max = 86400))]
    pub heartbeat_s: u64,
    /// E-mail address notified of alarms (an SNS topic and subscription are created).
    #[schemars(regex(pattern = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"))]
    pub email: Option<String>,
}

impl Default for AlarmsSpec {
    fn default() -> Self {
        Self {
            iterator_age_s: 60,
            archive_freshness_s: 900,
            dead_letters: 1,
            throttles: 10,
            heartbeat_s: 300,
            email: None,
        }
    }
}

//! The bundled ingestion processor, in two halves on either side of the
//! Kinesis stream: the [`write`] side puts records in, the [`read`] side
//! takes them out and stores what they hold.
//!
//! ```text
//!  write side (`produce`)                  |  read side (`consume`)
//!                                          |
//!  write::source                           |  read::consumer
//!    replay, synthetic, X API stream       |    leases (DynamoDB lease table),
//!      | Record                            |    one shard reader a held shard
//!      v                                   |      | GetRecords
//!  write::producer                         |      v
//!    batches, retries        PutRecords    |  read::batch (the plan)
//!      ------------------>  Kinesis  ----------> read::deaggregate (KPL records)
//!                          stream          |      -> read::transform (bytes -> tweets)
//!                                          |      -> items, aggregates, dead letters
//!                                          |      v
//!                                          |  read::sink
//!                                          |    DynamoDB tables, dead letters in S3,
//!                                          |    then the checkpoint
//!                                          |  read::metrics
//!                                          |    progress events, CloudWatch
//! ```
//!
//! A checkpoint is written only after the sink has stored the batch, so a
//! crash replays records instead of losing them (the writes are idempotent).

pub mod read;
pub mod write;

/// One record for the stream: the partition key decides its shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition_key: String,
    pub data: Vec<u8>,
}

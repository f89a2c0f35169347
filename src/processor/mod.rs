//! The bundled ingestion processor: sources and producer, the consumer
//! (leases, checkpoints), the transform, the sinks and the metrics.
//!
//! Data path: a [`source`] yields [`Record`]s into the [`producer`], which
//! batches them into Kinesis PutRecords. The [`consumer`] leases shards
//! through the DynamoDB lease table, reads them, [`deaggregate`]s KPL
//! records, runs the [`transform`], stores tweets and aggregates through the
//! [`sink`], and checkpoints only after the sink has stored the batch.

pub mod batch;
pub mod consumer;
pub mod deaggregate;
pub mod metrics;
pub mod producer;
pub mod sink;
pub mod source;
pub mod transform;

/// One record for the stream: the partition key decides its shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition_key: String,
    pub data: Vec<u8>,
}

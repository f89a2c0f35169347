//! The write side of the processor: a [`source`] (replayed files, synthetic
//! tweets, the X API filtered stream) yields [`Record`](super::Record)s into
//! a channel, and the [`producer`] batches them into Kinesis PutRecords.

pub mod producer;
pub mod source;

//! The read side of the processor: everything from a Kinesis shard to the
//! stores. The [`consumer`] leases shards and runs one reader a shard; each
//! page of records becomes a [`batch`] plan ([`deaggregate`]d, run through
//! the stack's [`program`]: the built-in tweet [`transform`] or a jq one,
//! made into [`item`]s, or [`dead_letter`]s); the [`sink`] stores the plan, and only then is the
//! shard checkpointed. [`metrics`] counts it all.

pub mod batch;
pub mod consumer;
pub mod dead_letter;
pub mod deaggregate;
pub mod item;
pub mod metrics;
pub mod partial;
pub mod program;
pub mod sink;
pub mod transform;
pub mod tweet_item;

//! Dead letters: what the processor could not use or store, kept in S3
//! with the raw bytes and the reason, under a key that is the same however
//! often the batch is stored.

use serde::Serialize;

/// The reason code of a record whose items DynamoDB refused.
pub const REFUSED: &str = "not_storable";
/// Reasons of the letters a record's tweets share: they have no index of
/// their own, so a record has one of each, naming every tweet it holds.
pub const ITEM_TOO_LARGE: &str = "item_too_large";
pub const BAD_AGGREGATE: &str = "bad_aggregate";

/// A record (or one tweet object of a page) the processor could not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub shard_id: String,
    pub sequence_number: String,
    /// Position inside a KPL aggregate, when the record was one.
    pub sub_sequence: Option<u64>,
    /// Position of the tweet object in a page's `data`, when only it failed.
    pub index: Option<usize>,
    pub partition_key: String,
    /// Stable reason code (`not_json`, `bad_field`, ...).
    pub reason: &'static str,
    pub error: String,
    /// The raw bytes, base64 in the stored object.
    #[serde(serialize_with = "base64")]
    pub data: Vec<u8>,
}

fn base64<S: serde::Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&aws_smithy_types::base64::encode(data))
}

impl DeadLetter {
    /// Object key under the dead-letter prefix: unique per record (and
    /// position), so storing the same batch twice writes the same objects.
    pub fn key(&self, prefix: &str) -> String {
        let mut key = format!("{prefix}{}/{}", self.shard_id, self.sequence_number);
        if let Some(sub) = self.sub_sequence {
            key.push_str(&format!("-{sub}"));
        }
        if let Some(index) = self.index {
            key.push_str(&format!("-i{index}"));
        }
        // The letters a record's tweets share (no index of their own) may
        // stand beside each other: a tweet too large, a declared aggregate
        // that failed on another, an item DynamoDB refused. Each reason is
        // its own object, so none overwrites another.
        match self.reason {
            REFUSED => key.push_str("-refused"),
            ITEM_TOO_LARGE | BAD_AGGREGATE if self.index.is_none() => {
                key.push('-');
                key.push_str(self.reason);
            }
            _ => {}
        }
        key.push_str(".json");
        key
    }
}

//! The processor's transform: the bytes of one Kinesis record in, the tweets
//! it holds out, or the reason the record belongs in the dead letters.
//!
//! Pure: no I/O, no clock, no network, no global state. It is the hot path,
//! so the record is deserialized once, borrowed, into structs that name only
//! the fields it extracts (serde skips the rest without building anything);
//! no `serde_json::Value` tree is built unless the record is broken.
//!
//! # Accepted records
//!
//! | record | recognised by | yields |
//! |---|---|---|
//! | nothing but whitespace (a stream keep-alive) | | [`RecordKind::Heartbeat`], no tweets |
//! | X API v2 response page | `data` is an array | [`RecordKind::Page`], one tweet per element |
//! | X API v2 page with no results | `meta` and no `data`, no `errors` | [`RecordKind::Page`], no tweets |
//! | X API v2 filtered-stream message (or single-tweet lookup) | `data` is an object | [`RecordKind::StreamMessage`], one tweet with the `matching_rules` tags |
//! | bare v2 tweet | `id`, no `id_str`, no `user` | [`RecordKind::TweetV2`] |
//! | v1.1 status | `id_str` or `user` | [`RecordKind::StatusV1`] |
//!
//! Authors of v2 tweets are resolved through `includes.users`; v1.1 statuses
//! carry their `user`. The text is the long form when there is one (v2
//! `note_tweet.text`, v1.1 `extended_tweet.full_text`, then `full_text`, then
//! `text`), and the entities are taken from the same object as the text.
//!
//! # Failures
//!
//! A record that is unusable as a whole is an `Err(`[`DeadLetterReason`]`)`.
//! Inside a page, a tweet object that is not a tweet (no `id`, a field of the
//! wrong type, a bad timestamp) is set aside in [`Transformed::rejected`] with
//! its index and reason, and the other tweets of the page are kept. An API
//! error object (`{"errors": [...]}` with no `data`, or a stream's
//! "operational disconnect") is a dead letter of its own kind.
//!
//! ```
//! use streamstack::processor::read::transform::{transform, RecordKind};
//!
//! let record = br#"{"id": "1", "text": "hello #rust", "author_id": "7",
//!                   "created_at": "2021-09-20T03:54:05.000Z",
//!                   "entities": {"hashtags": [{"tag": "rust"}]}}"#;
//! let out = transform(record).unwrap();
//! assert_eq!(out.kind, RecordKind::TweetV2);
//! assert_eq!(out.tweets[0].created_at.as_deref(), Some("2021-09-20T03:54:05Z"));
//! assert_eq!(out.tweets[0].hashtags, ["rust"]);
//! ```
//!
//! # Modules
//!
//! - [`tweet`]: the typed tweet value the transform yields (what the batch
//!   plan turns into DynamoDB items; the transform knows nothing of items).
//! - [`reason`]: why a record is a dead letter.
//! - `classify`: what a record is, and the tweets extracted from it.
//! - `wire`: the borrowed wire types, only the fields the transform reads.
//! - `slow`: the slow path for records with a value of an unexpected type.

mod classify;
pub mod reason;
mod slow;
pub mod tweet;
mod wire;

use serde::Deserialize;
use serde::Serialize;

use self::classify::classify;
pub use self::reason::DeadLetterReason;
use self::reason::not_json;
use self::slow::transform_slow;
pub use self::tweet::{PublicMetrics, Reference, ReferenceKind, Tweet};
use self::wire::{Obj, RawObject};

/// What one record held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transformed {
    /// The shape the record was recognised as.
    pub kind: RecordKind,
    /// The tweets extracted, in record order.
    pub tweets: Vec<Tweet>,
    /// Tweet objects of a page that could not be used; the rest of the page
    /// is in `tweets`. Always empty for records that are not pages.
    pub rejected: Vec<Rejected>,
}

/// The shape of an accepted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// Empty or whitespace only: a keep-alive, no tweets.
    Heartbeat,
    /// An X API v2 response page (`data` is an array, or absent with `meta`).
    Page,
    /// An X API v2 message holding one tweet in `data` (filtered stream).
    StreamMessage,
    /// A bare X API v2 tweet object.
    TweetV2,
    /// A bare API v1.1 status object.
    StatusV1,
}

/// A tweet object of a page that was set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// Position of the object in the page's `data` array.
    pub index: usize,
    /// Its `id`, when it had a usable one.
    pub id: Option<String>,
    /// Why it was set aside.
    pub reason: DeadLetterReason,
}

/// Transforms the bytes of one Kinesis record.
///
/// `Ok` with no tweets for a heartbeat or an empty page; `Err` when the
/// record as a whole is unusable (see the [module docs](self)).
pub fn transform(record: &[u8]) -> Result<Transformed, DeadLetterReason> {
    let text = std::str::from_utf8(record).map_err(|e| DeadLetterReason::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    if text
        .bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return Ok(Transformed::empty(RecordKind::Heartbeat));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Obj::<RawObject>::deserialize(&mut de).and_then(|raw| de.end().map(|()| raw.0));
    match parsed {
        Ok(raw) => classify(raw, text),
        // A value of an unexpected type somewhere: find out where, and
        // whether the rest of a page can be saved.
        Err(e) if e.is_data() => transform_slow(text),
        Err(e) => Err(not_json(&e)),
    }
}

/// The key under which the sink de-duplicates tweets: the tweet id.
pub fn dedup_key(tweet: &Tweet) -> &str {
    &tweet.id
}

impl Transformed {
    pub(super) fn empty(kind: RecordKind) -> Self {
        Transformed {
            kind,
            tweets: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

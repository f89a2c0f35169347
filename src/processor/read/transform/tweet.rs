//! The typed tweet value the transform yields: the attributes extracted
//! from one tweet, in either API version's shape. Turning it into a stored
//! item is the batch plan's business (`processor::read::batch`), not the transform's.

use std::fmt;

use serde::Serialize;

/// The attributes extracted from one tweet, in either API version's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tweet {
    /// Tweet id (decimal digits; v1.1 `id_str`).
    pub id: String,
    /// Author's user id (v2 `author_id`, v1.1 `user.id_str`), when given.
    pub author_id: Option<String>,
    /// Author's username: v2 through `includes.users` (None when the user is
    /// not included), v1.1 `user.screen_name`.
    pub author_username: Option<String>,
    /// Creation time as RFC 3339 UTC to the second, `2021-09-20T03:54:05Z`.
    pub created_at: Option<String>,
    /// Language code as the API gives it (`en`, `und`, ...).
    pub lang: Option<String>,
    /// Full text: v2 `note_tweet.text` or `text`; v1.1
    /// `extended_tweet.full_text`, `full_text` or `text`.
    pub text: String,
    /// Hashtags without `#`, in order, de-duplicated case-insensitively
    /// (the first spelling is kept).
    pub hashtags: Vec<String>,
    /// Usernames mentioned, in order.
    pub mentions: Vec<String>,
    /// Links, `expanded_url` (or `url` when there is none), in order.
    pub urls: Vec<String>,
    /// Public engagement counts, as far as the record gives them.
    pub metrics: PublicMetrics,
    /// Tweets this one retweets, quotes or replies to.
    pub referenced: Vec<Reference>,
    /// Tags of the filtered-stream rules that matched (stream messages only).
    pub rule_tags: Vec<String>,
}

/// Public engagement counts. None where the record does not give the count
/// (v1.1 REST statuses have no reply or quote counts, impressions are v2
/// only and not always present).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PublicMetrics {
    pub retweet_count: Option<u64>,
    pub reply_count: Option<u64>,
    /// v2 `like_count`, v1.1 `favorite_count`.
    pub like_count: Option<u64>,
    pub quote_count: Option<u64>,
    pub impression_count: Option<u64>,
}

/// A referenced tweet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    #[serde(rename = "type")]
    pub kind: ReferenceKind,
    pub id: String,
}

/// How a tweet references another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReferenceKind {
    Retweeted,
    Quoted,
    RepliedTo,
    /// A type this code does not know, kept as the API spelled it.
    Other(String),
}

impl ReferenceKind {
    /// The API's spelling: `retweeted`, `quoted`, `replied_to`.
    pub fn as_str(&self) -> &str {
        match self {
            ReferenceKind::Retweeted => "retweeted",
            ReferenceKind::Quoted => "quoted",
            ReferenceKind::RepliedTo => "replied_to",
            ReferenceKind::Other(other) => other,
        }
    }

    pub(super) fn parse(s: &str) -> Self {
        match s {
            "retweeted" => ReferenceKind::Retweeted,
            "quoted" => ReferenceKind::Quoted,
            "replied_to" => ReferenceKind::RepliedTo,
            other => ReferenceKind::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ReferenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ReferenceKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

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
//! use streamstack::processor::transform::{transform, RecordKind};
//!
//! let record = br#"{"id": "1", "text": "hello #rust", "author_id": "7",
//!                   "created_at": "2021-09-20T03:54:05.000Z",
//!                   "entities": {"hashtags": [{"tag": "rust"}]}}"#;
//! let out = transform(record).unwrap();
//! assert_eq!(out.kind, RecordKind::TweetV2);
//! assert_eq!(out.tweets[0].created_at.as_deref(), Some("2021-09-20T03:54:05Z"));
//! assert_eq!(out.tweets[0].hashtags, ["rust"]);
//! ```

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

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

    fn parse(s: &str) -> Self {
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

/// Why a record (or one tweet object of a page) is a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadLetterReason {
    /// The bytes are not UTF-8.
    #[error("not UTF-8: invalid byte at offset {valid_up_to}")]
    NotUtf8 { valid_up_to: usize },
    /// The text is not one JSON value (the message has line and column).
    #[error("not JSON: {message}")]
    NotJson { message: String },
    /// JSON, but not a tweet or a record holding tweets.
    #[error("not a tweet: {detail}")]
    NotATweet { detail: String },
    /// A tweet (or the record's envelope) with a field of the wrong type or
    /// an unusable value.
    #[error("bad field `{path}`: {message}")]
    BadField { path: String, message: String },
    /// An X API error response (`errors` and no `data`).
    #[error("X API error: {title}: {detail}")]
    ApiError { title: String, detail: String },
    /// The filtered stream's "operational disconnect" message.
    #[error("stream disconnected: {detail}")]
    StreamDisconnect { detail: String },
}

impl DeadLetterReason {
    /// A stable short name of the reason, for metric dimensions and
    /// dead-letter prefixes: `not_utf8`, `not_json`, `not_a_tweet`,
    /// `bad_field`, `api_error`, `stream_disconnect`.
    pub fn code(&self) -> &'static str {
        match self {
            DeadLetterReason::NotUtf8 { .. } => "not_utf8",
            DeadLetterReason::NotJson { .. } => "not_json",
            DeadLetterReason::NotATweet { .. } => "not_a_tweet",
            DeadLetterReason::BadField { .. } => "bad_field",
            DeadLetterReason::ApiError { .. } => "api_error",
            DeadLetterReason::StreamDisconnect { .. } => "stream_disconnect",
        }
    }
}

impl Serialize for DeadLetterReason {
    /// `{"code": "...", "message": "..."}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("DeadLetterReason", 2)?;
        st.serialize_field("code", self.code())?;
        st.serialize_field("message", &self.to_string())?;
        st.end()
    }
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

/// The tweet as the attributes of its DynamoDB item, in plain JSON: strings,
/// numbers, lists of strings, and `referenced` as a list of `{type, id}`
/// maps. Attributes whose value is unknown (None) are left out, as DynamoDB
/// items are sparse; lists are always present, possibly empty.
///
/// Attributes: `tweet_id`, `author_id`, `author_username`, `created_at`,
/// `lang`, `text`, `hashtags`, `mentions`, `urls`, `retweet_count`,
/// `reply_count`, `like_count`, `quote_count`, `impression_count`,
/// `referenced`, `rule_tags`.
pub fn dynamodb_item(tweet: &Tweet) -> Map<String, Value> {
    fn strings(list: &[String]) -> Value {
        Value::Array(list.iter().map(|s| Value::String(s.clone())).collect())
    }
    let mut item = Map::new();
    fn put_opt_str(item: &mut Map<String, Value>, k: &str, v: &Option<String>) {
        if let Some(v) = v {
            item.insert(k.to_owned(), Value::String(v.clone()));
        }
    }
    item.insert("tweet_id".into(), Value::String(tweet.id.clone()));
    put_opt_str(&mut item, "author_id", &tweet.author_id);
    put_opt_str(&mut item, "author_username", &tweet.author_username);
    put_opt_str(&mut item, "created_at", &tweet.created_at);
    put_opt_str(&mut item, "lang", &tweet.lang);
    item.insert("text".into(), Value::String(tweet.text.clone()));
    item.insert("hashtags".into(), strings(&tweet.hashtags));
    item.insert("mentions".into(), strings(&tweet.mentions));
    item.insert("urls".into(), strings(&tweet.urls));
    let m = &tweet.metrics;
    for (k, v) in [
        ("retweet_count", m.retweet_count),
        ("reply_count", m.reply_count),
        ("like_count", m.like_count),
        ("quote_count", m.quote_count),
        ("impression_count", m.impression_count),
    ] {
        if let Some(v) = v {
            item.insert(k.into(), Value::from(v));
        }
    }
    let referenced = tweet
        .referenced
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("type".into(), Value::String(r.kind.as_str().to_owned()));
            m.insert("id".into(), Value::String(r.id.clone()));
            Value::Object(m)
        })
        .collect();
    item.insert("referenced".into(), Value::Array(referenced));
    item.insert("rule_tags".into(), strings(&tweet.rule_tags));
    item
}

impl Transformed {
    fn empty(kind: RecordKind) -> Self {
        Transformed {
            kind,
            tweets: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------
// Record classification and tweet extraction
// ---------------------------------------------------------------------------

fn not_json(e: &serde_json::Error) -> DeadLetterReason {
    DeadLetterReason::NotJson {
        message: e.to_string(),
    }
}

fn not_a_tweet(detail: impl Into<String>) -> DeadLetterReason {
    DeadLetterReason::NotATweet {
        detail: detail.into(),
    }
}

fn bad_field(path: impl Into<String>, message: impl Into<String>) -> DeadLetterReason {
    DeadLetterReason::BadField {
        path: path.into(),
        message: message.into(),
    }
}

/// Classifies a record that deserialized cleanly.
fn classify(mut raw: RawObject<'_>, text: &str) -> Result<Transformed, DeadLetterReason> {
    match raw.data.take() {
        Some(Data::Many(items)) => Ok(page(
            items.into_iter().map(|o| Ok(o.0)),
            raw.includes.as_ref(),
        )),
        Some(Data::One(item)) => {
            let users = UserIndex::new(raw.includes.as_ref());
            let tags = rule_tags(raw.matching_rules.as_deref());
            let tweet = build_tweet(*item, &users, tags).map_err(|e| in_data(e, "data"))?;
            Ok(Transformed {
                kind: RecordKind::StreamMessage,
                tweets: vec![tweet],
                rejected: Vec::new(),
            })
        }
        None if raw.looks_like_tweet() => {
            let kind = if raw.is_v1() {
                RecordKind::StatusV1
            } else {
                RecordKind::TweetV2
            };
            let tweet = build_tweet(raw, &UserIndex::default(), Vec::new())?;
            Ok(Transformed {
                kind,
                tweets: vec![tweet],
                rejected: Vec::new(),
            })
        }
        None => {
            if let Some(problem) = api_problem(&raw) {
                return Err(problem);
            }
            if raw.meta.is_some() {
                // A page with no results: the API leaves `data` out.
                return Ok(Transformed::empty(RecordKind::Page));
            }
            let keys = top_level_keys(text);
            Err(not_a_tweet(if keys.is_empty() {
                "no `id` (an empty object)".to_owned()
            } else {
                format!("no `id` (keys: {})", keys.join(", "))
            }))
        }
    }
}

/// Prefixes the location of a reason found inside `data`.
fn in_data(reason: DeadLetterReason, at: &str) -> DeadLetterReason {
    match reason {
        DeadLetterReason::NotATweet { detail } => not_a_tweet(format!("`{at}`: {detail}")),
        DeadLetterReason::BadField { path, message } => bad_field(format!("{at}.{path}"), message),
        other => other,
    }
}

/// The tweets of a page, one tweet object (or its failure) at a time.
fn page<'a>(
    items: impl Iterator<Item = Result<RawObject<'a>, DeadLetterReason>>,
    includes: Option<&Includes<'_>>,
) -> Transformed {
    let users = UserIndex::new(includes);
    let mut out = Transformed::empty(RecordKind::Page);
    let (lower, _) = items.size_hint();
    out.tweets.reserve(lower);
    for (index, item) in items.enumerate() {
        let (id, result) = match item {
            Ok(raw) => {
                let id = raw.id_string();
                (id, build_tweet(raw, &users, Vec::new()))
            }
            Err(reason) => (None, Err(reason)),
        };
        match result {
            Ok(tweet) => out.tweets.push(tweet),
            Err(reason) => out.rejected.push(Rejected {
                index,
                id: id.filter(|id| valid_id(id)),
                reason,
            }),
        }
    }
    out
}

/// The record's API error, if it is an error response.
fn api_problem(raw: &RawObject<'_>) -> Option<DeadLetterReason> {
    let problems = raw.errors.as_deref().unwrap_or_default();
    let (title, detail, kind) = if let Some(p) = problems.first() {
        // A disconnect anywhere in the list wins: it is what the operator needs to see.
        let p = problems.iter().find(|p| p.is_disconnect()).unwrap_or(p);
        let detail = p
            .detail
            .as_ref()
            .or(p.message.as_ref())
            .map(|d| d.as_str().to_owned())
            .unwrap_or_default();
        let mut title = p
            .title
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .or_else(|| p.code.and_then(|c| c.0).map(|c| format!("code {c}")))
            .unwrap_or_else(|| "error".to_owned());
        if problems.len() > 1 {
            title = format!("{title} (and {} more)", problems.len() - 1);
        }
        (title, detail, p.is_disconnect())
    } else if let Some(kind) = raw
        .problem_type
        .as_ref()
        .filter(|t| is_problem_uri(t.as_str()))
    {
        // A bare problem object, as the stream endpoint sends on connection errors.
        let title = raw
            .title
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_else(|| kind.as_str().to_owned());
        let detail = raw
            .detail
            .as_ref()
            .map(|d| d.as_str().to_owned())
            .unwrap_or_default();
        (title, detail, is_disconnect(Some(kind), raw.title.as_ref()))
    } else {
        return None;
    };
    Some(if kind {
        DeadLetterReason::StreamDisconnect { detail }
    } else {
        DeadLetterReason::ApiError { title, detail }
    })
}

fn is_problem_uri(s: &str) -> bool {
    s.contains("/problems/")
}

fn is_disconnect(kind: Option<&Loose<'_>>, title: Option<&Loose<'_>>) -> bool {
    kind.is_some_and(|k| k.as_str().ends_with("/operational-disconnect"))
        || title.is_some_and(|t| t.as_str() == "operational-disconnect")
}

fn rule_tags(rules: Option<&[Rule<'_>]>) -> Vec<String> {
    rules
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.tag.as_ref())
        .map(|t| t.as_str().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// A tweet id: 1 to 20 decimal digits (ids are unsigned 64-bit integers).
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

fn quoted(s: &str) -> String {
    const MAX: usize = 40;
    if s.len() <= MAX {
        format!("{s:?}")
    } else {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{:?}...", &s[..end])
    }
}

/// Builds the tweet of one tweet object (either version).
fn build_tweet(
    raw: RawObject<'_>,
    users: &UserIndex<'_>,
    rule_tags: Vec<String>,
) -> Result<Tweet, DeadLetterReason> {
    let v1 = raw.is_v1();
    let id_field = if v1 && raw.id_str.is_some() {
        "id_str"
    } else {
        "id"
    };
    let id = raw
        .id_string()
        .ok_or_else(|| not_a_tweet(format!("no `{id_field}`")))?;
    if !valid_id(&id) {
        return Err(bad_field(
            id_field,
            format!(
                "expected a tweet id (decimal digits), found {}",
                quoted(&id)
            ),
        ));
    }

    let (long_text, long_entities) = if v1 {
        match raw.extended_tweet {
            Some(ext) => (ext.full_text.or(ext.text), ext.entities),
            None => (None, None),
        }
    } else {
        match raw.note_tweet {
            Some(note) => (note.text.or(note.full_text), note.entities),
            None => (None, None),
        }
    };
    let text = long_text
        .or(raw.full_text)
        .or(raw.text)
        .ok_or_else(|| not_a_tweet("no `text`"))?
        .into_string();

    let (author_id, author_username) = if v1 {
        match raw.user {
            Some(user) => (
                user.id_str
                    .map(Str::into_string)
                    .or(user.id.map(Id::into_string)),
                user.screen_name.map(Str::into_string),
            ),
            None => (None, None),
        }
    } else {
        let author_id = raw.author_id.map(Id::into_string);
        let username = author_id
            .as_deref()
            .and_then(|a| users.get(a))
            .map(str::to_owned);
        (author_id, username)
    };

    let created_at = match raw.created_at {
        Some(s) => Some(normalize_created_at(s.as_str()).ok_or_else(|| {
            bad_field(
                "created_at",
                format!("not a timestamp the API writes: {}", quoted(s.as_str())),
            )
        })?),
        None => None,
    };

    let entities = long_entities.or(raw.entities).unwrap_or_default();
    let hashtags = dedup_hashtags(
        entities
            .hashtags
            .iter()
            .flatten()
            .filter_map(|h| h.tag.as_ref().or(h.text.as_ref()))
            .map(|t| t.as_str()),
    );
    let mentions = entities
        .mentions
        .into_iter()
        .flatten()
        .filter_map(|m| m.username)
        .chain(
            entities
                .user_mentions
                .into_iter()
                .flatten()
                .filter_map(|m| m.screen_name),
        )
        .map(Str::into_string)
        .collect();
    let urls = entities
        .urls
        .into_iter()
        .flatten()
        .filter_map(|u| u.expanded_url.or(u.url))
        .map(Str::into_string)
        .filter(|u| !u.is_empty())
        .collect();

    let pm = raw.public_metrics.unwrap_or_default();
    let metrics = PublicMetrics {
        retweet_count: pm.retweet_count.or(raw.retweet_count).and_then(|c| c.0),
        reply_count: pm.reply_count.or(raw.reply_count).and_then(|c| c.0),
        like_count: pm.like_count.or(raw.favorite_count).and_then(|c| c.0),
        quote_count: pm.quote_count.or(raw.quote_count).and_then(|c| c.0),
        impression_count: pm.impression_count.and_then(|c| c.0),
    };

    let mut referenced: Vec<Reference> = raw
        .referenced_tweets
        .into_iter()
        .flatten()
        .map(|r| Reference {
            kind: ReferenceKind::parse(r.kind.as_str()),
            id: r.id.into_string(),
        })
        .collect();
    let mut push_ref = |kind: ReferenceKind, id: Option<String>| {
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            let r = Reference { kind, id };
            if !referenced.contains(&r) {
                referenced.push(r);
            }
        }
    };
    push_ref(
        ReferenceKind::Retweeted,
        raw.retweeted_status.and_then(StatusRef::into_id),
    );
    push_ref(
        ReferenceKind::Quoted,
        raw.quoted_status
            .and_then(StatusRef::into_id)
            .or(raw.quoted_status_id_str.map(Str::into_string)),
    );
    push_ref(
        ReferenceKind::RepliedTo,
        raw.in_reply_to_status_id_str.map(Str::into_string),
    );

    Ok(Tweet {
        id,
        author_id,
        author_username,
        created_at,
        lang: raw.lang.map(Str::into_string),
        text,
        hashtags,
        mentions,
        urls,
        metrics,
        referenced,
        rule_tags,
    })
}

/// Hashtags without a leading `#`, empty ones dropped, de-duplicated
/// case-insensitively keeping the first spelling.
fn dedup_hashtags<'s>(tags: impl Iterator<Item = &'s str>) -> Vec<String> {
    // Lists are short: compare pairwise, and switch to a set of lowercased
    // keys only when a record carries an unusual number of them.
    const LINEAR_MAX: usize = 32;
    let mut out: Vec<String> = Vec::new();
    let mut seen: Option<HashSet<String>> = None;
    for tag in tags {
        let tag = tag.trim_start_matches(['#', '\u{FF03}']);
        if tag.is_empty() {
            continue;
        }
        let duplicate = match &mut seen {
            Some(set) => !set.insert(fold_case(tag)),
            None => out.iter().any(|t| eq_ignore_case(t, tag)),
        };
        if duplicate {
            continue;
        }
        out.push(tag.to_owned());
        if seen.is_none() && out.len() > LINEAR_MAX {
            seen = Some(out.iter().map(|t| fold_case(t)).collect());
        }
    }
    out
}

/// The key of a hashtag in the set: lowercased char by char, as
/// [`eq_ignore_case`] compares (`str::to_lowercase` would turn a final `Σ`
/// into `ς`, so `aΣ` and `aσ` would be one tag in a short list and two in a
/// long one).
fn fold_case(tag: &str) -> String {
    tag.chars().flat_map(char::to_lowercase).collect()
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
    }
}

/// RFC 3339 (v2, `2021-09-20T03:54:05.000Z`) or the v1.1 format
/// (`Wed Oct 10 20:19:24 +0000 2018`) to RFC 3339 UTC to the second.
fn normalize_created_at(s: &str) -> Option<String> {
    const V1: &[BorrowedFormatItem<'_>] = format_description!(
        "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute] [year]"
    );
    const OUT: &[BorrowedFormatItem<'_>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let parsed = if s.as_bytes().get(4) == Some(&b'-') {
        OffsetDateTime::parse(s, &Rfc3339)
    } else {
        OffsetDateTime::parse(s, V1)
    }
    .ok()?;
    let utc = parsed.checked_to_offset(UtcOffset::UTC)?;
    if !(0..=9999).contains(&utc.year()) {
        return None;
    }
    utc.format(OUT).ok()
}

/// The first few top-level keys of a JSON object, to say what a non-tweet was.
fn top_level_keys(text: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> Deserialize<'de> for Keys {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((k, IgnoredAny)) = map.next_entry::<Str<'de>, IgnoredAny>()? {
                        if keys.len() < 8 {
                            keys.push(k.into_string());
                        }
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Keys>(text)
        .map(|k| k.0)
        .unwrap_or_default()
}

/// The slow path, for records that are JSON but have a value of an
/// unexpected type somewhere: a page keeps its good tweets and sets aside the
/// bad ones; any other record is a dead letter naming the field.
fn transform_slow(text: &str) -> Result<Transformed, DeadLetterReason> {
    let mut value: Value = serde_json::from_str(text).map_err(|e| not_json(&e))?;
    let Value::Object(map) = &mut value else {
        return Err(not_a_tweet(format!(
            "expected a JSON object, found {}",
            json_kind(&value)
        )));
    };
    if let Some(Value::Array(_)) = map.get("data") {
        let Some(Value::Array(items)) = map.remove("data") else {
            unreachable!("`data` was just seen to be an array")
        };
        let rest = Value::Object(std::mem::take(map));
        let envelope: Obj<RawObject<'_>> = strict(&rest)?;
        let parsed = items
            .iter()
            .map(|item| strict::<Obj<RawObject<'_>>>(item).map(|o| o.0));
        return Ok(page(parsed, envelope.0.includes.as_ref()));
    }
    // Not a page: the whole record is unusable. Say where it went wrong.
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, Obj<RawObject<'_>>>(&mut de) {
        Ok(raw) => classify(raw.0, text),
        Err(e) => Err(path_error(e.path(), e.inner())),
    }
}

/// Deserializes a tweet object or envelope from a `Value`, naming the field
/// at fault.
fn strict<'a, T: Deserialize<'a>>(value: &'a Value) -> Result<T, DeadLetterReason> {
    serde_path_to_error::deserialize(value).map_err(|e| path_error(e.path(), e.inner()))
}

fn path_error(path: &serde_path_to_error::Path, e: &serde_json::Error) -> DeadLetterReason {
    let path = path.to_string();
    let path = if path == "." {
        "(record)".to_owned()
    } else {
        path
    };
    bad_field(path, e.to_string())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `includes.users`, indexed by user id.
#[derive(Default)]
struct UserIndex<'a> {
    /// (id, username), sorted by id.
    by_id: Vec<(&'a str, &'a str)>,
}

impl<'a> UserIndex<'a> {
    fn new(includes: Option<&'a Includes<'_>>) -> Self {
        let mut by_id: Vec<(&'a str, &'a str)> = includes
            .and_then(|i| i.users.as_deref())
            .unwrap_or_default()
            .iter()
            .filter_map(|u| Some((u.id.as_ref()?.as_str(), u.username.as_ref()?.as_str())))
            .collect();
        // Stable sort: with duplicate ids the first listed wins.
        by_id.sort_by(|a, b| a.0.cmp(b.0));
        by_id.dedup_by(|later, earlier| later.0 == earlier.0);
        UserIndex { by_id }
    }

    fn get(&self, id: &str) -> Option<&'a str> {
        self.by_id
            .binary_search_by(|(k, _)| (*k).cmp(id))
            .ok()
            .map(|i| self.by_id[i].1)
    }
}

// ---------------------------------------------------------------------------
// Borrowed wire types: only the fields the transform reads
// ---------------------------------------------------------------------------

/// Every field the transform reads from a record, in any accepted shape.
/// One struct for all shapes, so the record is read once whatever it is;
/// the field names do not clash in type between the shapes (v1.1 numeric
/// `id` is accepted by [`Id`]).
#[derive(serde::Deserialize)]
struct RawObject<'a> {
    // Envelope (v2 pages and stream messages).
    #[serde(borrow)]
    data: Option<Data<'a>>,
    #[serde(borrow)]
    includes: Option<Includes<'a>>,
    #[serde(borrow)]
    matching_rules: Option<Vec<Rule<'a>>>,
    #[serde(borrow)]
    errors: Option<Vec<Problem<'a>>>,
    meta: Option<IgnoredAny>,
    // A bare problem object.
    #[serde(borrow)]
    title: Option<Loose<'a>>,
    #[serde(borrow)]
    detail: Option<Loose<'a>>,
    #[serde(borrow, rename = "type")]
    problem_type: Option<Loose<'a>>,
    // The tweet, v2 and v1.1.
    #[serde(borrow)]
    id: Option<Id<'a>>,
    #[serde(borrow)]
    id_str: Option<Str<'a>>,
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    full_text: Option<Str<'a>>,
    #[serde(borrow)]
    note_tweet: Option<LongForm<'a>>,
    #[serde(borrow)]
    extended_tweet: Option<LongForm<'a>>,
    #[serde(borrow)]
    author_id: Option<Id<'a>>,
    #[serde(borrow)]
    user: Option<UserV1<'a>>,
    #[serde(borrow)]
    created_at: Option<Str<'a>>,
    #[serde(borrow)]
    lang: Option<Str<'a>>,
    #[serde(borrow)]
    entities: Option<Entities<'a>>,
    public_metrics: Option<MetricsV2>,
    retweet_count: Option<Count>,
    favorite_count: Option<Count>,
    reply_count: Option<Count>,
    quote_count: Option<Count>,
    #[serde(borrow)]
    referenced_tweets: Option<Vec<RefV2<'a>>>,
    #[serde(borrow)]
    retweeted_status: Option<StatusRef<'a>>,
    #[serde(borrow)]
    quoted_status: Option<StatusRef<'a>>,
    #[serde(borrow)]
    quoted_status_id_str: Option<Str<'a>>,
    #[serde(borrow)]
    in_reply_to_status_id_str: Option<Str<'a>>,
}

impl RawObject<'_> {
    /// v1.1 statuses have `id_str` and `user`; v2 tweets have neither.
    fn is_v1(&self) -> bool {
        self.id_str.is_some() || self.user.is_some()
    }

    fn looks_like_tweet(&self) -> bool {
        self.id.is_some() || self.is_v1()
    }

    fn id_string(&self) -> Option<String> {
        let from_str = if self.is_v1() {
            self.id_str.as_ref().map(|s| s.as_str().to_owned())
        } else {
            None
        };
        from_str.or_else(|| self.id.as_ref().map(Id::to_string_owned))
    }
}

/// `data`: an array of tweets (a page) or one tweet (a stream message).
enum Data<'a> {
    Many(Vec<Obj<RawObject<'a>>>),
    One(Box<RawObject<'a>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Data<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Data<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of tweet objects or a tweet object")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data<'a>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Data::Many(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Data<'a>, A::Error> {
                RawObject::deserialize(MapAccessDeserializer::new(map))
                    .map(|t| Data::One(Box::new(t)))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A struct that must come as a JSON object (derived struct impls would
/// also take an array, field by field).
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

#[derive(serde::Deserialize)]
struct Includes<'a> {
    #[serde(borrow)]
    users: Option<Vec<UserV2<'a>>>,
}

#[derive(serde::Deserialize)]
struct UserV2<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    username: Option<Str<'a>>,
}

#[derive(serde::Deserialize)]
struct UserV1<'a> {
    #[serde(borrow)]
    id: Option<Id<'a>>,
    #[serde(borrow)]
    id_str: Option<Str<'a>>,
    #[serde(borrow)]
    screen_name: Option<Str<'a>>,
}

#[derive(serde::Deserialize)]
struct Rule<'a> {
    #[serde(borrow)]
    tag: Option<Loose<'a>>,
}

/// An API error object (v2 problem, or v1.1 `{code, message}`).
#[derive(serde::Deserialize)]
struct Problem<'a> {
    #[serde(borrow)]
    title: Option<Loose<'a>>,
    #[serde(borrow)]
    detail: Option<Loose<'a>>,
    #[serde(borrow)]
    message: Option<Loose<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Loose<'a>>,
    code: Option<Count>,
}

impl Problem<'_> {
    fn is_disconnect(&self) -> bool {
        is_disconnect(self.kind.as_ref(), self.title.as_ref())
    }
}

/// v2 `note_tweet` (`text`) or v1.1 `extended_tweet` (`full_text`).
#[derive(serde::Deserialize)]
struct LongForm<'a> {
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    full_text: Option<Str<'a>>,
    #[serde(borrow)]
    entities: Option<Entities<'a>>,
}

/// Entities of both versions: v2 `hashtags[].tag`, `mentions[].username`;
/// v1.1 `hashtags[].text`, `user_mentions[].screen_name`; `urls` in both.
#[derive(serde::Deserialize, Default)]
struct Entities<'a> {
    #[serde(borrow)]
    hashtags: Option<Vec<Hashtag<'a>>>,
    #[serde(borrow)]
    mentions: Option<Vec<MentionV2<'a>>>,
    #[serde(borrow)]
    user_mentions: Option<Vec<MentionV1<'a>>>,
    #[serde(borrow)]
    urls: Option<Vec<Url<'a>>>,
}

#[derive(serde::Deserialize)]
struct Hashtag<'a> {
    #[serde(borrow)]
    tag: Option<Str<'a>>,
    #[serde(borrow)]
    text: Option<Str<'a>>,
}

#[derive(serde::Deserialize)]
struct MentionV2<'a> {
    #[serde(borrow)]
    username: Option<Str<'a>>,
}

#[derive(serde::Deserialize)]
struct MentionV1<'a> {
    #[serde(borrow)]
    screen_name: Option<Str<'a>>,
}

#[derive(serde::Deserialize)]
struct Url<'a> {
    #[serde(borrow)]
    expanded_url: Option<Str<'a>>,
    #[serde(borrow)]
    url: Option<Str<'a>>,
}

#[derive(serde::Deserialize, Default)]
struct MetricsV2 {
    retweet_count: Option<Count>,
    reply_count: Option<Count>,
    like_count: Option<Count>,
    quote_count: Option<Count>,
    impression_count: Option<Count>,
}

#[derive(serde::Deserialize)]
struct RefV2<'a> {
    #[serde(borrow, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow)]
    id: Id<'a>,
}

/// v1.1 `retweeted_status` / `quoted_status`: only the id is read.
#[derive(serde::Deserialize)]
struct StatusRef<'a> {
    #[serde(borrow)]
    id: Option<Id<'a>>,
    #[serde(borrow)]
    id_str: Option<Str<'a>>,
}

impl StatusRef<'_> {
    fn into_id(self) -> Option<String> {
        self.id_str
            .map(Str::into_string)
            .or(self.id.map(Id::into_string))
    }
}

/// A string, borrowed from the record unless it had escapes.
/// (`Option<Cow<str>>` would always allocate: serde's `borrow` only reaches
/// a bare `Cow` field.)
struct Str<'a>(Cow<'a, str>);

impl Str<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }

    fn into_string(self) -> String {
        self.0.into_owned()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

/// A string where one is expected, anything else ignored: for fields only
/// used to recognise error objects, so an odd value there never rejects a
/// tweet.
struct Loose<'a>(Option<Str<'a>>);

impl Loose<'_> {
    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("", Str::as_str)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Loose<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Loose<'a>, E> {
                Ok(Loose(Some(Str(Cow::Borrowed(v)))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Loose<'a>, E> {
                Ok(Loose(Some(Str(Cow::Owned(v.to_owned())))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Loose<'a>, E> {
                Ok(Loose(Some(Str(Cow::Owned(v)))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Loose<'a>, E> {
                Ok(Loose(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Loose<'a>, E> {
                Ok(Loose(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Loose<'a>, E> {
                Ok(Loose(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Loose<'a>, E> {
                Ok(Loose(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Loose<'a>, E> {
                Ok(Loose(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose<'a>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose<'a>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose(None))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A tweet or user id: a string (v2, v1.1 `id_str`) or an integer (v1.1 `id`).
enum Id<'a> {
    Str(Str<'a>),
    Num(u64),
}

impl Id<'_> {
    fn into_string(self) -> String {
        match self {
            Id::Str(s) => s.into_string(),
            Id::Num(n) => n.to_string(),
        }
    }

    fn to_string_owned(&self) -> String {
        match self {
            Id::Str(s) => s.as_str().to_owned(),
            Id::Num(n) => n.to_string(),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Id<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Id<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id (a string or a non-negative integer)")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Id<'a>, E> {
                Ok(Id::Str(Str(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id<'a>, E> {
                Ok(Id::Str(Str(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Id<'a>, E> {
                Ok(Id::Str(Str(Cow::Owned(v))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id<'a>, E> {
                Ok(Id::Num(v))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// An engagement count. Lenient: a count is information, not identity, so an
/// odd value (negative, fractional, `"100+"` as very old v1.1 statuses have)
/// gives its leading digits or None instead of rejecting the tweet.
#[derive(Clone, Copy)]
struct Count(Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                Ok(Count(u64::try_from(v).ok()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Count, E> {
                // `as` saturates; only whole, in-range values are kept.
                let ok = v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 1.8e19;
                Ok(Count(ok.then_some(v as u64)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Count, E> {
                let digits = v.bytes().take_while(u8::is_ascii_digit).count();
                Ok(Count(v[..digits].parse().ok()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Count(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Count(None))
            }
        }
        d.deserialize_any(V)
    }
}

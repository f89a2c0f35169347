//! Record classification and tweet extraction: what a record that
//! deserialized cleanly is (page, stream message, bare tweet, API error,
//! nothing usable), and the [`Tweet`] built from each tweet object.

use std::collections::HashSet;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use super::reason::{DeadLetterReason, bad_field, in_data, not_a_tweet};
use super::tweet::{PublicMetrics, Reference, ReferenceKind, Tweet};
use super::wire::{Data, Id, Includes, Loose, RawObject, Rule, StatusRef, Str};
use super::{RecordKind, Rejected, Transformed};

/// Classifies a record that deserialized cleanly.
pub(super) fn classify(
    mut raw: RawObject<'_>,
    text: &str,
) -> Result<Transformed, DeadLetterReason> {
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

/// The tweets of a page, one tweet object (or its failure) at a time.
pub(super) fn page<'a>(
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

pub(super) fn is_disconnect(kind: Option<&Loose<'_>>, title: Option<&Loose<'_>>) -> bool {
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

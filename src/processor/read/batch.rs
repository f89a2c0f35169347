//! What one batch of Kinesis records becomes: items, what their events
//! count in the aggregates, and dead letters, by the stack's [`Program`] (the built-in tweet
//! transform, or a jq transform). Pure (no I/O, no clock: the caller passes
//! the time), so the sink, the `transform` dry run and `test` share it.
//!
//! The tweet item's shape is in [`super::tweet_item`]:
//! the transform yields typed tweets and knows nothing of items.
//!
//! Idempotence is decided here. An item is keyed by its key (a tweet's id),
//! so an event seen twice (a producer retry, a replay after a crash, a
//! lease handover) overwrites itself. What an event counts in the live
//! aggregates is planned as an [`Occurrence`]: its place in the stream (its
//! *position*: shard, sequence number, sub-sequence, index in the record),
//! its window and its values. Whether it is counted is decided when its
//! item is written (the item remembers the position that counts it, see
//! [`super::sink`]), and the counts are committed with the checkpoint (see
//! [`super::partial`]). An event's window is taken from its own time, else
//! from the record's arrival in the stream, which a replay keeps.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;

pub use super::dead_letter::{BAD_AGGREGATE, DeadLetter, ITEM_TOO_LARGE, REFUSED};
use super::deaggregate::deaggregate;
pub use super::item::item_size;
use super::item::{Item, to_json_text};
use super::program::{
    By, CANARY_FIELD, Event, Outcome, Program, SMOKE_RULE_TAG, Transform, canary_id,
    counted_on_json, run_jq,
};
use super::transform;

/// One Kinesis record as read from a shard.
#[derive(Debug, Clone)]
pub struct InRecord<'a> {
    pub shard_id: &'a str,
    pub sequence_number: &'a str,
    pub partition_key: &'a str,
    pub data: &'a [u8],
    /// When the stream took it (Unix seconds): the event time of events
    /// that give none, the same on every read of the record.
    pub arrival_s: Option<i64>,
}

/// How tweet items are keyed and expire (from the stack file's `table`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemShape {
    /// The tweets table's partition key attribute (it holds the tweet id).
    pub partition_key: String,
    /// TTL attribute and days after ingestion, when the table expires items.
    pub ttl: Option<(String, u32)>,
    /// Days the aggregates' partial counts are kept.
    pub aggregates_ttl_days: u32,
}

impl Default for ItemShape {
    fn default() -> Self {
        Self {
            partition_key: "tweet_id".into(),
            ttl: None,
            aggregates_ttl_days: 30,
        }
    }
}

/// Everything a batch stores.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchPlan {
    /// Items by key (an item twice in one batch is one item, one write; the
    /// last one is kept).
    pub items: BTreeMap<String, Item>,
    /// What each key's events would count, in stream order: the first
    /// occurrence of a key in the stream is the one counted.
    pub occurrences: BTreeMap<String, Vec<Occurrence>>,
    pub dead_letters: Vec<DeadLetter>,
    /// Kinesis records in the batch, and user records after de-aggregation.
    pub records: usize,
    pub user_records: usize,
    /// Keep-alive records (blank), neither items nor dead letters.
    pub heartbeats: usize,
    /// Events (tweets) made into items, duplicates included.
    pub events_seen: usize,
    /// The record each item was made from (the last one, whose item is
    /// kept, for an item two records make): a write DynamoDB refuses turns
    /// that record into a dead letter ([`rejected_dead_letters`]).
    pub origins: BTreeMap<String, Origin>,
}

/// One event's place in the stream and what it counts, if it is the
/// occurrence of its key that counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// `shard:sequence:sub-sequence:index`: unique in the stream, and the
    /// same on every read of the record.
    pub position: String,
    /// The record of the batch it is in (by position in the batch).
    pub record: usize,
    /// For each aggregate (by index), its window's start and the values.
    pub counts: Vec<(usize, String, Vec<String>)>,
}

/// Where an item came from: a record of the batch (by position) and, in a
/// KPL aggregate, the user record in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub record: usize,
    pub sub_sequence: Option<u64>,
}

/// Longest value counted in the live aggregates. It is a key of a partial
/// count's map; no real hashtag comes near 200 bytes (X caps a post at
/// 25,000 characters, hashtags in practice at about 100). A longer value
/// stays in the item and is only left out of the counts.
pub const MAX_AGGREGATE_VALUE_BYTES: usize = 200;

pub use super::item::MAX_ITEM_BYTES;
pub use super::tweet_item::{MAX_TEXT_BYTES, dynamodb_item, tweet_item};

/// Plans the writes of a batch. `now_s` is the ingestion time (Unix
/// seconds), used for TTLs, and for event time when neither the event nor
/// the record's arrival gives one.
pub fn plan(records: &[InRecord<'_>], program: &Program, now_s: i64) -> BatchPlan {
    let mut plan = BatchPlan {
        records: records.len(),
        ..BatchPlan::default()
    };
    for (position, record) in records.iter().enumerate() {
        for user in deaggregate(record.partition_key, record.data) {
            plan.user_records += 1;
            let at = Place {
                record,
                sub_sequence: user.sub_sequence,
                partition_key: &user.partition_key,
                data: &user.data,
                origin: Origin {
                    record: position,
                    sub_sequence: user.sub_sequence,
                },
                fallback_s: record.arrival_s.unwrap_or(now_s),
                now_s,
            };
            match &program.transform {
                Transform::Tweets => plan_tweets(&mut plan, program, &at),
                Transform::Jq(_) if let Some(id) = canary_id(at.data) => {
                    let item: Item =
                        [(CANARY_FIELD.to_string(), AttributeValue::Bool(true))].into();
                    let event = Event {
                        index: 0,
                        key: id,
                        time_s: None,
                        attributes: item,
                        counted: vec![Vec::new(); program.aggregates.len()],
                    };
                    plan_event(&mut plan, program, &at, event);
                }
                Transform::Jq(t) => match run_jq(t, &program.aggregates, at.data) {
                    Ok(Outcome::Heartbeat) => plan.heartbeats += 1,
                    Ok(Outcome::Events(events)) => {
                        for event in events {
                            match event {
                                Ok(event) => plan_event(&mut plan, program, &at, event),
                                Err(f) => {
                                    plan.dead_letters.push(at.dead(f.index, f.reason, f.error))
                                }
                            }
                        }
                    }
                    Err(f) => plan.dead_letters.push(at.dead(f.index, f.reason, f.error)),
                },
            }
        }
    }
    plan
}

/// One user record being planned, and the times it is planned with.
struct Place<'a> {
    record: &'a InRecord<'a>,
    sub_sequence: Option<u64>,
    partition_key: &'a str,
    data: &'a [u8],
    origin: Origin,
    /// Event time when the event has none: the record's arrival, which a
    /// replay does not change.
    fallback_s: i64,
    now_s: i64,
}

impl Place<'_> {
    fn dead(&self, index: Option<usize>, reason: &'static str, error: String) -> DeadLetter {
        DeadLetter {
            shard_id: self.record.shard_id.to_string(),
            sequence_number: self.record.sequence_number.to_string(),
            sub_sequence: self.sub_sequence,
            index,
            partition_key: self.partition_key.to_string(),
            reason,
            error,
            data: self.data.to_vec(),
        }
    }
}

/// The built-in path: the tweets of a record, their items and counts.
fn plan_tweets(plan: &mut BatchPlan, program: &Program, at: &Place<'_>) {
    let out = match transform::transform(at.data) {
        Ok(out) => out,
        Err(reason) => {
            plan.dead_letters
                .push(at.dead(None, reason.code(), reason.to_string()));
            return;
        }
    };
    if out.kind == transform::RecordKind::Heartbeat {
        plan.heartbeats += 1;
    }
    for rejected in &out.rejected {
        plan.dead_letters.push(at.dead(
            Some(rejected.index),
            rejected.reason.code(),
            rejected.reason.to_string(),
        ));
    }
    for (index, tweet) in out.tweets.iter().enumerate() {
        let item = match tweet_item(tweet, &program.shape, at.now_s) {
            Ok(item) => item,
            Err(error) => {
                record_letter(plan, at, ITEM_TOO_LARGE, error);
                continue;
            }
        };
        let mut counted = Vec::with_capacity(program.aggregates.len());
        let mut refused = None;
        let canary = tweet.rule_tags.iter().any(|t| t == SMOKE_RULE_TAG);
        // The item's JSON, made once a tweet for every jq aggregate.
        let mut json: Option<String> = None;
        for aggregate in &program.aggregates {
            counted.push(match &aggregate.by {
                _ if canary => Vec::new(),
                By::Hashtags => {
                    let mut tags: Vec<String> =
                        tweet.hashtags.iter().map(|h| h.to_lowercase()).collect();
                    tags.sort();
                    tags.dedup();
                    tags
                }
                By::Lang => tweet.lang.iter().cloned().collect(),
                By::Jq(by) => {
                    let json = json.get_or_insert_with(|| to_json_text(&item));
                    match counted_on_json(by, json.as_bytes()) {
                        Ok(values) => values,
                        Err(e) => {
                            refused = Some(format!("aggregates.{}: {e}", aggregate.name));
                            Vec::new()
                        }
                    }
                }
            });
        }
        // As on the jq path: the event is stored whole or not at all.
        if let Some(error) = refused {
            record_letter(plan, at, BAD_AGGREGATE, error);
            continue;
        }
        let time_s = tweet.created_at.as_deref().and_then(|created| {
            time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| t.unix_timestamp())
        });
        plan.events_seen += 1;
        add(
            plan,
            program,
            at,
            index,
            tweet.id.clone(),
            item,
            time_s,
            &counted,
        );
    }
}

/// A tweet's letter with no index of its own: one letter a record and
/// reason (its object key has no tweet index, so two would be one object),
/// naming every tweet it holds.
fn record_letter(plan: &mut BatchPlan, at: &Place<'_>, reason: &'static str, error: String) {
    // The record's letters are the last ones planned.
    let same_record = |letter: &&mut DeadLetter| {
        letter.sequence_number == at.record.sequence_number
            && letter.sub_sequence == at.sub_sequence
    };
    let letter = plan
        .dead_letters
        .iter_mut()
        .rev()
        .take_while(same_record)
        .find(|letter| letter.reason == reason && letter.index.is_none());
    match letter {
        Some(letter) => {
            letter.error.push_str("; ");
            letter.error.push_str(&error);
        }
        None => plan.dead_letters.push(at.dead(None, reason, error)),
    }
}

/// A jq event: its item (key, fields, TTL) and counts.
fn plan_event(plan: &mut BatchPlan, program: &Program, at: &Place<'_>, event: Event) {
    let shape = &program.shape;
    let mut item = event.attributes;
    item.insert(
        shape.partition_key.clone(),
        AttributeValue::S(event.key.clone()),
    );
    if let Some((attribute, days)) = &shape.ttl {
        item.insert(
            attribute.clone(),
            AttributeValue::N(expiry(at.now_s, *days).to_string()),
        );
    }
    let size = item_size(&item);
    if size > MAX_ITEM_BYTES {
        plan.dead_letters.push(at.dead(
            Some(event.index),
            "item_too_large",
            format!("the item of key {} would take about {size} bytes, over DynamoDB's {MAX_ITEM_BYTES}-byte item limit", event.key),
        ));
        return;
    }
    plan.events_seen += 1;
    add(
        plan,
        program,
        at,
        event.index,
        event.key,
        item,
        event.time_s,
        &event.counted,
    );
}

/// Adds an item, and what its event would count, to the plan.
#[allow(clippy::too_many_arguments)]
fn add(
    plan: &mut BatchPlan,
    program: &Program,
    at: &Place<'_>,
    index: usize,
    key: String,
    item: Item,
    time_s: Option<i64>,
    counted: &[Vec<String>],
) {
    let time_s = time_s.unwrap_or(at.fallback_s);
    let counts = program
        .aggregates
        .iter()
        .zip(counted)
        .enumerate()
        .filter_map(|(n, (aggregate, values))| {
            let values: Vec<String> = values
                .iter()
                .filter(|v| v.len() <= MAX_AGGREGATE_VALUE_BYTES)
                .cloned()
                .collect();
            (!values.is_empty()).then(|| (n, window_start(time_s, aggregate.window_s), values))
        })
        .collect();
    plan.occurrences
        .entry(key.clone())
        .or_default()
        .push(Occurrence {
            position: position(at.record, at.sub_sequence, index),
            record: at.origin.record,
            counts,
        });
    plan.origins.insert(key.clone(), at.origin);
    plan.items.insert(key, item);
}

/// An event's position: `shard:sequence:sub-sequence:index`, the shard by
/// its number (`shardId-000000000007` is 7) to keep the item small.
fn position(record: &InRecord<'_>, sub_sequence: Option<u64>, index: usize) -> String {
    let shard = record
        .shard_id
        .rsplit('-')
        .next()
        .unwrap_or(record.shard_id);
    let shard = shard.trim_start_matches('0');
    let sub = sub_sequence.map(|s| s.to_string()).unwrap_or_default();
    format!(
        "{}:{}:{sub}:{index}",
        if shard.is_empty() { "0" } else { shard },
        record.sequence_number
    )
}

/// What the batch counts if it is all there is: each key counted once, by
/// its first occurrence (what the pipeline holds after any replay of it):
/// aggregate (by index) -> window start -> value -> events.
pub fn pure_counts(plan: &BatchPlan) -> BTreeMap<usize, BTreeMap<String, BTreeMap<String, u64>>> {
    let mut counts: BTreeMap<usize, BTreeMap<String, BTreeMap<String, u64>>> = BTreeMap::new();
    for occurrences in plan.occurrences.values() {
        let Some(first) = occurrences.first() else {
            continue;
        };
        for (aggregate, window, values) in &first.counts {
            let window = counts
                .entry(*aggregate)
                .or_default()
                .entry(window.clone())
                .or_default();
            for value in values {
                *window.entry(value.clone()).or_default() += 1;
            }
        }
    }
    counts
}

/// A write the store refused for good, and why (the service's code and message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The item's key.
    pub key: String,
    pub table: String,
    pub code: String,
    pub message: String,
}

/// The dead letters of the records whose items DynamoDB refused: one a
/// record (or user record of a KPL aggregate), with the raw bytes and the
/// service's reason, however many of its items were refused.
pub fn rejected_dead_letters(
    records: &[InRecord<'_>],
    plan: &BatchPlan,
    rejected: &[Rejected],
) -> Vec<DeadLetter> {
    let mut letters: BTreeMap<(usize, Option<u64>), DeadLetter> = BTreeMap::new();
    for r in rejected {
        let Some(origin) = plan.origins.get(&r.key).copied() else {
            continue;
        };
        let Some(record) = records.get(origin.record) else {
            continue;
        };
        let error = format!("table {}: {}: {}", r.table, r.code, r.message);
        if let Some(letter) = letters.get_mut(&(origin.record, origin.sub_sequence)) {
            if !letter.error.contains(&error) {
                letter.error.push_str("; ");
                letter.error.push_str(&error);
            }
            continue;
        }
        let user = deaggregate(record.partition_key, record.data)
            .into_iter()
            .find(|u| u.sub_sequence == origin.sub_sequence);
        let (partition_key, data) = match &user {
            Some(u) => (u.partition_key.to_string(), u.data.to_vec()),
            None => (record.partition_key.to_string(), record.data.to_vec()),
        };
        letters.insert(
            (origin.record, origin.sub_sequence),
            DeadLetter {
                shard_id: record.shard_id.to_string(),
                sequence_number: record.sequence_number.to_string(),
                sub_sequence: origin.sub_sequence,
                index: None,
                partition_key,
                reason: REFUSED,
                error,
                data,
            },
        );
    }
    letters.into_values().collect()
}

/// `days` after `now_s`, in Unix seconds; saturating, so that no clock or
/// TTL setting can overflow (a panic in a debug build, a date in the past in
/// a release build).
pub fn expiry(now_s: i64, days: u32) -> i64 {
    now_s.saturating_add(i64::from(days) * 86_400)
}

/// `YYYY-MM-DDTHH:MM` of a Unix time.
pub fn minute_at(unix_s: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_s)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// The start of the window of `window_s` seconds that holds `time_s`, as
/// `YYYY-MM-DDTHH:MM` (windows divide a day, so they start on whole minutes).
pub fn window_start(time_s: i64, window_s: i64) -> String {
    minute_at(time_s.saturating_sub(time_s.rem_euclid(window_s.max(60))))
}

/// Each key's first occurrence as `(aggregate#window, value#key)` pairs,
/// sorted: what the plan would count, in tests' terms.
#[cfg(test)]
pub(crate) fn counted_pairs(plan: &BatchPlan, program: &Program) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = plan
        .occurrences
        .iter()
        .filter_map(|(key, o)| Some((key, o.first()?)))
        .flat_map(|(key, first)| {
            first.counts.iter().flat_map(move |(n, window, values)| {
                values.iter().map(move |value| {
                    (
                        format!("{}#{window}", program.aggregates[*n].name),
                        format!("{value}#{key}"),
                    )
                })
            })
        })
        .collect();
    pairs.sort();
    pairs
}

/// Counts per value, highest first, ties by value.
pub fn rank(counts: BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = counts.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(seq: &'a str, data: &'a [u8]) -> InRecord<'a> {
        InRecord {
            shard_id: "shardId-000000000000",
            sequence_number: seq,
            partition_key: "pk",
            data,
            arrival_s: None,
        }
    }

    const TWEET: &[u8] =
        br#"{"data": {"id": "100", "text": "hi #Rust #rust #Data", "author_id": "7", "lang": "en",
        "created_at": "2021-09-20T03:54:05.000Z",
        "entities": {"hashtags": [{"tag": "Rust"}, {"tag": "rust"}, {"tag": "Data"}]}},
        "includes": {"users": [{"id": "7", "username": "ann"}]}}"#;

    #[test]
    fn a_tweet_becomes_one_item_counted_once_per_value() {
        let p = plan(&[record("1", TWEET)], &Program::default(), 1_700_000_000);
        assert_eq!(p.items.len(), 1);
        let item = crate::processor::read::item::to_json(&p.items["100"]);
        assert_eq!(item["tweet_id"], "100");
        assert_eq!(item["author_username"], "ann");
        assert_eq!(
            counted_pairs(&p, &Program::default()),
            [
                ("hashtag#2021-09-20T03:54".into(), "data#100".into()),
                ("hashtag#2021-09-20T03:54".into(), "rust#100".into()),
                ("lang#2021-09-20T03:54".into(), "en#100".into()),
            ]
        );
        assert!(p.dead_letters.is_empty());
    }

    #[test]
    fn the_same_tweet_twice_plans_the_same_writes_as_once() {
        let once = plan(&[record("1", TWEET)], &Program::default(), 5);
        let twice = plan(
            &[record("1", TWEET), record("2", TWEET)],
            &Program::default(),
            5,
        );
        assert_eq!(once.items, twice.items);
        assert_eq!(
            counted_pairs(&once, &Program::default()),
            counted_pairs(&twice, &Program::default())
        );
        assert_eq!(pure_counts(&once), pure_counts(&twice));
        // Both occurrences are planned, in stream order: the first counts
        // unless the item says otherwise when it is written.
        let positions: Vec<&str> = twice.occurrences["100"]
            .iter()
            .map(|o| o.position.as_str())
            .collect();
        assert_eq!(positions, ["0:1::0", "0:2::0"]);
        assert_eq!(twice.events_seen, 2);
    }

    #[test]
    fn bad_records_become_dead_letters_with_their_place_and_bytes() {
        let p = plan(
            &[
                record("7", b"{not json"),
                record("8", TWEET),
                record("9", b"  \n"),
            ],
            &Program::default(),
            5,
        );
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.heartbeats, 1);
        assert_eq!(p.dead_letters.len(), 1);
        let d = &p.dead_letters[0];
        assert_eq!((d.sequence_number.as_str(), d.reason), ("7", "not_json"));
        assert_eq!(d.data, b"{not json");
        assert_eq!(
            d.key("dead-letters/"),
            "dead-letters/shardId-000000000000/7.json"
        );
        let json = serde_json::to_value(d).unwrap();
        assert_eq!(json["data"], aws_smithy_types::base64::encode(b"{not json"));
    }

    #[test]
    fn the_partition_key_and_ttl_follow_the_table() {
        let shape = ItemShape {
            partition_key: "id".into(),
            ttl: Some(("expires_at".into(), 2)),
            aggregates_ttl_days: 1,
        };
        let p = plan(&[record("1", TWEET)], &Program::tweets(shape), 1000);
        let item = crate::processor::read::item::to_json(&p.items["100"]);
        assert_eq!(item["id"], "100");
        assert!(item.get("tweet_id").is_none());
        assert_eq!(item["expires_at"], 1000 + 2 * 86_400);
    }

    #[test]
    fn kpl_aggregates_are_opened() {
        let agg = super::super::deaggregate::aggregate(&[("a", TWEET), ("b", b"{".as_slice())]);
        let p = plan(&[record("3", &agg)], &Program::default(), 5);
        assert_eq!((p.records, p.user_records), (1, 2));
        assert_eq!(p.items.len(), 1);
        assert_eq!(
            p.dead_letters[0].key("d/"),
            "d/shardId-000000000000/3-1.json"
        );
    }

    #[test]
    fn rank_orders_by_count_then_value() {
        let counts = BTreeMap::from([
            ("rust".to_string(), 2),
            ("data".to_string(), 1),
            ("a#b".to_string(), 1),
        ]);
        assert_eq!(
            rank(counts),
            [
                ("rust".to_string(), 2),
                ("a#b".to_string(), 1),
                ("data".to_string(), 1)
            ]
        );
    }

    #[test]
    fn the_smoke_canary_is_stored_and_counted_nowhere() {
        let canary = br##"{"data": {"id": "9", "text": "#streamstackcanary", "lang": "en",
            "entities": {"hashtags": [{"tag": "streamstackcanary"}]}},
            "matching_rules": [{"id": "0", "tag": "streamstack-smoke"}]}"##;
        let p = plan(&[record("1", canary)], &Program::default(), 5);
        assert_eq!(p.items.len(), 1);
        assert!(counted_pairs(&p, &Program::default()).is_empty());
    }

    #[test]
    fn tweets_whose_declared_aggregate_fails_are_one_letter_of_their_record() {
        let yaml = "name: twt\nregion: us-east-1\nprocessor:\n  aggregates:\n    - { name: first, by: '.hashtags[0] | error(\"no\")' }\n";
        let file = crate::spec::parse("t.yaml", yaml.as_bytes()).unwrap();
        let program = Program::new(&file.resolve(None).unwrap().stack).unwrap();
        let page = br#"{"data": [{"id": "1", "text": "a"}, {"id": "2", "text": "b"}]}"#;
        let p = plan(&[record("4", page)], &program, 5);
        assert!(p.items.is_empty() && p.occurrences.is_empty());
        assert_eq!(p.dead_letters.len(), 1, "{:?}", p.dead_letters);
        let letter = &p.dead_letters[0];
        assert_eq!((letter.reason, letter.index), ("bad_aggregate", None));
        assert_eq!(
            letter.error.matches("aggregates.first: ").count(),
            2,
            "{}",
            letter.error
        );
    }

    #[test]
    fn a_records_letters_of_different_reasons_are_separate_objects() {
        // Tweet 1 and 3 too large for an item, tweet 2 failing a declared aggregate.
        let yaml = "name: twt\nregion: us-east-1\nprocessor:\n  aggregates:\n    - { name: odd, by: 'if .tweet_id == \"2\" then error(\"no\") else .lang end' }\n";
        let file = crate::spec::parse("t.yaml", yaml.as_bytes()).unwrap();
        let program = Program::new(&file.resolve(None).unwrap().stack).unwrap();
        // Text is cut to fit; mentions are not.
        let mentions: Vec<_> = (0..MAX_ITEM_BYTES / 20)
            .map(|i| serde_json::json!({ "username": format!("user_{i:015}") }))
            .collect();
        let large = serde_json::json!({ "mentions": mentions });
        let page = serde_json::json!({"data": [
            {"id": "1", "text": "a", "entities": large},
            {"id": "2", "text": "b"},
            {"id": "3", "text": "c", "entities": large},
            {"id": "4", "text": "d"},
        ]})
        .to_string();
        let p = plan(&[record("4", page.as_bytes())], &program, 5);
        assert_eq!(p.items.keys().collect::<Vec<_>>(), ["4"]);
        let letters: Vec<(&str, String, usize)> = p
            .dead_letters
            .iter()
            .map(|d| (d.reason, d.key("d/"), d.error.matches("; ").count() + 1))
            .collect();
        assert_eq!(
            letters,
            [
                (
                    ITEM_TOO_LARGE,
                    "d/shardId-000000000000/4-item_too_large.json".to_string(),
                    2
                ),
                (
                    BAD_AGGREGATE,
                    "d/shardId-000000000000/4-bad_aggregate.json".to_string(),
                    1
                ),
            ]
        );
    }

    #[test]
    fn minutes_are_utc() {
        assert_eq!(minute_at(0), "1970-01-01T00:00");
        assert_eq!(minute_at(1_632_110_045), "2021-09-20T03:54");
    }
}

//! Bad input for the processor's pure data path: `transform::transform`
//! (one record's bytes to tweets or a dead-letter reason), `deaggregate`
//! (KPL aggregated records) and `batch::plan` (a batch of Kinesis records to
//! items and dead letters).
//!
//! Inputs: arbitrary bytes, arbitrary JSON values, real X API v2 pages
//! (`data/tweets-v2.jsonl`) cut down and mutated field by field, and KPL
//! aggregates, well-formed or hand-built protobuf with a valid MD5 trailer so
//! that the decoder, not the checksum, sees the bytes.
//!
//! Properties: no panic; every tweet object of a page is either a tweet or a
//! rejected object, never both or neither; every user record of a batch ends
//! up as the items of its tweets or as dead letters exactly as the transform
//! said, each dead letter under its own key; de-aggregation of hostile bytes
//! holds memory proportionate to its input (a counting allocator measures
//! the peak on the calling thread).
//!
//! Case counts are small by default (CI); `PROPTEST_CASES=20000` for a long
//! run (`make fuzz`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::OnceLock;

use md5::{Digest, Md5};
use proptest::prelude::*;
use serde_json::{Value, json};
use streamstack::processor::read::batch::{self, InRecord, ItemShape};
use streamstack::processor::read::deaggregate::{KPL_MAGIC, aggregate, deaggregate};
use streamstack::processor::read::program::Program;
use streamstack::processor::read::transform::{RecordKind, transform};

#[path = "support/fuzz.rs"]
mod fuzz;
use fuzz::{config, peak_bytes};

#[global_allocator]
static ALLOCATOR: fuzz::Counting = fuzz::Counting;

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

/// The real pages: the repository's, and the shared copy when it is there.
fn pages() -> &'static [Value] {
    static PAGES: OnceLock<Vec<Value>> = OnceLock::new();
    PAGES.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("data/tweets-v2.jsonl")];
        if let Ok(dir) = std::fs::read_dir(root.join("../shared/data/tweets-v2")) {
            files.extend(
                dir.map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|e| e == "jsonl")),
            );
        }
        let mut seen = HashSet::new();
        let pages: Vec<Value> = files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|line| seen.insert(line.clone()))
            .map(|line| serde_json::from_str(&line).unwrap())
            .collect();
        assert!(!pages.is_empty());
        pages
    })
}

/// A page of a few of a real page's tweets, with the users they need.
fn small_page(page: usize, picks: &[usize]) -> Value {
    let page = &pages()[page % pages().len()];
    let data = page["data"].as_array().unwrap();
    let tweets: Vec<Value> = picks.iter().map(|i| data[i % data.len()].clone()).collect();
    let authors: HashSet<&str> = tweets
        .iter()
        .filter_map(|t| t["author_id"].as_str())
        .collect();
    let users: Vec<Value> = page["includes"]["users"]
        .as_array()
        .map(|users| {
            users
                .iter()
                .filter(|u| u["id"].as_str().is_some_and(|id| authors.contains(id)))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    json!({
        "data": tweets,
        "includes": { "users": users },
        "meta": { "result_count": picks.len() },
    })
}

fn real_page() -> impl Strategy<Value = Value> {
    (any::<usize>(), prop::collection::vec(any::<usize>(), 0..6))
        .prop_map(|(page, picks)| small_page(page, &picks))
}

/// Keys the transform looks at, and strings it parses.
const KEYS: &[&str] = &[
    "data",
    "includes",
    "users",
    "meta",
    "errors",
    "matching_rules",
    "tag",
    "id",
    "id_str",
    "user",
    "text",
    "full_text",
    "extended_tweet",
    "note_tweet",
    "author_id",
    "username",
    "screen_name",
    "created_at",
    "lang",
    "entities",
    "hashtags",
    "mentions",
    "urls",
    "expanded_url",
    "url",
    "public_metrics",
    "retweet_count",
    "like_count",
    "referenced_tweets",
    "type",
    "title",
    "detail",
    "value",
];

const STRINGS: &[&str] = &[
    "",
    "1439800001232728069",
    "99999999999999999999",
    "123456789012345678901",
    "-1",
    "2021-09-20T03:54:05.000Z",
    "2021-09-20T03:54:05+14:00",
    "0000-01-01T00:00:00-23:59",
    "9999-12-31T23:59:60+00:00",
    "Wed Oct 10 20:19:24 +0000 2018",
    "Mon Jan 01 00:00:00 -2359 0000",
    "retweeted",
    "quoted",
    "replied_to",
    "en",
    "#",
    "＃rust",
    "https://problems-dictionary.twitter.com/",
    "operational-disconnect",
    "ΑΣ",
    "ας",
    "İ",
    "\u{0}",
    "\u{feff}",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(STRINGS).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    let key = prop_oneof![
        3 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => any::<String>(),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// One change at one node of a JSON tree, the node chosen by its number in
/// a depth-first walk.
#[derive(Debug, Clone)]
enum Edit {
    Replace(Value),
    Remove,
    RenameKey(String),
    DuplicateItem,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => json_value().prop_map(Edit::Replace),
        2 => Just(Edit::Remove),
        1 => prop::sample::select(KEYS).prop_map(|k| Edit::RenameKey(k.to_string())),
        1 => Just(Edit::DuplicateItem),
    ]
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Applies `edit` to the `target`-th node below `v` (0 is `v`'s first child).
fn apply_edit(v: &mut Value, target: &mut usize, edit: &Edit) -> bool {
    let keys: Vec<Value> = match v {
        Value::Array(a) => (0..a.len()).map(Value::from).collect(),
        Value::Object(o) => o.keys().cloned().map(Value::from).collect(),
        _ => return false,
    };
    for k in keys {
        if *target == 0 {
            match (v, edit) {
                (Value::Array(a), Edit::Remove) => {
                    a.remove(k.as_u64().unwrap() as usize);
                }
                (Value::Array(a), Edit::DuplicateItem) => {
                    let i = k.as_u64().unwrap() as usize;
                    let item = a[i].clone();
                    a.insert(i, item);
                }
                (Value::Object(o), Edit::Remove) => {
                    o.remove(k.as_str().unwrap());
                }
                (Value::Object(o), Edit::RenameKey(new)) => {
                    if let Some(item) = o.remove(k.as_str().unwrap()) {
                        o.insert(new.clone(), item);
                    }
                }
                (Value::Array(a), Edit::Replace(new)) => {
                    a[k.as_u64().unwrap() as usize] = new.clone()
                }
                (Value::Object(o), Edit::Replace(new)) => {
                    o.insert(k.as_str().unwrap().to_string(), new.clone());
                }
                _ => {}
            }
            return true;
        }
        *target -= 1;
        let child = match v {
            Value::Array(a) => &mut a[k.as_u64().unwrap() as usize],
            Value::Object(o) => o.get_mut(k.as_str().unwrap()).unwrap(),
            _ => unreachable!(),
        };
        if apply_edit(child, target, edit) {
            return true;
        }
    }
    false
}

fn mutated_page() -> impl Strategy<Value = Value> {
    (
        real_page(),
        prop::collection::vec((any::<usize>(), edit()), 1..4),
    )
        .prop_map(|(mut page, edits)| {
            for (at, e) in &edits {
                let mut target = at % count_nodes(&page).max(1);
                apply_edit(&mut page, &mut target, e);
            }
            page
        })
}

/// Byte-level damage to a serialized record.
fn damaged(bytes: Vec<u8>, cuts: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut bytes = bytes;
    for &(at, op, b) in cuts {
        let at = at % (bytes.len() + 1);
        match op % 4 {
            0 => bytes.truncate(at),
            1 => bytes.insert(at, b),
            2 if at < bytes.len() => bytes[at] = b,
            _ if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => {}
        }
    }
    bytes
}

// ---------------------------------------------------------------------------
// KPL aggregates, well-formed and hand-built
// ---------------------------------------------------------------------------

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn field_bytes(tag: u64, payload: &[u8], out: &mut Vec<u8>) {
    varint(tag << 3 | 2, out);
    varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

fn field_varint(tag: u64, n: u64, out: &mut Vec<u8>) {
    varint(tag << 3, out);
    varint(n, out);
}

/// Magic, body, MD5 of the body: what the KPL writes around its protobuf.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = KPL_MAGIC.to_vec();
    out.extend_from_slice(body);
    out.extend_from_slice(&Md5::digest(body));
    out
}

/// Fields of an `AggregatedRecord` and of its `Record`s, valid or not.
#[derive(Debug, Clone)]
enum RecField {
    PkIndex(u64),
    EhkIndex(u64),
    Data(Vec<u8>),
    Tag(Option<String>, Option<String>),
    Junk(Vec<u8>),
}

#[derive(Debug, Clone)]
enum AggField {
    Key(String),
    Ehk(String),
    Record(Vec<RecField>),
    Junk(Vec<u8>),
}

fn small_index() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0u64..4, 1 => any::<u64>()]
}

fn rec_field() -> impl Strategy<Value = RecField> {
    prop_oneof![
        3 => small_index().prop_map(RecField::PkIndex),
        1 => small_index().prop_map(RecField::EhkIndex),
        3 => prop::collection::vec(any::<u8>(), 0..40).prop_map(RecField::Data),
        1 => (proptest::option::of(".{0,8}"), proptest::option::of(".{0,8}"))
            .prop_map(|(k, v)| RecField::Tag(k, v)),
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(RecField::Junk),
    ]
}

fn agg_field() -> impl Strategy<Value = AggField> {
    prop_oneof![
        2 => ".{0,12}".prop_map(AggField::Key),
        1 => "[0-9]{0,40}".prop_map(AggField::Ehk),
        5 => prop::collection::vec(rec_field(), 0..5).prop_map(AggField::Record),
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(AggField::Junk),
    ]
}

fn encode(fields: &[AggField]) -> Vec<u8> {
    let mut body = Vec::new();
    for f in fields {
        match f {
            AggField::Key(k) => field_bytes(1, k.as_bytes(), &mut body),
            AggField::Ehk(k) => field_bytes(2, k.as_bytes(), &mut body),
            AggField::Junk(b) => body.extend_from_slice(b),
            AggField::Record(rf) => {
                let mut rec = Vec::new();
                for f in rf {
                    match f {
                        RecField::PkIndex(i) => field_varint(1, *i, &mut rec),
                        RecField::EhkIndex(i) => field_varint(2, *i, &mut rec),
                        RecField::Data(d) => field_bytes(3, d, &mut rec),
                        RecField::Junk(b) => rec.extend_from_slice(b),
                        RecField::Tag(k, v) => {
                            let mut tag = Vec::new();
                            if let Some(k) = k {
                                field_bytes(1, k.as_bytes(), &mut tag);
                            }
                            if let Some(v) = v {
                                field_bytes(2, v.as_bytes(), &mut tag);
                            }
                            field_bytes(4, &tag, &mut rec);
                        }
                    }
                }
                field_bytes(3, &rec, &mut body);
            }
        }
    }
    body
}

/// Checks what `deaggregate` gave for one Kinesis record, and returns it.
fn check_deaggregate(key: &str, data: &[u8]) -> usize {
    let (users, peak) = peak_bytes(|| deaggregate(key, data));
    let passed_through = users.len() == 1 && users[0].sub_sequence.is_none();
    if passed_through {
        assert_eq!(&*users[0].data, data);
        assert_eq!(&*users[0].partition_key, key);
        assert!(users[0].explicit_hash_key.is_none());
    } else {
        // Taken out of a valid aggregate: numbered 0, 1, ..., and the bytes
        // of all of them together are no more than the record's.
        assert!(data.starts_with(&KPL_MAGIC));
        for (i, u) in users.iter().enumerate() {
            assert_eq!(u.sub_sequence, Some(i as u64));
        }
        let total: usize = users.iter().map(|u| u.data.len()).sum();
        assert!(total <= data.len());
    }
    // Proportionate: the decoded records, their keys and the bookkeeping.
    assert!(
        peak <= 256 * data.len() + (64 << 10),
        "{peak} bytes held for a record of {} bytes",
        data.len()
    );
    users.len()
}

// ---------------------------------------------------------------------------
// Transform properties
// ---------------------------------------------------------------------------

/// What the transform gave for one record must agree with the record.
fn check_transform(bytes: &[u8]) {
    let Ok(out) = transform(bytes) else {
        return;
    };
    let blank = bytes
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    assert_eq!(out.kind == RecordKind::Heartbeat, blank, "{:?}", out.kind);
    let value: Option<Value> = serde_json::from_slice(bytes).ok();
    match out.kind {
        RecordKind::Heartbeat => assert!(out.tweets.is_empty() && out.rejected.is_empty()),
        RecordKind::Page => {
            // Every object of `data` is a tweet or a rejected object, in order.
            let n = value
                .as_ref()
                .and_then(|v| v.get("data"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            assert_eq!(out.tweets.len() + out.rejected.len(), n);
            let rejected: Vec<usize> = out.rejected.iter().map(|r| r.index).collect();
            assert!(rejected.windows(2).all(|w| w[0] < w[1]), "{rejected:?}");
            assert!(rejected.iter().all(|&i| i < n));
            if let Some(data) = value.as_ref().and_then(|v| v["data"].as_array()) {
                let kept: Vec<&Value> = (0..n)
                    .filter(|i| !rejected.contains(i))
                    .map(|i| &data[i])
                    .collect();
                for (tweet, object) in out.tweets.iter().zip(kept) {
                    // v1.1 (`id_str` given) is identified by `id_str`, v2 by `id`.
                    let id = object["id_str"]
                        .as_str()
                        .or_else(|| object["id"].as_str())
                        .map(str::to_string)
                        .or_else(|| object["id"].as_u64().map(|n| n.to_string()));
                    assert_eq!(Some(&tweet.id), id.as_ref(), "tweet out of order");
                }
            }
        }
        RecordKind::StreamMessage | RecordKind::TweetV2 | RecordKind::StatusV1 => {
            assert_eq!(out.tweets.len(), 1);
            assert!(out.rejected.is_empty());
        }
    }
    for tweet in &out.tweets {
        assert!(!tweet.id.is_empty() && tweet.id.len() <= 20);
        assert!(tweet.id.bytes().all(|b| b.is_ascii_digit()), "{}", tweet.id);
        if let Some(created) = &tweet.created_at {
            assert_eq!(created.len(), 20, "{created}");
            assert!(created.ends_with('Z'));
        }
        let mut folded = HashSet::new();
        for tag in &tweet.hashtags {
            assert!(!tag.is_empty() && !tag.starts_with('#'));
            let key: String = tag.chars().flat_map(char::to_lowercase).collect();
            assert!(folded.insert(key), "{tag} kept twice");
        }
        // Every tweet makes an item within DynamoDB's size limit (these
        // records are far below it, so none is refused).
        let item =
            batch::tweet_item(tweet, &ItemShape::default(), 0).expect("a tweet fits an item");
        assert_eq!(item["tweet_id"].as_s().unwrap(), &tweet.id);
        assert!(batch::item_size(&item) <= batch::MAX_ITEM_BYTES);
    }
}

/// Hashtags equal ignoring case, as the module documents it.
fn same_tag(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn transform_of_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_transform(&bytes);
    }

    #[test]
    fn transform_of_arbitrary_json(value in json_value()) {
        check_transform(&serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn transform_of_real_pages_keeps_every_tweet(page in real_page()) {
        let bytes = serde_json::to_vec(&page).unwrap();
        let out = transform(&bytes).unwrap();
        prop_assert_eq!(out.kind, RecordKind::Page);
        prop_assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        prop_assert_eq!(out.tweets.len(), page["data"].as_array().unwrap().len());
        check_transform(&bytes);
    }

    #[test]
    fn transform_of_mutated_pages(page in mutated_page()) {
        check_transform(&serde_json::to_vec(&page).unwrap());
    }

    #[test]
    fn transform_of_damaged_pages(
        page in real_page(),
        cuts in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
    ) {
        check_transform(&damaged(serde_json::to_vec(&page).unwrap(), &cuts));
    }

    /// Hashtag de-duplication does not depend on how many tags a tweet has.
    #[test]
    fn hashtags_are_deduplicated_ignoring_case(
        tags in prop::collection::vec(
            prop::collection::vec(
                prop::sample::select(vec!['a', 'A', 'Σ', 'σ', 'ς', 'İ', 'i', 'I', 'ı', 'ß', 'ẞ', 'K', 'k', '#', '＃']),
                0..4,
            ).prop_map(String::from_iter),
            0..80,
        )
    ) {
        let tweet = json!({
            "id": "1",
            "text": "t",
            "entities": { "hashtags": tags.iter().map(|t| json!({"tag": t})).collect::<Vec<_>>() },
        });
        let out = transform(&serde_json::to_vec(&tweet).unwrap()).unwrap();
        let mut expected: Vec<&str> = Vec::new();
        for t in &tags {
            let t = t.trim_start_matches(['#', '＃']);
            if !t.is_empty() && !expected.iter().any(|e| same_tag(e, t)) {
                expected.push(t);
            }
        }
        prop_assert_eq!(&out.tweets[0].hashtags, &expected);
    }
}

// ---------------------------------------------------------------------------
// De-aggregation properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(1024))]

    /// Bytes behind the magic, with or without a valid digest.
    #[test]
    fn deaggregate_of_arbitrary_bytes_after_the_magic(
        body in prop::collection::vec(any::<u8>(), 0..512),
        framed in any::<bool>(),
    ) {
        let data = if framed {
            frame(&body)
        } else {
            [KPL_MAGIC.as_slice(), &body].concat()
        };
        check_deaggregate("k", &data);
    }

    /// Hand-built protobuf (valid or not) with a valid digest.
    #[test]
    fn deaggregate_of_hand_built_aggregates(fields in prop::collection::vec(agg_field(), 0..8)) {
        check_deaggregate("k", &frame(&encode(&fields)));
    }

    /// What `aggregate` packs, `deaggregate` gives back, in order. (Not
    /// nothing: the KPL's encoding of no records is magic and digest alone,
    /// which is no aggregate; see `an_empty_aggregate_is_one_plain_record`.)
    #[test]
    fn aggregate_then_deaggregate_is_the_identity(
        records in prop::collection::vec(
            (".{1,12}", prop::collection::vec(any::<u8>(), 0..64)),
            1..20,
        )
    ) {
        let data = aggregate(&records);
        let users = deaggregate("outer", &data);
        prop_assert_eq!(users.len(), records.len());
        for (i, (u, (key, bytes))) in users.iter().zip(&records).enumerate() {
            prop_assert_eq!(&*u.partition_key, key.as_str());
            prop_assert_eq!(&*u.data, bytes.as_slice());
            prop_assert_eq!(u.sub_sequence, Some(i as u64));
        }
        check_deaggregate("outer", &data);
    }
}

// ---------------------------------------------------------------------------
// Batch plan: every user record is items or dead letters, as the transform said
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Source {
    Bytes(Vec<u8>),
    Json(Value),
    Page(Value),
    Blank(String),
    Aggregate(Vec<(String, Vec<u8>)>),
    Hostile(Vec<AggField>),
}

fn leaf_source() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        real_page().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        mutated_page().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        Just(b"\r\n".to_vec()),
    ]
}

fn source() -> impl Strategy<Value = Source> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Source::Bytes),
        2 => json_value().prop_map(Source::Json),
        3 => real_page().prop_map(Source::Page),
        3 => mutated_page().prop_map(Source::Page),
        1 => "[ \t\r\n]{0,4}".prop_map(Source::Blank),
        2 => prop::collection::vec((".{1,8}", leaf_source()), 0..5).prop_map(Source::Aggregate),
        1 => prop::collection::vec(agg_field(), 0..6).prop_map(Source::Hostile),
    ]
}

fn bytes_of(source: &Source) -> Vec<u8> {
    match source {
        Source::Bytes(b) => b.clone(),
        Source::Json(v) | Source::Page(v) => serde_json::to_vec(v).unwrap(),
        Source::Blank(s) => s.as_bytes().to_vec(),
        Source::Aggregate(records) => aggregate(records),
        Source::Hostile(fields) => frame(&encode(fields)),
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn every_user_record_is_items_or_dead_letters_never_both_or_neither(
        sources in prop::collection::vec((0u8..3, source()), 0..8),
        now_s in prop_oneof![Just(1_632_110_045i64), any::<i64>()],
        ttl in proptest::option::of(any::<u32>()),
        aggregates_ttl_days in any::<u32>(),
    ) {
        let datas: Vec<(String, String, Vec<u8>)> = sources
            .iter()
            .enumerate()
            .map(|(i, (shard, s))| {
                (format!("shardId-00000000000{shard}"), format!("4963{i:020}"), bytes_of(s))
            })
            .collect();
        let records: Vec<InRecord<'_>> = datas
            .iter()
            .map(|(shard, seq, data)| InRecord {
                shard_id: shard,
                sequence_number: seq,
                partition_key: "pk",
                data,
                arrival_s: None,
            })
            .collect();
        let shape = ItemShape {
            partition_key: "tweet_id".into(),
            ttl: ttl.map(|d| ("expires_at".to_string(), d)),
            aggregates_ttl_days,
        };
        let plan = batch::plan(&records, &Program::tweets(shape), now_s);

        // What each user record must become, from the transform itself.
        let mut user_records = 0;
        let mut whole = BTreeMap::new(); // (seq, sub) -> reason code
        let mut objects = BTreeSet::new(); // (seq, sub, index)
        let mut ids = BTreeSet::new();
        let (mut tweets_seen, mut heartbeats) = (0, 0);
        for r in &records {
            let users = deaggregate(r.partition_key, r.data);
            if users.is_empty() {
                // Only a valid aggregate of no user records has none (as in the KCL).
                prop_assert!(r.data.starts_with(&KPL_MAGIC));
            }
            for u in users {
                user_records += 1;
                let at = (r.sequence_number.to_string(), u.sub_sequence);
                match transform(&u.data) {
                    Err(reason) => {
                        whole.insert(at, reason.code());
                    }
                    Ok(out) => {
                        heartbeats += usize::from(out.kind == RecordKind::Heartbeat);
                        tweets_seen += out.tweets.len();
                        ids.extend(out.tweets.iter().map(|t| t.id.clone()));
                        for rej in &out.rejected {
                            objects.insert((at.0.clone(), at.1, rej.index));
                        }
                    }
                }
            }
        }
        prop_assert_eq!(plan.records, records.len());
        prop_assert_eq!(plan.user_records, user_records);
        prop_assert_eq!(plan.events_seen, tweets_seen);
        prop_assert_eq!(plan.heartbeats, heartbeats);
        prop_assert_eq!(plan.items.keys().cloned().collect::<BTreeSet<_>>(), ids);
        let mut got_whole = BTreeMap::new();
        let mut got_objects = BTreeSet::new();
        let mut keys = HashSet::new();
        for d in &plan.dead_letters {
            prop_assert!(keys.insert(d.key("dead/")), "two dead letters under {}", d.key("dead/"));
            let at = (d.sequence_number.clone(), d.sub_sequence);
            match d.index {
                None => prop_assert!(got_whole.insert(at, d.reason).is_none()),
                Some(i) => prop_assert!(got_objects.insert((at.0, at.1, i))),
            }
            // The raw bytes of the user record it came from.
            let record = records.iter().find(|r| r.sequence_number == d.sequence_number).unwrap();
            let users = deaggregate(record.partition_key, record.data);
            let user = users.iter().find(|u| u.sub_sequence == d.sub_sequence).unwrap();
            prop_assert_eq!(&d.data, &*user.data);
            prop_assert_eq!(&d.shard_id, record.shard_id);
            prop_assert_eq!(d.partition_key.as_str(), &*user.partition_key);
        }
        prop_assert_eq!(got_whole, whole);
        prop_assert_eq!(got_objects, objects);
        // A whole-record dead letter leaves nothing else of that record.
        for (seq, sub, _) in &plan.dead_letters.iter().filter_map(|d| d.index.map(|i| (d.sequence_number.clone(), d.sub_sequence, i))).collect::<Vec<_>>() {
            prop_assert!(!plan.dead_letters.iter().any(|d| d.index.is_none() && &d.sequence_number == seq && d.sub_sequence == *sub));
        }
    }
}

// ---------------------------------------------------------------------------
// Edge cases
// ---------------------------------------------------------------------------

#[test]
fn deeply_nested_json_is_a_dead_letter_not_a_stack_overflow() {
    for text in [
        "[".repeat(100_000),
        format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000)),
        "{\"a\":".repeat(100_000),
        format!(
            "{{\"data\": [{{\"id\": \"1\", \"text\": {}}}]}}",
            "[".repeat(100_000)
        ),
        format!(
            "{{\"id\": \"1\", \"text\": \"t\", \"x\": {}}}",
            "{\"a\":".repeat(100_000)
        ),
    ] {
        let reason = transform(text.as_bytes()).unwrap_err();
        assert!(!reason.to_string().is_empty());
    }
}

#[test]
fn a_one_mebibyte_record_is_transformed_in_proportion() {
    // The largest record Kinesis accepts: a page of many tweets, one huge
    // text, thousands of hashtags.
    let page = small_page(0, &(0..96).collect::<Vec<_>>());
    let mut big = page.clone();
    let mut n = 0;
    while serde_json::to_vec(&big).unwrap().len() < (1 << 20) - 300_000 {
        big["data"]
            .as_array_mut()
            .unwrap()
            .extend(page["data"].as_array().unwrap().iter().cloned());
        n += 1;
    }
    assert!(n > 1);
    let tags: Vec<Value> = (0..20_000)
        .map(|i| json!({"tag": format!("t{i}")}))
        .collect();
    let many_tags = json!({"id": "1", "text": "x".repeat(100), "entities": {"hashtags": tags}});
    let long_text = json!({"id": "1", "text": "é".repeat(500_000)});
    for value in [big, many_tags, long_text] {
        let bytes = serde_json::to_vec(&value).unwrap();
        assert!(bytes.len() <= 1 << 20);
        let (out, peak) = peak_bytes(|| transform(&bytes));
        let out = out.unwrap();
        assert!(out.rejected.is_empty());
        assert!(
            peak < 16 * bytes.len(),
            "{peak} bytes held for {}",
            bytes.len()
        );
        check_transform(&bytes);
    }
}

#[test]
fn an_aggregate_cannot_multiply_a_long_key() {
    // One 500 KB partition key referenced by 80,000 records of no data: a
    // 1 MB Kinesis record that copying each record's key would turn into 40 GB.
    let mut body = Vec::new();
    field_bytes(1, "k".repeat(500_000).as_bytes(), &mut body);
    let mut rec = Vec::new();
    field_varint(1, 0, &mut rec);
    field_bytes(3, b"", &mut rec);
    for _ in 0..80_000 {
        field_bytes(3, &rec, &mut body);
    }
    let data = frame(&body);
    assert!(data.len() < 1 << 20);
    check_deaggregate("k", &data);
    // The batch plan too holds it in proportion (every user record a dead letter).
    let plan = plan_within_memory(&data);
    assert!(plan.user_records >= 1);
}

#[test]
fn an_aggregate_of_many_empty_records_is_bounded() {
    // 170,000 user records in 1 MB: each one is a dead letter; the plan's
    // memory grows with their number, not beyond.
    let mut body = Vec::new();
    field_bytes(1, b"k", &mut body);
    let mut rec = Vec::new();
    field_varint(1, 0, &mut rec);
    field_bytes(3, b"", &mut rec);
    while body.len() < (1 << 20) - 100 {
        field_bytes(3, &rec, &mut body);
    }
    let data = frame(&body);
    let users = check_deaggregate("k", &data);
    assert!(users > 100_000);
    let plan = plan_within_memory(&data);
    assert_eq!(plan.user_records, users);
    assert_eq!(plan.heartbeats, users);
    assert!(plan.dead_letters.is_empty());
}

/// The batch plan of one Kinesis record holding `data` (partition key "k"),
/// which must hold less than 256 times the record's size at its peak.
fn plan_within_memory(data: &[u8]) -> batch::BatchPlan {
    let record = InRecord {
        shard_id: "shardId-000000000000",
        sequence_number: "1",
        partition_key: "k",
        data,
        arrival_s: None,
    };
    let (plan, peak) = peak_bytes(|| batch::plan(&[record], &Program::default(), 0));
    assert!(
        peak < 256 * data.len(),
        "{peak} bytes held for {}",
        data.len()
    );
    plan
}

#[test]
fn an_empty_aggregate_is_one_plain_record() {
    let data = aggregate::<&str, &[u8]>(&[]);
    assert_eq!(data.len(), KPL_MAGIC.len() + 16);
    let users = deaggregate("k", &data);
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].sub_sequence, None);
    assert_eq!(&*users[0].data, data.as_slice());
}

#[test]
fn extreme_clocks_and_ttls_do_not_overflow() {
    let page = serde_json::to_vec(&small_page(0, &[0, 1, 2])).unwrap();
    let record = InRecord {
        shard_id: "s",
        sequence_number: "1",
        partition_key: "k",
        data: &page,
        arrival_s: None,
    };
    for now_s in [i64::MIN, -1, 0, i64::MAX] {
        let shape = ItemShape {
            partition_key: "id".into(),
            ttl: Some(("expires_at".into(), u32::MAX)),
            aggregates_ttl_days: u32::MAX,
        };
        let plan = batch::plan(
            std::slice::from_ref(&record),
            &Program::tweets(shape),
            now_s,
        );
        assert_eq!(plan.items.len(), 3);
        for item in plan.items.values() {
            let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
            assert!(expires >= now_s, "{now_s}: expires at {expires}");
        }
    }
}

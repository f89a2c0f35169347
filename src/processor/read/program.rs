//! What the stack file says a record becomes, compiled once when the
//! processor starts: the transform (the built-in tweet transform, or jq
//! expressions for events, key, time and fields), the aggregates, and the
//! item's shape. Running it is pure: no I/O, no clock (the caller passes
//! the times).
//!
//! A jq transform's event is stored whole or not at all: an expression that
//! fails on it (a runtime error, a key that is not one string or integer, a
//! field DynamoDB cannot store) makes the event a dead letter, whose error
//! names the expression; the record's other events are kept.

use jaq_json::Val;

use super::batch::ItemShape;
use super::item::Item;
use crate::jq::{self, Expression, RunError};
use crate::spec::model::{Stack, TransformSpec};

/// The compiled transform, aggregates and item shape of a stack.
#[derive(Debug)]
pub struct Program {
    pub transform: Transform,
    pub aggregates: Vec<Aggregate>,
    pub shape: ItemShape,
}

#[derive(Debug)]
pub enum Transform {
    /// The built-in tweet transform (its own fast path).
    Tweets,
    Jq(Box<JqTransform>),
}

#[derive(Debug)]
pub struct JqTransform {
    pub events: Expression,
    /// What `events` needs of a record: only that is read ([`jq::Demand`]).
    pub record_demand: jq::Demand,
    pub key: Expression,
    pub time: Option<Expression>,
    /// Each field: its attribute name, its name in errors (`fields.NAME`,
    /// made once, not per event) and its expression.
    pub fields: Vec<(String, String, Expression)>,
}

/// An aggregate: its name, window and what it counts.
#[derive(Debug)]
pub struct Aggregate {
    pub name: String,
    /// Its name in errors (`aggregates.NAME`), made once, not per event.
    pub label: String,
    pub window_s: i64,
    pub by: By,
}

#[derive(Debug)]
pub enum By {
    /// The built-in transform's own: a tweet's hashtags, case-folded.
    Hashtags,
    /// The built-in transform's own: a tweet's language.
    Lang,
    /// jq, run on the event (on a tweet's item with the built-in transform).
    Jq(Expression),
}

/// A stack whose expressions do not compile: `validate` reports it, with
/// places, before anything runs.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message} (run `streamstack validate` for where)")]
pub struct ProgramError {
    pub name: String,
    pub message: String,
}

/// Most events one record may hold.
pub const MAX_EVENTS: usize = 10_000;
/// Most values an event may count under, for one aggregate.
pub const MAX_VALUES: usize = 1_000;
/// Longest key. DynamoDB takes 2,048 bytes in a partition key; 800 was set
/// when a key was also part of the aggregates' sort keys, and is kept so
/// that no stack file's accepted keys change.
pub const MAX_KEY_BYTES: usize = 800;

impl Program {
    /// Compiles the stack's transform and aggregates.
    pub fn new(stack: &Stack) -> Result<Self, ProgramError> {
        let compile = |name: &str, code: &str| {
            Expression::compile(code).map_err(|errors| ProgramError {
                name: name.to_string(),
                message: errors
                    .first()
                    .map_or_else(|| "does not compile".into(), |e| e.message.clone()),
            })
        };
        let transform = match &stack.processor.transform {
            TransformSpec::Builtin(_) => Transform::Tweets,
            TransformSpec::Jq(t) => Transform::Jq(Box::new(JqTransform {
                events: compile("events", &t.events)?,
                record_demand: jq::Demand::of_events(&t.events),
                key: compile("key", &t.key)?,
                time: t.time.as_deref().map(|c| compile("time", c)).transpose()?,
                fields: t
                    .fields
                    .iter()
                    .map(|(name, code)| {
                        let label = format!("fields.{name}");
                        let expression = compile(&label, code)?;
                        Ok((name.clone(), label, expression))
                    })
                    .collect::<Result<_, ProgramError>>()?,
            })),
        };
        let builtin_defaults =
            matches!(transform, Transform::Tweets) && stack.processor.aggregates.is_empty();
        let aggregates = stack
            .processor
            .aggregates()
            .into_iter()
            .map(|a| {
                let window_s = i64::from(a.window_s().unwrap_or(60));
                let label = format!("aggregates.{}", a.name);
                let by = match (builtin_defaults, a.name.as_str()) {
                    (true, "hashtag") => By::Hashtags,
                    (true, _) => By::Lang,
                    (false, _) => By::Jq(compile(&label, &a.by)?),
                };
                Ok(Aggregate {
                    label,
                    name: a.name,
                    window_s,
                    by,
                })
            })
            .collect::<Result<_, ProgramError>>()?;
        Ok(Program {
            transform,
            aggregates,
            shape: ItemShape {
                partition_key: stack.table.partition_key.clone(),
                ttl: stack.table.ttl_attribute.clone().zip(stack.table.ttl_days),
                aggregates_ttl_days: stack.table.ttl_days.unwrap_or(30),
            },
        })
    }

    /// The built-in tweet transform with its own aggregates.
    pub fn tweets(shape: ItemShape) -> Self {
        Program {
            transform: Transform::Tweets,
            aggregates: vec![
                Aggregate {
                    name: "hashtag".into(),
                    label: "aggregates.hashtag".into(),
                    window_s: 60,
                    by: By::Hashtags,
                },
                Aggregate {
                    name: "lang".into(),
                    label: "aggregates.lang".into(),
                    window_s: 60,
                    by: By::Lang,
                },
            ],
            shape,
        }
    }
}

impl Default for Program {
    /// The built-in tweet transform, items keyed by `tweet_id`.
    fn default() -> Self {
        Program::tweets(ItemShape::default())
    }
}

/// What a jq transform made of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its position among the record's events.
    pub index: usize,
    pub key: String,
    /// Event time (Unix seconds), when the transform gives one.
    pub time_s: Option<i64>,
    /// The attributes of `fields`, nulls left out.
    pub attributes: Item,
    /// For each aggregate (by position), the distinct values it counts.
    pub counted: Vec<Vec<String>>,
}

/// Why an event (or, with no index, the whole record) is a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub index: Option<usize>,
    pub reason: &'static str,
    pub error: String,
}

impl Failure {
    fn of(index: Option<usize>, reason: &'static str, error: String) -> Self {
        Failure {
            index,
            reason,
            error,
        }
    }
}

/// What a jq transform made of one record: heartbeat, or its events (each
/// one kept or failed), or a failure of the whole record.
#[derive(Debug)]
pub enum Outcome {
    Heartbeat,
    Events(Vec<Result<Event, Failure>>),
}

/// Runs a jq transform on one record's bytes.
pub fn run_jq(t: &JqTransform, aggregates: &[Aggregate], data: &[u8]) -> Result<Outcome, Failure> {
    let text = std::str::from_utf8(data).map_err(|e| {
        Failure::of(
            None,
            "not_utf8",
            format!(
                "the record is not UTF-8 (valid up to byte {})",
                e.valid_up_to()
            ),
        )
    })?;
    if text
        .bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return Ok(Outcome::Heartbeat);
    }
    let value = jq::parse_for(data, &t.record_demand)
        .map_err(|e| Failure::of(None, "not_json", format!("the record is not JSON: {e}")))?;
    let events = t
        .events
        .run(value, MAX_EVENTS)
        .map_err(|e| Failure::of(None, "transform_error", format!("events: {e}")))?;
    Ok(Outcome::Events(
        events
            .into_iter()
            .enumerate()
            .map(|(index, event)| run_event(t, aggregates, index, event))
            .collect(),
    ))
}

fn run_event(
    t: &JqTransform,
    aggregates: &[Aggregate],
    index: usize,
    event: Val,
) -> Result<Event, Failure> {
    let fail = |reason: &'static str, error: String| Failure::of(Some(index), reason, error);
    let run = |name: &str, e: &Expression, limit: usize| {
        e.run(event.clone(), limit).map_err(|error| match error {
            RunError::TooMany { .. } if limit <= 2 => {
                fail(reason_of(name), format!("{name}: yielded several values"))
            }
            other => fail("transform_error", format!("{name}: {other}")),
        })
    };
    let key = match run("key", &t.key, 2)?.as_slice() {
        [] => {
            return Err(fail(
                "bad_key",
                "key: yielded no value; a key must be one string or integer".into(),
            ));
        }
        [one] => key_text(one).map_err(|e| fail("bad_key", format!("key: {e}")))?,
        several => {
            return Err(fail(
                "bad_key",
                format!(
                    "key: yielded {} values ({}); a key must be one string or integer",
                    several.len(),
                    listed(several)
                ),
            ));
        }
    };
    let time_s = match &t.time {
        None => None,
        Some(time) => match run("time", time, 2)?.as_slice() {
            [] | [Val::Null] => None,
            [one] => Some(time_of(one).map_err(|e| fail("bad_time", format!("time: {e}")))?),
            several => {
                return Err(fail(
                    "bad_time",
                    format!(
                        "time: yielded {} values ({})",
                        several.len(),
                        listed(several)
                    ),
                ));
            }
        },
    };
    // Room for the fields and what the batch adds (the key and the TTL):
    // growing an item's map field by field was 9% of the jq path's time.
    let mut attributes = Item::with_capacity(t.fields.len() + 2);
    for (name, label, expression) in &t.fields {
        let label = label.as_str();
        match run(label, expression, 2)?.as_slice() {
            [] => {}
            [one] => {
                if let Some(value) =
                    jq::to_attribute(one).map_err(|e| fail("bad_field", format!("{label}: {e}")))?
                {
                    attributes.insert(name.clone(), value);
                }
            }
            several => {
                return Err(fail(
                    "bad_field",
                    format!(
                        "{label}: yielded {} values ({}); wrap the expression in [ ] to store a list",
                        several.len(),
                        listed(several)
                    ),
                ));
            }
        }
    }
    let mut counted = Vec::with_capacity(aggregates.len());
    for aggregate in aggregates {
        counted.push(match &aggregate.by {
            By::Jq(by) => {
                let label = aggregate.label.as_str();
                counted_values(&run(label, by, MAX_VALUES)?)
                    .map_err(|e| fail("bad_aggregate", format!("{label}: {e}")))?
            }
            // The built-in counters apply to tweets only.
            By::Hashtags | By::Lang => Vec::new(),
        });
    }
    Ok(Event {
        index,
        key,
        time_s,
        attributes,
        counted,
    })
}

/// The dead-letter reason of an expression that yields several values where one is needed.
fn reason_of(name: &str) -> &'static str {
    match name {
        "key" => "bad_key",
        "time" => "bad_time",
        _ => "bad_field",
    }
}

/// A few values, for an error message.
fn listed(values: &[Val]) -> String {
    let mut parts: Vec<String> = values.iter().take(3).map(shown).collect();
    if values.len() > 3 {
        parts.push("...".into());
    }
    parts.join(", ")
}

/// A value for an error message, cut short. One nested deeper than
/// DynamoDB stores is named, not printed: jaq prints a value by recursion,
/// and a transform can build one deep enough to overflow the stack.
fn shown(value: &Val) -> String {
    if jq::nested_deeper_than(value, jq::MAX_NESTING) {
        format!("a value nested more than {} levels deep", jq::MAX_NESTING)
    } else {
        short(&value.to_string())
    }
}

fn short(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// A key: a non-empty string, or an integer's decimal text.
fn key_text(value: &Val) -> Result<String, String> {
    let text = match value {
        Val::TStr(s) => String::from_utf8_lossy(s).into_owned(),
        Val::Num(n) => {
            let text = n.to_string();
            if !text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                return Err(format!(
                    "yielded the number {text}; a numeric key must be an integer"
                ));
            }
            text
        }
        Val::Null => {
            return Err(
                "yielded null (is the field missing?); a key must be a string or an integer".into(),
            );
        }
        other => {
            return Err(format!(
                "yielded {}, {}; a key must be a string or an integer",
                shown(other),
                type_name(other)
            ));
        }
    };
    if text.is_empty() {
        return Err("yielded an empty string; DynamoDB refuses an empty key".into());
    }
    if text.len() > MAX_KEY_BYTES {
        return Err(format!(
            "yielded {} bytes; a key takes at most {MAX_KEY_BYTES}",
            text.len()
        ));
    }
    Ok(text)
}

/// Event time from RFC 3339 text or epoch seconds.
fn time_of(value: &Val) -> Result<i64, String> {
    match value {
        Val::TStr(s) => {
            let text = String::from_utf8_lossy(s);
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .map(|t| t.unix_timestamp())
                .map_err(|_| format!("\"{}\" is not an RFC 3339 time", short(&text)))
        }
        Val::Num(n) => {
            let text = n.to_string();
            text.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && (0.0..253_402_300_800.0).contains(s))
                .map(|s| s.floor() as i64)
                .ok_or_else(|| format!("{text} is not epoch seconds between 1970 and 9999"))
        }
        other => Err(format!(
            "yielded {}, {}; a time is RFC 3339 text or epoch seconds",
            shown(other),
            type_name(other)
        )),
    }
}

/// An aggregate's values as text, distinct, in order; nulls left out.
fn counted_values(values: &[Val]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        let text = match value {
            Val::Null => continue,
            Val::TStr(s) => String::from_utf8_lossy(s).into_owned(),
            Val::Num(_) | Val::Bool(_) => value.to_string(),
            other => {
                return Err(format!(
                    "yielded {}, {}; values counted must be strings, numbers or booleans",
                    shown(other),
                    type_name(other)
                ));
            }
        };
        if !out.contains(&text) {
            out.push(text);
        }
    }
    Ok(out)
}

fn type_name(value: &Val) -> &'static str {
    match value {
        Val::Null => "null",
        Val::Bool(_) => "a boolean",
        Val::Num(_) => "a number",
        Val::TStr(_) => "a string",
        Val::BStr(_) => "a byte string",
        Val::Arr(_) => "an array",
        Val::Obj(_) => "an object",
    }
}

/// The values a jq aggregate counts for a tweet, run on its item's JSON.
pub fn counted_on_json(by: &Expression, json: &[u8]) -> Result<Vec<String>, String> {
    let value = jq::parse(json)?;
    let values = by.run(value, MAX_VALUES).map_err(|e| e.to_string())?;
    counted_values(&values)
}

/// The rule tag of the smoke check's canary tweet: the built-in transform
/// stores it like any tweet but counts it in no aggregate (the counts of a
/// slice are one item, from which a canary could not be taken back out).
pub const SMOKE_RULE_TAG: &str = "streamstack-smoke";

/// The attribute (and record field) of the smoke check's canary.
pub const CANARY_FIELD: &str = "streamstack_smoke_canary";

/// The canary `smoke` puts into a stack with a jq transform: the record
/// `{"streamstack_smoke_canary": ID}`. The user's transform cannot be
/// expected to make an item of it (it knows only the user's events), so the
/// processor stores it as it is: an item keyed by ID, with
/// `streamstack_smoke_canary: true`, and no counts. It proves the stream,
/// the processor, the table and the archive work; `streamstack test` proves
/// the transform.
pub fn canary_record(id: &str) -> Vec<u8> {
    serde_json::json!({ CANARY_FIELD: id })
        .to_string()
        .into_bytes()
}

/// The canary's id, when the record is exactly a canary.
pub fn canary_id(data: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Canary {
        streamstack_smoke_canary: String,
    }
    // Cheap refusal first: the hot path sees this for every record.
    if data.len() > 200
        || !data
            .windows(CANARY_FIELD.len())
            .any(|w| w == CANARY_FIELD.as_bytes())
    {
        return None;
    }
    serde_json::from_slice::<Canary>(data)
        .ok()
        .map(|c| c.streamstack_smoke_canary)
        .filter(|id| !id.is_empty() && id.len() <= MAX_KEY_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::read::batch::{self, BatchPlan, InRecord, counted_pairs};
    use crate::processor::read::item::to_json;

    #[test]
    fn the_bench_jq_transform_reads_only_what_its_events_see() {
        use jq::Demand::{All, Keys};
        use std::collections::BTreeMap;
        let path = std::path::Path::new("bench/tweets-jq.yaml");
        let stack = crate::spec::load(path, None)
            .expect("the bench's stack loads")
            .stack;
        let Transform::Jq(t) = Program::new(&stack).unwrap().transform else {
            panic!("the bench's stack has a jq transform");
        };
        let type_only = || Keys(BTreeMap::new());
        // Not `includes.tweets` (44% of the bench's bytes) nor `includes.media`.
        let includes = Keys(BTreeMap::from([("users".to_string(), All)]));
        let expected = Keys(BTreeMap::from([
            ("data".to_string(), All),
            ("errors".to_string(), type_only()),
            ("includes".to_string(), includes),
            ("matching_rules".to_string(), All),
            ("meta".to_string(), type_only()),
        ]));
        assert_eq!(t.record_demand, expected);
    }

    fn program(transform: &str) -> Program {
        let yaml = format!(
            "name: events\nregion: us-east-1\ntable: {{ partition_key: event_id }}\nprocessor:\n{transform}"
        );
        let file = crate::spec::parse("t.yaml", yaml.as_bytes()).unwrap_or_else(|r| panic!("{r}"));
        Program::new(&file.resolve(None).unwrap().stack).unwrap()
    }

    fn plan(program: &Program, data: &str, arrival_s: Option<i64>) -> BatchPlan {
        let record = InRecord {
            shard_id: "s",
            sequence_number: "1",
            partition_key: "k",
            data: data.as_bytes(),
            arrival_s,
        };
        batch::plan(&[record], program, 1_000_000)
    }

    /// Each dead letter's event, reason and error.
    fn letters(out: &BatchPlan) -> Vec<(Option<usize>, &str, &str)> {
        out.dead_letters
            .iter()
            .map(|d| (d.index, d.reason, d.error.as_str()))
            .collect()
    }

    const EVENTS: &str = "  transform:\n    events: '.records[]'\n    key: '.id'\n    time: '.at'\n    fields: { kind: '.type', n: '.n' }\n  aggregates:\n    - { name: kind, by: '.type', window: 5m }\n";

    #[test]
    fn a_record_nested_too_deep_is_a_dead_letter_and_the_next_record_is_stored() {
        let p = program(EVENTS);
        let deep = format!(
            r#"{{"records": [{{"id": "a", "deep": {}{}}}]}}"#,
            "[".repeat(300_000),
            "]".repeat(300_000)
        );
        let good = r#"{"records": [{"id": "b", "type": "x"}]}"#;
        let records: Vec<InRecord<'_>> = [("1", deep.as_str()), ("2", good)]
            .into_iter()
            .map(|(sequence_number, data)| InRecord {
                shard_id: "s",
                sequence_number,
                partition_key: "k",
                data: data.as_bytes(),
                arrival_s: Some(600),
            })
            .collect();
        let out = batch::plan(&records, &p, 1_000_000);
        assert_eq!(out.items.keys().collect::<Vec<_>>(), ["b"]);
        let letters: Vec<(&str, &str)> = out
            .dead_letters
            .iter()
            .map(|d| (d.sequence_number.as_str(), d.reason))
            .collect();
        assert_eq!(letters, [("1", "not_json")]);
        assert!(
            out.dead_letters[0]
                .error
                .contains("nested more than 128 deep"),
            "{}",
            out.dead_letters[0].error
        );
    }

    #[test]
    fn a_value_nested_deeper_than_dynamodb_stores_is_a_dead_letter_not_an_abort() {
        // The transform builds the depth (a record's own JSON stops at 128):
        // 20,000 lists overflowed the stack when made into an attribute,
        // or printed for a key's error, and aborted the processor.
        let p = program(
            "  transform:\n    events: '.records[]'\n    key: 'if .deep then reduce range(.n) as $i (null; [.]) else .id end'\n    fields: { deep: 'if .deep then empty else reduce range(.n) as $i (null; [.]) end' }\n",
        );
        let out = plan(
            &p,
            r#"{"records": [{"id": "a", "n": 31}, {"id": "b", "n": 32}, {"id": "c", "n": 20000}, {"deep": true, "n": 20000}]}"#,
            None,
        );
        assert_eq!(out.items.keys().collect::<Vec<_>>(), ["a"]);
        let letters = letters(&out);
        let deep = "fields.deep: nests lists and maps more than 32 levels deep; DynamoDB stores at most 32";
        assert_eq!(
            letters,
            [
                (Some(1), "bad_field", deep),
                (Some(2), "bad_field", deep),
                (
                    Some(3),
                    "bad_key",
                    "key: yielded a value nested more than 32 levels deep, an array; a key must be a string or an integer"
                ),
            ]
        );
    }

    #[test]
    fn a_key_that_yields_two_values_makes_a_dead_letter_and_the_other_events_are_kept() {
        let p = program(EVENTS);
        let out = plan(
            &p,
            r#"{"records": [{"id": "a", "type": "x"}, {"id": ["b", "c"]}, {"type": "y"}]}"#,
            Some(600),
        );
        assert_eq!(out.items.keys().collect::<Vec<_>>(), ["a"]);
        let letters = letters(&out);
        assert_eq!(
            letters,
            [
                (
                    Some(1),
                    "bad_key",
                    "key: yielded [\"b\",\"c\"], an array; a key must be a string or an integer"
                ),
                (
                    Some(2),
                    "bad_key",
                    "key: yielded null (is the field missing?); a key must be a string or an integer"
                ),
            ]
        );
        let p = program("  transform: { events: '.[]', key: '.id, .id' }\n");
        let out = plan(&p, r#"[{"id": "a"}]"#, None);
        assert!(out.items.is_empty());
        assert_eq!(out.dead_letters[0].reason, "bad_key");
        assert!(
            out.dead_letters[0]
                .error
                .contains("yielded 2 values (\"a\", \"a\")"),
            "{:?}",
            out.dead_letters
        );
    }

    #[test]
    fn a_number_over_38_digits_is_a_dead_letter_and_38_digits_are_stored_exactly() {
        let p = program(EVENTS);
        let out = plan(
            &p,
            r#"{"records": [{"id": "a", "n": 123456789012345678901234567890123456789}, {"id": "b", "n": 12345678901234567890123456789012345678}]}"#,
            None,
        );
        assert_eq!(out.dead_letters.len(), 1, "{:?}", out.dead_letters);
        assert_eq!(out.dead_letters[0].reason, "bad_field");
        assert!(
            out.dead_letters[0].error.starts_with("fields.n: "),
            "{}",
            out.dead_letters[0].error
        );
        assert!(out.dead_letters[0].error.contains("39 significant digits"));
        assert_eq!(
            out.items["b"]["n"],
            aws_sdk_dynamodb::types::AttributeValue::N(
                "12345678901234567890123456789012345678".into()
            )
        );
    }

    #[test]
    fn events_without_a_time_count_in_the_window_of_the_records_arrival() {
        let p = program(EVENTS);
        // 2024-05-01T12:03:10Z is in the 12:00 window of 5 minutes; the
        // event with no time counts at its record's arrival (1970-01-01T00:10).
        let out = plan(
            &p,
            r#"{"records": [{"id": "a", "type": "x", "at": "2024-05-01T12:03:10Z"}, {"id": "b", "type": "x"}, {"id": "c", "type": "y", "at": 1714565000}]}"#,
            Some(600),
        );
        assert_eq!(
            counted_pairs(&out, &p),
            [
                ("kind#1970-01-01T00:10".to_string(), "x#b".to_string()),
                ("kind#2024-05-01T12:00".to_string(), "x#a".to_string()),
                ("kind#2024-05-01T12:00".to_string(), "y#c".to_string()),
            ]
        );
        // Without an arrival time (a file), the time of planning.
        let out = plan(&p, r#"{"records": [{"id": "b", "type": "x"}]}"#, None);
        let pairs = counted_pairs(&out, &p);
        assert!(
            !pairs.is_empty() && pairs.iter().all(|(pk, _)| pk == "kind#1970-01-12T13:45"),
            "{pairs:?}"
        );
        // A time that is neither RFC 3339 nor epoch seconds is a dead letter.
        let out = plan(&p, r#"{"records": [{"id": "b", "at": "yesterday"}]}"#, None);
        assert_eq!(out.dead_letters[0].reason, "bad_time");
    }

    #[test]
    fn fields_runtime_errors_and_the_canary() {
        let p = program(EVENTS);
        let out = plan(
            &p,
            r#"{"records": [{"id": 7, "type": null, "n": [1, {"a": null}]}]}"#,
            None,
        );
        // An integer key is its decimal text; a null field is left out;
        // nulls inside a list or map are kept.
        assert_eq!(
            to_json(&out.items["7"]),
            serde_json::json!({"event_id": "7", "n": [1, {"a": null}]})
        );
        let p = program("  transform: { key: '.id | ascii_downcase' }\n");
        let out = plan(&p, r#"{"id": 5}"#, None);
        assert_eq!(out.dead_letters[0].reason, "transform_error");
        assert!(
            out.dead_letters[0].error.starts_with("key: jq error"),
            "{}",
            out.dead_letters[0].error
        );
        let out = plan(&p, "{not json", None);
        assert_eq!(out.dead_letters[0].reason, "not_json");
        let out = plan(&p, " \n", None);
        assert_eq!((out.heartbeats, out.dead_letters.len()), (1, 0));
        // The smoke check's canary is stored as it is, keyed by its id, not counted.
        let out = plan(&p, &String::from_utf8(canary_record("c-1")).unwrap(), None);
        assert_eq!(
            to_json(&out.items["c-1"]),
            serde_json::json!({"event_id": "c-1", "streamstack_smoke_canary": true})
        );
        assert!(counted_pairs(&out, &p).is_empty());
    }
}

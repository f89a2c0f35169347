//! The JSON lines and the rules of a PutLogEvents batch: pure, no network.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::*;

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// RFC 3339 in UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// One line of JSON for an event (see the module's docs for its shape),
/// cut to [`MAX_MESSAGE_BYTES`] when it is longer.
pub fn encode(
    timestamp_ms: i64,
    level: &str,
    target: &str,
    fields: Map<String, Value>,
    spans: Vec<(String, Map<String, Value>)>,
) -> Line {
    let mut object = Map::new();
    // Spans' fields first, innermost last, so the event's own and the
    // innermost span's win.
    for (_, span_fields) in &spans {
        for (k, v) in span_fields {
            object.insert(k.clone(), v.clone());
        }
    }
    object.extend(fields);
    object.insert("timestamp".into(), Value::String(rfc3339(timestamp_ms)));
    object.insert("level".into(), Value::String(level.to_string()));
    object.insert("target".into(), Value::String(target.to_string()));
    if !spans.is_empty() {
        let list = spans
            .into_iter()
            .map(|(name, mut f)| {
                f.insert("name".into(), Value::String(name));
                Value::Object(f)
            })
            .collect();
        object.insert("spans".into(), Value::Array(list));
    }
    Line {
        timestamp_ms,
        text: fit(object),
    }
}

/// The object's JSON text within [`MAX_MESSAGE_BYTES`]: the longest strings
/// are cut (ending in [`TRUNCATED_MARKER`]) and `"truncated": true` added;
/// if many small fields are still too long, only timestamp, level, target
/// and the (cut) message are kept. Always valid JSON.
fn fit(mut object: Map<String, Value>) -> String {
    fit_within(&mut object, MAX_MESSAGE_BYTES)
}

fn fit_within(object: &mut Map<String, Value>, limit: usize) -> String {
    let text = Value::Object(object.clone()).to_string();
    if text.len() <= limit {
        return text;
    }
    object.insert("truncated".into(), Value::Bool(true));
    // Cut the longest top-level strings (span lists cut as a whole) until it fits.
    object.remove("spans");
    loop {
        let text = Value::Object(object.clone()).to_string();
        if text.len() <= limit {
            return text;
        }
        let excess = text.len() - limit;
        let longest = object
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.len())))
            .filter(|(_, len)| *len > TRUNCATED_MARKER.len() + 16)
            .max_by_key(|(_, len)| *len);
        let Some((key, len)) = longest else { break };
        // Cut the excess; when escaping makes the text longer than the
        // string itself, that may not be possible: halve it and look again.
        let keep = if len > excess + TRUNCATED_MARKER.len() {
            len - excess - TRUNCATED_MARKER.len()
        } else {
            len / 2
        };
        let s = object[&key].as_str().unwrap_or_default();
        let mut cut = keep;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let shorter = format!("{}{TRUNCATED_MARKER}", &s[..cut]);
        object.insert(key, Value::String(shorter));
    }
    // Many small fields: keep only what says what happened.
    let mut minimal = Map::new();
    for key in ["timestamp", "level", "target", "message"] {
        if let Some(v) = object.get(key) {
            minimal.insert(key.into(), v.clone());
        }
    }
    minimal.insert("truncated".into(), Value::Bool(true));
    let text = Value::Object(minimal.clone()).to_string();
    if text.len() <= limit {
        return text;
    }
    minimal.remove("message");
    Value::Object(minimal).to_string()
}

/// Takes the next PutLogEvents batch off the front of `pending` (sorted by
/// time): as many lines as fit in [`MAX_EVENTS_PER_CALL`] events,
/// [`MAX_BYTES_PER_CALL`] bytes and [`MAX_BATCH_SPAN_MS`].
pub fn next_batch(pending: &mut VecDeque<Line>) -> Vec<Line> {
    let mut bytes = 0;
    let mut count = 0;
    let first = pending.front().map(|l| l.timestamp_ms);
    for line in pending.iter() {
        if count == MAX_EVENTS_PER_CALL
            || bytes + line.cost() > MAX_BYTES_PER_CALL
            || first.is_some_and(|f| line.timestamp_ms - f >= MAX_BATCH_SPAN_MS)
        {
            break;
        }
        bytes += line.cost();
        count += 1;
    }
    pending.drain(..count).collect()
}

/// Sorts `pending` by time (stable: lines of the same millisecond keep
/// their order) and removes the lines CloudWatch Logs would refuse as too
/// old; returns how many were removed.
pub fn prepare(pending: &mut VecDeque<Line>, now_ms: i64) -> usize {
    pending
        .make_contiguous()
        .sort_by_key(|line| line.timestamp_ms);
    let before = pending.len();
    pending.retain(|line| now_ms - line.timestamp_ms < MAX_AGE_MS);
    before - pending.len()
}

/// A log stream name for `worker` (the consumer's worker id,
/// `host:pid:random`): CloudWatch Logs refuses `:` and `*` in stream names
/// and names over 512 characters
/// (<https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogStream.html>),
/// so those characters become `/` and the name is cut.
pub fn stream_name(worker: &str) -> String {
    let mut name: String = worker
        .chars()
        .map(|c| if matches!(c, ':' | '*') { '/' } else { c })
        .collect();
    let mut cut = name.len().min(512);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    name.truncate(cut);
    if name.is_empty() {
        name.push_str("worker");
    }
    name
}

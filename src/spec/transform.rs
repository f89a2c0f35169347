//! The stack file's `processor.transform`, `processor.aggregates` and
//! `tests`: how a record becomes items, what is counted, and the cases that
//! show it. The expressions are jq; [`super::expressions`] compiles them
//! when the file is validated.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a Kinesis record becomes items: `tweets` (the built-in transform of
/// X API records, the default) or a transform in jq.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TransformSpec {
    Builtin(Builtin),
    Jq(JqTransform),
}

impl Default for TransformSpec {
    fn default() -> Self {
        TransformSpec::Builtin(Builtin::Tweets)
    }
}

/// The built-in transforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Builtin {
    /// X API v2 pages and stream messages, v1.1 statuses: one item a tweet, counted by hashtag and lang.
    Tweets,
}

/// A transform in jq: each record's events, and for each event its key, time and fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JqTransform {
    /// jq: the events one record holds, such as `.records[]` (default `.`: the record is one event).
    #[serde(default = "whole_record")]
    #[schemars(length(min = 1, max = 4096))]
    pub events: String,
    /// jq: the item's partition key: one string or integer an event.
    #[schemars(length(min = 1, max = 4096))]
    pub key: String,
    /// jq: the event's time, RFC 3339 or epoch seconds (absent, or null for an event: the record's arrival time).
    #[schemars(length(min = 1, max = 4096))]
    pub time: Option<String>,
    /// jq for each attribute of the item; a null result (or none) leaves the attribute out.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub fields: BTreeMap<String, String>,
}

fn whole_record() -> String {
    ".".into()
}

/// A live aggregate: events counted per value and window of event time, exactly (distinct keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    /// Its name (`top --by NAME`): lowercase letters, digits and underscores.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z][a-z0-9_]*$"))]
    pub name: String,
    /// jq: the values an event counts under (none, one or several; strings, numbers or booleans).
    #[schemars(length(min = 1, max = 4096))]
    pub by: String,
    /// The window, a duration that divides a day: `1m`, `5m`, `15m`, `1h`, `1d`...
    #[serde(default = "one_minute")]
    #[schemars(regex(pattern = r"^[1-9][0-9]*[mhd]$"))]
    pub window: String,
}

fn one_minute() -> String {
    "1m".into()
}

/// The aggregates the built-in tweet transform keeps when none are declared.
pub const TWEET_AGGREGATES: [&str; 2] = ["hashtag", "lang"];

/// Seconds in a day: every window divides it, so windows start at the same
/// times every day (UTC) and a window's start names it.
pub const DAY_S: u32 = 86_400;

impl AggregateSpec {
    /// The window in seconds, when it is one a day divides (1 minute to 1 day).
    pub fn window_s(&self) -> Option<u32> {
        window_seconds(&self.window)
    }
}

/// `1m`, `5m`, `2h`, `1d` in seconds, when the duration divides a day and is
/// whole minutes.
pub fn window_seconds(text: &str) -> Option<u32> {
    let unit = match text.chars().last()? {
        'm' => 60,
        'h' => 3600,
        'd' => DAY_S,
        _ => return None,
    };
    let count: u32 = text[..text.len() - 1].parse().ok()?;
    let seconds = count.checked_mul(unit)?;
    (seconds > 0 && DAY_S % seconds == 0).then_some(seconds)
}

/// A case of `streamstack test`: one record and what it must give.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// What the case shows.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// The Kinesis record: any value is sent as its JSON; a string is the record's text as it is.
    pub record: serde_json::Value,
    /// The record's arrival time in the stream, RFC 3339 (default 2000-01-01T00:00:00Z).
    pub arrival: Option<String>,
    /// Exactly the items it gives, in key order (the TTL attribute is not compared). Absent: not checked.
    pub items: Option<Vec<serde_json::Value>>,
    /// Counts it adds: aggregate name -> window start (`YYYY-MM-DDTHH:MM`, UTC) -> value -> count. Absent: not checked.
    pub aggregates: Option<BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>>,
    /// The dead letters it gives, in order. Absent: not checked.
    pub dead_letters: Option<Vec<ExpectedDeadLetter>>,
}

/// A dead letter a case expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedDeadLetter {
    /// Its reason code: `not_json`, `bad_key`, `transform_error`...
    pub reason: String,
    /// Text its error must contain.
    pub error: Option<String>,
    /// The event's position in the record.
    pub index: Option<usize>,
}

/// The arrival time of a case that gives none.
pub const DEFAULT_ARRIVAL: &str = "2000-01-01T00:00:00Z";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_divide_a_day() {
        assert_eq!(window_seconds("1m"), Some(60));
        assert_eq!(window_seconds("15m"), Some(900));
        assert_eq!(window_seconds("1h"), Some(3600));
        assert_eq!(window_seconds("1d"), Some(86_400));
        assert_eq!(window_seconds("7m"), None);
        assert_eq!(window_seconds("2d"), None);
        assert_eq!(window_seconds("0m"), None);
        assert_eq!(window_seconds("90s"), None);
        assert_eq!(window_seconds("99999999999m"), None);
    }
}

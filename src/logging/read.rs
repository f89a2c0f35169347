//! Reading the processor's log lines back from CloudWatch Logs
//! (FilterLogEvents): for `logs` (a window, or following new lines) and
//! `status` (the last error of each worker).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::Client;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::aws::{AwsError, ResultExt};

/// One log line as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    /// When it happened, ms since the epoch.
    pub time_ms: i64,
    /// The log stream: the worker that wrote it.
    pub stream: String,
    /// CloudWatch Logs' id of the event (unique in the group).
    pub event_id: String,
    /// The message as stored.
    pub raw: String,
    /// The JSON line's fields, when the message is a JSON object (the
    /// processor's lines are).
    pub fields: Option<Map<String, Value>>,
}

impl LogLine {
    fn parse(time_ms: i64, stream: String, event_id: String, raw: String) -> Self {
        let fields = match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        Self {
            time_ms,
            stream,
            event_id,
            raw,
            fields,
        }
    }

    /// Time order; lines of one millisecond by event id (numeric text:
    /// AWS's are of one width, an emulator's may not be).
    fn order(&self) -> (i64, usize, &str) {
        (self.time_ms, self.event_id.len(), &self.event_id)
    }

    fn field_str(&self, name: &str) -> Option<&str> {
        self.fields.as_ref()?.get(name)?.as_str()
    }

    /// `INFO`, `WARN`, `ERROR`...; none for a line that is not JSON.
    pub fn level(&self) -> Option<&str> {
        self.field_str("level")
    }

    /// The message: the JSON line's `message`, or the whole text.
    pub fn message(&self) -> &str {
        self.field_str("message").unwrap_or(&self.raw)
    }

    /// The fields besides timestamp, level, target, message and the span list.
    pub fn extra_fields(&self) -> Map<String, Value> {
        self.fields
            .iter()
            .flatten()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "timestamp" | "level" | "target" | "message" | "spans"
                )
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Reading failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The log group does not exist: a stack deployed before the processor
    /// had one (run `streamstack up` to add it), or no stack at all.
    #[error(
        "log group {group} does not exist: the stack is not deployed, or was deployed before the processor's log group existed (run `streamstack up` to add it)"
    )]
    NoLogGroup { group: String },
    #[error(transparent)]
    Aws(AwsError),
}

impl ReadError {
    fn of(group: &str, e: AwsError) -> Self {
        if e.is_not_found() {
            Self::NoLogGroup {
                group: group.to_string(),
            }
        } else {
            Self::Aws(e)
        }
    }
}

pub fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Every line from `start_ms` (until `end_ms`) matching `pattern`, every page.
async fn filter(
    client: &Client,
    group: &str,
    start_ms: i64,
    end_ms: Option<i64>,
    pattern: Option<&str>,
    mut each: impl FnMut(LogLine),
) -> Result<(), ReadError> {
    let mut token: Option<String> = None;
    loop {
        let out = client
            .filter_log_events()
            .log_group_name(group)
            .start_time(start_ms)
            .set_end_time(end_ms)
            .set_filter_pattern(pattern.map(str::to_string))
            .set_next_token(token.clone())
            .send()
            .await
            .aws(format!("reading log group {group}"))
            .map_err(|e| ReadError::of(group, e))?;
        for event in out.events() {
            each(LogLine::parse(
                event.timestamp().unwrap_or_default(),
                event.log_stream_name().unwrap_or_default().to_string(),
                event.event_id().unwrap_or_default().to_string(),
                event.message().unwrap_or_default().to_string(),
            ));
        }
        match out.next_token() {
            // A token equal to the one just sent would loop forever.
            Some(next) if token.as_deref() != Some(next) => token = Some(next.to_string()),
            _ => return Ok(()),
        }
    }
}

/// The lines of `group` from `since` (until `until`), in time order (the
/// event id orders lines of one millisecond); with `limit`, the newest
/// `limit` of them.
pub async fn fetch(
    client: &Client,
    group: &str,
    since: SystemTime,
    until: Option<SystemTime>,
    limit: Option<usize>,
) -> Result<Vec<LogLine>, ReadError> {
    let mut lines = Vec::new();
    filter(
        client,
        group,
        epoch_ms(since),
        until.map(epoch_ms),
        None,
        |l| lines.push(l),
    )
    .await?;
    lines.sort_by(|a, b| a.order().cmp(&b.order()));
    lines.dedup_by(|a, b| a.event_id == b.event_id && !a.event_id.is_empty());
    if let Some(limit) = limit {
        let excess = lines.len().saturating_sub(limit);
        lines.drain(..excess);
    }
    Ok(lines)
}

/// How far back each poll of a [`Follower`] looks again: FilterLogEvents is
/// eventually consistent, and a worker may ship lines late (its batches
/// every few seconds, longer after an outage). Lines already seen are
/// recognised by their event id.
pub const FOLLOW_LOOKBACK: Duration = Duration::from_secs(120);

/// New lines of a log group, each once.
pub struct Follower {
    client: Client,
    group: String,
    /// The earliest time still asked for.
    from_ms: i64,
    newest_ms: i64,
    /// Event ids seen, with their times (oldest first), for the lookback window.
    seen: HashSet<String>,
    seen_order: VecDeque<(i64, String)>,
}

impl Follower {
    pub fn new(client: Client, group: &str, since: SystemTime) -> Self {
        let from_ms = epoch_ms(since);
        Self {
            client,
            group: group.to_string(),
            from_ms,
            newest_ms: from_ms,
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
        }
    }

    /// The lines not returned before, in time order.
    pub async fn poll(&mut self) -> Result<Vec<LogLine>, ReadError> {
        let start = self
            .from_ms
            .max(self.newest_ms - FOLLOW_LOOKBACK.as_millis() as i64);
        let mut lines = Vec::new();
        filter(&self.client, &self.group, start, None, None, |l| {
            lines.push(l)
        })
        .await?;
        lines.sort_by(|a, b| a.order().cmp(&b.order()));
        Ok(self.unseen(lines, start))
    }

    /// Keeps the lines whose ids were not seen, remembers them, and forgets
    /// ids older than the window just asked for.
    fn unseen(&mut self, lines: Vec<LogLine>, start: i64) -> Vec<LogLine> {
        let fresh: Vec<LogLine> = lines
            .into_iter()
            .filter(|l| self.seen.insert(l.event_id.clone()))
            .collect();
        for l in &fresh {
            self.seen_order.push_back((l.time_ms, l.event_id.clone()));
            self.newest_ms = self.newest_ms.max(l.time_ms);
        }
        while self.seen_order.front().is_some_and(|(t, _)| *t < start) {
            if let Some((_, id)) = self.seen_order.pop_front() {
                self.seen.remove(&id);
            }
        }
        fresh
    }
}

/// Prints (through `each`) every new line of `group` from `since`, polling
/// every `every`, until `stop` is cancelled.
pub async fn follow(
    client: Client,
    group: &str,
    since: SystemTime,
    every: Duration,
    stop: CancellationToken,
    mut each: impl FnMut(&LogLine),
) -> Result<(), ReadError> {
    let mut follower = Follower::new(client, group, since);
    loop {
        for line in follower.poll().await? {
            each(&line);
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// The last error-level line of each log stream (worker) since `since`.
pub async fn last_errors(
    client: &Client,
    group: &str,
    since: SystemTime,
) -> Result<BTreeMap<String, LogLine>, ReadError> {
    let mut last: BTreeMap<String, LogLine> = BTreeMap::new();
    // The pattern narrows the read on AWS; the level is checked here too
    // (an emulator may ignore the pattern).
    filter(
        client,
        group,
        epoch_ms(since),
        None,
        Some(r#"{ $.level = "ERROR" }"#),
        |l| {
            if l.level() != Some("ERROR") {
                return;
            }
            let newer = last
                .get(&l.stream)
                .is_none_or(|old| l.order() >= old.order());
            if newer {
                last.insert(l.stream.clone(), l);
            }
        },
    )
    .await?;
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::replay::{Answer, Replay};
    use serde_json::json;

    fn event(id: &str, t: i64, stream: &str, message: Value) -> Value {
        json!({ "eventId": id, "timestamp": t, "logStreamName": stream, "ingestionTime": t + 5,
                "message": match message { Value::String(s) => s, other => other.to_string() } })
    }

    #[tokio::test]
    async fn fetch_reads_every_page_in_time_order_and_parses_json_lines() {
        let replay = Replay::start().await;
        replay
            .answer(
                "FilterLogEvents",
                Answer::json(json!({ "events": [
                    event("2", 2_000, "w1", json!({ "level": "INFO", "message": "progress", "records_in": 5 })),
                ], "nextToken": "t1" })),
            )
            .answer(
                "FilterLogEvents",
                Answer::json(json!({ "events": [
                    event("1", 1_000, "w2", json!("plain text")),
                    event("3", 3_000, "w2", json!({ "level": "ERROR", "message": "store failed" })),
                ] })),
            );
        let aws = replay.aws().await;
        let lines = fetch(&aws.logs(), "g", UNIX_EPOCH, None, None)
            .await
            .unwrap();
        let ids: Vec<&str> = lines.iter().map(|l| l.event_id.as_str()).collect();
        assert_eq!(ids, ["1", "2", "3"]);
        assert_eq!(lines[0].message(), "plain text");
        assert_eq!(lines[0].level(), None);
        assert_eq!(lines[1].message(), "progress");
        assert_eq!(lines[1].extra_fields()["records_in"], 5);
        assert_eq!(lines[2].stream, "w2");
        let requests = replay.requests("FilterLogEvents");
        assert_eq!(requests.len(), 2);
        assert!(
            requests[1].body.contains("\"nextToken\":\"t1\""),
            "{}",
            requests[1].body
        );
        // With a limit: the newest.
        let replay = Replay::start().await;
        replay.answer(
            "FilterLogEvents",
            Answer::json(json!({ "events": [
                event("1", 1_000, "w", json!("a")), event("2", 2_000, "w", json!("b")), event("3", 3_000, "w", json!("c")),
            ] })),
        );
        let aws = replay.aws().await;
        let lines = fetch(&aws.logs(), "g", UNIX_EPOCH, None, Some(2))
            .await
            .unwrap();
        assert_eq!(
            lines.iter().map(LogLine::message).collect::<Vec<_>>(),
            ["b", "c"]
        );
    }

    #[tokio::test]
    async fn a_missing_log_group_is_its_own_error() {
        let replay = Replay::start().await;
        replay.answer(
            "FilterLogEvents",
            Answer::json_error(
                400,
                "ResourceNotFoundException",
                "The specified log group does not exist.",
            ),
        );
        let aws = replay.aws().await;
        let err = fetch(
            &aws.logs(),
            "/streamstack/s/processor",
            UNIX_EPOCH,
            None,
            None,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, ReadError::NoLogGroup { ref group } if group == "/streamstack/s/processor"),
            "{err}"
        );
        assert!(err.to_string().contains("streamstack up"));
    }

    #[tokio::test]
    async fn following_returns_each_line_once_across_polls_that_overlap() {
        let replay = Replay::start().await;
        let now = epoch_ms(SystemTime::now());
        replay
            .answer(
                "FilterLogEvents",
                Answer::json(json!({ "events": [event("a", now, "w", json!("one"))] })),
            )
            // Eventually consistent: a late line of an earlier time appears beside the one already seen.
            .answer(
                "FilterLogEvents",
                Answer::json(json!({ "events": [
                    event("z", now - 500, "w", json!("late")), event("a", now, "w", json!("one")), event("b", now + 10, "w", json!("two")),
                ] })),
            );
        let aws = replay.aws().await;
        let mut follower =
            Follower::new(aws.logs(), "g", SystemTime::now() - Duration::from_secs(60));
        let first = follower.poll().await.unwrap();
        assert_eq!(
            first.iter().map(LogLine::message).collect::<Vec<_>>(),
            ["one"]
        );
        let second = follower.poll().await.unwrap();
        assert_eq!(
            second.iter().map(LogLine::message).collect::<Vec<_>>(),
            ["late", "two"]
        );
        let third = follower.poll().await.unwrap();
        assert!(third.is_empty(), "{third:?}");
    }

    #[tokio::test]
    async fn last_errors_keeps_the_newest_error_of_each_worker() {
        let replay = Replay::start().await;
        replay.answer(
            "FilterLogEvents",
            Answer::json(json!({ "events": [
                event("1", 1_000, "w1", json!({ "level": "ERROR", "message": "old" })),
                event("2", 2_000, "w1", json!({ "level": "ERROR", "message": "new" })),
                event("3", 3_000, "w1", json!({ "level": "INFO", "message": "not an error" })),
                event("4", 1_500, "w2", json!({ "level": "ERROR", "message": "w2's" })),
            ] })),
        );
        let aws = replay.aws().await;
        let errors = last_errors(&aws.logs(), "g", UNIX_EPOCH).await.unwrap();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors["w1"].message(), "new");
        assert_eq!(errors["w2"].message(), "w2's");
        let body = &replay.requests("FilterLogEvents")[0].body;
        assert!(body.contains("filterPattern"), "{body}");
    }
}

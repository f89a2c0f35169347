//! The layer, the batch rules and the shipper against recorded answers.

use std::collections::VecDeque;

use super::*;
use tracing_subscriber::layer::SubscriberExt;

fn line(ts: i64, size: usize) -> Line {
    Line {
        timestamp_ms: ts,
        text: "x".repeat(size),
    }
}

#[test]
fn a_batch_holds_at_most_10000_events() {
    let mut pending: VecDeque<Line> = (0..10_001).map(|i| line(1_000 + i, 10)).collect();
    let batch = next_batch(&mut pending);
    assert_eq!(batch.len(), 10_000);
    assert_eq!(pending.len(), 1);
    assert_eq!(next_batch(&mut pending).len(), 1);
    assert!(next_batch(&mut pending).is_empty());
}

#[test]
fn a_batch_counts_26_bytes_an_event_within_1_mib() {
    // 1000-byte messages cost 1026: 1,048,576 / 1026 = 1022 fit, not 1048.
    let mut pending: VecDeque<Line> = (0..2_000).map(|i| line(i, 1_000)).collect();
    let batch = next_batch(&mut pending);
    assert_eq!(batch.len(), 1_048_576 / 1_026);
    let bytes: usize = batch.iter().map(Line::cost).sum();
    assert!(bytes <= MAX_BYTES_PER_CALL);
    assert!(bytes + 1_026 > MAX_BYTES_PER_CALL);
    // Exactly at the limit is allowed.
    let exact = MAX_BYTES_PER_CALL / 2 - EVENT_OVERHEAD;
    let mut pending: VecDeque<Line> = (0..3).map(|i| line(i, exact)).collect();
    assert_eq!(next_batch(&mut pending).len(), 2);
}

#[test]
fn a_batch_spans_less_than_24_hours_and_lines_are_sorted_first() {
    let now = 100 * MAX_BATCH_SPAN_MS;
    let mut pending: VecDeque<Line> = [now - 10, now - MAX_BATCH_SPAN_MS - 40, now - 30]
        .into_iter()
        .map(|ts| line(ts, 5))
        .collect();
    assert_eq!(prepare(&mut pending, now), 0);
    let times: Vec<i64> = pending.iter().map(|l| l.timestamp_ms).collect();
    assert_eq!(times, [now - MAX_BATCH_SPAN_MS - 40, now - 30, now - 10]);
    let first = next_batch(&mut pending);
    assert_eq!(
        first.len(),
        1,
        "the oldest line is more than 24 h before the next"
    );
    assert_eq!(next_batch(&mut pending).len(), 2);
}

#[test]
fn lines_older_than_14_days_are_not_sent_and_equal_times_keep_their_order() {
    let now = 30 * 24 * 60 * 60 * 1000;
    let mut pending: VecDeque<Line> = VecDeque::new();
    pending.push_back(Line {
        timestamp_ms: now,
        text: "b".into(),
    });
    pending.push_back(Line {
        timestamp_ms: now - MAX_AGE_MS - 1,
        text: "old".into(),
    });
    pending.push_back(Line {
        timestamp_ms: now,
        text: "c".into(),
    });
    pending.push_back(Line {
        timestamp_ms: now - 1,
        text: "a".into(),
    });
    assert_eq!(prepare(&mut pending, now), 1);
    let texts: Vec<&str> = pending.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["a", "b", "c"]);
}

#[test]
fn an_oversized_line_is_cut_with_a_marker_and_stays_json() {
    let mut fields = Map::new();
    fields.insert("message".into(), Value::String("m".repeat(300_000)));
    fields.insert("shard".into(), Value::String("shardId-000000000001".into()));
    fields.insert("count".into(), 7.into());
    let l = encode(
        1_700_000_000_000,
        "ERROR",
        "streamstack::x",
        fields,
        Vec::new(),
    );
    assert!(l.text.len() <= MAX_MESSAGE_BYTES, "{}", l.text.len());
    assert!(l.cost() <= MAX_EVENT_BYTES);
    let v: Value = serde_json::from_str(&l.text).unwrap();
    assert_eq!(v["truncated"], true);
    assert!(v["message"].as_str().unwrap().ends_with(TRUNCATED_MARKER));
    assert!(
        v["message"].as_str().unwrap().len() > 200_000,
        "cut no more than needed"
    );
    assert_eq!(v["shard"], "shardId-000000000001");
    assert_eq!(v["count"], 7);
    assert_eq!(v["level"], "ERROR");
    // Multi-byte text and characters JSON escapes are cut on a character boundary.
    let mut fields = Map::new();
    fields.insert("message".into(), Value::String("é\"\n".repeat(200_000)));
    let l = encode(0, "INFO", "t", fields, Vec::new());
    assert!(l.text.len() <= MAX_MESSAGE_BYTES, "{}", l.text.len());
    let v: Value = serde_json::from_str(&l.text).unwrap();
    assert_eq!(v["truncated"], true);
    // Many small fields: only what says what happened is kept.
    let mut fields = Map::new();
    for i in 0..30_000 {
        fields.insert(format!("f{i}"), Value::String("abcdefgh".into()));
    }
    fields.insert("message".into(), Value::String("many".into()));
    let l = encode(0, "INFO", "t", fields, Vec::new());
    assert!(l.text.len() <= MAX_MESSAGE_BYTES);
    let v: Value = serde_json::from_str(&l.text).unwrap();
    assert_eq!(v["message"], "many");
    assert_eq!(v["truncated"], true);
    // A line that fits is left alone.
    let mut fields = Map::new();
    fields.insert("message".into(), Value::String("short".into()));
    let v: Value = serde_json::from_str(&encode(0, "INFO", "t", fields, Vec::new()).text).unwrap();
    assert!(v.get("truncated").is_none());
}

/// Events through a subscriber with the layer, activated without a shipper.
fn captured(lines: usize, bytes: usize, body: impl FnOnce()) -> (Vec<Value>, u64) {
    let (layer, mut activator) = layer_with(lines, bytes);
    activator.shared.active.store(true, Ordering::Relaxed);
    let subscriber = tracing_subscriber::registry().with(layer.filtered());
    tracing::subscriber::with_default(subscriber, body);
    let mut out = Vec::new();
    while let Ok(line) = activator.receiver.try_recv() {
        out.push(serde_json::from_str(&line.text).unwrap());
    }
    (out, activator.shared.dropped_full.load(Ordering::Relaxed))
}

#[test]
fn events_become_json_lines_with_their_fields_and_their_spans_fields() {
    let (lines, dropped) = captured(100, 1 << 20, || {
        let span = tracing::info_span!("shard", shard = "shardId-000000000001");
        let _entered = span.enter();
        tracing::info!(records_in = 120u64, ok = true, "progress");
        tracing::error!(
            table = "t-tweets",
            error = "ServiceUnavailable",
            "store failed"
        );
    });
    assert_eq!(dropped, 0);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["message"], "progress");
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(lines[0]["records_in"], 120);
    assert_eq!(lines[0]["ok"], true);
    assert_eq!(lines[0]["shard"], "shardId-000000000001");
    assert_eq!(lines[0]["spans"][0]["name"], "shard");
    assert_eq!(lines[0]["spans"][0]["shard"], "shardId-000000000001");
    assert!(
        lines[0]["target"]
            .as_str()
            .unwrap()
            .starts_with("streamstack")
    );
    assert!(lines[0]["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(lines[1]["level"], "ERROR");
    assert_eq!(lines[1]["table"], "t-tweets");
}

#[test]
fn the_sdk_the_http_stack_debug_and_its_own_reports_are_never_shipped() {
    let (lines, _) = captured(100, 1 << 20, || {
        tracing::warn!(target: "aws_smithy_runtime::client::orchestrator", "retrying");
        tracing::error!(target: "aws_sdk_cloudwatchlogs::operation", "PutLogEvents failed");
        tracing::warn!(target: "hyper_util::client", "connection reset");
        tracing::warn!(target: "rustls::conn", "alert");
        tracing::warn!(target: SELF_TARGET, "cannot ship");
        tracing::debug!("too detailed");
        tracing::info!("kept");
    });
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["message"], "kept");
}

#[test]
fn an_inert_layer_ships_nothing() {
    let (layer, mut activator) = layer_with(10, 1 << 20);
    let subscriber = tracing_subscriber::registry().with(layer.filtered());
    tracing::subscriber::with_default(subscriber, || tracing::info!("before activation"));
    assert!(activator.receiver.try_recv().is_err());
    assert_eq!(activator.shared.dropped_full.load(Ordering::Relaxed), 0);
}

#[test]
fn a_full_buffer_drops_and_counts_instead_of_waiting() {
    let (lines, dropped) = captured(3, 1 << 20, || {
        for i in 0..10 {
            tracing::info!(i, "line");
        }
    });
    assert_eq!(lines.len(), 3);
    assert_eq!(dropped, 7);
    // The byte budget bounds it too.
    let (lines, dropped) = captured(1_000, 1_000, || {
        for i in 0..10 {
            tracing::info!(i, padding = "p".repeat(300), "line");
        }
    });
    assert!(lines.len() < 4, "{}", lines.len());
    assert_eq!(lines.len() as u64 + dropped, 10);
}

#[test]
fn a_worker_id_becomes_a_valid_stream_name() {
    assert_eq!(
        stream_name("ip-10-0-0-1:4242:0000abcd"),
        "ip-10-0-0-1/4242/0000abcd"
    );
    assert_eq!(stream_name("a*b"), "a/b");
    assert_eq!(stream_name(""), "worker");
    assert_eq!(stream_name(&"é".repeat(300)).len(), 512);
}

use crate::aws::replay::{Answer, Replay};

#[tokio::test]
async fn lines_are_shipped_after_a_transient_failure_and_drops_are_reported() {
    let replay = Replay::start().await;
    replay.answer(
        "CreateLogStream",
        Answer::json_error(
            400,
            "ResourceAlreadyExistsException",
            "The specified log stream already exists",
        ),
    );
    replay
        .answer(
            "PutLogEvents",
            Answer::json_error(503, "ServiceUnavailableException", "try again"),
        )
        .answer(
            "PutLogEvents",
            Answer::json(serde_json::json!({ "nextSequenceToken": "1" })),
        );
    let aws = replay.aws().await;
    let (layer, activator) = layer_with(100, 1 << 20);
    let shared = activator.shared.clone();
    let subscriber = tracing_subscriber::registry().with(layer.filtered());
    let _default = tracing::subscriber::set_default(subscriber);
    let shipper = activator.start(aws.logs(), "/streamstack/s/processor", "host:1:abc");
    let span = tracing::info_span!("shard", shard = "shardId-000000000002");
    {
        let _entered = span.enter();
        tracing::info!(records_in = 3u64, "progress");
        tracing::error!(error = "boom", "store failed");
    }
    // As if the buffer had overflowed while CloudWatch was away.
    shared.dropped_full.fetch_add(4, Ordering::Relaxed);
    let stats = shipper.flush_and_stop().await;
    assert_eq!(replay.requests("CreateLogStream").len(), 1);
    let puts = replay.requests("PutLogEvents");
    assert!(
        puts.len() >= 3,
        "a retry, the lines, the report: {}",
        puts.len()
    );
    let delivered: Vec<Value> = puts[1..]
        .iter()
        .flat_map(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(body["logGroupName"], "/streamstack/s/processor");
            assert_eq!(body["logStreamName"], "host/1/abc");
            body["logEvents"].as_array().unwrap().clone()
        })
        .collect();
    let messages: Vec<Value> = delivered
        .iter()
        .map(|e| serde_json::from_str(e["message"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(messages[0]["message"], "progress");
    assert_eq!(messages[0]["shard"], "shardId-000000000002");
    assert_eq!(messages[1]["error"], "boom");
    let report = messages
        .iter()
        .find(|m| m["message"] == "log lines dropped")
        .unwrap();
    assert_eq!(report["dropped"], 4);
    assert_eq!(report["dropped_buffer_full"], 4);
    assert_eq!(stats.dropped_buffer_full, 4);
    assert_eq!(stats.dropped_undeliverable, 0);
    assert_eq!(stats.sent, 3);
    // Nothing of the SDK's own logging about those calls was shipped.
    assert!(
        messages
            .iter()
            .all(|m| !m["target"].as_str().unwrap().starts_with("aws"))
    );
}

#[tokio::test]
async fn a_refused_batch_is_dropped_counted_and_reported_once_calls_succeed() {
    let replay = Replay::start().await;
    replay.answer("CreateLogStream", Answer::json(serde_json::json!({})));
    replay
        .answer(
            "PutLogEvents",
            Answer::json_error(400, "InvalidParameterException", "refused"),
        )
        .answer("PutLogEvents", Answer::json(serde_json::json!({})));
    let aws = replay.aws().await;
    let (layer, activator) = layer_with(100, 1 << 20);
    let subscriber = tracing_subscriber::registry().with(layer.filtered());
    let _default = tracing::subscriber::set_default(subscriber);
    let shipper = activator.start(aws.logs(), "g", "s");
    tracing::info!("one");
    tracing::info!("two");
    let stats = shipper.flush_and_stop().await;
    assert_eq!(stats.dropped_undeliverable, 2);
    assert_eq!(stats.sent, 1, "the report");
    let puts = replay.requests("PutLogEvents");
    assert_eq!(puts.len(), 2);
    let body: Value = serde_json::from_str(&puts[1].body).unwrap();
    let report: Value =
        serde_json::from_str(body["logEvents"][0]["message"].as_str().unwrap()).unwrap();
    assert_eq!(report["dropped_undeliverable"], 2);
}

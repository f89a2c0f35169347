//! The processor's log lines through CloudWatch Logs on the emulator: the
//! stack's log group, the `tracing` layer shipping to it, and `logs`
//! reading them back with their fields.

mod support;

use std::time::{Duration, SystemTime};

use streamstack::logging::{cloudwatch, read};
use streamstack::names::Names;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test]
async fn lines_shipped_by_the_layer_come_back_through_logs_with_their_fields() {
    let d = support::deployed(|text| text).await;
    let group = Names::processor_log_group_of(&d.stack);
    let since = SystemTime::now() - Duration::from_secs(600);
    // The stack created the group; nothing is in it yet.
    let before = read::fetch(&d.aws.logs(), &group, since, None, None)
        .await
        .unwrap();
    assert!(before.is_empty(), "{before:?}");

    let (layer, activator) = cloudwatch::layer();
    let subscriber = tracing_subscriber::registry().with(layer.filtered());
    let default = tracing::subscriber::set_default(subscriber);
    tracing::info!("before activation: not shipped");
    let worker = "test-host:4242:0000abcd";
    let shipper = activator.start(d.aws.logs(), &group, worker);
    // AWS refuses `:` in stream names: the worker id's become `/`.
    let stream = cloudwatch::stream_name(worker);
    assert_eq!(stream, "test-host/4242/0000abcd");
    {
        let span = tracing::info_span!("shard", shard = "shardId-000000000001");
        let _entered = span.enter();
        tracing::info!(records_in = 120u64, items_written = 118u64, "progress");
        tracing::warn!(table = "t-tweets", attempt = 2u64, "store retried");
        tracing::error!(error = "ValidationException", "dead letter written");
    }
    tracing::debug!("below the shipped level");
    let stats = shipper.flush_and_stop().await;
    drop(default);
    assert_eq!(stats.sent, 3, "{stats:?}");
    assert_eq!(stats.dropped_buffer_full + stats.dropped_undeliverable, 0);

    let v = support::json_of(&["logs", &d.file, "-e", "local", "--since", "5m"]);
    assert_eq!(v["log_group"], group.as_str());
    let lines = v["lines"].as_array().unwrap();
    // Exactly the three: nothing from before activation, below INFO, or of
    // the SDK's own logging about the PutLogEvents calls.
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines.iter().all(|l| l["stream"] == stream.as_str()));
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(lines[0]["message"], "progress");
    assert_eq!(lines[0]["fields"]["records_in"], 120);
    assert_eq!(lines[0]["fields"]["items_written"], 118);
    assert_eq!(lines[0]["fields"]["shard"], "shardId-000000000001");
    assert_eq!(lines[1]["level"], "WARN");
    assert_eq!(lines[1]["fields"]["table"], "t-tweets");
    assert_eq!(lines[1]["fields"]["attempt"], 2);
    assert_eq!(lines[2]["level"], "ERROR");
    assert_eq!(lines[2]["fields"]["error"], "ValidationException");

    // Human lines: time, stream, level, message, fields.
    let out = support::streamstack()
        .args(["logs", &d.file, "-e", "local", "--since", "5m"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.contains(&format!(" {stream} INFO  progress ")),
        "{text}"
    );
    assert!(first.contains("records_in=120"), "{text}");
    assert!(first.contains("shard=\"shardId-000000000001\""), "{text}");

    // For `status`: the last error of each worker.
    let errors = read::last_errors(&d.aws.logs(), &group, since)
        .await
        .unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[&stream].message(), "dead letter written");

    // A stack deployed before the log group existed: a typed not-found.
    let missing = read::fetch(
        &d.aws.logs(),
        "/streamstack/no-such-stack/processor",
        since,
        None,
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(missing, read::ReadError::NoLogGroup { .. }),
        "{missing}"
    );

    support::down_deleting_data(&d.file);
}

/// The processor itself, as `make demo` runs it: `consume` ships its own
/// lines (the worker line, the progress events with their counts) to the
/// stack's group, and `logs` shows them, and `status` its last error.
#[tokio::test]
async fn the_consumers_own_lines_reach_the_log_group_and_logs_shows_them() {
    let d = support::deployed(|text| text).await;
    let replay = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/tweets-v2.jsonl");
    support::streamstack()
        .args(["produce", &d.file, "-e", "local", "--replay"])
        .arg(&replay)
        .assert()
        .success();
    let metrics = support::consume_until_idle(&d.file);
    assert!(metrics["records_in"].as_u64().unwrap() > 0, "{metrics}");

    let v = support::json_of(&["logs", &d.file, "-e", "local", "--since", "10m"]);
    let lines = v["lines"].as_array().unwrap();
    // The worker said what it reads, in its own stream (host/pid/random).
    let started = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("consume: worker "))
        })
        .unwrap_or_else(|| panic!("no worker line in {lines:#?}"));
    let stream = started["stream"].as_str().unwrap();
    assert_eq!(stream.split('/').count(), 3, "{stream}");
    assert!(!stream.contains(':'), "{stream}");
    assert_eq!(started["fields"]["stream"], format!("{}-stream", d.stack));
    // Progress as an event with numbers, so a log query can sum them.
    let progress: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["message"] == "progress" && l["stream"] == stream)
        .collect();
    assert!(!progress.is_empty(), "{lines:#?}");
    let last = progress.last().unwrap();
    assert_eq!(
        last["fields"]["records_in"].as_u64(),
        metrics["records_in"].as_u64(),
        "the last progress event counts what the run read: {last}"
    );

    support::down_deleting_data(&d.file);
}

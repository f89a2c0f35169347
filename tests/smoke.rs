//! `smoke` against the emulator: passes on a healthy stack (and leaves the
//! tables as it found them), fails when the processor is stopped, fails when
//! an alarm is in ALARM.

mod support;

use std::time::Duration;

use support::{aws, stack_copy, streamstack};

fn smoke(file: &str, extra: &[&str]) -> (bool, serde_json::Value) {
    let out = streamstack()
        .args([
            "--output",
            "json",
            "smoke",
            file,
            "-e",
            "local",
            "--archive-margin",
            "15",
        ])
        .args(extra)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or("{}"))
        .unwrap_or_else(|_| {
            panic!(
                "stdout {text}\nstderr {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out.status.success(), v)
}

fn check(v: &serde_json::Value, name: &str) -> bool {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {v}"))["ok"]
        .as_bool()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn smoke_passes_on_a_healthy_stack_and_fails_without_processor_or_with_an_alarm() {
    // Firehose flushes every second here, so the archive check is quick.
    let copy = stack_copy("tweets.yaml", |t| {
        t.replace("interval_s: 60", "interval_s: 1")
    });
    let file = copy.path.to_str().unwrap().to_string();
    let stack = format!("{}-local", copy.name);
    let aws = aws().await;
    // `up` ends with a smoke test of its own.
    let up = streamstack()
        .args(["up", &file, "-e", "local"])
        .assert()
        .success();
    let up_out = String::from_utf8_lossy(&up.get_output().stdout).to_string();
    assert!(
        up_out.contains("ok   stored in DynamoDB") && up_out.contains("smoke: passed"),
        "{up_out}"
    );
    // The alarms watch the right metrics of the right resources, as deployed.
    let alarms = aws
        .cloudwatch()
        .describe_alarms()
        .alarm_name_prefix(format!("{stack}-"))
        .send()
        .await
        .unwrap();
    let expected = [
        (
            "iterator-age",
            "AWS/Kinesis",
            "GetRecords.IteratorAgeMilliseconds",
            "StreamName",
            format!("{stack}-stream"),
        ),
        (
            "stream-write-throttles",
            "AWS/Kinesis",
            "WriteProvisionedThroughputExceeded",
            "StreamName",
            format!("{stack}-stream"),
        ),
        (
            "stream-read-throttles",
            "AWS/Kinesis",
            "ReadProvisionedThroughputExceeded",
            "StreamName",
            format!("{stack}-stream"),
        ),
        (
            "archive-freshness",
            "AWS/Firehose",
            "DeliveryToS3.DataFreshness",
            "DeliveryStreamName",
            format!("{stack}-archive"),
        ),
        (
            "archive-delivery",
            "AWS/Firehose",
            "DeliveryToS3.Success",
            "DeliveryStreamName",
            format!("{stack}-archive"),
        ),
        (
            "table-throttles",
            "AWS/DynamoDB",
            "WriteThrottleEvents",
            "TableName",
            format!("{stack}-tweets"),
        ),
        (
            "aggregates-throttles",
            "AWS/DynamoDB",
            "WriteThrottleEvents",
            "TableName",
            format!("{stack}-aggregates"),
        ),
        (
            "leases-throttles",
            "AWS/DynamoDB",
            "WriteThrottleEvents",
            "TableName",
            format!("{stack}-leases"),
        ),
        (
            "dead-letters",
            "Streamstack",
            "DeadLetters",
            "Stack",
            stack.clone(),
        ),
        (
            "processor-lag",
            "Streamstack",
            "MillisBehindLatest",
            "Stack",
            stack.clone(),
        ),
        (
            "stalled-shard",
            "Streamstack",
            "StalledShards",
            "Stack",
            stack.clone(),
        ),
        (
            "processor-heartbeat",
            "Streamstack",
            "Heartbeat",
            "Stack",
            stack.clone(),
        ),
    ];
    assert_eq!(alarms.metric_alarms().len(), expected.len());
    for (name, namespace, metric, dimension, value) in &expected {
        let alarm = alarms
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(&format!("{stack}-{name}")))
            .unwrap_or_else(|| panic!("no alarm {name}"));
        assert_eq!(
            (alarm.namespace(), alarm.metric_name()),
            (Some(*namespace), Some(*metric)),
            "{name}"
        );
        let dims: Vec<(&str, &str)> = alarm
            .dimensions()
            .iter()
            .map(|d| (d.name().unwrap(), d.value().unwrap()))
            .collect();
        assert_eq!(dims, [(*dimension, value.as_str())], "{name}");
    }
    let heartbeat = alarms
        .metric_alarms()
        .iter()
        .find(|a| a.metric_name() == Some("Heartbeat"))
        .unwrap();
    assert_eq!(
        heartbeat.treat_missing_data(),
        Some("breaching"),
        "silence must alarm"
    );
    // The dashboard shows the processor's metrics of this stack.
    let dashboard = aws
        .cloudwatch()
        .get_dashboard()
        .dashboard_name(&stack)
        .send()
        .await
        .unwrap();
    let body = dashboard.dashboard_body().unwrap();
    for metric in [
        "RecordsIn",
        "ItemsWritten",
        "DeadLetters",
        "MillisBehindLatest",
        "Retries",
        "GetRecords.IteratorAgeMilliseconds",
        "DeliveryToS3.DataFreshness",
    ] {
        assert!(body.contains(metric), "dashboard lacks {metric}: {body}");
    }
    assert!(body.contains(&stack));

    // status: every shard held by the running processor, read to the tip.
    let status = streamstack()
        .args(["--output", "json", "status", &file, "-e", "local"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&status.get_output().stdout).unwrap();
    let shards = v["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2, "{v}");
    assert!(
        shards
            .iter()
            .all(|s| s["owner"].is_string() && s["millis_behind"] == 0),
        "{v}"
    );
    assert!(
        shards.iter().any(|s| s["checkpoint_age_s"].is_number()),
        "the canary was checkpointed: {v}"
    );

    // Another stack whose name starts with this one's (`tweets` and
    // `tweets-prod`) has an alarm firing: not this stack's, so smoke passes.
    let foreign = format!("{stack}-prod-dead-letters");
    aws.cloudwatch()
        .put_metric_alarm()
        .alarm_name(&foreign)
        .namespace("Streamstack")
        .metric_name("DeadLetters")
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("Stack")
                .value(format!("{stack}-prod"))
                .build(),
        )
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(
            aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanOrEqualToThreshold,
        )
        .send()
        .await
        .unwrap();
    aws.cloudwatch()
        .set_alarm_state()
        .alarm_name(&foreign)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("another stack's")
        .send()
        .await
        .unwrap();
    let (ok, v) = smoke(&file, &[]);
    assert!(ok, "{v}");
    assert!(
        check(&v, "stored in DynamoDB")
            && check(&v, "archived in S3")
            && check(&v, "processor heartbeat")
            && check(&v, "no alarm in ALARM")
    );
    // The archive check listed the canary's hour, not the whole archive.
    let archive = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "archived in S3")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    let hour = time::OffsetDateTime::from_unix_timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    )
    .unwrap();
    assert!(
        archive.contains(&format!(
            "/raw/{:04}/{:02}/",
            hour.year(),
            u8::from(hour.month())
        )),
        "{archive}"
    );
    aws.cloudwatch()
        .delete_alarms()
        .alarm_names(&foreign)
        .send()
        .await
        .unwrap();
    // The canary left no item behind.
    let items = aws
        .dynamodb()
        .scan()
        .table_name(format!("{stack}-tweets"))
        .send()
        .await
        .unwrap();
    assert_eq!(items.count(), 0, "the canary's item was not removed");
    let memberships = aws
        .dynamodb()
        .scan()
        .table_name(format!("{stack}-aggregates"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        memberships.count(),
        0,
        "the canary's aggregates were not removed"
    );

    // The processor stopped: nothing reaches the table, Firehose still archives.
    assert!(streamstack::deploy::local_processor::stop(&stack, Duration::from_secs(10)).unwrap());
    // A stopped processor: status is red, and no worker holds a shard (its leases were released).
    let status = streamstack()
        .args(["--output", "json", "status", &file, "-e", "local"])
        .assert()
        .code(2);
    let v: serde_json::Value = serde_json::from_slice(&status.get_output().stdout).unwrap();
    assert_eq!(v["processor"]["running"], false, "{v}");
    assert!(
        v["shards"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["owner"].is_null()),
        "{v}"
    );
    let (ok, v) = smoke(&file, &["--table-timeout", "4"]);
    assert!(!ok, "{v}");
    assert!(!check(&v, "stored in DynamoDB"), "{v}");
    assert!(check(&v, "archived in S3"), "{v}");

    // Back up, but an alarm fires: smoke fails on it.
    streamstack()
        .args(["up", &file, "-e", "local", "--no-smoke"])
        .assert()
        .success();
    aws.cloudwatch()
        .set_alarm_state()
        .alarm_name(format!("{stack}-dead-letters"))
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("test")
        .send()
        .await
        .unwrap();
    let (ok, v) = smoke(&file, &[]);
    assert!(!ok, "{v}");
    assert!(check(&v, "stored in DynamoDB"), "{v}");
    assert!(!check(&v, "no alarm in ALARM"), "{v}");
    // ... and status turns red, naming it.
    let status = streamstack()
        .args(["status", &file, "-e", "local"])
        .assert()
        .code(2);
    let text = String::from_utf8_lossy(&status.get_output().stdout).to_string();
    assert!(
        text.contains(&format!("IN ALARM: {stack}-dead-letters"))
            && text.contains("verdict: NOT healthy"),
        "{text}"
    );

    support::down_deleting_data(&file);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_draws_what_put_metric_data_stored() {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let copy = stack_copy("tweets.yaml", |t| t);
    let file = copy.path.to_str().unwrap().to_string();
    let stack = format!("{}-local", copy.name);
    let aws = aws().await;
    let now = std::time::SystemTime::now();
    for (ago, records, dead) in [(600u64, 5.0, 1.0), (300, 7.0, 0.0), (60, 30.0, 2.0)] {
        let at = aws_smithy_types::DateTime::from(now - Duration::from_secs(ago));
        let datum = |name: &str, value: f64| {
            MetricDatum::builder()
                .metric_name(name)
                .dimensions(Dimension::builder().name("Stack").value(&stack).build())
                .timestamp(at)
                .value(value)
                .build()
        };
        aws.cloudwatch()
            .put_metric_data()
            .namespace("Streamstack")
            .metric_data(datum("RecordsIn", records))
            .metric_data(datum("DeadLetters", dead))
            .send()
            .await
            .unwrap();
    }
    let v = support::json_of(&["metrics", &file, "-e", "local", "--since", "30m"]);
    let series = |id: &str| {
        v["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(series("records_in")["summary"], 42.0, "{v}");
    assert_eq!(
        series("records_in")["points"].as_array().unwrap().len(),
        3,
        "{v}"
    );
    assert_eq!(series("dead_letters")["summary"], 3.0, "{v}");
    assert!(
        series("iterator_age")["points"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // A window that ends before the data holds none of it.
    let out = streamstack()
        .args([
            "--output", "json", "metrics", &file, "-e", "local", "--since", "2m",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "records_in")
            .unwrap()["summary"],
        30.0
    );
    // Text: a chart a metric, titled with its total.
    let out = streamstack()
        .args(["metrics", &file, "-e", "local", "--since", "30m"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("processor: records in (total 42)"), "{text}");
    assert!(
        text.contains("x: minutes ago, y: RecordsIn (Sum)"),
        "{text}"
    );
    assert!(
        text.contains("stream: iterator age ms (peak 0)")
            && text.contains("(no data in this window)"),
        "{text}"
    );
}

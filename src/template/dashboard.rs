//! The CloudWatch dashboard: one screen for the whole pipeline.

use serde_json::{Value, json};

use super::{Template, sub};
use crate::names::metrics::NAMESPACE as METRICS_NAMESPACE;

/// The region every widget shows: the one the stack is deployed in, which
/// `--region` may choose over the stack file's, resolved by Fn::Sub.
const REGION: &str = "${AWS::Region}";

fn widget(x: u32, y: u32, title: &str, region: &str, metrics: Value) -> Value {
    json!({
        "type": "metric", "x": x, "y": y, "width": 12, "height": 6,
        "properties": { "title": title, "region": region, "view": "timeSeries", "stacked": false, "period": 60, "metrics": metrics },
    })
}

pub fn add(t: &mut Template<'_>) {
    let n = &t.names;
    let region = REGION;
    let stream = n.stream.as_str();
    let archive = n.delivery_stream.as_str();
    let table = n.table.as_str();
    let aggregates = n.aggregates_table.as_str();
    let leases = n.lease_table.as_str();
    let stack = n.stack.as_str();
    let widgets = vec![
        widget(
            0,
            0,
            "Stream: records in and out",
            region,
            json!([
                ["AWS/Kinesis", "IncomingRecords", "StreamName", stream, { "stat": "Sum", "label": "in" }],
                ["AWS/Kinesis", "GetRecords.Records", "StreamName", stream, { "stat": "Sum", "label": "read" }],
            ]),
        ),
        widget(
            12,
            0,
            "Stream: iterator age (ms)",
            region,
            json!([
                ["AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", stream, { "stat": "Maximum" }],
            ]),
        ),
        widget(
            0,
            6,
            "Archive: deliveries and freshness",
            region,
            json!([
                ["AWS/Firehose", "DeliveryToS3.Records", "DeliveryStreamName", archive, { "stat": "Sum", "label": "records delivered" }],
                ["AWS/Firehose", "DeliveryToS3.DataFreshness", "DeliveryStreamName", archive, { "stat": "Maximum", "label": "freshness (s)", "yAxis": "right" }],
            ]),
        ),
        widget(
            12,
            6,
            "Tables: write units and throttles",
            region,
            json!([
                ["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", table, { "stat": "Sum", "label": "items: write units" }],
                ["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", aggregates, { "stat": "Sum", "label": "aggregates: write units" }],
                ["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", leases, { "stat": "Sum", "label": "leases: write units" }],
                ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", table, { "stat": "Sum", "label": "items: throttles", "yAxis": "right" }],
                ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", aggregates, { "stat": "Sum", "label": "aggregates: throttles", "yAxis": "right" }],
                ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", leases, { "stat": "Sum", "label": "leases: throttles", "yAxis": "right" }],
            ]),
        ),
        widget(
            0,
            12,
            "Processor: throughput and dead letters",
            region,
            json!([
                [METRICS_NAMESPACE, "RecordsIn", "Stack", stack, { "stat": "Sum", "label": "records in" }],
                [METRICS_NAMESPACE, "ItemsWritten", "Stack", stack, { "stat": "Sum", "label": "items written" }],
                [METRICS_NAMESPACE, "DeadLetters", "Stack", stack, { "stat": "Sum", "label": "dead letters", "yAxis": "right" }],
            ]),
        ),
        widget(
            12,
            12,
            "Processor: lag (ms), retries, stalled shards",
            region,
            json!([
                [METRICS_NAMESPACE, "MillisBehindLatest", "Stack", stack, { "stat": "Maximum", "label": "behind latest" }],
                [METRICS_NAMESPACE, "BatchLatencyMillis", "Stack", stack, { "stat": "p99", "label": "batch latency p99" }],
                [METRICS_NAMESPACE, "Retries", "Stack", stack, { "stat": "Sum", "label": "retries (SDK and processor)", "yAxis": "right" }],
                [METRICS_NAMESPACE, "StalledShards", "Stack", stack, { "stat": "Maximum", "label": "stalled shards", "yAxis": "right" }],
            ]),
        ),
    ];
    let body = serde_json::to_string(&json!({ "widgets": widgets }))
        .expect("a JSON value always serializes");
    // Fn::Sub would take any other `${` for a variable: names cannot hold one.
    debug_assert_eq!(body.matches("${").count(), body.matches(REGION).count());
    let name = n.dashboard.clone();
    t.resource("Dashboard", json!({ "Type": "AWS::CloudWatch::Dashboard", "Properties": { "DashboardName": name, "DashboardBody": sub(&body) } }));
    t.output(
        "DashboardName",
        "CloudWatch dashboard of the pipeline",
        json!(name),
    );
    t.output(
        "MetricsNamespace",
        "CloudWatch namespace of the processor's metrics (dimension Stack)",
        json!(METRICS_NAMESPACE),
    );
}

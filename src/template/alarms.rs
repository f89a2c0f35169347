//! CloudWatch alarms on every part of the pipeline, and the SNS topic that
//! e-mails them when `alarms.email` is set.
//!
//! Thresholds come from the stack file; the statistic, period and missing-data
//! treatment are chosen per metric (see each alarm's description).

use serde_json::{Value, json};

use super::{Template, get_att, key, r};
use crate::names::metrics::NAMESPACE as METRICS_NAMESPACE;

pub const TOPIC: &str = "AlarmTopic";

struct Alarm<'a> {
    logical_id: &'a str,
    name: &'a str,
    description: String,
    namespace: &'a str,
    metric: &'a str,
    dimensions: Value,
    statistic: &'a str,
    period_s: u64,
    evaluation_periods: u64,
    datapoints: u64,
    threshold: f64,
    comparison: &'a str,
    missing: &'a str,
}

/// The alarm on a table's throttled writes.
fn table_throttles<'a>(
    logical_id: &'a str,
    name: &'a str,
    table: &str,
    holding: &str,
    threshold: u64,
) -> Alarm<'a> {
    Alarm {
        logical_id,
        name,
        description: format!("Writes to {table} ({holding}) were throttled."),
        namespace: "AWS/DynamoDB",
        metric: "WriteThrottleEvents",
        dimensions: json!([{ "Name": "TableName", "Value": table }]),
        statistic: "Sum",
        period_s: 300,
        evaluation_periods: 1,
        datapoints: 1,
        threshold: threshold as f64,
        comparison: "GreaterThanOrEqualToThreshold",
        missing: "notBreaching",
    }
}

pub fn add(t: &mut Template<'_>) {
    let email = t.stack.alarms.email.clone();
    if let Some(email) = &email {
        let tags = t.tags();
        t.resource(
            TOPIC,
            json!({
                "Type": "AWS::SNS::Topic",
                "Properties": {
                    "TopicName": format!("{}-alarms", t.names.stack),
                    "KmsMasterKeyId": get_att(key::KEY, "Arn"),
                    "Tags": tags,
                }
            }),
        );
        t.resource(
            "AlarmEmailSubscription",
            json!({ "Type": "AWS::SNS::Subscription", "Properties": { "TopicArn": r(TOPIC), "Protocol": "email", "Endpoint": email } }),
        );
        t.output("AlarmTopicArn", "SNS topic that alarms notify", r(TOPIC));
    }

    let a = t.stack.alarms.clone();
    let names = t.names.clone();
    let stream = json!([{ "Name": "StreamName", "Value": names.stream }]);
    let stack_dim = json!([{ "Name": "Stack", "Value": names.stack }]);
    let heartbeat_periods = a.heartbeat_s.div_ceil(60);
    let alarms = [
        Alarm {
            logical_id: "IteratorAgeAlarm",
            name: "iterator-age",
            description: format!(
                "The oldest unread record in {} is older than {} s: the processor is falling behind.",
                names.stream, a.iterator_age_s
            ),
            namespace: "AWS/Kinesis",
            metric: "GetRecords.IteratorAgeMilliseconds",
            dimensions: stream.clone(),
            statistic: "Maximum",
            period_s: 60,
            evaluation_periods: 5,
            datapoints: 3,
            threshold: (a.iterator_age_s * 1000) as f64,
            comparison: "GreaterThanThreshold",
            // No reads at all is the heartbeat alarm's business.
            missing: "notBreaching",
        },
        Alarm {
            logical_id: "StreamWriteThrottleAlarm",
            name: "stream-write-throttles",
            description: format!(
                "Producers were throttled writing to {}: add shards or use on-demand mode.",
                names.stream
            ),
            namespace: "AWS/Kinesis",
            metric: "WriteProvisionedThroughputExceeded",
            dimensions: stream.clone(),
            statistic: "Sum",
            period_s: 300,
            evaluation_periods: 1,
            datapoints: 1,
            threshold: a.throttles as f64,
            comparison: "GreaterThanOrEqualToThreshold",
            missing: "notBreaching",
        },
        Alarm {
            logical_id: "StreamReadThrottleAlarm",
            name: "stream-read-throttles",
            description: format!(
                "Readers of {} were throttled: too many consumers per shard.",
                names.stream
            ),
            namespace: "AWS/Kinesis",
            metric: "ReadProvisionedThroughputExceeded",
            dimensions: stream,
            statistic: "Sum",
            period_s: 300,
            evaluation_periods: 1,
            datapoints: 1,
            threshold: a.throttles as f64,
            comparison: "GreaterThanOrEqualToThreshold",
            missing: "notBreaching",
        },
        Alarm {
            logical_id: "ArchiveFreshnessAlarm",
            name: "archive-freshness",
            description: format!(
                "The newest record archived to S3 is older than {} s: Firehose is not delivering.",
                a.archive_freshness_s
            ),
            namespace: "AWS/Firehose",
            metric: "DeliveryToS3.DataFreshness",
            dimensions: json!([{ "Name": "DeliveryStreamName", "Value": names.delivery_stream }]),
            statistic: "Maximum",
            period_s: 300,
            evaluation_periods: 1,
            datapoints: 1,
            threshold: a.archive_freshness_s as f64,
            comparison: "GreaterThanThreshold",
            missing: "notBreaching",
        },
        Alarm {
            logical_id: "ArchiveDeliveryAlarm",
            name: "archive-delivery",
            description: "Firehose failed to deliver records to S3 (see its error log group)."
                .to_string(),
            namespace: "AWS/Firehose",
            metric: "DeliveryToS3.Success",
            dimensions: json!([{ "Name": "DeliveryStreamName", "Value": names.delivery_stream }]),
            statistic: "Minimum",
            period_s: 300,
            evaluation_periods: 1,
            datapoints: 1,
            threshold: 1.0,
            comparison: "LessThanThreshold",
            missing: "notBreaching",
        },
        // Every table the processor writes: the items, the aggregates and
        // the leases (renewals and checkpoints). A throttled one holds the
        // shards back whichever it is.
        table_throttles(
            "TableThrottleAlarm",
            "table-throttles",
            &names.table,
            "the items",
            a.throttles,
        ),
        table_throttles(
            "AggregatesThrottleAlarm",
            "aggregates-throttles",
            &names.aggregates_table,
            "the aggregates",
            a.throttles,
        ),
        table_throttles(
            "LeaseThrottleAlarm",
            "leases-throttles",
            &names.lease_table,
            "the shard leases and checkpoints",
            a.throttles,
        ),
        Alarm {
            logical_id: "DeadLetterAlarm",
            name: "dead-letters",
            description: format!(
                "At least {} record(s) went to dead letters in five minutes: the source sends data the processor cannot read.",
                a.dead_letters
            ),
            namespace: METRICS_NAMESPACE,
            metric: "DeadLetters",
            dimensions: stack_dim.clone(),
            statistic: "Sum",
            period_s: 300,
            evaluation_periods: 1,
            datapoints: 1,
            threshold: a.dead_letters as f64,
            comparison: "GreaterThanOrEqualToThreshold",
            missing: "notBreaching",
        },
        Alarm {
            logical_id: "ProcessorLagAlarm",
            name: "processor-lag",
            description: format!(
                "The processor is more than {} s behind the tip of the stream.",
                a.iterator_age_s
            ),
            namespace: METRICS_NAMESPACE,
            metric: "MillisBehindLatest",
            dimensions: stack_dim.clone(),
            statistic: "Maximum",
            period_s: 60,
            evaluation_periods: 5,
            datapoints: 3,
            threshold: (a.iterator_age_s * 1000) as f64,
            comparison: "GreaterThanThreshold",
            missing: "notBreaching",
        },
        Alarm {
            logical_id: "StalledShardAlarm",
            name: "stalled-shard",
            description: "A shard reader has retried the same work for over a minute (a store or read that keeps failing): records of that shard wait. `streamstack status` names the shard and its last error.".to_string(),
            namespace: METRICS_NAMESPACE,
            metric: "StalledShards",
            dimensions: stack_dim.clone(),
            statistic: "Maximum",
            period_s: 60,
            evaluation_periods: 1,
            datapoints: 1,
            threshold: 1.0,
            comparison: "GreaterThanOrEqualToThreshold",
            // No processor, no figure: the heartbeat alarm covers that.
            missing: "notBreaching",
        },
        Alarm {
            logical_id: "ProcessorHeartbeatAlarm",
            name: "processor-heartbeat",
            description: format!(
                "No processor heartbeat for {} s: the processor is down.",
                a.heartbeat_s
            ),
            namespace: METRICS_NAMESPACE,
            metric: "Heartbeat",
            dimensions: stack_dim,
            statistic: "Sum",
            period_s: 60,
            evaluation_periods: heartbeat_periods,
            datapoints: heartbeat_periods,
            threshold: 1.0,
            comparison: "LessThanThreshold",
            // Silence is exactly what this alarm exists to catch.
            missing: "breaching",
        },
    ];
    for alarm in alarms {
        let mut properties = json!({
            "AlarmName": names.alarm(alarm.name),
            "AlarmDescription": alarm.description,
            "Namespace": alarm.namespace,
            "MetricName": alarm.metric,
            "Dimensions": alarm.dimensions,
            "Statistic": alarm.statistic,
            "Period": alarm.period_s,
            "EvaluationPeriods": alarm.evaluation_periods,
            "DatapointsToAlarm": alarm.datapoints,
            "Threshold": alarm.threshold,
            "ComparisonOperator": alarm.comparison,
            "TreatMissingData": alarm.missing,
        });
        if email.is_some() {
            properties["AlarmActions"] = json!([r(TOPIC)]);
            properties["OKActions"] = json!([r(TOPIC)]);
        }
        t.resource(
            alarm.logical_id,
            json!({ "Type": "AWS::CloudWatch::Alarm", "Properties": properties }),
        );
    }
}

//! `metrics`: the pipeline's CloudWatch figures over a window, one series
//! a metric (the same metrics as the stack's dashboard).

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use serde::Serialize;

use super::{AppError, Environment};
use crate::aws::ResultExt;
use crate::names::Names;
use crate::names::metrics::{self as metric, NAMESPACE as METRICS_NAMESPACE};

/// The series of a window, and when it ends.
#[derive(Debug)]
pub struct MetricsReport {
    pub stack: String,
    /// The window's end, in Unix seconds.
    pub end_s: i64,
    pub series: Vec<Series>,
}

/// One metric of the pipeline: where it lives and how to sum it up.
struct Figure {
    pub id: &'static str,
    pub title: &'static str,
    pub namespace: &'static str,
    pub metric: &'static str,
    dimension: (&'static str, String),
    pub stat: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Series {
    pub id: &'static str,
    pub title: &'static str,
    pub namespace: &'static str,
    pub metric: &'static str,
    pub stat: &'static str,
    /// Sum of the points for Sum statistics, the peak otherwise.
    pub summary: f64,
    /// (Unix seconds, value), oldest first.
    pub points: Vec<(i64, f64)>,
}

fn figures(names: &Names) -> Vec<Figure> {
    let stack = (metric::STACK_DIMENSION, names.stack.clone());
    let stream = ("StreamName", names.stream.clone());
    let delivery = ("DeliveryStreamName", names.delivery_stream.clone());
    let table = ("TableName", names.table.clone());
    let aggregates = ("TableName", names.aggregates_table.clone());
    vec![
        Figure {
            id: "records_in",
            title: "processor: records in",
            namespace: METRICS_NAMESPACE,
            metric: metric::RECORDS_IN,
            dimension: stack.clone(),
            stat: "Sum",
        },
        Figure {
            id: "items_written",
            title: "processor: tweets stored",
            namespace: METRICS_NAMESPACE,
            metric: metric::ITEMS_WRITTEN,
            dimension: stack.clone(),
            stat: "Sum",
        },
        Figure {
            id: "dead_letters",
            title: "processor: dead letters",
            namespace: METRICS_NAMESPACE,
            metric: metric::DEAD_LETTERS,
            dimension: stack.clone(),
            stat: "Sum",
        },
        Figure {
            id: "stalled",
            title: "processor: stalled shards",
            namespace: METRICS_NAMESPACE,
            metric: metric::STALLED_SHARDS,
            dimension: stack.clone(),
            stat: "Maximum",
        },
        Figure {
            id: "behind",
            title: "processor: ms behind (tip or checkpoint)",
            namespace: METRICS_NAMESPACE,
            metric: metric::MILLIS_BEHIND_LATEST,
            dimension: stack.clone(),
            stat: "Maximum",
        },
        Figure {
            id: "batch_latency",
            title: "processor: batch latency ms",
            namespace: METRICS_NAMESPACE,
            metric: metric::BATCH_LATENCY_MILLIS,
            dimension: stack.clone(),
            stat: "Average",
        },
        Figure {
            id: "retries",
            title: "processor: retries (SDK and its own)",
            namespace: METRICS_NAMESPACE,
            metric: metric::RETRIES,
            dimension: stack.clone(),
            stat: "Sum",
        },
        Figure {
            id: "units_items",
            title: "processor: write units, items",
            namespace: METRICS_NAMESPACE,
            metric: metric::WRITE_UNITS_ITEMS,
            dimension: stack.clone(),
            stat: "Sum",
        },
        Figure {
            id: "units_aggregates",
            title: "processor: write units, aggregates",
            namespace: METRICS_NAMESPACE,
            metric: metric::WRITE_UNITS_AGGREGATES,
            dimension: stack.clone(),
            stat: "Sum",
        },
        Figure {
            id: "units_checkpoints",
            title: "processor: write units, checkpoints",
            namespace: METRICS_NAMESPACE,
            metric: metric::WRITE_UNITS_CHECKPOINTS,
            dimension: stack.clone(),
            stat: "Sum",
        },
        Figure {
            id: "heartbeat",
            title: "processor: heartbeats",
            namespace: METRICS_NAMESPACE,
            metric: metric::HEARTBEAT,
            dimension: stack,
            stat: "Sum",
        },
        Figure {
            id: "stream_in",
            title: "stream: records in",
            namespace: "AWS/Kinesis",
            metric: "IncomingRecords",
            dimension: stream.clone(),
            stat: "Sum",
        },
        Figure {
            id: "iterator_age",
            title: "stream: iterator age ms",
            namespace: "AWS/Kinesis",
            metric: "GetRecords.IteratorAgeMilliseconds",
            dimension: stream,
            stat: "Maximum",
        },
        Figure {
            id: "archived",
            title: "archive: records delivered to S3",
            namespace: "AWS/Firehose",
            metric: "DeliveryToS3.Records",
            dimension: delivery.clone(),
            stat: "Sum",
        },
        Figure {
            id: "freshness",
            title: "archive: data freshness s",
            namespace: "AWS/Firehose",
            metric: "DeliveryToS3.DataFreshness",
            dimension: delivery,
            stat: "Maximum",
        },
        Figure {
            id: "table_writes",
            title: "table: write capacity used",
            namespace: "AWS/DynamoDB",
            metric: "ConsumedWriteCapacityUnits",
            dimension: table.clone(),
            stat: "Sum",
        },
        // WriteThrottleEvents has the table as its only dimension;
        // ThrottledRequests also has the operation, so a query by table
        // alone finds no data.
        Figure {
            id: "table_throttles",
            title: "table: throttled writes",
            namespace: "AWS/DynamoDB",
            metric: "WriteThrottleEvents",
            dimension: table,
            stat: "Sum",
        },
        Figure {
            id: "aggregates_throttles",
            title: "aggregates table: throttled writes",
            namespace: "AWS/DynamoDB",
            metric: "WriteThrottleEvents",
            dimension: aggregates,
            stat: "Sum",
        },
    ]
}

/// Reads every figure over the last `since`, one point a `period_s` (a multiple of 60).
pub async fn metrics(
    env: &Environment,
    since: Duration,
    period_s: u64,
) -> Result<MetricsReport, AppError> {
    let period = period_s;
    let names = &env.names;
    let figures = figures(names);
    let end = SystemTime::now();
    let start = end - since;
    let queries: Vec<MetricDataQuery> = figures
        .iter()
        .map(|f| {
            let metric = Metric::builder()
                .namespace(f.namespace)
                .metric_name(f.metric)
                .dimensions(
                    Dimension::builder()
                        .name(f.dimension.0)
                        .value(&f.dimension.1)
                        .build(),
                )
                .build();
            MetricDataQuery::builder()
                .id(f.id)
                .metric_stat(
                    MetricStat::builder()
                        .metric(metric)
                        .period(period as i32)
                        .stat(f.stat)
                        .build(),
                )
                .return_data(true)
                .build()
        })
        .collect();
    let mut points: std::collections::HashMap<String, Vec<(i64, f64)>> = Default::default();
    let mut pages = env
        .aws
        .cloudwatch()
        .get_metric_data()
        .set_metric_data_queries(Some(queries))
        .start_time(start.into())
        .end_time(end.into())
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.aws(format!("reading the metrics of {}", names.stack))?;
        for result in page.metric_data_results() {
            let entry = points
                .entry(result.id().unwrap_or_default().to_string())
                .or_default();
            entry.extend(
                result
                    .timestamps()
                    .iter()
                    .map(|t| t.secs())
                    .zip(result.values().iter().copied()),
            );
        }
    }
    let series: Vec<Series> = figures
        .iter()
        .map(|f| {
            let mut p = points.remove(f.id).unwrap_or_default();
            p.sort_by_key(|(t, _)| *t);
            let summary = if f.stat == "Sum" {
                p.iter().fold(0.0, |sum, (_, v)| sum + v)
            } else {
                p.iter().map(|(_, v)| *v).fold(0.0, f64::max)
            };
            Series {
                id: f.id,
                title: f.title,
                namespace: f.namespace,
                metric: f.metric,
                stat: f.stat,
                summary,
                points: p,
            }
        })
        .collect();
    Ok(MetricsReport {
        stack: names.stack.clone(),
        end_s: aws_smithy_types::DateTime::from(end).secs(),
        series,
    })
}

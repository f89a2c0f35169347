//! `streamstack metrics`: the pipeline's CloudWatch figures in the terminal,
//! one chart a metric (minutes ago on x, the value on y, with the total or
//! peak beside the title), or `--output json` for scripts. The same metrics
//! as the stack's dashboard.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use clap::Args;
use serde::Serialize;
use serde_json::json;
use textplots::{Chart, Plot, Shape};

use super::{Cli, Exit, Output, StackArgs, load, with_aws};
use crate::aws::ResultExt;
use crate::names::Names;
use crate::names::metrics::NAMESPACE as METRICS_NAMESPACE;

#[derive(Debug, Args)]
pub struct MetricsArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// How far back: `1h`, `30m`, `2d`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub since: Duration,
    /// One data point a period: `1m`, `5m` (CloudWatch keeps 1-minute points for 15 days).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub period: Duration,
}

/// One metric of the pipeline: where it lives and how to sum it up.
struct Figure {
    id: &'static str,
    title: &'static str,
    namespace: &'static str,
    metric: &'static str,
    dimension: (&'static str, String),
    stat: &'static str,
}

#[derive(Debug, Serialize)]
struct Series {
    id: &'static str,
    title: &'static str,
    namespace: &'static str,
    metric: &'static str,
    stat: &'static str,
    /// Sum of the points for Sum statistics, the peak otherwise.
    summary: f64,
    /// (Unix seconds, value), oldest first.
    points: Vec<(i64, f64)>,
}

fn figures(names: &Names) -> Vec<Figure> {
    let stack = ("Stack", names.stack.clone());
    let stream = ("StreamName", names.stream.clone());
    let delivery = ("DeliveryStreamName", names.delivery_stream.clone());
    let table = ("TableName", names.table.clone());
    vec![
        Figure {
            id: "records_in",
            title: "processor: records in",
            namespace: METRICS_NAMESPACE,
            metric: "RecordsIn",
            dimension: stack.clone(),
            stat: "Sum",
        },
        Figure {
            id: "items_written",
            title: "processor: tweets stored",
            namespace: METRICS_NAMESPACE,
            metric: "ItemsWritten",
            dimension: stack.clone(),
            stat: "Sum",
        },
        Figure {
            id: "dead_letters",
            title: "processor: dead letters",
            namespace: METRICS_NAMESPACE,
            metric: "DeadLetters",
            dimension: stack.clone(),
            stat: "Sum",
        },
        Figure {
            id: "stalled",
            title: "processor: stalled shards",
            namespace: METRICS_NAMESPACE,
            metric: "StalledShards",
            dimension: stack.clone(),
            stat: "Maximum",
        },
        Figure {
            id: "behind",
            title: "processor: ms behind (tip or checkpoint)",
            namespace: METRICS_NAMESPACE,
            metric: "MillisBehindLatest",
            dimension: stack.clone(),
            stat: "Maximum",
        },
        Figure {
            id: "batch_latency",
            title: "processor: batch latency ms",
            namespace: METRICS_NAMESPACE,
            metric: "BatchLatencyMillis",
            dimension: stack.clone(),
            stat: "Average",
        },
        Figure {
            id: "retries",
            title: "processor: retries (SDK and its own)",
            namespace: METRICS_NAMESPACE,
            metric: "Retries",
            dimension: stack.clone(),
            stat: "Sum",
        },
        Figure {
            id: "heartbeat",
            title: "processor: heartbeats",
            namespace: METRICS_NAMESPACE,
            metric: "Heartbeat",
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
        Figure {
            id: "table_throttles",
            title: "table: throttled requests",
            namespace: "AWS/DynamoDB",
            metric: "ThrottledRequests",
            dimension: table,
            stat: "Sum",
        },
    ]
}

fn chart(series: &Series, now: i64) -> String {
    if series.points.is_empty() {
        return "  (no data in this window)\n".into();
    }
    // x: minutes before now (negative), so the right edge is "now".
    let points: Vec<(f32, f32)> = series
        .points
        .iter()
        .map(|(t, v)| (((t - now) as f32) / 60.0, *v as f32))
        .collect();
    let xmin = points.first().map_or(-1.0, |p| p.0).min(-1.0);
    let mut chart = Chart::new(120, 30, xmin, 0.0);
    let shape = Shape::Steps(&points);
    let chart = chart.lineplot(&shape);
    chart.axis();
    chart.figures();
    format!(
        "{chart}  x: minutes ago, y: {} ({})\n",
        series.metric, series.stat
    )
}

pub fn run(args: &MetricsArgs, cli: &Cli) -> Exit {
    let resolved = match load(&args.stack, cli.output) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let period = args.period.as_secs().max(60) / 60 * 60;
    with_aws(cli, &resolved, async |aws| {
        let names = Names::new(&resolved);
        let figures = figures(&names);
        let end = SystemTime::now();
        let start = end - args.since;
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
        let mut pages = aws
            .cloudwatch()
            .get_metric_data()
            .set_metric_data_queries(Some(queries))
            .start_time(start.into())
            .end_time(end.into())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page.aws(format!("reading the metrics of {}", names.stack)) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Exit::Failed;
                }
            };
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
        match cli.output {
            Output::Json => println!(
                "{}",
                json!({ "stack": names.stack, "since_s": args.since.as_secs(), "period_s": period, "series": series })
            ),
            Output::Text => {
                let now = aws_smithy_types::DateTime::from(end).secs();
                println!(
                    "{}: the last {}, one point a {} s",
                    names.stack,
                    humantime::format_duration(args.since),
                    period
                );
                for s in &series {
                    let label = if s.stat == "Sum" { "total" } else { "peak" };
                    println!("\n{} ({label} {})", s.title, s.summary);
                    print!("{}", chart(s, now));
                }
            }
        }
        Exit::Ok
    })
}

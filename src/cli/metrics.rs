//! `streamstack metrics`: the pipeline's CloudWatch figures in the terminal,
//! one chart a metric (minutes ago on x, the value on y, with the total or
//! peak beside the title), or `--output json` for scripts. The same metrics
//! as the stack's dashboard.

use std::time::Duration;

use clap::Args;
use serde_json::json;
use textplots::{Chart, Plot, Shape};

use super::{Cli, Exit, Output, StackArgs, in_environment};
use crate::app::metrics::{Series, metrics};

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
    let period = args.period.as_secs().max(60) / 60 * 60;
    let report = match in_environment(cli, &args.stack, async |env| {
        metrics(&env, args.since, period).await
    }) {
        Ok(report) => report,
        Err(exit) => return exit,
    };
    let series = &report.series;
    match cli.output {
        Output::Json => println!(
            "{}",
            json!({ "stack": report.stack, "since_s": args.since.as_secs(), "period_s": period, "series": series })
        ),
        Output::Text => {
            println!(
                "{}: the last {}, one point a {} s",
                report.stack,
                humantime::format_duration(args.since),
                period
            );
            for s in series {
                let label = if s.stat == "Sum" { "total" } else { "peak" };
                println!("\n{} ({label} {})", s.title, s.summary);
                print!("{}", chart(s, report.end_s));
            }
        }
    }
    Exit::Ok
}

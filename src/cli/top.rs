//! `streamstack top`: the top values of an aggregate (hashtags, languages,
//! any the stack file declares) over the last minutes,
//! counted from the live aggregates the processor keeps in DynamoDB:
//! distinct events a value, exact under replays.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use serde_json::json;

use super::{Cli, Exit, Output, StackArgs, in_environment};
use crate::app::top::{Window, top};

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// The aggregate to rank: one the stack file declares (`hashtag` or `lang` with the built-in tweet transform).
    #[arg(long)]
    pub by: Option<String>,
    /// The window: this many minutes up to --until.
    #[arg(long, default_value_t = 15)]
    pub minutes: u32,
    /// End of the window (Unix seconds or RFC 3339; default: now). Tweets
    /// count in the minute they were created.
    #[arg(long)]
    pub until: Option<String>,
    /// Every minute stored, not a window (reads the whole aggregates table).
    #[arg(long, conflicts_with_all = ["minutes", "until"])]
    pub all: bool,
    /// How many to show.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
}

fn parse_until(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().or_else(|| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| t.unix_timestamp())
    })
}

pub fn run(args: &TopArgs, cli: &Cli) -> Exit {
    let until = match &args.until {
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
        Some(s) => match parse_until(s) {
            Some(t) => t,
            None => {
                eprintln!("error: --until {s}: not Unix seconds nor an RFC 3339 time");
                return Exit::Invalid;
            }
        },
    };
    let window = if args.all {
        Window::All
    } else {
        Window::Minutes {
            minutes: args.minutes,
            until,
        }
    };
    let report = match in_environment(cli, &args.stack, async |env| {
        // Default: the first aggregate of the stack.
        let first = env.resolved.stack.processor.aggregates().into_iter().next();
        let by = match (&args.by, first) {
            (Some(by), _) => by.clone(),
            (None, Some(first)) => first.name,
            (None, None) => String::new(),
        };
        top(&env, &by, window, args.limit).await
    }) {
        Ok(report) => report,
        Err(exit) => return exit,
    };
    let (shown, window, dimension) = (&report.top, &report.window, &report.dimension);
    match cli.output {
        Output::Json => println!(
            "{}",
            json!({
                "by": dimension, "window": window,
                "top": shown.iter().map(|(v, c)| json!({ "value": v, "count": c })).collect::<Vec<_>>(),
            })
        ),
        Output::Text => {
            println!("top {dimension} values, {window}:");
            if shown.is_empty() {
                println!("  (none)");
            }
            let width = shown.iter().map(|(v, _)| v.len()).max().unwrap_or(0);
            for (value, count) in shown {
                let shown = if dimension == "hashtag" {
                    format!("#{value}")
                } else {
                    value.clone()
                };
                println!("  {shown:<w$}  {count:>6}", w = width + 1);
            }
        }
    }
    Exit::Ok
}

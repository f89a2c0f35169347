//! `streamstack top`: the top hashtags (or languages) of the last minutes,
//! counted from the live aggregates the processor keeps in DynamoDB:
//! distinct tweets a value, exact under replays.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use serde_json::json;

use super::{Cli, Exit, Output, StackArgs, in_environment};
use crate::app::top::{Window, top};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Dimension {
    Hashtag,
    Lang,
}

impl Dimension {
    fn name(self) -> &'static str {
        match self {
            Dimension::Hashtag => "hashtag",
            Dimension::Lang => "lang",
        }
    }
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// What to rank.
    #[arg(long, value_enum, default_value_t = Dimension::Hashtag)]
    pub by: Dimension,
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
    let dimension = args.by.name();
    let report = match in_environment(cli, &args.stack, async |env| {
        top(&env, dimension, window, args.limit).await
    }) {
        Ok(report) => report,
        Err(exit) => return exit,
    };
    let (shown, window) = (&report.top, &report.window);
    match cli.output {
        Output::Json => println!(
            "{}",
            json!({
                "by": dimension, "window": window,
                "top": shown.iter().map(|(v, c)| json!({ "value": v, "tweets": c })).collect::<Vec<_>>(),
            })
        ),
        Output::Text => {
            println!("top {dimension}s, {window}:");
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

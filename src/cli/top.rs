//! `streamstack top`: the top hashtags (or languages) of the last minutes,
//! counted from the live aggregates the processor keeps in DynamoDB:
//! distinct tweets a value, exact under replays.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use clap::{Args, ValueEnum};
use serde_json::json;

use super::{Cli, Exit, Output, StackArgs, load, with_aws};
use crate::aws::ResultExt;
use crate::names::Names;
use crate::names::attribute::{AGGREGATES_PK, AGGREGATES_SK};
use crate::processor::read::batch::{aggregate_pk, minute_at, tally};

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
    let resolved = match load(&args.stack, cli.output) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
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
    with_aws(cli, &resolved, async |aws| {
        let table = Names::new(&resolved).aggregates_table;
        let dimension = args.by.name();
        let ddb = aws.dynamodb();
        let mut sort_keys: Vec<String> = Vec::new();
        let result: Result<(), crate::aws::AwsError> = async {
            if args.all {
                let mut start: Option<HashMap<String, AttributeValue>> = None;
                loop {
                    let out = ddb
                        .scan()
                        .table_name(&table)
                        .filter_expression("begins_with(#pk, :dim)")
                        .expression_attribute_names("#pk", AGGREGATES_PK)
                        .expression_attribute_names("#sk", AGGREGATES_SK)
                        .expression_attribute_values(
                            ":dim",
                            AttributeValue::S(format!("{dimension}#")),
                        )
                        .projection_expression("#sk")
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .aws(format!("reading the aggregates in {table}"))?;
                    sort_keys.extend(
                        out.items()
                            .iter()
                            .filter_map(|i| i.get(AGGREGATES_SK)?.as_s().ok().cloned()),
                    );
                    start = out.last_evaluated_key().cloned();
                    if start.is_none() {
                        return Ok(());
                    }
                }
            }
            for m in 0..i64::from(args.minutes) {
                let pk = aggregate_pk(dimension, &minute_at(until - m * 60));
                let mut pages = ddb
                    .query()
                    .table_name(&table)
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", AGGREGATES_PK)
                    .expression_attribute_names("#sk", AGGREGATES_SK)
                    .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                    .projection_expression("#sk")
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.aws(format!("reading {pk} from {table}"))?;
                    sort_keys.extend(
                        page.items()
                            .iter()
                            .filter_map(|i| i.get(AGGREGATES_SK)?.as_s().ok().cloned()),
                    );
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            eprintln!("error: {e}");
            return Exit::Failed;
        }
        let counts = tally(sort_keys.iter().map(String::as_str));
        let shown: Vec<_> = counts.iter().take(args.limit).collect();
        let window = if args.all {
            "all minutes stored".to_string()
        } else {
            format!("{} minute(s) up to {} UTC", args.minutes, minute_at(until))
        };
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
    })
}

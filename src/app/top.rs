//! `top`: the values most counted in the live aggregates over a window:
//! distinct tweets a value, exact under replays.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{AppError, Environment};
use crate::aws::ResultExt;
use crate::names::attribute::{AGGREGATES_PK, AGGREGATES_SK};
use crate::processor::read::batch::{aggregate_pk, minute_at, tally};

/// Which minutes to count.
#[derive(Debug, Clone, Copy)]
pub enum Window {
    /// This many minutes up to `until` (Unix seconds).
    Minutes { minutes: u32, until: i64 },
    /// Every minute stored (reads the whole aggregates table).
    All,
}

/// The ranking, most counted first.
#[derive(Debug)]
pub struct TopReport {
    pub dimension: String,
    /// The window, in words.
    pub window: String,
    pub top: Vec<(String, u64)>,
}

pub async fn top(
    env: &Environment,
    dimension: &str,
    window: Window,
    limit: usize,
) -> Result<TopReport, AppError> {
    let table = &env.names.aggregates_table;
    let ddb = env.aws.dynamodb();
    let mut sort_keys: Vec<String> = Vec::new();
    match window {
        Window::All => {
            let mut start: Option<HashMap<String, AttributeValue>> = None;
            loop {
                let out = ddb
                    .scan()
                    .table_name(table)
                    .filter_expression("begins_with(#pk, :dim)")
                    .expression_attribute_names("#pk", AGGREGATES_PK)
                    .expression_attribute_names("#sk", AGGREGATES_SK)
                    .expression_attribute_values(":dim", AttributeValue::S(format!("{dimension}#")))
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
                    break;
                }
            }
        }
        Window::Minutes { minutes, until } => {
            for m in 0..i64::from(minutes) {
                let pk = aggregate_pk(dimension, &minute_at(until - m * 60));
                let mut pages = ddb
                    .query()
                    .table_name(table)
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
        }
    }
    let counts = tally(sort_keys.iter().map(String::as_str));
    Ok(TopReport {
        dimension: dimension.to_string(),
        window: match window {
            Window::All => "all minutes stored".to_string(),
            Window::Minutes { minutes, until } => {
                format!("{minutes} minute(s) up to {} UTC", minute_at(until))
            }
        },
        top: counts.into_iter().take(limit).collect(),
    })
}

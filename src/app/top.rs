//! `top`: the values most counted by one of the stack's aggregates over
//! the last minutes: distinct keys (events) a value, exact under replays.
//! It sums the partial counts (`processor::read::partial`) of the windows
//! asked for: a Query for each bucket of each window, several in flight.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use tokio::task::JoinSet;

use super::{AppError, Environment};
use crate::aws::{AwsError, ResultExt};
use crate::names::attribute::AGGREGATES_PK;
use crate::processor::read::batch::{minute_at, rank, window_start};
use crate::processor::read::partial::{self, BUCKETS, COUNTS};

/// Queries `top` has in flight at once.
const QUERIES_IN_FLIGHT: usize = 16;

/// Which windows to count.
#[derive(Debug, Clone, Copy)]
pub enum Window {
    /// The windows that hold any of this many minutes up to `until` (Unix seconds).
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
    let declared = env.resolved.stack.processor.aggregates();
    let Some(aggregate) = declared.iter().find(|a| a.name == dimension) else {
        let names: Vec<&str> = declared.iter().map(|a| a.name.as_str()).collect();
        return Err(AppError::Invalid(format!(
            "`{dimension}` is not an aggregate of this stack; its aggregates: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    let window_s = i64::from(aggregate.window_s().unwrap_or(60));
    let table = &env.names.aggregates_table;
    let ddb = env.aws.dynamodb();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    match window {
        Window::All => {
            let mut start: Option<HashMap<String, AttributeValue>> = None;
            loop {
                let out = ddb
                    .scan()
                    .table_name(table)
                    .filter_expression("begins_with(#pk, :dim)")
                    .expression_attribute_names("#pk", AGGREGATES_PK)
                    .expression_attribute_names("#counts", COUNTS)
                    .expression_attribute_values(":dim", AttributeValue::S(format!("{dimension}#")))
                    .projection_expression("#counts")
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .aws(format!("reading the aggregates in {table}"))?;
                for item in out.items() {
                    partial::add_counts(item, &mut counts);
                }
                start = out.last_evaluated_key().cloned();
                if start.is_none() {
                    break;
                }
            }
        }
        Window::Minutes { minutes, until } => {
            // Each window that holds a minute of the span, newest first.
            let from = until - i64::from(minutes.max(1)) * 60 + 1;
            let mut start = until - until.rem_euclid(window_s);
            let mut keys = Vec::new();
            while start + window_s > from {
                let window = window_start(start, window_s);
                keys.extend((0..BUCKETS).map(|b| partial::partial_pk(dimension, &window, b)));
                start -= window_s;
            }
            let mut keys = keys.into_iter();
            let mut queries = JoinSet::new();
            loop {
                while queries.len() < QUERIES_IN_FLIGHT {
                    let Some(pk) = keys.next() else { break };
                    queries.spawn(partials_of(ddb.clone(), table.clone(), pk));
                }
                let Some(done) = queries.join_next().await else {
                    break;
                };
                let items =
                    done.map_err(|e| AppError::Invalid(format!("a query failed: {e}")))??;
                for item in &items {
                    partial::add_counts(item, &mut counts);
                }
            }
        }
    }
    Ok(TopReport {
        dimension: dimension.to_string(),
        window: match window {
            Window::All => "all windows stored".to_string(),
            Window::Minutes { minutes, until } if window_s == 60 => {
                format!("{minutes} minute(s) up to {} UTC", minute_at(until))
            }
            Window::Minutes { minutes, until } => format!(
                "the {} window(s) holding the {minutes} minute(s) up to {} UTC",
                aggregate.window,
                minute_at(until)
            ),
        },
        top: rank(counts).into_iter().take(limit).collect(),
    })
}

/// The partial counts under one partition key.
async fn partials_of(
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    pk: String,
) -> Result<Vec<HashMap<String, AttributeValue>>, AwsError> {
    let mut pages = ddb
        .query()
        .table_name(&table)
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", AGGREGATES_PK)
        .expression_attribute_names("#counts", COUNTS)
        .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
        .projection_expression("#counts")
        .into_paginator()
        .send();
    let mut items = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.aws(format!("reading {pk} from {table}"))?;
        items.extend(page.items().iter().cloned());
    }
    Ok(items)
}

//! `top`: the values most counted by one of the stack's aggregates over
//! the last minutes: distinct keys (events) a value, exact under replays.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{AppError, Environment};
use crate::aws::ResultExt;
use crate::names::attribute::{AGGREGATES_PK, AGGREGATES_SK};
use crate::processor::read::batch::{aggregate_pk, minute_at, tally, window_start};

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
    let mut members: Vec<(String, String)> = Vec::new();
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
                    .expression_attribute_names("#value", "value")
                    .expression_attribute_values(":dim", AttributeValue::S(format!("{dimension}#")))
                    .projection_expression("#sk, #value")
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .aws(format!("reading the aggregates in {table}"))?;
                members.extend(out.items().iter().filter_map(member));
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
            let mut windows = Vec::new();
            while start + window_s > from {
                windows.push(start);
                start -= window_s;
            }
            for start in windows {
                let pk = aggregate_pk(dimension, &window_start(start, window_s));
                let mut pages = ddb
                    .query()
                    .table_name(table)
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", AGGREGATES_PK)
                    .expression_attribute_names("#sk", AGGREGATES_SK)
                    .expression_attribute_names("#value", "value")
                    .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                    .projection_expression("#sk, #value")
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.aws(format!("reading {pk} from {table}"))?;
                    members.extend(page.items().iter().filter_map(member));
                }
            }
        }
    }
    let counts = tally(
        members
            .iter()
            .map(|(sk, value)| (sk.as_str(), value.as_str())),
    );
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
        top: counts.into_iter().take(limit).collect(),
    })
}

/// A membership's sort key and value.
fn member(item: &HashMap<String, AttributeValue>) -> Option<(String, String)> {
    Some((
        item.get(AGGREGATES_SK)?.as_s().ok()?.clone(),
        item.get("value")?.as_s().ok()?.clone(),
    ))
}

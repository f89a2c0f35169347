//! `test`: a stack's cases, each one record planned exactly as the
//! processor plans it, its items, counts and dead letters compared with
//! what the case expects; a mismatch comes with a diff. No AWS call.

use std::path::Path;

use serde_json::{Value, json};

use super::AppError;
use crate::processor::read::batch::{self, BatchPlan, InRecord};
use crate::processor::read::item;
use crate::processor::read::program::Program;
use crate::spec::Resolved;
use crate::spec::cases;
use crate::spec::diagnostic::Report;
use crate::spec::model::TestCase;
use crate::spec::transform::{Counts, DEFAULT_ARRIVAL};

/// One case's outcome: empty `mismatches` when it passed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseOutcome {
    pub name: String,
    pub mismatches: Vec<Mismatch>,
}

/// What differs, as a unified diff of the expected and the actual JSON.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mismatch {
    pub what: &'static str,
    pub diff: String,
}

/// The cases of a stack file: its own `tests`, then those of the file
/// beside it, if there is one.
pub fn cases_of(resolved: &Resolved, stack_file: &Path) -> Result<Vec<TestCase>, CasesError> {
    let mut all = resolved.stack.tests.clone();
    let path = cases::beside(stack_file);
    match std::fs::read_to_string(&path) {
        Ok(text) => all
            .extend(cases::parse(&path.display().to_string(), text).map_err(CasesError::Invalid)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(CasesError::Read {
                path: path.display().to_string(),
                source: e,
            });
        }
    }
    Ok(all)
}

#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    #[error("{0}")]
    Invalid(Report),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs every case.
pub fn run(resolved: &Resolved, cases: &[TestCase]) -> Result<Vec<CaseOutcome>, AppError> {
    let program = Program::new(&resolved.stack).map_err(|e| AppError::Invalid(e.to_string()))?;
    Ok(cases.iter().map(|case| run_case(&program, case)).collect())
}

fn run_case(program: &Program, case: &TestCase) -> CaseOutcome {
    let mut mismatches = Vec::new();
    let arrival = case.arrival.as_deref().unwrap_or(DEFAULT_ARRIVAL);
    let arrival_s = match time::OffsetDateTime::parse(
        arrival,
        &time::format_description::well_known::Rfc3339,
    ) {
        Ok(t) => t.unix_timestamp(),
        Err(_) => {
            mismatches.push(Mismatch {
                what: "arrival",
                diff: format!("`{arrival}` is not an RFC 3339 time"),
            });
            return CaseOutcome {
                name: case.name.clone(),
                mismatches,
            };
        }
    };
    let data = match &case.record {
        Value::String(text) => text.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    };
    let record = InRecord {
        shard_id: "test",
        sequence_number: "1",
        partition_key: "test",
        data: &data,
        arrival_s: Some(arrival_s),
    };
    let plan = batch::plan(&[record], program, arrival_s);
    if let Some(expected) = &case.items {
        compare(
            &mut mismatches,
            "items",
            &json!(expected),
            &items_of(program, &plan),
        );
    }
    if let Some(expected) = &case.aggregates {
        compare(
            &mut mismatches,
            "aggregates",
            &json!(expected),
            &json!(counts_of(program, &plan)),
        );
    }
    if let Some(expected) = &case.dead_letters {
        let actual: Vec<Value> = plan
            .dead_letters
            .iter()
            .map(|d| json!({ "reason": d.reason, "error": d.error, "index": d.index }))
            .collect();
        let matches = expected.len() == actual.len()
            && expected.iter().zip(&plan.dead_letters).all(|(want, got)| {
                want.reason == got.reason
                    && want.error.as_deref().is_none_or(|e| got.error.contains(e))
                    && want.index.is_none_or(|i| got.index == Some(i))
            });
        if !matches {
            mismatches.push(Mismatch {
                what: "dead letters",
                diff: diff(&json!(expected), &json!(actual)),
            });
        }
    }
    CaseOutcome {
        name: case.name.clone(),
        mismatches,
    }
}

/// The plan's items as JSON, in key order, without the TTL attribute
/// (it depends on the day the case runs).
fn items_of(program: &Program, plan: &BatchPlan) -> Value {
    let ttl = program
        .shape
        .ttl
        .as_ref()
        .map(|(attribute, _)| attribute.as_str());
    Value::Array(
        plan.items
            .values()
            .map(|i| {
                let mut value = item::to_json(i);
                if let (Some(ttl), Some(map)) = (ttl, value.as_object_mut()) {
                    map.remove(ttl);
                }
                value
            })
            .collect(),
    )
}

/// The plan's counts: aggregate -> window start -> value -> distinct keys
/// (each counted by its first occurrence, as the pipeline counts them).
pub fn counts_of(program: &Program, plan: &BatchPlan) -> Counts {
    batch::pure_counts(plan)
        .into_iter()
        .filter_map(|(n, windows)| Some((program.aggregates.get(n)?.name.clone(), windows)))
        .collect()
}

fn compare(mismatches: &mut Vec<Mismatch>, what: &'static str, expected: &Value, actual: &Value) {
    if expected != actual {
        mismatches.push(Mismatch {
            what,
            diff: diff(expected, actual),
        });
    }
}

/// A unified diff of two JSON values, pretty-printed: `-` expected, `+` actual.
fn diff(expected: &Value, actual: &Value) -> String {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    let (expected, actual) = (pretty(expected), pretty(actual));
    similar::TextDiff::from_lines(&expected, &actual)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}

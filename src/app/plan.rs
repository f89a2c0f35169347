//! `plan`: what `up` would change, and what the environment would cost.

use std::io::BufRead;
use std::ops::ControlFlow;

use serde::Serialize;

use super::transform::dry_run;
use super::{AppError, Environment};
use crate::cost::{self, Estimate, Prices, Workload};
use crate::deploy::changeset::{Change, Kind};
use crate::processor::read::consumer::shard::STORE_SLICE;
use crate::processor::read::partial;
use crate::processor::read::program::Program;
use crate::spec::model::Stack;

/// What `up` would do.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub stack: String,
    pub kind: Kind,
    pub changes: Vec<Change>,
    pub cost: Estimate,
    /// Where the estimate's DynamoDB items a record come from.
    pub items_per_record_basis: String,
}

/// Lines of the sample data read to measure the items a record makes.
const SAMPLE_LINES: usize = 20_000;

/// `items_per_record`: given (`Some`), or measured on the stack's sample data
/// (its replay file), or assumed from the declared aggregates.
pub async fn plan(
    env: &Environment,
    mut workload: Workload,
    items_per_record: Option<f64>,
) -> Result<PlanReport, AppError> {
    let d = env.deployment();
    let (kind, changes) =
        crate::deploy::plan::plan(&env.aws.cloudformation(), &d.stack, &d.body, &d.tags).await?;
    let (items, basis) = match items_per_record {
        Some(given) => (given, "given (--items-per-record)".to_string()),
        None => items_per_record_of(&env.resolved.stack)?,
    };
    workload.items_per_record = items;
    Ok(PlanReport {
        stack: d.stack,
        kind,
        changes,
        cost: cost::estimate(&env.resolved, workload, &Prices::us_east_1()),
        items_per_record_basis: basis,
    })
}

/// DynamoDB writes a record makes, in units of one small item: its item,
/// and its share of its slice's partial counts and checkpoint (written
/// transactionally, twice their units): measured by the stack's own
/// transform on its replay file when it has one; else assumed.
pub fn items_per_record_of(stack: &Stack) -> Result<(f64, String), AppError> {
    let program = Program::new(stack).map_err(|e| AppError::Invalid(e.to_string()))?;
    let sample = stack
        .processor
        .source
        .as_ref()
        .and_then(|s| s.replay.as_ref())
        .map(|r| r.file.clone());
    if let Some(path) = sample
        && let Ok(file) = std::fs::File::open(&path)
    {
        let (mut records, mut writes) = (0u64, 0u64);
        let reader = std::io::BufReader::new(file).take_lines(SAMPLE_LINES);
        dry_run(reader, &program, 0, |plan| {
            records += (plan.records - plan.heartbeats) as u64;
            writes +=
                plan.items.len() as u64 + partial::estimated_units(plan, &program, STORE_SLICE);
            ControlFlow::Continue(())
        })?;
        if records > 0 {
            let per = writes as f64 / records as f64;
            return Ok((per, format!("measured on {path} ({records} records)")));
        }
    }
    let aggregates = stack.processor.aggregates().len();
    Ok((
        1.02 + 0.04 * aggregates as f64,
        format!(
            "assumed: the item, a 100-record slice's checkpoint, and a 1 KB partial count a slice for each of the {aggregates} aggregate(s)"
        ),
    ))
}

/// The first `n` lines of a reader.
trait TakeLines: BufRead + Sized {
    fn take_lines(self, n: usize) -> std::io::Cursor<Vec<u8>> {
        let mut out = Vec::new();
        for line in self.split(b'\n').take(n).map_while(Result::ok) {
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
        std::io::Cursor::new(out)
    }
}

impl<R: BufRead> TakeLines for R {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_measures_partial_counts_not_a_write_a_value() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/stacks/tweets.yaml");
        let mut stack = crate::spec::load(std::path::Path::new(path), Some("local"))
            .unwrap()
            .stack;
        // Live tweets: 50 a second, so a slice of 100 falls in one or two
        // minutes and writes one partial count an aggregate and minute.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("live.jsonl");
        let lines: Vec<u8> = (0..2_000)
            .flat_map(|n| {
                let mut line = crate::processor::write::source::synthetic::tweet(1, 1, n).data;
                line.push(b'\n');
                line
            })
            .collect();
        std::fs::write(&file, lines).unwrap();
        // The stack's estimate with `replay` as its sample data.
        let mut measured_on = |replay: &str| {
            let source = stack.processor.source.as_mut().unwrap();
            source.replay.as_mut().unwrap().file = replay.to_string();
            items_per_record_of(&stack).unwrap()
        };
        let (per_record, basis) = measured_on(&file.to_string_lossy());
        assert!(basis.starts_with("measured on"), "{basis}");
        // The item, and a few hundredths for the slice's counts and
        // checkpoint; the membership design measured 3.4 a tweet.
        assert!((1.0..1.1).contains(&per_record), "{per_record}");
        // The bundled sample spans two years (201 minutes in 218 tweets):
        // each tweet is its own window, so each slice writes a partial
        // count a tweet and aggregate, transactionally.
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/data/tweets-v2.jsonl");
        let (per_record, _) = measured_on(sample);
        assert!(per_record > 3.0, "{per_record}");
    }
}

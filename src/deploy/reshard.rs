//! Shard count changes one stack update can make. CloudFormation changes a
//! provisioned stream's `ShardCount` with one UpdateShardCount call, and
//! Kinesis takes a target of at most double and at least half the current
//! count (and at most ten scalings a stream in a rolling 24 hours): a larger
//! change fails mid-update and rolls the whole stack back. `plan` and `up`
//! compare the deployed template with the new one first and refuse such a
//! change, naming the counts to go through.

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::TemplateStage;
use serde_json::Value;

use super::DeployError;
use crate::aws::ResultExt;
use crate::names::logical::STREAM;

/// UpdateShardCount calls Kinesis allows a stream in a rolling 24 hours.
pub const SCALINGS_PER_DAY: usize = 10;

/// A shard count change that needs more than one update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooFar {
    pub from: u32,
    pub to: u32,
    /// The shard counts to deploy in turn, `to` last.
    pub steps: Vec<u32>,
}

impl std::fmt::Display for TooFar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (from, to) = (self.from, self.to);
        write!(
            f,
            "the stream cannot go from {from} to {to} shards in one update: Kinesis scales a stream to at most double and at least half its shards at a time ({} to {} from {from}). Set stream.shards to {} in turn, one `up` each",
            from.div_ceil(2),
            from.saturating_mul(2),
            join(&self.steps)
        )?;
        if self.steps.len() > SCALINGS_PER_DAY {
            write!(
                f,
                " (more than the {SCALINGS_PER_DAY} scalings Kinesis allows a stream in 24 hours: spread them over days)"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for TooFar {}

fn join(steps: &[u32]) -> String {
    let text: Vec<String> = steps.iter().map(u32::to_string).collect();
    match text.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{}, then {last}", rest.join(", ")),
        _ => text.concat(),
    }
}

/// The shard counts that take a stream from `from` to `to`, each within what
/// one UpdateShardCount allows from the one before: empty when nothing
/// changes, `[to]` when one update does it. Halving rounds up (5 shards go
/// to 3 at the least), as Kinesis does not go below half.
pub fn shard_change_steps(from: u32, to: u32) -> Vec<u32> {
    let (from, to) = (from.max(1), to.max(1));
    let mut steps = Vec::new();
    let mut at = from;
    while at != to {
        at = if to > at {
            to.min(at.saturating_mul(2))
        } else {
            to.max(at.div_ceil(2))
        };
        steps.push(at);
    }
    steps
}

/// Refuses a change of more than one step.
pub fn check(from: u32, to: u32) -> Result<(), TooFar> {
    let steps = shard_change_steps(from, to);
    if steps.len() > 1 {
        return Err(TooFar { from, to, steps });
    }
    Ok(())
}

/// The provisioned shard count a template gives the stream; None for an
/// on-demand stream (or a template without one).
pub fn shard_count(template: &Value) -> Option<u32> {
    template["Resources"][STREAM]["Properties"]["ShardCount"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
}

/// Compares the stack's deployed template with the new one; refuses a shard
/// count change one update cannot make.
pub async fn check_deployed(cfn: &Client, stack: &str, body: &str) -> Result<(), DeployError> {
    let Some(to) = serde_json::from_str(body)
        .ok()
        .as_ref()
        .and_then(shard_count)
    else {
        return Ok(());
    };
    let deployed = cfn
        .get_template()
        .stack_name(stack)
        .template_stage(TemplateStage::Original)
        .send()
        .await
        .aws(format!("reading the deployed template of stack {stack}"))?;
    let from = deployed
        .template_body()
        .and_then(|b| serde_json::from_str::<Value>(b).ok())
        .as_ref()
        .and_then(shard_count);
    match from {
        Some(from) => check(from, to).map_err(|e| DeployError::ReshardRefused {
            stack: stack.to_string(),
            reason: e,
        }),
        // On-demand before, or not a template of ours: nothing to compare.
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn one_update_doubles_or_halves_at_most() {
        assert_eq!(shard_change_steps(2, 2), Vec::<u32>::new());
        assert_eq!(shard_change_steps(2, 4), [4]);
        assert_eq!(shard_change_steps(2, 3), [3]);
        assert_eq!(shard_change_steps(4, 2), [2]);
        // Half of 5 is 2.5: Kinesis goes to 3 at the least.
        assert_eq!(shard_change_steps(5, 3), [3]);
        assert_eq!(shard_change_steps(5, 2), [3, 2]);
        assert_eq!(shard_change_steps(2, 20), [4, 8, 16, 20]);
        assert_eq!(shard_change_steps(20, 2), [10, 5, 3, 2]);
        assert!(check(2, 4).is_ok() && check(4, 2).is_ok() && check(3, 3).is_ok());
    }

    #[test]
    fn the_widest_change_a_stack_file_allows_fits_in_a_day() {
        // stream.shards is 1 to 500.
        let up = shard_change_steps(1, 500);
        assert_eq!(up, [2, 4, 8, 16, 32, 64, 128, 256, 500]);
        assert!(up.len() <= SCALINGS_PER_DAY);
        assert!(shard_change_steps(500, 1).len() <= SCALINGS_PER_DAY);
    }

    #[test]
    fn a_change_too_far_names_the_allowed_range_and_the_steps() {
        let e = check(2, 10).unwrap_err();
        assert_eq!(e.steps, [4, 8, 10]);
        let text = e.to_string();
        assert!(text.contains("from 2 to 10 shards"), "{text}");
        assert!(text.contains("(1 to 4 from 2)"), "{text}");
        assert!(
            text.contains("Set stream.shards to 4, 8, then 10 in turn"),
            "{text}"
        );
        let down = check(8, 1).unwrap_err().to_string();
        assert!(down.contains("(4 to 16 from 8)"), "{down}");
        assert!(down.contains("4, 2, then 1"), "{down}");
    }

    #[test]
    fn the_count_comes_from_a_provisioned_stream_only() {
        let provisioned =
            json!({ "Resources": { "Stream": { "Properties": { "ShardCount": 4 } } } });
        assert_eq!(shard_count(&provisioned), Some(4));
        let on_demand = json!({ "Resources": { "Stream": { "Properties": { "StreamModeDetails": { "StreamMode": "ON_DEMAND" } } } } });
        assert_eq!(shard_count(&on_demand), None);
    }
}

//! Physical names, derived from the stack name, so that every command (and a
//! person reading the console) finds the same resource without a lookup.

use serde_json::Value;

use super::sub;
use crate::spec::Resolved;

/// Names of every resource, and the processor's metric namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The CloudFormation stack name: `{name}` or `{name}-{environment}`.
    pub stack: String,
    pub environment: Option<String>,
    pub stream: String,
    pub delivery_stream: String,
    pub table: String,
    pub aggregates_table: String,
    pub lease_table: String,
    pub dashboard: String,
    pub firehose_log_group: String,
}

/// CloudWatch namespace of the processor's own metrics (dimension `Stack`).
pub const METRICS_NAMESPACE: &str = "Streamstack";

impl Names {
    pub fn new(resolved: &Resolved) -> Self {
        let stack = resolved.stack_name();
        Self {
            stream: format!("{stack}-stream"),
            delivery_stream: format!("{stack}-archive"),
            table: Self::tweets_table_of(&stack),
            aggregates_table: Self::aggregates_table_of(&stack),
            lease_table: format!("{stack}-leases"),
            dashboard: stack.clone(),
            firehose_log_group: format!("/aws/kinesisfirehose/{stack}-archive"),
            environment: resolved.environment.clone(),
            stack,
        }
    }

    /// The tweets table of a stack (also for a stack that is gone).
    pub fn tweets_table_of(stack: &str) -> String {
        format!("{stack}-tweets")
    }

    pub fn aggregates_table_of(stack: &str) -> String {
        format!("{stack}-aggregates")
    }

    /// Whether `bucket` is the archive bucket of `stack` in `region`:
    /// `{stack}-archive-{12-digit account}-{region}` (see [`Names::bucket`]).
    pub fn is_archive_bucket_of(bucket: &str, stack: &str, region: &str) -> bool {
        bucket
            .strip_prefix(&format!("{stack}-archive-"))
            .and_then(|rest| rest.strip_suffix(&format!("-{region}")))
            .is_some_and(|account| {
                account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
            })
    }

    /// The archive bucket: globally unique through account and region.
    pub fn bucket(&self) -> Value {
        sub(&format!(
            "{}-archive-${{AWS::AccountId}}-${{AWS::Region}}",
            self.stack
        ))
    }

    pub fn alarm(&self, what: &str) -> String {
        format!("{}-{what}", self.stack)
    }
}

#[cfg(test)]
mod leftover_tests {
    use super::Names;

    #[test]
    fn an_archive_bucket_is_recognised_by_stack_account_and_region() {
        let of = |b| Names::is_archive_bucket_of(b, "tweets", "us-east-1");
        assert!(of("tweets-archive-123456789012-us-east-1"));
        // Another stack whose name starts the same, another region, not an account.
        assert!(!of("tweets-prod-archive-123456789012-us-east-1"));
        assert!(!of("tweets-archive-123456789012-eu-west-1"));
        assert!(!of("tweets-archive-artifacts-us-east-1"));
    }
}

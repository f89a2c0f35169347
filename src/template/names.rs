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
            table: format!("{stack}-tweets"),
            aggregates_table: format!("{stack}-aggregates"),
            lease_table: format!("{stack}-leases"),
            dashboard: stack.clone(),
            firehose_log_group: format!("/aws/kinesisfirehose/{stack}-archive"),
            environment: resolved.environment.clone(),
            stack,
        }
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

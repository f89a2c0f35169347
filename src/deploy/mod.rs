//! The environment's lifecycle through CloudFormation: change sets, live
//! progress, failure causes, convergence from any state, and a teardown
//! that never deletes data silently. I/O lives here; the template comes from
//! the pure compiler.

pub mod binary;
pub mod changeset;
pub mod down;
pub mod local_processor;
pub mod plan;
pub mod progress;
pub mod reshard;
pub mod rollout;
pub mod ship;
pub mod stack;
pub mod up;

use std::time::Duration;

use crate::aws::AwsError;

/// How often CloudFormation is polled: never more often than this.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Largest template CloudFormation takes inline (TemplateBody).
pub const MAX_TEMPLATE_BODY: usize = 51_200;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The operation ran and failed: the first failed resource and why.
    #[error("{operation} of stack {stack} failed ({status}): {cause}")]
    Failed {
        stack: String,
        operation: &'static str,
        status: String,
        cause: String,
    },
    /// A change set could not be created.
    #[error("change set for stack {stack} failed: {reason}")]
    ChangeSetFailed { stack: String, reason: String },
    /// A stateful resource would be replaced and `--allow-replace` was not given.
    #[error("refusing to replace stateful resources without --allow-replace: {0}")]
    ReplacementRefused(String),
    /// Data is present and neither `--delete-data` nor `--keep-data` was given.
    #[error(
        "refusing to tear down stack {stack}: it still holds data ({data}); rerun with --delete-data or --keep-data"
    )]
    DataPresent { stack: String, data: String },
    /// The stack is in a state this command cannot start from.
    #[error("stack {stack} is in {status}: {advice}")]
    Stuck {
        stack: String,
        status: String,
        advice: String,
    },
    /// A shard count change UpdateShardCount cannot make in one call.
    #[error("refusing to update stack {stack}: {reason}")]
    ReshardRefused {
        stack: String,
        reason: reshard::TooFar,
    },
    /// A new stack would be created over resources an earlier one retained.
    #[error(
        "refusing to create stack {stack}: an earlier stack of that name left {left}. CloudFormation cannot create resources whose names are taken. Either delete them with `streamstack down --delete-data` (their data too), or keep them and deploy under another stack name or environment"
    )]
    LeftoversBlock { stack: String, left: String },
    #[error(
        "the template is {size} bytes; CloudFormation takes at most {MAX_TEMPLATE_BODY} inline"
    )]
    TemplateTooLarge { size: usize },
}

impl DeployError {
    /// Refusals protect the user (exit 3); everything else is a failure (exit 2).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            DeployError::ReplacementRefused(_)
                | DeployError::DataPresent { .. }
                | DeployError::ReshardRefused { .. }
                | DeployError::LeftoversBlock { .. }
        )
    }
}

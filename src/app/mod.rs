//! The application layer: what each command does, between `cli` (which
//! parses arguments and renders) and the engines (`spec`, `template`,
//! `deploy`, `processor`), which it composes.
//!
//! - [`environment`]: the one place where a resolved stack and the AWS
//!   settings become the environment's parts (clients, names, the deployed
//!   pipeline's stream, tables, bucket and lease table);
//! - one module a command (`plan`, `up`, `down`, `status`, `smoke`, `top`,
//!   `metrics`, `produce`, `consume`, `logs`): each returns a typed report or an
//!   [`AppError`], never prints (progress goes out as `tracing` events),
//!   and never calls another command; `up` and `smoke` share the smoke
//!   check through [`smoke`].

pub mod cases;
pub mod consume;
pub mod down;
pub mod environment;
pub mod logs;
pub mod metrics;
pub mod plan;
pub mod produce;
pub mod smoke;
pub mod smoke_watch;
pub mod status;
pub mod top;
pub mod transform;
pub mod up;

pub use environment::{Environment, Pipeline};

use crate::aws::AwsError;
use crate::deploy::DeployError;

/// Why a command could not do its work. `cli` maps each to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input (arguments, stack file settings) cannot work; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Logs(#[from] crate::logging::read::ReadError),
    /// The command needs a deployed stack.
    #[error("stack {stack} does not exist: run `streamstack up` first")]
    NoStack { stack: String },
    /// The stack exists but lacks what every streamstack stack has.
    #[error(
        "stack {stack} ({status}) has no {output} output: is it a streamstack stack, and complete?"
    )]
    NotAPipeline {
        stack: String,
        status: String,
        output: &'static str,
    },
    /// A step of the command failed; `what` says which, `cause` why.
    #[error("{what}: {cause}")]
    Step { what: String, cause: String },
}

/// How a failure ends the process (the exit codes are `cli`'s to choose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The input is invalid; nothing changed.
    Invalid,
    /// Refused for safety.
    Refused,
    /// A runtime failure.
    Failed,
}

impl AppError {
    pub fn severity(&self) -> Severity {
        match self {
            AppError::Invalid(_) => Severity::Invalid,
            AppError::Deploy(e) if e.is_refusal() => Severity::Refused,
            _ => Severity::Failed,
        }
    }

    /// A failed step, with what was being done.
    pub fn step(what: impl Into<String>, cause: impl std::fmt::Display) -> Self {
        AppError::Step {
            what: what.into(),
            cause: cause.to_string(),
        }
    }
}

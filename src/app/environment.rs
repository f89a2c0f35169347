//! The one place where a resolved stack and the AWS settings become the
//! environment's parts: the clients, the resource names, the template as
//! CloudFormation receives it, and the deployed pipeline (stream, tables,
//! bucket, lease table, item shape) that the processor and the checks use.

use std::path::PathBuf;
use std::sync::Arc;

use super::AppError;
use crate::aws::{Aws, AwsArgs};
use crate::names::{Names, output};
use crate::processor::read::program::Program;
use crate::spec::Resolved;
use crate::spec::model::{BatchSpec, Target};
use crate::template;

/// A stack file, resolved for one environment, with its AWS clients.
pub struct Environment {
    pub resolved: Resolved,
    pub aws: Aws,
    pub names: Names,
    /// The stack file (the local processor and the hosts are started with it).
    pub stack_file: PathBuf,
    /// The environment named on the command line (None: the base definition).
    pub environment: Option<String>,
}

/// The template as CloudFormation receives it, the stack tags, and the resource count.
pub struct Deployment {
    pub stack: String,
    pub body: String,
    pub tags: Vec<(String, String)>,
    pub resource_count: usize,
}

/// The processor's view of a deployed stack: names from the stack file,
/// the archive bucket from the stack's outputs (its name holds the account).
pub struct Pipeline {
    pub names: Names,
    pub bucket: String,
    pub dead_letter_prefix: String,
    /// The stack's transform, aggregates and item shape, compiled.
    pub program: Arc<Program>,
    pub batch: BatchSpec,
}

impl Environment {
    /// Connects to AWS for a stack. An environment that targets the
    /// emulator must name an endpoint, so it can never reach an AWS account
    /// by mistake.
    pub async fn connect(
        resolved: Resolved,
        args: &AwsArgs,
        stack_file: PathBuf,
        environment: Option<String>,
    ) -> Result<Self, AppError> {
        let aws = Aws::connect(args, &resolved.stack.region).await;
        if resolved.stack.target == Target::Emulator && aws.endpoint_url().is_none() {
            return Err(AppError::Invalid(format!(
                "stack {} targets the emulator, but no endpoint is set: set AWS_ENDPOINT_URL or --endpoint-url (`make up` does)",
                resolved.stack_name()
            )));
        }
        Ok(Self {
            names: Names::new(&resolved),
            resolved,
            aws,
            stack_file,
            environment,
        })
    }

    /// The stack's name.
    pub fn stack(&self) -> &str {
        &self.names.stack
    }

    /// On the emulator the processor runs here, as a local process.
    pub fn is_local(&self) -> bool {
        self.resolved.stack.target == Target::Emulator
    }

    /// The compiled template.
    pub fn template(&self) -> serde_json::Value {
        template::compile(&self.resolved)
    }

    pub fn deployment(&self) -> Deployment {
        let compiled = self.template();
        let resource_count = compiled["Resources"].as_object().map_or(0, |r| r.len());
        let mut tags: Vec<(String, String)> = self
            .resolved
            .stack
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tags.push(("streamstack:stack".into(), self.resolved.stack_name()));
        Deployment {
            stack: self.resolved.stack_name(),
            // Compact: CloudFormation counts the bytes of an inline template.
            body: serde_json::to_string(&compiled).expect("a JSON value always serializes"),
            tags,
            resource_count,
        }
    }

    /// The deployed pipeline; fails when the stack is not there.
    pub async fn pipeline(&self) -> Result<Pipeline, AppError> {
        let names = self.names.clone();
        let info = crate::deploy::stack::describe(&self.aws.cloudformation(), &names.stack)
            .await?
            .ok_or_else(|| AppError::NoStack {
                stack: names.stack.clone(),
            })?;
        let Some(bucket) = info.outputs.get(output::ARCHIVE_BUCKET_NAME).cloned() else {
            return Err(AppError::NotAPipeline {
                stack: names.stack,
                status: info.status,
                output: output::ARCHIVE_BUCKET_NAME,
            });
        };
        let stack = &self.resolved.stack;
        Ok(Pipeline {
            bucket,
            dead_letter_prefix: stack.archive.dead_letter_prefix.clone(),
            program: Arc::new(Program::new(stack).map_err(|e| AppError::Invalid(e.to_string()))?),
            batch: stack.processor.batch.clone(),
            names,
        })
    }
}

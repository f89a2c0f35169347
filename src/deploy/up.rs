//! `up`: converge the stack to the template from whatever state it is in.

use std::time::Duration;

use super::changeset::{self, Change, Kind, Prepared, Request};
use super::down;
use super::progress::Progress;
use super::reshard;
use super::stack::{self, Settled, StackInfo, Standing, Watch, is_healthy};
use super::{DeployError, MAX_TEMPLATE_BODY};
use crate::aws::{Aws, ResultExt};

pub struct UpOptions {
    /// Replace or remove stateful resources when the change set says so.
    pub allow_replace: bool,
    pub poll: Duration,
}

#[derive(Debug)]
pub enum UpOutcome {
    /// The stack already matched the template.
    Unchanged(StackInfo),
    /// The change set ran; these were its changes.
    Deployed {
        info: StackInfo,
        kind: Kind,
        changes: Vec<Change>,
    },
}

/// What to deploy, from the compiler.
pub struct Desired<'a> {
    pub stack: &'a str,
    pub template_body: &'a str,
    pub tags: &'a [(String, String)],
    /// Resources in the template: the progress total of a create.
    pub resource_count: usize,
}

/// Brings the stack from any state to a fresh change set's kind:
/// waits out running operations, deletes a stack whose creation failed,
/// continues a failed update rollback.
async fn converge(aws: &Aws, stack: &str, poll: Duration) -> Result<Kind, DeployError> {
    let cfn = &aws.cloudformation();
    loop {
        let Some(info) = stack::describe(cfn, stack).await? else {
            return Ok(Kind::Create);
        };
        match Standing::of(Some(&info.status)) {
            // A leftover of a change set that was never executed: create through it.
            Standing::Creatable => return Ok(Kind::Create),
            Standing::Busy => {
                tracing::info!(stack, status = %info.status, "stack {stack} is {}: waiting for that operation to finish", info.status);
                let mut watch = Watch::start(cfn, &info.id).await?;
                stack::wait(
                    cfn,
                    &mut watch,
                    &mut Progress::new("Waiting for", stack, 0),
                    poll,
                )
                .await?;
            }
            Standing::FailedCreation => {
                tracing::warn!(
                    stack,
                    status = %info.status,
                    reason = info.reason.as_deref().unwrap_or("none given"),
                    "stack {stack} is in {}: its creation failed earlier, and such a stack can only be deleted. It holds no data that a retained resource would not keep: deleting it to create it anew",
                    info.status
                );
                let mut watch = Watch::start(cfn, &info.id).await?;
                let resources = stack::resources(cfn, &info.id).await?;
                cfn.delete_stack()
                    .stack_name(&info.id)
                    .send()
                    .await
                    .aws(format!("deleting failed stack {stack}"))?;
                let mut progress = Progress::new("Deleting", stack, resources.len());
                match stack::wait(cfn, &mut watch, &mut progress, poll).await? {
                    Settled::Gone => {
                        progress.finish("DELETE_COMPLETE");
                        // The failed creation may have left retained, named resources
                        // (bucket, tables) that would block the new one. Still empty, they go;
                        // holding data, they stay and we stop.
                        let left = down::inventory(aws, &resources, None).await?;
                        if left.has_data() {
                            return Err(DeployError::Stuck {
                                stack: stack.to_string(),
                                status: "DELETE_COMPLETE".into(),
                                advice: format!(
                                    "resources retained from the failed creation hold data and would block a new one: {}",
                                    left.describe().join("; ")
                                ),
                            });
                        }
                        down::delete_retained(aws, &left).await?;
                    }
                    Settled::At(after) => {
                        progress.finish(&after.status);
                        return Err(DeployError::Stuck {
                            stack: stack.to_string(),
                            status: after.status,
                            advice: format!(
                                "deleting it failed: {}",
                                watch
                                    .root_cause(stack)
                                    .unwrap_or_else(|| after.reason.unwrap_or_default())
                            ),
                        });
                    }
                }
            }
            Standing::RollbackFailed => {
                tracing::warn!(stack, status = %info.status, "stack {stack} is in UPDATE_ROLLBACK_FAILED: continuing the rollback");
                let mut watch = Watch::start(cfn, &info.id).await?;
                cfn.continue_update_rollback()
                    .stack_name(stack)
                    .send()
                    .await
                    .aws(format!("continuing the rollback of stack {stack}"))?;
                let mut progress = Progress::new("Rolling back", stack, 0);
                if let Settled::At(after) =
                    stack::wait(cfn, &mut watch, &mut progress, poll).await?
                {
                    progress.finish(&after.status);
                    if after.status == "UPDATE_ROLLBACK_FAILED" {
                        return Err(DeployError::Stuck {
                            stack: stack.to_string(),
                            status: after.status,
                            advice: format!(
                                "the rollback failed again: {}. Fix that resource by hand, or skip it with `aws cloudformation continue-update-rollback --resources-to-skip`, then run up again",
                                watch.root_cause(stack).unwrap_or_default()
                            ),
                        });
                    }
                }
            }
            Standing::DeleteFailed => {
                return Err(DeployError::Stuck {
                    stack: stack.to_string(),
                    status: info.status,
                    advice: "an earlier teardown failed; run `streamstack down` again, it says what blocks it".into(),
                });
            }
            Standing::Updatable => return Ok(Kind::Update),
        }
    }
}

pub async fn up(
    aws: &Aws,
    desired: &Desired<'_>,
    options: &UpOptions,
) -> Result<UpOutcome, DeployError> {
    let stack = desired.stack;
    let cfn = &aws.cloudformation();
    if desired.template_body.len() > MAX_TEMPLATE_BODY {
        return Err(DeployError::TemplateTooLarge {
            size: desired.template_body.len(),
        });
    }
    let kind = converge(aws, stack, options.poll).await?;
    if kind == Kind::Create {
        // What `down --keep-data` kept would make the creation fail half-way
        // (a table or bucket name taken): stop before any change instead.
        let left = down::leftovers(aws, stack).await?;
        if !left.is_empty() {
            return Err(DeployError::LeftoversBlock {
                stack: stack.to_string(),
                left: left.describe().join("; "),
            });
        }
    }
    if kind == Kind::Update {
        // Before the change set: CloudFormation would accept it and fail mid-update.
        reshard::check_deployed(cfn, stack, desired.template_body).await?;
    }
    let request = Request {
        stack,
        template_body: desired.template_body,
        tags: desired.tags,
        kind,
    };
    let (id, kind, changes) = match changeset::create(cfn, &request, options.poll).await? {
        Prepared::NoChanges => {
            let info = stack::describe(cfn, stack)
                .await?
                .ok_or_else(|| DeployError::Stuck {
                    stack: stack.to_string(),
                    status: "missing".into(),
                    advice: "the stack disappeared while its change set was computed".into(),
                })?;
            return Ok(UpOutcome::Unchanged(info));
        }
        Prepared::Ready { id, kind, changes } => (id, kind, changes),
    };

    let risky: Vec<&Change> = changes
        .iter()
        .filter(|c| c.replaces_stateful() || c.removes_stateful())
        .collect();
    if !risky.is_empty() && !options.allow_replace {
        changeset::delete(cfn, stack, &id).await?;
        let list = risky
            .iter()
            .map(|c| {
                format!(
                    "{} ({}): {} {}",
                    c.logical_id,
                    c.resource_type,
                    c.action,
                    if c.replacement.is_empty() {
                        ""
                    } else {
                        "with replacement"
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        return Err(DeployError::ReplacementRefused(list));
    }

    let mut watch = Watch::start(cfn, stack).await?;
    changeset::execute(cfn, stack, &id).await?;
    let (verb, total) = match kind {
        Kind::Create => ("Creating", desired.resource_count),
        Kind::Update => ("Updating", changes.len()),
    };
    let mut progress = Progress::new(verb, stack, total);
    let settled = stack::wait(cfn, &mut watch, &mut progress, options.poll).await?;
    match settled {
        Settled::At(info) if is_healthy(&info.status) => {
            progress.finish(&info.status);
            Ok(UpOutcome::Deployed {
                info,
                kind,
                changes,
            })
        }
        Settled::At(info) => {
            progress.finish(&info.status);
            let cause = watch
                .root_cause(stack)
                .or(info.reason.clone())
                .unwrap_or_else(|| "no reason given".into());
            Err(DeployError::Failed {
                stack: stack.to_string(),
                operation: verb_noun(kind),
                status: info.status,
                cause,
            })
        }
        Settled::Gone => {
            progress.finish("DELETE_COMPLETE");
            Err(DeployError::Failed {
                stack: stack.to_string(),
                operation: verb_noun(kind),
                status: "DELETE_COMPLETE".into(),
                cause: watch
                    .root_cause(stack)
                    .unwrap_or_else(|| "the stack was deleted during the operation".into()),
            })
        }
    }
}

fn verb_noun(kind: Kind) -> &'static str {
    match kind {
        Kind::Create => "creation",
        Kind::Update => "update",
    }
}

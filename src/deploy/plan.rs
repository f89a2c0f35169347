//! `plan`: what `up` would change, from a change set that is deleted
//! afterwards (and the stack shell too when the stack did not exist).

use super::changeset::{self, Change, Kind, Prepared, Request};
use super::stack::{self, Standing};
use super::{DeployError, POLL_INTERVAL};
use crate::aws::AwsError;

/// The change set's kind and changes; nothing is left behind.
pub async fn plan(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
    body: &str,
    tags: &[(String, String)],
) -> Result<(Kind, Vec<Change>), DeployError> {
    let existing = stack::describe(cfn, stack).await?;
    let status = existing.as_ref().map(|s| s.status.clone());
    let stuck = |advice: &str| DeployError::Stuck {
        stack: stack.into(),
        status: status.clone().unwrap_or_default(),
        advice: advice.into(),
    };
    // `up` settles these states; `plan` changes nothing, so it says what `up` would do.
    let kind = match Standing::of(status.as_deref()) {
        Standing::Creatable => Kind::Create,
        Standing::Updatable => Kind::Update,
        Standing::Busy => {
            return Err(stuck("an operation is running; plan again when it ends"));
        }
        Standing::FailedCreation => {
            return Err(stuck(
                "its creation failed earlier; `up` deletes it and creates it anew (every resource is added)",
            ));
        }
        Standing::RollbackFailed | Standing::DeleteFailed => {
            return Err(stuck("`up` (or `down`) has to settle it first"));
        }
    };
    if kind == Kind::Update {
        super::reshard::check_deployed(cfn, stack, body).await?;
    }
    let request = Request {
        stack,
        template_body: body,
        tags,
        kind,
    };
    let prepared = changeset::create(cfn, &request, POLL_INTERVAL).await?;
    let changes = match prepared {
        Prepared::NoChanges => Vec::new(),
        Prepared::Ready { id, changes, .. } => {
            changeset::delete(cfn, stack, &id).await?;
            changes
        }
    };
    // A CREATE change set leaves an empty stack behind (REVIEW_IN_PROGRESS): remove it.
    if existing.is_none() {
        cfn.delete_stack()
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| {
                AwsError::new(format!("removing the planning shell of stack {stack}"), e)
            })?;
    }
    Ok((kind, changes))
}

//! Change sets: what would change, including replacements, before anything does.

use std::time::Duration;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, ResourceChange, Tag,
};
use serde::Serialize;

use super::DeployError;
use crate::aws::ResultExt;

/// Resource types that hold data or serve traffic: replacing one loses its
/// contents or interrupts the pipeline. Hosts are not among them: their
/// launch template, instances and Auto Scaling group hold nothing (the
/// processor's state is in the lease table, its binary in the artifacts
/// bucket), and a new Amazon Linux AMI replaces all three as a routine
/// rolling update.
pub const STATEFUL_TYPES: &[&str] = &[
    "AWS::Kinesis::Stream",
    "AWS::KinesisFirehose::DeliveryStream",
    "AWS::S3::Bucket",
    "AWS::DynamoDB::Table",
    "AWS::KMS::Key",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Create,
    Update,
}

/// One resource change, as `plan` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub logical_id: String,
    pub resource_type: String,
    /// Add, Modify, Remove, Import, Dynamic.
    pub action: String,
    /// True, False, Conditional; empty when not applicable (Add, Remove).
    pub replacement: String,
    /// Changed properties, `Name (recreation: Always)` where that applies.
    pub properties: Vec<String>,
    pub stateful: bool,
}

impl Change {
    /// A stateful resource that would (or might) be replaced.
    pub fn replaces_stateful(&self) -> bool {
        self.stateful && matches!(self.replacement.as_str(), "True" | "Conditional")
    }

    /// A stateful resource that would be removed.
    pub fn removes_stateful(&self) -> bool {
        self.stateful && self.action == "Remove"
    }
}

/// A change set ready to execute, or nothing to do.
#[derive(Debug)]
pub enum Prepared {
    NoChanges,
    Ready {
        id: String,
        kind: Kind,
        changes: Vec<Change>,
    },
}

/// What to deploy.
pub struct Request<'a> {
    pub stack: &'a str,
    pub template_body: &'a str,
    pub tags: &'a [(String, String)],
    pub kind: Kind,
}

/// CloudFormation says "no changes" through a failed change set with one of these reasons.
fn means_no_changes(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

/// Creates a change set and waits until CloudFormation has computed it.
pub async fn create(
    cfn: &Client,
    request: &Request<'_>,
    poll: Duration,
) -> Result<Prepared, DeployError> {
    let stack = request.stack;
    let name = format!(
        "streamstack-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
    );
    let mut call = cfn
        .create_change_set()
        .stack_name(stack)
        .change_set_name(&name)
        .change_set_type(match request.kind {
            Kind::Create => ChangeSetType::Create,
            Kind::Update => ChangeSetType::Update,
        })
        .template_body(request.template_body)
        // The template creates IAM roles (without custom names).
        .capabilities(Capability::CapabilityIam)
        .description("streamstack up");
    for (key, value) in request.tags {
        call = call.tags(Tag::builder().key(key).value(value).build());
    }
    let created = call
        .send()
        .await
        .aws(format!("creating a change set for stack {stack}"))?;
    let id = created.id().unwrap_or(&name).to_string();

    loop {
        let described = cfn
            .describe_change_set()
            .change_set_name(&id)
            .stack_name(stack)
            .send()
            .await
            .aws(format!("reading change set {name} of stack {stack}"))?;
        match described.status() {
            Some(ChangeSetStatus::CreateComplete) => break,
            Some(ChangeSetStatus::Failed) => {
                let reason = described
                    .status_reason()
                    .unwrap_or("no reason given")
                    .to_string();
                // A failed change set stays behind unless deleted.
                delete(cfn, stack, &id).await?;
                if means_no_changes(&reason) {
                    return Ok(Prepared::NoChanges);
                }
                return Err(DeployError::ChangeSetFailed {
                    stack: stack.to_string(),
                    reason,
                });
            }
            _ => tokio::time::sleep(poll).await,
        }
    }

    let mut changes = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = cfn
            .describe_change_set()
            .change_set_name(&id)
            .stack_name(stack)
            .set_next_token(token.clone())
            .send()
            .await
            .aws(format!("reading change set {name} of stack {stack}"))?;
        changes.extend(
            page.changes()
                .iter()
                .filter_map(|c| c.resource_change())
                .map(change),
        );
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    changes.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
    if changes.is_empty() {
        // Some CloudFormation implementations complete an empty change set instead of failing it.
        delete(cfn, stack, &id).await?;
        return Ok(Prepared::NoChanges);
    }
    Ok(Prepared::Ready {
        id,
        kind: request.kind,
        changes,
    })
}

pub async fn delete(cfn: &Client, stack: &str, id: &str) -> Result<(), DeployError> {
    cfn.delete_change_set()
        .change_set_name(id)
        .stack_name(stack)
        .send()
        .await
        .aws(format!("deleting change set of stack {stack}"))?;
    Ok(())
}

pub async fn execute(cfn: &Client, stack: &str, id: &str) -> Result<(), DeployError> {
    cfn.execute_change_set()
        .change_set_name(id)
        .stack_name(stack)
        .send()
        .await
        .aws(format!("executing change set of stack {stack}"))?;
    Ok(())
}

/// One resource change of a change set, as `plan` shows it and `up` judges it.
fn change(rc: &ResourceChange) -> Change {
    let resource_type = rc.resource_type().unwrap_or_default().to_string();
    let mut properties: Vec<String> = rc
        .details()
        .iter()
        .filter_map(|d| d.target())
        .map(|t| {
            let name = t
                .name()
                .map(str::to_string)
                .or_else(|| t.attribute().map(|a| a.as_str().to_string()))
                .unwrap_or_default();
            match t.requires_recreation().map(|r| r.as_str()) {
                Some(r @ ("Always" | "Conditionally")) => format!("{name} (recreation: {r})"),
                _ => name,
            }
        })
        .collect();
    properties.sort();
    properties.dedup();
    Change {
        logical_id: rc.logical_resource_id().unwrap_or_default().to_string(),
        stateful: STATEFUL_TYPES.contains(&resource_type.as_str()),
        resource_type,
        action: rc
            .action()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default(),
        replacement: rc
            .replacement()
            .map(|r| r.as_str().to_string())
            .unwrap_or_default(),
        properties,
    }
}

/// The summary line of a plan.
pub fn summary(changes: &[Change]) -> String {
    let count = |action: &str| changes.iter().filter(|c| c.action == action).count();
    let replaced = changes.iter().filter(|c| c.replacement == "True").count();
    let stateful = changes
        .iter()
        .filter(|c| c.replaces_stateful() || c.removes_stateful())
        .count();
    format!(
        "{} to add, {} to modify ({} replaced), {} to remove; {} stateful resource(s) at risk",
        count("Add"),
        count("Modify"),
        replaced,
        count("Remove"),
        stateful
    )
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudformation::types::{
        ChangeAction, Replacement, RequiresRecreation, ResourceAttribute, ResourceChangeDetail,
        ResourceTargetDefinition,
    };

    use super::*;

    /// A resource change as DescribeChangeSet returns it.
    fn replaced(logical_id: &str, resource_type: &str, property: &str) -> ResourceChange {
        ResourceChange::builder()
            .logical_resource_id(logical_id)
            .resource_type(resource_type)
            .action(ChangeAction::Modify)
            .replacement(Replacement::True)
            .details(
                ResourceChangeDetail::builder()
                    .target(
                        ResourceTargetDefinition::builder()
                            .attribute(ResourceAttribute::Properties)
                            .name(property)
                            .requires_recreation(RequiresRecreation::Always)
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    #[test]
    fn a_new_ami_replacing_the_hosts_is_not_a_stateful_replacement() {
        // What an Amazon Linux release does to a stack: the SSM parameter
        // resolves to a new AMI, the launch template gets a new version, and
        // the hosts (a group now, an instance in stacks deployed before) follow.
        let changes = [
            change(&replaced(
                "HostLaunchTemplate",
                "AWS::EC2::LaunchTemplate",
                "LaunchTemplateData",
            )),
            change(&replaced(
                "HostInstance",
                "AWS::EC2::Instance",
                "LaunchTemplate",
            )),
            change(&replaced(
                "HostGroup",
                "AWS::AutoScaling::AutoScalingGroup",
                "LaunchTemplate",
            )),
        ];
        for c in &changes {
            assert!(!c.replaces_stateful(), "{c:?}");
            assert_eq!(c.replacement, "True");
        }
        assert_eq!(
            changes[0].properties,
            ["LaunchTemplateData (recreation: Always)"]
        );
        assert!(summary(&changes).ends_with("0 stateful resource(s) at risk"));
    }

    #[test]
    fn replacing_a_stream_table_bucket_or_key_still_is() {
        for (id, ty) in [
            ("Stream", "AWS::Kinesis::Stream"),
            ("Table", "AWS::DynamoDB::Table"),
            ("ArchiveBucket", "AWS::S3::Bucket"),
            (
                "ArchiveDeliveryStream",
                "AWS::KinesisFirehose::DeliveryStream",
            ),
            ("StackKey", "AWS::KMS::Key"),
        ] {
            let c = change(&replaced(id, ty, "Name"));
            assert!(c.replaces_stateful(), "{c:?}");
        }
        let removed = change(
            &ResourceChange::builder()
                .logical_resource_id("Table")
                .resource_type("AWS::DynamoDB::Table")
                .action(ChangeAction::Remove)
                .build(),
        );
        assert!(removed.removes_stateful());
        assert!(summary(&[removed]).ends_with("1 stateful resource(s) at risk"));
    }
}

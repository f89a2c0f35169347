//! Stack state, events and the wait loop.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::StackEvent;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::progress::Progress;
use crate::aws::{AwsError, ResultExt};

/// What DescribeStacks says of a stack.
#[derive(Debug, Clone, PartialEq)]
pub struct StackInfo {
    pub id: String,
    pub name: String,
    pub status: String,
    pub reason: Option<String>,
    pub outputs: BTreeMap<String, String>,
}

/// Statuses in which a stack serves and can be updated.
pub fn is_healthy(status: &str) -> bool {
    matches!(
        status,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE"
    )
}

/// An operation is running (REVIEW_IN_PROGRESS is a resting state: a stack
/// that exists only as a change set).
pub fn is_in_progress(status: &str) -> bool {
    status.ends_with("_IN_PROGRESS") && status != "REVIEW_IN_PROGRESS"
}

/// Where a stack stands for a new change set: the one reading of its
/// status that `up` (which settles it) and `plan` (which only reports) share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// No stack, or only the shell of a change set never executed
    /// (REVIEW_IN_PROGRESS): a change set creates it.
    Creatable,
    /// An operation is running.
    Busy,
    /// Its creation failed; such a stack can only be deleted.
    FailedCreation,
    /// An update's rollback failed; it has to be continued.
    RollbackFailed,
    /// An earlier teardown failed.
    DeleteFailed,
    /// A stack a change set updates.
    Updatable,
}

impl Standing {
    pub fn of(status: Option<&str>) -> Self {
        match status {
            None | Some("REVIEW_IN_PROGRESS") => Standing::Creatable,
            Some(s) if is_in_progress(s) => Standing::Busy,
            Some("ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED") => {
                Standing::FailedCreation
            }
            Some("UPDATE_ROLLBACK_FAILED") => Standing::RollbackFailed,
            Some("DELETE_FAILED") => Standing::DeleteFailed,
            Some(_) => Standing::Updatable,
        }
    }
}

fn is_terminal_resource_status(status: &str) -> bool {
    status.ends_with("_COMPLETE") || status.ends_with("_FAILED") || status == "DELETE_SKIPPED"
}

/// The stack, or `None` when it does not exist.
pub async fn describe(cfn: &Client, stack: &str) -> Result<Option<StackInfo>, AwsError> {
    match cfn.describe_stacks().stack_name(stack).send().await {
        Ok(out) => Ok(out.stacks().first().map(|s| StackInfo {
            id: s.stack_id().unwrap_or_default().to_string(),
            name: s.stack_name().unwrap_or_default().to_string(),
            status: s
                .stack_status()
                .map(|st| st.as_str().to_string())
                .unwrap_or_default(),
            reason: s.stack_status_reason().map(str::to_string),
            outputs: s
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
                .collect(),
        })),
        Err(e)
            if e.as_service_error()
                .and_then(|s| s.message())
                .is_some_and(|m| m.contains("does not exist")) =>
        {
            Ok(None)
        }
        Err(e) => Err(AwsError::new(format!("describing stack {stack}"), e)),
    }
}

/// Physical ids by logical id.
pub async fn resources(cfn: &Client, stack: &str) -> Result<Vec<Resource>, AwsError> {
    let out = cfn
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .aws(format!("listing the resources of stack {stack}"))?;
    Ok(out
        .stack_resources()
        .iter()
        .map(|r| Resource {
            logical_id: r.logical_resource_id().unwrap_or_default().to_string(),
            physical_id: r.physical_resource_id().map(str::to_string),
            resource_type: r.resource_type().unwrap_or_default().to_string(),
            status: r
                .resource_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            reason: r.resource_status_reason().map(str::to_string),
        })
        .collect())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub logical_id: String,
    pub physical_id: Option<String>,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

/// Follows a stack's events from a starting point on.
pub struct Watch {
    /// Stack id (survives deletion) or name.
    stack: String,
    /// Events already seen (the newest event before the operation marks its start).
    seen: HashSet<String>,
    /// This operation's events, oldest first.
    pub events: Vec<StackEvent>,
}

impl Watch {
    /// Starts watching after the stack's newest current event.
    pub async fn start(cfn: &Client, stack: &str) -> Result<Self, AwsError> {
        let mut watch = Self {
            stack: stack.to_string(),
            seen: HashSet::new(),
            events: Vec::new(),
        };
        if let Ok(out) = cfn.describe_stack_events().stack_name(stack).send().await {
            watch.seen.extend(
                out.stack_events()
                    .iter()
                    .filter_map(|e| e.event_id().map(str::to_string)),
            );
        }
        Ok(watch)
    }

    /// Re-targets the watch (a stack created anew has a new id).
    pub fn retarget(&mut self, stack: &str) {
        self.stack = stack.to_string();
    }

    /// New events since the last poll, oldest first.
    pub async fn poll(&mut self, cfn: &Client) -> Result<Vec<StackEvent>, AwsError> {
        let mut fresh = Vec::new();
        let mut pages = cfn
            .describe_stack_events()
            .stack_name(&self.stack)
            .into_paginator()
            .send();
        'pages: while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                // The stack is gone (deleted by name): no more events.
                Err(e)
                    if e.as_service_error()
                        .and_then(|s| s.message())
                        .is_some_and(|m| m.contains("does not exist")) =>
                {
                    break;
                }
                Err(e) => {
                    return Err(AwsError::new(
                        format!("reading the events of stack {}", self.stack),
                        e,
                    ));
                }
            };
            for event in page.stack_events() {
                let id = event.event_id().unwrap_or_default();
                if self.seen.contains(id) {
                    break 'pages;
                }
                fresh.push(event.clone());
            }
        }
        fresh.reverse();
        for e in &fresh {
            self.seen
                .insert(e.event_id().unwrap_or_default().to_string());
        }
        self.events.extend(fresh.iter().cloned());
        Ok(fresh)
    }

    /// The first failed resource and its reason: the root cause, not the
    /// cascade of "Resource creation cancelled" that follows it.
    pub fn root_cause(&self, stack_name: &str) -> Option<String> {
        root_cause(&self.events, stack_name)
    }
}

pub fn root_cause(events: &[StackEvent], stack_name: &str) -> Option<String> {
    let failed = |e: &&StackEvent| {
        e.resource_status()
            .is_some_and(|s| s.as_str().ends_with("_FAILED"))
    };
    let cancelled = |e: &&StackEvent| {
        e.resource_status_reason()
            .is_some_and(|r| r.to_ascii_lowercase().contains("cancelled"))
    };
    let is_stack = |e: &&StackEvent| {
        e.logical_resource_id() == Some(stack_name)
            && e.resource_type() == Some("AWS::CloudFormation::Stack")
    };
    let describe = |e: &StackEvent| {
        format!(
            "{} ({}): {}",
            e.logical_resource_id().unwrap_or("?"),
            e.resource_type().unwrap_or("?"),
            e.resource_status_reason().unwrap_or("no reason given")
        )
    };
    events
        .iter()
        .filter(failed)
        .find(|e| !is_stack(e) && !cancelled(e))
        .or_else(|| events.iter().filter(failed).find(|e| !is_stack(e)))
        .map(describe)
        .or_else(|| {
            events
                .iter()
                .filter(failed)
                .find(is_stack)
                .and_then(|e| e.resource_status_reason().map(str::to_string))
        })
}

/// How a wait ended.
#[derive(Debug)]
pub enum Settled {
    At(StackInfo),
    Gone,
}

/// Polls until no operation runs on the stack, reporting each event.
pub async fn wait(
    cfn: &Client,
    watch: &mut Watch,
    progress: &mut Progress,
    poll: Duration,
) -> Result<Settled, AwsError> {
    loop {
        for event in watch.poll(cfn).await? {
            progress.event(
                &event,
                is_terminal_resource_status(
                    event
                        .resource_status()
                        .map(|s| s.as_str())
                        .unwrap_or_default(),
                ),
            );
        }
        match describe(cfn, &watch.stack).await? {
            None => return Ok(Settled::Gone),
            Some(info) if info.status == "DELETE_COMPLETE" => return Ok(Settled::Gone),
            Some(info) if !is_in_progress(&info.status) => {
                for event in watch.poll(cfn).await? {
                    progress.event(
                        &event,
                        is_terminal_resource_status(
                            event
                                .resource_status()
                                .map(|s| s.as_str())
                                .unwrap_or_default(),
                        ),
                    );
                }
                return Ok(Settled::At(info));
            }
            Some(_) => {}
        }
        progress.tick();
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudformation::types::{ResourceStatus, StackEvent};

    use super::root_cause;

    fn event(
        logical: &str,
        kind: &str,
        status: ResourceStatus,
        reason: Option<&str>,
    ) -> StackEvent {
        StackEvent::builder()
            .stack_id("arn:stack/s/1")
            .stack_name("s")
            .event_id(format!("{logical}-{}", status.as_str()))
            .logical_resource_id(logical)
            .resource_type(kind)
            .resource_status(status)
            .set_resource_status_reason(reason.map(str::to_string))
            .timestamp(aws_smithy_types::DateTime::from_secs(0))
            .build()
    }

    const STACK: &str = "AWS::CloudFormation::Stack";

    #[test]
    fn the_first_failed_resource_is_the_cause_not_the_cancelled_ones_or_the_stack() {
        // Oldest first, as a create that fails and rolls back records them.
        let events = [
            event(
                "s",
                STACK,
                ResourceStatus::CreateInProgress,
                Some("User Initiated"),
            ),
            event(
                "Queue",
                "AWS::SQS::Queue",
                ResourceStatus::CreateComplete,
                None,
            ),
            event(
                "Stream",
                "AWS::Kinesis::Stream",
                ResourceStatus::CreateFailed,
                Some("Resource creation cancelled"),
            ),
            event(
                "Table",
                "AWS::DynamoDB::Table",
                ResourceStatus::CreateFailed,
                Some("Table already exists: t"),
            ),
            event(
                "s",
                STACK,
                ResourceStatus::RollbackInProgress,
                Some("The following resource(s) failed to create: [Table, Stream]."),
            ),
            event("s", STACK, ResourceStatus::RollbackComplete, None),
        ];
        assert_eq!(
            root_cause(&events, "s").as_deref(),
            Some("Table (AWS::DynamoDB::Table): Table already exists: t")
        );
    }

    #[test]
    fn without_a_real_cause_the_cancelled_resource_then_the_stack_reason_is_given() {
        let cancelled = [event(
            "Stream",
            "AWS::Kinesis::Stream",
            ResourceStatus::CreateFailed,
            Some("Resource creation cancelled"),
        )];
        assert_eq!(
            root_cause(&cancelled, "s").as_deref(),
            Some("Stream (AWS::Kinesis::Stream): Resource creation cancelled")
        );
        let stack_only = [event(
            "s",
            STACK,
            ResourceStatus::UpdateRollbackFailed,
            Some("rollback of [Table] failed"),
        )];
        assert_eq!(
            root_cause(&stack_only, "s").as_deref(),
            Some("rollback of [Table] failed")
        );
        let fine = [event(
            "Queue",
            "AWS::SQS::Queue",
            ResourceStatus::CreateComplete,
            None,
        )];
        assert_eq!(root_cause(&fine, "s"), None);
    }
}

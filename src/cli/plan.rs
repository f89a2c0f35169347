//! `streamstack plan`: what `up` would change, from a change set that is
//! deleted afterwards (and the stack shell too when the stack did not exist).

use clap::Args;
use serde_json::json;

use super::{Cli, Exit, Output, StackArgs, deploy_failed, deployment, load, with_aws};
use crate::deploy::changeset::{self, Change, Kind, Prepared, Request};
use crate::deploy::stack::{self, is_in_progress};
use crate::deploy::{DeployError, POLL_INTERVAL};

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Exit 0 when there are no changes and 4 when there are (like terraform's -detailed-exitcode).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Records a second the cost estimate assumes.
    #[arg(long, default_value_t = 100.0, value_name = "N")]
    pub records_per_s: f64,
    /// Average record size in KB the cost estimate assumes.
    #[arg(long, default_value_t = 3.0, value_name = "KB")]
    pub record_kb: f64,
}

pub fn run(args: &PlanArgs, cli: &Cli) -> Exit {
    let resolved = match load(&args.stack, cli.output) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    with_aws(cli, &resolved, async |aws| {
        let d = deployment(&resolved);
        match plan(&aws.cloudformation(), &d.stack, &d.body, &d.tags).await {
            Ok((kind, changes)) => {
                let workload = crate::cost::Workload {
                    records_per_s: args.records_per_s,
                    record_kb: args.record_kb,
                    ..Default::default()
                };
                let cost =
                    crate::cost::estimate(&resolved, workload, &crate::cost::Prices::us_east_1());
                print_plan(&d.stack, kind, &changes, &cost, cli.output);
                if args.detailed_exitcode && !changes.is_empty() {
                    Exit::Changes
                } else {
                    Exit::Ok
                }
            }
            Err(e) => deploy_failed(&e),
        }
    })
}

async fn plan(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
    body: &str,
    tags: &[(String, String)],
) -> Result<(Kind, Vec<Change>), DeployError> {
    let existing = stack::describe(cfn, stack).await?;
    let kind = match existing.as_ref().map(|s| s.status.as_str()) {
        None | Some("REVIEW_IN_PROGRESS") => Kind::Create,
        Some(s) if is_in_progress(s) => {
            return Err(DeployError::Stuck {
                stack: stack.into(),
                status: s.into(),
                advice: "an operation is running; plan again when it ends".into(),
            });
        }
        Some(s @ ("ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED")) => {
            return Err(DeployError::Stuck {
                stack: stack.into(),
                status: s.into(),
                advice: "its creation failed earlier; `up` deletes it and creates it anew (every resource is added)".into(),
            });
        }
        Some(s @ ("UPDATE_ROLLBACK_FAILED" | "DELETE_FAILED")) => {
            return Err(DeployError::Stuck {
                stack: stack.into(),
                status: s.into(),
                advice: "`up` (or `down`) has to settle it first".into(),
            });
        }
        Some(_) => Kind::Update,
    };
    if kind == Kind::Update {
        crate::deploy::reshard::check_deployed(cfn, stack, body).await?;
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
                crate::aws::AwsError::new(
                    format!("removing the planning shell of stack {stack}"),
                    e,
                )
            })?;
    }
    Ok((kind, changes))
}

fn print_cost(cost: &crate::cost::Estimate) {
    println!(
        "\ncost estimate ({} list prices of {}; {} records/s of {} KB; `--records-per-s`, `--record-kb`):",
        cost.region, cost.prices_as_of, cost.workload.records_per_s, cost.workload.record_kb
    );
    for l in &cost.lines {
        println!(
            "  {:<11} {:<58} {:>10.2} USD/month",
            l.service, l.item, l.monthly_usd
        );
    }
    println!("  {:<70} {:>10.2} USD/month", "total", cost.monthly_usd);
    println!(
        "  {:<70} {:>10.4} USD/hour",
        "idle (no data flowing)", cost.idle_hourly_usd
    );
    for u in &cost.unpriced {
        println!("  not priced: {u}");
    }
}

fn print_plan(
    stack: &str,
    kind: Kind,
    changes: &[Change],
    cost: &crate::cost::Estimate,
    output: Output,
) {
    match output {
        Output::Json => println!(
            "{}",
            json!({ "stack": stack, "kind": kind, "changes": changes, "summary": changeset::summary(changes), "cost": cost })
        ),
        Output::Text if changes.is_empty() => println!("{stack}: no changes"),
        Output::Text => {
            println!(
                "{stack}: {} would change",
                if kind == Kind::Create {
                    "a new stack"
                } else {
                    "the stack"
                }
            );
            for c in changes {
                let marker = if c.replaces_stateful() || c.removes_stateful() {
                    "!"
                } else {
                    " "
                };
                let replacement = if c.replacement.is_empty() {
                    String::new()
                } else {
                    format!(" replacement: {}", c.replacement)
                };
                let props = if c.properties.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", c.properties.join(", "))
                };
                println!(
                    "{marker} {:<8} {:<32} {:<40}{replacement}{props}",
                    c.action, c.logical_id, c.resource_type
                );
                if marker == "!" {
                    println!(
                        "    ! {} holds data or serves traffic: `up` refuses this without --allow-replace",
                        c.logical_id
                    );
                }
            }
            println!("{}", changeset::summary(changes));
        }
    }
    if output == Output::Text {
        print_cost(cost);
    }
}

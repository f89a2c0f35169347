//! `streamstack status`: the stack, every resource, the outputs.

use serde_json::json;

use super::{Cli, Exit, Output, StackArgs, load, print_outputs, with_aws};
use crate::deploy::stack::{self, is_healthy};

pub fn run(args: &StackArgs, cli: &Cli) -> Exit {
    let resolved = match load(args, cli.output) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    with_aws(cli, &resolved, async |aws| {
        let cfn = aws.cloudformation();
        let name = resolved.stack_name();
        let info = match stack::describe(&cfn, &name).await {
            Ok(Some(info)) => info,
            Ok(None) => {
                match cli.output {
                    Output::Json => println!(
                        "{}",
                        json!({ "stack": name, "exists": false, "healthy": false })
                    ),
                    Output::Text => println!("{name}: does not exist (run `streamstack up`)"),
                }
                return Exit::Failed;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Failed;
            }
        };
        let resources = match stack::resources(&cfn, &info.id).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Failed;
            }
        };
        let alarms = match alarm_states(&aws, &name).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Failed;
            }
        };
        let alarming: Vec<&String> = alarms
            .iter()
            .filter(|(_, state)| state == "ALARM")
            .map(|(name, _)| name)
            .collect();
        let processor = (resolved.stack.target == crate::spec::model::Target::Emulator)
            .then(|| crate::deploy::local_processor::inspect(&name));
        let healthy = is_healthy(&info.status)
            && resources.iter().all(|r| r.status.ends_with("_COMPLETE"))
            && processor.as_ref().is_none_or(|p| p.running)
            && alarming.is_empty();
        match cli.output {
            Output::Json => println!(
                "{}",
                json!({
                    "stack": name, "exists": true, "healthy": healthy, "status": info.status, "reason": info.reason,
                    "resources": resources.iter().map(|r| json!({
                        "logical_id": r.logical_id, "type": r.resource_type, "physical_id": r.physical_id,
                        "status": r.status, "reason": r.reason,
                    })).collect::<Vec<_>>(),
                    "outputs": info.outputs,
                    "processor": processor,
                    "alarms": alarms.iter().map(|(n, s)| json!({ "name": n, "state": s })).collect::<Vec<_>>(),
                })
            ),
            Output::Text => {
                let reason = info
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                println!("{name}: {}{reason}", info.status);
                for r in &resources {
                    let why = r
                        .reason
                        .as_deref()
                        .filter(|_| !r.status.ends_with("_COMPLETE"))
                        .map(|w| format!(": {w}"))
                        .unwrap_or_default();
                    println!(
                        "  {:<32} {:<40} {:<20} {}{why}",
                        r.logical_id,
                        r.resource_type,
                        r.status,
                        r.physical_id.as_deref().unwrap_or("-")
                    );
                }
                print_outputs(&info.outputs);
                if let Some(p) = &processor {
                    match (p.running, p.pid) {
                        (true, Some(pid)) => println!(
                            "processor: running locally (pid {pid}), log {}",
                            p.log.display()
                        ),
                        _ => println!(
                            "processor: NOT running (run `streamstack up`), log {}",
                            p.log.display()
                        ),
                    }
                    if let Some(line) = &p.last_line {
                        println!("  last: {line}");
                    }
                }
                let mut counts = std::collections::BTreeMap::new();
                for (_, state) in &alarms {
                    *counts.entry(state.as_str()).or_insert(0) += 1;
                }
                let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
                println!(
                    "alarms: {}",
                    if summary.is_empty() {
                        "none".into()
                    } else {
                        summary.join(", ")
                    }
                );
                for a in &alarming {
                    println!("  IN ALARM: {a}");
                }
                println!(
                    "verdict: {}",
                    if healthy { "healthy" } else { "NOT healthy" }
                );
            }
        }
        if healthy { Exit::Ok } else { Exit::Failed }
    })
}

/// Every alarm of the stack and its state.
async fn alarm_states(
    aws: &crate::aws::Aws,
    stack: &str,
) -> Result<Vec<(String, String)>, crate::aws::AwsError> {
    use crate::aws::ResultExt;
    let mut pages = aws
        .cloudwatch()
        .describe_alarms()
        .alarm_name_prefix(format!("{stack}-"))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.aws(format!("reading the alarms of {stack}"))?;
        out.extend(page.metric_alarms().iter().map(|a| {
            (
                a.alarm_name().unwrap_or_default().to_string(),
                a.state_value()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            )
        }));
    }
    Ok(out)
}

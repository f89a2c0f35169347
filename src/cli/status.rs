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
        let processor = (resolved.stack.target == crate::spec::model::Target::Emulator)
            .then(|| crate::deploy::local_processor::inspect(&name));
        let healthy = is_healthy(&info.status)
            && resources.iter().all(|r| r.status.ends_with("_COMPLETE"))
            && processor.as_ref().is_none_or(|p| p.running);
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
                println!(
                    "verdict: {}",
                    if healthy { "healthy" } else { "NOT healthy" }
                );
            }
        }
        if healthy { Exit::Ok } else { Exit::Failed }
    })
}

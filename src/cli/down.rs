//! `streamstack down`: teardown that never deletes data silently.

use clap::Args;
use serde_json::json;

use super::{Cli, Exit, Output, StackArgs, deploy_failed, load, with_aws};
use crate::deploy::POLL_INTERVAL;
use crate::deploy::down::{self, DataPolicy, DownOutcome};

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Delete the data too: empty the (versioned) bucket, delete it and the tables.
    #[arg(long, conflicts_with = "keep_data")]
    pub delete_data: bool,
    /// Delete everything else; keep the bucket, the tables and the key, and say where they are.
    #[arg(long)]
    pub keep_data: bool,
}

pub fn run(args: &DownArgs, cli: &Cli) -> Exit {
    let resolved = match load(&args.stack, cli.output) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let policy = match (args.delete_data, args.keep_data) {
        (true, _) => DataPolicy::Delete,
        (_, true) => DataPolicy::Keep,
        _ => DataPolicy::Refuse,
    };
    with_aws(cli, &resolved, async |aws| {
        let stack = resolved.stack_name();
        if cli.output == Output::Text {
            eprintln!("taking stock of the data in stack {stack}:");
        }
        // The local processor stops first: it stores its batch and checkpoints
        // while its tables still exist.
        let local = resolved.stack.target == crate::spec::model::Target::Emulator;
        let mut stopped = false;
        if local {
            match crate::deploy::local_processor::stop(&stack, std::time::Duration::from_secs(10)) {
                Ok(true) => {
                    eprintln!("stopped the local processor of {stack}");
                    stopped = true;
                }
                Ok(false) => {}
                Err(e) => eprintln!("warning: stopping the local processor of {stack}: {e}"),
            }
        }
        let names = crate::names::Names::new(&resolved);
        let stream = match crate::processor::read::consumer::backlog::unread_records(
            &aws,
            &names.stream,
            &names.lease_table,
        )
        .await
        {
            Ok(unread) => unread.map(|unread_records| down::StreamData {
                name: names.stream.clone(),
                unread_records,
            }),
            Err(e) => return deploy_failed(&e.into()),
        };
        match down::down(&aws, &stack, policy, stream, POLL_INTERVAL).await {
            Ok(DownOutcome::NothingToDo) => {
                match cli.output {
                    Output::Json => println!(
                        "{}",
                        json!({ "stack": stack, "deleted": false, "existed": false })
                    ),
                    Output::Text => println!("{stack}: no such stack, nothing to tear down"),
                }
                Exit::Ok
            }
            Ok(DownOutcome::Leftovers { inventory, deleted }) => {
                match cli.output {
                    Output::Json => println!(
                        "{}",
                        json!({ "stack": stack, "deleted": deleted, "existed": false, "leftovers": inventory })
                    ),
                    Output::Text => {
                        let verb = if deleted { "deleted" } else { "kept" };
                        println!("{stack}: no such stack; what it retained:");
                        for line in inventory.describe() {
                            println!("  {verb} {line}");
                        }
                    }
                }
                Exit::Ok
            }
            Ok(DownOutcome::Deleted { inventory, kept }) => {
                match cli.output {
                    Output::Json => println!(
                        "{}",
                        json!({ "stack": stack, "deleted": true, "existed": true, "inventory": inventory, "kept": kept })
                    ),
                    Output::Text => {
                        println!("{stack}: deleted");
                        for k in &kept {
                            println!("  kept {k}");
                        }
                    }
                }
                Exit::Ok
            }
            Err(e) => {
                // Nothing was torn down: the processor goes back to work.
                if stopped
                    && e.is_refusal()
                    && let Ok(binary) = std::env::current_exe()
                {
                    match crate::deploy::local_processor::ensure_running(
                        &stack,
                        &binary,
                        &args.stack.stack,
                        args.stack.env.as_deref(),
                    ) {
                        Ok(_) => eprintln!("restarted the local processor of {stack}"),
                        Err(e) => {
                            eprintln!("warning: restarting the local processor of {stack}: {e}")
                        }
                    }
                }
                deploy_failed(&e)
            }
        }
    })
}

//! `streamstack down`: teardown that never deletes data silently.

use clap::Args;
use serde_json::json;

use super::{Cli, Exit, Output, StackArgs, in_environment};
use crate::app::down::down;
use crate::deploy::down::{DataPolicy, DownOutcome};

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
    let policy = match (args.delete_data, args.keep_data) {
        (true, _) => DataPolicy::Delete,
        (_, true) => DataPolicy::Keep,
        _ => DataPolicy::Refuse,
    };
    let report = match in_environment(cli, &args.stack, async |env| down(&env, policy).await) {
        Ok(report) => report,
        Err(exit) => return exit,
    };
    let stack = &report.stack;
    match (report.outcome, cli.output) {
        (DownOutcome::NothingToDo, Output::Json) => println!(
            "{}",
            json!({ "stack": stack, "deleted": false, "existed": false })
        ),
        (DownOutcome::NothingToDo, Output::Text) => {
            println!("{stack}: no such stack, nothing to tear down")
        }
        (DownOutcome::Leftovers { inventory, deleted }, Output::Json) => println!(
            "{}",
            json!({ "stack": stack, "deleted": deleted, "existed": false, "leftovers": inventory })
        ),
        (DownOutcome::Leftovers { inventory, deleted }, Output::Text) => {
            let verb = if deleted { "deleted" } else { "kept" };
            println!("{stack}: no such stack; what it retained:");
            for line in inventory.describe() {
                println!("  {verb} {line}");
            }
        }
        (DownOutcome::Deleted { inventory, kept }, Output::Json) => println!(
            "{}",
            json!({ "stack": stack, "deleted": true, "existed": true, "inventory": inventory, "kept": kept })
        ),
        (DownOutcome::Deleted { kept, .. }, Output::Text) => {
            println!("{stack}: deleted");
            for k in &kept {
                println!("  kept {k}");
            }
        }
    }
    Exit::Ok
}

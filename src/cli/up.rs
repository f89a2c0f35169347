//! `streamstack up`: create or update the stack through a change set.

use clap::Args;
use serde_json::json;

use super::{
    Cli, Exit, Output, StackArgs, block_on, connect, deploy_failed, deployment, load, print_outputs,
};
use crate::deploy::POLL_INTERVAL;
use crate::deploy::up::{self, Desired, UpOptions, UpOutcome};

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Allow replacing or removing stateful resources (stream, delivery stream, bucket, table, instance, key).
    #[arg(long)]
    pub allow_replace: bool,
}

pub fn run(args: &UpArgs, cli: &Cli) -> Exit {
    let resolved = match load(&args.stack, cli.output) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    block_on(async {
        let aws = match connect(cli, &resolved).await {
            Ok(aws) => aws,
            Err(exit) => return exit,
        };
        let d = deployment(&resolved);
        let desired = Desired {
            stack: &d.stack,
            template_body: &d.body,
            tags: &d.tags,
            resource_count: d.resource_count,
        };
        let options = UpOptions {
            allow_replace: args.allow_replace,
            poll: POLL_INTERVAL,
        };
        match up::up(&aws, &desired, &options).await {
            Ok(outcome) => {
                let (info, changed) = match &outcome {
                    UpOutcome::Unchanged(info) => (info, false),
                    UpOutcome::Deployed { info, .. } => (info, true),
                };
                match cli.output {
                    Output::Json => println!(
                        "{}",
                        json!({ "stack": d.stack, "status": info.status, "changed": changed, "outputs": info.outputs })
                    ),
                    Output::Text => {
                        if !changed {
                            println!("{}: no changes ({})", d.stack, info.status);
                        } else {
                            println!("{}: {}", d.stack, info.status);
                        }
                        print_outputs(&info.outputs);
                    }
                }
                Exit::Ok
            }
            Err(e) => deploy_failed(&e),
        }
    })
}

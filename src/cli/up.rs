//! `streamstack up`: create or update the stack through a change set.

use clap::Args;
use serde_json::json;

use super::{Cli, Exit, Output, StackArgs, in_environment, print_outputs, smoke};
use crate::app::up::{UpOptions, up};

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Allow replacing or removing stateful resources (stream, delivery stream, bucket, table, key).
    #[arg(long)]
    pub allow_replace: bool,
    /// Deploy only: do not ship the processor to the host(s) (AWS) or start it locally (emulator).
    #[arg(long)]
    pub no_processor: bool,
    /// The processor binary to ship to the host(s) (default: this one). It
    /// must run on Amazon Linux 2023 (the instance type's architecture, glibc
    /// 2.34 at most): `make dist` builds one, static and stripped. Checked
    /// before any change on AWS.
    #[arg(long, value_name = "PATH")]
    pub processor_binary: Option<std::path::PathBuf>,
    /// Skip the smoke test (a canary through the pipeline) that ends `up`.
    #[arg(long)]
    pub no_smoke: bool,
}

pub fn run(args: &UpArgs, cli: &Cli) -> Exit {
    let options = UpOptions {
        allow_replace: args.allow_replace,
        no_processor: args.no_processor,
        processor_binary: args.processor_binary.clone(),
        no_smoke: args.no_smoke,
    };
    let report = match in_environment(cli, &args.stack, async |env| up(&env, &options).await) {
        Ok(report) => report,
        Err(exit) => return exit,
    };
    match cli.output {
        Output::Json => println!(
            "{}",
            json!({
                "stack": report.stack, "status": report.status, "changed": report.changed,
                "outputs": report.outputs, "processor": report.processor,
                "smoke": report.smoke.as_ref().map(smoke::report_json),
            })
        ),
        Output::Text => {
            if !report.changed {
                println!("{}: no changes ({})", report.stack, report.status);
            } else {
                println!("{}: {}", report.stack, report.status);
            }
            print_outputs(&report.outputs);
            if let Some(p) = &report.processor {
                println!("processor: {p}");
            }
            if let Some(s) = &report.smoke {
                println!("{}", smoke::report_text(s));
            }
        }
    }
    if report.smoke.as_ref().is_some_and(|s| !s.ok) {
        eprintln!(
            "error: {} is deployed, but the smoke test failed (see above)",
            report.stack
        );
        return Exit::Failed;
    }
    Exit::Ok
}

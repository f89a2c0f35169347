//! `streamstack up`: create or update the stack through a change set.

use clap::Args;
use serde_json::json;

use super::{
    Cli, Exit, Output, StackArgs, deploy_failed, deployment, load, print_outputs, with_aws,
};
use crate::deploy::POLL_INTERVAL;
use crate::deploy::local_processor::{self, Started};
use crate::deploy::up::{self, Desired, UpOptions, UpOutcome};
use crate::spec::model::Target;

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Allow replacing or removing stateful resources (stream, delivery stream, bucket, table, instance, key).
    #[arg(long)]
    pub allow_replace: bool,
    /// Deploy only: do not ship the processor to the host(s) (AWS) or start it locally (emulator).
    #[arg(long)]
    pub no_processor: bool,
    /// The processor binary to ship to the host(s) (default: this one). It
    /// runs on Amazon Linux 2023 (x86_64, glibc 2.34): ship a release build.
    #[arg(long, value_name = "PATH")]
    pub processor_binary: Option<std::path::PathBuf>,
    /// Skip the smoke test (a canary through the pipeline) that ends `up`.
    #[arg(long)]
    pub no_smoke: bool,
}

pub fn run(args: &UpArgs, cli: &Cli) -> Exit {
    let resolved = match load(&args.stack, cli.output) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    with_aws(cli, &resolved, async |aws| {
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
                // No host on the emulator: the processor runs here, in the background.
                let processor = if resolved.stack.target == Target::Emulator && !args.no_processor {
                    match start_local_processor(&d.stack, args) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            eprintln!("error: starting the local processor of {}: {e}", d.stack);
                            return Exit::Failed;
                        }
                    }
                } else if !args.no_processor {
                    match ship_processor(&aws, &d.stack, &info.outputs, args).await {
                        Ok(line) => Some(line),
                        Err(e) => {
                            eprintln!("error: shipping the processor of {}: {e}", d.stack);
                            return Exit::Failed;
                        }
                    }
                } else {
                    None
                };
                // The environment is up when data flows: a canary proves it
                // (not without a processor, which would fail it by design).
                let smoke = if args.no_smoke || args.no_processor {
                    None
                } else {
                    eprintln!("smoke: a canary through {} (skip with --no-smoke)", d.stack);
                    match super::smoke::check(&aws, &resolved, 60, 60).await {
                        Ok(report) => Some(report),
                        Err(exit) => return exit,
                    }
                };
                match cli.output {
                    Output::Json => println!(
                        "{}",
                        json!({
                            "stack": d.stack, "status": info.status, "changed": changed, "outputs": info.outputs,
                            "processor": processor, "smoke": smoke.as_ref().map(|s| &s.json),
                        })
                    ),
                    Output::Text => {
                        if !changed {
                            println!("{}: no changes ({})", d.stack, info.status);
                        } else {
                            println!("{}: {}", d.stack, info.status);
                        }
                        print_outputs(&info.outputs);
                        if let Some(p) = &processor {
                            println!("processor: {p}");
                        }
                        if let Some(s) = &smoke {
                            println!("{}", s.text);
                        }
                    }
                }
                if smoke.is_some_and(|s| !s.ok) {
                    eprintln!(
                        "error: {} is deployed, but the smoke test failed (see above)",
                        d.stack
                    );
                    return Exit::Failed;
                }
                Exit::Ok
            }
            Err(e) => deploy_failed(&e),
        }
    })
}

/// Starts (or keeps) the local processor; a one-line account of it.
fn start_local_processor(stack: &str, args: &UpArgs) -> std::io::Result<String> {
    let binary = std::env::current_exe()?;
    let started = local_processor::ensure_running(
        stack,
        &binary,
        &args.stack.stack,
        args.stack.env.as_deref(),
    )?;
    let log = local_processor::state_dir(stack).join("processor.log");
    Ok(match started {
        Started::Unchanged(pid) => format!("running, unchanged (pid {pid}), log {}", log.display()),
        Started::Started(pid) => format!("started (pid {pid}), log {}", log.display()),
        Started::Restarted(pid) => {
            format!(
                "restarted with the new binary or stack file (pid {pid}), log {}",
                log.display()
            )
        }
    })
}

/// Ships the processor to the stack's host(s); a one-line account of it.
async fn ship_processor(
    aws: &crate::aws::Aws,
    stack: &str,
    outputs: &std::collections::BTreeMap<String, String>,
    args: &UpArgs,
) -> Result<String, String> {
    let bucket = outputs
        .get("ArtifactsBucketName")
        .ok_or("the stack has no ArtifactsBucketName output")?;
    let binary = match &args.processor_binary {
        Some(path) => path.clone(),
        None => {
            if cfg!(debug_assertions) {
                eprintln!(
                    "warning: shipping this debug build of streamstack; for hosts, build with `cargo build --release` and pass --processor-binary target/release/streamstack"
                );
            }
            std::env::current_exe().map_err(|e| e.to_string())?
        }
    };
    let shipped = crate::deploy::ship::ship(
        aws,
        stack,
        bucket,
        &binary,
        &args.stack.stack,
        args.stack.env.as_deref(),
        POLL_INTERVAL,
    )
    .await
    .map_err(|e| e.to_string())?;
    let short = &shipped.sha256[..12];
    Ok(match (&shipped.rollout, shipped.uploaded) {
        (None, _) => format!("{short} already on the host(s), unchanged"),
        (Some((command, hosts)), true) => {
            format!("{short} uploaded and rolled out to {hosts} host(s) (SSM command {command})")
        }
        (Some((command, hosts)), false) => {
            format!("{short} rolled out to {hosts} host(s) (SSM command {command})")
        }
    })
}

//! `streamstack up`: create or update the stack through a change set.

use clap::Args;
use serde_json::json;

use super::{
    Cli, Exit, Output, StackArgs, deploy_failed, deployment, load, print_outputs, with_aws,
};
use crate::deploy::POLL_INTERVAL;
use crate::deploy::local_processor::{self, Started};
use crate::deploy::up::{self, Desired, UpOptions, UpOutcome};
use crate::deploy::{binary, rollout};
use crate::spec::model::Target;

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
    let resolved = match load(&args.stack, cli.output) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    // The binary for the hosts is checked before anything changes on AWS:
    // one that cannot run there would only show as a crash loop on every host.
    let ships = resolved.stack.target != Target::Emulator && !args.no_processor;
    let binary = if ships {
        match checked_binary(args, &resolved.stack.host.instance_type) {
            Ok(path) => Some(path),
            Err(message) => {
                eprintln!("error: {message}");
                return Exit::Failed;
            }
        }
    } else {
        None
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
                } else if let Some(binary) = &binary {
                    let hosts = resolved.stack.host.count as usize;
                    match ship_processor(&aws, &d.stack, &info.outputs, binary, hosts, args).await {
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
                    let timeouts = super::smoke::Timeouts {
                        table_s: 60,
                        archive_margin_s: 60,
                        heartbeat_s: super::smoke::HEARTBEAT_TIMEOUT_S,
                    };
                    match super::smoke::check(&aws, &resolved, &timeouts).await {
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

/// The binary to ship, checked for the hosts; the refusal says how to get one.
fn checked_binary(args: &UpArgs, instance_type: &str) -> Result<std::path::PathBuf, String> {
    let path = match &args.processor_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?,
    };
    let fit = binary::check(&path, instance_type).map_err(|e| e.to_string())?;
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    eprintln!(
        "processor binary {} ({:.1} MB): runs on {instance_type} hosts ({})",
        path.display(),
        size as f64 / 1e6,
        match fit.max_glibc {
            _ if fit.is_static => "static".to_string(),
            Some((major, minor)) => format!("needs glibc {major}.{minor}"),
            None => "needs no versioned glibc symbol".to_string(),
        }
    );
    if size > 200_000_000 {
        eprintln!(
            "warning: {} is {:.0} MB, a debug build: every host downloads it; `make dist` builds a stripped one of tens of MB",
            path.display(),
            size as f64 / 1e6
        );
    }
    Ok(path)
}

/// Ships the processor to the stack's host(s) and makes each run it; a
/// one-line account of it.
async fn ship_processor(
    aws: &crate::aws::Aws,
    stack: &str,
    outputs: &std::collections::BTreeMap<String, String>,
    binary: &std::path::Path,
    hosts: usize,
    args: &UpArgs,
) -> Result<String, String> {
    let bucket = outputs
        .get(crate::names::output::ARTIFACTS_BUCKET_NAME)
        .ok_or("the stack has no ArtifactsBucketName output")?;
    let shipped = crate::deploy::ship::ship(
        aws,
        bucket,
        binary,
        &args.stack.stack,
        args.stack.env.as_deref(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let short = &shipped.sha256[..12];
    let options = rollout::Options::new(hosts, POLL_INTERVAL);
    let outcome = rollout::roll_out(
        aws,
        stack,
        &shipped.sha256,
        shipped.changed,
        &options,
        &mut |event| match event {
            rollout::Event::Waiting { online, expected } => eprintln!(
                "processor: {online} of {expected} host(s) registered with Systems Manager; waiting (up to {} s)",
                options.register_timeout.as_secs()
            ),
            rollout::Event::Sent { command, hosts, what } => {
                eprintln!("processor: {what} sent to {hosts} host(s) (SSM command {command})")
            }
            rollout::Event::Differ { hosts } => {
                for (id, running) in hosts {
                    eprintln!("processor: {id} runs {running}, not {short}: rolling out again");
                }
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(match (&outcome.command, shipped.uploaded) {
        (None, _) => format!("{short} runs on all {} host(s), unchanged", outcome.hosts),
        (Some(command), true) => format!(
            "{short} uploaded and rolled out; all {} host(s) run it (SSM command {command})",
            outcome.hosts
        ),
        (Some(command), false) => format!(
            "{short} rolled out; all {} host(s) run it (SSM command {command})",
            outcome.hosts
        ),
    })
}

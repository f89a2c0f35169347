//! `up`: create or update the stack through a change set, then start the
//! processor (locally on the emulator, shipped to the hosts on AWS), then
//! prove with a canary that data flows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::smoke::{self, HEARTBEAT_TIMEOUT_S, SmokeReport, Timeouts};
use super::{AppError, Environment};
use crate::deploy::POLL_INTERVAL;
use crate::deploy::local_processor::{self, Started};
use crate::deploy::up::{self, Desired, UpOutcome};
use crate::deploy::{binary, rollout};
use crate::names::output;

/// What `up` is told.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Replace or remove stateful resources when the change set says so.
    pub allow_replace: bool,
    /// Deploy only: no processor shipped or started.
    pub no_processor: bool,
    /// The binary to ship to the hosts (default: this one).
    pub processor_binary: Option<PathBuf>,
    /// No canary at the end.
    pub no_smoke: bool,
}

/// What `up` did.
#[derive(Debug)]
pub struct UpReport {
    pub stack: String,
    pub status: String,
    pub changed: bool,
    pub outputs: BTreeMap<String, String>,
    /// The processor, in one line: started, rolled out, unchanged.
    pub processor: Option<String>,
    pub smoke: Option<SmokeReport>,
}

pub async fn up(env: &Environment, options: &UpOptions) -> Result<UpReport, AppError> {
    // The binary for the hosts is checked before anything changes on AWS:
    // one that cannot run there would only show as a crash loop on every host.
    let binary = if !env.is_local() && !options.no_processor {
        Some(
            checked_binary(options, &env.resolved.stack.host.instance_type)
                .map_err(|cause| AppError::step("checking the processor binary", cause))?,
        )
    } else {
        None
    };
    let d = env.deployment();
    let desired = Desired {
        stack: &d.stack,
        template_body: &d.body,
        tags: &d.tags,
        resource_count: d.resource_count,
    };
    let deploy_options = up::UpOptions {
        allow_replace: options.allow_replace,
        poll: POLL_INTERVAL,
    };
    let outcome = up::up(&env.aws, &desired, &deploy_options).await?;
    let (info, changed) = match outcome {
        UpOutcome::Unchanged(info) => (info, false),
        UpOutcome::Deployed { info, .. } => (info, true),
    };
    // No host on the emulator: the processor runs here, in the background.
    let processor = if env.is_local() && !options.no_processor {
        Some(start_local_processor(env).map_err(|e| {
            AppError::step(format!("starting the local processor of {}", d.stack), e)
        })?)
    } else if let Some(binary) = &binary {
        Some(
            ship_processor(env, &info.outputs, binary)
                .await
                .map_err(|e| AppError::step(format!("shipping the processor of {}", d.stack), e))?,
        )
    } else {
        None
    };
    // The environment is up when data flows: a canary proves it (not
    // without a processor, which would fail it by design).
    let smoke = if options.no_smoke || options.no_processor {
        None
    } else {
        tracing::info!(stack = %d.stack, "smoke: a canary through {} (skip with --no-smoke)", d.stack);
        let timeouts = Timeouts {
            table_s: 60,
            archive_margin_s: 60,
            heartbeat_s: HEARTBEAT_TIMEOUT_S,
        };
        Some(smoke::check(env, &timeouts).await?)
    };
    Ok(UpReport {
        stack: d.stack,
        status: info.status,
        changed,
        outputs: info.outputs,
        processor,
        smoke,
    })
}

/// Starts (or keeps) the local processor; a one-line account of it.
fn start_local_processor(env: &Environment) -> std::io::Result<String> {
    let binary = std::env::current_exe()?;
    let started = local_processor::ensure_running(
        env.stack(),
        &binary,
        &env.stack_file,
        env.environment.as_deref(),
    )?;
    let log = local_processor::state_dir(env.stack()).join("processor.log");
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
fn checked_binary(options: &UpOptions, instance_type: &str) -> Result<PathBuf, String> {
    let path = match &options.processor_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?,
    };
    let fit = binary::check(&path, instance_type).map_err(|e| e.to_string())?;
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    tracing::info!(
        binary = %path.display(),
        size_bytes = size,
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
        tracing::warn!(
            binary = %path.display(),
            size_bytes = size,
            "{} is {:.0} MB, a debug build: every host downloads it; `make dist` builds a stripped one of tens of MB",
            path.display(),
            size as f64 / 1e6
        );
    }
    Ok(path)
}

/// Ships the processor to the stack's host(s) and makes each run it; a
/// one-line account of it.
async fn ship_processor(
    env: &Environment,
    outputs: &BTreeMap<String, String>,
    binary: &Path,
) -> Result<String, String> {
    let (aws, stack) = (&env.aws, env.stack());
    let hosts = env.resolved.stack.host.count as usize;
    let bucket = outputs
        .get(output::ARTIFACTS_BUCKET_NAME)
        .ok_or("the stack has no ArtifactsBucketName output")?;
    let shipped = crate::deploy::ship::ship(
        aws,
        bucket,
        binary,
        &env.stack_file,
        env.environment.as_deref(),
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
            rollout::Event::Waiting { online, expected } => tracing::info!(
                online,
                expected,
                "processor: {online} of {expected} host(s) registered with Systems Manager; waiting (up to {} s)",
                options.register_timeout.as_secs()
            ),
            rollout::Event::Sent { command, hosts, what } => tracing::info!(
                command = %command,
                hosts,
                "processor: {what} sent to {hosts} host(s) (SSM command {command})"
            ),
            rollout::Event::Differ { hosts } => {
                for (id, running) in hosts {
                    tracing::info!(
                        instance = %id,
                        running = %running,
                        "processor: {id} runs {running}, not {short}: rolling out again"
                    );
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

//! The command line: one file a subcommand. Each returns an [`Exit`] code.

mod consume;
mod down;
mod metrics;
mod plan;
mod produce;
mod schema;
mod smoke;
mod smoke_watch;
mod status;
mod synth;
mod top;
mod transform;
mod up;
mod validate;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::aws::{Aws, AwsArgs};
use crate::deploy::DeployError;
use crate::spec::diagnostic::Report;
use crate::spec::model::Target;
use crate::spec::{self, LoadError, Resolved};
use crate::template;

/// Documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// The input (stack file, arguments) is invalid; nothing was changed.
    Invalid = 1,
    /// A runtime failure (I/O, AWS), a failed deployment, an unhealthy stack.
    Failed = 2,
    /// Refused for safety: data present on `down`; a stateful replacement, or a shard change
    /// one update cannot make, on `plan`/`up`.
    Refused = 3,
    /// `plan --detailed-exitcode`: the plan has changes.
    Changes = 4,
}

#[derive(Debug, Parser)]
#[command(
    name = "streamstack",
    version,
    about = "Provision, run and watch a real-time Kinesis pipeline on AWS from one YAML stack file"
)]
pub struct Cli {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a stack file: every mistake at file:line:column; no AWS call.
    Validate(StackArgs),
    /// Print the CloudFormation template (JSON) of a stack; no AWS call.
    Synth(synth::SynthArgs),
    /// Print the stack file's JSON Schema, for editors.
    Schema,
    /// Show what `up` would change (a change set, deleted afterwards).
    Plan(plan::PlanArgs),
    /// Create or update the stack through a change set, with live progress.
    Up(up::UpArgs),
    /// Tear the stack down; never deletes data without being told.
    Down(down::DownArgs),
    /// Stack state, every resource, outputs; non-zero when unhealthy.
    Status(StackArgs),
    /// Run a source (replay file, synthetic load, X API) into the stream.
    Produce(produce::ProduceArgs),
    /// Run the processor: stream -> DynamoDB, sharing shards through leases.
    Consume(consume::ConsumeArgs),
    /// Dry run of the processor on a file: the items and dead letters it would write.
    Transform(transform::TransformArgs),
    /// The top hashtags or languages of the last minutes, from the live aggregates.
    Top(top::TopArgs),
    /// A canary tweet through the whole pipeline: stored, archived, no alarm firing.
    Smoke(smoke::SmokeArgs),
    /// The pipeline's CloudWatch figures as terminal charts (or JSON).
    Metrics(metrics::MetricsArgs),
}

/// The stack file and environment a command works on.
#[derive(Debug, Clone, Args)]
pub struct StackArgs {
    /// The stack file.
    #[arg(default_value = "stacks/tweets.yaml")]
    pub stack: PathBuf,
    /// Environment whose overrides apply (default: the base definition; `validate` checks all).
    #[arg(short, long = "env")]
    pub env: Option<String>,
}

pub fn run(cli: Cli) -> u8 {
    let exit = match &cli.command {
        Command::Validate(args) => validate::run(args, cli.output),
        Command::Synth(args) => synth::run(args),
        Command::Schema => schema::run(),
        Command::Plan(args) => plan::run(args, &cli),
        Command::Up(args) => up::run(args, &cli),
        Command::Down(args) => down::run(args, &cli),
        Command::Status(args) => status::run(args, &cli),
        Command::Produce(args) => produce::run(args, &cli),
        Command::Consume(args) => consume::run(args, &cli),
        Command::Transform(args) => transform::run(args, cli.output),
        Command::Top(args) => top::run(args, &cli),
        Command::Smoke(args) => smoke::run(args, &cli),
        Command::Metrics(args) => metrics::run(args, &cli),
    };
    exit as u8
}

/// Whether to color what goes to stderr.
fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

fn print_report(report: &Report, output: Output) {
    match output {
        Output::Text => eprint!("{}", report.render(color())),
        Output::Json => println!(
            "{}",
            serde_json::json!({ "valid": false, "errors": report.to_json() })
        ),
    }
}

/// Loads and resolves a stack for commands that need one; prints what went wrong.
fn load(args: &StackArgs, output: Output) -> Result<Resolved, Exit> {
    spec::load(&args.stack, args.env.as_deref()).map_err(|e| match e {
        LoadError::Read(e) => {
            eprintln!("error: {e}");
            Exit::Invalid
        }
        LoadError::Invalid(report) => {
            print_report(&report, output);
            Exit::Invalid
        }
    })
}

/// Runs an async command on a runtime made for it (offline commands need none).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
        .block_on(future)
}

/// Runs `body` with the stack's AWS clients, on a runtime made for it.
fn with_aws(cli: &Cli, resolved: &Resolved, body: impl AsyncFnOnce(Aws) -> Exit) -> Exit {
    block_on(async {
        match connect(cli, resolved).await {
            Ok(aws) => body(aws).await,
            Err(exit) => exit,
        }
    })
}

/// Connects to AWS for a stack. An environment that targets the emulator
/// must name an endpoint, so it can never reach an AWS account by mistake.
async fn connect(cli: &Cli, resolved: &Resolved) -> Result<Aws, Exit> {
    let aws = Aws::connect(&cli.aws, &resolved.stack.region).await;
    if resolved.stack.target == Target::Emulator && aws.endpoint_url().is_none() {
        eprintln!(
            "error: stack {} targets the emulator, but no endpoint is set: set AWS_ENDPOINT_URL or --endpoint-url (`make up` does)",
            resolved.stack_name()
        );
        return Err(Exit::Invalid);
    }
    Ok(aws)
}

/// The template as CloudFormation receives it, the stack tags, and the resource count.
struct Deployment {
    stack: String,
    body: String,
    tags: Vec<(String, String)>,
    resource_count: usize,
}

fn deployment(resolved: &Resolved) -> Deployment {
    let compiled = template::compile(resolved);
    let resource_count = compiled["Resources"].as_object().map_or(0, |r| r.len());
    let mut tags: Vec<(String, String)> = resolved
        .stack
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    tags.push(("streamstack:stack".into(), resolved.stack_name()));
    Deployment {
        stack: resolved.stack_name(),
        // Compact: CloudFormation counts the bytes of an inline template.
        body: serde_json::to_string(&compiled).expect("a JSON value always serializes"),
        tags,
        resource_count,
    }
}

/// Prints a deploy error and maps it to an exit code.
fn deploy_failed(e: &DeployError) -> Exit {
    eprintln!("error: {e}");
    if e.is_refusal() {
        Exit::Refused
    } else {
        Exit::Failed
    }
}

fn print_outputs(outputs: &std::collections::BTreeMap<String, String>) {
    if outputs.is_empty() {
        return;
    }
    println!("Outputs:");
    let width = outputs.keys().map(String::len).max().unwrap_or(0);
    for (key, value) in outputs {
        println!("  {key:<width$}  {value}");
    }
}

/// The processor's view of a deployed stack: names from the stack file,
/// the archive bucket from the stack's outputs (its name holds the account).
struct Pipeline {
    names: crate::names::Names,
    bucket: String,
    dead_letter_prefix: String,
    shape: crate::processor::read::batch::ItemShape,
    batch: crate::spec::model::BatchSpec,
}

async fn pipeline(aws: &Aws, resolved: &Resolved) -> Result<Pipeline, Exit> {
    let names = crate::names::Names::new(resolved);
    let info = match crate::deploy::stack::describe(&aws.cloudformation(), &names.stack).await {
        Ok(Some(info)) => info,
        Ok(None) => {
            eprintln!(
                "error: stack {} does not exist: run `streamstack up` first",
                names.stack
            );
            return Err(Exit::Failed);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Err(Exit::Failed);
        }
    };
    let Some(bucket) = info
        .outputs
        .get(crate::names::output::ARCHIVE_BUCKET_NAME)
        .cloned()
    else {
        eprintln!(
            "error: stack {} ({}) has no ArchiveBucketName output: is it a streamstack stack, and complete?",
            names.stack, info.status
        );
        return Err(Exit::Failed);
    };
    let table = &resolved.stack.table;
    Ok(Pipeline {
        bucket,
        dead_letter_prefix: resolved.stack.archive.dead_letter_prefix.clone(),
        shape: crate::processor::read::batch::ItemShape {
            partition_key: table.partition_key.clone(),
            ttl: table.ttl_attribute.clone().zip(table.ttl_days),
            aggregates_ttl_days: table.ttl_days.unwrap_or(30),
        },
        batch: resolved.stack.processor.batch.clone(),
        names,
    })
}

/// What the SDK had to retry, for a run's closing lines.
fn calls_line(calls: crate::aws::CallStats) -> String {
    format!(
        "{} AWS calls, {} of their attempts retried (throttling, 5xx, timeouts, dropped connections)",
        calls.calls, calls.sdk_retries
    )
}

/// Cancelled on Ctrl-C or SIGTERM (systemd's stop), for graceful shutdown.
fn shutdown_signal() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler installs");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        t.cancel();
    });
    token
}

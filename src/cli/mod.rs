//! The command line: one file a subcommand. Each returns an [`Exit`] code.

mod consume;
mod down;
mod logs;
mod metrics;
mod plan;
mod produce;
mod schema;
mod smoke;
mod status;
mod synth;
mod test;
mod top;
mod transform;
mod up;
mod validate;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::{AppError, Environment, Severity};
use crate::aws::AwsArgs;
use crate::logging::{LogFormat, LogSettings};
use crate::spec::diagnostic::Report;
use crate::spec::{self, LoadError, Resolved};

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
    /// Log lines: human on a terminal and JSON otherwise (`auto`), or as named.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// More log detail (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors in the log (-v and -q cancel out).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
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
    /// Run the stack files' cases through their transform; exits 1 on a mismatch, with a diff.
    Test(test::TestArgs),
    /// The top values of an aggregate (hashtags, languages, any declared one) over the last minutes.
    Top(top::TopArgs),
    /// A canary tweet through the whole pipeline: stored, archived, no alarm firing.
    Smoke(smoke::SmokeArgs),
    /// The pipeline's CloudWatch figures as terminal charts (or JSON).
    Metrics(metrics::MetricsArgs),
    /// The processor's log lines from CloudWatch Logs (every worker's); `-f` follows.
    Logs(logs::LogsArgs),
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
    // The processor's lines also go to the stack's CloudWatch Logs group:
    // the layer is installed now, inert, and `consume` starts it once it
    // knows the group.
    let (cloudwatch, activator) = crate::logging::cloudwatch::layer();
    crate::logging::init(
        &LogSettings {
            format: cli.log_format,
            verbosity: (cli.verbose.min(10) as i8) - (cli.quiet.min(10) as i8),
            color: color(),
        },
        Some(Box::new(cloudwatch.filtered())),
    );
    let exit = match &cli.command {
        Command::Validate(args) => validate::run(args, cli.output),
        Command::Synth(args) => synth::run(args),
        Command::Schema => schema::run(),
        Command::Plan(args) => plan::run(args, &cli),
        Command::Up(args) => up::run(args, &cli),
        Command::Down(args) => down::run(args, &cli),
        Command::Status(args) => status::run(args, &cli),
        Command::Produce(args) => produce::run(args, &cli),
        Command::Consume(args) => consume::run(args, &cli, activator),
        Command::Transform(args) => transform::run(args, cli.output),
        Command::Test(args) => test::run(args, cli.output),
        Command::Top(args) => top::run(args, &cli),
        Command::Smoke(args) => smoke::run(args, &cli),
        Command::Metrics(args) => metrics::run(args, &cli),
        Command::Logs(args) => logs::run(args, &cli),
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

/// Loads the stack, connects to its environment and runs `body` there, on
/// a runtime made for it; a failure is printed and becomes its exit code.
fn in_environment<T>(
    cli: &Cli,
    args: &StackArgs,
    body: impl AsyncFnOnce(Environment) -> Result<T, AppError>,
) -> Result<T, Exit> {
    let resolved = load(args, cli.output)?;
    block_on(async {
        let env =
            Environment::connect(resolved, &cli.aws, args.stack.clone(), args.env.clone()).await?;
        body(env).await
    })
    .map_err(|e| failed(&e))
}

/// The one place errors become exit codes: prints the error and maps it.
fn failed(e: &AppError) -> Exit {
    eprintln!("error: {e}");
    match e.severity() {
        Severity::Invalid => Exit::Invalid,
        Severity::Refused => Exit::Refused,
        Severity::Failed => Exit::Failed,
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

//! The command line: one file a subcommand. Each returns an [`Exit`] code.

mod schema;
mod synth;
mod validate;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// A runtime failure (I/O, AWS).
    Failed = 2,
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

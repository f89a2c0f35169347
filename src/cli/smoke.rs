//! `streamstack smoke`: a canary through the whole pipeline (see
//! [`crate::app::smoke`]); exit 0 when every check holds, 2 when one does
//! not: a CI gate after a deploy.

use clap::Args;

use super::{Cli, Exit, Output, StackArgs, in_environment};
use crate::app::smoke::{HEARTBEAT_TIMEOUT_S, SmokeReport, Timeouts, check};

#[derive(Debug, Args)]
pub struct SmokeArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Seconds the canary may take to reach DynamoDB.
    #[arg(long, default_value_t = 60)]
    pub table_timeout: u64,
    /// Seconds added to the archive's buffer interval for the canary to reach S3.
    #[arg(long, default_value_t = 60)]
    pub archive_margin: u64,
    /// Seconds to wait for the processor's first heartbeat in CloudWatch.
    #[arg(long, default_value_t = HEARTBEAT_TIMEOUT_S)]
    pub heartbeat_timeout: u64,
}

pub fn run(args: &SmokeArgs, cli: &Cli) -> Exit {
    let timeouts = Timeouts {
        table_s: args.table_timeout,
        archive_margin_s: args.archive_margin,
        heartbeat_s: args.heartbeat_timeout,
    };
    match in_environment(cli, &args.stack, async |env| check(&env, &timeouts).await) {
        Ok(report) => {
            match cli.output {
                Output::Json => println!("{}", report_json(&report)),
                Output::Text => println!("{}", report_text(&report)),
            }
            if report.ok { Exit::Ok } else { Exit::Failed }
        }
        Err(exit) => exit,
    }
}

pub(super) fn report_json(report: &SmokeReport) -> serde_json::Value {
    serde_json::to_value(report).expect("a report serializes")
}

/// The checks, a line each, and the verdict.
pub(super) fn report_text(report: &SmokeReport) -> String {
    let mut text = String::new();
    for c in &report.checks {
        text.push_str(&format!(
            "  {} {:<20} {:>6.1} s  {}\n",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.seconds,
            c.detail
        ));
    }
    text.push_str(&format!(
        "smoke: {}",
        if report.ok { "passed" } else { "FAILED" }
    ));
    text
}

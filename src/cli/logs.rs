//! `streamstack logs`: the processor's log lines from the stack's
//! CloudWatch Logs group, every worker's, in time order; `-f` follows.

use std::time::{Duration, SystemTime};

use clap::Args;
use serde_json::{Value, json};

use super::{Cli, Exit, Output, StackArgs, in_environment, shutdown_signal};
use crate::app::logs;
use crate::logging::cloudwatch::rfc3339;
use crate::logging::read::LogLine;

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// How far back to start (`30s`, `10m`, `2h`, `1d`).
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub since: Duration,
    /// Keep printing new lines until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
    /// At most this many lines (the newest); without --follow.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

pub fn run(args: &LogsArgs, cli: &Cli) -> Exit {
    let since = SystemTime::now() - args.since;
    let output = cli.output;
    let print = |line: &LogLine| match output {
        Output::Json => println!("{}", line_json(line)),
        Output::Text => println!("{}", line_text(line)),
    };
    if args.follow {
        return match in_environment(cli, &args.stack, async |env| {
            logs::follow(&env, since, shutdown_signal(), print).await
        }) {
            Ok(()) => Exit::Ok,
            Err(exit) => exit,
        };
    }
    let report = match in_environment(cli, &args.stack, async |env| {
        logs::fetch(&env, since, args.limit).await
    }) {
        Ok(report) => report,
        Err(exit) => return exit,
    };
    match output {
        Output::Json => println!(
            "{}",
            json!({
                "stack": report.stack,
                "log_group": report.log_group,
                "lines": report.lines.iter().map(line_json).collect::<Vec<_>>(),
            })
        ),
        Output::Text => {
            for line in &report.lines {
                println!("{}", line_text(line));
            }
            if report.lines.is_empty() {
                eprintln!(
                    "no log lines in {} in the last {}",
                    report.log_group,
                    humantime::format_duration(args.since)
                );
            }
        }
    }
    Exit::Ok
}

/// A line as JSON: time, stream, level, message, the other fields.
pub fn line_json(line: &LogLine) -> Value {
    json!({
        "time": rfc3339(line.time_ms),
        "stream": line.stream,
        "level": line.level(),
        "message": line.message(),
        "fields": line.extra_fields(),
    })
}

/// A human line: `time stream level message key=value...`.
pub fn line_text(line: &LogLine) -> String {
    let mut text = format!(
        "{} {} {:<5} {}",
        rfc3339(line.time_ms),
        line.stream,
        line.level().unwrap_or("-"),
        line.message()
    );
    text.push_str(&fields_text(&line.extra_fields()));
    text
}

/// ` key=value` for each field; strings quoted.
pub(super) fn fields_text(fields: &serde_json::Map<String, Value>) -> String {
    let mut text = String::new();
    for (k, v) in fields {
        match v {
            Value::String(s) => text.push_str(&format!(" {k}={s:?}")),
            other => text.push_str(&format!(" {k}={other}")),
        }
    }
    text
}

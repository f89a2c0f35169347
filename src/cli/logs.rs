//! `streamstack logs`: the processor's log lines from the stack's
//! CloudWatch Logs group, every worker's, in time order; `-f` follows.

use std::time::{Duration, SystemTime};

use clap::Args;
use serde_json::{Value, json};

use super::{Cli, Exit, Output, StackArgs, load, shutdown_signal, with_aws};
use crate::logging::cloudwatch::rfc3339;
use crate::logging::read::{self, LogLine};
use crate::names::Names;

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

/// How often `--follow` asks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

pub fn run(args: &LogsArgs, cli: &Cli) -> Exit {
    let resolved = match load(&args.stack, cli.output) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let names = Names::new(&resolved);
    let group = names.processor_log_group.clone();
    let since = SystemTime::now() - args.since;
    let output = cli.output;
    with_aws(cli, &resolved, async |aws| {
        let client = aws.logs();
        let result = if args.follow {
            let stop = shutdown_signal();
            read::follow(
                client,
                &group,
                since,
                FOLLOW_EVERY,
                stop,
                |line| match output {
                    Output::Json => println!("{}", line_json(line)),
                    Output::Text => println!("{}", line_text(line)),
                },
            )
            .await
        } else {
            read::fetch(&client, &group, since, None, args.limit)
                .await
                .map(|lines| match output {
                    Output::Json => println!(
                        "{}",
                        json!({
                            "stack": names.stack,
                            "log_group": group,
                            "lines": lines.iter().map(line_json).collect::<Vec<_>>(),
                        })
                    ),
                    Output::Text => {
                        for line in &lines {
                            println!("{}", line_text(line));
                        }
                        if lines.is_empty() {
                            eprintln!(
                                "no log lines in {group} in the last {}",
                                humantime::format_duration(args.since)
                            );
                        }
                    }
                })
        };
        match result {
            Ok(()) => Exit::Ok,
            // A missing log group says why and what to do (see ReadError::NoLogGroup).
            Err(e) => {
                eprintln!("error: {e}");
                Exit::Failed
            }
        }
    })
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
    for (k, v) in line.extra_fields() {
        match v {
            Value::String(s) => text.push_str(&format!(" {k}={s:?}")),
            other => text.push_str(&format!(" {k}={other}")),
        }
    }
    text
}

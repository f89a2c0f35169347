//! `streamstack transform FILE [--stack STACK [-e ENV]]`: the dry run of
//! the processor on a file. Each line is taken as one Kinesis record;
//! prints the items it would write (NDJSON on stdout), the dead letters
//! with their line and reason (stderr) and a summary line (stderr), or one
//! JSON document with `--output json`. No AWS call.

use std::io::{BufRead, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use serde_json::json;

use super::{Exit, Output, failed, load};
use crate::app::transform::{dry_run, program};
use crate::processor::read::item;

#[derive(Debug, Args)]
pub struct TransformArgs {
    /// NDJSON file, one record a line (`-` for stdin): what the stack's transform reads; without --stack, X API v2 pages or stream messages, v1.1 statuses.
    pub file: PathBuf,
    /// The stack file whose transform, aggregates and table to use (default: the built-in tweet transform).
    #[arg(long)]
    pub stack: Option<PathBuf>,
    /// Environment of the stack file.
    #[arg(long, short = 'e', requires = "stack")]
    pub env: Option<String>,
    /// Without --stack: the items' partition key attribute.
    #[arg(long, default_value = "tweet_id", conflicts_with = "stack")]
    pub partition_key: String,
    /// Print only the summary (counts), not the items.
    #[arg(long)]
    pub summary: bool,
}

pub fn run(args: &TransformArgs, output: Output) -> Exit {
    let resolved = match &args.stack {
        Some(stack) => match load(
            &super::StackArgs {
                stack: stack.clone(),
                env: args.env.clone(),
            },
            output,
        ) {
            Ok(resolved) => Some(resolved),
            Err(exit) => return exit,
        },
        None => None,
    };
    let program = match program(resolved.as_ref(), &args.partition_key) {
        Ok(program) => program,
        Err(e) => return failed(&e),
    };
    let reader: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(&args.file) {
            Ok(f) => Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
            Err(e) => {
                eprintln!("error: reading {}: {e}", args.file.display());
                return Exit::Invalid;
            }
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut items = Vec::new();
    let mut dead_letters = Vec::new();
    let summary = dry_run(reader, &program, now, |plan| {
        for d in &plan.dead_letters {
            let at = d
                .index
                .map(|i| format!(", event {i} of the record"))
                .unwrap_or_default();
            match output {
                Output::Text => eprintln!(
                    "dead letter: line {}{at}: {} ({})",
                    d.sequence_number, d.error, d.reason
                ),
                Output::Json => dead_letters.push(json!({
                    "line": d.sequence_number.parse::<u64>().unwrap_or(0), "index": d.index,
                    "reason": d.reason, "error": d.error,
                })),
            }
        }
        if !args.summary {
            for planned in plan.items.values() {
                match output {
                    Output::Text => {
                        let written = writeln!(out, "{}", item::to_json_text(planned));
                        if written.is_err() {
                            // stdout closed (a pipe into `head`): stop quietly.
                            return ControlFlow::Break(());
                        }
                    }
                    Output::Json => items.push(item::to_json(planned)),
                }
            }
        }
        ControlFlow::Continue(())
    });
    let summary = match summary {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("error: {}: {e}", args.file.display());
            return Exit::Failed;
        }
    };
    match output {
        Output::Text => {
            let _ = out.flush();
            eprintln!(
                "transform: {} lines, {} events, {} items, {} dead letters, {} keep-alives",
                summary.lines,
                summary.events,
                summary.items,
                summary.dead_letters,
                summary.heartbeats
            );
        }
        Output::Json => {
            let doc = json!({ "summary": summary, "items": items, "dead_letters": dead_letters });
            let _ = writeln!(out, "{doc}");
        }
    }
    Exit::Ok
}

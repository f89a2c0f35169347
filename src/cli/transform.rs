//! `streamstack transform FILE`: the dry run of the processor on a file.
//! Each line is taken as one Kinesis record; prints the tweet items it would
//! write (NDJSON on stdout) and the dead letters with their line and reason
//! (stderr), or one JSON document with `--output json`. No AWS call.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use serde_json::json;

use super::{Exit, Output};
use crate::processor::read::batch::{self, InRecord, ItemShape};

#[derive(Debug, Args)]
pub struct TransformArgs {
    /// NDJSON file: X API v2 pages or stream messages, v1.1 statuses; `-` for stdin.
    pub file: PathBuf,
    /// The tweets table's partition key attribute.
    #[arg(long, default_value = "tweet_id")]
    pub partition_key: String,
    /// Print only the summary (counts), not the items.
    #[arg(long)]
    pub summary: bool,
}

/// Lines and bytes planned at once: bounds memory on any file size.
const CHUNK_LINES: usize = 1024;
const CHUNK_BYTES: usize = 4 << 20;

pub fn run(args: &TransformArgs, output: Output) -> Exit {
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
    let shape = ItemShape {
        partition_key: args.partition_key.clone(),
        ..ItemShape::default()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let (mut lines_read, mut bytes) = (0u64, 0u64);
    let (mut tweets, mut dead, mut heartbeats) = (0u64, 0u64, 0u64);
    let mut items = Vec::new();
    let mut dead_letters = Vec::new();
    let mut chunk: Vec<(String, Vec<u8>)> = Vec::with_capacity(CHUNK_LINES);
    let mut chunk_bytes = 0;
    let mut split = reader.split(b'\n');
    loop {
        let line = split.next();
        let at_end = line.is_none();
        if let Some(line) = line {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: reading {}: {e}", args.file.display());
                    return Exit::Failed;
                }
            };
            lines_read += 1;
            bytes += line.len() as u64 + 1;
            chunk_bytes += line.len();
            chunk.push((lines_read.to_string(), line));
            if chunk.len() < CHUNK_LINES && chunk_bytes < CHUNK_BYTES {
                continue;
            }
        }
        if chunk.is_empty() {
            break;
        }
        let records: Vec<InRecord<'_>> = chunk
            .iter()
            .map(|(n, data)| InRecord {
                shard_id: "file",
                sequence_number: n,
                partition_key: "",
                data,
            })
            .collect();
        let plan = batch::plan(&records, &shape, now);
        heartbeats += plan.heartbeats as u64;
        dead += plan.dead_letters.len() as u64;
        tweets += plan.tweets.len() as u64;
        for d in &plan.dead_letters {
            let at = d
                .index
                .map(|i| format!(", tweet {i} of the page"))
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
            for item in plan.tweets.values() {
                match output {
                    Output::Text => {
                        let written = serde_json::to_writer(&mut out, item)
                            .map_err(std::io::Error::from)
                            .and_then(|()| out.write_all(b"\n"));
                        if written.is_err() {
                            // stdout closed (a pipe into `head`): stop quietly.
                            return Exit::Ok;
                        }
                    }
                    Output::Json => items.push(serde_json::Value::Object(item.clone())),
                }
            }
        }
        chunk.clear();
        chunk_bytes = 0;
        if at_end {
            break;
        }
    }
    let summary = json!({
        "lines": lines_read, "bytes": bytes, "tweets": tweets,
        "dead_letters": dead, "heartbeats": heartbeats,
    });
    match output {
        Output::Text => {
            let _ = out.flush();
            eprintln!(
                "transform: {lines_read} lines, {tweets} tweets, {dead} dead letters, {heartbeats} keep-alives"
            );
        }
        Output::Json => {
            let doc = json!({ "summary": summary, "items": items, "dead_letters": dead_letters });
            let _ = writeln!(out, "{doc}");
        }
    }
    Exit::Ok
}

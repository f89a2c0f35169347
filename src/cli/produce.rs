//! `streamstack produce`: run a source into the stack's stream: the stack
//! file's `processor.source` by default, or a replay file or synthetic load
//! named on the command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::{Cli, Exit, Output, StackArgs, calls_line, load, shutdown_signal, with_aws};
use crate::aws::call_stats;
use crate::names::Names;
use crate::processor::write::producer::{self, ProducerConfig, ProducerStats};
use crate::processor::write::source::replay::{self, ReplayConfig};
use crate::processor::write::source::synthetic::{self, SyntheticConfig};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Replay this NDJSON file (X API v2 pages or messages, v1.1 statuses).
    #[arg(long, value_name = "FILE", conflicts_with = "synthetic")]
    pub replay: Option<PathBuf>,
    /// Generate realistic tweets.
    #[arg(long)]
    pub synthetic: bool,
    /// Records a second (default: the stack file's, else as fast as the stream takes them).
    #[arg(long, value_name = "N")]
    pub rate: Option<u32>,
    /// Replay the file again and again (until Ctrl-C or --count).
    #[arg(long = "loop")]
    pub repeat: bool,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Seed of the synthetic generator (the same seed, the same tweets).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First tweet id of the synthetic generator.
    #[arg(long, default_value_t = 1_900_000_000_000_000_000)]
    pub first_id: u64,
}

enum Source {
    Replay(ReplayConfig),
    Synthetic(SyntheticConfig),
    XApi(crate::spec::model::XApiSource),
}

pub fn run(args: &ProduceArgs, cli: &Cli) -> Exit {
    let resolved = match load(&args.stack, cli.output) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let configured = resolved.stack.processor.source.clone().unwrap_or_default();
    let source = if let Some(file) = &args.replay {
        Source::Replay(ReplayConfig {
            file: file.clone(),
            rate_per_s: args.rate,
            repeat: args.repeat,
            limit: args.count,
        })
    } else if args.synthetic {
        Source::Synthetic(SyntheticConfig {
            rate_per_s: args.rate.or(configured.synthetic.map(|s| s.rate_per_s)),
            count: args.count,
            seed: args.seed,
            first_id: args.first_id,
        })
    } else if let Some(r) = configured.replay {
        Source::Replay(ReplayConfig {
            file: r.file.into(),
            rate_per_s: args.rate.or(r.rate_per_s),
            repeat: args.repeat || r.repeat,
            limit: args.count,
        })
    } else if let Some(s) = configured.synthetic {
        Source::Synthetic(SyntheticConfig {
            rate_per_s: args.rate.or(Some(s.rate_per_s)),
            count: args.count,
            seed: args.seed,
            first_id: args.first_id,
        })
    } else if let Some(x) = configured.x_api {
        Source::XApi(x)
    } else {
        eprintln!(
            "error: {} has no processor.source: name one with --replay FILE or --synthetic",
            args.stack.stack.display()
        );
        return Exit::Invalid;
    };
    with_aws(cli, &resolved, async |aws| {
        let names = Names::new(&resolved);
        let mut config = ProducerConfig::new(&names.stream);
        config.batch_records = resolved.stack.processor.batch.put_records as usize;
        let stats = Arc::new(ProducerStats::default());
        let (tx, rx) = producer::channel(&config);
        let producer = tokio::spawn(producer::run(aws.kinesis(), config, rx, stats.clone()));
        let cancel = shutdown_signal();
        let progress = {
            let stats = stats.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    eprintln!("{}", stats.snapshot().line());
                }
            })
        };
        eprintln!("produce: into stream {}", names.stream);
        let source_result: Result<(), String> = match source {
            Source::Replay(c) => replay::run(&c, tx, cancel)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Source::Synthetic(c) => {
                synthetic::run(&c, tx, cancel).await;
                Ok(())
            }
            Source::XApi(x) => {
                let options = crate::processor::write::source::x_api::StreamOptions::default();
                match crate::processor::write::source::x_api::run(
                    &x,
                    &aws.ssm(),
                    tx,
                    cancel,
                    options,
                )
                .await
                {
                    Ok(report) => {
                        if let Some(rules) = &report.rules {
                            eprintln!("produce: X API rules: {rules:?}");
                        }
                        eprintln!("produce: X API stream: {:?}", report.stats);
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        // The source is done (or failed): what it handed over is still sent.
        let producer_result = producer.await.expect("the producer task does not panic");
        progress.abort();
        let snapshot = stats.snapshot();
        match cli.output {
            Output::Json => println!(
                "{}",
                json!({ "stream": names.stream, "producer": snapshot, "aws_calls": call_stats() })
            ),
            Output::Text => {
                eprintln!("{}", snapshot.line());
                eprintln!("produce: {}", calls_line(call_stats()));
            }
        }
        if let Err(e) = source_result {
            eprintln!("error: {e}");
            return Exit::Failed;
        }
        if let Err(e) = producer_result {
            eprintln!("error: {e}");
            return Exit::Failed;
        }
        if snapshot.failed > 0 {
            eprintln!("error: {} record(s) could not be sent", snapshot.failed);
            return Exit::Failed;
        }
        Exit::Ok
    })
}

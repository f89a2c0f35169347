//! `produce`: a source (the stack file's, or a replay file or synthetic
//! load named on the command line) into the stack's stream.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{AppError, Environment};
use crate::aws::{CallStats, call_stats};
use crate::processor::write::producer::{self, ProducerConfig, ProducerSnapshot, ProducerStats};
use crate::processor::write::source::replay::{self, ReplayConfig};
use crate::processor::write::source::synthetic::{self, SyntheticConfig};
use crate::spec::Resolved;

/// What the command line says of the source; unset fields come from the stack file.
#[derive(Debug, Clone, Default)]
pub struct SourceOverrides {
    pub replay: Option<PathBuf>,
    pub synthetic: bool,
    pub rate: Option<u32>,
    pub repeat: bool,
    pub count: Option<u64>,
    pub seed: u64,
    pub first_id: u64,
}

/// The source a run uses.
pub enum Source {
    Replay(ReplayConfig),
    Synthetic(SyntheticConfig),
    XApi(crate::spec::model::XApiSource),
}

/// The source: the command line's, else the stack file's.
pub fn choose_source(resolved: &Resolved, overrides: &SourceOverrides) -> Result<Source, AppError> {
    let configured = resolved.stack.processor.source.clone().unwrap_or_default();
    let source = if let Some(file) = &overrides.replay {
        Source::Replay(ReplayConfig {
            file: file.clone(),
            rate_per_s: overrides.rate,
            repeat: overrides.repeat,
            limit: overrides.count,
        })
    } else if overrides.synthetic {
        Source::Synthetic(SyntheticConfig {
            rate_per_s: overrides
                .rate
                .or(configured.synthetic.map(|s| s.rate_per_s)),
            count: overrides.count,
            seed: overrides.seed,
            first_id: overrides.first_id,
        })
    } else if let Some(r) = configured.replay {
        Source::Replay(ReplayConfig {
            file: r.file.into(),
            rate_per_s: overrides.rate.or(r.rate_per_s),
            repeat: overrides.repeat || r.repeat,
            limit: overrides.count,
        })
    } else if let Some(s) = configured.synthetic {
        Source::Synthetic(SyntheticConfig {
            rate_per_s: overrides.rate.or(Some(s.rate_per_s)),
            count: overrides.count,
            seed: overrides.seed,
            first_id: overrides.first_id,
        })
    } else if let Some(x) = configured.x_api {
        Source::XApi(x)
    } else {
        return Err(AppError::Invalid(format!(
            "{} has no processor.source: name one with --replay FILE or --synthetic",
            resolved.stack_name()
        )));
    };
    Ok(source)
}

/// What a run sent, and what failed.
#[derive(Debug)]
pub struct ProduceReport {
    pub stream: String,
    pub producer: ProducerSnapshot,
    pub aws_calls: CallStats,
    /// The source failed (after what it handed over was sent).
    pub source_error: Option<String>,
    /// The producer failed.
    pub producer_error: Option<String>,
}

impl ProduceReport {
    /// Every record read was sent, and nothing failed.
    pub fn ok(&self) -> bool {
        self.source_error.is_none() && self.producer_error.is_none() && self.producer.failed == 0
    }
}

/// Runs `source` into the stream until it ends or `cancel`; what the source
/// handed over is still sent.
pub async fn produce(
    env: &Environment,
    source: Source,
    cancel: CancellationToken,
) -> Result<ProduceReport, AppError> {
    let names = &env.names;
    let aws = &env.aws;
    let mut config = ProducerConfig::new(&names.stream);
    config.batch_records = env.resolved.stack.processor.batch.put_records as usize;
    let stats = Arc::new(ProducerStats::default());
    let (tx, rx) = producer::channel(&config);
    let producer = tokio::spawn(producer::run(aws.kinesis(), config, rx, stats.clone()));
    let progress = {
        let stats = stats.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let s = stats.snapshot();
                tracing::info!(sent = s.sent, failed = s.failed, "{}", s.line());
            }
        })
    };
    tracing::info!(stream = %names.stream, "produce: into stream {}", names.stream);
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
            match crate::processor::write::source::x_api::run(&x, &aws.ssm(), tx, cancel, options)
                .await
            {
                Ok(report) => {
                    if let Some(rules) = &report.rules {
                        tracing::info!("produce: X API rules: {rules:?}");
                    }
                    tracing::info!("produce: X API stream: {:?}", report.stats);
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        }
    };
    // The source is done (or failed): what it handed over is still sent.
    let producer_result = producer.await.expect("the producer task does not panic");
    progress.abort();
    Ok(ProduceReport {
        stream: names.stream.clone(),
        producer: stats.snapshot(),
        aws_calls: call_stats(),
        source_error: source_result.err(),
        producer_error: producer_result.err().map(|e| e.to_string()),
    })
}

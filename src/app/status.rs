//! `status`: the stack, every resource, the outputs, the alarms, the
//! processor's heartbeat and each shard's lag, with a verdict.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{AppError, Environment, smoke_watch};
use crate::deploy::local_processor::{self, LocalProcessor};
use crate::deploy::stack::{self, Resource, is_healthy};
use crate::logging::read::{LogLine, last_errors};
use crate::names::Names;
use crate::names::metrics as metric;

/// What `status` found. `healthy` is the verdict.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub stack: String,
    pub exists: bool,
    pub healthy: bool,
    pub status: Option<String>,
    pub reason: Option<String>,
    #[serde(serialize_with = "resources_json")]
    pub resources: Vec<Resource>,
    pub outputs: BTreeMap<String, String>,
    /// The local processor (on the emulator only).
    pub processor: Option<LocalProcessor>,
    /// Every alarm of the stack, with its state.
    #[serde(serialize_with = "alarms_json")]
    pub alarms: Vec<(String, String)>,
    pub heartbeat_age_s: Option<f64>,
    /// Whether the heartbeat is recent enough (none yet is not a failure).
    #[serde(skip)]
    pub heartbeat_ok: bool,
    pub shards: Vec<ShardView>,
    pub problems: Vec<String>,
    /// The last error line of each worker in the last hour, from the
    /// processor's CloudWatch Logs group.
    pub worker_errors: Vec<WorkerError>,
    /// What could not be read, said and left out of the verdict.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

fn resources_json<S: serde::Serializer>(r: &[Resource], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(r.len()))?;
    for r in r {
        seq.serialize_element(&serde_json::json!({
            "logical_id": r.logical_id, "type": r.resource_type, "physical_id": r.physical_id,
            "status": r.status, "reason": r.reason,
        }))?;
    }
    seq.end()
}

fn alarms_json<S: serde::Serializer>(a: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(a.len()))?;
    for (name, state) in a {
        seq.serialize_element(&serde_json::json!({ "name": name, "state": state }))?;
    }
    seq.end()
}

/// A worker's last error line.
#[derive(Debug, Serialize)]
pub struct WorkerError {
    /// The worker's log stream.
    pub worker: String,
    /// When, in ms since the epoch.
    pub time_ms: i64,
    pub message: String,
}

/// How far back `status` looks for workers' errors.
const ERRORS_SINCE: std::time::Duration = std::time::Duration::from_secs(3600);

impl StatusReport {
    /// The alarms in ALARM.
    pub fn alarming(&self) -> impl Iterator<Item = &String> {
        self.alarms
            .iter()
            .filter(|(_, state)| state == "ALARM")
            .map(|(name, _)| name)
    }
}

pub async fn status(env: &Environment) -> Result<StatusReport, AppError> {
    let (aws, resolved) = (&env.aws, &env.resolved);
    let cfn = aws.cloudformation();
    let name = env.stack().to_string();
    let Some(info) = stack::describe(&cfn, &name).await? else {
        return Ok(StatusReport {
            stack: name,
            exists: false,
            healthy: false,
            status: None,
            reason: None,
            resources: Vec::new(),
            outputs: BTreeMap::new(),
            processor: None,
            alarms: Vec::new(),
            heartbeat_age_s: None,
            heartbeat_ok: false,
            shards: Vec::new(),
            problems: Vec::new(),
            worker_errors: Vec::new(),
            warnings: Vec::new(),
        });
    };
    let resources = stack::resources(&cfn, &info.id).await?;
    // Exactly this stack's alarms: `tweets` must not show `tweets-prod`'s.
    let alarm_names = smoke_watch::alarm_names(&env.template());
    let alarms: Vec<(String, String)> = smoke_watch::alarm_states(aws, &alarm_names)
        .await?
        .into_iter()
        .map(|a| (a.name, a.state))
        .collect();
    let processor = env.is_local().then(|| local_processor::inspect(&name));
    let mut warnings = Vec::new();
    let shards = shard_views(env, &env.names).await.unwrap_or_else(|e| {
        warnings.push(e.to_string());
        Vec::new()
    });
    let heartbeat_age = heartbeat_age_s(aws, &env.names.stack)
        .await
        .unwrap_or_else(|e| {
            warnings.push(e.to_string());
            None
        });
    let worker_errors = match last_errors(
        &aws.logs(),
        &env.names.processor_log_group,
        std::time::SystemTime::now() - ERRORS_SINCE,
    )
    .await
    {
        Ok(errors) => errors
            .into_values()
            .map(|line| WorkerError {
                message: error_text(&line),
                worker: line.stream,
                time_ms: line.time_ms,
            })
            .collect(),
        Err(e) => {
            warnings.push(e.to_string());
            Vec::new()
        }
    };
    // No heartbeat yet (a processor that just started) is not a failure; a stale one is.
    let heartbeat_ok =
        heartbeat_age.is_none_or(|age| age <= resolved.stack.alarms.heartbeat_s as f64);
    let problems: Vec<String> = shards
        .iter()
        .filter_map(|s| s.problem(resolved.stack.alarms.iterator_age_s))
        .collect();
    let healthy = is_healthy(&info.status)
        && resources.iter().all(|r| r.status.ends_with("_COMPLETE"))
        && processor.as_ref().is_none_or(|p| p.running)
        && alarms.iter().all(|(_, state)| state != "ALARM")
        && heartbeat_ok
        && problems.is_empty();
    Ok(StatusReport {
        stack: name,
        exists: true,
        healthy,
        status: Some(info.status),
        reason: info.reason,
        resources,
        outputs: info.outputs,
        processor,
        alarms,
        heartbeat_age_s: heartbeat_age,
        heartbeat_ok,
        shards,
        problems,
        worker_errors,
        warnings,
    })
}

/// A shard as the processor sees it: who reads it, how far behind it is.
#[derive(Debug, serde::Serialize)]
pub struct ShardView {
    pub shard_id: String,
    pub owner: Option<String>,
    pub finished: bool,
    pub checkpoint_age_s: Option<f64>,
    /// How long the oldest record after the checkpoint has waited, or what
    /// Kinesis says of it, whichever is larger (None: nothing unread).
    pub millis_behind: Option<i64>,
    /// Since when its reader has been retrying the same work, and why.
    pub stalled_for_s: Option<f64>,
    pub last_error: Option<String>,
}

impl ShardView {
    /// What is wrong with the shard, if anything: a stalled reader, or
    /// records waiting longer than the iterator-age alarm allows.
    pub fn problem(&self, max_lag_s: u64) -> Option<String> {
        if let Some(stalled) = self.stalled_for_s {
            return Some(format!(
                "shard {} is STALLED: its reader has retried the same work for {stalled:.0} s; last error: {}",
                self.shard_id,
                self.last_error.as_deref().unwrap_or("unknown")
            ));
        }
        match self.millis_behind {
            Some(ms) if ms > max_lag_s as i64 * 1000 => Some(format!(
                "shard {}: records have waited {:.0} s behind the checkpoint (alarm threshold {max_lag_s} s){}",
                self.shard_id,
                ms as f64 / 1000.0,
                if self.owner.is_none() {
                    "; no worker holds it"
                } else {
                    ""
                }
            )),
            _ => None,
        }
    }
}

/// The error's message and its `error` field, when it has one.
fn error_text(line: &LogLine) -> String {
    match line.fields.as_ref().and_then(|f| f.get("error")) {
        Some(serde_json::Value::String(e)) => format!("{}: {e}", line.message()),
        Some(e) => format!("{}: {e}", line.message()),
        None => line.message().to_string(),
    }
}

async fn shard_views(
    env: &Environment,
    names: &Names,
) -> Result<Vec<ShardView>, crate::aws::AwsError> {
    let aws = &env.aws;
    use crate::processor::read::consumer::backlog::behind_checkpoint;
    let table = crate::processor::read::consumer::lease::LeaseTable::new(
        aws.dynamodb(),
        &names.lease_table,
        "status",
    );
    let now_ms = crate::processor::read::consumer::lease::now_ms() as i64;
    let mut views = Vec::new();
    for lease in table.scan().await? {
        let backlog = behind_checkpoint(
            &aws.kinesis(),
            &names.stream,
            &lease.shard_id,
            lease.checkpoint.as_deref(),
            1,
            5,
        )
        .await?;
        views.push(ShardView {
            checkpoint_age_s: lease
                .checkpointed_at
                .map(|at| (now_ms - at) as f64 / 1000.0),
            finished: lease.finished(),
            millis_behind: backlog.lag_ms(now_ms),
            stalled_for_s: lease
                .stalled_since
                .map(|since| (now_ms - since).max(0) as f64 / 1000.0),
            last_error: lease.last_error,
            owner: lease.owner,
            shard_id: lease.shard_id,
        });
    }
    Ok(views)
}

/// Seconds since the processor's newest heartbeat, if it sent one in the last 15 minutes.
async fn heartbeat_age_s(
    aws: &crate::aws::Aws,
    stack: &str,
) -> Result<Option<f64>, crate::aws::AwsError> {
    use crate::aws::ResultExt;
    let now = std::time::SystemTime::now();
    let out = aws
        .cloudwatch()
        .get_metric_statistics()
        .namespace(metric::NAMESPACE)
        .metric_name(metric::HEARTBEAT)
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name(metric::STACK_DIMENSION)
                .value(stack)
                .build(),
        )
        .start_time((now - std::time::Duration::from_secs(900)).into())
        .end_time(now.into())
        .period(60)
        .statistics(aws_sdk_cloudwatch::types::Statistic::Sum)
        .send()
        .await
        .aws(format!("reading the processor heartbeat of {stack}"))?;
    let now_s = aws_smithy_types::DateTime::from(now).secs();
    Ok(out
        .datapoints()
        .iter()
        .filter_map(|d| d.timestamp().map(|t| t.secs()))
        .max()
        .map(|newest| (now_s - newest).max(0) as f64))
}

//! `streamstack status`: the stack, every resource, the outputs.

use serde_json::json;

use super::{Cli, Exit, Output, StackArgs, load, print_outputs, with_aws};
use crate::deploy::stack::{self, is_healthy};

pub fn run(args: &StackArgs, cli: &Cli) -> Exit {
    let resolved = match load(args, cli.output) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    with_aws(cli, &resolved, async |aws| {
        let cfn = aws.cloudformation();
        let name = resolved.stack_name();
        let info = match stack::describe(&cfn, &name).await {
            Ok(Some(info)) => info,
            Ok(None) => {
                match cli.output {
                    Output::Json => println!(
                        "{}",
                        json!({ "stack": name, "exists": false, "healthy": false })
                    ),
                    Output::Text => println!("{name}: does not exist (run `streamstack up`)"),
                }
                return Exit::Failed;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Failed;
            }
        };
        let resources = match stack::resources(&cfn, &info.id).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Failed;
            }
        };
        // Exactly this stack's alarms: `tweets` must not show `tweets-prod`'s.
        let alarm_names = super::smoke_watch::alarm_names(&crate::template::compile(&resolved));
        let alarms = match super::smoke_watch::alarm_states(&aws, &alarm_names).await {
            Ok(a) => a
                .into_iter()
                .map(|a| (a.name, a.state))
                .collect::<Vec<(String, String)>>(),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Failed;
            }
        };
        let alarming: Vec<&String> = alarms
            .iter()
            .filter(|(_, state)| state == "ALARM")
            .map(|(name, _)| name)
            .collect();
        let processor = (resolved.stack.target == crate::spec::model::Target::Emulator)
            .then(|| crate::deploy::local_processor::inspect(&name));
        let names = crate::names::Names::new(&resolved);
        let shards = shard_views(&aws, &names).await.unwrap_or_else(|e| {
            eprintln!("warning: {e}");
            Vec::new()
        });
        let heartbeat_age = heartbeat_age_s(&aws, &names.stack)
            .await
            .unwrap_or_else(|e| {
                eprintln!("warning: {e}");
                None
            });
        // No heartbeat yet (a processor that just started) is not a failure; a stale one is.
        let heartbeat_ok =
            heartbeat_age.is_none_or(|age| age <= resolved.stack.alarms.heartbeat_s as f64);
        let shard_problems: Vec<String> = shards
            .iter()
            .filter_map(|s| s.problem(resolved.stack.alarms.iterator_age_s))
            .collect();
        let healthy = is_healthy(&info.status)
            && resources.iter().all(|r| r.status.ends_with("_COMPLETE"))
            && processor.as_ref().is_none_or(|p| p.running)
            && alarming.is_empty()
            && heartbeat_ok
            && shard_problems.is_empty();
        match cli.output {
            Output::Json => println!(
                "{}",
                json!({
                    "stack": name, "exists": true, "healthy": healthy, "status": info.status, "reason": info.reason,
                    "resources": resources.iter().map(|r| json!({
                        "logical_id": r.logical_id, "type": r.resource_type, "physical_id": r.physical_id,
                        "status": r.status, "reason": r.reason,
                    })).collect::<Vec<_>>(),
                    "outputs": info.outputs,
                    "processor": processor,
                    "alarms": alarms.iter().map(|(n, s)| json!({ "name": n, "state": s })).collect::<Vec<_>>(),
                    "heartbeat_age_s": heartbeat_age,
                    "shards": shards,
                    "problems": shard_problems,
                })
            ),
            Output::Text => {
                let reason = info
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                println!("{name}: {}{reason}", info.status);
                for r in &resources {
                    let why = r
                        .reason
                        .as_deref()
                        .filter(|_| !r.status.ends_with("_COMPLETE"))
                        .map(|w| format!(": {w}"))
                        .unwrap_or_default();
                    println!(
                        "  {:<32} {:<40} {:<20} {}{why}",
                        r.logical_id,
                        r.resource_type,
                        r.status,
                        r.physical_id.as_deref().unwrap_or("-")
                    );
                }
                print_outputs(&info.outputs);
                if let Some(p) = &processor {
                    match (p.running, p.pid) {
                        (true, Some(pid)) => println!(
                            "processor: running locally (pid {pid}), log {}",
                            p.log.display()
                        ),
                        _ => println!(
                            "processor: NOT running (run `streamstack up`), log {}",
                            p.log.display()
                        ),
                    }
                    if let Some(line) = &p.last_line {
                        println!("  last: {line}");
                    }
                }
                let mut counts = std::collections::BTreeMap::new();
                for (_, state) in &alarms {
                    *counts.entry(state.as_str()).or_insert(0) += 1;
                }
                let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
                println!(
                    "alarms: {}",
                    if summary.is_empty() {
                        "none".into()
                    } else {
                        summary.join(", ")
                    }
                );
                for a in &alarming {
                    println!("  IN ALARM: {a}");
                }
                match heartbeat_age {
                    Some(age) => println!(
                        "processor heartbeat: {age:.0} s ago{}",
                        if heartbeat_ok {
                            ""
                        } else {
                            " (STALE: the processor is down or cannot publish)"
                        }
                    ),
                    None => println!("processor heartbeat: none in the last 15 minutes"),
                }
                for sh in &shards {
                    let lag = match (sh.finished, sh.millis_behind, sh.stalled_for_s) {
                        (true, _, _) => "read to its end".to_string(),
                        (false, _, Some(_)) => "STALLED".to_string(),
                        (false, Some(ms), None) => format!("{ms} ms behind"),
                        (false, None, None) => "all read".to_string(),
                    };
                    let checkpoint = sh
                        .checkpoint_age_s
                        .map(|a| format!("checkpoint {a:.0} s ago"))
                        .unwrap_or_else(|| "no checkpoint yet".into());
                    println!(
                        "  {:<24} {:<12} {checkpoint:<24} {}",
                        sh.shard_id,
                        lag,
                        sh.owner.as_deref().unwrap_or("(no worker holds it)")
                    );
                }
                for problem in &shard_problems {
                    println!("  {problem}");
                }
                println!(
                    "verdict: {}",
                    if healthy { "healthy" } else { "NOT healthy" }
                );
            }
        }
        if healthy { Exit::Ok } else { Exit::Failed }
    })
}

/// A shard as the processor sees it: who reads it, how far behind it is.
#[derive(Debug, serde::Serialize)]
struct ShardView {
    shard_id: String,
    owner: Option<String>,
    finished: bool,
    checkpoint_age_s: Option<f64>,
    /// How long the oldest record after the checkpoint has waited, or what
    /// Kinesis says of it, whichever is larger (None: nothing unread).
    millis_behind: Option<i64>,
    /// Since when its reader has been retrying the same work, and why.
    stalled_for_s: Option<f64>,
    last_error: Option<String>,
}

impl ShardView {
    /// What is wrong with the shard, if anything: a stalled reader, or
    /// records waiting longer than the iterator-age alarm allows.
    fn problem(&self, max_lag_s: u64) -> Option<String> {
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

async fn shard_views(
    aws: &crate::aws::Aws,
    names: &crate::names::Names,
) -> Result<Vec<ShardView>, crate::aws::AwsError> {
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
        .namespace(crate::names::metrics::NAMESPACE)
        .metric_name("Heartbeat")
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name(crate::names::metrics::STACK_DIMENSION)
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

//! The smoke check (`smoke`, and the end of `up`): a canary tweet with a unique id goes into the
//! stream (with a jq transform, the canary record of
//! [`crate::processor::read::program::canary_record`]); it must reach the tweets table (through the processor) and the S3
//! archive (through Firehose) in time, the processor must send its
//! heartbeat, and none of the stack's alarms may be in ALARM. `smoke` exits 0 when
//! all hold, 2 when one does not: a CI gate after a deploy.
//!
//! The heartbeat alarm treats missing data as breaching, so a stack whose
//! processor has just started is in ALARM until CloudWatch evaluates its
//! first heartbeat: the alarms are judged after that heartbeat, and that one
//! alarm gets the minutes it needs to re-evaluate.
//!
//! The canary is removed from the items table afterwards (it is counted in
//! no aggregate); the raw archive keeps it, marked: text
//! "streamstack smoke canary", rule tag `streamstack-smoke`.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::primitives::Blob;
use serde_json::json;

use super::{AppError, Environment, smoke_watch};
use crate::aws::{Aws, AwsError, ResultExt};
use crate::names::metrics::NAMESPACE as METRICS_NAMESPACE;
use crate::processor::read::program::{SMOKE_RULE_TAG, Transform, canary_record};

/// The processor publishes every 10 s; CloudWatch shows a datapoint within
/// a minute or two of it.
pub const HEARTBEAT_TIMEOUT_S: u64 = 150;
/// A heartbeat alarm that went to ALARM before the first heartbeat is
/// evaluated again each minute: it is given this long to turn OK.
const HEARTBEAT_ALARM_SETTLE: Duration = Duration::from_secs(180);

/// One check's outcome.
#[derive(Debug, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub seconds: f64,
    pub detail: String,
}

fn canary(id: &str, now_s: i64) -> Vec<u8> {
    let created = time::OffsetDateTime::from_unix_timestamp(now_s)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    serde_json::to_vec(&json!({
        "data": {
            "id": id, "author_id": "0", "created_at": created, "lang": "en",
            "text": format!("streamstack smoke canary {id} #streamstackcanary"),
            "entities": { "hashtags": [{ "start": 37, "end": 55, "tag": "streamstackcanary" }] },
        },
        "includes": { "users": [{ "id": "0", "username": "streamstack" }] },
        "matching_rules": [{ "id": "0", "tag": SMOKE_RULE_TAG }],
    }))
    .expect("JSON serializes")
}

async fn in_table(aws: &Aws, table: &str, key: &str, id: &str) -> Result<bool, AwsError> {
    let out = aws
        .dynamodb()
        .get_item()
        .table_name(table)
        .key(key, AttributeValue::S(id.to_string()))
        .consistent_read(true)
        .send()
        .await
        .aws(format!("looking for the canary in {table}"))?;
    Ok(out.item().is_some())
}

/// Whether an archive object written since `since` holds the canary.
async fn in_archive(
    aws: &Aws,
    bucket: &str,
    prefix: &str,
    id: &str,
    since: SystemTime,
    seen: &mut HashMap<String, bool>,
) -> Result<bool, AwsError> {
    let mut pages = aws
        .s3()
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let since = aws_smithy_types::DateTime::from(since);
    while let Some(page) = pages.next().await {
        let page = page.aws(format!("listing the archive s3://{bucket}/{prefix}"))?;
        for object in page.contents() {
            let (Some(key), Some(modified)) = (object.key(), object.last_modified()) else {
                continue;
            };
            // S3 keeps whole seconds: allow the second the canary went in.
            if modified.secs() + 1 < since.secs() || seen.contains_key(key) {
                continue;
            }
            let body = aws
                .s3()
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .aws(format!("reading s3://{bucket}/{key}"))?
                .body
                .collect()
                .await
                .map(|b| b.into_bytes().to_vec())
                .unwrap_or_default();
            let mut text = Vec::new();
            if key.ends_with(".gz") {
                let _ = flate2::read::GzDecoder::new(body.as_slice()).read_to_end(&mut text);
            } else {
                text = body;
            }
            let found = text.windows(id.len()).any(|w| w == id.as_bytes());
            seen.insert(key.to_string(), found);
            if found {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// What a smoke run found.
#[derive(Debug, serde::Serialize)]
pub struct SmokeReport {
    pub stack: String,
    pub canary: String,
    pub ok: bool,
    pub checks: Vec<Check>,
}

/// How long each check may take, in seconds.
pub struct Timeouts {
    pub table_s: u64,
    pub archive_margin_s: u64,
    pub heartbeat_s: u64,
}

/// Runs the canary through the pipeline (progress as events); `up` runs it too.
pub async fn check(env: &Environment, timeouts: &Timeouts) -> Result<SmokeReport, AppError> {
    let (aws, resolved) = (&env.aws, &env.resolved);
    let (table_timeout, archive_margin) = (timeouts.table_s, timeouts.archive_margin_s);
    {
        let p = env.pipeline().await?;
        let now = SystemTime::now();
        let now_s = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        // Numeric like a tweet id, and far above real ones: it cannot collide.
        let id = format!("9{}{:06}", now_s, fastrand::u32(..1_000_000));
        let started = Instant::now();
        let mut checks = Vec::new();
        let put = aws
            .kinesis()
            .put_record()
            .stream_name(&p.names.stream)
            .partition_key(&id)
            .data(Blob::new(match p.program.transform {
                Transform::Tweets => canary(&id, now_s),
                Transform::Jq(_) => canary_record(&id),
            }))
            .send()
            .await;
        put.aws(format!("putting the canary into {}", p.names.stream))?;
        tracing::info!(canary = %id, stream = %p.names.stream, "smoke: canary {id} put into {}", p.names.stream);

        // 1. The processor stores it.
        let deadline = started + Duration::from_secs(table_timeout);
        let stored = loop {
            match in_table(aws, &p.names.table, &p.program.shape.partition_key, &id).await {
                Ok(true) => break true,
                Ok(false) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_secs(1)).await
                }
                Ok(false) => break false,
                Err(e) => return Err(e.into()),
            }
        };
        checks.push(Check {
            name: "stored in DynamoDB",
            ok: stored,
            seconds: started.elapsed().as_secs_f64(),
            detail: format!("{} item {id}", p.names.table),
        });
        if stored {
            tracing::info!(table = %p.names.table, "smoke: stored in {}", p.names.table);
        } else {
            tracing::warn!(table = %p.names.table, "smoke: NOT stored in {}: is the processor running? (`streamstack status`)", p.names.table);
        }

        // 2. Firehose archives it within its buffer interval, plus a margin.
        let interval = u64::from(resolved.stack.archive.buffer.interval_s);
        let deadline = started + Duration::from_secs(interval + archive_margin);
        // Only the canary's hour (and the next, when the wait straddles
        // it): listing all of an archive that grows forever would not do.
        let prefixes = smoke_watch::hour_prefixes(
            &resolved.stack.archive.prefix,
            now - Duration::from_secs(1),
            now + Duration::from_secs(interval + archive_margin),
        );
        let prefix = prefixes.join(" and ");
        let mut seen = HashMap::new();
        let archived = 'wait: loop {
            for prefix in &prefixes {
                match in_archive(aws, &p.bucket, prefix, &id, now, &mut seen).await {
                    Ok(true) => break 'wait true,
                    Ok(false) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if Instant::now() >= deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_secs(2)).await
        };
        checks.push(Check {
            name: "archived in S3",
            ok: archived,
            seconds: started.elapsed().as_secs_f64(),
            detail: format!(
                "s3://{}/{prefix} (buffer interval {interval} s + {} s)",
                p.bucket, archive_margin
            ),
        });
        if archived {
            tracing::info!(bucket = %p.bucket, %prefix, "smoke: archived in s3://{}/{prefix}", p.bucket);
        } else {
            tracing::warn!(bucket = %p.bucket, %prefix, "smoke: NOT archived in s3://{}/{prefix}", p.bucket);
        }

        // 3. The processor's heartbeat reaches CloudWatch.
        let heartbeat = smoke_watch::first_heartbeat(
            aws,
            &p.names.stack,
            now,
            Duration::from_secs(timeouts.heartbeat_s),
            Duration::from_secs(5),
        )
        .await?;
        checks.push(Check {
            name: "processor heartbeat",
            ok: heartbeat.is_some(),
            seconds: started.elapsed().as_secs_f64(),
            detail: format!(
                "{METRICS_NAMESPACE} Heartbeat, Stack={}{}",
                p.names.stack,
                if heartbeat.is_some() {
                    String::new()
                } else {
                    format!(" (none within {} s)", timeouts.heartbeat_s)
                }
            ),
        });
        if heartbeat.is_some() {
            tracing::info!(stack = %p.names.stack, "smoke: processor heartbeat seen");
        } else {
            tracing::warn!(stack = %p.names.stack, "smoke: NO processor heartbeat");
        }

        // 4. None of this stack's alarms fires (judged after the heartbeat).
        let alarms = smoke_watch::alarm_names(&env.template());
        let heartbeat_alarm = p.names.alarm("processor-heartbeat");
        let settle = Instant::now() + HEARTBEAT_ALARM_SETTLE;
        let alarming: Vec<String> = loop {
            let states = smoke_watch::alarm_states(aws, &alarms).await?;
            // Only the heartbeat alarm can be stale, and only from before
            // the first heartbeat: then it is evaluated again within minutes.
            let stale = |a: &smoke_watch::AlarmState| {
                a.name == heartbeat_alarm
                    && heartbeat
                        .is_some_and(|h| a.updated.is_none_or(|u| u.secs() <= h.secs() + 60))
            };
            let firing: Vec<&smoke_watch::AlarmState> =
                states.iter().filter(|a| a.alarming).collect();
            if !firing.is_empty() && firing.iter().all(|a| stale(a)) && Instant::now() < settle {
                tracing::info!(
                    alarm = %heartbeat_alarm,
                    "smoke: {heartbeat_alarm} is in ALARM from before the first heartbeat; waiting for CloudWatch to evaluate it again"
                );
                tokio::time::sleep(Duration::from_secs(10)).await;
                continue;
            }
            break firing.into_iter().map(|a| a.name.clone()).collect();
        };
        checks.push(Check {
            name: "no alarm in ALARM",
            ok: alarming.is_empty(),
            seconds: started.elapsed().as_secs_f64(),
            detail: if alarming.is_empty() {
                "none".into()
            } else {
                alarming.join(", ")
            },
        });

        // The canary leaves the tables as it found them.
        let _ = aws
            .dynamodb()
            .delete_item()
            .table_name(&p.names.table)
            .key(
                &p.program.shape.partition_key,
                AttributeValue::S(id.clone()),
            )
            .send()
            .await;
        // The canary is counted in no aggregate (see program::SMOKE_RULE_TAG).

        let ok = checks.iter().all(|c| c.ok);
        Ok(SmokeReport {
            stack: p.names.stack.clone(),
            canary: id,
            ok,
            checks,
        })
    }
}

//! `streamstack smoke`: a canary tweet with a unique id goes into the
//! stream; it must reach the tweets table (through the processor) and the S3
//! archive (through Firehose) in time, the processor must send its
//! heartbeat, and none of the stack's alarms may be in ALARM. Exit 0 when
//! all hold, 2 when one does not: a CI gate after a deploy.
//!
//! The heartbeat alarm treats missing data as breaching, so a stack whose
//! processor has just started is in ALARM until CloudWatch evaluates its
//! first heartbeat: the alarms are judged after that heartbeat, and that one
//! alarm gets the minutes it needs to re-evaluate.
//!
//! The canary is removed from the tables afterwards (its item and its
//! aggregate memberships); the raw archive keeps it, marked: text
//! "streamstack smoke canary", rule tag `streamstack-smoke`.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::primitives::Blob;
use clap::Args;
use serde_json::json;

use super::{Cli, Exit, Output, StackArgs, load, pipeline, smoke_watch, with_aws};
use crate::aws::{Aws, AwsError, ResultExt};
use crate::names::attribute::{AGGREGATES_PK, AGGREGATES_SK};
use crate::names::metrics::NAMESPACE as METRICS_NAMESPACE;
use crate::processor::read::batch::{aggregate_pk, minute_at};

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

/// The processor publishes every 10 s; CloudWatch shows a datapoint within
/// a minute or two of it.
pub(super) const HEARTBEAT_TIMEOUT_S: u64 = 150;
/// A heartbeat alarm that went to ALARM before the first heartbeat is
/// evaluated again each minute: it is given this long to turn OK.
const HEARTBEAT_ALARM_SETTLE: Duration = Duration::from_secs(180);

/// One check's outcome.
#[derive(Debug, serde::Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    seconds: f64,
    detail: String,
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
        "matching_rules": [{ "id": "0", "tag": "streamstack-smoke" }],
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

pub fn run(args: &SmokeArgs, cli: &Cli) -> Exit {
    let resolved = match load(&args.stack, cli.output) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    with_aws(cli, &resolved, async |aws| {
        let timeouts = Timeouts {
            table_s: args.table_timeout,
            archive_margin_s: args.archive_margin,
            heartbeat_s: args.heartbeat_timeout,
        };
        match check(&aws, &resolved, &timeouts).await {
            Ok(report) => {
                match cli.output {
                    Output::Json => println!("{}", report.json),
                    Output::Text => println!("{}", report.text),
                }
                if report.ok { Exit::Ok } else { Exit::Failed }
            }
            Err(exit) => exit,
        }
    })
}

/// What a smoke run found.
pub(super) struct Report {
    pub ok: bool,
    pub json: serde_json::Value,
    /// The checks, a line each, and the verdict.
    pub text: String,
}

/// How long each check may take, in seconds.
pub(super) struct Timeouts {
    pub table_s: u64,
    pub archive_margin_s: u64,
    pub heartbeat_s: u64,
}

/// Runs the canary through the pipeline (progress on stderr); `up` runs it too.
pub(super) async fn check(
    aws: &Aws,
    resolved: &crate::spec::Resolved,
    timeouts: &Timeouts,
) -> Result<Report, Exit> {
    let (table_timeout, archive_margin) = (timeouts.table_s, timeouts.archive_margin_s);
    {
        let p = match pipeline(aws, resolved).await {
            Ok(p) => p,
            Err(exit) => return Err(exit),
        };
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
            .data(Blob::new(canary(&id, now_s)))
            .send()
            .await;
        if let Err(e) = put {
            eprintln!(
                "error: {}",
                AwsError::new(format!("putting the canary into {}", p.names.stream), e)
            );
            return Err(Exit::Failed);
        }
        eprintln!("smoke: canary {id} put into {}", p.names.stream);

        // 1. The processor stores it.
        let deadline = started + Duration::from_secs(table_timeout);
        let stored = loop {
            match in_table(aws, &p.names.table, &p.shape.partition_key, &id).await {
                Ok(true) => break true,
                Ok(false) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_secs(1)).await
                }
                Ok(false) => break false,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Err(Exit::Failed);
                }
            }
        };
        checks.push(Check {
            name: "stored in DynamoDB",
            ok: stored,
            seconds: started.elapsed().as_secs_f64(),
            detail: format!("{} item {id}", p.names.table),
        });
        eprintln!(
            "smoke: {} in {}: {}",
            if stored { "stored" } else { "NOT stored" },
            p.names.table,
            if stored {
                "ok"
            } else {
                "is the processor running? (`streamstack status`)"
            }
        );

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
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Err(Exit::Failed);
                    }
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
        eprintln!(
            "smoke: {} in s3://{}/{prefix}",
            if archived { "archived" } else { "NOT archived" },
            p.bucket
        );

        // 3. The processor's heartbeat reaches CloudWatch.
        let heartbeat = match smoke_watch::first_heartbeat(
            aws,
            &p.names.stack,
            now,
            Duration::from_secs(timeouts.heartbeat_s),
            Duration::from_secs(5),
        )
        .await
        {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                return Err(Exit::Failed);
            }
        };
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
        eprintln!(
            "smoke: {}",
            if heartbeat.is_some() {
                "processor heartbeat seen"
            } else {
                "NO processor heartbeat"
            }
        );

        // 4. None of this stack's alarms fires (judged after the heartbeat).
        let alarms = smoke_watch::alarm_names(&crate::template::compile(resolved));
        let heartbeat_alarm = p.names.alarm("processor-heartbeat");
        let settle = Instant::now() + HEARTBEAT_ALARM_SETTLE;
        let alarming: Vec<String> = loop {
            let states = match smoke_watch::alarm_states(aws, &alarms).await {
                Ok(states) => states,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Err(Exit::Failed);
                }
            };
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
                eprintln!(
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
        let minute = minute_at(now_s);
        let _ = aws
            .dynamodb()
            .delete_item()
            .table_name(&p.names.table)
            .key(&p.shape.partition_key, AttributeValue::S(id.clone()))
            .send()
            .await;
        for (dimension, value) in [("hashtag", "streamstackcanary"), ("lang", "en")] {
            let _ = aws
                .dynamodb()
                .delete_item()
                .table_name(&p.names.aggregates_table)
                .key(
                    AGGREGATES_PK,
                    AttributeValue::S(aggregate_pk(dimension, &minute)),
                )
                .key(AGGREGATES_SK, AttributeValue::S(format!("{value}#{id}")))
                .send()
                .await;
        }

        let ok = checks.iter().all(|c| c.ok);
        let mut text = String::new();
        for c in &checks {
            text.push_str(&format!(
                "  {} {:<20} {:>6.1} s  {}\n",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.seconds,
                c.detail
            ));
        }
        text.push_str(&format!("smoke: {}", if ok { "passed" } else { "FAILED" }));
        Ok(Report {
            ok,
            json: json!({ "stack": p.names.stack, "canary": id, "ok": ok, "checks": checks }),
            text,
        })
    }
}

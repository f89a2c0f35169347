//! `streamstack status`: the stack, every resource, the outputs, the
//! alarms, the heartbeat and each shard; exit 2 when not healthy.

use super::{Cli, Exit, Output, StackArgs, in_environment, print_outputs};
use crate::app::status::{StatusReport, status};

pub fn run(args: &StackArgs, cli: &Cli) -> Exit {
    let report = match in_environment(cli, args, async |env| status(&env).await) {
        Ok(report) => report,
        Err(exit) => return exit,
    };
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }
    match cli.output {
        Output::Json => println!(
            "{}",
            serde_json::to_value(&report).expect("a report serializes")
        ),
        Output::Text if !report.exists => {
            println!("{}: does not exist (run `streamstack up`)", report.stack)
        }
        Output::Text => print_text(&report),
    }
    if report.healthy {
        Exit::Ok
    } else {
        Exit::Failed
    }
}

fn print_text(report: &StatusReport) {
    let (name, resources, shards) = (&report.stack, &report.resources, &report.shards);
    let (alarms, heartbeat_age, heartbeat_ok) =
        (&report.alarms, report.heartbeat_age_s, report.heartbeat_ok);
    let (processor, healthy, shard_problems) =
        (&report.processor, report.healthy, &report.problems);
    let alarming: Vec<&String> = report.alarming().collect();

    let reason = report
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    println!(
        "{name}: {}{reason}",
        report.status.as_deref().unwrap_or("?")
    );
    for r in resources {
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
    print_outputs(&report.outputs);
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
            println!("  last: {}", readable(line));
        }
    }
    let mut counts = std::collections::BTreeMap::new();
    for (_, state) in alarms {
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
    for sh in shards {
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
    for e in &report.worker_errors {
        println!(
            "  last error of {} at {}: {}",
            e.worker,
            crate::logging::cloudwatch::rfc3339(e.time_ms),
            e.message
        );
    }
    for problem in shard_problems {
        println!("  {problem}");
    }
    println!(
        "verdict: {}",
        if healthy { "healthy" } else { "NOT healthy" }
    );
}

/// A JSON log line as `LEVEL message key=value...` (the local processor
/// logs JSON lines to its file); any other line as it is.
fn readable(line: &str) -> String {
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str(line) else {
        return line.to_string();
    };
    let text = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s,
        _ => String::new(),
    };
    let level = text(fields.remove("level"));
    let message = text(fields.remove("message"));
    for noise in ["timestamp", "target", "spans"] {
        fields.remove(noise);
    }
    format!("{level} {message}{}", super::logs::fields_text(&fields))
}

#[cfg(test)]
mod tests {
    use super::readable;

    #[test]
    fn a_json_log_line_reads_as_level_message_and_fields() {
        let line = r#"{"timestamp":"2026-12-02T19:00:00Z","level":"INFO","message":"progress","records_in":218,"worker":"h:1:a","target":"streamstack::processor","spans":[]}"#;
        assert_eq!(
            readable(line),
            r#"INFO progress records_in=218 worker="h:1:a""#
        );
        assert_eq!(readable("plain text"), "plain text");
    }
}

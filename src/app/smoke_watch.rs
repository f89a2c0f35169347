//! What `smoke` reads besides the canary: the processor's heartbeat, the
//! stack's own alarms, and the archive prefix of the canary's hour.

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, StateValue, Statistic};
use aws_smithy_types::DateTime;
use time::OffsetDateTime;

use crate::aws::{Aws, AwsError, ResultExt};
use crate::names::metrics::NAMESPACE as METRICS_NAMESPACE;

/// The alarms this stack's template creates, by name. DescribeAlarms'
/// AlarmNamePrefix matches prefixes: `tweets-` would also bring
/// `tweets-prod-...`, another stack's. Asking by exact names cannot.
pub fn alarm_names(template: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = template["Resources"]
        .as_object()
        .into_iter()
        .flat_map(|r| r.values())
        .filter(|r| r["Type"] == "AWS::CloudWatch::Alarm")
        .filter_map(|r| r["Properties"]["AlarmName"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// An alarm's name, state, and when it last changed.
#[derive(Debug, Clone)]
pub struct AlarmState {
    pub name: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    pub alarming: bool,
    pub updated: Option<DateTime>,
}

/// The states of exactly these alarms (DescribeAlarms takes up to 100 names).
pub async fn alarm_states(aws: &Aws, names: &[String]) -> Result<Vec<AlarmState>, AwsError> {
    let mut out = Vec::new();
    for chunk in names.chunks(100) {
        let mut pages = aws
            .cloudwatch()
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.aws("reading the stack's alarms")?;
            out.extend(page.metric_alarms().iter().map(|a| {
                AlarmState {
                    name: a.alarm_name().unwrap_or_default().to_string(),
                    state: a
                        .state_value()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    alarming: a.state_value() == Some(&StateValue::Alarm),
                    updated: a.state_updated_timestamp().copied(),
                }
            }));
        }
    }
    Ok(out)
}

/// Waits up to `timeout` for a `Heartbeat` datapoint of `stack`'s processor
/// from `since` on; the newest one's period start when there is one.
pub async fn first_heartbeat(
    aws: &Aws,
    stack: &str,
    since: SystemTime,
    timeout: Duration,
    poll: Duration,
) -> Result<Option<DateTime>, AwsError> {
    let deadline = Instant::now() + timeout;
    // Datapoints are stamped with their minute's start: one from the minute
    // before `since` began may hold a heartbeat sent after it.
    let start = DateTime::from_secs(DateTime::from(since).secs() / 60 * 60 - 60);
    loop {
        let out = aws
            .cloudwatch()
            .get_metric_statistics()
            .namespace(METRICS_NAMESPACE)
            .metric_name("Heartbeat")
            .dimensions(
                Dimension::builder()
                    .name(crate::names::metrics::STACK_DIMENSION)
                    .value(stack)
                    .build(),
            )
            .start_time(start)
            .end_time(DateTime::from(SystemTime::now() + Duration::from_secs(60)))
            .period(60)
            .statistics(Statistic::SampleCount)
            .send()
            .await
            .aws(format!("reading the processor heartbeat of {stack}"))?;
        let newest = out
            .datapoints()
            .iter()
            .filter(|d| d.sample_count().unwrap_or(0.0) > 0.0)
            .filter_map(|d| d.timestamp().copied())
            .max_by_key(|t| t.secs());
        if newest.is_some() || Instant::now() >= deadline {
            return Ok(newest);
        }
        tokio::time::sleep(poll).await;
    }
}

/// The concrete S3 prefixes under which Firehose files records that arrive
/// between `from` and `to` (UTC): the configured prefix with its
/// `!{timestamp:...}` expressions rendered for each hour in between. Listing
/// these instead of the whole archive keeps smoke's cost flat as the archive
/// grows. The rendering stops at anything finer than an hour or at another
/// expression (`!{firehose:random-string}`): the prefix up to it is still a
/// prefix of every key. Without any expression Firehose appends
/// `yyyy/MM/dd/HH/` itself.
pub fn hour_prefixes(prefix: &str, from: SystemTime, to: SystemTime) -> Vec<String> {
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    };
    let mut hour = secs(from) / 3600 * 3600;
    let mut out: Vec<String> = Vec::new();
    while hour <= secs(to) {
        let at = OffsetDateTime::from_unix_timestamp(hour).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let rendered = render(prefix, at);
        if !out.contains(&rendered) {
            out.push(rendered);
        }
        hour += 3600;
    }
    out
}

fn render(prefix: &str, at: OffsetDateTime) -> String {
    if !prefix.contains("!{") {
        return format!("{prefix}{}/", java_hour(at, "yyyy/MM/dd/HH").0);
    }
    let mut out = String::new();
    let mut rest = prefix;
    while let Some(open) = rest.find("!{") {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            return out;
        };
        let expression = &rest[open + 2..open + close];
        let Some(pattern) = expression.strip_prefix("timestamp:") else {
            return out;
        };
        let (text, whole) = java_hour(at, pattern);
        out.push_str(&text);
        if !whole {
            return out;
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// A java.time pattern rendered at `at`, for the letters constant within an
/// hour (y/u, M, d, D, H); false when it stopped at another letter.
fn java_hour(at: OffsetDateTime, pattern: &str) -> (String, bool) {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '\'' {
                out.push(chars[j]);
                j += 1;
            }
            if j == i + 1 && j < chars.len() {
                out.push('\'');
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            out.push(c);
            i += 1;
            continue;
        }
        let n = chars[i..].iter().take_while(|&&x| x == c).count();
        let number = |v: i64| format!("{v:0n$}");
        match c {
            'y' | 'u' if n == 2 => out.push_str(&format!("{:02}", at.year() % 100)),
            'y' | 'u' => out.push_str(&format!("{:0w$}", at.year(), w = n.max(4))),
            'M' if n <= 2 => out.push_str(&number(u8::from(at.month()) as i64)),
            'd' => out.push_str(&number(at.day() as i64)),
            'D' => out.push_str(&number(at.ordinal() as i64)),
            'H' => out.push_str(&number(at.hour() as i64)),
            _ => return (out, false),
        }
        i += n;
    }
    (out, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> SystemTime {
        let t =
            OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).unwrap();
        SystemTime::UNIX_EPOCH + Duration::from_secs(t.unix_timestamp() as u64)
    }

    #[test]
    fn the_default_prefix_names_the_canary_hour_and_the_next_when_it_straddles() {
        let p = "raw/!{timestamp:yyyy/MM/dd/HH}/";
        assert_eq!(
            hour_prefixes(p, at("2025-03-09T07:12:00Z"), at("2025-03-09T07:14:00Z")),
            ["raw/2025/03/09/07/"]
        );
        assert_eq!(
            hour_prefixes(p, at("2025-12-31T23:59:30Z"), at("2026-01-01T00:01:30Z")),
            ["raw/2025/12/31/23/", "raw/2026/01/01/00/"]
        );
    }

    #[test]
    fn other_prefixes_render_as_firehose_files_them() {
        let t = at("2025-03-09T07:12:00Z");
        // No expression: Firehose appends the hour itself.
        assert_eq!(hour_prefixes("raw/", t, t), ["raw/2025/03/09/07/"]);
        assert_eq!(hour_prefixes("", t, t), ["2025/03/09/07/"]);
        // Partitions named like Hive's, quoted literals, day of year.
        assert_eq!(
            hour_prefixes("raw/!{timestamp:'year='yyyy'/day='D}/x/", t, t),
            ["raw/year=2025/day=68/x/"]
        );
        // Finer than an hour, or another namespace: the prefix up to it.
        assert_eq!(
            hour_prefixes("raw/!{timestamp:yyyy/MM/dd/HH/mm}/", t, t),
            ["raw/2025/03/09/07/"]
        );
        assert_eq!(
            hour_prefixes("raw/!{timestamp:yyyy}/!{firehose:random-string}/", t, t),
            ["raw/2025/"]
        );
    }

    fn statistics(datapoints: &str) -> crate::aws::replay::Answer {
        crate::aws::replay::Answer::xml(&format!(
            r#"<GetMetricStatisticsResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/">
  <GetMetricStatisticsResult><Label>Heartbeat</Label><Datapoints>{datapoints}</Datapoints></GetMetricStatisticsResult>
  <ResponseMetadata><RequestId>replay</RequestId></ResponseMetadata>
</GetMetricStatisticsResponse>"#
        ))
    }

    /// CloudWatch as it answers before the processor's first heartbeat (no
    /// datapoint), then after it.
    #[tokio::test]
    async fn smoke_waits_for_the_first_heartbeat_within_its_bound() {
        let replay = crate::aws::replay::Replay::start().await;
        replay
            .answer("GetMetricStatistics", statistics(""))
            .answer("GetMetricStatistics", statistics(""))
            .answer(
                "GetMetricStatistics",
                statistics("<member><Timestamp>2025-03-09T07:12:00Z</Timestamp><SampleCount>6.0</SampleCount><Unit>None</Unit></member>"),
            );
        let aws = replay.aws().await;
        let seen = first_heartbeat(
            &aws,
            "tweets-prod",
            SystemTime::now(),
            Duration::from_secs(5),
            Duration::from_millis(10),
        )
        .await
        .unwrap();
        assert_eq!(
            seen.map(|t| t.secs()),
            Some(
                at("2025-03-09T07:12:00Z")
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64
            )
        );
        let calls = replay.requests("GetMetricStatistics");
        assert_eq!(calls.len(), 3);
        for part in [
            "Namespace=Streamstack",
            "MetricName=Heartbeat",
            "Dimensions.member.1.Name=Stack",
            "Dimensions.member.1.Value=tweets-prod",
            "Statistics.member.1=SampleCount",
        ] {
            assert!(
                calls[0].body.contains(part),
                "{part} not in {}",
                calls[0].body
            );
        }

        // Never: the bound ends the wait, and says none came.
        let replay = crate::aws::replay::Replay::start().await;
        replay.answer("GetMetricStatistics", statistics(""));
        let aws = replay.aws().await;
        let started = Instant::now();
        let seen = first_heartbeat(
            &aws,
            "tweets-prod",
            SystemTime::now(),
            Duration::from_millis(200),
            Duration::from_millis(10),
        )
        .await
        .unwrap();
        assert_eq!(seen, None);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// DescribeAlarms asked by name: `tweets` cannot get `tweets-prod`'s.
    #[tokio::test]
    async fn alarms_are_asked_for_by_exact_name() {
        let replay = crate::aws::replay::Replay::start().await;
        replay.answer(
            "DescribeAlarms",
            crate::aws::replay::Answer::xml(
                r#"<DescribeAlarmsResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/">
  <DescribeAlarmsResult><MetricAlarms><member>
    <AlarmName>tweets-dead-letters</AlarmName><StateValue>OK</StateValue>
    <StateUpdatedTimestamp>2025-03-09T07:00:00Z</StateUpdatedTimestamp>
  </member></MetricAlarms><CompositeAlarms/></DescribeAlarmsResult>
  <ResponseMetadata><RequestId>replay</RequestId></ResponseMetadata>
</DescribeAlarmsResponse>"#,
            ),
        );
        let aws = replay.aws().await;
        let states = alarm_states(
            &aws,
            &["tweets-dead-letters".into(), "tweets-iterator-age".into()],
        )
        .await
        .unwrap();
        assert_eq!(states.len(), 1);
        assert!(!states[0].alarming);
        let body = &replay.requests("DescribeAlarms")[0].body;
        assert!(
            body.contains("AlarmNames.member.1=tweets-dead-letters")
                && body.contains("AlarmNames.member.2=tweets-iterator-age")
                && !body.contains("AlarmNamePrefix"),
            "{body}"
        );
    }

    #[test]
    fn alarm_names_are_those_of_the_template() {
        let t = serde_json::json!({ "Resources": {
            "B": { "Type": "AWS::CloudWatch::Alarm", "Properties": { "AlarmName": "tweets-dead-letters" } },
            "A": { "Type": "AWS::CloudWatch::Alarm", "Properties": { "AlarmName": "tweets-iterator-age" } },
            "T": { "Type": "AWS::SNS::Topic", "Properties": { "TopicName": "tweets-alarms" } },
        }});
        assert_eq!(
            alarm_names(&t),
            ["tweets-dead-letters", "tweets-iterator-age"]
        );
    }
}

//! What a stack costs a month, and idle an hour: a pure estimate from the
//! resolved stack, a workload (records a second and their size) and the
//! price table in `pricing/` (which names its region and date). `plan`
//! prints it; nothing here touches the network.

use serde::{Deserialize, Serialize};

use crate::spec::Resolved;
use crate::spec::model::{BillingMode, CapacityMode, Encryption};

/// The price table shipped with the tool (US East, list prices).
pub const PRICES_US_EAST_1: &str = include_str!("../pricing/us-east-1.json");

#[derive(Debug, Clone, Deserialize)]
pub struct Prices {
    pub region: String,
    pub as_of: String,
    pub hours_per_month: f64,
    kinesis: Kinesis,
    firehose: Firehose,
    s3: S3,
    dynamodb: DynamoDb,
    ec2: Ec2,
    cloudwatch: CloudWatch,
    kms: Kms,
}

#[derive(Debug, Clone, Deserialize)]
struct Kinesis {
    shard_hour: f64,
    put_payload_units_per_million: f64,
    extended_retention_shard_hour: f64,
    on_demand_stream_hour: f64,
    on_demand_ingest_per_gb: f64,
    on_demand_retrieval_per_gb: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct Firehose {
    ingest_per_gb: f64,
    record_rounding_kb: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct S3 {
    storage_gb_month: f64,
    put_per_thousand: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct DynamoDb {
    on_demand_write_per_million: f64,
    provisioned_wcu_hour: f64,
    provisioned_rcu_hour: f64,
    storage_gb_month: f64,
    pitr_gb_month: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct Ec2 {
    gp3_gb_month: f64,
    instance_hour: std::collections::BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct CloudWatch {
    alarm_month: f64,
    dashboard_month: f64,
    custom_metric_month: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct Kms {
    key_month: f64,
}

impl Prices {
    pub fn us_east_1() -> Self {
        serde_json::from_str(PRICES_US_EAST_1).expect("the shipped price table parses")
    }
}

/// The traffic the estimate assumes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Workload {
    pub records_per_s: f64,
    /// Average record size in KB (an X API v2 tweet with its author: about 3 KB).
    pub record_kb: f64,
    /// DynamoDB items a tweet writes: the tweet and its aggregate memberships
    /// (hashtags and language; 3.4 on the sample data).
    pub items_per_record: f64,
    /// Compressed size of the archive relative to the raw stream (GZIP on tweets: about 0.15).
    pub archive_ratio: f64,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            records_per_s: 100.0,
            record_kb: 3.0,
            items_per_record: 3.4,
            archive_ratio: 0.15,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub service: &'static str,
    pub item: String,
    pub monthly_usd: f64,
    /// Part of the cost that runs whether data flows or not (a month).
    pub idle_monthly_usd: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub region: String,
    pub prices_as_of: String,
    pub workload: Workload,
    pub lines: Vec<Line>,
    pub monthly_usd: f64,
    pub idle_hourly_usd: f64,
    /// Things the table has no price for (an instance type, another region).
    pub unpriced: Vec<String>,
}

const SECONDS_PER_MONTH: f64 = 730.0 * 3600.0;

pub fn estimate(resolved: &Resolved, workload: Workload, prices: &Prices) -> Estimate {
    let s = &resolved.stack;
    let p = prices;
    let hours = p.hours_per_month;
    let records_month = workload.records_per_s * SECONDS_PER_MONTH;
    let gb_month = records_month * workload.record_kb / 1_048_576.0;
    let mut lines = Vec::new();
    let mut unpriced = Vec::new();
    let mut line = |service, item: String, monthly: f64, idle: f64| {
        lines.push(Line {
            service,
            item,
            monthly_usd: monthly,
            idle_monthly_usd: idle,
        });
    };

    // Kinesis.
    match s.stream.mode {
        CapacityMode::Provisioned => {
            let shards = f64::from(s.stream.shards.unwrap_or(1));
            let fixed = shards * p.kinesis.shard_hour * hours;
            line(
                "Kinesis",
                format!("{shards} shard(s) x {hours} h"),
                fixed,
                fixed,
            );
            // A PUT payload unit is 25 KB of a record, rounded up.
            let units = records_month * (workload.record_kb / 25.0).ceil().max(1.0);
            line(
                "Kinesis",
                format!("{:.0} M PUT payload units", units / 1e6),
                units / 1e6 * p.kinesis.put_payload_units_per_million,
                0.0,
            );
            if s.stream.retention_hours > 24 {
                let retention = shards * p.kinesis.extended_retention_shard_hour * hours;
                line(
                    "Kinesis",
                    format!("retention {} h (extended)", s.stream.retention_hours),
                    retention,
                    retention,
                );
            }
        }
        CapacityMode::OnDemand => {
            let fixed = p.kinesis.on_demand_stream_hour * hours;
            line(
                "Kinesis",
                format!("on-demand stream x {hours} h"),
                fixed,
                fixed,
            );
            // Read twice: the processor and Firehose.
            line(
                "Kinesis",
                format!("{gb_month:.1} GB in, {:.1} GB out", gb_month * 2.0),
                gb_month * p.kinesis.on_demand_ingest_per_gb
                    + gb_month * 2.0 * p.kinesis.on_demand_retrieval_per_gb,
                0.0,
            );
        }
    }

    // Firehose bills each record rounded up to 5 KB.
    let rounded_kb =
        (workload.record_kb / p.firehose.record_rounding_kb).ceil() * p.firehose.record_rounding_kb;
    let firehose_gb = records_month * rounded_kb / 1_048_576.0;
    line(
        "Firehose",
        format!("{firehose_gb:.1} GB ingested (records rounded to 5 KB)"),
        firehose_gb * p.firehose.ingest_per_gb,
        0.0,
    );

    // S3: the steady-state archive (the lifecycle rule bounds it), and Firehose's PUTs.
    let archive_gb_day = gb_month / 30.0 * workload.archive_ratio;
    let days = f64::from(s.archive.expire_after_days.unwrap_or(365));
    let stored = archive_gb_day * days;
    let puts = SECONDS_PER_MONTH / f64::from(s.archive.buffer.interval_s.max(60));
    line(
        "S3",
        format!("{stored:.1} GB archived ({days:.0} days), {puts:.0} PUTs"),
        stored * p.s3.storage_gb_month + puts / 1000.0 * p.s3.put_per_thousand,
        0.0,
    );

    // DynamoDB: one write unit per KB of a tweet item, one per membership.
    let wru_per_record =
        (workload.record_kb / 2.0).ceil().max(1.0) + (workload.items_per_record - 1.0);
    let writes = records_month * wru_per_record;
    match s.table.billing {
        BillingMode::OnDemand => line(
            "DynamoDB",
            format!("{:.0} M write request units", writes / 1e6),
            writes / 1e6 * p.dynamodb.on_demand_write_per_million,
            0.0,
        ),
        BillingMode::Provisioned => {
            let wcu = f64::from(s.table.write_capacity.unwrap_or(1));
            let rcu = f64::from(s.table.read_capacity.unwrap_or(1));
            let fixed = (wcu * p.dynamodb.provisioned_wcu_hour
                + rcu * p.dynamodb.provisioned_rcu_hour)
                * hours;
            line(
                "DynamoDB",
                format!("{wcu} WCU, {rcu} RCU provisioned"),
                fixed,
                fixed,
            );
        }
    }
    let item_gb_day =
        workload.records_per_s * 86_400.0 * (workload.record_kb * 0.6 + 0.3) / 1_048_576.0;
    let table_gb = item_gb_day * f64::from(s.table.ttl_days.unwrap_or(365));
    let pitr = if s.table.point_in_time_recovery {
        p.dynamodb.pitr_gb_month
    } else {
        0.0
    };
    line(
        "DynamoDB",
        format!(
            "{table_gb:.1} GB stored{}",
            if pitr > 0.0 {
                " + point-in-time recovery"
            } else {
                ""
            }
        ),
        table_gb * (p.dynamodb.storage_gb_month + pitr),
        0.0,
    );

    // EC2 hosts and their volumes.
    let count = f64::from(s.host.count);
    match p.ec2.instance_hour.get(&s.host.instance_type) {
        Some(hourly) => {
            let fixed = count * hourly * hours;
            line(
                "EC2",
                format!("{count} x {} x {hours} h", s.host.instance_type),
                fixed,
                fixed,
            );
        }
        None => unpriced.push(format!("EC2 instance type {}", s.host.instance_type)),
    }
    let volumes = count * f64::from(s.host.volume_gb) * p.ec2.gp3_gb_month;
    line(
        "EC2",
        format!("{count} x {} GB gp3", s.host.volume_gb),
        volumes,
        volumes,
    );

    // CloudWatch: the stack's alarms, its dashboard, the processor's metrics.
    let alarms = crate::template::compile(resolved)["Resources"]
        .as_object()
        .map_or(0, |r| {
            r.values()
                .filter(|v| v["Type"] == "AWS::CloudWatch::Alarm")
                .count()
        }) as f64;
    let cw = alarms * p.cloudwatch.alarm_month
        + p.cloudwatch.dashboard_month
        + 6.0 * p.cloudwatch.custom_metric_month;
    line(
        "CloudWatch",
        format!("{alarms} alarms, a dashboard, 6 custom metrics"),
        cw,
        cw,
    );

    if [
        s.stream.encryption,
        s.table.encryption,
        s.archive.encryption,
    ]
    .contains(&Encryption::StackKey)
    {
        line(
            "KMS",
            "the stack's key".into(),
            p.kms.key_month,
            p.kms.key_month,
        );
    }
    if resolved.stack.region != p.region {
        unpriced.push(format!(
            "prices are {}'s; the stack is in {}",
            p.region, resolved.stack.region
        ));
    }
    let monthly = lines.iter().map(|l| l.monthly_usd).sum();
    let idle = lines.iter().map(|l| l.idle_monthly_usd).sum::<f64>() / hours;
    Estimate {
        region: p.region.clone(),
        prices_as_of: p.as_of.clone(),
        workload,
        lines,
        monthly_usd: monthly,
        idle_hourly_usd: idle,
        unpriced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(yaml: &str) -> Resolved {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        std::fs::write(&path, yaml).unwrap();
        crate::spec::load(&path, None).unwrap()
    }

    fn line<'a>(e: &'a Estimate, service: &str, starts: &str) -> &'a Line {
        e.lines
            .iter()
            .find(|l| l.service == service && l.item.starts_with(starts))
            .unwrap_or_else(|| panic!("no {service} {starts} in {:#?}", e.lines))
    }

    #[test]
    fn shards_and_hosts_cost_by_the_hour_and_traffic_by_volume() {
        let e = estimate(
            &resolved("name: costs\nregion: us-east-1\nstream: { shards: 2 }\n"),
            Workload::default(),
            &Prices::us_east_1(),
        );
        let shards = line(&e, "Kinesis", "2 shard(s)");
        assert!((shards.monthly_usd - 2.0 * 0.015 * 730.0).abs() < 1e-9);
        assert_eq!(shards.monthly_usd, shards.idle_monthly_usd);
        let host = line(&e, "EC2", "1 x t3.micro");
        assert!((host.monthly_usd - 0.0104 * 730.0).abs() < 1e-9);
        // 100 records/s of 3 KB: one PUT unit each, 262.8 M a month.
        let puts = line(&e, "Kinesis", "263 M PUT");
        assert!((puts.monthly_usd - 262.8 * 0.014).abs() < 1e-6);
        assert_eq!(puts.idle_monthly_usd, 0.0);
        assert!(e.unpriced.is_empty());
        // Idle: what runs without data, an hour.
        let idle: f64 = e.lines.iter().map(|l| l.idle_monthly_usd).sum::<f64>() / 730.0;
        assert!((e.idle_hourly_usd - idle).abs() < 1e-12);
        assert!(e.idle_hourly_usd > 0.03 + 0.0104);
    }

    #[test]
    fn more_traffic_costs_more_but_not_when_idle() {
        let r = resolved("name: costs\nregion: us-east-1\n");
        let low = estimate(&r, Workload::default(), &Prices::us_east_1());
        let high = estimate(
            &r,
            Workload {
                records_per_s: 1000.0,
                ..Workload::default()
            },
            &Prices::us_east_1(),
        );
        assert!(high.monthly_usd > low.monthly_usd * 3.0);
        assert_eq!(high.idle_hourly_usd, low.idle_hourly_usd);
    }

    #[test]
    fn unknown_instance_types_and_other_regions_are_said() {
        let e = estimate(
            &resolved("name: costs\nregion: eu-west-1\nhost: { instance_type: x9.huge }\n"),
            Workload::default(),
            &Prices::us_east_1(),
        );
        assert_eq!(e.unpriced.len(), 2, "{:?}", e.unpriced);
        assert!(e.unpriced[0].contains("x9.huge"));
    }
}

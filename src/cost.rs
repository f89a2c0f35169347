//! What a stack costs a month, and idle an hour: a pure estimate from the
//! resolved stack, a workload (records a second and their size) and the
//! price table in `pricing/` (which names its region and date). `plan`
//! prints it; nothing here touches the network.

use serde::{Deserialize, Serialize};

use crate::spec::Resolved;
use serde_json::Value;

use crate::processor::read::consumer::WorkerConfig;
use crate::processor::read::consumer::shard::STORE_SLICE;
use crate::spec::model::{BillingMode, CapacityMode, Stack};

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
    on_demand_read_per_million: f64,
    provisioned_wcu_hour: f64,
    provisioned_rcu_hour: f64,
    storage_gb_month: f64,
    pitr_gb_month: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct Ec2 {
    gp3_gb_month: f64,
    /// Every public IPv4 address, in use or not (since February 2024).
    public_ipv4_hour: f64,
    instance_hour: std::collections::BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct CloudWatch {
    alarm_month: f64,
    dashboard_month: f64,
    custom_metric_month: f64,
    put_metric_data_per_thousand: f64,
    /// Metrics EC2 detailed monitoring sends an instance at one-minute
    /// resolution, each billed as a custom metric.
    detailed_monitoring_metrics_per_instance: f64,
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
    /// DynamoDB writes a record makes, in small-item units: its item, and its
    /// share of its slice's partial counts and checkpoint (tweets: about
    /// 1.05 on the sample data, 3.4 with the old membership items; `plan`
    /// measures it on the stack's replay file).
    pub items_per_record: f64,
    /// Compressed size of the archive relative to the raw stream (GZIP on tweets: about 0.15).
    pub archive_ratio: f64,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            records_per_s: 100.0,
            record_kb: 3.0,
            items_per_record: 1.05,
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

/// Seconds between a processor's PutMetricData calls (`consume
/// --report-every`, which the host runs at its default).
const METRICS_PERIOD_S: f64 = 10.0;

/// Shards an on-demand stream starts with (4 MB/s of write capacity); it
/// grows with the traffic, so this is the least the processor leases.
const ON_DEMAND_SHARDS: f64 = 4.0;

/// Bytes of one lease item (shard id, owner, counter, checkpoint, time), a
/// generous round figure: a Scan reads 4 KB a read unit.
const LEASE_ITEM_BYTES: f64 = 200.0;

pub fn estimate(resolved: &Resolved, workload: Workload, prices: &Prices) -> Estimate {
    let s = &resolved.stack;
    let p = prices;
    let hours = p.hours_per_month;
    let records_month = workload.records_per_s * SECONDS_PER_MONTH;
    let gb_month = records_month * workload.record_kb / 1_048_576.0;
    // Some lines price what the template creates rather than the stack file.
    let template = crate::template::compile(resolved);
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

    // DynamoDB: one write unit per KB of a tweet item, and the counts' and checkpoints' share.
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
    lease_table(&mut line, s, workload, p);

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

    public_ipv4(&mut line, s, &template, p);

    // CloudWatch: the stack's alarms, its dashboard, the processor's metrics.
    let alarms = of_type(&template, "AWS::CloudWatch::Alarm").len() as f64;
    let cw = alarms * p.cloudwatch.alarm_month
        + p.cloudwatch.dashboard_month
        + 6.0 * p.cloudwatch.custom_metric_month;
    line(
        "CloudWatch",
        format!("{alarms} alarms, a dashboard, 6 custom metrics"),
        cw,
        cw,
    );
    host_metrics(&mut line, s, &template, p);

    // The keys the template creates: asked for by a resource, or made for
    // the alarm topic by `alarms.email` alone.
    let keys = of_type(&template, "AWS::KMS::Key").len() as f64;
    if keys > 0.0 {
        let kms = keys * p.kms.key_month;
        line("KMS", "the stack's key".into(), kms, kms);
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

/// The template's resources of one type.
fn of_type<'a>(template: &'a Value, resource_type: &str) -> Vec<&'a Value> {
    template["Resources"]
        .as_object()
        .map(|r| r.values().filter(|v| v["Type"] == resource_type).collect())
        .unwrap_or_default()
}

/// A public IPv4 address a host, when the hosts are in the stack's own
/// public subnets (in subnets of your own, that is their setting).
fn public_ipv4(
    line: &mut impl FnMut(&'static str, String, f64, f64),
    s: &Stack,
    template: &Value,
    p: &Prices,
) {
    let hosts = f64::from(s.host.count);
    let hours = p.hours_per_month;
    let public_subnets = of_type(template, "AWS::EC2::Subnet")
        .iter()
        .any(|subnet| subnet["Properties"]["MapPublicIpOnLaunch"] == true);
    if public_subnets {
        let ipv4 = hosts * p.ec2.public_ipv4_hour * hours;
        line(
            "EC2",
            format!("{hosts} public IPv4 address(es) x {hours} h"),
            ipv4,
            ipv4,
        );
    }
}

/// The hosts' CloudWatch figures: detailed monitoring, and the processor's
/// PutMetricData calls.
fn host_metrics(
    line: &mut impl FnMut(&'static str, String, f64, f64),
    s: &Stack,
    template: &Value,
    p: &Prices,
) {
    let hosts = f64::from(s.host.count);
    let monitored = of_type(template, "AWS::EC2::LaunchTemplate")
        .iter()
        .any(|lt| lt["Properties"]["LaunchTemplateData"]["Monitoring"]["Enabled"] == true);
    if monitored {
        let metrics = hosts * p.cloudwatch.detailed_monitoring_metrics_per_instance;
        let monitoring = metrics * p.cloudwatch.custom_metric_month;
        line(
            "CloudWatch",
            format!("EC2 detailed monitoring: {metrics} metrics"),
            monitoring,
            monitoring,
        );
    }
    // Every period, data flowing or not: the heartbeat is one of the figures.
    let calls = hosts * SECONDS_PER_MONTH / METRICS_PERIOD_S;
    let puts = calls / 1000.0 * p.cloudwatch.put_metric_data_per_thousand;
    line(
        "CloudWatch",
        format!(
            "{:.2} M PutMetricData calls (1 every {METRICS_PERIOD_S} s a host)",
            calls / 1e6
        ),
        puts,
        puts,
    );
}

/// The lease table (on-demand, whatever `table.billing` says): every lease
/// pass (about one a second) renews each held lease and scans the table with
/// consistent reads, on every worker; each slice of stored records
/// checkpoints its shard.
fn lease_table(
    line: &mut impl FnMut(&'static str, String, f64, f64),
    s: &Stack,
    workload: Workload,
    p: &Prices,
) {
    let pass_s = WorkerConfig::default().lease_interval.as_secs_f64();
    let passes = SECONDS_PER_MONTH / pass_s;
    let (shards, assumed) = match s.stream.mode {
        CapacityMode::Provisioned => (f64::from(s.stream.shard_count()), ""),
        CapacityMode::OnDemand => (ON_DEMAND_SHARDS, " at least"),
    };
    let workers = f64::from(s.host.count);
    let write = p.dynamodb.on_demand_write_per_million / 1e6;
    let read = p.dynamodb.on_demand_read_per_million / 1e6;

    // Items under 1 KB: a write unit each.
    let renewals = shards * passes;
    line(
        "DynamoDB",
        format!(
            "lease table: {:.1} M renewals ({shards} shards{assumed})",
            renewals / 1e6
        ),
        renewals * write,
        renewals * write,
    );
    // A consistent read unit per 4 KB scanned, one at the least.
    let units_per_scan = (shards * LEASE_ITEM_BYTES / 4096.0).ceil().max(1.0);
    let scans = workers * passes;
    line(
        "DynamoDB",
        format!(
            "lease table: {:.1} M consistent scans ({workers} worker(s))",
            scans / 1e6
        ),
        scans * units_per_scan * read,
        scans * units_per_scan * read,
    );
    // A reader polls each shard about once a second when caught up and
    // checkpoints after each slice it stores: a shard with r records a
    // second (r >= 1) checkpoints ceil(r / slice) times a second.
    let per_shard = workload.records_per_s / shards;
    let slice = STORE_SLICE as f64;
    let checkpoints_per_s = shards
        * if per_shard >= 1.0 {
            (per_shard / slice).ceil()
        } else {
            per_shard
        };
    let checkpoints = checkpoints_per_s * SECONDS_PER_MONTH;
    line(
        "DynamoDB",
        format!(
            "lease table: {:.1} M checkpoints (1 a {STORE_SLICE}-record slice)",
            checkpoints / 1e6
        ),
        checkpoints * write,
        0.0,
    );
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
    fn the_lease_table_is_renewed_scanned_and_checkpointed() {
        let e = estimate(
            &resolved(
                "name: costs\nregion: us-east-1\nstream: { shards: 4 }\nhost: { count: 2 }\n",
            ),
            Workload::default(),
            &Prices::us_east_1(),
        );
        // Every second: 4 renewals (one a shard) and 2 scans (one a worker), data or not.
        let renewals = line(&e, "DynamoDB", "lease table: 10.5 M renewals (4 shards");
        assert!((renewals.monthly_usd - 4.0 * 2_628_000.0 * 0.625 / 1e6).abs() < 1e-9);
        assert_eq!(renewals.monthly_usd, renewals.idle_monthly_usd);
        let scans = line(
            &e,
            "DynamoDB",
            "lease table: 5.3 M consistent scans (2 worker(s)",
        );
        assert!((scans.monthly_usd - 2.0 * 2_628_000.0 * 0.125 / 1e6).abs() < 1e-9);
        assert_eq!(scans.monthly_usd, scans.idle_monthly_usd);
        // 100 records/s over 4 shards: 25 a poll, one slice, one checkpoint a shard a second.
        let checkpoints = line(&e, "DynamoDB", "lease table: 10.5 M checkpoints");
        assert!((checkpoints.monthly_usd - 4.0 * 2_628_000.0 * 0.625 / 1e6).abs() < 1e-9);
        assert_eq!(checkpoints.idle_monthly_usd, 0.0);
        // 1,000 records/s: 250 a shard a second, three slices.
        let busy = estimate(
            &resolved("name: costs\nregion: us-east-1\nstream: { shards: 4 }\n"),
            Workload {
                records_per_s: 1000.0,
                ..Workload::default()
            },
            &Prices::us_east_1(),
        );
        assert!(line(&busy, "DynamoDB", "lease table: 31.5 M checkpoints").monthly_usd > 19.0);
        // An on-demand stream has 4 shards to begin with, more as it grows.
        let on_demand = estimate(
            &resolved("name: costs\nregion: us-east-1\nstream: { mode: on-demand }\n"),
            Workload::default(),
            &Prices::us_east_1(),
        );
        line(
            &on_demand,
            "DynamoDB",
            "lease table: 10.5 M renewals (4 shards at least)",
        );
    }

    #[test]
    fn public_addresses_detailed_monitoring_and_metric_calls_are_priced_per_host() {
        let e = estimate(
            &resolved("name: costs\nregion: us-east-1\nhost: { count: 2 }\n"),
            Workload::default(),
            &Prices::us_east_1(),
        );
        let ipv4 = line(&e, "EC2", "2 public IPv4 address(es) x 730 h");
        assert!((ipv4.monthly_usd - 2.0 * 0.005 * 730.0).abs() < 1e-9);
        assert_eq!(ipv4.monthly_usd, ipv4.idle_monthly_usd);
        let monitoring = line(&e, "CloudWatch", "EC2 detailed monitoring: 14 metrics");
        assert!((monitoring.monthly_usd - 14.0 * 0.3).abs() < 1e-9);
        // One PutMetricData every 10 s a host: 262,800 a month each.
        let puts = line(&e, "CloudWatch", "0.53 M PutMetricData calls");
        assert!((puts.monthly_usd - 2.0 * 262.8 * 0.01).abs() < 1e-9);
        // In subnets of your own, whether hosts get public addresses is yours to say.
        let own = estimate(
            &resolved(
                "name: costs\nregion: us-east-1\nhost: { vpc_id: vpc-0123456789abcdef0, subnet_ids: [subnet-0123456789abcdef0] }\n",
            ),
            Workload::default(),
            &Prices::us_east_1(),
        );
        assert!(
            !own.lines.iter().any(|l| l.item.contains("IPv4")),
            "{:#?}",
            own.lines
        );
    }

    #[test]
    fn an_alarm_email_alone_creates_and_costs_a_key() {
        let prices = Prices::us_east_1();
        let with = estimate(
            &resolved("name: costs\nregion: us-east-1\nalarms: { email: ops@example.com }\n"),
            Workload::default(),
            &prices,
        );
        let key = line(&with, "KMS", "the stack's key");
        assert_eq!((key.monthly_usd, key.idle_monthly_usd), (1.0, 1.0));
        let without = estimate(
            &resolved("name: costs\nregion: us-east-1\n"),
            Workload::default(),
            &prices,
        );
        assert!(!without.lines.iter().any(|l| l.service == "KMS"));
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

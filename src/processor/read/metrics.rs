//! The processor's own figures: counted with atomics on the hot path,
//! logged as a periodic progress event and published to CloudWatch (one
//! batched PutMetricData a period) under the stack's dimension, where the
//! stack's alarms and dashboard read them.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::aws::{AwsError, ResultExt};
use crate::names::metrics::{self as metric, NAMESPACE as METRICS_NAMESPACE};

/// Counters of a consumer process (every shard it reads).
#[derive(Debug, Default)]
pub struct ConsumerMetrics {
    pub records_in: AtomicU64,
    pub user_records: AtomicU64,
    pub tweets_stored: AtomicU64,
    pub aggregate_items: AtomicU64,
    pub dead_letters: AtomicU64,
    pub batches: AtomicU64,
    pub write_calls: AtomicU64,
    pub items_written: AtomicU64,
    pub unprocessed_retries: AtomicU64,
    pub store_retries: AtomicU64,
    /// DynamoDB write units used (item::write_units): items, aggregates, checkpoints.
    pub write_units_items: AtomicU64,
    pub write_units_aggregates: AtomicU64,
    pub write_units_checkpoints: AtomicU64,
    batch_latency_ms_sum: AtomicU64,
    batch_latency_ms_max: AtomicU64,
    /// Milliseconds behind the tip, per shard (the latest GetRecords says).
    behind: Mutex<HashMap<String, i64>>,
    /// Per shard, when the oldest record read but not yet checkpointed
    /// arrived in the stream (Unix milliseconds): a reader stuck on a slice
    /// shows as lag even though its last GetRecords was at the tip.
    pending_since: Mutex<HashMap<String, i64>>,
    /// Shards whose reader has retried the same work longer than the stall bound.
    stalled: Mutex<HashSet<String>>,
    /// End-to-end latency of each record stored (see [`ConsumerMetrics::stored`]).
    latency: Mutex<Option<hdrhistogram::Histogram<u64>>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConsumerSnapshot {
    pub records_in: u64,
    pub user_records: u64,
    pub tweets_stored: u64,
    pub aggregate_items: u64,
    pub dead_letters: u64,
    pub batches: u64,
    pub write_calls: u64,
    pub items_written: u64,
    pub unprocessed_retries: u64,
    pub store_retries: u64,
    pub write_units_items: u64,
    pub write_units_aggregates: u64,
    pub write_units_checkpoints: u64,
    pub batch_latency_ms_max: u64,
    pub batch_latency_ms_mean: u64,
    /// Attempts at AWS calls the SDK retried (throttling, 5xx, timeouts,
    /// dropped connections), over the whole process.
    pub sdk_retries: u64,
    /// How far the most lagging shard is behind: the larger of what
    /// GetRecords says (MillisBehindLatest) and how long its oldest record
    /// read but not checkpointed has waited.
    pub millis_behind_latest: i64,
    /// Shards this process reads (that reported a position).
    pub shards: usize,
    /// Shards whose reader has retried the same work longer than the stall bound.
    pub stalled_shards: usize,
    /// End-to-end latency of the records stored so far, in milliseconds:
    /// from a record's arrival in the stream to its items being stored.
    pub latency_ms_p50: u64,
    pub latency_ms_p95: u64,
    pub latency_ms_p99: u64,
    pub latency_ms_max: u64,
}

impl ConsumerMetrics {
    pub fn batch_stored(&self, latency: Duration) {
        let ms = latency.as_millis() as u64;
        self.batches.fetch_add(1, Relaxed);
        self.batch_latency_ms_sum.fetch_add(ms, Relaxed);
        self.batch_latency_ms_max.fetch_max(ms, Relaxed);
    }

    /// Records a slice's records as stored at `now_ms`, given when each
    /// arrived in the stream (its ApproximateArrivalTimestamp, which Kinesis
    /// sets when it accepts the record, just before the PutRecords reply;
    /// its items are readable once the store returns). Kept as a
    /// histogram: 1 ms to an hour, 2 significant digits (about 40 KB).
    pub fn stored(&self, arrivals_ms: impl IntoIterator<Item = i64>, now_ms: i64) {
        let mut latency = self.latency.lock().expect("metrics lock");
        let histogram = latency.get_or_insert_with(|| {
            hdrhistogram::Histogram::new_with_bounds(1, 3_600_000, 2).expect("the bounds are valid")
        });
        for arrived in arrivals_ms {
            // A clock behind the stream's counts as no wait; beyond the
            // bound, as the bound.
            histogram.saturating_record((now_ms - arrived).max(1) as u64);
        }
    }

    pub fn behind(&self, shard: &str, millis: i64) {
        let mut behind = self.behind.lock().expect("metrics lock");
        behind.insert(shard.to_string(), millis);
    }

    /// A shard no longer read by this process (read to its end, lease
    /// lost, reader stopped) stops counting towards lag and stalls, so an
    /// alarm cannot stay stuck on a figure nobody updates.
    pub fn forget_shard(&self, shard: &str) {
        self.behind.lock().expect("metrics lock").remove(shard);
        self.pending_since
            .lock()
            .expect("metrics lock")
            .remove(shard);
        self.stalled.lock().expect("metrics lock").remove(shard);
    }

    /// The arrival time (Unix milliseconds) of the oldest record of `shard`
    /// read and not yet checkpointed; None once everything read is.
    pub fn pending(&self, shard: &str, arrived_ms: Option<i64>) {
        let mut pending = self.pending_since.lock().expect("metrics lock");
        match arrived_ms {
            Some(at) => pending.insert(shard.to_string(), at),
            None => pending.remove(shard),
        };
    }

    /// Whether the reader of `shard` is stalled (retrying the same work
    /// longer than the bound).
    pub fn stalled(&self, shard: &str, stalled: bool) {
        let mut set = self.stalled.lock().expect("metrics lock");
        if stalled {
            set.insert(shard.to_string());
        } else {
            set.remove(shard);
        }
    }

    pub fn snapshot(&self) -> ConsumerSnapshot {
        self.snapshot_at(crate::processor::read::consumer::lease::now_ms() as i64)
    }

    /// The counters, with lag computed as of `now_ms` (Unix milliseconds).
    pub fn snapshot_at(&self, now_ms: i64) -> ConsumerSnapshot {
        let batches = self.batches.load(Relaxed);
        let (millis_behind_latest, shards) = {
            let behind = self.behind.lock().expect("metrics lock");
            let pending = self.pending_since.lock().expect("metrics lock");
            let waiting = pending.values().map(|&at| (now_ms - at).max(0));
            (
                behind.values().copied().chain(waiting).max().unwrap_or(0),
                behind.len(),
            )
        };
        let stalled_shards = self.stalled.lock().expect("metrics lock").len();
        let latency = self.latency.lock().expect("metrics lock");
        let at = |q: f64| latency.as_ref().map_or(0, |h| h.value_at_quantile(q));
        ConsumerSnapshot {
            records_in: self.records_in.load(Relaxed),
            user_records: self.user_records.load(Relaxed),
            tweets_stored: self.tweets_stored.load(Relaxed),
            aggregate_items: self.aggregate_items.load(Relaxed),
            dead_letters: self.dead_letters.load(Relaxed),
            batches,
            write_calls: self.write_calls.load(Relaxed),
            items_written: self.items_written.load(Relaxed),
            unprocessed_retries: self.unprocessed_retries.load(Relaxed),
            store_retries: self.store_retries.load(Relaxed),
            write_units_items: self.write_units_items.load(Relaxed),
            write_units_aggregates: self.write_units_aggregates.load(Relaxed),
            write_units_checkpoints: self.write_units_checkpoints.load(Relaxed),
            batch_latency_ms_max: self.batch_latency_ms_max.load(Relaxed),
            batch_latency_ms_mean: self
                .batch_latency_ms_sum
                .load(Relaxed)
                .checked_div(batches)
                .unwrap_or(0),
            sdk_retries: crate::aws::call_stats().sdk_retries,
            millis_behind_latest,
            shards,
            stalled_shards,
            latency_ms_p50: at(0.50),
            latency_ms_p95: at(0.95),
            latency_ms_p99: at(0.99),
            latency_ms_max: latency.as_ref().map_or(0, |h| h.max()),
        }
    }
}

impl ConsumerSnapshot {
    /// The period's data points: deltas since `before`, lag as a gauge, and
    /// a heartbeat (its absence is what the heartbeat alarm catches).
    pub fn data(&self, before: &ConsumerSnapshot, stack: &str) -> Vec<MetricDatum> {
        let dim = Dimension::builder()
            .name(metric::STACK_DIMENSION)
            .value(stack)
            .build();
        let datum = |name: &str, value: f64, unit: StandardUnit| {
            MetricDatum::builder()
                .metric_name(name)
                .dimensions(dim.clone())
                .value(value)
                .unit(unit)
                .build()
        };
        // A count: what was added since the last period.
        let added = |name: &str, now: u64, then: u64| {
            datum(name, now.saturating_sub(then) as f64, StandardUnit::Count)
        };
        let mut data = vec![
            added(metric::RECORDS_IN, self.records_in, before.records_in),
            added(
                metric::ITEMS_WRITTEN,
                self.tweets_stored,
                before.tweets_stored,
            ),
            added(metric::DEAD_LETTERS, self.dead_letters, before.dead_letters),
            datum(
                metric::MILLIS_BEHIND_LATEST,
                self.millis_behind_latest as f64,
                StandardUnit::Milliseconds,
            ),
            datum(metric::HEARTBEAT, 1.0, StandardUnit::Count),
            // A gauge the stalled-shard alarm reads: shards whose reader has
            // retried the same work longer than the stall bound.
            datum(
                metric::STALLED_SHARDS,
                self.stalled_shards as f64,
                StandardUnit::Count,
            ),
            // Every retry, the SDK's and the processor's own: a rise is the
            // first sign of throttling or an ailing endpoint.
            added(
                metric::RETRIES,
                self.sdk_retries + self.unprocessed_retries + self.store_retries,
                before.sdk_retries + before.unprocessed_retries + before.store_retries,
            ),
            added(
                metric::WRITE_UNITS_ITEMS,
                self.write_units_items,
                before.write_units_items,
            ),
            added(
                metric::WRITE_UNITS_AGGREGATES,
                self.write_units_aggregates,
                before.write_units_aggregates,
            ),
            added(
                metric::WRITE_UNITS_CHECKPOINTS,
                self.write_units_checkpoints,
                before.write_units_checkpoints,
            ),
        ];
        if self.batches > before.batches {
            data.push(datum(
                metric::BATCH_LATENCY_MILLIS,
                self.batch_latency_ms_mean as f64,
                StandardUnit::Milliseconds,
            ));
        }
        data
    }
}

/// Publishes one period's figures.
pub async fn publish(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    data: Vec<MetricDatum>,
) -> Result<(), AwsError> {
    cloudwatch
        .put_metric_data()
        .namespace(METRICS_NAMESPACE)
        .set_metric_data(Some(data))
        .send()
        .await
        .aws("publishing processor metrics to CloudWatch")?;
    Ok(())
}

/// Logs a progress event and publishes the figures every `interval` until
/// cancelled, then once more, so the last period is not lost.
pub async fn report_loop(
    metrics: &ConsumerMetrics,
    cloudwatch: Option<aws_sdk_cloudwatch::Client>,
    stack: &str,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut before = ConsumerSnapshot::default();
    let mut warned = false;
    loop {
        let stop = tokio::select! {
            _ = tokio::time::sleep(interval) => false,
            _ = cancel.cancelled() => true,
        };
        let now = metrics.snapshot();
        // One event a period, figures as numbers, so that a log query can
        // sum and chart them.
        info!(
            records_in = now.records_in,
            tweets_stored = now.tweets_stored,
            items_written = now.items_written,
            dead_letters = now.dead_letters,
            batches = now.batches,
            batch_latency_ms_mean = now.batch_latency_ms_mean,
            batch_latency_ms_max = now.batch_latency_ms_max,
            write_calls = now.write_calls,
            write_units_items = now.write_units_items,
            write_units_aggregates = now.write_units_aggregates,
            write_units_checkpoints = now.write_units_checkpoints,
            shards = now.shards,
            millis_behind_latest = now.millis_behind_latest,
            stalled_shards = now.stalled_shards,
            latency_ms_p50 = now.latency_ms_p50,
            latency_ms_p99 = now.latency_ms_p99,
            "progress"
        );
        if let Some(cw) = &cloudwatch
            && let Err(e) = publish(cw, now.data(&before, stack)).await
            && !warned
        {
            // Metrics are not worth stopping the pipeline for; say it once.
            warn!(error = %e, "publishing metrics failed; further metric failures are not reported");
            warned = true;
        }
        before = now;
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(data: &[MetricDatum], name: &str) -> Option<f64> {
        data.iter()
            .find(|d| d.metric_name() == Some(name))
            .and_then(MetricDatum::value)
    }

    #[test]
    fn a_period_publishes_what_changed_in_it_and_every_kind_of_retry() {
        let before = ConsumerSnapshot {
            records_in: 100,
            tweets_stored: 90,
            dead_letters: 1,
            sdk_retries: 5,
            unprocessed_retries: 2,
            store_retries: 1,
            write_units_aggregates: 30,
            ..ConsumerSnapshot::default()
        };
        let now = ConsumerSnapshot {
            records_in: 150,
            tweets_stored: 130,
            dead_letters: 3,
            sdk_retries: 9,
            unprocessed_retries: 4,
            store_retries: 2,
            millis_behind_latest: 700,
            write_units_items: 12,
            write_units_aggregates: 70,
            write_units_checkpoints: 3,
            ..ConsumerSnapshot::default()
        };
        let data = now.data(&before, "s");
        assert_eq!(value(&data, "RecordsIn"), Some(50.0));
        assert_eq!(value(&data, "ItemsWritten"), Some(40.0));
        assert_eq!(value(&data, "DeadLetters"), Some(2.0));
        assert_eq!(value(&data, "Retries"), Some(4.0 + 2.0 + 1.0));
        assert_eq!(value(&data, "MillisBehindLatest"), Some(700.0));
        assert_eq!(value(&data, "StalledShards"), Some(0.0));
        assert_eq!(value(&data, "WriteUnitsItems"), Some(12.0));
        assert_eq!(value(&data, "WriteUnitsAggregates"), Some(40.0));
        assert_eq!(value(&data, "WriteUnitsCheckpoints"), Some(3.0));
        // No batch in the period: no latency datum rather than a zero.
        assert_eq!(value(&data, "BatchLatencyMillis"), None);
        assert!(
            data.iter()
                .all(|d| d.dimensions().iter().any(|x| x.value() == Some("s")))
        );
    }

    #[test]
    fn latency_percentiles_come_from_each_records_arrival_to_its_store() {
        let m = ConsumerMetrics::default();
        assert_eq!(m.snapshot_at(0).latency_ms_p99, 0, "nothing stored yet");
        // 100 records stored at t = 10,000 ms that arrived 1..=100 ms before.
        m.stored((0..100).map(|i| 10_000 - 1 - i), 10_000);
        let s = m.snapshot_at(10_000);
        assert_eq!(
            (s.latency_ms_p50, s.latency_ms_p95, s.latency_ms_p99),
            (50, 95, 99)
        );
        assert_eq!(s.latency_ms_max, 100);
        // A record stamped after the store (clock skew) counts as 1 ms.
        m.stored([20_000], 10_000);
        assert_eq!(m.snapshot_at(0).latency_ms_p50, 50);
    }

    #[test]
    fn lag_counts_records_waiting_behind_the_checkpoint_and_forgotten_shards_do_not() {
        let m = ConsumerMetrics::default();
        // The last GetRecords was at the tip, but a slice that arrived at
        // t = 1,000 ms is still not stored at t = 61,000 ms.
        m.behind("a", 0);
        m.pending("a", Some(1_000));
        m.stalled("a", true);
        let s = m.snapshot_at(61_000);
        assert_eq!(s.millis_behind_latest, 60_000);
        assert_eq!(s.stalled_shards, 1);
        assert_eq!(
            value(&s.data(&ConsumerSnapshot::default(), "x"), "StalledShards"),
            Some(1.0)
        );
        // Stored and checkpointed: the GetRecords figure is all that is left.
        m.pending("a", None);
        m.behind("a", 250);
        assert_eq!(m.snapshot_at(61_000).millis_behind_latest, 250);
        // The lease is lost: nothing of the shard counts any more.
        m.pending("a", Some(1_000));
        m.forget_shard("a");
        let s = m.snapshot_at(61_000);
        assert_eq!(
            (s.millis_behind_latest, s.stalled_shards, s.shards),
            (0, 0, 0)
        );
    }
}

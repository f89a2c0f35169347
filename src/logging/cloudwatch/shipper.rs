//! The background task that ships lines with PutLogEvents.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::aws::{ResultExt, backoff};

/// What a shipper did, for the closing lines of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShipStats {
    /// Lines CloudWatch Logs accepted.
    pub sent: u64,
    /// Lines dropped because the buffer was full.
    pub dropped_buffer_full: u64,
    /// Lines not delivered: retries exhausted, refused, or too old.
    pub dropped_undeliverable: u64,
    /// PutLogEvents calls made (successful ones).
    pub calls: u64,
}

/// The running shipper.
pub struct ShipperHandle {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<ShipStats>,
}

impl ShipperHandle {
    /// Stops taking lines, sends everything buffered (a few quick retries
    /// at most), reports any dropped count, and returns what was done.
    pub async fn flush_and_stop(self) -> ShipStats {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

impl Activator {
    /// Starts shipping to the log stream of `worker` ([`stream_name`]) in
    /// `group` (the stream is created; one that exists already is used) on
    /// the current tokio runtime, and activates the layer.
    pub fn start(self, client: Client, group: &str, worker: &str) -> ShipperHandle {
        let stop = CancellationToken::new();
        let shipper = Shipper {
            client,
            group: group.to_string(),
            stream: stream_name(worker),
            shared: self.shared.clone(),
            stream_ready: false,
            healthy: true,
            stop: stop.clone(),
            stats: ShipStats::default(),
            undeliverable: 0,
        };
        self.shared.active.store(true, Ordering::Relaxed);
        let task = tokio::spawn(shipper.run(self.receiver));
        ShipperHandle { stop, task }
    }
}

struct Shipper {
    client: Client,
    group: String,
    stream: String,
    shared: Arc<Shared>,
    stream_ready: bool,
    /// The last call succeeded: a failure is reported on stderr once.
    healthy: bool,
    stop: CancellationToken,
    stats: ShipStats,
    /// Dropped since the last report.
    undeliverable: u64,
}

/// How a batch went.
enum Sent {
    Delivered,
    Dropped,
}

impl Shipper {
    async fn run(mut self, mut receiver: mpsc::Receiver<Line>) -> ShipStats {
        let mut pending = VecDeque::new();
        let mut pending_bytes = 0usize;
        let mut ticker = tokio::time::interval(FLUSH_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => break,
                line = receiver.recv() => {
                    let Some(line) = line else { break };
                    pending_bytes += line.cost();
                    pending.push_back(line);
                    while pending.len() < MAX_EVENTS_PER_CALL && pending_bytes < MAX_BYTES_PER_CALL {
                        match receiver.try_recv() {
                            Ok(line) => {
                                pending_bytes += line.cost();
                                pending.push_back(line);
                            }
                            Err(_) => break,
                        }
                    }
                    if pending.len() >= MAX_EVENTS_PER_CALL || pending_bytes >= MAX_BYTES_PER_CALL {
                        self.ship(&mut pending).await;
                        pending_bytes = 0;
                    }
                }
                _ = ticker.tick() => {
                    self.ship(&mut pending).await;
                    pending_bytes = 0;
                }
            }
        }
        // Stopping: nothing new is taken; what is buffered is sent.
        self.shared.active.store(false, Ordering::Relaxed);
        receiver.close();
        while let Some(line) = receiver.recv().await {
            pending.push_back(line);
        }
        self.ship(&mut pending).await;
        // Whatever was dropped since the last report, said once more.
        if self.report_dropped(&mut pending) {
            self.ship(&mut pending).await;
        }
        // Dropped while the last report was being sent.
        self.stats.dropped_buffer_full += self.shared.dropped_full.load(Ordering::Relaxed);
        self.stats
    }

    /// Sends everything in `pending`, batch after batch.
    async fn ship(&mut self, pending: &mut VecDeque<Line>) {
        let before: usize = pending.iter().map(|l| l.text.len()).sum();
        let too_old = prepare(pending, now_ms());
        let after: usize = pending.iter().map(|l| l.text.len()).sum();
        self.release(before - after);
        self.undelivered(too_old as u64);
        loop {
            let batch = next_batch(pending);
            if batch.is_empty() {
                return;
            }
            let bytes: usize = batch.iter().map(|l| l.text.len()).sum();
            let count = batch.len() as u64;
            let outcome = self.send(batch).await;
            self.release(bytes);
            match outcome {
                // The report comes after every line still pending (now is
                // later than any of them): the order holds.
                Sent::Delivered => {
                    self.report_dropped(pending);
                }
                Sent::Dropped => self.undelivered(count),
            }
        }
    }

    /// Lines no longer buffered.
    fn release(&self, bytes: usize) {
        let _ =
            self.shared
                .buffered_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    Some(b.saturating_sub(bytes))
                });
    }

    /// Lines that will not be delivered.
    fn undelivered(&mut self, count: u64) {
        self.undeliverable += count;
        self.stats.dropped_undeliverable += count;
    }

    /// Queues a line saying how many lines were dropped since the last
    /// report, if any were; whether it did.
    fn report_dropped(&mut self, pending: &mut VecDeque<Line>) -> bool {
        let full = self.shared.dropped_full.swap(0, Ordering::Relaxed);
        self.stats.dropped_buffer_full += full;
        let undeliverable = std::mem::take(&mut self.undeliverable);
        if full + undeliverable == 0 {
            return false;
        }
        let mut fields = Map::new();
        fields.insert("message".into(), Value::String("log lines dropped".into()));
        fields.insert("dropped".into(), (full + undeliverable).into());
        fields.insert("dropped_buffer_full".into(), full.into());
        fields.insert("dropped_undeliverable".into(), undeliverable.into());
        let line = encode(now_ms(), "WARN", SELF_TARGET, fields, Vec::new());
        self.shared
            .buffered_bytes
            .fetch_add(line.text.len(), Ordering::Relaxed);
        pending.push_back(line);
        true
    }

    /// One batch, retried while the failure is transient (fewer tries once
    /// stopping).
    async fn send(&mut self, batch: Vec<Line>) -> Sent {
        let count = batch.len() as u64;
        let events: Vec<InputLogEvent> = batch
            .into_iter()
            .filter_map(|l| {
                InputLogEvent::builder()
                    .timestamp(l.timestamp_ms)
                    .message(l.text)
                    .build()
                    .ok()
            })
            .collect();
        let mut delays = backoff(Duration::from_millis(200), Duration::from_secs(10), Some(6));
        let mut recreated = false;
        let mut tries_when_stopping = 2;
        loop {
            let result = match self.ensure_stream().await {
                Ok(()) => self
                    .client
                    .put_log_events()
                    .log_group_name(&self.group)
                    .log_stream_name(&self.stream)
                    .set_log_events(Some(events.clone()))
                    .send()
                    .await
                    .aws(format!(
                        "putting log events into {} {}",
                        self.group, self.stream
                    )),
                Err(e) => Err(e),
            };
            let e = match result {
                Ok(out) => {
                    let rejected = out.rejected_log_events_info().map_or(0, |r| {
                        let old = r.too_old_log_event_end_index().map_or(0, |i| i + 1);
                        let expired = r.expired_log_event_end_index().map_or(0, |i| i + 1);
                        let new = r
                            .too_new_log_event_start_index()
                            .map_or(0, |i| count as i32 - i);
                        (old.max(expired) + new.max(0)) as u64
                    });
                    self.stats.sent += count - rejected.min(count);
                    self.undelivered(rejected.min(count));
                    self.stats.calls += 1;
                    if !self.healthy {
                        tracing::info!(target: SELF_TARGET, group = %self.group, "shipping log lines to CloudWatch Logs again");
                        self.healthy = true;
                    }
                    return Sent::Delivered;
                }
                Err(e) => e,
            };
            if e.is_not_found() && !recreated {
                // The stream (or the group) went away: create it again, once.
                self.stream_ready = false;
                recreated = true;
                continue;
            }
            let delay = if e.is_retryable() {
                if self.stop.is_cancelled() {
                    tries_when_stopping -= 1;
                    (tries_when_stopping > 0).then(|| Duration::from_millis(200))
                } else {
                    delays.next()
                }
            } else {
                None
            };
            if self.healthy {
                tracing::warn!(target: SELF_TARGET, error = %e, lines = count, "cannot ship log lines to CloudWatch Logs; dropping what cannot be delivered and counting it");
                self.healthy = false;
            }
            match delay {
                Some(d) => tokio::time::sleep(d).await,
                None => return Sent::Dropped,
            }
        }
    }

    /// Creates the log stream the first time (an existing one is fine).
    async fn ensure_stream(&mut self) -> Result<(), crate::aws::AwsError> {
        if self.stream_ready {
            return Ok(());
        }
        match self
            .client
            .create_log_stream()
            .log_group_name(&self.group)
            .log_stream_name(&self.stream)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_already_exists_exception()) => {}
            Err(e) => {
                return Err(crate::aws::AwsError::new(
                    format!("creating log stream {} in {}", self.stream, self.group),
                    e,
                ));
            }
        }
        self.stream_ready = true;
        Ok(())
    }
}

//! The processor's log lines in CloudWatch Logs, where an operator looks: a
//! `tracing` layer that turns each event into one JSON line and a
//! background task that ships them with PutLogEvents.
//!
//! # Installing and activating
//!
//! The layer is installed with the process's subscriber, at start, inert:
//! until activated it ignores every event (a bool read an event). The
//! command that runs the processor activates it once it knows the stack's
//! log group and has an AWS client:
//!
//! ```ignore
//! // at process start (logging::init's `extra` layer)
//! let (cloudwatch, activator) = logging::cloudwatch::layer();
//! logging::init(&settings, Some(Box::new(cloudwatch.filtered())));
//! // in `consume`, once the stack's names and the AWS clients are known
//! let worker = consumer::worker_id();
//! // the stream is the worker's id with `:` made `/` (stream_name)
//! let shipper = activator.start(aws.logs(), &names.processor_log_group, &worker);
//! // ... run the processor ...
//! let stats = shipper.flush_and_stop().await; // sends what is buffered
//! ```
//!
//! `filtered()` attaches the layer's own per-layer filter (INFO and above,
//! never the AWS SDK's and the HTTP stack's crates), so the stderr layer's
//! filter and this one do not constrain each other. Only the first
//! `start` of an [`Activator`] does anything (it is consumed).
//!
//! # The lines
//!
//! The shape of tracing-subscriber's JSON formatter with flattened events:
//! `timestamp` (RFC 3339), `level`, `target`, `message` and the event's
//! fields at the top level (numbers stay numbers), `spans` (outermost
//! first, each its `name` and fields); the spans' fields are also copied to
//! the top level where the event has no field of that name (the innermost
//! span wins), so a CloudWatch Logs Insights query filters on `shard`
//! directly.
//!
//! # Limits and failures
//!
//! PutLogEvents' rules
//! (<https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>):
//! at most 10,000 events and 1,048,576 bytes a call, counting each event's
//! UTF-8 message plus 26 bytes; events in chronological order within a
//! call, spanning at most 24 hours; none older than 14 days; and an event
//! of at most 256 KB (message and overhead), beyond which a line's longest
//! strings are cut with a marker and the line says `"truncated": true`.
//!
//! The buffer between the layer and the shipper is bounded (lines and
//! bytes): when it is full the line is dropped and counted, never waited
//! for. Transient errors (throttling, 5xx, timeouts) are retried with the
//! project's backoff; a batch that cannot be delivered is dropped and
//! counted. Once a call succeeds again, the dropped count is shipped as a
//! log line of its own (`"message": "log lines dropped"`).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

use crate::aws::{ResultExt, backoff};

/// Events a PutLogEvents call may carry.
pub const MAX_EVENTS_PER_CALL: usize = 10_000;
/// Bytes a PutLogEvents call may carry: messages plus [`EVENT_OVERHEAD`] each.
pub const MAX_BYTES_PER_CALL: usize = 1_048_576;
/// What CloudWatch Logs counts for each event besides its message.
pub const EVENT_OVERHEAD: usize = 26;
/// The largest event (message and overhead): 256 KB.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// The longest message of one event.
pub const MAX_MESSAGE_BYTES: usize = MAX_EVENT_BYTES - EVENT_OVERHEAD;
/// The widest time span of one call's events.
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 60 * 60 * 1000;
/// Events older than this are refused by CloudWatch Logs: not sent.
pub const MAX_AGE_MS: i64 = 14 * 24 * 60 * 60 * 1000;
/// The end of a string that was cut to fit [`MAX_MESSAGE_BYTES`].
pub const TRUNCATED_MARKER: &str = "…[truncated]";

/// Lines the buffer holds at most between the layer and the shipper.
pub const BUFFER_LINES: usize = 10_000;
/// Bytes of lines the buffer (and the shipper's batch at hand) hold at most.
pub const BUFFER_BYTES: usize = 8 * 1024 * 1024;
/// How often the shipper sends what it has, when no batch fills sooner.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// The least severe level shipped.
pub const MIN_LEVEL: Level = Level::INFO;

/// Targets never shipped: the AWS SDK and the HTTP stack under it (their
/// events about a PutLogEvents call would make more PutLogEvents calls),
/// and this module's own reports about shipping (they go to stderr; the
/// dropped counts are shipped as lines of their own).
const NEVER_SHIPPED: &[&str] = &[
    "aws_", "aws-", "hyper", "h2", "http", "rustls", "tokio", "tower", "mio", "want",
];

/// This module's own target, for its reports on stderr.
const SELF_TARGET: &str = "streamstack::logging::cloudwatch";

/// Whether events of `metadata` are shipped at all.
pub fn ships(metadata: &Metadata<'_>) -> bool {
    *metadata.level() <= MIN_LEVEL
        && metadata.target() != SELF_TARGET
        && !NEVER_SHIPPED
            .iter()
            .any(|prefix| metadata.target().starts_with(prefix))
}

/// One encoded line: its time (ms since the epoch) and its JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub timestamp_ms: i64,
    pub text: String,
}

impl Line {
    /// What the line counts against a call's byte limit.
    pub fn cost(&self) -> usize {
        self.text.len() + EVENT_OVERHEAD
    }
}

/// What the layer and the shipper share.
#[derive(Debug, Default)]
struct Shared {
    active: AtomicBool,
    /// Bytes of lines in the buffer and in the shipper's hands.
    buffered_bytes: AtomicUsize,
    /// Lines dropped because the buffer was full.
    dropped_full: AtomicU64,
}

/// The layer: inert until its [`Activator`] starts the shipper.
pub struct CloudWatchLayer {
    shared: Arc<Shared>,
    sender: mpsc::Sender<Line>,
    byte_budget: usize,
}

/// Starts the shipper of a [`CloudWatchLayer`] (see the module's docs).
pub struct Activator {
    shared: Arc<Shared>,
    receiver: mpsc::Receiver<Line>,
}

/// The layer, to install at process start, and what activates it later.
pub fn layer() -> (CloudWatchLayer, Activator) {
    layer_with(BUFFER_LINES, BUFFER_BYTES)
}

fn layer_with(lines: usize, bytes: usize) -> (CloudWatchLayer, Activator) {
    let shared = Arc::new(Shared::default());
    let (sender, receiver) = mpsc::channel(lines.max(1));
    (
        CloudWatchLayer {
            shared: shared.clone(),
            sender,
            byte_budget: bytes,
        },
        Activator { shared, receiver },
    )
}

/// The layer's own filter: [`ships`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ShipFilter;

impl<S> Filter<S> for ShipFilter {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        ships(metadata)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(MIN_LEVEL.into())
    }
}

impl CloudWatchLayer {
    /// The layer with its per-layer filter ([`ShipFilter`]): what to install.
    pub fn filtered<S>(self) -> Filtered<Self, ShipFilter, S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        self.with_filter(ShipFilter)
    }

    /// Hands a line to the shipper, or drops and counts it: never waits.
    fn offer(&self, line: Line) {
        let size = line.text.len();
        let before = self
            .shared
            .buffered_bytes
            .fetch_add(size, Ordering::Relaxed);
        if before + size > self.byte_budget {
            self.shared
                .buffered_bytes
                .fetch_sub(size, Ordering::Relaxed);
            self.shared.dropped_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Err(e) = self.sender.try_send(line) {
            self.shared
                .buffered_bytes
                .fetch_sub(size, Ordering::Relaxed);
            if matches!(e, mpsc::error::TrySendError::Full(_)) {
                self.shared.dropped_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A span's fields, kept in its extensions.
struct SpanFields(Map<String, Value>);

impl<S> Layer<S> for CloudWatchLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !ships(attrs.metadata()) {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = JsonVisitor::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(SpanFields(fields.0));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            let mut more = JsonVisitor::default();
            values.record(&mut more);
            fields.extend(more.0);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !self.shared.active.load(Ordering::Relaxed) || !ships(event.metadata()) {
            return;
        }
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let fields = extensions
                    .get::<SpanFields>()
                    .map(|f| f.0.clone())
                    .unwrap_or_default();
                spans.push((span.name().to_string(), fields));
            }
        }
        let mut fields = JsonVisitor::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let line = encode(
            now_ms(),
            meta.level().as_str(),
            meta.target(),
            fields.0,
            spans,
        );
        self.offer(line);
    }
}

/// Fields as JSON values: numbers and booleans as such, the rest as text.
#[derive(Default)]
struct JsonVisitor(Map<String, Value>);

impl Visit for JsonVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            Value::String(format!("{value:?}")),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_string(), Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_string(), Value::String(value.to_string()));
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// RFC 3339 in UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// One line of JSON for an event (see the module's docs for its shape),
/// cut to [`MAX_MESSAGE_BYTES`] when it is longer.
pub fn encode(
    timestamp_ms: i64,
    level: &str,
    target: &str,
    fields: Map<String, Value>,
    spans: Vec<(String, Map<String, Value>)>,
) -> Line {
    let mut object = Map::new();
    // Spans' fields first, innermost last, so the event's own and the
    // innermost span's win.
    for (_, span_fields) in &spans {
        for (k, v) in span_fields {
            object.insert(k.clone(), v.clone());
        }
    }
    object.extend(fields);
    object.insert("timestamp".into(), Value::String(rfc3339(timestamp_ms)));
    object.insert("level".into(), Value::String(level.to_string()));
    object.insert("target".into(), Value::String(target.to_string()));
    if !spans.is_empty() {
        let list = spans
            .into_iter()
            .map(|(name, mut f)| {
                f.insert("name".into(), Value::String(name));
                Value::Object(f)
            })
            .collect();
        object.insert("spans".into(), Value::Array(list));
    }
    Line {
        timestamp_ms,
        text: fit(object),
    }
}

/// The object's JSON text within [`MAX_MESSAGE_BYTES`]: the longest strings
/// are cut (ending in [`TRUNCATED_MARKER`]) and `"truncated": true` added;
/// if many small fields are still too long, only timestamp, level, target
/// and the (cut) message are kept. Always valid JSON.
fn fit(mut object: Map<String, Value>) -> String {
    fit_within(&mut object, MAX_MESSAGE_BYTES)
}

fn fit_within(object: &mut Map<String, Value>, limit: usize) -> String {
    let text = Value::Object(object.clone()).to_string();
    if text.len() <= limit {
        return text;
    }
    object.insert("truncated".into(), Value::Bool(true));
    // Cut the longest top-level strings (span lists cut as a whole) until it fits.
    object.remove("spans");
    loop {
        let text = Value::Object(object.clone()).to_string();
        if text.len() <= limit {
            return text;
        }
        let excess = text.len() - limit;
        let longest = object
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.len())))
            .filter(|(_, len)| *len > TRUNCATED_MARKER.len() + 16)
            .max_by_key(|(_, len)| *len);
        let Some((key, len)) = longest else { break };
        // Cut the excess; when escaping makes the text longer than the
        // string itself, that may not be possible: halve it and look again.
        let keep = if len > excess + TRUNCATED_MARKER.len() {
            len - excess - TRUNCATED_MARKER.len()
        } else {
            len / 2
        };
        let s = object[&key].as_str().unwrap_or_default();
        let mut cut = keep;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let shorter = format!("{}{TRUNCATED_MARKER}", &s[..cut]);
        object.insert(key, Value::String(shorter));
    }
    // Many small fields: keep only what says what happened.
    let mut minimal = Map::new();
    for key in ["timestamp", "level", "target", "message"] {
        if let Some(v) = object.get(key) {
            minimal.insert(key.into(), v.clone());
        }
    }
    minimal.insert("truncated".into(), Value::Bool(true));
    let text = Value::Object(minimal.clone()).to_string();
    if text.len() <= limit {
        return text;
    }
    minimal.remove("message");
    Value::Object(minimal).to_string()
}

/// Takes the next PutLogEvents batch off the front of `pending` (sorted by
/// time): as many lines as fit in [`MAX_EVENTS_PER_CALL`] events,
/// [`MAX_BYTES_PER_CALL`] bytes and [`MAX_BATCH_SPAN_MS`].
pub fn next_batch(pending: &mut VecDeque<Line>) -> Vec<Line> {
    let mut bytes = 0;
    let mut count = 0;
    let first = pending.front().map(|l| l.timestamp_ms);
    for line in pending.iter() {
        if count == MAX_EVENTS_PER_CALL
            || bytes + line.cost() > MAX_BYTES_PER_CALL
            || first.is_some_and(|f| line.timestamp_ms - f >= MAX_BATCH_SPAN_MS)
        {
            break;
        }
        bytes += line.cost();
        count += 1;
    }
    pending.drain(..count).collect()
}

/// Sorts `pending` by time (stable: lines of the same millisecond keep
/// their order) and removes the lines CloudWatch Logs would refuse as too
/// old; returns how many were removed.
pub fn prepare(pending: &mut VecDeque<Line>, now_ms: i64) -> usize {
    pending
        .make_contiguous()
        .sort_by_key(|line| line.timestamp_ms);
    let before = pending.len();
    pending.retain(|line| now_ms - line.timestamp_ms < MAX_AGE_MS);
    before - pending.len()
}

/// A log stream name for `worker` (the consumer's worker id,
/// `host:pid:random`): CloudWatch Logs refuses `:` and `*` in stream names
/// and names over 512 characters
/// (<https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogStream.html>),
/// so those characters become `/` and the name is cut.
pub fn stream_name(worker: &str) -> String {
    let mut name: String = worker
        .chars()
        .map(|c| if matches!(c, ':' | '*') { '/' } else { c })
        .collect();
    let mut cut = name.len().min(512);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    name.truncate(cut);
    if name.is_empty() {
        name.push_str("worker");
    }
    name
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn line(ts: i64, size: usize) -> Line {
        Line {
            timestamp_ms: ts,
            text: "x".repeat(size),
        }
    }

    #[test]
    fn a_batch_holds_at_most_10000_events() {
        let mut pending: VecDeque<Line> = (0..10_001).map(|i| line(1_000 + i, 10)).collect();
        let batch = next_batch(&mut pending);
        assert_eq!(batch.len(), 10_000);
        assert_eq!(pending.len(), 1);
        assert_eq!(next_batch(&mut pending).len(), 1);
        assert!(next_batch(&mut pending).is_empty());
    }

    #[test]
    fn a_batch_counts_26_bytes_an_event_within_1_mib() {
        // 1000-byte messages cost 1026: 1,048,576 / 1026 = 1022 fit, not 1048.
        let mut pending: VecDeque<Line> = (0..2_000).map(|i| line(i, 1_000)).collect();
        let batch = next_batch(&mut pending);
        assert_eq!(batch.len(), 1_048_576 / 1_026);
        let bytes: usize = batch.iter().map(Line::cost).sum();
        assert!(bytes <= MAX_BYTES_PER_CALL);
        assert!(bytes + 1_026 > MAX_BYTES_PER_CALL);
        // Exactly at the limit is allowed.
        let exact = MAX_BYTES_PER_CALL / 2 - EVENT_OVERHEAD;
        let mut pending: VecDeque<Line> = (0..3).map(|i| line(i, exact)).collect();
        assert_eq!(next_batch(&mut pending).len(), 2);
    }

    #[test]
    fn a_batch_spans_less_than_24_hours_and_lines_are_sorted_first() {
        let now = 100 * MAX_BATCH_SPAN_MS;
        let mut pending: VecDeque<Line> = [now - 10, now - MAX_BATCH_SPAN_MS - 40, now - 30]
            .into_iter()
            .map(|ts| line(ts, 5))
            .collect();
        assert_eq!(prepare(&mut pending, now), 0);
        let times: Vec<i64> = pending.iter().map(|l| l.timestamp_ms).collect();
        assert_eq!(times, [now - MAX_BATCH_SPAN_MS - 40, now - 30, now - 10]);
        let first = next_batch(&mut pending);
        assert_eq!(
            first.len(),
            1,
            "the oldest line is more than 24 h before the next"
        );
        assert_eq!(next_batch(&mut pending).len(), 2);
    }

    #[test]
    fn lines_older_than_14_days_are_not_sent_and_equal_times_keep_their_order() {
        let now = 30 * 24 * 60 * 60 * 1000;
        let mut pending: VecDeque<Line> = VecDeque::new();
        pending.push_back(Line {
            timestamp_ms: now,
            text: "b".into(),
        });
        pending.push_back(Line {
            timestamp_ms: now - MAX_AGE_MS - 1,
            text: "old".into(),
        });
        pending.push_back(Line {
            timestamp_ms: now,
            text: "c".into(),
        });
        pending.push_back(Line {
            timestamp_ms: now - 1,
            text: "a".into(),
        });
        assert_eq!(prepare(&mut pending, now), 1);
        let texts: Vec<&str> = pending.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c"]);
    }

    #[test]
    fn an_oversized_line_is_cut_with_a_marker_and_stays_json() {
        let mut fields = Map::new();
        fields.insert("message".into(), Value::String("m".repeat(300_000)));
        fields.insert("shard".into(), Value::String("shardId-000000000001".into()));
        fields.insert("count".into(), 7.into());
        let l = encode(
            1_700_000_000_000,
            "ERROR",
            "streamstack::x",
            fields,
            Vec::new(),
        );
        assert!(l.text.len() <= MAX_MESSAGE_BYTES, "{}", l.text.len());
        assert!(l.cost() <= MAX_EVENT_BYTES);
        let v: Value = serde_json::from_str(&l.text).unwrap();
        assert_eq!(v["truncated"], true);
        assert!(v["message"].as_str().unwrap().ends_with(TRUNCATED_MARKER));
        assert!(
            v["message"].as_str().unwrap().len() > 200_000,
            "cut no more than needed"
        );
        assert_eq!(v["shard"], "shardId-000000000001");
        assert_eq!(v["count"], 7);
        assert_eq!(v["level"], "ERROR");
        // Multi-byte text and characters JSON escapes are cut on a character boundary.
        let mut fields = Map::new();
        fields.insert("message".into(), Value::String("é\"\n".repeat(200_000)));
        let l = encode(0, "INFO", "t", fields, Vec::new());
        assert!(l.text.len() <= MAX_MESSAGE_BYTES, "{}", l.text.len());
        let v: Value = serde_json::from_str(&l.text).unwrap();
        assert_eq!(v["truncated"], true);
        // Many small fields: only what says what happened is kept.
        let mut fields = Map::new();
        for i in 0..30_000 {
            fields.insert(format!("f{i}"), Value::String("abcdefgh".into()));
        }
        fields.insert("message".into(), Value::String("many".into()));
        let l = encode(0, "INFO", "t", fields, Vec::new());
        assert!(l.text.len() <= MAX_MESSAGE_BYTES);
        let v: Value = serde_json::from_str(&l.text).unwrap();
        assert_eq!(v["message"], "many");
        assert_eq!(v["truncated"], true);
        // A line that fits is left alone.
        let mut fields = Map::new();
        fields.insert("message".into(), Value::String("short".into()));
        let v: Value =
            serde_json::from_str(&encode(0, "INFO", "t", fields, Vec::new()).text).unwrap();
        assert!(v.get("truncated").is_none());
    }

    /// Events through a subscriber with the layer, activated without a shipper.
    fn captured(lines: usize, bytes: usize, body: impl FnOnce()) -> (Vec<Value>, u64) {
        let (layer, mut activator) = layer_with(lines, bytes);
        activator.shared.active.store(true, Ordering::Relaxed);
        let subscriber = tracing_subscriber::registry().with(layer.filtered());
        tracing::subscriber::with_default(subscriber, body);
        let mut out = Vec::new();
        while let Ok(line) = activator.receiver.try_recv() {
            out.push(serde_json::from_str(&line.text).unwrap());
        }
        (out, activator.shared.dropped_full.load(Ordering::Relaxed))
    }

    #[test]
    fn events_become_json_lines_with_their_fields_and_their_spans_fields() {
        let (lines, dropped) = captured(100, 1 << 20, || {
            let span = tracing::info_span!("shard", shard = "shardId-000000000001");
            let _entered = span.enter();
            tracing::info!(records_in = 120u64, ok = true, "progress");
            tracing::error!(
                table = "t-tweets",
                error = "ServiceUnavailable",
                "store failed"
            );
        });
        assert_eq!(dropped, 0);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["message"], "progress");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["records_in"], 120);
        assert_eq!(lines[0]["ok"], true);
        assert_eq!(lines[0]["shard"], "shardId-000000000001");
        assert_eq!(lines[0]["spans"][0]["name"], "shard");
        assert_eq!(lines[0]["spans"][0]["shard"], "shardId-000000000001");
        assert!(
            lines[0]["target"]
                .as_str()
                .unwrap()
                .starts_with("streamstack")
        );
        assert!(lines[0]["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["level"], "ERROR");
        assert_eq!(lines[1]["table"], "t-tweets");
    }

    #[test]
    fn the_sdk_the_http_stack_debug_and_its_own_reports_are_never_shipped() {
        let (lines, _) = captured(100, 1 << 20, || {
            tracing::warn!(target: "aws_smithy_runtime::client::orchestrator", "retrying");
            tracing::error!(target: "aws_sdk_cloudwatchlogs::operation", "PutLogEvents failed");
            tracing::warn!(target: "hyper_util::client", "connection reset");
            tracing::warn!(target: "rustls::conn", "alert");
            tracing::warn!(target: SELF_TARGET, "cannot ship");
            tracing::debug!("too detailed");
            tracing::info!("kept");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["message"], "kept");
    }

    #[test]
    fn an_inert_layer_ships_nothing() {
        let (layer, mut activator) = layer_with(10, 1 << 20);
        let subscriber = tracing_subscriber::registry().with(layer.filtered());
        tracing::subscriber::with_default(subscriber, || tracing::info!("before activation"));
        assert!(activator.receiver.try_recv().is_err());
        assert_eq!(activator.shared.dropped_full.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_full_buffer_drops_and_counts_instead_of_waiting() {
        let (lines, dropped) = captured(3, 1 << 20, || {
            for i in 0..10 {
                tracing::info!(i, "line");
            }
        });
        assert_eq!(lines.len(), 3);
        assert_eq!(dropped, 7);
        // The byte budget bounds it too.
        let (lines, dropped) = captured(1_000, 1_000, || {
            for i in 0..10 {
                tracing::info!(i, padding = "p".repeat(300), "line");
            }
        });
        assert!(lines.len() < 4, "{}", lines.len());
        assert_eq!(lines.len() as u64 + dropped, 10);
    }

    #[test]
    fn a_worker_id_becomes_a_valid_stream_name() {
        assert_eq!(
            stream_name("ip-10-0-0-1:4242:0000abcd"),
            "ip-10-0-0-1/4242/0000abcd"
        );
        assert_eq!(stream_name("a*b"), "a/b");
        assert_eq!(stream_name(""), "worker");
        assert_eq!(stream_name(&"é".repeat(300)).len(), 512);
    }

    use crate::aws::replay::{Answer, Replay};

    #[tokio::test]
    async fn lines_are_shipped_after_a_transient_failure_and_drops_are_reported() {
        let replay = Replay::start().await;
        replay.answer(
            "CreateLogStream",
            Answer::json_error(
                400,
                "ResourceAlreadyExistsException",
                "The specified log stream already exists",
            ),
        );
        replay
            .answer(
                "PutLogEvents",
                Answer::json_error(503, "ServiceUnavailableException", "try again"),
            )
            .answer(
                "PutLogEvents",
                Answer::json(serde_json::json!({ "nextSequenceToken": "1" })),
            );
        let aws = replay.aws().await;
        let (layer, activator) = layer_with(100, 1 << 20);
        let shared = activator.shared.clone();
        let subscriber = tracing_subscriber::registry().with(layer.filtered());
        let _default = tracing::subscriber::set_default(subscriber);
        let shipper = activator.start(aws.logs(), "/streamstack/s/processor", "host:1:abc");
        let span = tracing::info_span!("shard", shard = "shardId-000000000002");
        {
            let _entered = span.enter();
            tracing::info!(records_in = 3u64, "progress");
            tracing::error!(error = "boom", "store failed");
        }
        // As if the buffer had overflowed while CloudWatch was away.
        shared.dropped_full.fetch_add(4, Ordering::Relaxed);
        let stats = shipper.flush_and_stop().await;
        assert_eq!(replay.requests("CreateLogStream").len(), 1);
        let puts = replay.requests("PutLogEvents");
        assert!(
            puts.len() >= 3,
            "a retry, the lines, the report: {}",
            puts.len()
        );
        let delivered: Vec<Value> = puts[1..]
            .iter()
            .flat_map(|r| {
                let body: Value = serde_json::from_str(&r.body).unwrap();
                assert_eq!(body["logGroupName"], "/streamstack/s/processor");
                assert_eq!(body["logStreamName"], "host/1/abc");
                body["logEvents"].as_array().unwrap().clone()
            })
            .collect();
        let messages: Vec<Value> = delivered
            .iter()
            .map(|e| serde_json::from_str(e["message"].as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(messages[0]["message"], "progress");
        assert_eq!(messages[0]["shard"], "shardId-000000000002");
        assert_eq!(messages[1]["error"], "boom");
        let report = messages
            .iter()
            .find(|m| m["message"] == "log lines dropped")
            .unwrap();
        assert_eq!(report["dropped"], 4);
        assert_eq!(report["dropped_buffer_full"], 4);
        assert_eq!(stats.dropped_buffer_full, 4);
        assert_eq!(stats.dropped_undeliverable, 0);
        assert_eq!(stats.sent, 3);
        // Nothing of the SDK's own logging about those calls was shipped.
        assert!(
            messages
                .iter()
                .all(|m| !m["target"].as_str().unwrap().starts_with("aws"))
        );
    }

    #[tokio::test]
    async fn a_refused_batch_is_dropped_counted_and_reported_once_calls_succeed() {
        let replay = Replay::start().await;
        replay.answer("CreateLogStream", Answer::json(serde_json::json!({})));
        replay
            .answer(
                "PutLogEvents",
                Answer::json_error(400, "InvalidParameterException", "refused"),
            )
            .answer("PutLogEvents", Answer::json(serde_json::json!({})));
        let aws = replay.aws().await;
        let (layer, activator) = layer_with(100, 1 << 20);
        let subscriber = tracing_subscriber::registry().with(layer.filtered());
        let _default = tracing::subscriber::set_default(subscriber);
        let shipper = activator.start(aws.logs(), "g", "s");
        tracing::info!("one");
        tracing::info!("two");
        let stats = shipper.flush_and_stop().await;
        assert_eq!(stats.dropped_undeliverable, 2);
        assert_eq!(stats.sent, 1, "the report");
        let puts = replay.requests("PutLogEvents");
        assert_eq!(puts.len(), 2);
        let body: Value = serde_json::from_str(&puts[1].body).unwrap();
        let report: Value =
            serde_json::from_str(body["logEvents"][0]["message"].as_str().unwrap()).unwrap();
        assert_eq!(report["dropped_undeliverable"], 2);
    }
}

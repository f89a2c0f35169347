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

//!
//! Files: this one holds the layer and the filter, [`lines`] the JSON lines
//! and PutLogEvents' batch rules, [`shipper`] the background task.

mod lines;
mod shipper;
#[cfg(test)]
mod tests;

pub use lines::*;
pub use shipper::{ShipStats, ShipperHandle};

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

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

//! The one logging path: every layer emits `tracing` events with fields
//! (`stack`, `shard`, `table`, counts as numbers); this module installs the
//! one subscriber that writes them to stderr.
//!
//! - On a terminal: one human line an event, the message then its fields
//!   (`warning:`/`error:` in front of those levels, nothing in front of info).
//! - Otherwise (a service's journal, CI, a pipe), or with `--log-format json`:
//!   one JSON object a line, with the event's fields and its spans' fields
//!   at the top level, so a log query can count and filter them.
//! - `-q` shows warnings and errors only, `-v` debug, `-vv` trace; `RUST_LOG`
//!   (an `EnvFilter` directive) overrides both. The AWS SDK's own crates stay
//!   at warn unless `RUST_LOG` asks for more: their debug output is a flood.
//!
//! What a command prints as its result (tables, reports, JSON on stdout) is
//! rendering, done by `cli`; this is for what happens along the way.

pub mod cloudwatch;
pub mod read;

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human lines on a terminal, JSON lines otherwise.
    #[default]
    Auto,
    /// Human lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// What the command line asked of the logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// `-v` count minus `-q` count: 0 is info, negative is quieter.
    pub verbosity: i8,
    /// Color in human lines.
    pub color: bool,
}

impl LogSettings {
    /// The `EnvFilter` directives: `RUST_LOG` when set, else this crate at
    /// the asked level and everything else (the SDK, hyper) at warn.
    fn directives(&self) -> String {
        if let Ok(directives) = std::env::var(EnvFilter::DEFAULT_ENV)
            && !directives.trim().is_empty()
        {
            return directives;
        }
        let level = match self.verbosity {
            i8::MIN..=-1 => "warn",
            0 => "info",
            1 => "debug",
            _ => "trace",
        };
        format!("warn,streamstack={level}")
    }

    fn json(&self) -> bool {
        match self.format {
            LogFormat::Json => true,
            LogFormat::Text => false,
            LogFormat::Auto => !std::io::stderr().is_terminal(),
        }
    }
}

/// The stderr layer for `settings`, writing to `writer` (a test passes a buffer).
pub fn stderr_layer<S, W>(settings: &LogSettings, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    if settings.json() {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(writer)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .event_format(HumanLine)
            .with_ansi(settings.color)
            .with_writer(writer)
            .boxed()
    }
}

/// Installs the process's subscriber: stderr as `settings` say, plus
/// `extra` (the CloudWatch Logs shipper of the processor). Once only; a
/// second call (tests in one process) leaves the first in place.
pub fn init(settings: &LogSettings, extra: Option<Box<dyn Layer<Registry> + Send + Sync>>) {
    let filter = EnvFilter::try_new(settings.directives()).unwrap_or_else(|_| {
        // A malformed RUST_LOG must not silence the tool: fall back to the default.
        EnvFilter::new("warn,streamstack=info")
    });
    let _ = Registry::default()
        .with(extra)
        .with(stderr_layer(settings, std::io::stderr).with_filter(filter))
        .try_init();
}

/// A human line: `warning: ` or `error: ` before those levels, then the
/// message, then the fields as `name=value`.
struct HumanLine;

impl<S, N> FormatEvent<S, N> for HumanLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        let prefix = match level {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            Level::INFO => "",
            Level::DEBUG => "debug: ",
            Level::TRACE => "trace: ",
        };
        if writer.has_ansi_escapes() && level <= Level::WARN {
            let color = if level == Level::ERROR { "31" } else { "33" };
            write!(writer, "\x1b[1;{color}m{prefix}\x1b[0m")?;
        } else {
            write!(writer, "{prefix}")?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        // The fields of the spans the event happened in (a shard reader's
        // `shard`, say), outermost first.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) =
                    extensions.get::<tracing_subscriber::fmt::FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, " {fields}")?;
                }
            }
        }
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    fn capture(format: LogFormat, body: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let settings = LogSettings {
            format,
            verbosity: 0,
            color: false,
        };
        let subscriber = Registry::default().with(stderr_layer(&settings, buffer.clone()));
        tracing::subscriber::with_default(subscriber, body);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    fn emit() {
        let span = tracing::info_span!("shard", shard = "shardId-000000000001");
        let _entered = span.enter();
        tracing::info!(records_in = 120u64, items_written = 118u64, "progress");
        tracing::warn!(
            table = "t-tweets",
            error = "ServiceUnavailable",
            "store retried"
        );
    }

    #[test]
    fn json_lines_hold_one_event_each_with_its_fields_and_its_spans_fields() {
        let out = capture(LogFormat::Json, emit);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["message"], "progress");
        // Numbers stay numbers: a log query sums them.
        assert_eq!(lines[0]["records_in"], 120);
        assert_eq!(lines[0]["items_written"], 118);
        assert_eq!(lines[0]["spans"][0]["shard"], "shardId-000000000001");
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["table"], "t-tweets");
        assert_eq!(lines[1]["error"], "ServiceUnavailable");
        assert!(lines[1]["timestamp"].is_string());
    }

    #[test]
    fn human_lines_put_the_message_first_and_mark_warnings() {
        let out = capture(LogFormat::Text, emit);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "progress records_in=120 items_written=118 shard=\"shardId-000000000001\"",
                "warning: store retried table=\"t-tweets\" error=\"ServiceUnavailable\" shard=\"shardId-000000000001\"",
            ]
        );
    }

    #[test]
    fn the_sdk_stays_at_warn_unless_asked() {
        // RUST_LOG, when a developer sets it, wins by design.
        if std::env::var_os("RUST_LOG").is_some() {
            return;
        }
        let quiet = LogSettings {
            verbosity: -1,
            ..Default::default()
        };
        let verbose = LogSettings {
            verbosity: 2,
            ..Default::default()
        };
        assert_eq!(quiet.directives(), "warn,streamstack=warn");
        assert_eq!(LogSettings::default().directives(), "warn,streamstack=info");
        assert_eq!(verbose.directives(), "warn,streamstack=trace");
    }
}

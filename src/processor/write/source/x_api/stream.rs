//! The stream itself: connection after connection, each read line by line
//! into the record channel, reconnected on X's schedule; what it drops and
//! why it reconnects goes to [`StreamOptions::log`].

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::Method;
use hyper::body::Body as _;
use hyper::header::{CONTENT_TYPE, HeaderMap};
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::client::{MAX_ERROR_BODY, XApiClient, error_chain, read_body};
use super::error::{XApiError, describe_problem};
use super::lines::{LineBuffer, LineKind, Piece, Tail, is_json_object, to_record};
use super::reconnect::{Failure, ReconnectPolicy, Sleeper, TokioSleeper, status_failure};
use super::stats::StreamStats;
use super::{MAX_LINE, STALL_TIMEOUT, STREAM_PATH, STREAM_QUERY};
use crate::processor::Record;

/// A copy, as text, of what the stream says it dropped and why it
/// reconnects: one line a call, already scrubbed of the token. Every such
/// line is first a `tracing` event with its figures as fields; this hook is
/// for callers that want the text (the tests).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// How the stream waits, what it buffers, and where it logs.
#[derive(Clone)]
pub struct StreamOptions {
    /// Silence after which a connection counts as dead ([`STALL_TIMEOUT`]);
    /// also the most a response head or an error body may take.
    pub stall_timeout: Duration,
    /// The longest line kept, without its `\r\n` ([`MAX_LINE`]). A longer
    /// one is dropped without being buffered further.
    pub max_line: usize,
    pub sleeper: Arc<dyn Sleeper>,
    /// Nothing by default (the `tracing` events are the log).
    pub log: Log,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            stall_timeout: STALL_TIMEOUT,
            max_line: MAX_LINE,
            sleeper: Arc::new(TokioSleeper),
            log: Arc::new(|_: &str| {}),
        }
    }
}

impl fmt::Debug for StreamOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamOptions")
            .field("stall_timeout", &self.stall_timeout)
            .field("max_line", &self.max_line)
            .finish_non_exhaustive()
    }
}

impl XApiClient {
    /// Reads the stream into `tx` until `cancel` fires (then `Ok`), or until
    /// X refuses it for a reason retrying cannot fix, or nothing takes
    /// records any more (then `Err`).
    pub async fn stream(
        &self,
        tx: &Sender<Record>,
        cancel: &CancellationToken,
        options: &StreamOptions,
    ) -> Result<StreamStats, XApiError> {
        let mut stats = StreamStats::default();
        let mut policy = ReconnectPolicy::new();
        loop {
            let ended = tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                ended = self.connection(tx, options, &mut stats, &mut policy) => Some(ended?),
            };
            let Some(ended) = ended else {
                return Ok(stats);
            };
            stats.reconnects.count(ended.failure);
            let scheduled = policy.next_delay(ended.failure);
            let delay = match ended.retry_after {
                Some(hint) => scheduled.max(hint.min(ReconnectPolicy::RATE_LIMITED_MAX)),
                None => scheduled,
            };
            let because = if delay > scheduled {
                " (as the response asked)"
            } else {
                ""
            };
            let why = self.token.scrub(&ended.why);
            warn!(
                failure = ?ended.failure,
                delay_ms = delay.as_millis() as u64,
                as_asked = delay > scheduled,
                reason = %why,
                "X API stream: reconnecting"
            );
            (options.log)(&format!(
                "{why}; reconnecting in {}{because}",
                humantime::format_duration(delay)
            ));
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(stats),
                () = options.sleeper.sleep(delay) => {}
            }
        }
    }

    /// One connection, from request to its end.
    async fn connection(
        &self,
        tx: &Sender<Record>,
        options: &StreamOptions,
        stats: &mut StreamStats,
        policy: &mut ReconnectPolicy,
    ) -> Result<Ended, XApiError> {
        const DURING: &str = "GET /2/tweets/search/stream";
        let stall = options.stall_timeout;
        let request = self.request(Method::GET, &format!("{STREAM_PATH}?{STREAM_QUERY}"), None)?;
        let response = match tokio::time::timeout(stall, self.http.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                return Ok(Ended::new(
                    Failure::Network,
                    format!("no response: {}", error_chain(&e)),
                ));
            }
            Err(_) => {
                return Ok(Ended::new(
                    Failure::Network,
                    format!("no response within {}", humantime::format_duration(stall)),
                ));
            }
        };
        let status = response.status();
        if !status.is_success() {
            let Some(failure) = status_failure(status) else {
                return Err(self
                    .api_error(DURING, status, response.into_body(), stall)
                    .await);
            };
            let retry_after = retry_hint(response.headers(), SystemTime::now());
            let mut body = Vec::new();
            let _ = read_body(response.into_body(), MAX_ERROR_BODY, stall, &mut body).await;
            let (title, detail) = describe_problem(status, &body);
            return Ok(Ended {
                failure,
                why: format!("HTTP {} {title}: {detail}", status.as_u16()),
                retry_after,
            });
        }
        if let Some(content_type) = not_a_stream(response.headers()) {
            // A proxy's or a captive portal's page: its lines are not X's.
            let mut body = Vec::new();
            let _ = read_body(response.into_body(), 1024, stall, &mut body).await;
            return Ok(Ended::new(
                Failure::Http,
                format!(
                    "HTTP {} with content type `{content_type}`, not a stream: {}",
                    status.as_u16(),
                    preview(&body)
                ),
            ));
        }
        stats.connections += 1;
        let mut body = response.into_body();
        let mut lines = LineBuffer::new(options.max_line);
        let mut logged_malformed = false;
        let ended = loop {
            let next = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
            let frame = match tokio::time::timeout(stall, next).await {
                Err(_) => {
                    break Ended::new(
                        Failure::Stalled,
                        format!(
                            "nothing, not even a heartbeat, for {}",
                            humantime::format_duration(stall)
                        ),
                    );
                }
                Ok(None) => break Ended::new(Failure::Dropped, "the stream ended".into()),
                Ok(Some(Err(e))) => {
                    break Ended::new(
                        Failure::Dropped,
                        format!("the stream broke: {}", error_chain(&e)),
                    );
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(bytes) = frame.into_data() else {
                continue;
            };
            let pieces = lines.push(&bytes);
            stats.max_buffered = stats.max_buffered.max(lines.peak as u64);
            stats.dropped_bytes += std::mem::take(&mut lines.dropped);
            for piece in pieces {
                match piece {
                    Piece::Line(line) => {
                        self.forward(line, tx, options, stats, policy, &mut logged_malformed)
                            .await?;
                    }
                    Piece::Oversize => {
                        stats.oversize_lines += 1;
                        warn!(
                            limit_bytes = options.max_line,
                            "X API stream: dropped a line over the length limit (not sent); \
                             reading on from the next newline"
                        );
                        (options.log)(&format!(
                            "dropped a line longer than the {} byte limit (not sent); \
                             reading on from the next newline",
                            options.max_line
                        ));
                    }
                }
            }
        };
        match lines.finish() {
            Tail::None => {}
            Tail::Oversize => {
                warn!("X API stream: the connection ended inside the line that was too long");
                (options.log)("the connection ended inside the line that was too long");
            }
            Tail::Partial(line) if is_json_object(&line) => {
                // Cut between the message and its `\r\n`: the message is whole.
                self.forward(line, tx, options, stats, policy, &mut logged_malformed)
                    .await?;
            }
            Tail::Partial(line) => {
                stats.partial_lines += 1;
                stats.dropped_bytes += line.len() as u64;
                warn!(
                    bytes = line.len(),
                    cut_off_when = %self.token.scrub(&ended.why),
                    preview = %self.token.scrub(&preview(&line)),
                    "X API stream: dropped a partial line (not sent)"
                );
                (options.log)(&self.token.scrub(&format!(
                    "dropped a partial line of {} bytes (not sent), cut off when {}: {}",
                    line.len(),
                    ended.why,
                    preview(&line)
                )));
            }
        }
        Ok(ended)
    }

    /// Sends one complete line (a heartbeat is only counted).
    async fn forward(
        &self,
        line: Vec<u8>,
        tx: &Sender<Record>,
        options: &StreamOptions,
        stats: &mut StreamStats,
        policy: &mut ReconnectPolicy,
        logged_malformed: &mut bool,
    ) -> Result<(), XApiError> {
        if line.trim_ascii().is_empty() {
            stats.heartbeats += 1;
            return Ok(());
        }
        let (record, kind) = to_record(line);
        if kind == LineKind::Malformed && !*logged_malformed {
            *logged_malformed = true;
            warn!(
                preview = %self.token.scrub(&preview(&record.data)),
                "X API stream: a line that is not a JSON object, sent on for the transform \
                 to dead-letter (only the first of a connection is logged)"
            );
            (options.log)(&self.token.scrub(&format!(
                "a line that is not a JSON object (sent on, for the transform to dead-letter; \
                 only the first of a connection is logged): {}",
                preview(&record.data)
            )));
        }
        tx.send(record)
            .await
            .map_err(|_| XApiError::ChannelClosed)?;
        match kind {
            LineKind::Message => stats.messages += 1,
            LineKind::System => stats.system_messages += 1,
            LineKind::Malformed => stats.malformed += 1,
        }
        if kind != LineKind::Malformed {
            policy.reset();
        }
        Ok(())
    }
}

/// How a connection ended, for the reconnect schedule and the log.
struct Ended {
    failure: Failure,
    why: String,
    /// What the response said about when to come back.
    retry_after: Option<Duration>,
}

impl Ended {
    fn new(failure: Failure, why: String) -> Self {
        Self {
            failure,
            why,
            retry_after: None,
        }
    }
}

/// When a retried response says to come back: `x-rate-limit-reset` (X's,
/// epoch seconds) or `retry-after` (seconds; its HTTP-date form is ignored).
fn retry_hint(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(reset) = number("x-rate-limit-reset") {
        let now = now.duration_since(SystemTime::UNIX_EPOCH).ok()?;
        return Some(Duration::from_secs(reset).saturating_sub(now));
    }
    number("retry-after").map(Duration::from_secs)
}

/// The content type of a 200 that cannot be the stream, if it is one: the
/// stream is JSON. A missing content type is given the benefit of the doubt
/// (every line is still checked).
fn not_a_stream(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?;
    let Ok(text) = value.to_str() else {
        return Some(String::from_utf8_lossy(value.as_bytes()).into_owned());
    };
    let essence = text.split(';').next().unwrap_or("").trim();
    let json = essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json");
    (!json).then(|| text.to_string())
}

/// The start of some bytes for a log line, quoted, with control characters
/// and invalid UTF-8 made visible.
fn preview(bytes: &[u8]) -> String {
    const SHOWN: usize = 120;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SHOWN * 4)]);
    let shown: String = text.chars().take(SHOWN).collect();
    if bytes.is_empty() {
        "empty body".into()
    } else if shown.len() < bytes.len() {
        format!("{shown:?}...")
    } else {
        format!("{shown:?}")
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn retry_hints_come_from_x_rate_limit_reset_or_retry_after() {
        let now = SystemTime::UNIX_EPOCH + S(1_700_000_000);
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, value.parse().unwrap());
            }
            map
        };
        let hint = |pairs: &[(&'static str, &str)]| retry_hint(&headers(pairs), now);
        assert_eq!(hint(&[("x-rate-limit-reset", "1700000300")]), Some(S(300)));
        assert_eq!(
            hint(&[("x-rate-limit-reset", "1699999000")]),
            Some(Duration::ZERO),
            "a reset in the past: no wait of its own"
        );
        assert_eq!(hint(&[("retry-after", "30")]), Some(S(30)));
        assert_eq!(
            hint(&[("x-rate-limit-reset", "1700000060"), ("retry-after", "5")]),
            Some(S(60)),
            "X's own header first"
        );
        assert_eq!(
            hint(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            None
        );
        assert_eq!(hint(&[("x-rate-limit-reset", "soon")]), None);
        assert_eq!(hint(&[]), None);
    }

    #[test]
    fn only_json_content_types_are_read_as_a_stream() {
        let of = |value: &str| {
            let mut map = HeaderMap::new();
            map.insert(CONTENT_TYPE, value.parse().unwrap());
            not_a_stream(&map)
        };
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            "application/problem+json",
        ] {
            assert_eq!(of(ok), None, "{ok}");
        }
        for bad in [
            "text/html",
            "text/html; charset=utf-8",
            "application/octet-stream",
            "text/plain",
            "",
        ] {
            assert_eq!(of(bad).as_deref(), Some(bad), "{bad}");
        }
        assert_eq!(not_a_stream(&HeaderMap::new()), None);
    }

    #[test]
    fn previews_are_short_quoted_and_show_bad_bytes() {
        assert_eq!(preview(b""), "empty body");
        assert_eq!(preview(b"<html>\r\n"), "\"<html>\\r\\n\"");
        assert_eq!(preview(b"a\xffb"), "\"a\u{fffd}b\"");
        let long = preview(&[b'x'; 10_000]);
        assert!(long.len() < 130 && long.ends_with("\"..."), "{long}");
    }
}

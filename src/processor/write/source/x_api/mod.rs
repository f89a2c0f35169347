//! The X API v2 filtered stream as a source: the bearer token, the rules, and
//! the stream itself, reconnected the way X asks clients to.
//!
//! Every non-blank line of the stream becomes one [`Record`], bytes unchanged
//! (without the `\r\n` that ends it), keyed by the tweet id so that the
//! Kinesis shard of a tweet is stable. X's system messages (an `errors`
//! object without `data`, such as an operational disconnect) are forwarded
//! too: the transform files them as dead letters of their own kind, and the
//! raw archive keeps the evidence. They are counted apart in the stats, as
//! are lines that are not a JSON object (invalid UTF-8, a stray HTML line):
//! those are forwarded for the transform to dead-letter.
//!
//! # Broken streams
//!
//! What is not a line X sent whole is never forwarded; it is counted in
//! [`StreamStats`] and logged (a `tracing` warning, its text also handed to
//! [`StreamOptions::log`]):
//!
//! - a connection that ends or breaks in the middle of a line (a cut, broken
//!   chunked encoding, a stall): the partial line is dropped
//!   (`partial_lines`), unless it is a complete JSON object that only lacks
//!   its `\r\n`, which is forwarded as the message it is;
//! - a line longer than [`StreamOptions::max_line`]: dropped
//!   (`oversize_lines`) without being buffered past the limit, and the
//!   stream read on from the next newline;
//! - a 200 whose content type is not JSON (a proxy's or captive portal's HTML
//!   page, `application/octet-stream`): not read as a stream, retried as an
//!   HTTP error (`reconnects.http`).
//!
//! # Reconnecting
//!
//! As X documents for its streaming endpoints ("Handling disconnections"),
//! kept in the pure [`ReconnectPolicy`]:
//!
//! | what happened | [`Failure`] | wait before the next attempt |
//! |---|---|---|
//! | an established stream ended or broke | `Dropped` | none the first time, then as `Network` |
//! | no data and no heartbeat for 20 s | `Stalled` | as `Dropped` |
//! | connect, TLS or request error, no response head within 20 s | `Network` | 250 ms more each time, at most 16 s |
//! | HTTP 5xx, 408, or a 200 that is not JSON | `Http` | 5 s, doubling, at most 320 s |
//! | HTTP 429 (and the legacy 420) | `RateLimited` | 60 s, doubling, at most 960 s |
//! | any other HTTP error (401, 403, 400, 404, ...) | | none: the source stops with X's `title` and `detail` |
//!
//! X gives no ceiling for 429; 960 s is the first doubling past its 15-minute
//! rate-limit window, so a capped wait always outlasts a whole window. When a
//! retried status says when to come back (`x-rate-limit-reset`, epoch
//! seconds, or `retry-after`, seconds), the wait is at least that long (at
//! most 960 s): the schedule's wait if longer, never shorter.
//!
//! A message on a connection resets every schedule. Heartbeats and lines that
//! are not JSON do not: a connection that only ever sends those before it
//! drops (a flapping proxy) must not make the client reconnect in a tight
//! loop.
//!
//! The waits go through a [`Sleeper`] so that tests can record them instead
//! of sleeping; the stall watchdog is [`StreamOptions::stall_timeout`].
//!
//! # Modules
//!
//! One concern a file: `token` (the bearer token, from the environment or
//! SSM), `rules` (the stream's rules, planned and synced), `reconnect`
//! (X's reconnect schedule and the sleeper that waits it out), `lines` (the
//! line reader: body bytes to lines to records), `client` (the
//! authenticated HTTP client), `stream` (the stream itself, connection by
//! connection), `stats` (what it did) and `error` (why it stopped, and X's
//! error bodies). Everything public is re-exported here.

mod client;
mod error;
mod lines;
mod reconnect;
mod rules;
mod stats;
mod stream;
mod token;

use std::time::Duration;

use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

pub use self::client::XApiClient;
pub use self::error::{TokenProblem, XApiError};
pub use self::reconnect::{Failure, ReconnectPolicy, Sleep, Sleeper, TokioSleeper};
pub use self::rules::{NewRule, RulesPlan, RulesSync, StreamRule, plan_rules};
pub use self::stats::{Reconnects, StreamStats};
pub use self::stream::{Log, StreamOptions};
pub use self::token::{BearerToken, TokenRef, resolve_token};
use crate::processor::Record;
use crate::spec::model::XApiSource;

/// X closes its side after 20 s without sending anything, heartbeats
/// included, so a client that has heard nothing for that long is talking to
/// a dead connection.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(20);

pub const STREAM_PATH: &str = "/2/tweets/search/stream";
pub const RULES_PATH: &str = "/2/tweets/search/stream/rules";

/// What the transform reads: the long text (`note_tweet`), the entities it
/// turns into hashtags, mentions and urls, the metrics, the references, and
/// the author's username through `includes.users`.
pub const STREAM_QUERY: &str = "tweet.fields=author_id,created_at,entities,lang,note_tweet,public_metrics,referenced_tweets\
&expansions=author_id,referenced_tweets.id,entities.mentions.username\
&user.fields=username";

/// X's messages are tens of kilobytes; a "line" this long means the peer is
/// not speaking the protocol, and buffering it further only costs memory
/// (the default of [`StreamOptions::max_line`]).
pub const MAX_LINE: usize = 16 << 20;

/// What [`run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// `None` when cancelled before the rules were in place.
    pub rules: Option<RulesSync>,
    pub stats: StreamStats,
}

/// The source: resolves the token, syncs the rules of the stack file, then
/// streams into `tx` until `cancel` fires. Returns `Err` when it cannot
/// start, when X refuses the stream for good (401, 403, ...), or when `tx`
/// is closed.
pub async fn run(
    source: &XApiSource,
    ssm: &aws_sdk_ssm::Client,
    tx: Sender<Record>,
    cancel: CancellationToken,
    options: StreamOptions,
) -> Result<RunReport, XApiError> {
    let setup = async {
        let token = resolve_token(&source.token, ssm).await?;
        let client = XApiClient::new(&source.base_url, token)?;
        let rules = client.sync_rules(&source.rules).await?;
        Ok::<_, XApiError>((client, rules))
    };
    let (client, rules) = tokio::select! {
        biased;
        () = cancel.cancelled() => return Ok(RunReport::default()),
        setup = setup => setup?,
    };
    let stats = client.stream(&tx, &cancel, &options).await?;
    Ok(RunReport {
        rules: Some(rules),
        stats,
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_asks_for_the_fields_the_transform_reads() {
        for field in [
            "created_at",
            "lang",
            "entities",
            "public_metrics",
            "referenced_tweets",
            "author_id",
            "note_tweet",
        ] {
            let fields = STREAM_QUERY
                .split('&')
                .find_map(|p| p.strip_prefix("tweet.fields="))
                .unwrap();
            assert!(fields.split(',').any(|f| f == field), "{field}");
        }
        assert!(
            STREAM_QUERY
                .contains("&expansions=author_id,referenced_tweets.id,entities.mentions.username&")
        );
        assert!(STREAM_QUERY.ends_with("&user.fields=username"));
    }
}

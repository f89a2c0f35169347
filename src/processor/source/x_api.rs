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
//! [`StreamStats`] and logged through [`StreamOptions::log`]:
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

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::body::{Body as _, Incoming};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::{ConfigBuilderExt as _, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

use crate::processor::Record;
use crate::spec::model::{XApiSource, XRule};

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

const USER_AGENT_VALUE: &str = concat!("streamstack/", env!("CARGO_PKG_VERSION"));
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Rules calls are short; one that hangs longer than this is not coming back.
const RULES_TIMEOUT: Duration = Duration::from_secs(30);
/// X's messages are tens of kilobytes; a "line" this long means the peer is
/// not speaking the protocol, and buffering it further only costs memory
/// (the default of [`StreamOptions::max_line`]).
pub const MAX_LINE: usize = 16 << 20;
/// 1000 rules (the most a stack file may hold) take about 1.2 MB as JSON.
const MAX_JSON_BODY: usize = 4 << 20;
const MAX_ERROR_BODY: usize = 64 << 10;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why the source stopped or could not start. Nothing here ever holds the
/// bearer token: text that comes back from a server is scrubbed of it.
#[derive(Debug, thiserror::Error)]
pub enum XApiError {
    #[error("bearer token reference `{0}` is neither `env:NAME` nor `ssm:/parameter/name`")]
    TokenReference(String),
    #[error("bearer token from `{reference}`: {problem}")]
    Token {
        reference: String,
        problem: TokenProblem,
    },
    #[error("X API base URL `{url}`: {reason}")]
    BaseUrl { url: String, reason: String },
    #[error("X API {during}: HTTP {status} {title}: {detail}{}", status_hint(*.status))]
    Api {
        during: &'static str,
        status: u16,
        title: String,
        detail: String,
    },
    #[error("X API {during}: {reason}")]
    Transport {
        during: &'static str,
        reason: String,
    },
    #[error("X API {during}: unexpected response: {reason}")]
    Response {
        during: &'static str,
        reason: String,
    },
    #[error("X API refused rules: {}", .0.join("; "))]
    RulesRejected(Vec<String>),
    #[error("the record channel is closed: nothing downstream takes records any more")]
    ChannelClosed,
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 => " (the bearer token was not accepted)",
        403 => " (the app's access level does not include this endpoint)",
        _ => "",
    }
}

/// What is wrong with a bearer token or with getting it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    #[error("environment variable {0} is not set")]
    EnvUnset(String),
    #[error("environment variable {0} is not valid unicode")]
    EnvNotUnicode(String),
    #[error("SSM parameter {0} does not exist (or is not visible to these credentials)")]
    SsmNotFound(String),
    #[error("SSM parameter {0} has no value")]
    SsmNoValue(String),
    #[error("SSM GetParameter {name}: {reason}")]
    Ssm { name: String, reason: String },
    #[error("the token is empty")]
    Empty,
    #[error("the token holds characters an HTTP header cannot carry")]
    NotHeaderSafe,
}

// ---------------------------------------------------------------------------
// Bearer token
// ---------------------------------------------------------------------------

/// The X API bearer token. Its `Debug` prints `***`; it has no `Display`,
/// and the header made from it is marked sensitive.
#[derive(Clone)]
pub struct BearerToken {
    secret: String,
    header: HeaderValue,
}

impl BearerToken {
    /// Surrounding whitespace is dropped: values pasted into SSM or exported
    /// from a file often carry a trailing newline.
    pub fn new(token: impl Into<String>) -> Result<Self, TokenProblem> {
        let secret = token.into().trim().to_string();
        if secret.is_empty() {
            return Err(TokenProblem::Empty);
        }
        let mut header = HeaderValue::from_str(&format!("Bearer {secret}"))
            .map_err(|_| TokenProblem::NotHeaderSafe)?;
        header.set_sensitive(true);
        Ok(Self { secret, header })
    }

    /// Servers may echo request details in error bodies; what is shown to a
    /// person must never carry the token.
    fn scrub(&self, text: &str) -> String {
        text.replace(&self.secret, "***")
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(***)")
    }
}

/// Where the stack file says the token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRef {
    /// An environment variable name.
    Env(String),
    /// An SSM parameter name (a SecureString), with its leading `/`.
    Ssm(String),
}

impl FromStr for TokenRef {
    type Err = XApiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(name) = s.strip_prefix("env:")
            && !name.is_empty()
        {
            return Ok(Self::Env(name.to_string()));
        }
        if let Some(name) = s.strip_prefix("ssm:")
            && name.len() > 1
            && name.starts_with('/')
        {
            return Ok(Self::Ssm(name.to_string()));
        }
        Err(XApiError::TokenReference(s.to_string()))
    }
}

impl fmt::Display for TokenRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "env:{name}"),
            Self::Ssm(name) => write!(f, "ssm:{name}"),
        }
    }
}

/// Reads the token from the environment or from SSM (decrypted). The SSM
/// client is only called for `ssm:` references; building one makes no call.
pub async fn resolve_token(
    reference: &str,
    ssm: &aws_sdk_ssm::Client,
) -> Result<BearerToken, XApiError> {
    let parsed: TokenRef = reference.parse()?;
    let fail = |problem| XApiError::Token {
        reference: reference.to_string(),
        problem,
    };
    let value = match &parsed {
        TokenRef::Env(name) => match std::env::var(name) {
            Ok(value) => value,
            Err(std::env::VarError::NotPresent) => {
                return Err(fail(TokenProblem::EnvUnset(name.clone())));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(fail(TokenProblem::EnvNotUnicode(name.clone())));
            }
        },
        TokenRef::Ssm(name) => {
            let output = ssm
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|err| {
                    let not_found = err
                        .as_service_error()
                        .is_some_and(|e| e.is_parameter_not_found());
                    fail(if not_found {
                        TokenProblem::SsmNotFound(name.clone())
                    } else {
                        TokenProblem::Ssm {
                            name: name.clone(),
                            // The service's code and message, or what the
                            // transport says in words: never the debug dump.
                            reason: crate::aws::AwsError::new("reading the parameter", err).detail,
                        }
                    })
                })?;
            output
                .parameter
                .and_then(|p| p.value)
                .ok_or_else(|| fail(TokenProblem::SsmNoValue(name.clone())))?
        }
    };
    BearerToken::new(value).map_err(fail)
}

// ---------------------------------------------------------------------------
// Reconnect schedule
// ---------------------------------------------------------------------------

/// Why a connection ended (or never started), for the reconnect schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// An established stream ended cleanly or broke mid-way.
    Dropped,
    /// An established stream sent nothing, not even a heartbeat, for the
    /// stall timeout.
    Stalled,
    /// No HTTP response: connect, TLS or request error, or no response head
    /// within the stall timeout.
    Network,
    /// A status worth retrying: 5xx or 408.
    Http,
    /// HTTP 429 (or the legacy 420).
    RateLimited,
}

/// X's reconnect schedule (see the module documentation), without a clock:
/// it only says how long to wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconnectPolicy {
    network: u32,
    http: u32,
    rate_limited: u32,
    failing: bool,
}

impl ReconnectPolicy {
    pub const NETWORK_STEP: Duration = Duration::from_millis(250);
    pub const NETWORK_MAX: Duration = Duration::from_secs(16);
    pub const HTTP_FIRST: Duration = Duration::from_secs(5);
    pub const HTTP_MAX: Duration = Duration::from_secs(320);
    pub const RATE_LIMITED_FIRST: Duration = Duration::from_secs(60);
    pub const RATE_LIMITED_MAX: Duration = Duration::from_secs(960);

    pub fn new() -> Self {
        Self::default()
    }

    /// The wait before the next attempt, and one more step on the schedule
    /// of that kind of failure. Each kind keeps its own count, as X
    /// describes one schedule per kind.
    pub fn next_delay(&mut self, failure: Failure) -> Duration {
        let first_since_data = !self.failing;
        self.failing = true;
        match failure {
            // X: "Once an established connection drops, attempt to reconnect
            // immediately"; only when that attempt fails does it slow down.
            Failure::Dropped | Failure::Stalled if first_since_data => Duration::ZERO,
            Failure::Dropped | Failure::Stalled | Failure::Network => {
                self.network = self.network.saturating_add(1);
                Self::NETWORK_STEP
                    .saturating_mul(self.network)
                    .min(Self::NETWORK_MAX)
            }
            Failure::Http => {
                self.http = self.http.saturating_add(1);
                doubling(Self::HTTP_FIRST, self.http, Self::HTTP_MAX)
            }
            Failure::RateLimited => {
                self.rate_limited = self.rate_limited.saturating_add(1);
                doubling(
                    Self::RATE_LIMITED_FIRST,
                    self.rate_limited,
                    Self::RATE_LIMITED_MAX,
                )
            }
        }
    }

    /// A connection delivered data: every schedule starts over.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

fn doubling(first: Duration, attempt: u32, max: Duration) -> Duration {
    // Past 2^16 every schedule is long since at its cap; stopping there keeps
    // the shift and the multiplication from overflowing.
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    first.saturating_mul(factor).min(max)
}

fn status_failure(status: StatusCode) -> Option<Failure> {
    match status.as_u16() {
        420 | 429 => Some(Failure::RateLimited),
        408 | 500..=599 => Some(Failure::Http),
        _ => None,
    }
}

/// A future that completes after a delay.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Waits out reconnect delays: tokio's timer in production, a recorder in
/// tests (so that a 320 s backoff takes no time and can be asserted).
pub trait Sleeper: Send + Sync {
    fn sleep(&self, delay: Duration) -> Sleep;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, delay: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(delay))
    }
}

/// Where the stream says what it dropped and why it reconnects: one line of
/// text a call, already scrubbed of the token.
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
    /// Standard error by default, as `produce: X API: ...`.
    pub log: Log,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            stall_timeout: STALL_TIMEOUT,
            max_line: MAX_LINE,
            sleeper: Arc::new(TokioSleeper),
            log: Arc::new(|line: &str| eprintln!("produce: X API: {line}")),
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

// ---------------------------------------------------------------------------
// Stats
// ---------------------------------------------------------------------------

/// What the stream did, for the caller to print or export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Connections that answered 200.
    pub connections: u64,
    /// Records sent that are JSON objects other than X system messages
    /// (tweets, in practice).
    pub messages: u64,
    /// X system messages (`errors` without `data`), also sent as records.
    pub system_messages: u64,
    /// Lines that are not a JSON object (invalid UTF-8 included), sent as
    /// records for the transform to file as dead letters.
    pub malformed: u64,
    /// Blank keep-alive lines.
    pub heartbeats: u64,
    /// Lines cut short by the end of their connection: not sent.
    pub partial_lines: u64,
    /// Lines longer than [`StreamOptions::max_line`]: not sent.
    pub oversize_lines: u64,
    /// The bytes of those partial and oversize lines.
    pub dropped_bytes: u64,
    /// The most bytes held at once for an incomplete line: at most
    /// [`StreamOptions::max_line`] + 1 (its `\r`).
    pub max_buffered: u64,
    pub reconnects: Reconnects,
}

/// Reconnects by the [`Failure`] that caused them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconnects {
    pub dropped: u64,
    pub stalled: u64,
    pub network: u64,
    pub http: u64,
    pub rate_limited: u64,
}

impl Reconnects {
    pub fn total(&self) -> u64 {
        self.dropped + self.stalled + self.network + self.http + self.rate_limited
    }

    fn count(&mut self, failure: Failure) {
        let counter = match failure {
            Failure::Dropped => &mut self.dropped,
            Failure::Stalled => &mut self.stalled,
            Failure::Network => &mut self.network,
            Failure::Http => &mut self.http,
            Failure::RateLimited => &mut self.rate_limited,
        };
        *counter += 1;
    }
}

// ---------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------

/// A rule as X holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRule {
    pub id: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl StreamRule {
    pub fn new(id: &str, value: &str, tag: Option<&str>) -> Self {
        Self {
            id: id.into(),
            value: value.into(),
            tag: tag.map(Into::into),
        }
    }
}

/// A rule to add (X assigns the id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewRule {
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// What [`plan_rules`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulesPlan {
    pub add: Vec<NewRule>,
    pub delete: Vec<StreamRule>,
    pub keep: Vec<StreamRule>,
}

/// What [`XApiClient::sync_rules`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulesSync {
    /// As X created them, with their ids.
    pub added: Vec<StreamRule>,
    pub deleted: Vec<StreamRule>,
    /// Rules already in place.
    pub kept: usize,
}

/// Rules match on value and tag together: a rule whose tag changed is
/// deleted and added again, because matching tweets carry the tag and the
/// transform stores it.
pub fn plan_rules(existing: &[StreamRule], wanted: &[XRule]) -> RulesPlan {
    let mut missing: Vec<NewRule> = Vec::new();
    for rule in wanted {
        let rule = NewRule {
            value: rule.value().to_string(),
            tag: rule.tag().map(str::to_string),
        };
        if !missing.contains(&rule) {
            missing.push(rule);
        }
    }
    let mut plan = RulesPlan::default();
    for rule in existing {
        let found = missing
            .iter()
            .position(|m| m.value == rule.value && m.tag == rule.tag);
        match found {
            Some(i) => {
                missing.remove(i);
                plan.keep.push(rule.clone());
            }
            None => plan.delete.push(rule.clone()),
        }
    }
    plan.add = missing;
    plan
}

#[derive(Deserialize)]
struct RulesResponse {
    #[serde(default)]
    data: Vec<StreamRule>,
    #[serde(default)]
    meta: RulesMeta,
    #[serde(default)]
    errors: Vec<ProblemItem>,
}

#[derive(Deserialize, Default)]
struct RulesMeta {
    next_token: Option<String>,
    #[serde(default)]
    summary: RulesSummary,
}

#[derive(Deserialize, Default)]
struct RulesSummary {
    #[serde(default)]
    not_created: u64,
    #[serde(default)]
    not_deleted: u64,
}

#[derive(Serialize)]
struct AddRules<'a> {
    add: &'a [NewRule],
}

#[derive(Serialize)]
struct DeleteRules<'a> {
    delete: DeleteIds<'a>,
}

#[derive(Serialize)]
struct DeleteIds<'a> {
    ids: Vec<&'a str>,
}

// ---------------------------------------------------------------------------
// X's error bodies
// ---------------------------------------------------------------------------

/// X v2 answers errors as an RFC 7807 problem (`title`, `detail`), and rule
/// and partial errors as an `errors` array; v1.1-style bodies have
/// `errors[].message`.
#[derive(Deserialize, Default)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
    #[serde(default)]
    errors: Vec<ProblemItem>,
}

#[derive(Deserialize, Default)]
struct ProblemItem {
    title: Option<String>,
    detail: Option<String>,
    message: Option<String>,
    value: Option<String>,
    #[serde(default)]
    details: Vec<String>,
}

impl ProblemItem {
    fn describe(&self) -> String {
        let what = if self.details.is_empty() {
            self.detail
                .clone()
                .or_else(|| self.message.clone())
                .or_else(|| self.title.clone())
                .unwrap_or_else(|| "no detail given".into())
        } else {
            self.details.join(", ")
        };
        match &self.value {
            Some(value) => format!("`{value}`: {what}"),
            None => what,
        }
    }
}

fn describe_problem(status: StatusCode, body: &[u8]) -> (String, String) {
    let reason = status.canonical_reason().unwrap_or("error").to_string();
    match serde_json::from_slice::<Problem>(body) {
        Ok(problem) => {
            let first = problem.errors.first();
            let title = problem
                .title
                .or_else(|| first.and_then(|e| e.title.clone()))
                .unwrap_or(reason);
            let detail = problem.detail.unwrap_or_else(|| {
                let all: Vec<String> = problem.errors.iter().map(ProblemItem::describe).collect();
                if all.is_empty() {
                    "no detail given".into()
                } else {
                    all.join("; ")
                }
            });
            (title, detail)
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let detail = if text.is_empty() {
                "empty body".to_string()
            } else {
                text.chars().take(300).collect()
            };
            (reason, detail)
        }
    }
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/// An authenticated X API client: rules and stream.
pub struct XApiClient {
    http: Client<HttpsConnector<HttpConnector>, String>,
    base_url: String,
    token: BearerToken,
}

impl fmt::Debug for XApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XApiClient")
            .field("base_url", &self.base_url)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl XApiClient {
    /// `base_url` is `https://api.x.com` in production; plain `http://` is
    /// accepted for local test servers.
    pub fn new(base_url: &str, token: BearerToken) -> Result<Self, XApiError> {
        let base_url = base_url.trim_end_matches('/').to_string();
        let bad = |reason: &str| XApiError::BaseUrl {
            url: base_url.clone(),
            reason: reason.to_string(),
        };
        let uri: hyper::Uri = base_url.parse().map_err(|_| bad("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("expected an http:// or https:// URL")),
        };
        if uri.host().is_none() {
            return Err(bad("no host"));
        }
        // The provider is named rather than taken from rustls' crate features,
        // which other crates in the build can change.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&format!("TLS setup: {e}")))?;
        let tls = if https {
            tls.with_native_roots()
                .map_err(|e| bad(&format!("loading the system's CA certificates: {e}")))?
        } else {
            // Plain http needs no roots, and should work on a machine without any.
            tls.with_root_certificates(rustls::RootCertStore::empty())
        }
        .with_no_client_auth();
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            http,
            base_url,
            token,
        })
    }

    fn request(
        &self,
        method: Method,
        path_and_query: &str,
        json: Option<String>,
    ) -> Result<Request<String>, XApiError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base_url, path_and_query))
            .header(AUTHORIZATION, self.token.header.clone())
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header(ACCEPT, "application/json");
        if json.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        builder
            .body(json.unwrap_or_default())
            .map_err(|e| XApiError::BaseUrl {
                url: self.base_url.clone(),
                reason: e.to_string(),
            })
    }

    /// The error for a status that is not retried. A body that breaks or
    /// stalls part way is described by what came of it.
    async fn api_error(
        &self,
        during: &'static str,
        status: StatusCode,
        body: Incoming,
        idle: Duration,
    ) -> XApiError {
        let mut text = Vec::new();
        let _ = read_body(body, MAX_ERROR_BODY, idle, &mut text).await;
        let (title, detail) = describe_problem(status, &text);
        XApiError::Api {
            during,
            status: status.as_u16(),
            title: self.token.scrub(&title),
            detail: self.token.scrub(&detail),
        }
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        during: &'static str,
        request: Request<String>,
    ) -> Result<T, XApiError> {
        let transport = |reason: String| XApiError::Transport { during, reason };
        let response = tokio::time::timeout(RULES_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| transport(format!("no response within {} s", RULES_TIMEOUT.as_secs())))?
            .map_err(|e| transport(error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(self
                .api_error(during, status, response.into_body(), RULES_TIMEOUT)
                .await);
        }
        let mut body = Vec::new();
        read_body(
            response.into_body(),
            MAX_JSON_BODY,
            RULES_TIMEOUT,
            &mut body,
        )
        .await
        .map_err(transport)?;
        serde_json::from_slice(&body).map_err(|e| XApiError::Response {
            during,
            // serde quotes the values it could not read: they may echo the token.
            reason: self.token.scrub(&e.to_string()),
        })
    }

    /// The rules the stream has now.
    pub async fn rules(&self) -> Result<Vec<StreamRule>, XApiError> {
        const DURING: &str = "GET /2/tweets/search/stream/rules";
        let mut rules = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let path = match &next {
                None => RULES_PATH.to_string(),
                Some(token) => format!("{RULES_PATH}?pagination_token={}", query_escape(token)),
            };
            let page: RulesResponse = self
                .call_json(DURING, self.request(Method::GET, &path, None)?)
                .await?;
            rules.extend(page.data);
            match page.meta.next_token {
                Some(token) if next.as_ref() != Some(&token) => next = Some(token),
                _ => return Ok(rules),
            }
        }
    }

    /// Makes the stream's rules exactly `wanted`: stale ones are deleted
    /// first (so that a rule whose tag changed, or a full rule quota, does
    /// not block the additions), then the missing ones added.
    pub async fn sync_rules(&self, wanted: &[XRule]) -> Result<RulesSync, XApiError> {
        const DURING: &str = "POST /2/tweets/search/stream/rules";
        let plan = plan_rules(&self.rules().await?, wanted);
        if !plan.delete.is_empty() {
            let body = DeleteRules {
                delete: DeleteIds {
                    ids: plan.delete.iter().map(|r| r.id.as_str()).collect(),
                },
            };
            let json = serde_json::to_string(&body).expect("rule ids serialize");
            let response: RulesResponse = self
                .call_json(DURING, self.request(Method::POST, RULES_PATH, Some(json))?)
                .await?;
            if !response.errors.is_empty() || response.meta.summary.not_deleted > 0 {
                return Err(rules_rejected(&response, "not deleted", &self.token));
            }
        }
        let mut added = Vec::new();
        if !plan.add.is_empty() {
            let json =
                serde_json::to_string(&AddRules { add: &plan.add }).expect("rules serialize");
            let response: RulesResponse = self
                .call_json(DURING, self.request(Method::POST, RULES_PATH, Some(json))?)
                .await?;
            if !response.errors.is_empty() || response.meta.summary.not_created > 0 {
                return Err(rules_rejected(&response, "not created", &self.token));
            }
            added = response.data;
        }
        Ok(RulesSync {
            added,
            deleted: plan.delete,
            kept: plan.keep.len(),
        })
    }

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
            (options.log)(&format!(
                "{}; reconnecting in {}{because}",
                self.token.scrub(&ended.why),
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

fn is_json_object(line: &[u8]) -> bool {
    line.trim_ascii_start().starts_with(b"{") && serde_json::from_slice::<IgnoredAny>(line).is_ok()
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

fn rules_rejected(response: &RulesResponse, what: &str, token: &BearerToken) -> XApiError {
    let mut reasons: Vec<String> = response
        .errors
        .iter()
        .map(|e| token.scrub(&e.describe()))
        .collect();
    if reasons.is_empty() {
        reasons.push(format!("some rules {what}, no reason given"));
    }
    XApiError::RulesRejected(reasons)
}

/// Pagination tokens are opaque; escape all but the unreserved characters.
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// hyper-util's errors say "client error (Connect)" at the top and the cause
/// further down.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads at most `limit` bytes of a body into `out`; gives up after `idle`
/// without a frame. What was read before a failure stays in `out`.
async fn read_body(
    mut body: Incoming,
    limit: usize,
    idle: Duration,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    while out.len() < limit {
        let next = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        let frame = match tokio::time::timeout(idle, next).await {
            Err(_) => {
                return Err(format!(
                    "the body stalled for {}",
                    humantime::format_duration(idle)
                ));
            }
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(error_chain(&e)),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(bytes) = frame.into_data() {
            let room = limit - out.len();
            out.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }
    Ok(())
}

/// Splits the body into lines across chunk boundaries, holding at most
/// `max + 1` bytes of an incomplete line (the `+ 1` is its `\r`).
struct LineBuffer {
    max: usize,
    /// The incomplete line so far.
    buf: Vec<u8>,
    /// Inside a line found too long: dropping bytes up to the next `\n`.
    skipping: bool,
    /// Bytes dropped with oversize lines, for the caller to take.
    dropped: u64,
    /// The most bytes `buf` has held.
    peak: usize,
}

/// What a chunk of the body completed.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    /// A line without its `\n` or `\r\n`.
    Line(Vec<u8>),
    /// A line over the limit was found (and is being dropped).
    Oversize,
}

/// What was left when the body ended.
#[derive(Debug, PartialEq, Eq)]
enum Tail {
    None,
    Partial(Vec<u8>),
    Oversize,
}

impl LineBuffer {
    fn new(max: usize) -> Self {
        Self {
            max,
            buf: Vec::new(),
            skipping: false,
            dropped: 0,
            peak: 0,
        }
    }

    /// Each byte is looked at once, however the line is cut into chunks.
    fn push(&mut self, mut bytes: &[u8]) -> Vec<Piece> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (part, rest, complete) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            bytes = rest;
            let newline = u64::from(complete);
            if self.skipping {
                self.dropped += part.len() as u64 + newline;
                self.skipping = !complete;
                continue;
            }
            if self.buf.len() + part.len() > self.max + 1 {
                self.dropped += (self.buf.len() + part.len()) as u64 + newline;
                // The allocation goes too: memory is back to normal at once.
                self.buf = Vec::new();
                self.skipping = !complete;
                out.push(Piece::Oversize);
                continue;
            }
            self.buf.extend_from_slice(part);
            self.peak = self.peak.max(self.buf.len());
            if complete {
                let mut line = std::mem::take(&mut self.buf);
                let with_newline = line.len() as u64 + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > self.max {
                    self.dropped += with_newline;
                    out.push(Piece::Oversize);
                } else {
                    out.push(Piece::Line(line));
                }
            }
        }
        out
    }

    /// What is left at the end of the body; the buffer is empty afterwards.
    fn finish(&mut self) -> Tail {
        let buf = std::mem::take(&mut self.buf);
        if std::mem::take(&mut self.skipping) {
            Tail::Oversize
        } else if buf.trim_ascii().is_empty() {
            Tail::None
        } else {
            Tail::Partial(buf)
        }
    }
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    data: Option<ProbeData<'a>>,
    errors: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ProbeData<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

/// What a line of the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    Message,
    /// An X system message: `errors` without `data`.
    System,
    /// Not a JSON object.
    Malformed,
}

/// The record for one line, and what kind of line it is.
fn to_record(line: Vec<u8>) -> (Record, LineKind) {
    // Invalid UTF-8 in a field the probe skips would go unnoticed by serde.
    let probe = std::str::from_utf8(&line)
        .ok()
        .filter(|text| text.trim_ascii_start().starts_with('{'))
        .map(serde_json::from_str::<Probe>);
    let (id, kind) = match probe {
        Some(Ok(probe)) => {
            let kind = if probe.data.is_none() && probe.errors.is_some() {
                LineKind::System
            } else {
                LineKind::Message
            };
            (probe.data.and_then(|d| d.id).map(Cow::into_owned), kind)
        }
        _ => (None, LineKind::Malformed),
    };
    let partition_key = id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("{:016x}", fnv1a(&line)));
    (
        Record {
            partition_key,
            data: line,
        },
        kind,
    )
}

/// Stable across runs and Rust versions, unlike `DefaultHasher`, so the same
/// bytes always go to the same shard.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// ---------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------

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
    use crate::spec::model::TaggedRule;

    const MS: fn(u64) -> Duration = Duration::from_millis;
    const S: fn(u64) -> Duration = Duration::from_secs;

    fn delays(policy: &mut ReconnectPolicy, failure: Failure, n: usize) -> Vec<Duration> {
        (0..n).map(|_| policy.next_delay(failure)).collect()
    }

    #[test]
    fn network_errors_back_off_linearly_by_250_ms_to_16_s() {
        let mut policy = ReconnectPolicy::new();
        let expected: Vec<Duration> = (1..=100u64).map(|n| MS((250 * n).min(16_000))).collect();
        assert_eq!(delays(&mut policy, Failure::Network, 100), expected);
        assert_eq!(
            expected[63],
            S(16),
            "the cap is reached at the 64th attempt"
        );
        assert_eq!(expected[62], MS(15_750));
    }

    #[test]
    fn http_errors_back_off_exponentially_from_5_s_to_320_s() {
        let mut policy = ReconnectPolicy::new();
        let mut expected: Vec<Duration> = [5, 10, 20, 40, 80, 160, 320].map(S).to_vec();
        expected.extend(std::iter::repeat_n(S(320), 43));
        assert_eq!(delays(&mut policy, Failure::Http, 50), expected);
    }

    #[test]
    fn rate_limits_back_off_exponentially_from_60_s_to_960_s() {
        let mut policy = ReconnectPolicy::new();
        let mut expected: Vec<Duration> = [60, 120, 240, 480, 960].map(S).to_vec();
        expected.extend(std::iter::repeat_n(S(960), 45));
        assert_eq!(delays(&mut policy, Failure::RateLimited, 50), expected);
    }

    #[test]
    fn schedules_stay_at_their_caps_without_overflow() {
        let mut policy = ReconnectPolicy::new();
        for _ in 0..100_000 {
            policy.next_delay(Failure::Network);
            policy.next_delay(Failure::Http);
            policy.next_delay(Failure::RateLimited);
        }
        assert_eq!(policy.next_delay(Failure::Network), S(16));
        assert_eq!(policy.next_delay(Failure::Http), S(320));
        assert_eq!(policy.next_delay(Failure::RateLimited), S(960));
        let mut saturated = ReconnectPolicy {
            network: u32::MAX,
            http: u32::MAX,
            rate_limited: u32::MAX,
            failing: true,
        };
        assert_eq!(saturated.next_delay(Failure::Network), S(16));
        assert_eq!(saturated.next_delay(Failure::Http), S(320));
        assert_eq!(saturated.next_delay(Failure::RateLimited), S(960));
    }

    #[test]
    fn a_drop_or_stall_reconnects_at_once_then_backs_off_as_network() {
        for failure in [Failure::Dropped, Failure::Stalled] {
            let mut policy = ReconnectPolicy::new();
            assert_eq!(
                delays(&mut policy, failure, 4),
                [Duration::ZERO, MS(250), MS(500), MS(750)],
                "{failure:?}"
            );
        }
        let mut policy = ReconnectPolicy::new();
        assert_eq!(policy.next_delay(Failure::Dropped), Duration::ZERO);
        assert_eq!(policy.next_delay(Failure::Stalled), MS(250));
        assert_eq!(policy.next_delay(Failure::Network), MS(500));
    }

    #[test]
    fn only_the_first_failure_after_data_is_immediate() {
        for before in [Failure::Network, Failure::Http, Failure::RateLimited] {
            let mut policy = ReconnectPolicy::new();
            policy.next_delay(before);
            assert_ne!(
                policy.next_delay(Failure::Dropped),
                Duration::ZERO,
                "{before:?}"
            );
        }
    }

    #[test]
    fn each_kind_keeps_its_own_count() {
        let mut policy = ReconnectPolicy::new();
        let seq = [
            Failure::Network,
            Failure::Http,
            Failure::RateLimited,
            Failure::Network,
            Failure::Http,
            Failure::RateLimited,
            Failure::Dropped,
        ];
        let got: Vec<Duration> = seq.iter().map(|&f| policy.next_delay(f)).collect();
        assert_eq!(got, [MS(250), S(5), S(60), MS(500), S(10), S(120), MS(750)]);
    }

    #[test]
    fn reset_starts_every_schedule_over() {
        let mut policy = ReconnectPolicy::new();
        delays(&mut policy, Failure::Network, 5);
        delays(&mut policy, Failure::Http, 5);
        delays(&mut policy, Failure::RateLimited, 5);
        policy.reset();
        assert_eq!(policy, ReconnectPolicy::new());
        assert_eq!(policy.clone().next_delay(Failure::Dropped), Duration::ZERO);
        assert_eq!(policy.clone().next_delay(Failure::Network), MS(250));
        assert_eq!(policy.clone().next_delay(Failure::Http), S(5));
        assert_eq!(policy.clone().next_delay(Failure::RateLimited), S(60));
    }

    #[test]
    fn statuses_map_to_their_schedule_or_stop() {
        let of = |code: u16| status_failure(StatusCode::from_u16(code).unwrap());
        for code in [500, 502, 503, 504, 599, 408] {
            assert_eq!(of(code), Some(Failure::Http), "{code}");
        }
        for code in [429, 420] {
            assert_eq!(of(code), Some(Failure::RateLimited), "{code}");
        }
        for code in [400, 401, 403, 404, 406, 409, 410, 413, 416, 302] {
            assert_eq!(of(code), None, "{code}");
        }
    }

    use StreamRule as R;

    fn tagged(value: &str, tag: &str) -> XRule {
        XRule::Tagged(TaggedRule {
            value: value.into(),
            tag: Some(tag.into()),
        })
    }

    #[test]
    fn plan_keeps_matches_deletes_stale_adds_missing() {
        let existing = [
            R::new("1", "#rustlang", Some("rust")),
            R::new("2", "stale", None),
            R::new("3", "#tokio", Some("old")),
            R::new("4", "#serde", None),
        ];
        let wanted = [
            tagged("#rustlang", "rust"),
            XRule::Query("#serde".into()),
            tagged("#tokio", "tokio"),
            XRule::Query("#axum".into()),
            XRule::Query("#axum".into()),
        ];
        let plan = plan_rules(&existing, &wanted);
        assert_eq!(plan.keep, [existing[0].clone(), existing[3].clone()]);
        assert_eq!(plan.delete, [existing[1].clone(), existing[2].clone()]);
        assert_eq!(
            plan.add,
            [
                NewRule {
                    value: "#tokio".into(),
                    tag: Some("tokio".into())
                },
                NewRule {
                    value: "#axum".into(),
                    tag: None
                },
            ]
        );
    }

    #[test]
    fn plan_deletes_duplicates_on_the_server() {
        let existing = [R::new("1", "a", None), R::new("2", "a", None)];
        let plan = plan_rules(&existing, &[XRule::Query("a".into())]);
        assert_eq!(plan.keep, [existing[0].clone()]);
        assert_eq!(plan.delete, [existing[1].clone()]);
        assert!(plan.add.is_empty());
    }

    #[test]
    fn plan_with_nothing_to_do_is_empty() {
        let existing = [R::new("1", "a", Some("t"))];
        let plan = plan_rules(&existing, &[tagged("a", "t")]);
        assert!(plan.add.is_empty() && plan.delete.is_empty());
    }

    fn line(bytes: &[u8]) -> Piece {
        Piece::Line(bytes.to_vec())
    }

    #[test]
    fn lines_are_split_across_chunks_and_crlf_is_dropped() {
        let mut lines = LineBuffer::new(MAX_LINE);
        assert_eq!(lines.push(b"{\"a\":"), []);
        assert_eq!(lines.buf.len(), 5);
        assert_eq!(
            lines.push(b"1}\r\n\r\n{\"b\""),
            [line(b"{\"a\":1}"), line(b"")]
        );
        assert_eq!(lines.push(b":2}\n"), [line(b"{\"b\":2}")]);
        assert_eq!(lines.push(b"\r"), []);
        assert_eq!(lines.push(b"\n"), [line(b"")]);
        assert_eq!(lines.finish(), Tail::None);
        assert_eq!((lines.peak, lines.dropped), (8, 0));
    }

    #[test]
    fn a_line_at_the_limit_is_kept_and_one_byte_more_is_dropped() {
        let mut lines = LineBuffer::new(8);
        assert_eq!(lines.push(b"12345678\r\n"), [line(b"12345678")]);
        assert_eq!(lines.push(b"12345678\n"), [line(b"12345678")]);
        assert_eq!(lines.push(b"123456789\n"), [Piece::Oversize]);
        assert_eq!(
            lines.push(b"123456789\r\nok\r\n"),
            [Piece::Oversize, line(b"ok")]
        );
        assert_eq!(lines.dropped, 10 + 11);
        assert_eq!(lines.peak, 9, "the line and its \\r, never more");
    }

    #[test]
    fn an_oversize_line_is_dropped_up_to_the_next_newline_with_bounded_memory() {
        let mut lines = LineBuffer::new(1000);
        assert_eq!(
            lines.push(b"{\"before\":1}\r\n{\"giant\":\""),
            [line(b"{\"before\":1}")]
        );
        let mut found = Vec::new();
        // 10 MB in 4 KiB chunks, no newline.
        for _ in 0..2560 {
            found.extend(lines.push(&[b'x'; 4096]));
            assert!(lines.buf.len() <= 1001, "{}", lines.buf.len());
            assert_eq!(
                lines.buf.capacity(),
                0,
                "the buffer is freed while skipping"
            );
        }
        assert_eq!(found, [Piece::Oversize], "found once, not once a chunk");
        assert_eq!(
            lines.push(b"xx\"}\r\n{\"after\":2}\r\n"),
            [line(b"{\"after\":2}")]
        );
        assert_eq!(lines.dropped, 10 + 2560 * 4096 + 6);
        assert!(lines.peak <= 1001);
        assert_eq!(lines.finish(), Tail::None);

        // The body ends inside the giant line.
        lines.push(&[b'y'; 2000]);
        assert_eq!(lines.finish(), Tail::Oversize);
        assert_eq!(lines.finish(), Tail::None);
    }

    #[test]
    fn what_is_left_at_the_end_is_a_partial_line_or_nothing() {
        let mut lines = LineBuffer::new(MAX_LINE);
        lines.push(b"{\"data\":{\"id\":\"1\"},\"matching");
        assert_eq!(
            lines.finish(),
            Tail::Partial(b"{\"data\":{\"id\":\"1\"},\"matching".to_vec())
        );
        lines.push(b"\r");
        assert_eq!(lines.finish(), Tail::None, "half a heartbeat is nothing");
        assert!(is_json_object(b"{\"data\":{\"id\":\"1\"}}"));
        assert!(is_json_object(b" {}\r"));
        for cut in [
            &b"{\"data\":{\"id\":\"1\"}"[..],
            b"{",
            b"[]",
            b"12",
            b"\"{}\"",
            b"{}x",
        ] {
            assert!(!is_json_object(cut), "{}", String::from_utf8_lossy(cut));
        }
    }

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

    #[test]
    fn records_are_keyed_by_tweet_id_or_a_stable_hash() {
        let line = br#"{"data":{"id":"1439800001232728069","text":"hi"},"matching_rules":[{"id":"9","tag":"t"}]}"#;
        let (record, kind) = to_record(line.to_vec());
        assert_eq!(record.partition_key, "1439800001232728069");
        assert_eq!(record.data, line);
        assert_eq!(kind, LineKind::Message);

        let notice = br#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect"}]}"#;
        let (record, kind) = to_record(notice.to_vec());
        assert_eq!(kind, LineKind::System);
        assert_eq!(record.partition_key, format!("{:016x}", fnv1a(notice)));
        assert_eq!(record.partition_key.len(), 16);

        let (garbage, kind) = to_record(b"not json".to_vec());
        assert_eq!(kind, LineKind::Malformed);
        assert_eq!(garbage.partition_key, "5cf74153161a1a88");
        assert_ne!(
            to_record(b"not json!".to_vec()).0.partition_key,
            garbage.partition_key
        );
    }

    #[test]
    fn lines_that_are_not_json_objects_are_malformed() {
        for line in [
            &b"[null,null]"[..],
            b"\"text\"",
            b"null",
            b"<html>",
            b"{\"data\":{\"id\":\"1\",\"text\":\"\xff\xfe\"}}",
            b"{\"data\":",
        ] {
            let (record, kind) = to_record(line.to_vec());
            assert_eq!(
                kind,
                LineKind::Malformed,
                "{}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(record.data, line, "sent unchanged");
            assert_eq!(record.partition_key.len(), 16);
        }
        let (_, kind) = to_record(b"{}".to_vec());
        assert_eq!(kind, LineKind::Message, "an object, if an odd one");
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn token_references_parse() {
        assert_eq!(
            "env:X_BEARER".parse::<TokenRef>().unwrap(),
            TokenRef::Env("X_BEARER".into())
        );
        assert_eq!(
            "ssm:/tweets/x-bearer".parse::<TokenRef>().unwrap(),
            TokenRef::Ssm("/tweets/x-bearer".into())
        );
        for bad in [
            "",
            "env:",
            "ssm:",
            "ssm:/",
            "ssm:name",
            "AAAAtoken",
            "file:/x",
        ] {
            let err = bad.parse::<TokenRef>().unwrap_err();
            assert!(matches!(err, XApiError::TokenReference(_)), "{bad}: {err}");
        }
        assert_eq!(TokenRef::Ssm("/a/b".into()).to_string(), "ssm:/a/b");
    }

    #[test]
    fn bearer_token_hides_itself_and_is_trimmed() {
        let token = BearerToken::new(" s3cr3t-token\n").unwrap();
        assert_eq!(format!("{token:?}"), "BearerToken(***)");
        assert_eq!(token.secret, "s3cr3t-token");
        assert_eq!(token.header.to_str().unwrap(), "Bearer s3cr3t-token");
        assert!(token.header.is_sensitive());
        assert!(!format!("{:?}", token.header).contains("s3cr3t"));
        assert_eq!(token.scrub("echo: Bearer s3cr3t-token"), "echo: Bearer ***");
        assert_eq!(BearerToken::new("  ").unwrap_err(), TokenProblem::Empty);
        assert_eq!(
            BearerToken::new("a\u{7}b").unwrap_err(),
            TokenProblem::NotHeaderSafe
        );
    }

    #[test]
    fn x_problem_bodies_give_title_and_detail() {
        let status = StatusCode::UNAUTHORIZED;
        let v2 = br#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#;
        assert_eq!(
            describe_problem(status, v2),
            ("Unauthorized".into(), "Unauthorized".into())
        );
        let rules = br#"{"errors":[{"value":"bad(","details":["Unmatched parenthesis."],"title":"UnprocessableEntity"}]}"#;
        assert_eq!(
            describe_problem(StatusCode::BAD_REQUEST, rules),
            (
                "UnprocessableEntity".into(),
                "`bad(`: Unmatched parenthesis.".into()
            )
        );
        let v1 = br#"{"errors":[{"message":"Invalid or expired token","code":89}]}"#;
        assert_eq!(
            describe_problem(status, v1),
            ("Unauthorized".into(), "Invalid or expired token".into())
        );
        assert_eq!(
            describe_problem(StatusCode::FORBIDDEN, b"<html>nope</html>"),
            ("Forbidden".into(), "<html>nope</html>".into())
        );
        assert_eq!(
            describe_problem(StatusCode::FORBIDDEN, b""),
            ("Forbidden".into(), "empty body".into())
        );
    }

    #[test]
    fn api_errors_name_the_status_and_a_hint() {
        let err = XApiError::Api {
            during: "GET /2/tweets/search/stream",
            status: 401,
            title: "Unauthorized".into(),
            detail: "Unauthorized".into(),
        };
        assert_eq!(
            err.to_string(),
            "X API GET /2/tweets/search/stream: HTTP 401 Unauthorized: Unauthorized \
             (the bearer token was not accepted)"
        );
    }

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

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("a1-_.~"), "a1-_.~");
        assert_eq!(query_escape("a b&c=d/+"), "a%20b%26c%3Dd%2F%2B");
    }
}

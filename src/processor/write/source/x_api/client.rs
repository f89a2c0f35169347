//! The authenticated HTTP/1.1 client: TLS set up, requests made with the
//! token, JSON calls with a deadline and a size cap, and error bodies turned
//! into [`XApiError`]s scrubbed of the token. The rules calls are in
//! [`super::rules`], the stream in [`super::stream`].

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body as _, Incoming};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::{ConfigBuilderExt as _, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use super::error::{XApiError, describe_problem};
use super::token::BearerToken;

const USER_AGENT_VALUE: &str = concat!("streamstack/", env!("CARGO_PKG_VERSION"));
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Rules calls are short; one that hangs longer than this is not coming back.
pub(super) const RULES_TIMEOUT: Duration = Duration::from_secs(30);
/// 1000 rules (the most a stack file may hold) take about 1.2 MB as JSON.
const MAX_JSON_BODY: usize = 4 << 20;
pub(super) const MAX_ERROR_BODY: usize = 64 << 10;

/// An authenticated X API client: rules and stream.
pub struct XApiClient {
    pub(super) http: Client<HttpsConnector<HttpConnector>, String>,
    base_url: String,
    pub(super) token: BearerToken,
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

    pub(super) fn request(
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
    pub(super) async fn api_error(
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

    pub(super) async fn call_json<T: DeserializeOwned>(
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
}

/// hyper-util's errors say "client error (Connect)" at the top and the cause
/// further down.
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
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
pub(super) async fn read_body(
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

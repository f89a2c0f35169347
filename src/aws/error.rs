//! AWS errors as people need them: what was being done, and the service's
//! own error code and message (never a bare "service error").

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// A failed AWS call.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {detail}")]
pub struct AwsError {
    /// What was being done, in the user's terms ("creating change set for tweets-local").
    pub action: String,
    /// The service's error code, when it sent one.
    pub code: Option<String>,
    /// `Code: message` from the service, or the transport's error chain.
    pub detail: String,
}

/// The service's error code of an SDK error, if the service answered.
pub fn service_code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

impl AwsError {
    pub fn new<E>(action: impl Into<String>, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let code = service_code(&err).map(str::to_string);
        let detail = match &err {
            SdkError::ServiceError(e) => match (e.err().code(), e.err().message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_string(),
                // No error document (a proxy's or a broken server's page): status and the start of the body.
                _ => {
                    let raw = e.raw();
                    let body = raw
                        .body()
                        .bytes()
                        .map(String::from_utf8_lossy)
                        .unwrap_or_default();
                    let text: String = body
                        .split(['<', '>'])
                        .skip(1)
                        .step_by(2)
                        .collect::<Vec<_>>()
                        .join(" ");
                    let text = if text.trim().is_empty() {
                        body.to_string()
                    } else {
                        text
                    };
                    let short: String = text
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .chars()
                        .take(200)
                        .collect();
                    format!(
                        "HTTP {} without an AWS error document: {short}",
                        raw.status().as_u16()
                    )
                }
            },
            // Connection refused, timeouts, DNS: the chain says which.
            _ => DisplayErrorContext(&err).to_string(),
        };
        Self {
            action: action.into(),
            code,
            detail,
        }
    }
}

/// `.aws("doing what")?` on SDK results.
pub trait ResultExt<T> {
    fn aws(self, action: impl Into<String>) -> Result<T, AwsError>;
}

impl<T, E> ResultExt<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    fn aws(self, action: impl Into<String>) -> Result<T, AwsError> {
        self.map_err(|e| AwsError::new(action, e))
    }
}

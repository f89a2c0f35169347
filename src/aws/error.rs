//! AWS errors as people need them: what was being done, and the service's
//! own error code and message (never a bare "service error").

use std::error::Error as StdError;
use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::ProvideErrorKind;
use serde::Serialize;

/// What a failed call means for the caller: the one vocabulary of AWS
/// errors. Decided once, here, from the SDK's typed errors (the error's
/// modelled retry kind, the transport failure kinds, the HTTP status) and,
/// where the SDK models no type, the service's code against the SDK's own
/// lists of throttling and transient codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Throttling, 5xx, timeouts, dropped or refused connections: the same
    /// call may succeed later. Retried with backoff.
    Transient,
    /// The resource (table, stream, shard, bucket, key) does not exist.
    NotFound,
    /// A condition of a conditional write did not hold.
    Conditional,
    /// The request itself is refused (validation, an item or key too large,
    /// access denied): the same call fails the same way every time.
    Permanent,
}

/// The class of an SDK error (see [`ErrorClass`]).
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> ErrorClass
where
    E: ProvideErrorMetadata + ProvideErrorKind,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorClass::Transient
        }
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            class_of(
                ProvideErrorMetadata::code(e.err()),
                status,
                e.err().retryable_error_kind().is_some(),
            )
        }
        // A request the SDK could not even build: nothing to retry.
        _ => ErrorClass::Permanent,
    }
}

/// The class of a service's answer: its code, its HTTP status, and whether
/// the SDK models the error as retryable.
pub fn class_of(code: Option<&str>, status: u16, modelled_retryable: bool) -> ErrorClass {
    use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
    let code = code.unwrap_or_default();
    if modelled_retryable
        || THROTTLING_ERRORS.contains(&code)
        || TRANSIENT_ERRORS.contains(&code)
        || status >= 500
        || status == 429
    {
        ErrorClass::Transient
    } else if code == "ConditionalCheckFailedException" {
        ErrorClass::Conditional
    } else if code.ends_with("NotFoundException")
        || matches!(code, "NoSuchBucket" | "NoSuchKey" | "NotFound")
    {
        ErrorClass::NotFound
    } else {
        ErrorClass::Permanent
    }
}

pub fn is_retryable<E: ProvideErrorMetadata + ProvideErrorKind>(
    err: &SdkError<E, HttpResponse>,
) -> bool {
    classify(err) == ErrorClass::Transient
}

pub fn is_permanent<E: ProvideErrorMetadata + ProvideErrorKind>(
    err: &SdkError<E, HttpResponse>,
) -> bool {
    classify(err) == ErrorClass::Permanent
}

pub fn is_not_found<E: ProvideErrorMetadata + ProvideErrorKind>(
    err: &SdkError<E, HttpResponse>,
) -> bool {
    classify(err) == ErrorClass::NotFound
}

pub fn is_conditional_failure<E: ProvideErrorMetadata + ProvideErrorKind>(
    err: &SdkError<E, HttpResponse>,
) -> bool {
    classify(err) == ErrorClass::Conditional
}

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
    /// What the failure means for a retry.
    pub class: ErrorClass,
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
        E: ProvideErrorMetadata + ProvideErrorKind + StdError + Send + Sync + 'static,
    {
        let code = service_code(&err).map(str::to_string);
        let class = classify(&err);
        let detail = match &err {
            SdkError::ServiceError(e) => {
                match (ProvideErrorMetadata::code(e.err()), e.err().message()) {
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
                }
            }
            // Connection refused, timeouts, DNS: the chain says which.
            _ => DisplayErrorContext(&err).to_string(),
        };
        Self {
            action: action.into(),
            code,
            detail,
            class,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Transient
    }

    pub fn is_permanent(&self) -> bool {
        self.class == ErrorClass::Permanent
    }

    pub fn is_not_found(&self) -> bool {
        self.class == ErrorClass::NotFound
    }
}

/// `.aws("doing what")?` on SDK results.
pub trait ResultExt<T> {
    fn aws(self, action: impl Into<String>) -> Result<T, AwsError>;
}

impl<T, E> ResultExt<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + ProvideErrorKind + StdError + Send + Sync + 'static,
{
    fn aws(self, action: impl Into<String>) -> Result<T, AwsError> {
        self.map_err(|e| AwsError::new(action, e))
    }
}

/// Delays between retries of work the processor must not give up on (a
/// read, a store, a lease pass): jittered, doubling from `min` to `max`,
/// and endless unless `max_times` says otherwise. The one backoff schedule
/// of the shard reader, the sink and the producer.
pub fn backoff(
    min: Duration,
    max: Duration,
    max_times: Option<usize>,
) -> backon::ExponentialBackoff {
    use backon::BackoffBuilder;
    let builder = backon::ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter();
    match max_times {
        Some(times) => builder.with_max_times(times).build(),
        None => builder.without_max_times().build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_into_the_four_classes() {
        // Throttling of every service the processor calls, by code.
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
            "LimitExceededException",
            "SlowDown",
            "Throttling",
        ] {
            assert_eq!(
                class_of(Some(code), 400, false),
                ErrorClass::Transient,
                "{code}"
            );
        }
        assert_eq!(
            class_of(Some("InternalServerError"), 500, false),
            ErrorClass::Transient
        );
        assert_eq!(class_of(None, 503, false), ErrorClass::Transient);
        assert_eq!(class_of(Some("Whatever"), 400, true), ErrorClass::Transient);
        // What the same call will always get.
        for code in [
            "ValidationException",
            "AccessDeniedException",
            "ItemCollectionSizeLimitExceededException",
            "SerializationException",
        ] {
            assert_eq!(
                class_of(Some(code), 400, false),
                ErrorClass::Permanent,
                "{code}"
            );
        }
        assert_eq!(
            class_of(Some("ResourceNotFoundException"), 400, false),
            ErrorClass::NotFound
        );
        assert_eq!(
            class_of(Some("NoSuchBucket"), 404, false),
            ErrorClass::NotFound
        );
        assert_eq!(
            class_of(Some("ConditionalCheckFailedException"), 400, false),
            ErrorClass::Conditional
        );
    }
}

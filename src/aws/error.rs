//! AWS errors as people need them: what was being done, and the service's
//! own error code and message (never a bare "service error").

use std::error::Error as StdError;
use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
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
        // KMSThrottlingException (Kinesis and DynamoDB calling KMS) and kin.
        || code.ends_with("ThrottlingException")
        || TRANSIENT_ERRORS.contains(&code)
        // DynamoDB: a write that met a transaction on the same item (or a
        // transaction met another); retrying it is the documented answer.
        || matches!(
            code,
            "TransactionConflictException" | "TransactionInProgressException"
        )
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
                    (Some(code), Some(message)) => match credential_hint(code) {
                        Some(hint) => format!("{code}: {message} ({hint})"),
                        None => format!("{code}: {message}"),
                    },
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
            // No credentials, connection refused, timeouts, DNS: said in
            // words with what to do, never the SDK's debug dump.
            _ => transport_detail(&err),
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

/// The messages of an error and its sources, each once, without the
/// debug dump the SDK's own context display adds.
fn chain<'a>(err: &'a (dyn StdError + 'static)) -> (String, Vec<&'a (dyn StdError + 'static)>) {
    let mut parts: Vec<String> = Vec::new();
    let mut links = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let message = e.to_string();
        if !message.is_empty() && !parts.iter().any(|p| p.contains(&message)) {
            parts.push(message);
        }
        links.push(e);
        current = e.source();
    }
    (parts.join(": "), links)
}

/// What a failure before any answer from the service means, in words: no
/// credentials (and where the SDK looked), an endpoint that cannot be
/// reached (and what to check), or no answer in time.
fn transport_detail<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: StdError + Send + Sync + 'static,
{
    let (text, links) = chain(err);
    let credentials = links.iter().any(|e| {
        e.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
    });
    if credentials {
        // The SDK's own text lists where it looked when the whole chain
        // came up empty; when one source failed, say where it looks.
        let looked = if text.contains("Attempted") {
            ""
        } else {
            " (the SDK looks in the environment, the shared config and credentials files, SSO, web identity, and the ECS and EC2 instance metadata)"
        };
        return format!(
            "no AWS credentials found{looked}: {text}\nSet AWS_PROFILE or --profile, run `aws sso login` or `aws configure`, or use `-e local` to run on the local emulator"
        );
    }
    let slow = "the endpoint is slow or unreachable; --call-timeout sets the limit";
    match err {
        SdkError::TimeoutError(_) => format!("no answer in time ({text}): {slow}"),
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            format!("no answer in time ({text}): {slow}")
        }
        SdkError::DispatchFailure(d) if d.is_io() => format!(
            "cannot reach the AWS endpoint ({text}). Check the region (--region, the stack file's `region`) and any endpoint setting (--endpoint-url, AWS_ENDPOINT_URL); for the local emulator, start it with `scripts/emulator.sh start` (`make demo` does)"
        ),
        _ => text,
    }
}

/// A hint for answers about the caller's credentials, after the service's
/// own code and message.
fn credential_hint(code: &str) -> Option<&'static str> {
    match code {
        "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => Some(
            "the credentials have expired: run `aws sso login` or refresh them, then try again",
        ),
        "UnrecognizedClientException" | "InvalidClientTokenId" | "AuthFailure" => Some(
            "AWS does not know these credentials here: check the profile (AWS_PROFILE, --profile) and the region",
        ),
        "SignatureDoesNotMatch" | "InvalidSignatureException" => Some(
            "the request's signature was refused: check the secret key, and that this machine's clock is right",
        ),
        _ => None,
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
            "KMSThrottlingException",
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

#[cfg(test)]
mod message_tests {
    use super::*;
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn answered(code: &str, message: &str, status: u16) -> AwsError {
        let err = DescribeStacksError::generic(
            ErrorMetadata::builder().code(code).message(message).build(),
        );
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        AwsError::new("describing stack s", SdkError::service_error(err, raw))
    }

    #[test]
    fn answers_about_the_credentials_say_what_to_do() {
        let e = answered(
            "ExpiredToken",
            "The security token included in the request is expired",
            400,
        );
        assert_eq!(e.code.as_deref(), Some("ExpiredToken"));
        assert!(e.to_string().starts_with(
            "describing stack s: ExpiredToken: The security token included in the request is expired (the credentials have expired: run `aws sso login`"
        ), "{e}");
        let e = answered(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
            403,
        );
        assert!(
            e.to_string()
                .contains("check the profile (AWS_PROFILE, --profile) and the region"),
            "{e}"
        );
        // Any other answer is the service's own words, nothing added.
        let e = answered("ValidationError", "Stack with id s does not exist", 400);
        assert_eq!(
            e.to_string(),
            "describing stack s: ValidationError: Stack with id s does not exist"
        );
    }
}

//! Why the source stopped or could not start ([`XApiError`], [`TokenProblem`]),
//! and what X's error bodies say (its RFC 7807 problems and `errors` arrays),
//! made into a title and a detail.

use hyper::StatusCode;
use serde::Deserialize;

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

/// X v2 answers errors as an RFC 7807 problem (`title`, `detail`), and rule
/// and partial errors as an `errors` array; v1.1-style bodies have
/// `errors[].message`.
#[derive(Deserialize, Default)]
pub(super) struct Problem {
    title: Option<String>,
    detail: Option<String>,
    #[serde(default)]
    errors: Vec<ProblemItem>,
}

#[derive(Deserialize, Default)]
pub(super) struct ProblemItem {
    title: Option<String>,
    detail: Option<String>,
    message: Option<String>,
    value: Option<String>,
    #[serde(default)]
    details: Vec<String>,
}

impl ProblemItem {
    pub(super) fn describe(&self) -> String {
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

pub(super) fn describe_problem(status: StatusCode, body: &[u8]) -> (String, String) {
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
#[cfg(test)]
mod tests {
    use super::*;

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
}

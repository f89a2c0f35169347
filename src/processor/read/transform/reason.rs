//! Why a record (or one tweet object of a page) is a dead letter: the
//! reasons, their stable codes, and the helpers that build them.

use serde::Serialize;

/// Why a record (or one tweet object of a page) is a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadLetterReason {
    /// The bytes are not UTF-8.
    #[error("not UTF-8: invalid byte at offset {valid_up_to}")]
    NotUtf8 { valid_up_to: usize },
    /// The text is not one JSON value (the message has line and column).
    #[error("not JSON: {message}")]
    NotJson { message: String },
    /// JSON, but not a tweet or a record holding tweets.
    #[error("not a tweet: {detail}")]
    NotATweet { detail: String },
    /// A tweet (or the record's envelope) with a field of the wrong type or
    /// an unusable value.
    #[error("bad field `{path}`: {message}")]
    BadField { path: String, message: String },
    /// An X API error response (`errors` and no `data`).
    #[error("X API error: {title}: {detail}")]
    ApiError { title: String, detail: String },
    /// The filtered stream's "operational disconnect" message.
    #[error("stream disconnected: {detail}")]
    StreamDisconnect { detail: String },
}

impl DeadLetterReason {
    /// A stable short name of the reason, for metric dimensions and
    /// dead-letter prefixes: `not_utf8`, `not_json`, `not_a_tweet`,
    /// `bad_field`, `api_error`, `stream_disconnect`.
    pub fn code(&self) -> &'static str {
        match self {
            DeadLetterReason::NotUtf8 { .. } => "not_utf8",
            DeadLetterReason::NotJson { .. } => "not_json",
            DeadLetterReason::NotATweet { .. } => "not_a_tweet",
            DeadLetterReason::BadField { .. } => "bad_field",
            DeadLetterReason::ApiError { .. } => "api_error",
            DeadLetterReason::StreamDisconnect { .. } => "stream_disconnect",
        }
    }
}

impl Serialize for DeadLetterReason {
    /// `{"code": "...", "message": "..."}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("DeadLetterReason", 2)?;
        st.serialize_field("code", self.code())?;
        st.serialize_field("message", &self.to_string())?;
        st.end()
    }
}

pub(super) fn not_json(e: &serde_json::Error) -> DeadLetterReason {
    DeadLetterReason::NotJson {
        message: e.to_string(),
    }
}

pub(super) fn not_a_tweet(detail: impl Into<String>) -> DeadLetterReason {
    DeadLetterReason::NotATweet {
        detail: detail.into(),
    }
}

pub(super) fn bad_field(path: impl Into<String>, message: impl Into<String>) -> DeadLetterReason {
    DeadLetterReason::BadField {
        path: path.into(),
        message: message.into(),
    }
}

/// Prefixes the location of a reason found inside `data`.
pub(super) fn in_data(reason: DeadLetterReason, at: &str) -> DeadLetterReason {
    match reason {
        DeadLetterReason::NotATweet { detail } => not_a_tweet(format!("`{at}`: {detail}")),
        DeadLetterReason::BadField { path, message } => bad_field(format!("{at}.{path}"), message),
        other => other,
    }
}

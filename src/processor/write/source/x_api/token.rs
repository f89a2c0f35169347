//! The bearer token: where the stack file says it is (`env:NAME` or
//! `ssm:/parameter`), read from there, and kept out of every text shown to a
//! person.

use std::fmt;
use std::str::FromStr;

use hyper::header::HeaderValue;

use super::error::{TokenProblem, XApiError};

/// The X API bearer token. Its `Debug` prints `***`; it has no `Display`,
/// and the header made from it is marked sensitive.
#[derive(Clone)]
pub struct BearerToken {
    pub(super) secret: String,
    pub(super) header: HeaderValue,
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
    pub(super) fn scrub(&self, text: &str) -> String {
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
#[cfg(test)]
mod tests {
    use super::*;

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
}

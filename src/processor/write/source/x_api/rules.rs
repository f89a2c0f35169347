//! The stream's rules: what X holds, what the stack file wants, the plan
//! between them ([`plan_rules`], pure) and the calls that carry it out
//! ([`XApiClient::rules`], [`XApiClient::sync_rules`]).

use hyper::Method;
use serde::{Deserialize, Serialize};

use super::RULES_PATH;
use super::client::XApiClient;
use super::error::{ProblemItem, XApiError};
use super::token::BearerToken;
use crate::spec::model::XRule;

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

impl XApiClient {
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
#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::model::TaggedRule;

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

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("a1-_.~"), "a1-_.~");
        assert_eq!(query_escape("a b&c=d/+"), "a%20b%26c%3Dd%2F%2B");
    }
}

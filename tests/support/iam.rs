//! The IAM policy linter of tests/security.rs: identity policies (role,
//! user and group inline policies, AWS::IAM::Policy and ManagedPolicy),
//! trust policies and resource policies (bucket, key, topic, queue) of a
//! compiled template, walked statement by statement. It reports findings
//! instead of panicking, so that a test can show it catches a deliberately
//! doctored template. The template walkers it needs ([`resources`],
//! [`of_type`], [`list`], [`statements`]) are shared with the other checkers.
//!
//! ```ignore
//! #[path = "support/iam.rs"]
//! mod iam;
//! ```

use serde_json::{Value, json};

/// Actions allowed on `*`: none has resource-level permissions (or, for the
/// agent's registration, the caller is the resource). The condition, when
/// named, must be on the statement.
pub const STAR_RESOURCE_OK: &[(&str, Option<&str>, &str)] = &[
    (
        "cloudwatch:PutMetricData",
        Some("cloudwatch:namespace"),
        "no resource-level permissions; the namespace condition pins it to the processor's metrics",
    ),
    (
        "ssm:UpdateInstanceInformation",
        None,
        "the SSM agent registering its own instance (AWS's minimal agent policy grants it on *)",
    ),
    (
        "ec2messages:AcknowledgeMessage",
        None,
        "ec2messages has no resource types (Run Command delivery)",
    ),
    (
        "ec2messages:DeleteMessage",
        None,
        "ec2messages has no resource types",
    ),
    (
        "ec2messages:FailMessage",
        None,
        "ec2messages has no resource types",
    ),
    (
        "ec2messages:GetEndpoint",
        None,
        "ec2messages has no resource types",
    ),
    (
        "ec2messages:GetMessages",
        None,
        "ec2messages has no resource types",
    ),
    (
        "ec2messages:SendReply",
        None,
        "ec2messages has no resource types",
    ),
    (
        "ssmmessages:CreateControlChannel",
        None,
        "ssmmessages has no resource types (Session Manager channels)",
    ),
    (
        "ssmmessages:CreateDataChannel",
        None,
        "ssmmessages has no resource types",
    ),
    (
        "ssmmessages:OpenControlChannel",
        None,
        "ssmmessages has no resource types",
    ),
    (
        "ssmmessages:OpenDataChannel",
        None,
        "ssmmessages has no resource types",
    ),
];

pub fn resources(t: &Value) -> Vec<(&String, &Value)> {
    t["Resources"]
        .as_object()
        .map(|m| m.iter().collect())
        .unwrap_or_default()
}

pub fn of_type<'a>(t: &'a Value, ty: &str) -> Vec<(&'a String, &'a Value)> {
    resources(t)
        .into_iter()
        .filter(|(_, r)| r["Type"] == ty)
        .collect()
}

/// A string or an array of values, as a list.
pub fn list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

pub fn statements(document: &Value) -> Vec<&Value> {
    list(&document["Statement"])
}

/// A resource that names everything: `*`, or an ARN (literal or Fn::Sub)
/// whose resource part is `*` (`arn:aws:kinesis:*:*:*`).
pub fn names_everything(resource: &Value) -> bool {
    let text = match resource {
        Value::String(s) => s.as_str(),
        Value::Object(o) => match o.get("Fn::Sub") {
            Some(Value::String(s)) => s.as_str(),
            _ => return false,
        },
        _ => return false,
    };
    // `${AWS::Partition}` and friends hold colons of their own.
    let mut plain = String::new();
    let mut rest = text;
    while let Some((before, after)) = rest.split_once("${") {
        plain.push_str(before);
        plain.push('x');
        rest = after.split_once('}').map_or("", |(_, r)| r);
    }
    plain.push_str(rest);
    plain == "*" || (plain.starts_with("arn:") && plain.splitn(6, ':').nth(5) == Some("*"))
}

pub fn is_everyone(principal: &Value) -> bool {
    principal == "*" || list(&principal["AWS"]).iter().any(|p| *p == "*")
}

/// The key policy's first statement: the account (root) may administer the
/// key through IAM. `kms:*` to this account only: narrowing it can lock the
/// key (PutKeyPolicy), and it grants nothing by itself: the roles' own
/// policies name their KMS actions on the key's ARN.
pub fn is_key_delegation(statement: &Value) -> bool {
    statement["Principal"]["AWS"]
        == json!({ "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root" })
        && list(&statement["Action"]) == vec![&json!("kms:*")]
        && statement.get("Condition").is_none()
}

/// An identity policy (what a role, user or group may do).
pub fn check_identity_policy(owner: &str, document: &Value, findings: &mut Vec<String>) {
    for st in statements(document) {
        if st["Effect"] != "Allow" {
            continue;
        }
        let sid = st["Sid"].as_str().unwrap_or("?");
        if st.get("NotAction").is_some() || st.get("NotResource").is_some() {
            findings.push(format!("{owner} {sid}: NotAction/NotResource in an Allow"));
        }
        let actions = list(&st["Action"]);
        for action in &actions {
            if action.as_str().is_none_or(|a| a.contains('*')) {
                findings.push(format!("{owner} {sid}: wildcard action {action}"));
            }
        }
        if list(&st["Resource"]).into_iter().any(names_everything) {
            for action in &actions {
                let allowed = STAR_RESOURCE_OK
                    .iter()
                    .find(|(a, _, _)| *action == a)
                    .is_some_and(|(_, condition, _)| {
                        condition.is_none_or(|key| st["Condition"].to_string().contains(key))
                    });
                if !allowed {
                    findings.push(format!(
                        "{owner} {sid}: {action} on every resource (not in the allowlist, or without its condition)"
                    ));
                }
            }
        }
    }
}

pub fn check_trust_policy(owner: &str, document: &Value, findings: &mut Vec<String>) {
    for st in statements(document) {
        let service_only = st["Principal"]
            .as_object()
            .is_some_and(|p| p.keys().all(|k| k == "Service"));
        if st["Effect"] == "Allow"
            && (!service_only
                || list(&st["Action"]) != vec![&json!("sts:AssumeRole")]
                || st["Condition"]["StringEquals"]["aws:SourceAccount"]
                    != json!({ "Ref": "AWS::AccountId" }))
        {
            findings.push(format!(
                "{owner}: trust policy must let one AWS service assume the role for this account only: {st}"
            ));
        }
    }
}

/// A resource policy (bucket, key, topic, queue).
pub fn check_resource_policy(owner: &str, document: &Value, key: bool, findings: &mut Vec<String>) {
    for st in statements(document) {
        if st["Effect"] != "Allow" {
            continue;
        }
        let sid = st["Sid"].as_str().unwrap_or("?");
        if is_everyone(&st["Principal"]) || st.get("NotPrincipal").is_some() {
            findings.push(format!("{owner} {sid}: allows everyone"));
        }
        if key && is_key_delegation(st) {
            continue;
        }
        for action in list(&st["Action"]) {
            if action.as_str().is_none_or(|a| a.contains('*')) {
                findings.push(format!("{owner} {sid}: wildcard action {action}"));
            }
        }
        // In a key policy `*` means the key itself; elsewhere name the resource.
        if !key && list(&st["Resource"]).into_iter().any(names_everything) {
            findings.push(format!("{owner} {sid}: Allow on every resource"));
        }
    }
}

pub fn iam_findings(t: &Value) -> Vec<String> {
    let mut findings = Vec::new();
    for (id, r) in resources(t) {
        let p = &r["Properties"];
        match r["Type"].as_str().unwrap_or_default() {
            "AWS::IAM::Role" | "AWS::IAM::User" | "AWS::IAM::Group" => {
                for policy in list(&p["Policies"]) {
                    check_identity_policy(id, &policy["PolicyDocument"], &mut findings);
                }
                if r["Type"] == "AWS::IAM::Role" {
                    check_trust_policy(id, &p["AssumeRolePolicyDocument"], &mut findings);
                }
                for arn in list(&p["ManagedPolicyArns"]) {
                    let ours = arn["Ref"].as_str().is_some_and(|target| {
                        t["Resources"][target]["Type"] == "AWS::IAM::ManagedPolicy"
                    });
                    if !ours {
                        findings.push(format!(
                            "{id}: attaches managed policy {arn}, which this check cannot read"
                        ));
                    }
                }
            }
            "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" => {
                check_identity_policy(id, &p["PolicyDocument"], &mut findings);
            }
            "AWS::S3::BucketPolicy" | "AWS::SNS::TopicPolicy" | "AWS::SQS::QueuePolicy" => {
                check_resource_policy(id, &p["PolicyDocument"], false, &mut findings);
            }
            "AWS::KMS::Key" => check_resource_policy(id, &p["KeyPolicy"], true, &mut findings),
            _ => {}
        }
    }
    findings
}

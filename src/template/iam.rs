//! IAM policy documents, kept small and explicit: every statement names
//! its actions and the exact resources they apply to.

use serde_json::{Value, json};

pub fn document(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

pub fn allow(sid: &str, actions: &[&str], resources: Vec<Value>) -> Value {
    json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources })
}

/// A trust policy for one AWS service, limited to this account so that the
/// service cannot be steered into the role on behalf of another one.
pub fn service_trust(service: &str) -> Value {
    document(vec![json!({
        "Effect": "Allow",
        "Principal": { "Service": service },
        "Action": "sts:AssumeRole",
        "Condition": { "StringEquals": { "aws:SourceAccount": { "Ref": "AWS::AccountId" } } },
    })])
}

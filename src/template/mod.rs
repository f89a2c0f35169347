//! Stack -> CloudFormation template. A pure function: the same stack gives
//! the same bytes (keys are sorted, nothing depends on time or randomness).
//!
//! One file a resource family; each adds its resources and outputs to a
//! [`Template`] and reads the names every family shares from [`crate::names`].

mod alarms;
mod archive;
mod dashboard;
mod host;
mod iam;
mod key;
mod network;
mod stream;
mod table;

pub use crate::names::Names;

use serde_json::{Map, Value, json};

use crate::spec::Resolved;
use crate::spec::model::{Encryption, Stack};

/// Days CloudWatch Logs keeps the stack's log groups (the Firehose delivery
/// errors and the processor's lines).
pub const LOG_RETENTION_DAYS: u32 = 30;

/// The template under construction.
pub struct Template<'a> {
    pub stack: &'a Stack,
    pub names: Names,
    resources: Map<String, Value>,
    outputs: Map<String, Value>,
    parameters: Map<String, Value>,
    conditions: Map<String, Value>,
}

impl<'a> Template<'a> {
    fn new(resolved: &'a Resolved) -> Self {
        Self {
            stack: &resolved.stack,
            names: Names::new(resolved),
            resources: Map::new(),
            outputs: Map::new(),
            parameters: Map::new(),
            conditions: Map::new(),
        }
    }

    pub fn resource(&mut self, logical_id: &str, resource: Value) {
        let previous = self.resources.insert(logical_id.to_string(), resource);
        debug_assert!(previous.is_none(), "resource {logical_id} added twice");
    }

    pub fn output(&mut self, logical_id: &str, description: &str, value: Value) {
        self.outputs.insert(
            logical_id.to_string(),
            json!({ "Description": description, "Value": value }),
        );
    }

    pub fn parameter(&mut self, logical_id: &str, parameter: Value) {
        self.parameters.insert(logical_id.to_string(), parameter);
    }

    /// Tags in the `[{Key, Value}]` form most resource types take: the
    /// stack file's tags plus the two that tie a resource to its stack.
    pub fn tags(&self) -> Value {
        Value::Array(
            self.tag_pairs()
                .into_iter()
                .map(|(k, v)| json!({ "Key": k, "Value": v }))
                .collect(),
        )
    }

    pub fn tag_pairs(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .stack
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.push(("streamstack:stack".into(), self.names.stack.clone()));
        pairs.sort();
        pairs.dedup_by(|a, b| a.0 == b.0);
        pairs
    }

    /// Whether the stack creates its own KMS key: asked for by a resource, or
    /// needed because CloudWatch cannot publish to a topic encrypted with the
    /// AWS-managed SNS key.
    pub fn has_stack_key(&self) -> bool {
        let s = self.stack;
        [
            s.stream.encryption,
            s.archive.encryption,
            s.table.encryption,
        ]
        .contains(&Encryption::StackKey)
            || s.alarms.email.is_some()
    }

    fn finish(self, description: String) -> Value {
        let mut about = json!({ "stack": self.names.stack, "version": env!("CARGO_PKG_VERSION") });
        if let Some(env) = &self.names.environment {
            about["environment"] = json!(env);
        }
        let mut template = json!({
            "AWSTemplateFormatVersion": "2010-09-09",
            "Description": description,
            "Metadata": { "streamstack": about },
            "Resources": self.resources,
            "Outputs": self.outputs,
        });
        if !self.parameters.is_empty() {
            template["Parameters"] = Value::Object(self.parameters);
        }
        if !self.conditions.is_empty() {
            template["Conditions"] = Value::Object(self.conditions);
        }
        template
    }
}

/// `{"Ref": id}`
pub fn r(logical_id: &str) -> Value {
    json!({ "Ref": logical_id })
}

/// `{"Fn::GetAtt": [id, attribute]}`
pub fn get_att(logical_id: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [logical_id, attribute] })
}

/// `{"Fn::Sub": text}`
pub fn sub(text: &str) -> Value {
    json!({ "Fn::Sub": text })
}

/// checkov skips with their reasons, for the resource's Metadata.
pub fn checkov_skips(skips: &[(&str, &str)]) -> Value {
    json!({ "checkov": { "skip": skips.iter().map(|(id, why)| json!({ "id": id, "comment": why })).collect::<Vec<_>>() } })
}

/// Compiles a resolved stack into a CloudFormation template.
pub fn compile(resolved: &Resolved) -> Value {
    let mut t = Template::new(resolved);
    key::add(&mut t);
    stream::add(&mut t);
    archive::add(&mut t);
    table::add(&mut t);
    host::add(&mut t);
    alarms::add(&mut t);
    dashboard::add(&mut t);
    let description = format!(
        "streamstack pipeline {}: Kinesis stream, Firehose archive to S3, DynamoDB tables, processor host, CloudWatch alarms and dashboard",
        t.names.stack
    );
    t.finish(description)
}

/// The template as the bytes `synth` prints: pretty JSON and a final newline.
pub fn to_pretty_json(template: &Value) -> String {
    let mut text = serde_json::to_string_pretty(template).expect("a JSON value always serializes");
    text.push('\n');
    text
}

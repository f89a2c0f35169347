//! The stack's own KMS key, created only when the stack file asks for one
//! (`encryption: stack-key`) or alarms e-mail through SNS.

use serde_json::json;

use super::{Template, get_att, iam, sub};

pub use crate::names::logical::STACK_KEY as KEY;

pub fn add(t: &mut Template<'_>) {
    if !t.has_stack_key() {
        return;
    }
    // The default key policy: it only lets IAM policies in this account
    // grant use of the key (the roles name their actions on its ARN); the
    // account keeps PutKeyPolicy, so the key can never become unmanageable.
    let mut statements = vec![json!({
        "Sid": "AccountAdministersKeyThroughIam",
        "Effect": "Allow",
        "Principal": { "AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root") },
        "Action": "kms:*",
        "Resource": "*",
    })];
    // CloudWatch Logs encrypts the stack's log groups (Firehose delivery
    // errors, the processor's lines) with this key: AWS's statement for a
    // key used by named log groups, the encryption context pinned to them
    // (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html).
    let log_group_arn = |name: &str| {
        sub(&format!(
            "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{name}"
        ))
    };
    statements.push(json!({
        "Sid": "CloudWatchLogsEncryptsTheStackLogs",
        "Effect": "Allow",
        "Principal": { "Service": sub("logs.${AWS::Region}.amazonaws.com") },
        // The actions AWS's example grants as `kms:Encrypt*`, `kms:Decrypt*`,
        // `kms:ReEncrypt*`, `kms:GenerateDataKey*` and `kms:Describe*`, named.
        "Action": [
            "kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
            "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
            "kms:GenerateDataKeyPair", "kms:GenerateDataKeyPairWithoutPlaintext", "kms:DescribeKey",
        ],
        "Resource": "*",
        "Condition": { "ArnEquals": { "kms:EncryptionContext:aws:logs:arn": [
            log_group_arn(&t.names.firehose_log_group),
            log_group_arn(&t.names.processor_log_group),
        ] } },
    }));
    if t.stack.alarms.email.is_some() {
        // CloudWatch alarms cannot publish to a topic under the AWS-managed
        // SNS key; this key lets them.
        statements.push(json!({
            "Sid": "CloudWatchAlarmsPublishToTheTopic",
            "Effect": "Allow",
            "Principal": { "Service": "cloudwatch.amazonaws.com" },
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": "*",
            "Condition": { "StringEquals": { "aws:SourceAccount": { "Ref": "AWS::AccountId" } } },
        }));
    }
    let tags = t.tags();
    t.resource(
        KEY,
        json!({
            "Type": "AWS::KMS::Key",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "Description": format!("streamstack {}: encryption at rest", t.names.stack),
                "EnableKeyRotation": true,
                "KeyPolicy": iam::document(statements),
                "Tags": tags,
            }
        }),
    );
    t.output("KmsKeyArn", "The stack's KMS key", get_att(KEY, "Arn"));
}

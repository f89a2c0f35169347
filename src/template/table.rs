//! DynamoDB: the tweets table (one item a tweet), the live aggregates, and
//! the processor's lease table (shard leases and checkpoints).

use serde_json::{Value, json};

use super::{Template, checkov_skips, get_att, key, r};
use crate::spec::model::{BillingMode, Encryption};

pub use crate::names::attribute::{AGGREGATES_PK, AGGREGATES_SK, AGGREGATES_TTL, LEASES_PK};
pub use crate::names::logical::{
    AGGREGATES_TABLE as AGGREGATES, LEASE_TABLE as LEASES, TWEETS_TABLE as TABLE,
};

pub fn add(t: &mut Template<'_>) {
    let spec = &t.stack.table;
    let mut tweets = table(
        t,
        &t.names.table,
        &[(&spec.partition_key, "HASH")],
        spec.ttl_attribute.as_deref(),
    );
    if spec.billing == BillingMode::Provisioned {
        tweets["Properties"]["BillingMode"] = json!("PROVISIONED");
        tweets["Properties"]["ProvisionedThroughput"] = json!({
            "ReadCapacityUnits": spec.read_capacity.unwrap_or(1),
            "WriteCapacityUnits": spec.write_capacity.unwrap_or(1),
        });
    }
    retain(&mut tweets);
    t.resource(TABLE, tweets);

    let mut aggregates = table(
        t,
        &t.names.aggregates_table,
        &[(AGGREGATES_PK, "HASH"), (AGGREGATES_SK, "RANGE")],
        Some(AGGREGATES_TTL),
    );
    retain(&mut aggregates);
    t.resource(AGGREGATES, aggregates);

    // Leases are operational state, not data: they go with the stack.
    let leases = table(t, &t.names.lease_table, &[(LEASES_PK, "HASH")], None);
    t.resource(LEASES, leases);

    t.output("TableName", "DynamoDB table of extracted tweets", r(TABLE));
    t.output(
        "AggregatesTableName",
        "DynamoDB table of per-minute hashtag and language counts",
        r(AGGREGATES),
    );
    t.output(
        "LeaseTableName",
        "DynamoDB table of the processor's shard leases and checkpoints",
        r(LEASES),
    );
}

/// Data tables survive stack deletion and replacement; `down --delete-data`
/// removes them explicitly.
fn retain(resource: &mut Value) {
    resource["DeletionPolicy"] = json!("Retain");
    resource["UpdateReplacePolicy"] = json!("Retain");
}

fn table(t: &Template<'_>, name: &str, keys: &[(&str, &str)], ttl: Option<&str>) -> Value {
    let spec = &t.stack.table;
    let sse = match spec.encryption {
        Encryption::AwsManaged => json!({ "SSEEnabled": true }),
        Encryption::StackKey => {
            json!({ "SSEEnabled": true, "SSEType": "KMS", "KMSMasterKeyId": get_att(key::KEY, "Arn") })
        }
    };
    let mut properties = json!({
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": keys.iter().map(|(n, _)| json!({ "AttributeName": n, "AttributeType": "S" })).collect::<Vec<_>>(),
        "KeySchema": keys.iter().map(|(n, k)| json!({ "AttributeName": n, "KeyType": k })).collect::<Vec<_>>(),
        "PointInTimeRecoverySpecification": { "PointInTimeRecoveryEnabled": spec.point_in_time_recovery },
        "SSESpecification": sse,
        "Tags": t.tags(),
    });
    if let Some(attr) = ttl {
        properties["TimeToLiveSpecification"] = json!({ "AttributeName": attr, "Enabled": true });
    }
    let mut skips = Vec::new();
    if spec.encryption == Encryption::AwsManaged {
        skips.push(("CKV_AWS_119", "Encrypted with the AWS-managed DynamoDB key; `table.encryption: stack-key` switches to the stack's customer-managed key."));
    }
    if !spec.point_in_time_recovery {
        skips.push(("CKV_AWS_28", "Point-in-time recovery is turned off in the stack file (table.point_in_time_recovery: false)."));
    }
    let mut resource = json!({ "Type": "AWS::DynamoDB::Table", "Properties": properties });
    if !skips.is_empty() {
        resource["Metadata"] = checkov_skips(&skips);
    }
    resource
}

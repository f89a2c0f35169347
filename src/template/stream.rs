//! The Kinesis data stream.

use serde_json::json;

use super::{Template, get_att, key, r};
use crate::spec::model::{CapacityMode, Encryption};

pub use crate::names::logical::STREAM;

pub fn add(t: &mut Template<'_>) {
    let spec = &t.stack.stream;
    let key_id = match spec.encryption {
        Encryption::AwsManaged => json!("alias/aws/kinesis"),
        Encryption::StackKey => get_att(key::KEY, "Arn"),
    };
    let mut properties = json!({
        "Name": t.names.stream,
        "RetentionPeriodHours": spec.retention_hours,
        "StreamEncryption": { "EncryptionType": "KMS", "KeyId": key_id },
        "Tags": t.tags(),
    });
    match spec.mode {
        CapacityMode::Provisioned => {
            properties["StreamModeDetails"] = json!({ "StreamMode": "PROVISIONED" });
            properties["ShardCount"] = json!(spec.shard_count());
        }
        CapacityMode::OnDemand => {
            properties["StreamModeDetails"] = json!({ "StreamMode": "ON_DEMAND" })
        }
    }
    t.resource(
        STREAM,
        json!({ "Type": "AWS::Kinesis::Stream", "Properties": properties }),
    );
    t.output(
        "StreamName",
        "Kinesis data stream the producer writes to",
        r(STREAM),
    );
    t.output(
        "StreamArn",
        "ARN of the Kinesis data stream",
        get_att(STREAM, "Arn"),
    );
}

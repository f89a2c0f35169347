//! The raw archive: an S3 bucket and the Firehose delivery stream that
//! copies the Kinesis stream into it.

use serde_json::{Value, json};

use super::{Template, checkov_skips, get_att, iam, key, r, stream, sub};
use crate::names::output;
use crate::spec::model::{Compression, Encryption};

pub use crate::names::logical::{ARCHIVE_BUCKET as BUCKET, DELIVERY_STREAM};
const BUCKET_POLICY: &str = "ArchiveBucketPolicy";
const ROLE: &str = "ArchiveDeliveryRole";
const LOG_GROUP: &str = "ArchiveDeliveryLogGroup";
const LOG_STREAM: &str = "ArchiveDeliveryLogStream";

pub fn add(t: &mut Template<'_>) {
    bucket(t);
    delivery_stream(t);
}

fn bucket(t: &mut Template<'_>) {
    let spec = &t.stack.archive;
    let encryption = match spec.encryption {
        Encryption::AwsManaged => {
            json!({ "ServerSideEncryptionByDefault": { "SSEAlgorithm": "AES256" } })
        }
        Encryption::StackKey => json!({
            "ServerSideEncryptionByDefault": { "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": get_att(key::KEY, "Arn") },
            "BucketKeyEnabled": true,
        }),
    };
    let mut rules = vec![
        json!({ "Id": "AbortIncompleteUploads", "Status": "Enabled", "AbortIncompleteMultipartUpload": { "DaysAfterInitiation": 7 } }),
    ];
    if let Some(days) = spec.expire_after_days {
        let mut rule =
            json!({ "Id": "ExpireArchive", "Status": "Enabled", "ExpirationInDays": days });
        if spec.versioning {
            rule["NoncurrentVersionExpiration"] = json!({ "NoncurrentDays": days });
        }
        rules.push(rule);
    }
    // Expiring an object, or deleting one, leaves a delete marker (the bucket
    // is versioning-enabled or -suspended, never unversioned); once its
    // noncurrent versions have expired too, nothing removes the marker and
    // the key lingers in every version listing. S3 refuses
    // ExpiredObjectDeleteMarker in a rule that also expires by days, hence a
    // rule of its own.
    rules.push(json!({ "Id": "RemoveExpiredDeleteMarkers", "Status": "Enabled", "ExpiredObjectDeleteMarker": true }));
    let mut skips = vec![(
        "CKV_AWS_18",
        "Access logging needs a second, log-only bucket; CloudTrail data events are the recommended audit trail for the archive.",
    )];
    if !spec.versioning {
        skips.push((
            "CKV_AWS_21",
            "Versioning is turned off in the stack file (archive.versioning: false).",
        ));
    }
    let tags = t.tags();
    t.resource(
        BUCKET,
        json!({
            "Type": "AWS::S3::Bucket",
            // The archive is data: it survives stack deletion and replacement;
            // `streamstack down --delete-data` is the explicit way to drop it.
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Metadata": checkov_skips(&skips),
            "Properties": {
                "BucketName": sub(&t.names.bucket_pattern()),
                "BucketEncryption": { "ServerSideEncryptionConfiguration": [encryption] },
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
                },
                "OwnershipControls": { "Rules": [{ "ObjectOwnership": "BucketOwnerEnforced" }] },
                "VersioningConfiguration": { "Status": if spec.versioning { "Enabled" } else { "Suspended" } },
                "LifecycleConfiguration": { "Rules": rules },
                "Tags": tags,
            }
        }),
    );
    tls_only_policy(t, BUCKET_POLICY, BUCKET);
    t.output(
        output::ARCHIVE_BUCKET_NAME,
        "S3 bucket of the raw archive and dead letters",
        r(BUCKET),
    );
    t.output(
        "DeadLetterPrefix",
        "Key prefix of dead letters in the archive bucket",
        json!(spec.dead_letter_prefix),
    );
}

/// A bucket policy that refuses every request not made over TLS.
pub(super) fn tls_only_policy(t: &mut Template<'_>, logical_id: &str, bucket: &str) {
    t.resource(
        logical_id,
        json!({
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": r(bucket),
                "PolicyDocument": iam::document(vec![json!({
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [get_att(bucket, "Arn"), sub(&format!("${{{bucket}.Arn}}/*"))],
                    "Condition": { "Bool": { "aws:SecureTransport": "false" } },
                })]),
            }
        }),
    );
}

fn delivery_stream(t: &mut Template<'_>) {
    let spec = &t.stack.archive;
    let stack_key = t.has_stack_key();
    let stream_key = t.stack.stream.encryption == Encryption::StackKey;

    let mut log_group = json!({
        "Type": "AWS::Logs::LogGroup",
        "Properties": { "LogGroupName": t.names.firehose_log_group, "RetentionInDays": super::LOG_RETENTION_DAYS, "Tags": t.tags() },
    });
    if stack_key {
        log_group["Properties"]["KmsKeyId"] = get_att(key::KEY, "Arn");
    } else {
        log_group["Metadata"] = checkov_skips(&[(
            "CKV_AWS_158",
            "Holds only Firehose delivery error messages, encrypted by CloudWatch Logs' default encryption; a stack key is created when any resource asks for one.",
        )]);
    }
    t.resource(LOG_GROUP, log_group);
    t.resource(
        LOG_STREAM,
        json!({ "Type": "AWS::Logs::LogStream", "Properties": { "LogGroupName": r(LOG_GROUP), "LogStreamName": "DeliveryErrors" } }),
    );

    let mut statements = vec![
        iam::allow(
            "ReadTheSourceStream",
            &[
                "kinesis:DescribeStream",
                "kinesis:DescribeStreamSummary",
                "kinesis:GetShardIterator",
                "kinesis:GetRecords",
                "kinesis:ListShards",
            ],
            vec![get_att(stream::STREAM, "Arn")],
        ),
        iam::allow(
            "WriteTheArchive",
            &[
                "s3:AbortMultipartUpload",
                "s3:GetBucketLocation",
                "s3:GetObject",
                "s3:ListBucket",
                "s3:ListBucketMultipartUploads",
                "s3:PutObject",
            ],
            vec![get_att(BUCKET, "Arn"), sub("${ArchiveBucket.Arn}/*")],
        ),
        iam::allow(
            "LogDeliveryErrors",
            &["logs:PutLogEvents"],
            vec![get_att(LOG_GROUP, "Arn")],
        ),
    ];
    if stream_key {
        statements.push(json!({
            "Sid": "DecryptTheSourceStream",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [get_att(key::KEY, "Arn")],
            "Condition": { "StringEquals": { "kms:ViaService": sub("kinesis.${AWS::Region}.amazonaws.com") } },
        }));
    }
    if spec.encryption == Encryption::StackKey {
        statements.push(json!({
            "Sid": "EncryptTheArchive",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": [get_att(key::KEY, "Arn")],
            "Condition": { "StringEquals": { "kms:ViaService": sub("s3.${AWS::Region}.amazonaws.com") } },
        }));
    }
    let tags = t.tags();
    t.resource(
        ROLE,
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": format!("Firehose {} reads the stream and writes the archive", t.names.delivery_stream),
                "AssumeRolePolicyDocument": iam::service_trust("firehose.amazonaws.com"),
                "Policies": [{ "PolicyName": "archive-delivery", "PolicyDocument": iam::document(statements) }],
                "Tags": tags,
            }
        }),
    );

    let encryption: Value = match spec.encryption {
        Encryption::AwsManaged => json!({ "NoEncryptionConfig": "NoEncryption" }),
        Encryption::StackKey => {
            json!({ "KMSEncryptionConfig": { "AWSKMSKeyARN": get_att(key::KEY, "Arn") } })
        }
    };
    let tags = t.tags();
    t.resource(
        DELIVERY_STREAM,
        json!({
            "Type": "AWS::KinesisFirehose::DeliveryStream",
            "Properties": {
                "DeliveryStreamName": t.names.delivery_stream,
                "DeliveryStreamType": "KinesisStreamAsSource",
                "KinesisStreamSourceConfiguration": { "KinesisStreamARN": get_att(stream::STREAM, "Arn"), "RoleARN": get_att(ROLE, "Arn") },
                "ExtendedS3DestinationConfiguration": {
                    "BucketARN": get_att(BUCKET, "Arn"),
                    "RoleARN": get_att(ROLE, "Arn"),
                    "BufferingHints": { "SizeInMBs": spec.buffer.size_mb, "IntervalInSeconds": spec.buffer.interval_s },
                    "CompressionFormat": match spec.compression { Compression::Gzip => "GZIP", Compression::None => "UNCOMPRESSED" },
                    "Prefix": spec.prefix,
                    "ErrorOutputPrefix": spec.error_prefix,
                    "EncryptionConfiguration": encryption,
                    "CloudWatchLoggingOptions": { "Enabled": true, "LogGroupName": r(LOG_GROUP), "LogStreamName": r(LOG_STREAM) },
                },
                "Tags": tags,
            }
        }),
    );
    t.output(
        "DeliveryStreamName",
        "Firehose delivery stream archiving the stream to S3",
        r(DELIVERY_STREAM),
    );
}

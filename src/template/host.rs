//! The processor host: a launch template (IMDSv2 only, encrypted root
//! volume, no inbound access), its least-privilege instance role, and an
//! Auto Scaling group of `host.count` hosts whose workers share the shards
//! through the lease table.

use serde_json::{Value, json};

use super::network::{self, Placement};
use super::{Template, archive, checkov_skips, get_att, iam, key, r, stream, sub, table};
use crate::names::metrics::NAMESPACE as METRICS_NAMESPACE;
use crate::names::output;
use crate::spec::model::Encryption;

pub const ROLE: &str = "HostRole";
const PROFILE: &str = "HostInstanceProfile";
const SECURITY_GROUP: &str = "HostSecurityGroup";
const LAUNCH_TEMPLATE: &str = "HostLaunchTemplate";
const GROUP: &str = "HostGroup";
const IMAGE_PARAMETER: &str = "HostImageId";
/// The processor's log group (`logging::cloudwatch` writes a stream a worker).
pub const LOG_GROUP: &str = "ProcessorLogGroup";

/// The host's bootstrap script; configuration is prepended as variables.
const BOOTSTRAP: &str = include_str!("../../scripts/host-bootstrap.sh");

/// The bucket `up` ships the processor binary and stack file to (by content hash).
pub use crate::names::logical::ARTIFACTS_BUCKET;
const ARTIFACTS_POLICY: &str = "ArtifactsBucketPolicy";
/// Key prefix of the processor artifacts and of the `current` pointer.
pub use crate::names::artifacts::PREFIX as ARTIFACTS_PREFIX;

pub fn add(t: &mut Template<'_>) {
    artifacts(t);
    log_group(t);
    let placement = network::add(t);
    security_group(t, &placement);
    role(t);
    launch_template(t);
    group(t, &placement);
}

/// The host(s) as an Auto Scaling group, one host included: a new launch
/// template version (every Amazon Linux release changes the AMI the SSM
/// parameter resolves to) then rolls through the group instead of replacing
/// a lone `AWS::EC2::Instance`, and the group replaces a host that fails
/// its health check.
fn group(t: &mut Template<'_>, placement: &Placement) {
    let count = t.stack.host.count;
    let tags: Vec<Value> = t
        .tag_pairs()
        .into_iter()
        .map(|(k, v)| json!({ "Key": k, "Value": v, "PropagateAtLaunch": true }))
        .collect();
    let properties = json!({
        "LaunchTemplate": { "LaunchTemplateId": r(LAUNCH_TEMPLATE), "Version": get_att(LAUNCH_TEMPLATE, "LatestVersionNumber") },
        "MinSize": count.to_string(),
        // One above the count: room for the rolling update to start a new
        // host before it stops an old one (CloudFormation requires
        // MinInstancesInService below MaxSize). Nothing scales the group, so
        // it stays at DesiredCapacity otherwise.
        "MaxSize": (count + 1).to_string(),
        "DesiredCapacity": count.to_string(),
        "HealthCheckType": "EC2",
        "VPCZoneIdentifier": placement.subnets,
        // The default, stated: a zone that does not offer the instance type
        // (or has no capacity for it) fails the launch, and the group then
        // launches in another of its subnets' zones.
        "AvailabilityZoneDistribution": { "CapacityDistributionStrategy": "balanced-best-effort" },
        "Tags": tags,
    });
    t.resource(
        GROUP,
        json!({
            "Type": "AWS::AutoScaling::AutoScalingGroup",
            // One host at a time, the new one in service before the old one
            // goes: every shard keeps a worker that can take its lease.
            "UpdatePolicy": { "AutoScalingRollingUpdate": { "MinInstancesInService": count, "MaxBatchSize": 1 } },
            "Properties": properties,
        }),
    );
    t.output(
        "HostGroupName",
        "Auto Scaling group of the processor host(s)",
        r(GROUP),
    );
}

fn security_group(t: &mut Template<'_>, placement: &Placement) {
    let properties = json!({
        "GroupDescription": format!("streamstack {} processor host: no inbound access, HTTPS out", t.names.stack),
        "SecurityGroupEgress": [{
            "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0",
            "Description": "HTTPS to AWS APIs and the X API",
        }],
        "VpcId": placement.vpc,
        "Tags": t.tags(),
    });
    t.resource(
        SECURITY_GROUP,
        json!({ "Type": "AWS::EC2::SecurityGroup", "Properties": properties }),
    );
    t.output(
        "HostSecurityGroupId",
        "Security group of the processor host(s)",
        get_att(SECURITY_GROUP, "GroupId"),
    );
}

fn artifacts(t: &mut Template<'_>) {
    let tags = t.tags();
    t.resource(
        ARTIFACTS_BUCKET,
        json!({
            "Type": "AWS::S3::Bucket",
            "Metadata": checkov_skips(&[
                ("CKV_AWS_18", "Access logging needs a second, log-only bucket; the artifacts are the tool's own, written only by `streamstack up`."),
                ("CKV_AWS_21", "Artifacts are content-addressed (a key per SHA-256) and rebuilt from source: there is nothing to version."),
            ]),
            "Properties": {
                "BucketName": sub(&format!("{}-artifacts-${{AWS::AccountId}}-${{AWS::Region}}", t.names.stack)),
                "BucketEncryption": { "ServerSideEncryptionConfiguration": [{ "ServerSideEncryptionByDefault": { "SSEAlgorithm": "AES256" } }] },
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
                },
                "OwnershipControls": { "Rules": [{ "ObjectOwnership": "BucketOwnerEnforced" }] },
                "LifecycleConfiguration": { "Rules": [
                    { "Id": "AbortIncompleteUploads", "Status": "Enabled", "AbortIncompleteMultipartUpload": { "DaysAfterInitiation": 1 } },
                ] },
                "Tags": tags,
            }
        }),
    );
    archive::tls_only_policy(t, ARTIFACTS_POLICY, ARTIFACTS_BUCKET);
    t.output(
        output::ARTIFACTS_BUCKET_NAME,
        "S3 bucket of the processor binary and stack file that `up` ships to the host",
        r(ARTIFACTS_BUCKET),
    );
}

/// The processor's log lines, kept as long as the Firehose delivery errors
/// and encrypted the same way: with the stack key when the stack has one.
fn log_group(t: &mut Template<'_>) {
    let mut group = json!({
        "Type": "AWS::Logs::LogGroup",
        "Properties": {
            "LogGroupName": t.names.processor_log_group,
            "RetentionInDays": super::LOG_RETENTION_DAYS,
            "Tags": t.tags(),
        },
    });
    if t.has_stack_key() {
        group["Properties"]["KmsKeyId"] = get_att(key::KEY, "Arn");
    } else {
        group["Metadata"] = checkov_skips(&[(
            "CKV_AWS_158",
            "Holds the processor's operational log lines, encrypted by CloudWatch Logs' default encryption; a stack key is created when any resource asks for one.",
        )]);
    }
    t.resource(LOG_GROUP, group);
    t.output(
        "ProcessorLogs",
        "CloudWatch Logs group of the processor (one log stream a worker)",
        r(LOG_GROUP),
    );
}

fn role(t: &mut Template<'_>) {
    let stream_arn = get_att(stream::STREAM, "Arn");
    let tables = |ids: &[&str]| ids.iter().map(|id| get_att(id, "Arn")).collect::<Vec<_>>();
    let mut statements = vec![
        iam::allow(
            "ReadAndWriteTheStream",
            &[
                "kinesis:DescribeStreamSummary",
                "kinesis:ListShards",
                "kinesis:GetShardIterator",
                "kinesis:GetRecords",
                "kinesis:PutRecords",
            ],
            vec![stream_arn],
        ),
        iam::allow(
            "StoreTweetsAndAggregates",
            &[
                "dynamodb:DescribeTable",
                "dynamodb:BatchWriteItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:GetItem",
                "dynamodb:Query",
            ],
            tables(&[table::TABLE, table::AGGREGATES]),
        ),
        iam::allow(
            "ManageShardLeases",
            &[
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:Scan",
            ],
            tables(&[table::LEASES]),
        ),
        iam::allow(
            "WriteDeadLetters",
            &["s3:PutObject"],
            vec![sub(&format!(
                "${{{}.Arn}}/{}*",
                archive::BUCKET,
                t.stack.archive.dead_letter_prefix
            ))],
        ),
        iam::allow(
            "FetchTheProcessor",
            &["s3:GetObject"],
            vec![sub(&format!(
                "${{{ARTIFACTS_BUCKET}.Arn}}/{ARTIFACTS_PREFIX}*"
            ))],
        ),
        // The processor finds the archive bucket's name in its stack's outputs.
        iam::allow(
            "ReadTheStackOutputs",
            &["cloudformation:DescribeStacks"],
            vec![r("AWS::StackId")],
        ),
        // The processor's own log lines: a stream a worker, in its log group only.
        iam::allow(
            "WriteProcessorLogs",
            &["logs:CreateLogStream", "logs:PutLogEvents"],
            vec![sub(&format!(
                "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{}:log-stream:*",
                t.names.processor_log_group
            ))],
        ),
        // Systems Manager (Run Command for `up`'s rollouts, Session Manager
        // instead of SSH), granted inline instead of through the managed
        // AmazonSSMManagedInstanceCore, which also allows ssm:GetParameter(s)
        // on every parameter of the account: the host would read any secret.
        // The agent registers itself; ec2messages and ssmmessages have no
        // resource-level permissions.
        iam::allow(
            "RegisterWithSystemsManager",
            &["ssm:UpdateInstanceInformation"],
            vec![json!("*")],
        ),
        iam::allow(
            "ReceiveRunCommands",
            &[
                "ec2messages:AcknowledgeMessage",
                "ec2messages:DeleteMessage",
                "ec2messages:FailMessage",
                "ec2messages:GetEndpoint",
                "ec2messages:GetMessages",
                "ec2messages:SendReply",
            ],
            vec![json!("*")],
        ),
        iam::allow(
            "OpenSessionChannels",
            &[
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
            ],
            vec![json!("*")],
        ),
        // PutMetricData has no resource-level permissions; the condition pins it to the processor's namespace.
        json!({
            "Sid": "PublishProcessorMetrics",
            "Effect": "Allow",
            "Action": ["cloudwatch:PutMetricData"],
            "Resource": "*",
            "Condition": { "StringEquals": { "cloudwatch:namespace": METRICS_NAMESPACE } },
        }),
    ];
    if let Some(parameter) = t
        .stack
        .processor
        .source
        .as_ref()
        .and_then(|s| s.x_api.as_ref())
        .and_then(|x| x.token.strip_prefix("ssm:"))
    {
        statements.push(iam::allow(
            "ReadTheXApiToken",
            &["ssm:GetParameter"],
            vec![sub(&format!("arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{parameter}"))],
        ));
    }
    let s = t.stack;
    if [
        s.stream.encryption,
        s.table.encryption,
        s.archive.encryption,
    ]
    .contains(&Encryption::StackKey)
    {
        statements.push(iam::allow(
            "UseTheStackKey",
            &["kms:Decrypt", "kms:GenerateDataKey"],
            vec![get_att(key::KEY, "Arn")],
        ));
    }
    let tags = t.tags();
    t.resource(
        ROLE,
        json!({
            "Type": "AWS::IAM::Role",
            "Metadata": checkov_skips(&[(
                "CKV_AWS_111",
                "Write access on * only for the SSM agent: ec2messages and ssmmessages have no resource-level permissions, and UpdateInstanceInformation registers the calling instance. Everything else names its resource (tests/security.rs).",
            )]),
            "Properties": {
                "Description": format!("streamstack {} processor host", t.names.stack),
                "AssumeRolePolicyDocument": iam::service_trust("ec2.amazonaws.com"),
                "Policies": [{ "PolicyName": "processor", "PolicyDocument": iam::document(statements) }],
                "Tags": tags,
            }
        }),
    );
    t.resource(
        PROFILE,
        json!({ "Type": "AWS::IAM::InstanceProfile", "Properties": { "Roles": [r(ROLE)] } }),
    );
    t.output(
        "HostRoleArn",
        "IAM role of the processor host(s)",
        get_att(ROLE, "Arn"),
    );
}

fn image_id(t: &mut Template<'_>) -> Value {
    match t.stack.host.ami.strip_prefix("ssm:") {
        Some(path) => {
            t.parameter(
                IMAGE_PARAMETER,
                json!({
                    "Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
                    "Default": path,
                    "Description": "AMI of the processor host, resolved from a public SSM parameter at deploy time",
                }),
            );
            r(IMAGE_PARAMETER)
        }
        None => json!(t.stack.host.ami),
    }
}

/// User data: the processor's configuration as shell variables, then the
/// bootstrap script that installs and starts it.
fn user_data(t: &Template<'_>) -> Value {
    let mut parts: Vec<Value> = vec![json!("#!/bin/bash\n")];
    let mut var = |name: &str, value: Value| {
        parts.push(json!(format!("{name}='")));
        parts.push(value);
        parts.push(json!("'\n"));
    };
    var("STREAMSTACK_STACK", json!(t.names.stack));
    var("STREAMSTACK_REGION", r("AWS::Region"));
    var("STREAMSTACK_ARTIFACT_BUCKET", r(ARTIFACTS_BUCKET));
    // Skip the script's own shebang: ours opens the file.
    let body = BOOTSTRAP
        .split_once('\n')
        .map_or(BOOTSTRAP, |(_, rest)| rest);
    parts.push(json!(body));
    json!({ "Fn::Base64": { "Fn::Join": ["", parts] } })
}

fn launch_template(t: &mut Template<'_>) {
    let image = image_id(t);
    let host = &t.stack.host;
    let tags = t.tags();
    let mut data = json!({
        "ImageId": image,
        "InstanceType": host.instance_type,
        "IamInstanceProfile": { "Arn": get_att(PROFILE, "Arn") },
        "SecurityGroupIds": [get_att(SECURITY_GROUP, "GroupId")],
        // IMDSv2 only, and not reachable from containers on the host.
        "MetadataOptions": { "HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1 },
        "BlockDeviceMappings": [{
            "DeviceName": "/dev/xvda",
            "Ebs": { "VolumeSize": host.volume_gb, "VolumeType": "gp3", "Encrypted": true, "DeleteOnTermination": true },
        }],
        "Monitoring": { "Enabled": true },
        "UserData": user_data(t),
        "TagSpecifications": [
            { "ResourceType": "instance", "Tags": tags.clone() },
            { "ResourceType": "volume", "Tags": tags },
        ],
    });
    if ebs_optimized_by_default(&host.instance_type) {
        data["EbsOptimized"] = json!(true);
    }
    let name = format!("{}-host", t.names.stack);
    t.resource(
        LAUNCH_TEMPLATE,
        json!({ "Type": "AWS::EC2::LaunchTemplate", "Properties": { "LaunchTemplateName": name, "LaunchTemplateData": data } }),
    );
}

/// Previous-generation families that are not EBS-optimized by default: on
/// some sizes EBS optimization is not available at all (every t1 and t2,
/// m3.medium, c3.large, ...: RunInstances fails when it is asked for), on the
/// others it is an option billed by the hour on top of the instance.
const NOT_EBS_OPTIMIZED_BY_DEFAULT: &[&str] = &[
    "c1", "c3", "cc1", "cc2", "cg1", "cr1", "g2", "hi1", "hs1", "i2", "m1", "m2", "m3", "r3", "t1",
    "t2",
];

/// Whether the instance type is EBS-optimized by default (every current
/// generation type, and c4, d2, m4, r4, ... of the previous one). Only those
/// get `EbsOptimized: true`, where it changes nothing but states the intent;
/// on the others it fails or costs extra, so it is left out.
pub fn ebs_optimized_by_default(instance_type: &str) -> bool {
    let family = instance_type.split('.').next().unwrap_or_default();
    !NOT_EBS_OPTIMIZED_BY_DEFAULT.contains(&family)
}

#[cfg(test)]
mod tests {
    use super::ebs_optimized_by_default;

    #[test]
    fn ebs_optimization_is_asked_for_only_where_it_is_the_default() {
        for default in [
            "t3.micro",
            "t3a.small",
            "t4g.micro",
            "m5.large",
            "m7i.large",
            "c6i.large",
            "c4.large",
            "m4.large",
            "r4.large",
        ] {
            assert!(ebs_optimized_by_default(default), "{default}");
        }
        // Not available (t2, m3.medium) or an extra hourly charge (m3.xlarge, c3.xlarge).
        for not in [
            "t2.micro",
            "t2.large",
            "t1.micro",
            "m3.medium",
            "m3.xlarge",
            "c3.xlarge",
            "r3.large",
        ] {
            assert!(!ebs_optimized_by_default(not), "{not}");
        }
    }
}

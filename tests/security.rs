//! Security, checked: every shipped stack in every environment is compiled
//! (pure, no AWS call) and its template walked by the checkers below, which
//! report findings instead of panicking so that the same functions can be
//! shown to catch a deliberately doctored template. Then a planted bearer
//! token is followed through the commands that handle it: it must not
//! appear in a template, stdout, stderr, an error message, the process's
//! command line or the local processor logs.
//!
//! What the checkers assert:
//! - IAM (role inline policies, AWS::IAM::Policy / ManagedPolicy, user and
//!   group policies): Allow statements name their actions (no `*`, no
//!   `service:*`, no partial wildcard, no NotAction) and their resources (no
//!   NotResource; `*` or a whole-service ARN only for the actions in
//!   [`iam::STAR_RESOURCE_OK`], each with its reason); no AWS-managed policy is
//!   attached (it cannot be read from the template, and the usual one for
//!   Systems Manager reads every SSM parameter of the account).
//! - Trust policies: sts:AssumeRole by one AWS service, pinned to this
//!   account by aws:SourceAccount.
//! - Resource policies (bucket, key, topic, queue): no Allow to `*`; Allow
//!   actions named, except the key policy's delegation to this account's IAM
//!   ([`iam::is_key_delegation`]); Deny statements may be as broad as they like.
//! - S3: every bucket blocks public access (all four flags) and has a
//!   TLS-only policy (Deny s3:* to anyone on the bucket and its objects when
//!   aws:SecureTransport is false).
//! - At rest: Kinesis streams (KMS), buckets (SSE), DynamoDB tables (SSE),
//!   Firehose (KMS, or into a bucket of the template that encrypts by
//!   default), SNS topics and SQS queues, EBS volumes.
//! - Host: every launch template requires IMDSv2 with a hop limit of 1 and
//!   names no SSH key pair; every instance and group launches from such a
//!   template; no ingress on port 22 nor from 0.0.0.0/0 or ::/0.

#[path = "support/fake_x.rs"]
mod fake_x;
#[path = "support/iam.rs"]
mod iam;
mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use fake_x::{Reply, Req, Server, Step};
use iam::{STAR_RESOURCE_OK, iam_findings, is_everyone, list, of_type, resources, statements};
use serde_json::{Value, json};
use streamstack::spec;
use streamstack::template;

// ---------------------------------------------------------------------------
// The shipped templates
// ---------------------------------------------------------------------------

/// Every (stack file, environment) the repo ships, the base included, compiled.
fn shipped_templates() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks");
    let files = streamstack::spec::cases::stack_files(&dir).unwrap();
    let mut out = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let file = spec::parse(&name, &std::fs::read(&path).unwrap()).unwrap();
        let envs = std::iter::once(None).chain(file.environment_names().into_iter().map(Some));
        for env in envs {
            let resolved = spec::load(&path, env.as_deref()).unwrap();
            let label = format!("{name} ({})", env.as_deref().unwrap_or("base"));
            out.push((label, template::compile(&resolved)));
        }
    }
    assert!(out.len() >= 2, "no stack files found in {}", dir.display());
    out
}

fn prod() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks/tweets.yaml");
    template::compile(&spec::load(&path, Some("prod")).unwrap())
}

// ---------------------------------------------------------------------------
// The checkers (the IAM policy linter is in tests/support/iam.rs)
// ---------------------------------------------------------------------------

fn bucket_findings(t: &Value) -> Vec<String> {
    let mut findings = Vec::new();
    for (id, bucket) in of_type(t, "AWS::S3::Bucket") {
        let p = &bucket["Properties"];
        for flag in [
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        ] {
            if p["PublicAccessBlockConfiguration"][flag] != true {
                findings.push(format!(
                    "{id}: PublicAccessBlockConfiguration.{flag} is not true"
                ));
            }
        }
        let bucket_arn = json!({ "Fn::GetAtt": [id, "Arn"] });
        let objects = json!({ "Fn::Sub": format!("${{{id}.Arn}}/*") });
        let tls_only = of_type(t, "AWS::S3::BucketPolicy")
            .into_iter()
            .filter(|(_, policy)| policy["Properties"]["Bucket"] == json!({ "Ref": id }))
            .flat_map(|(_, policy)| statements(&policy["Properties"]["PolicyDocument"]))
            .any(|st| {
                let insecure = &st["Condition"]["Bool"]["aws:SecureTransport"];
                let resources = list(&st["Resource"]);
                st["Effect"] == "Deny"
                    && is_everyone(&st["Principal"])
                    && list(&st["Action"]).contains(&&json!("s3:*"))
                    && (insecure == "false" || insecure == false)
                    && resources.contains(&&bucket_arn)
                    && resources.contains(&&objects)
            });
        if !tls_only {
            findings.push(format!(
                "{id}: no bucket policy denying s3:* on the bucket and its objects when aws:SecureTransport is false"
            ));
        }
    }
    findings
}

fn bucket_encrypts(t: &Value, id: &str) -> bool {
    let rules = list(
        &t["Resources"][id]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"],
    );
    !rules.is_empty()
        && rules.iter().all(|rule| {
            ["AES256", "aws:kms", "aws:kms:dsse"]
                .iter()
                .any(|a| rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == *a)
        })
}

fn encryption_findings(t: &Value) -> Vec<String> {
    let mut findings = Vec::new();
    let mut flag = |ok: bool, id: &str, what: &str| {
        if !ok {
            findings.push(format!("{id}: not encrypted at rest ({what})"));
        }
    };
    for (id, r) in resources(t) {
        let p = &r["Properties"];
        match r["Type"].as_str().unwrap_or_default() {
            "AWS::Kinesis::Stream" => flag(
                p["StreamEncryption"]["EncryptionType"] == "KMS"
                    && !p["StreamEncryption"]["KeyId"].is_null(),
                id,
                "StreamEncryption KMS with a key",
            ),
            "AWS::S3::Bucket" => flag(bucket_encrypts(t, id), id, "BucketEncryption"),
            "AWS::DynamoDB::Table" => flag(
                p["SSESpecification"]["SSEEnabled"] == true,
                id,
                "SSESpecification.SSEEnabled",
            ),
            "AWS::KinesisFirehose::DeliveryStream" => {
                let s3 = &p["ExtendedS3DestinationConfiguration"];
                let kms =
                    !s3["EncryptionConfiguration"]["KMSEncryptionConfig"]["AWSKMSKeyARN"].is_null();
                // NoEncryption: the objects take the bucket's default encryption.
                let target = s3["BucketARN"]["Fn::GetAtt"][0].as_str();
                let by_bucket = target.is_some_and(|b| bucket_encrypts(t, b));
                let direct_put = p["DeliveryStreamType"] != "KinesisStreamAsSource";
                let buffer = !direct_put
                    || p["DeliveryStreamEncryptionConfigurationInput"]["KeyType"].is_string();
                flag(
                    (kms || by_bucket) && buffer,
                    id,
                    "KMS or an encrypting destination bucket; server-side for DirectPut",
                );
            }
            "AWS::SNS::Topic" => flag(!p["KmsMasterKeyId"].is_null(), id, "KmsMasterKeyId"),
            "AWS::SQS::Queue" => flag(
                !p["KmsMasterKeyId"].is_null() || p["SqsManagedSseEnabled"] == true,
                id,
                "KMS or SQS-managed SSE",
            ),
            "AWS::EC2::Volume" => flag(p["Encrypted"] == true, id, "Encrypted"),
            "AWS::EC2::LaunchTemplate" => {
                for device in list(&p["LaunchTemplateData"]["BlockDeviceMappings"]) {
                    flag(device["Ebs"]["Encrypted"] == true, id, "EBS Encrypted");
                }
            }
            _ => {}
        }
    }
    findings
}

/// An ingress rule that opens SSH or admits the whole internet.
fn open_ingress(rule: &Value) -> Option<String> {
    let all_protocols =
        matches!(rule["IpProtocol"].as_str(), Some("-1" | "all")) || rule["IpProtocol"] == -1;
    let port = |k: &str| {
        rule[k]
            .as_i64()
            .or_else(|| rule[k].as_str().and_then(|s| s.parse().ok()))
    };
    let covers_22 = all_protocols
        || matches!((port("FromPort"), port("ToPort")), (Some(from), Some(to)) if from <= 22 && 22 <= to || from == -1);
    let anywhere = rule["CidrIp"] == "0.0.0.0/0" || rule["CidrIpv6"] == "::/0";
    match (covers_22, anywhere) {
        (true, _) => Some(format!("ingress on port 22: {rule}")),
        (_, true) => Some(format!("ingress from anywhere: {rule}")),
        _ => None,
    }
}

fn host_findings(t: &Value) -> Vec<String> {
    let mut findings = Vec::new();
    let mut good_templates = Vec::new();
    for (id, lt) in of_type(t, "AWS::EC2::LaunchTemplate") {
        let data = &lt["Properties"]["LaunchTemplateData"];
        let metadata = &data["MetadataOptions"];
        let mut ok = true;
        if metadata["HttpTokens"] != "required" {
            findings.push(format!("{id}: IMDSv2 not required (HttpTokens)"));
            ok = false;
        }
        if metadata["HttpPutResponseHopLimit"] != 1 {
            findings.push(format!(
                "{id}: HttpPutResponseHopLimit is not 1 (containers could reach the metadata service)"
            ));
            ok = false;
        }
        if data.get("KeyName").is_some() {
            findings.push(format!("{id}: names an SSH key pair"));
            ok = false;
        }
        if ok {
            good_templates.push(json!({ "Ref": id }));
        }
    }
    for ty in ["AWS::EC2::Instance", "AWS::AutoScaling::AutoScalingGroup"] {
        for (id, r) in of_type(t, ty) {
            let p = &r["Properties"];
            if !good_templates.contains(&p["LaunchTemplate"]["LaunchTemplateId"]) {
                findings.push(format!(
                    "{id}: does not launch from a launch template that requires IMDSv2"
                ));
            }
            if p.get("KeyName").is_some() || p.get("LaunchConfigurationName").is_some() {
                findings.push(format!(
                    "{id}: names an SSH key pair or a launch configuration"
                ));
            }
        }
    }
    for (id, sg) in of_type(t, "AWS::EC2::SecurityGroup") {
        for rule in list(&sg["Properties"]["SecurityGroupIngress"]) {
            if let Some(problem) = open_ingress(rule) {
                findings.push(format!("{id}: {problem}"));
            }
        }
    }
    for (id, rule) in of_type(t, "AWS::EC2::SecurityGroupIngress") {
        if let Some(problem) = open_ingress(&rule["Properties"]) {
            findings.push(format!("{id}: {problem}"));
        }
    }
    findings
}

fn all_findings(t: &Value) -> Vec<String> {
    let mut findings = iam_findings(t);
    findings.extend(bucket_findings(t));
    findings.extend(encryption_findings(t));
    findings.extend(host_findings(t));
    findings
}

// ---------------------------------------------------------------------------
// The shipped templates pass
// ---------------------------------------------------------------------------

#[test]
fn every_shipped_stack_and_environment_passes_the_security_checks() {
    let mut failures = Vec::new();
    for (label, t) in shipped_templates() {
        // The checks look at something: each template has what they check.
        for ty in [
            "AWS::IAM::Role",
            "AWS::S3::Bucket",
            "AWS::S3::BucketPolicy",
            "AWS::Kinesis::Stream",
            "AWS::DynamoDB::Table",
            "AWS::EC2::LaunchTemplate",
            "AWS::EC2::SecurityGroup",
        ] {
            assert!(!of_type(&t, ty).is_empty(), "{label} has no {ty}");
        }
        failures.extend(
            all_findings(&t)
                .into_iter()
                .map(|f| format!("{label}: {f}")),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_stack_key_policy_is_checked_where_a_stack_has_one() {
    let t = prod();
    assert!(!of_type(&t, "AWS::KMS::Key").is_empty());
    assert!(iam_findings(&t).is_empty(), "{:?}", iam_findings(&t));
}

#[test]
fn every_wildcard_resource_in_the_shipped_stacks_is_in_the_allowlist_and_used() {
    // The allowlist stays small: each entry is needed by some shipped stack.
    let all: Vec<String> = shipped_templates()
        .iter()
        .map(|(_, t)| t.to_string())
        .collect();
    for (action, _, reason) in STAR_RESOURCE_OK {
        assert!(!reason.is_empty());
        assert!(
            all.iter().any(|t| t.contains(&format!("\"{action}\""))),
            "{action} is allowlisted but no shipped stack uses it"
        );
    }
}

// ---------------------------------------------------------------------------
// The checkers catch a doctored template
// ---------------------------------------------------------------------------

/// The prod template passes; changed by `doctor`, a finding mentions `expect`.
fn flagged(doctor: impl FnOnce(&mut Value), expect: &str) {
    let mut t = prod();
    assert!(all_findings(&t).is_empty(), "{:?}", all_findings(&t));
    doctor(&mut t);
    let findings = all_findings(&t);
    assert!(
        findings.iter().any(|f| f.contains(expect)),
        "expected a finding with {expect:?}, got {findings:?}"
    );
}

fn host_statements(t: &mut Value) -> &mut Vec<Value> {
    t["Resources"]["HostRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array_mut()
        .unwrap()
}

fn allow(action: Value, resource: Value) -> Value {
    json!({ "Sid": "Doctored", "Effect": "Allow", "Action": action, "Resource": resource })
}

#[test]
fn a_star_action_is_flagged() {
    flagged(
        |t| host_statements(t).push(allow(json!("*"), json!("*"))),
        "HostRole Doctored: wildcard action \"*\"",
    );
}

#[test]
fn a_service_wide_or_partial_wildcard_action_is_flagged() {
    flagged(
        |t| {
            host_statements(t).push(allow(
                json!(["s3:*"]),
                json!([{ "Fn::GetAtt": ["ArchiveBucket", "Arn"] }]),
            ))
        },
        "wildcard action \"s3:*\"",
    );
    flagged(
        |t| host_statements(t)[0]["Action"] = json!(["kinesis:Get*"]),
        "wildcard action \"kinesis:Get*\"",
    );
}

#[test]
fn a_star_resource_for_an_action_with_resource_level_permissions_is_flagged() {
    flagged(
        |t| host_statements(t)[0]["Resource"] = json!("*"),
        "\"kinesis:GetRecords\" on every resource",
    );
    flagged(
        |t| {
            host_statements(t).push(allow(
                json!(["dynamodb:PutItem"]),
                json!({ "Fn::Sub": "arn:${AWS::Partition}:dynamodb:*:*:*" }),
            ))
        },
        "\"dynamodb:PutItem\" on every resource",
    );
}

#[test]
fn an_allowlisted_action_on_star_without_its_condition_is_flagged() {
    flagged(
        |t| {
            let st = host_statements(t)
                .iter_mut()
                .find(|s| s["Sid"] == "PublishProcessorMetrics")
                .unwrap();
            st.as_object_mut().unwrap().remove("Condition");
        },
        "\"cloudwatch:PutMetricData\" on every resource",
    );
}

#[test]
fn not_action_and_attached_managed_policies_are_flagged() {
    flagged(
        |t| {
            host_statements(t).push(json!({ "Sid": "Doctored", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*" }))
        },
        "HostRole Doctored: NotAction/NotResource",
    );
    flagged(
        |t| {
            t["Resources"]["HostRole"]["Properties"]["ManagedPolicyArns"] = json!([
                { "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore" }
            ])
        },
        "HostRole: attaches managed policy",
    );
}

#[test]
fn a_standalone_iam_policy_is_walked_too() {
    flagged(
        |t| {
            t["Resources"]["Extra"] = json!({
                "Type": "AWS::IAM::Policy",
                "Properties": { "PolicyName": "x", "Roles": [{ "Ref": "HostRole" }],
                    "PolicyDocument": { "Version": "2012-10-17", "Statement": [allow(json!("dynamodb:*"), json!("*"))] } }
            })
        },
        "Extra Doctored: wildcard action \"dynamodb:*\"",
    );
}

#[test]
fn an_open_trust_policy_is_flagged() {
    flagged(
        |t| {
            t["Resources"]["HostRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] =
                json!({ "AWS": "*" })
        },
        "HostRole: trust policy",
    );
    flagged(
        |t| {
            t["Resources"]["ArchiveDeliveryRole"]["Properties"]["AssumeRolePolicyDocument"]
                ["Statement"][0]
                .as_object_mut()
                .unwrap()
                .remove("Condition");
        },
        "ArchiveDeliveryRole: trust policy",
    );
}

#[test]
fn key_policy_wildcards_beyond_the_account_delegation_are_flagged() {
    flagged(
        |t| {
            t["Resources"]["StackKey"]["Properties"]["KeyPolicy"]["Statement"][1]["Action"] =
                json!("kms:*")
        },
        "StackKey CloudWatchLogsEncryptsTheStackLogs: wildcard action \"kms:*\"",
    );
    flagged(
        |t| {
            t["Resources"]["StackKey"]["Properties"]["KeyPolicy"]["Statement"][0]["Principal"] =
                json!({ "AWS": "*" })
        },
        "StackKey AccountAdministersKeyThroughIam: allows everyone",
    );
}

#[test]
fn a_bucket_policy_allowing_everyone_is_flagged() {
    flagged(
        |t| {
            t["Resources"]["ArchiveBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
                .as_array_mut()
                .unwrap()
                .push(json!({ "Sid": "Public", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                    "Resource": { "Fn::Sub": "${ArchiveBucket.Arn}/*" } }))
        },
        "ArchiveBucketPolicy Public: allows everyone",
    );
}

#[test]
fn a_missing_or_partial_public_access_block_is_flagged() {
    flagged(
        |t| {
            t["Resources"]["ArchiveBucket"]["Properties"]
                .as_object_mut()
                .unwrap()
                .remove("PublicAccessBlockConfiguration");
        },
        "ArchiveBucket: PublicAccessBlockConfiguration.BlockPublicAcls",
    );
    flagged(
        |t| {
            t["Resources"]["ArtifactsBucket"]["Properties"]["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] =
                json!(false)
        },
        "ArtifactsBucket: PublicAccessBlockConfiguration.RestrictPublicBuckets",
    );
}

#[test]
fn a_bucket_without_its_tls_only_policy_is_flagged() {
    flagged(
        |t| {
            t["Resources"]
                .as_object_mut()
                .unwrap()
                .remove("ArtifactsBucketPolicy");
        },
        "ArtifactsBucket: no bucket policy denying",
    );
    flagged(
        |t| {
            t["Resources"]["ArchiveBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
                ["Condition"]["Bool"]["aws:SecureTransport"] = json!("true")
        },
        "ArchiveBucket: no bucket policy denying",
    );
    flagged(
        |t| {
            t["Resources"]["ArchiveBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
                ["Resource"] = json!([{ "Fn::GetAtt": ["ArchiveBucket", "Arn"] }])
        },
        "ArchiveBucket: no bucket policy denying",
    );
}

#[test]
fn unencrypted_stores_are_flagged() {
    flagged(
        |t| {
            t["Resources"]["Stream"]["Properties"]
                .as_object_mut()
                .unwrap()
                .remove("StreamEncryption");
        },
        "Stream: not encrypted at rest",
    );
    flagged(
        |t| {
            t["Resources"]["LeaseTable"]["Properties"]["SSESpecification"]["SSEEnabled"] =
                json!(false)
        },
        "LeaseTable: not encrypted at rest",
    );
    flagged(
        |t| {
            t["Resources"]["ArchiveBucket"]["Properties"]
                .as_object_mut()
                .unwrap()
                .remove("BucketEncryption");
        },
        "ArchiveBucket: not encrypted at rest",
    );
    flagged(
        |t| {
            t["Resources"]["ArchiveDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
                ["EncryptionConfiguration"] = json!({ "NoEncryptionConfig": "NoEncryption" });
            t["Resources"]["ArchiveBucket"]["Properties"]
                .as_object_mut()
                .unwrap()
                .remove("BucketEncryption");
        },
        "ArchiveDeliveryStream: not encrypted at rest",
    );
    flagged(
        |t| {
            t["Resources"]["AlarmTopic"]["Properties"]
                .as_object_mut()
                .unwrap()
                .remove("KmsMasterKeyId");
        },
        "AlarmTopic: not encrypted at rest",
    );
    flagged(
        |t| {
            t["Resources"]["HostLaunchTemplate"]["Properties"]["LaunchTemplateData"]["BlockDeviceMappings"]
                [0]["Ebs"]["Encrypted"] = json!(false)
        },
        "HostLaunchTemplate: not encrypted at rest",
    );
}

#[test]
fn imdsv1_a_higher_hop_limit_or_a_key_pair_are_flagged() {
    fn data(t: &mut Value) -> &mut Value {
        &mut t["Resources"]["HostLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    }
    flagged(
        |t| data(t)["MetadataOptions"]["HttpTokens"] = json!("optional"),
        "HostLaunchTemplate: IMDSv2 not required",
    );
    flagged(
        |t| data(t)["MetadataOptions"]["HttpPutResponseHopLimit"] = json!(2),
        "HostLaunchTemplate: HttpPutResponseHopLimit",
    );
    flagged(
        |t| data(t)["KeyName"] = json!("my-key"),
        "HostLaunchTemplate: names an SSH key pair",
    );
    // The group then launches from a template that fails.
    flagged(
        |t| data(t)["MetadataOptions"]["HttpTokens"] = json!("optional"),
        "HostGroup: does not launch from a launch template that requires IMDSv2",
    );
}

#[test]
fn ssh_or_internet_ingress_is_flagged() {
    let ingress = |rule: Value| {
        move |t: &mut Value| {
            t["Resources"]["HostSecurityGroup"]["Properties"]["SecurityGroupIngress"] =
                json!([rule])
        }
    };
    flagged(
        ingress(
            json!({ "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "10.0.0.0/8" }),
        ),
        "HostSecurityGroup: ingress on port 22",
    );
    flagged(
        ingress(
            json!({ "IpProtocol": "tcp", "FromPort": 0, "ToPort": 1024, "SourceSecurityGroupId": "sg-1" }),
        ),
        "HostSecurityGroup: ingress on port 22",
    );
    flagged(
        ingress(json!({ "IpProtocol": "-1", "SourceSecurityGroupId": "sg-1" })),
        "HostSecurityGroup: ingress on port 22",
    );
    flagged(
        ingress(
            json!({ "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0" }),
        ),
        "HostSecurityGroup: ingress from anywhere",
    );
    flagged(
        |t| {
            t["Resources"]["Extra"] = json!({ "Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
                "GroupId": { "Ref": "HostSecurityGroup" }, "IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "CidrIpv6": "::/0" } })
        },
        "Extra: ingress from anywhere",
    );
}

// ---------------------------------------------------------------------------
// A planted token appears nowhere
// ---------------------------------------------------------------------------

/// A token no other test and no file uses.
fn planted_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("PLANTED-{}-{nanos:x}-zq7", std::process::id())
}

/// 200, one heartbeat, then the connection is cut mid-body (after a pause,
/// so that reconnecting is not a busy loop).
fn cut_stream() -> Reply {
    Reply::Stream(vec![
        Step::Chunk(b"\r\n".to_vec()),
        Step::Pause(Duration::from_millis(100)),
        Step::Abort,
    ])
}

fn json_reply(status: u16, body: &str) -> Reply {
    Reply::Json(status, serde_json::from_str(body).unwrap())
}

/// The rules of stacks/tweets.yaml, as X would list them.
const TWEETS_RULES: &str = r##"{"data":[{"id":"1","value":"#rustlang"},{"id":"2","value":"#dataengineering lang:en","tag":"data-engineering"}],"meta":{"result_count":2}}"##;

/// A copy of stacks/tweets.yaml whose X API source reads `token` (an
/// `ssm:` or `env:` reference) and talks to `url`.
fn x_stack(token: &str, url: &str) -> support::StackCopy {
    let (token, url) = (token.to_string(), url.to_string());
    support::stack_copy("tweets.yaml", move |text| {
        let old = "      token: \"ssm:/tweets/x-bearer\"\n";
        assert!(
            text.contains(old),
            "stacks/tweets.yaml changed its token line"
        );
        text.replacen(
            old,
            &format!("      token: \"{token}\"\n      base_url: \"{url}\"\n"),
            1,
        )
    })
}

/// Puts the token into the emulator's SSM as a SecureString.
fn plant_in_ssm(name: &str, token: &str) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        support::aws()
            .await
            .ssm()
            .put_parameter()
            .name(name)
            .value(token)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    });
}

fn delete_from_ssm(name: &str) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let _ = support::aws()
            .await
            .ssm()
            .delete_parameter()
            .name(name)
            .send()
            .await;
    });
}

/// Environment variables a user might hold the token in, planted in every
/// command the tests run.
fn with_planted_env(cmd: &mut Command, token: &str) {
    for name in [
        "X_BEARER_TOKEN",
        "X_API_BEARER_TOKEN",
        "TWITTER_BEARER_TOKEN",
    ] {
        cmd.env(name, token);
    }
}

fn assert_absent(token: &str, what: &str, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    assert!(
        !text.contains(token),
        "the planted token appears in {what}:\n{text}"
    );
}

fn assert_output_clean(token: &str, out: &Output) {
    assert_absent(token, "stdout", &out.stdout);
    assert_absent(token, "stderr", &out.stderr);
}

/// Every local processor log under .state/processors (the directory
/// `up` on the emulator writes them to).
fn assert_processor_logs_clean(token: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".state/processors");
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                assert_absent(token, &path.display().to_string(), &bytes);
            }
        }
    }
}

fn produce(stack: &support::StackCopy, token: &str, json: bool) -> Output {
    let mut cmd = support::streamstack_std();
    if json {
        cmd.args(["--output", "json"]);
    }
    cmd.arg("produce").arg(&stack.path);
    with_planted_env(&mut cmd, token);
    let out = cmd.output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_planted_ssm_token_is_not_in_the_template_nor_in_synth_output() {
    let token = planted_token();
    let parameter = format!("/streamstack-security/{}", &token[8..]);
    let stack = x_stack(&format!("ssm:{parameter}"), "https://api.x.com");
    for output in ["text", "json"] {
        let mut cmd = support::streamstack_std();
        cmd.args(["--output", output, "synth"]).arg(&stack.path);
        with_planted_env(&mut cmd, &token);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_output_clean(&token, &out);
        // The template refers to the parameter (so the host may read it), not its value.
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("parameter{parameter}")));
    }
}

/// A token pasted into the stack file is refused without being quoted: the
/// message names the field, and the source line under it is masked.
#[test]
fn an_inline_token_is_refused_without_being_quoted() {
    let token = planted_token();
    let inline = x_stack(&token, "https://api.x.com");
    for output in ["text", "json"] {
        let mut cmd = support::streamstack_std();
        cmd.args(["--output", output, "validate"]).arg(&inline.path);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "an inline token was accepted");
        assert_output_clean(&token, &out);
        let said = String::from_utf8_lossy(if output == "json" {
            &out.stdout
        } else {
            &out.stderr
        });
        assert!(said.contains("not a valid `token`"), "{said}");
    }
}

#[test]
fn a_planted_ssm_token_is_not_echoed_when_x_refuses_it() {
    let token = planted_token();
    let parameter = format!("/streamstack-security/{}", &token[8..]);
    plant_in_ssm(&parameter, &token);
    // X answers 401 and echoes the request's credentials in its problem.
    let x = Server::start_blocking(|req: &Req| {
        let authorization = req.header("authorization").unwrap_or_default();
        Reply::Json(
            401,
            json!({ "title": format!("Unauthorized: {authorization}"), "type": "about:blank",
                    "detail": format!("Token {authorization} is invalid"), "status": 401 }),
        )
    });
    let stack = x_stack(&format!("ssm:{parameter}"), &x.url);
    for json in [false, true] {
        let out = produce(&stack, &token, json);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("401"),
            "{out:?}"
        );
        assert_output_clean(&token, &out);
    }
    // The token was read from SSM and sent: the test planted what it greps for.
    assert!(
        x.authorizations()
            .iter()
            .any(|a| *a == format!("Bearer {token}"))
    );
    assert_processor_logs_clean(&token);
    delete_from_ssm(&parameter);
}

#[test]
fn a_planted_env_token_is_not_echoed_from_a_body_the_client_cannot_parse() {
    let token = planted_token();
    // A proxy or a broken server echoes the credentials where a list is due.
    let x = Server::start_blocking(|req: &Req| {
        let authorization = req.header("authorization").unwrap_or_default();
        Reply::Json(200, json!({ "data": authorization }))
    });
    let stack = x_stack("env:X_BEARER_TOKEN", &x.url);
    let out = produce(&stack, &token, false);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_output_clean(&token, &out);
    assert!(x.authorizations().contains(&format!("Bearer {token}")));
}

#[test]
fn a_planted_env_token_is_not_echoed_when_x_rejects_the_rules() {
    let token = planted_token();
    // No rules yet; adding them fails with an error that echoes the credentials.
    let x = Server::start_blocking(|req: &Req| {
        let authorization = req.header("authorization").unwrap_or_default();
        match req.method.as_str() {
            "GET" => json_reply(200, r#"{"meta":{"result_count":0}}"#),
            _ => Reply::Json(
                200,
                json!({ "meta": { "summary": { "created": 0, "not_created": 2 } },
                    "errors": [{ "value": "#rustlang", "title": "Invalid Request",
                                 "detail": format!("rejected for {authorization}") }] }),
            ),
        }
    });
    let stack = x_stack("env:X_BEARER_TOKEN", &x.url);
    let out = produce(&stack, &token, false);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("#rustlang"),
        "{out:?}"
    );
    assert_output_clean(&token, &out);
}

#[test]
fn a_planted_ssm_token_is_not_in_the_command_line_nor_the_output_of_a_cut_stream() {
    let token = planted_token();
    let parameter = format!("/streamstack-security/{}", &token[8..]);
    plant_in_ssm(&parameter, &token);
    let x = Server::start_blocking(|req: &Req| match req.path() {
        "/2/tweets/search/stream" => cut_stream(),
        _ => json_reply(200, TWEETS_RULES),
    });
    let stack = x_stack(&format!("ssm:{parameter}"), &x.url);
    let mut cmd = support::streamstack_std();
    cmd.arg("produce")
        .arg(&stack.path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    with_planted_env(&mut cmd, &token);
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    // Running, connected, cut and reconnected: look at its command line.
    let mut waited = 0;
    while x.stream_requests().len() < 3 && waited < 600 {
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        x.stream_requests().len() >= 3,
        "the stream was not reconnected"
    );
    assert!(String::from_utf8_lossy(&cmdline).contains("produce"));
    assert_absent(&token, "/proc/<pid>/cmdline", &cmdline);
    // SIGTERM: the source ends gracefully and the command reports.
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_output_clean(&token, &out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("X API stream"),
        "{out:?}"
    );
    assert!(x.authorizations().contains(&format!("Bearer {token}")));
    assert_processor_logs_clean(&token);
    delete_from_ssm(&parameter);
}

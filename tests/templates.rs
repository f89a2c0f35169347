//! The template compiler: snapshots of every shipped stack in every
//! environment, and the properties a reviewer would check by hand.

use std::path::Path;

use serde_json::Value;
use streamstack::spec::{self, Resolved};
use streamstack::template;

fn resolve(stack: &str, env: Option<&str>) -> Resolved {
    spec::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("stacks")
            .join(stack),
        env,
    )
    .unwrap()
}

/// Every (stack file, environment) the repo ships, the base included.
fn all_shipped() -> Vec<(String, Option<String>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks");
    let mut out = Vec::new();
    let files = streamstack::spec::cases::stack_files(&dir).unwrap();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let file = spec::parse(&name, &std::fs::read(&path).unwrap()).unwrap();
        out.push((name.clone(), None));
        out.extend(
            file.environment_names()
                .into_iter()
                .map(|e| (name.clone(), Some(e))),
        );
    }
    out
}

fn resources(t: &Value) -> impl Iterator<Item = (&String, &Value)> {
    t["Resources"].as_object().unwrap().iter()
}

fn of_type<'a>(t: &'a Value, ty: &str) -> Vec<&'a Value> {
    resources(t)
        .filter(|(_, r)| r["Type"] == ty)
        .map(|(_, r)| r)
        .collect()
}

#[test]
fn snapshots_of_every_shipped_stack_and_environment() {
    for (file, env) in all_shipped() {
        let t = template::compile(&resolve(&file, env.as_deref()));
        let name = format!(
            "{}-{}",
            file.trim_end_matches(".yaml"),
            env.as_deref().unwrap_or("base")
        );
        insta::assert_snapshot!(name, template::to_pretty_json(&t));
    }
}

#[test]
fn compiling_is_deterministic() {
    for (file, env) in all_shipped() {
        let a = template::to_pretty_json(&template::compile(&resolve(&file, env.as_deref())));
        let b = template::to_pretty_json(&template::compile(&resolve(&file, env.as_deref())));
        assert_eq!(a, b);
    }
}

#[test]
fn iam_policies_name_actions_and_resources() {
    for (file, env) in all_shipped() {
        let t = template::compile(&resolve(&file, env.as_deref()));
        for role in of_type(&t, "AWS::IAM::Role") {
            for policy in role["Properties"]["Policies"].as_array().unwrap() {
                for st in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
                    let actions = st["Action"].as_array().unwrap();
                    assert!(
                        actions.iter().all(|a| !a.as_str().unwrap().contains('*')),
                        "wildcard action in {st}"
                    );
                    if st["Resource"] == "*" {
                        // Only PutMetricData, which has no resource-level permissions, pinned by a condition.
                        assert_eq!(
                            actions,
                            &vec![Value::from("cloudwatch:PutMetricData")],
                            "{st}"
                        );
                        assert_eq!(
                            st["Condition"]["StringEquals"]["cloudwatch:namespace"],
                            "Streamstack"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn the_archive_role_is_scoped_to_the_stream_and_the_bucket() {
    let t = template::compile(&resolve("tweets.yaml", None));
    let role = &t["Resources"]["ArchiveDeliveryRole"]["Properties"];
    let statements = role["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    let resources: Vec<String> = statements
        .iter()
        .flat_map(|s| {
            s["Resource"]
                .as_array()
                .unwrap()
                .iter()
                .map(Value::to_string)
        })
        .collect();
    assert!(
        resources.iter().all(|r| r.contains("Stream")
            || r.contains("ArchiveBucket")
            || r.contains("ArchiveDeliveryLogGroup")),
        "{resources:?}"
    );
    assert_eq!(
        role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"],
        "firehose.amazonaws.com"
    );
}

#[test]
fn data_at_rest_is_encrypted_and_the_bucket_is_private_and_tls_only() {
    for (file, env) in all_shipped() {
        let t = template::compile(&resolve(&file, env.as_deref()));
        let stream = &t["Resources"]["Stream"]["Properties"];
        assert_eq!(stream["StreamEncryption"]["EncryptionType"], "KMS");
        let bucket = &t["Resources"]["ArchiveBucket"]["Properties"];
        assert!(bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"].is_string());
        for flag in [
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        ] {
            assert_eq!(
                bucket["PublicAccessBlockConfiguration"][flag], true,
                "{flag}"
            );
        }
        let policy =
            &t["Resources"]["ArchiveBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
        assert_eq!(policy["Effect"], "Deny");
        assert_eq!(policy["Condition"]["Bool"]["aws:SecureTransport"], "false");
        for table in of_type(&t, "AWS::DynamoDB::Table") {
            assert_eq!(table["Properties"]["SSESpecification"]["SSEEnabled"], true);
        }
    }
}

#[test]
fn the_host_requires_imdsv2_and_admits_no_inbound_traffic() {
    for (file, env) in all_shipped() {
        let t = template::compile(&resolve(&file, env.as_deref()));
        let data = &t["Resources"]["HostLaunchTemplate"]["Properties"]["LaunchTemplateData"];
        assert_eq!(data["MetadataOptions"]["HttpTokens"], "required");
        assert_eq!(data["BlockDeviceMappings"][0]["Ebs"]["Encrypted"], true);
        let sg = &t["Resources"]["HostSecurityGroup"]["Properties"];
        assert!(sg.get("SecurityGroupIngress").is_none());
        assert_eq!(sg["SecurityGroupEgress"].as_array().unwrap().len(), 1);
        assert_eq!(sg["SecurityGroupEgress"][0]["FromPort"], 443);
    }
}

#[test]
fn every_taggable_resource_is_tagged_with_its_stack() {
    for (file, env) in all_shipped() {
        let resolved = resolve(&file, env.as_deref());
        let t = template::compile(&resolved);
        for (id, r) in resources(&t) {
            let Some(tags) = r["Properties"].get("Tags") else {
                continue;
            };
            let has = tags.as_array().unwrap().iter().any(|tag| {
                tag["Key"] == "streamstack:stack" && tag["Value"] == resolved.stack_name().as_str()
            });
            assert!(has, "{id} in {file} {env:?} lacks the stack tag");
        }
    }
}

#[test]
fn environments_change_what_they_override_and_nothing_else() {
    let base = template::compile(&resolve("tweets.yaml", None));
    let prod = template::compile(&resolve("tweets.yaml", Some("prod")));
    assert_eq!(base["Resources"]["Stream"]["Properties"]["ShardCount"], 2);
    assert_eq!(prod["Resources"]["Stream"]["Properties"]["ShardCount"], 4);
    assert_eq!(
        prod["Resources"]["Stream"]["Properties"]["Name"],
        "tweets-prod-stream"
    );
    // count: 2 -> a group of two (and room for a third during a rolling update).
    assert_eq!(
        prod["Resources"]["HostGroup"]["Properties"]["DesiredCapacity"],
        "2"
    );
    assert_eq!(
        base["Resources"]["HostGroup"]["Properties"]["DesiredCapacity"],
        "1"
    );
    // stack-key and e-mail: a KMS key, the SNS topic encrypted with it, alarms notifying it.
    assert!(
        prod["Resources"].get("StackKey").is_some() && base["Resources"].get("StackKey").is_none()
    );
    assert_eq!(
        prod["Resources"]["AlarmTopic"]["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0],
        "StackKey"
    );
    assert_eq!(
        prod["Resources"]["IteratorAgeAlarm"]["Properties"]["AlarmActions"][0]["Ref"],
        "AlarmTopic"
    );
    // Untouched fields stay as in the base.
    assert_eq!(
        base["Resources"]["ArchiveDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
            ["BufferingHints"],
        prod["Resources"]["ArchiveDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
            ["BufferingHints"]
    );
}

#[test]
fn alarms_watch_the_right_metrics() {
    let t = template::compile(&resolve("tweets.yaml", None));
    let alarm = |id: &str| t["Resources"][id]["Properties"].clone();
    let age = alarm("IteratorAgeAlarm");
    assert_eq!(age["Namespace"], "AWS/Kinesis");
    assert_eq!(age["MetricName"], "GetRecords.IteratorAgeMilliseconds");
    assert_eq!(age["Dimensions"][0]["Value"], "tweets-stream");
    assert_eq!(age["Threshold"], 60_000.0);
    let fresh = alarm("ArchiveFreshnessAlarm");
    assert_eq!(fresh["MetricName"], "DeliveryToS3.DataFreshness");
    assert_eq!(fresh["Threshold"], 900.0);
    let heartbeat = alarm("ProcessorHeartbeatAlarm");
    assert_eq!(heartbeat["TreatMissingData"], "breaching");
    // One stalled shard is enough: its records wait however long it lasts.
    let stalled = alarm("StalledShardAlarm");
    assert_eq!(stalled["MetricName"], "StalledShards");
    assert_eq!(stalled["Namespace"], streamstack::names::metrics::NAMESPACE);
    assert_eq!(stalled["Statistic"], "Maximum");
    assert_eq!(stalled["Threshold"], 1.0);
    assert_eq!(
        stalled["ComparisonOperator"],
        "GreaterThanOrEqualToThreshold"
    );
    // Every table the processor writes has its throttle alarm.
    for (id, table) in [
        ("TableThrottleAlarm", "tweets-tweets"),
        ("AggregatesThrottleAlarm", "tweets-aggregates"),
        ("LeaseThrottleAlarm", "tweets-leases"),
    ] {
        let throttles = alarm(id);
        assert_eq!(throttles["MetricName"], "WriteThrottleEvents", "{id}");
        assert_eq!(throttles["Dimensions"][0]["Name"], "TableName", "{id}");
        assert_eq!(throttles["Dimensions"][0]["Value"], table, "{id}");
    }
    assert_eq!(of_type(&t, "AWS::CloudWatch::Alarm").len(), 12);
}

#[test]
fn one_host_is_a_group_of_one_so_a_new_ami_rolls_instead_of_replacing_an_instance() {
    for (file, env) in all_shipped() {
        let resolved = resolve(&file, env.as_deref());
        let t = template::compile(&resolved);
        assert!(
            of_type(&t, "AWS::EC2::Instance").is_empty(),
            "{file} {env:?}"
        );
        let group = &t["Resources"]["HostGroup"];
        let count = resolved.stack.host.count;
        let props = &group["Properties"];
        assert_eq!(props["MinSize"], count.to_string());
        assert_eq!(props["DesiredCapacity"], count.to_string());
        assert_eq!(props["MaxSize"], (count + 1).to_string());
        // Spread over two zones: a launch that fails in one goes to the other.
        assert_eq!(
            props["AvailabilityZoneDistribution"]["CapacityDistributionStrategy"],
            "balanced-best-effort"
        );
        if resolved.stack.host.vpc_id.is_none() {
            assert_eq!(props["VPCZoneIdentifier"].as_array().unwrap().len(), 2);
        }
        assert_eq!(
            props["LaunchTemplate"]["Version"]["Fn::GetAtt"],
            serde_json::json!(["HostLaunchTemplate", "LatestVersionNumber"])
        );
        // CloudFormation refuses MinInstancesInService at or above MaxSize.
        let rolling = &group["UpdatePolicy"]["AutoScalingRollingUpdate"];
        assert_eq!(rolling["MinInstancesInService"], count);
        assert_eq!(rolling["MaxBatchSize"], 1);
        assert!(t["Outputs"].get("HostGroupName").is_some());
        assert!(t["Outputs"].get("HostInstanceId").is_none());
    }
}

#[test]
fn the_archive_lifecycle_also_removes_expired_delete_markers_in_a_rule_of_their_own() {
    for (file, env) in all_shipped() {
        let t = template::compile(&resolve(&file, env.as_deref()));
        let rules =
            t["Resources"]["ArchiveBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
                .as_array()
                .unwrap();
        let markers: Vec<&Value> = rules
            .iter()
            .filter(|r| r.get("ExpiredObjectDeleteMarker").is_some())
            .collect();
        assert_eq!(markers.len(), 1, "{file} {env:?}: {rules:?}");
        assert_eq!(markers[0]["ExpiredObjectDeleteMarker"], true);
        assert_eq!(markers[0]["Status"], "Enabled");
        // S3 rejects ExpiredObjectDeleteMarker beside Days or Date in one expiration.
        assert!(markers[0].get("ExpirationInDays").is_none());
        assert!(markers[0].get("ExpirationDate").is_none());
    }
}

fn compile_text(yaml: &str) -> Value {
    let file = spec::parse("s.yaml", yaml.as_bytes()).unwrap();
    template::compile(&file.resolve(None).unwrap())
}

#[test]
fn ebs_optimization_is_asked_for_only_on_types_optimized_by_default() {
    let data = |t: &Value| {
        t["Resources"]["HostLaunchTemplate"]["Properties"]["LaunchTemplateData"].clone()
    };
    let t3 = compile_text("name: ebs\nregion: us-east-1\nhost: { instance_type: t3.micro }\n");
    assert_eq!(data(&t3)["EbsOptimized"], true);
    // RunInstances refuses EbsOptimized on a t2: leave it out.
    let t2 = compile_text("name: ebs\nregion: us-east-1\nhost: { instance_type: t2.micro }\n");
    assert!(data(&t2).get("EbsOptimized").is_none(), "{}", data(&t2));
}

#[test]
fn the_dashboard_shows_the_region_the_stack_is_deployed_in() {
    let t = compile_text("name: dash\nregion: eu-west-1\n");
    let body = t["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("the body is an Fn::Sub");
    // `up --region us-east-2` deploys this file elsewhere: no literal region.
    assert!(!body.contains("eu-west-1"), "{body}");
    let parsed: Value = serde_json::from_str(body).unwrap();
    for widget in parsed["widgets"].as_array().unwrap() {
        assert_eq!(widget["properties"]["region"], "${AWS::Region}");
    }
}

/// `plan` and `up` read the shard count back from what they compiled: the
/// reader must find it where the compiler puts it.
#[test]
fn the_compiled_templates_carry_the_shard_count_the_reshard_check_reads() {
    use streamstack::deploy::reshard::{check, shard_count};
    let count = |env| shard_count(&template::compile(&resolve("tweets.yaml", Some(env))));
    assert_eq!((count("dev"), count("prod")), (Some(1), Some(4)));
    // dev (1 shard) straight to prod's 4: two updates.
    assert_eq!(check(1, 4).unwrap_err().steps, [2, 4]);
}

#[test]
fn the_processor_logs_to_its_own_group_kept_and_encrypted_like_the_firehose_log() {
    for (file, env) in all_shipped() {
        let resolved = resolve(&file, env.as_deref());
        let names = streamstack::names::Names::new(&resolved);
        let t = template::compile(&resolved);
        let group = &t["Resources"]["ProcessorLogGroup"];
        assert_eq!(group["Type"], "AWS::Logs::LogGroup");
        let props = &group["Properties"];
        assert_eq!(props["LogGroupName"], names.processor_log_group.as_str());
        assert_eq!(
            names.processor_log_group,
            format!("/streamstack/{}/processor", names.stack)
        );
        // The same retention as the Firehose delivery errors.
        let firehose = &t["Resources"]["ArchiveDeliveryLogGroup"]["Properties"];
        assert_eq!(props["RetentionInDays"], firehose["RetentionInDays"]);
        assert_eq!(props["RetentionInDays"], 30);
        let key = t["Resources"].get("StackKey");
        match key {
            // The stack key encrypts it, and its policy lets CloudWatch Logs
            // use the key for exactly this log group (and the Firehose one).
            Some(key) => {
                assert_eq!(
                    props["KmsKeyId"],
                    serde_json::json!({ "Fn::GetAtt": ["StackKey", "Arn"] })
                );
                let statements = key["Properties"]["KeyPolicy"]["Statement"]
                    .as_array()
                    .unwrap();
                let logs = statements
                    .iter()
                    .find(|s| {
                        s["Principal"]["Service"]["Fn::Sub"] == "logs.${AWS::Region}.amazonaws.com"
                    })
                    .expect("a key policy statement for CloudWatch Logs");
                let arns = logs["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]
                    .as_array()
                    .unwrap();
                let processor = format!(
                    "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{}",
                    names.processor_log_group
                );
                assert!(
                    arns.iter().any(|a| a["Fn::Sub"] == processor.as_str()),
                    "{arns:?}"
                );
                assert_eq!(arns.len(), 2, "{arns:?}");
            }
            None => {
                assert!(props.get("KmsKeyId").is_none());
                assert_eq!(group["Metadata"]["checkov"]["skip"][0]["id"], "CKV_AWS_158");
            }
        }
        // The host may create its streams and put events in this group, and
        // no other logs action anywhere.
        let statements = t["Resources"]["HostRole"]["Properties"]["Policies"][0]["PolicyDocument"]
            ["Statement"]
            .as_array()
            .unwrap();
        let logs: Vec<&Value> = statements
            .iter()
            .filter(|s| {
                s["Action"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a.as_str().unwrap().starts_with("logs:"))
            })
            .collect();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert_eq!(
            logs[0]["Action"],
            serde_json::json!(["logs:CreateLogStream", "logs:PutLogEvents"])
        );
        assert_eq!(
            logs[0]["Resource"],
            serde_json::json!([{ "Fn::Sub": format!(
                "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{}:log-stream:*",
                names.processor_log_group
            ) }])
        );
    }
}

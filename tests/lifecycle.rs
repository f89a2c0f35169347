//! The environment's whole lifecycle against the local emulator, checked
//! with the SDK: up, status, up again (no changes), plan a shard change, up,
//! data in the bucket, down refuses, down --delete-data leaves nothing, a
//! second down is a quiet success.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use support::{aws, stack_copy, streamstack};

fn stdout(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

fn stderr(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(out.get_output().stderr.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn up_status_plan_update_and_down_without_losing_data_silently() {
    let copy = stack_copy("tweets.yaml", |t| t);
    let file = copy.path.to_str().unwrap().to_string();
    let stack = format!("{}-local", copy.name);
    let aws = aws().await;

    // up: created, with outputs.
    let up = streamstack()
        .args(["up", &file, "-e", "local", "--no-smoke"])
        .assert()
        .success();
    let out = stdout(&up);
    assert!(out.contains(&format!("{stack}: CREATE_COMPLETE")), "{out}");
    assert!(
        out.contains(&format!("StreamName           {stack}-stream")),
        "{out}"
    );
    assert!(
        stderr(&up).contains("[") && stderr(&up).contains("/"),
        "progress lines expected"
    );

    // Every resource of the template is there, as the SDK sees it.
    let stream = aws
        .kinesis()
        .describe_stream_summary()
        .stream_name(format!("{stack}-stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stream
            .stream_description_summary()
            .unwrap()
            .open_shard_count(),
        2
    );
    let bucket = format!("{stack}-archive-123456789012-us-east-1");
    aws.s3().head_bucket().bucket(&bucket).send().await.unwrap();
    for table in ["tweets", "aggregates", "leases"] {
        aws.dynamodb()
            .describe_table()
            .table_name(format!("{stack}-{table}"))
            .send()
            .await
            .unwrap();
    }
    aws.firehose()
        .describe_delivery_stream()
        .delivery_stream_name(format!("{stack}-archive"))
        .send()
        .await
        .unwrap();
    let alarms = aws
        .cloudwatch()
        .describe_alarms()
        .alarm_name_prefix(format!("{stack}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(alarms.metric_alarms().len(), 12);

    // status: healthy, exit 0, every resource listed.
    let status = streamstack()
        .args(["--output", "json", "status", &file, "-e", "local"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(v["healthy"], true);
    assert_eq!(v["status"], "CREATE_COMPLETE");
    // The emulator has no host: the processor runs as a local process.
    assert_eq!(v["processor"]["running"], true, "{v}");
    let pid = v["processor"]["pid"].as_u64().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(
        v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["logical_id"] == "Stream"
                && r["physical_id"] == format!("{stack}-stream").as_str())
    );

    // up again: no changes is success.
    let again = streamstack()
        .args(["up", &file, "-e", "local", "--no-smoke"])
        .assert()
        .success();
    assert!(
        stdout(&again).contains(&format!("{stack}: no changes")),
        "{}",
        stdout(&again)
    );
    assert!(
        stdout(&again).contains(&format!("processor: running, unchanged (pid {pid})")),
        "a second up leaves the running processor alone: {}",
        stdout(&again)
    );

    // More than double the deployed 2 shards: one UpdateShardCount cannot
    // do it, so plan and up refuse before any change set, naming the steps.
    let original = std::fs::read_to_string(&copy.path).unwrap();
    std::fs::write(&copy.path, original.replace("shards: 2", "shards: 5")).unwrap();
    for args in [
        vec!["plan", &file, "-e", "local"],
        vec!["up", &file, "-e", "local", "--no-smoke"],
    ] {
        let refused = streamstack().args(&args).assert().code(3);
        assert!(
            stderr(&refused).contains("the stream cannot go from 2 to 5 shards in one update")
                && stderr(&refused).contains("Set stream.shards to 4, then 5 in turn"),
            "{}: {}",
            args[0],
            stderr(&refused)
        );
    }

    // A shard change: plan shows Modify on the stream and exits 4 when asked.
    let text = original.replace("shards: 2", "shards: 3");
    std::fs::write(&copy.path, text).unwrap();
    let plan = streamstack()
        .args([
            "--output",
            "json",
            "plan",
            &file,
            "-e",
            "local",
            "--detailed-exitcode",
        ])
        .assert()
        .code(4);
    let v: serde_json::Value = serde_json::from_str(&stdout(&plan)).unwrap();
    let changes = v["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["logical_id"] == "Stream" && c["action"] == "Modify"),
        "{v}"
    );
    // The plan changed nothing.
    let stream = aws
        .kinesis()
        .describe_stream_summary()
        .stream_name(format!("{stack}-stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stream
            .stream_description_summary()
            .unwrap()
            .open_shard_count(),
        2
    );

    let update = streamstack()
        .args(["up", &file, "-e", "local", "--no-smoke"])
        .assert()
        .success();
    assert!(
        stdout(&update).contains(&format!("{stack}: UPDATE_COMPLETE")),
        "{}",
        stdout(&update)
    );
    assert!(
        stdout(&update).contains("processor: restarted with the new binary or stack file"),
        "a changed stack file restarts the processor: {}",
        stdout(&update)
    );
    let stream = aws
        .kinesis()
        .describe_stream_summary()
        .stream_name(format!("{stack}-stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stream
            .stream_description_summary()
            .unwrap()
            .open_shard_count(),
        3
    );

    // Data in the bucket: down refuses (exit 3) and says what is there.
    for key in ["raw/2026/11/25/18/a.gz", "raw/2026/11/25/18/b.gz"] {
        aws.s3()
            .put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from_static(b"{}"))
            .send()
            .await
            .unwrap();
    }
    let refused = streamstack()
        .args(["down", &file, "-e", "local"])
        .assert()
        .code(3);
    assert!(
        stderr(&refused).contains(&format!("bucket {bucket}: 2 object(s)")),
        "{}",
        stderr(&refused)
    );
    assert!(stderr(&refused).contains("--delete-data or --keep-data"));
    aws.s3()
        .head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("the refused down deleted nothing");

    // down --delete-data: nothing is left.
    support::down_deleting_data(&file);
    let cfn = aws.cloudformation();
    assert!(
        streamstack::deploy::stack::describe(&cfn, &stack)
            .await
            .unwrap()
            .is_none(),
        "stack still there"
    );
    assert!(
        aws.kinesis()
            .describe_stream_summary()
            .stream_name(format!("{stack}-stream"))
            .send()
            .await
            .is_err(),
        "stream still there"
    );
    assert!(
        aws.s3().head_bucket().bucket(&bucket).send().await.is_err(),
        "bucket still there"
    );
    for table in ["tweets", "aggregates", "leases"] {
        assert!(
            aws.dynamodb()
                .describe_table()
                .table_name(format!("{stack}-{table}"))
                .send()
                .await
                .is_err(),
            "table {table} still there"
        );
    }
    let artifacts = format!("{stack}-artifacts-123456789012-us-east-1");
    assert!(
        aws.s3()
            .head_bucket()
            .bucket(&artifacts)
            .send()
            .await
            .is_err(),
        "artifacts bucket still there"
    );
    let processor = streamstack::deploy::local_processor::inspect(&stack);
    assert!(
        !processor.running,
        "down stops the local processor: {processor:?}"
    );
    assert!(
        aws.firehose()
            .describe_delivery_stream()
            .delivery_stream_name(format!("{stack}-archive"))
            .send()
            .await
            .is_err()
    );
    let alarms = aws
        .cloudwatch()
        .describe_alarms()
        .alarm_name_prefix(format!("{stack}-"))
        .send()
        .await
        .unwrap();
    assert!(alarms.metric_alarms().is_empty(), "alarms still there");

    // A second down: quiet success.
    let second = streamstack()
        .args(["down", &file, "-e", "local"])
        .assert()
        .success();
    assert!(stdout(&second).contains("nothing to tear down"));
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_data_deletes_the_rest_and_says_where_the_data_is() {
    let copy = stack_copy("tweets.yaml", |t| t);
    let file = copy.path.to_str().unwrap().to_string();
    let stack = format!("{}-local", copy.name);
    let aws = aws().await;
    streamstack()
        .args(["up", &file, "-e", "local", "--no-smoke"])
        .assert()
        .success();
    let bucket = format!("{stack}-archive-123456789012-us-east-1");
    aws.s3()
        .put_object()
        .bucket(&bucket)
        .key("raw/x.gz")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();

    let kept = streamstack()
        .args(["down", &file, "-e", "local", "--keep-data"])
        .assert()
        .success();
    let out = stdout(&kept);
    assert!(out.contains(&format!("kept bucket {bucket}")), "{out}");
    assert!(out.contains(&format!("kept table {stack}-tweets")), "{out}");
    // The data is still there; the rest is gone.
    let listed = aws
        .s3()
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(1));
    aws.dynamodb()
        .describe_table()
        .table_name(format!("{stack}-tweets"))
        .send()
        .await
        .unwrap();
    assert!(
        aws.kinesis()
            .describe_stream_summary()
            .stream_name(format!("{stack}-stream"))
            .send()
            .await
            .is_err()
    );
    assert!(
        aws.dynamodb()
            .describe_table()
            .table_name(format!("{stack}-leases"))
            .send()
            .await
            .is_err()
    );

    // A new `up` would fail half-way on the taken names: it stops before
    // any change and names the two ways out.
    let blocked = streamstack()
        .args(["up", &file, "-e", "local", "--no-smoke"])
        .assert()
        .code(3);
    let err = stderr(&blocked);
    assert!(
        err.contains(&format!("{stack}-tweets")) && err.contains(&bucket),
        "{err}"
    );
    assert!(
        err.contains("down --delete-data") && err.contains("another stack name"),
        "{err}"
    );
    assert!(
        aws.kinesis()
            .describe_stream_summary()
            .stream_name(format!("{stack}-stream"))
            .send()
            .await
            .is_err(),
        "nothing was created"
    );

    // `down` finds what is left by name: refused while it holds data...
    let refused = streamstack()
        .args(["down", &file, "-e", "local"])
        .assert()
        .code(3);
    assert!(
        stderr(&refused).contains("1 object(s)"),
        "{}",
        stderr(&refused)
    );
    // ...deleted when told.
    let deleted = streamstack()
        .args(["down", &file, "-e", "local", "--delete-data"])
        .assert()
        .success();
    assert!(
        stdout(&deleted).contains(&format!("deleted bucket {bucket}")),
        "{}",
        stdout(&deleted)
    );
    assert!(aws.s3().head_bucket().bucket(&bucket).send().await.is_err());
    for table in ["tweets", "aggregates"] {
        assert!(
            aws.dynamodb()
                .describe_table()
                .table_name(format!("{stack}-{table}"))
                .send()
                .await
                .is_err()
        );
    }
    let again = streamstack()
        .args(["down", &file, "-e", "local"])
        .assert()
        .success();
    assert!(stdout(&again).contains("nothing to tear down"));
}

#[test]
fn the_emulator_target_refuses_to_run_without_an_endpoint() {
    let mut cmd = assert_cmd::Command::cargo_bin("streamstack").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .args(["up", "stacks/tweets.yaml", "-e", "local"]);
    cmd.assert().code(1).stderr(predicates::str::contains(
        "targets the emulator, but no endpoint is set",
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_creation_names_its_root_cause_and_the_next_up_recovers() {
    let copy = stack_copy("tweets.yaml", |t| t);
    let file = copy.path.to_str().unwrap().to_string();
    let stack = format!("{}-local", copy.name);
    let aws = aws().await;
    // A table of the lease table's name already exists: CloudFormation
    // cannot create the stack's. (Not the tweets table: `up` stops before
    // any change when a retained table of an earlier stack is in the way.)
    let table = format!("{stack}-leases");
    aws.dynamodb()
        .create_table()
        .table_name(&table)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let failed = streamstack()
        .args(["up", &file, "-e", "local", "--no-smoke", "--no-processor"])
        .assert()
        .code(2);
    let err = stderr(&failed);
    assert!(
        err.contains(&format!(
            "creation of stack {stack} failed (ROLLBACK_COMPLETE)"
        )) && err.contains("LeaseTable (AWS::DynamoDB::Table):"),
        "the root cause is the table, not the cascade: {err}"
    );
    assert!(!err.contains("Resource creation cancelled"), "{err}");
    // status says so, and is red.
    let status = streamstack()
        .args(["--output", "json", "status", &file, "-e", "local"])
        .assert()
        .code(2);
    let v: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(v["status"], "ROLLBACK_COMPLETE");

    // The conflict gone, `up` explains the state, deletes the stack and creates it anew.
    aws.dynamodb()
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let recovered = streamstack()
        .args(["up", &file, "-e", "local", "--no-smoke", "--no-processor"])
        .assert()
        .success();
    let err = stderr(&recovered);
    assert!(
        err.contains("is in ROLLBACK_COMPLETE") && err.contains("deleting it to create it anew"),
        "{err}"
    );
    assert!(stdout(&recovered).contains(&format!("{stack}: CREATE_COMPLETE")));
    support::down_deleting_data(&file);
}

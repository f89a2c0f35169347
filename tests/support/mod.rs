//! Shared by the tests that need the local emulator (a moto server that
//! `make test` starts; see scripts/emulator.sh).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::config::Credentials;
use streamstack::aws::Aws;
use streamstack::processor::read::batch::{self, BatchPlan};

/// The emulator's endpoint. These tests cannot pass without it, so they fail
/// loudly instead of skipping.
pub fn endpoint() -> String {
    std::env::var("STREAMSTACK_TEST_ENDPOINT").expect(
        "these tests need the local emulator: run them through `make test` (it starts one), \
         or start one with `scripts/emulator.sh start` and set STREAMSTACK_TEST_ENDPOINT=http://127.0.0.1:4566",
    )
}

/// The binary, pointed at the emulator through the standard AWS settings only.
pub fn streamstack() -> Command {
    Command::from_std(streamstack_std())
}

/// The same, as a std command (for processes the test spawns and kills).
pub fn streamstack_std() -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("streamstack"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env("CI", "true")
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE");
    cmd
}

/// SDK clients for checking what the binary did.
pub async fn aws() -> Aws {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    Aws::from_config(&config)
}

/// A copy of a shipped stack file under a name no other test uses, so tests
/// can share one emulator.
pub struct StackCopy {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub name: String,
}

pub fn stack_copy(shipped: &str, edit: impl Fn(String) -> String) -> StackCopy {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("stacks")
            .join(shipped),
    )
    .unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("t{:x}{:05x}", std::process::id() % 4096, nanos % 0xfffff);
    let original = text
        .lines()
        .find_map(|l| l.strip_prefix("name: "))
        .unwrap()
        .to_string();
    let text = edit(text.replacen(&format!("name: {original}"), &format!("name: {name}"), 1));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(shipped);
    std::fs::write(&path, text).unwrap();
    StackCopy { dir, path, name }
}

/// Every item of a table (consistent reads, every page).
pub async fn scan_all(
    aws: &Aws,
    table: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = aws
            .dynamodb()
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        items.extend(out.items().iter().cloned());
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return items;
        }
    }
}

/// A string attribute of an item ("" when missing).
pub fn s(item: &std::collections::HashMap<String, AttributeValue>, key: &str) -> String {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// Every object key under a prefix.
pub async fn keys_under(aws: &Aws, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = aws
        .s3()
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        keys.extend(
            page.unwrap()
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    keys
}

/// The last stdout line of a `--output json` run, parsed.
pub fn json_out(out: &std::process::Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_else(|| {
        panic!(
            "no stdout; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(last).unwrap()
}

/// `streamstack --output json ARGS`, which must succeed: its JSON.
pub fn json_of(args: &[&str]) -> serde_json::Value {
    let out = streamstack()
        .args(["--output", "json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_out(&out)
}

/// Tweets per hashtag over every minute, as `top --all` reports them.
pub fn top_all(file: &str) -> std::collections::BTreeMap<String, u64> {
    top_all_by(file, "hashtag")
}

/// Events per value of one aggregate over every window, as `top --all --by` reports them.
pub fn top_all_by(file: &str, by: &str) -> std::collections::BTreeMap<String, u64> {
    json_of(&[
        "top", file, "-e", "local", "--all", "--by", by, "--limit", "1000",
    ])["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["value"].as_str().unwrap().to_string(),
                e["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// What `top --all` must report for the tweets of `plan`: distinct tweets a hashtag.
/// The pure plan of whole records (one a line or page, as a file replays
/// them), with the stack's program: what the pipeline must end up holding.
pub fn pure_plan<'a>(
    records: impl IntoIterator<Item = &'a [u8]>,
    program: &streamstack::processor::read::program::Program,
) -> BatchPlan {
    let records: Vec<batch::InRecord<'_>> = records
        .into_iter()
        .map(|data| batch::InRecord {
            shard_id: "s",
            sequence_number: "1",
            partition_key: "k",
            data,
            arrival_s: None,
        })
        .collect();
    batch::plan(&records, program, 0)
}

/// What the table and the aggregates must hold once `count` synthetic
/// tweets from `first_id` (the default seed, as `produce --synthetic`) are
/// processed, from the pure transform.
pub fn synthetic_plan(first_id: u64, count: u64) -> BatchPlan {
    use streamstack::processor::write::source::synthetic;
    let records: Vec<_> = (0..count)
        .map(|n| synthetic::tweet(1, first_id, n))
        .collect();
    pure_plan(
        records.iter().map(|r| r.data.as_slice()),
        &streamstack::processor::read::program::Program::default(),
    )
}

pub fn expected_top(plan: &BatchPlan) -> std::collections::BTreeMap<String, u64> {
    expected_top_of(plan, 0)
}

/// What `top --all --by` must report for the aggregate of index `n`: each
/// key counted once, by its first occurrence, summed over the windows.
pub fn expected_top_of(plan: &BatchPlan, n: usize) -> std::collections::BTreeMap<String, u64> {
    let mut top = std::collections::BTreeMap::new();
    for counts in batch::pure_counts(plan)
        .remove(&n)
        .unwrap_or_default()
        .into_values()
    {
        for (value, count) in counts {
            *top.entry(value).or_default() += count;
        }
    }
    top
}

/// Tears a test's stack down with its data (`down --delete-data`), which must succeed.
pub fn down_deleting_data(file: &str) {
    streamstack()
        .args(["down", file, "-e", "local", "--delete-data"])
        .assert()
        .success();
}

/// `consume` until every shard is read to its tip, with short leases and
/// polls; its final metrics.
pub fn consume_until_idle(file: &str) -> serde_json::Value {
    let out = streamstack()
        .args(["--output", "json", "consume", file, "-e", "local"])
        .args([
            "--exit-when-idle",
            "2",
            "--lease-seconds",
            "2",
            "--lease-interval-ms",
            "300",
            "--idle-poll-ms",
            "200",
        ])
        // Each item is one PutItem: the emulator takes a few hundred a
        // second, shared by the tests running beside this one.
        .timeout(std::time::Duration::from_secs(360))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "consume failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_out(&out)["metrics"].clone()
}

/// A copy of the shipped stack, deployed on the emulator without its local
/// processor (the tests run their own consumers).
pub struct Deployed {
    pub copy: StackCopy,
    pub file: String,
    pub stack: String,
    pub aws: Aws,
}

pub async fn deployed(edit: impl Fn(String) -> String) -> Deployed {
    deployed_with(edit, &["--no-processor"]).await
}

/// The same, with other `up` options (`--no-smoke`: the local processor runs).
pub async fn deployed_with(edit: impl Fn(String) -> String, options: &[&str]) -> Deployed {
    let copy = stack_copy("tweets.yaml", edit);
    let file = copy.path.to_str().unwrap().to_string();
    let stack = format!("{}-local", copy.name);
    streamstack()
        .args(["up", &file, "-e", "local"])
        .args(options)
        .assert()
        .success();
    Deployed {
        copy,
        file,
        stack,
        aws: aws().await,
    }
}

/// Starts `scripts/fault_proxy.py` in front of the emulator with `args`;
/// the process and the URL it listens on (read from its first line).
pub fn start_fault_proxy(args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/fault_proxy.py"
        ))
        .args(["--upstream", &endpoint()])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the fault proxy");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("fault-proxy: listening on ")
        .unwrap_or_else(|| panic!("the fault proxy did not start: {line:?}"))
        .to_string();
    (child, url)
}

/// Splits the stream's first shard in the middle of its hash range (its
/// records stay in it, new ones go to its two children); the parent's id.
pub async fn split_first_shard(aws: &Aws, stream: &str) -> String {
    let kinesis = aws.kinesis();
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let parent = &shards.shards()[0];
    let range = parent.hash_key_range().unwrap();
    let middle = (range.starting_hash_key().parse::<u128>().unwrap()
        + range.ending_hash_key().parse::<u128>().unwrap())
        / 2;
    kinesis
        .split_shard()
        .stream_name(stream)
        .shard_to_split(parent.shard_id())
        .new_starting_hash_key(middle.to_string())
        .send()
        .await
        .unwrap();
    parent.shard_id().to_string()
}

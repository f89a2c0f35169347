//! What real AWS answers and the plain emulator hides, end to end on the
//! emulator with the project's extensions (strict Kinesis resharding, moto's
//! own DynamoDB item and key limits) and the fault proxy:
//!
//! - records DynamoDB would refuse never stall a shard: ordinary records are
//!   bounded to fit, the rest become dead letters and the shard moves on;
//! - a shard held back is visible: `status` red and non-zero, naming the
//!   shard and its last error, and the StalledShards metric;
//! - `down` finishes after a reshard, and vanished shards' leases go.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use streamstack::processor::read::batch::{self, InRecord};
use streamstack::processor::read::consumer::lease::LeaseTable;
use streamstack::processor::read::metrics::ConsumerMetrics;
use streamstack::processor::read::program::Program;
use streamstack::processor::read::sink::{Sink, SinkTargets};
use support::{Deployed, deployed, json_out, keys_under, s, scan_all, stack_copy, streamstack};

/// A v2 tweet as the X API sends it, one record.
fn tweet(id: u64, text: &str, hashtags: &[&str]) -> Value {
    json!({
        "data": {
            "id": id.to_string(),
            "text": text,
            "author_id": "7",
            "lang": "en",
            "created_at": "2026-12-02T10:00:00.000Z",
            "entities": { "hashtags": hashtags.iter().map(|h| json!({"tag": h})).collect::<Vec<_>>() }
        }
    })
}

fn write_lines(dir: &Path, name: &str, records: &[Value]) -> String {
    let path = dir.join(name);
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn produce(file: &str, replay: &str) {
    streamstack()
        .args([
            "produce", file, "-e", "local", "--replay", replay, "--rate", "2000",
        ])
        .timeout(Duration::from_secs(60))
        .assert()
        .success();
}

/// Polls `check` every 500 ms until it holds or `limit` passes.
async fn eventually<F: AsyncFnMut() -> bool>(limit: Duration, what: &str, mut check: F) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `status --output json`: (exit code, report).
fn status(file: &str) -> (i32, Value) {
    let out = streamstack()
        .args(["--output", "json", "status", file, "-e", "local"])
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), json_out(&out))
}

fn outputs(stack: &str) -> Value {
    let out = streamstack()
        .args(["--output", "json", "status"])
        .arg(stack)
        .args(["-e", "local"])
        .output()
        .unwrap();
    json_out(&out)["outputs"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn records_dynamodb_would_refuse_never_stall_a_shard() {
    // The reproduction: 50 ordinary tweets and two that used to stall both
    // shards (a 1,500-character hashtag passes the 1,024-byte sort key of
    // its aggregate; a 420,000-character text passes the 400 KB item), plus
    // one whose other fields alone pass 400 KB. The local processor runs.
    let Deployed {
        copy,
        file,
        stack,
        aws,
    } = support::deployed_with(|t| t, &["--no-smoke"]).await;
    let long_tag = "x".repeat(1_500);
    let long_text = "y".repeat(420_000);
    let mut records: Vec<Value> = (1..=25)
        .map(|i| tweet(1_000 + i, "an ordinary #rust tweet", &["rust"]))
        .collect();
    records.push(tweet(
        2_001,
        "a tweet with a giant hashtag",
        &[&long_tag, "data"],
    ));
    records.push(tweet(2_002, &long_text, &["big"]));
    let mut huge = tweet(2_003, "mentions galore", &[]);
    huge["data"]["entities"]["mentions"] =
        // 30,000 usernames of 15 characters: 0.93 MB of record, 480 KB of item.
        json!((0..30_000).map(|i| json!({"username": format!("u{i:014}")})).collect::<Vec<_>>());
    records.push(huge);
    records.extend((26..=50).map(|i| tweet(1_000 + i, "an ordinary #rust tweet", &["rust"])));
    let replay = write_lines(copy.dir.path(), "poison.jsonl", &records);
    produce(&file, &replay);

    let table = format!("{stack}-tweets");
    eventually(Duration::from_secs(60), "52 tweets stored", async || {
        scan_all(&aws, &table).await.len() == 52
    })
    .await;
    let items = scan_all(&aws, &table).await;
    let by_id = |id: &str| {
        items
            .iter()
            .find(|i| s(i, "tweet_id") == id)
            .unwrap()
            .clone()
    };
    let cut = by_id("2002");
    assert_eq!(s(&cut, "text").len(), batch::MAX_TEXT_BYTES);
    assert_eq!(cut.get("text_truncated"), Some(&AttributeValue::Bool(true)));
    // The giant hashtag stays on the tweet and is left out of the counts.
    let tagged = by_id("2001");
    assert_eq!(tagged["hashtags"].as_l().unwrap().len(), 2);
    // The counts are committed with the checkpoint, at most about a second
    // after the items (a run of counts spans slices).
    eventually(
        Duration::from_secs(30),
        "the counts committed",
        async || support::top_all(&file).get("rust") == Some(&50),
    )
    .await;
    let top = support::top_all(&file);
    assert_eq!(top.get("data"), Some(&1));
    assert!(!top.contains_key(&long_tag));

    // The record whose item cannot fit is a dead letter with its reason.
    let o = outputs(&file);
    let bucket = o["ArchiveBucketName"].as_str().unwrap().to_string();
    let letters = keys_under(&aws, &bucket, "dead-letters/").await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let body = aws
        .s3()
        .get_object()
        .bucket(&bucket)
        .key(&letters[0])
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let letter: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(letter["reason"], "item_too_large");
    assert!(letter["error"].as_str().unwrap().contains("tweet 2003"));

    // Everything read is checkpointed, and status says so.
    eventually(Duration::from_secs(30), "status healthy", async || {
        status(&file).0 == 0
    })
    .await;
    let (_, report) = status(&file);
    assert_eq!(report["problems"], json!([]));
    support::down_deleting_data(&file);
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_dynamodb_refuses_become_dead_letters_with_its_reason_and_the_rest_is_stored() {
    let Deployed {
        copy: _copy,
        file,
        stack,
        aws,
    } = deployed(|t| t).await;
    let o = outputs(&file);
    let bucket = o["ArchiveBucketName"].as_str().unwrap().to_string();
    // 30 tweets planned as the consumer plans them...
    let lines: Vec<Vec<u8>> = (1..=30)
        .map(|i| {
            tweet(5_000 + i, "fine #ok", &["ok"])
                .to_string()
                .into_bytes()
        })
        .collect();
    let seqs: Vec<String> = (1..=30).map(|i| i.to_string()).collect();
    let records: Vec<InRecord<'_>> = lines
        .iter()
        .zip(&seqs)
        .map(|(data, seq)| InRecord {
            shard_id: "shardId-000000000000",
            sequence_number: seq,
            partition_key: "pk",
            data,
            arrival_s: None,
        })
        .collect();
    let mut plan = batch::plan(&records, &Program::default(), 1_800_000_000);
    // ...then two items past the bounds, as a bug or another producer's
    // record could make them: the store must not stall on them.
    let mut big = plan.items["5003"].clone();
    big.insert("text".into(), AttributeValue::S("z".repeat(420_000)));
    plan.items.insert("5003".into(), big);
    // A partition key over DynamoDB's 2,048 bytes.
    plan.items
        .get_mut("5007")
        .unwrap()
        .insert("tweet_id".into(), AttributeValue::S("q".repeat(3_000)));

    let metrics = Arc::new(ConsumerMetrics::default());
    let sink = Sink::new(
        aws.dynamodb(),
        aws.s3(),
        SinkTargets {
            tweets_table: format!("{stack}-tweets"),
            aggregates_table: format!("{stack}-aggregates"),
            bucket: bucket.clone(),
            dead_letter_prefix: "dead-letters/".into(),
        },
        25,
        metrics.clone(),
    );
    let program = Program::default();
    let stored = sink
        .store(&plan, &program)
        .await
        .expect("refused writes do not fail the store");
    let rejected = stored.rejected;
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(
        rejected.iter().all(|r| r.code == "ValidationException"),
        "{rejected:?}"
    );
    // Everything else is stored: 28 tweets, each counted by its own
    // (first) position, which its item keeps.
    let tweets = scan_all(&aws, &format!("{stack}-tweets")).await;
    assert_eq!(tweets.len(), 28);
    assert_eq!(stored.counted.len(), 28);
    for tweet in &tweets {
        let id = tweet["tweet_id"].as_s().unwrap();
        let held = tweet["streamstack_counted_in"].as_s().unwrap();
        assert_eq!(held, &plan.occurrences[id][0].position);
        assert_eq!(&stored.counted[id], held);
    }
    // The two records become dead letters with DynamoDB's code and message.
    let letters = batch::rejected_dead_letters(&records, &plan, &rejected);
    assert_eq!(
        letters
            .iter()
            .map(|l| l.sequence_number.as_str())
            .collect::<Vec<_>>(),
        ["3", "7"]
    );
    for l in &letters {
        assert_eq!(l.reason, "not_storable");
        assert!(l.error.contains("ValidationException"), "{}", l.error);
    }
    assert_eq!(letters[0].data, lines[2]);
    sink.store_dead_letters(&letters).await.unwrap();
    assert_eq!(keys_under(&aws, &bucket, "dead-letters/").await.len(), 2);
    // The same tweets again, later in the stream (a duplicate or a replay
    // from elsewhere): each item is replaced whole (a field changed, a list
    // it no longer has gone) but keeps the position that counted it first,
    // and that position, not the new one, is what the store says counts it.
    let later_seqs: Vec<String> = (101..=130).map(|i| i.to_string()).collect();
    let later: Vec<InRecord<'_>> = records
        .iter()
        .zip(&later_seqs)
        .map(|(r, seq)| InRecord {
            sequence_number: seq,
            ..*r
        })
        .collect();
    let mut again = batch::plan(&later, &Program::default(), 1_800_000_000);
    again.items.remove("5003");
    again.items.remove("5007");
    for item in again.items.values_mut() {
        item.insert("text".into(), AttributeValue::S("edited".into()));
        item.remove("hashtags");
    }
    // One key whose item predates counting (no position): this write claims it.
    let legacy = aws
        .dynamodb()
        .get_item()
        .table_name(format!("{stack}-tweets"))
        .key("tweet_id", AttributeValue::S("5010".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let mut legacy = legacy;
    legacy.remove("streamstack_counted_in");
    aws.dynamodb()
        .put_item()
        .table_name(format!("{stack}-tweets"))
        .set_item(Some(legacy))
        .send()
        .await
        .unwrap();
    let calls_before = metrics
        .write_calls
        .load(std::sync::atomic::Ordering::Relaxed);
    let restored = sink.store(&again, &program).await.unwrap();
    assert!(restored.rejected.is_empty(), "{:?}", restored.rejected);
    assert_eq!(restored.counted.len(), 28);
    let tweets = scan_all(&aws, &format!("{stack}-tweets")).await;
    assert_eq!(tweets.len(), 28);
    for tweet in &tweets {
        let id = tweet["tweet_id"].as_s().unwrap();
        let held = tweet["streamstack_counted_in"].as_s().unwrap();
        let (first, now) = (
            &plan.occurrences[id][0].position,
            &again.occurrences[id][0].position,
        );
        let expected = if id == "5010" { now } else { first };
        assert_eq!(held, expected, "{id}");
        assert_eq!(&restored.counted[id], expected, "{id}");
        assert_eq!(tweet["text"].as_s().unwrap(), "edited");
        assert!(!tweet.contains_key("hashtags"), "{id}: {tweet:?}");
    }
    // A new key (and the legacy one) is one put; a key counted elsewhere is two.
    assert_eq!(
        metrics
            .write_calls
            .load(std::sync::atomic::Ordering::Relaxed)
            - calls_before,
        1 + 27 * 2
    );
    // Every item refused is a table or schema problem, not bad records: the
    // store fails (and is retried, then reported as a stall) instead of
    // dead-lettering a whole stream.
    let mut hopeless = batch::BatchPlan::default();
    for id in ["6001", "6002"] {
        let mut item = plan.items["5001"].clone();
        item.insert("tweet_id".into(), AttributeValue::S(id.into()));
        item.insert("text".into(), AttributeValue::S("z".repeat(420_000)));
        hopeless.items.insert(id.into(), item);
    }
    let failed = sink
        .store(&hopeless, &program)
        .await
        .expect_err("every item refused fails the store");
    assert!(
        failed.to_string().contains("every one of the 2 item(s)"),
        "{failed}"
    );
    support::down_deleting_data(&file);
}

/// `scripts/fault_proxy.py` failing only one call with one kind of fault,
/// at a rate the test sets.
struct HoldBack {
    child: Child,
    url: String,
}

impl HoldBack {
    fn start(call: &str, kind: &str) -> Self {
        let (child, url) =
            support::start_fault_proxy(&["--rate", "0", "--kinds", kind, "--calls", call]);
        Self { child, url }
    }

    fn rate(&self, rate: f64) {
        let (host, port) = self
            .url
            .trim_start_matches("http://")
            .split_once(':')
            .unwrap();
        let mut stream =
            std::net::TcpStream::connect((host, port.parse::<u16>().unwrap())).unwrap();
        let body = rate.to_string();
        std::io::Write::write_all(
            &mut stream,
            format!(
                "POST /__fault_proxy/rate HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        let mut reply = String::new();
        std::io::Read::read_to_string(&mut stream, &mut reply).unwrap();
        assert!(
            reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"),
            "{reply}"
        );
    }
}

impl Drop for HoldBack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shard_held_back_turns_status_red_and_counts_in_the_stall_metric() {
    // The slices' commits (their counts and checkpoint) are held back.
    let proxy = HoldBack::start("dynamodb.TransactWriteItems", "error");
    let copy = stack_copy("tweets.yaml", |t| t);
    let file = copy.path.to_str().unwrap().to_string();
    // The local processor reaches DynamoDB through the proxy; a stall is
    // declared after 2 s instead of 60 here.
    streamstack()
        .env("AWS_ENDPOINT_URL", &proxy.url)
        .env("STREAMSTACK_STALL_AFTER", "2s")
        .args(["up", &file, "-e", "local", "--no-smoke"])
        .assert()
        .success();
    let aws = support::aws().await;
    let table = format!("{}-local-tweets", copy.name);
    proxy.rate(1.0);
    let records: Vec<Value> = (1..=20)
        .map(|i| tweet(7_000 + i, "held #back", &["back"]))
        .collect();
    let replay = write_lines(copy.dir.path(), "held.jsonl", &records);
    produce(&file, &replay);

    // Held back: status is red and non-zero, and names the shard and the error.
    eventually(
        Duration::from_secs(60),
        "status reports a stalled shard",
        async || {
            let (code, report) = status(&file);
            code == 2 && report["problems"].as_array().is_some_and(|p| !p.is_empty())
        },
    )
    .await;
    let (_, report) = status(&file);
    let problem = report["problems"][0].as_str().unwrap().to_string();
    assert!(
        problem.contains("STALLED") && problem.contains("shardId-"),
        "{problem}"
    );
    assert!(problem.contains("committing"), "{problem}");
    assert_eq!(report["healthy"], false);
    let stalled = report["shards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stalled_for_s"].is_number())
        .expect("a shard is marked stalled in its lease");
    // What was being done, and the service's answer (the proxy fails with
    // a 500 or a 503, each with DynamoDB's own error body).
    let last_error = stalled["last_error"].as_str().unwrap();
    assert!(
        last_error.contains("committing counts and checkpoint"),
        "{stalled}"
    );
    assert!(
        ["InternalServerError", "ServiceUnavailable", "HTTP 5"]
            .iter()
            .any(|c| last_error.contains(c)),
        "{stalled}"
    );
    assert!(
        stalled["millis_behind"].as_i64().unwrap() >= 2_000,
        "lag counts from the checkpoint: {stalled}"
    );
    // The items are written; their counts wait with the checkpoint.
    let aggregates = format!("{}-local-aggregates", copy.name);
    assert!(scan_all(&aws, &aggregates).await.is_empty());

    // The processor publishes the stall (every 10 s) for the alarm.
    eventually(
        Duration::from_secs(40),
        "StalledShards published",
        async || {
            let now = std::time::SystemTime::now();
            let out = aws
                .cloudwatch()
                .get_metric_statistics()
                .namespace(streamstack::names::metrics::NAMESPACE)
                .metric_name("StalledShards")
                .dimensions(
                    aws_sdk_cloudwatch::types::Dimension::builder()
                        .name("Stack")
                        .value(format!("{}-local", copy.name))
                        .build(),
                )
                .start_time((now - Duration::from_secs(600)).into())
                .end_time((now + Duration::from_secs(60)).into())
                .period(60)
                .statistics(aws_sdk_cloudwatch::types::Statistic::Maximum)
                .send()
                .await
                .unwrap();
            out.datapoints().iter().any(|d| d.maximum() >= Some(1.0))
        },
    )
    .await;

    // Let it through: everything is stored and status is healthy again.
    proxy.rate(0.0);
    eventually(Duration::from_secs(60), "20 tweets stored", async || {
        scan_all(&aws, &table).await.len() == 20
    })
    .await;
    eventually(Duration::from_secs(30), "20 tweets counted", async || {
        support::top_all(&file).get("back") == Some(&20)
    })
    .await;
    eventually(
        Duration::from_secs(30),
        "status healthy again",
        async || status(&file).0 == 0,
    )
    .await;
    support::down_deleting_data(&file);
}

#[tokio::test(flavor = "multi_thread")]
async fn down_finishes_after_a_reshard_and_vanished_shards_lose_their_lease() {
    let Deployed {
        copy,
        file,
        stack,
        aws,
    } = deployed(|t| t).await;
    let stream = format!("{stack}-stream");
    let leases = format!("{stack}-leases");
    let first: Vec<Value> = (1..=30)
        .map(|i| tweet(9_000 + i, "before #split", &["split"]))
        .collect();
    produce(&file, &write_lines(copy.dir.path(), "first.jsonl", &first));
    // Split shard 0 (its records stay in it, new ones go to its children).
    let parent = support::split_first_shard(&aws, &stream).await;
    let second: Vec<Value> = (31..=60)
        .map(|i| tweet(9_000 + i, "after #split", &["split"]))
        .collect();
    produce(
        &file,
        &write_lines(copy.dir.path(), "second.jsonl", &second),
    );
    // A lease of a shard the stream does not have (gone past retention).
    aws.dynamodb()
        .put_item()
        .table_name(&leases)
        .item("shard_id", AttributeValue::S("shardId-000000000099".into()))
        .item("counter", AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap();

    support::consume_until_idle(&file);
    assert_eq!(scan_all(&aws, &format!("{stack}-tweets")).await.len(), 60);
    let table = scan_all(&aws, &leases).await;
    let lease = |id: &str| table.iter().find(|l| s(l, "shard_id") == id).cloned();
    assert_eq!(s(&lease(&parent).unwrap(), "checkpoint"), "SHARD_END");
    assert!(
        lease("shardId-000000000099").is_none(),
        "the vanished shard's lease is removed"
    );
    assert_eq!(table.len(), 4, "two original shards and two children");

    // Taking stock skips the finished parent instead of asking Kinesis for
    // an iterator after "SHARD_END" (AWS: ValidationException).
    let refused = streamstack()
        .args(["--output", "json", "down", &file, "-e", "local"])
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let stock = String::from_utf8_lossy(&refused.stderr).to_string()
        + &String::from_utf8_lossy(&refused.stdout);
    assert!(stock.contains("0 record(s) not yet read"), "{stock}");
    support::down_deleting_data(&file);
    assert!(
        aws.kinesis()
            .describe_stream_summary()
            .stream_name(&stream)
            .send()
            .await
            .is_err()
    );
}

/// A partial count of 3 for `rust` in one window, as a run commits it.
fn partial(first: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            "pk".to_string(),
            AttributeValue::S("hashtag#2026-12-03T10:00#0".into()),
        ),
        (
            "sk".to_string(),
            AttributeValue::S(format!("shardId-000000000000#{first}#0")),
        ),
        (
            "counts".to_string(),
            AttributeValue::M(HashMap::from([(
                "rust".to_string(),
                AttributeValue::N("3".into()),
            )])),
        ),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_counts_nothing_once_the_lease_is_lost_and_once_after_a_lost_reply() {
    let Deployed {
        copy: _copy,
        file,
        stack,
        aws,
    } = deployed(|t| t).await;
    let (leases, aggregates) = (format!("{stack}-leases"), format!("{stack}-aggregates"));
    let shard = "shardId-000000000000";
    let mine = LeaseTable::new(aws.dynamodb(), &leases, "worker-a");
    let theirs = LeaseTable::new(aws.dynamodb(), &leases, "worker-b");
    mine.create_if_missing(shard, &[]).await.unwrap();
    let lease = mine.get(shard).await.unwrap().unwrap();
    mine.take(&lease).await.unwrap().expect("free lease taken");

    // Another worker steals the lease: the transaction's condition fails,
    // nothing of the run is written, the checkpoint does not move.
    let lease = theirs.get(shard).await.unwrap().unwrap();
    theirs.take(&lease).await.unwrap().expect("stolen");
    let landed = mine
        .commit(shard, None, Some("100"), &aggregates, &[partial("1")])
        .await
        .unwrap();
    assert!(!landed, "a commit without the lease must not land");
    assert!(scan_all(&aws, &aggregates).await.is_empty());
    assert_eq!(mine.get(shard).await.unwrap().unwrap().checkpoint, None);

    // Taken back. The commit's reply is lost (done upstream, then a 500),
    // with no SDK retry: the caller sees a failure and commits again; the
    // retry finds the checkpoint moved by its own first attempt.
    let lease = mine.get(shard).await.unwrap().unwrap();
    mine.take(&lease).await.unwrap().expect("taken back");
    let proxy = HoldBack::start("dynamodb.TransactWriteItems", "lost-reply");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&proxy.url)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let through_proxy = aws_sdk_dynamodb::Client::new(&config);
    let mine = LeaseTable::new(through_proxy, &leases, "worker-a");
    proxy.rate(1.0);
    let first = mine
        .commit(shard, None, Some("100"), &aggregates, &[partial("1")])
        .await;
    assert!(first.is_err(), "the reply was lost: {first:?}");
    proxy.rate(0.0);
    let retried = mine
        .commit(shard, None, Some("100"), &aggregates, &[partial("1")])
        .await
        .unwrap();
    assert!(retried, "the retry recognises its own commit");
    let stored = scan_all(&aws, &aggregates).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        mine.get(shard)
            .await
            .unwrap()
            .unwrap()
            .checkpoint
            .as_deref(),
        Some("100")
    );
    // Counted once: `top` reads 3, not 6.
    let top = support::json_of(&["top", &file, "-e", "local", "--all", "--by", "hashtag"]);
    assert_eq!(top["top"], json!([{"value": "rust", "count": 3}]));
    // The next run commits from there; one from the old place is refused.
    assert!(
        !mine
            .commit(shard, None, Some("200"), &aggregates, &[partial("1")])
            .await
            .unwrap()
    );
    assert!(
        mine.commit(
            shard,
            Some("100"),
            Some("200"),
            &aggregates,
            &[partial("101")]
        )
        .await
        .unwrap()
    );
    support::down_deleting_data(&file);
}

//! The processor end to end against the local emulator: produce, consume,
//! store, dead letters, checkpoints, shared shards and a killed worker.
//! Every count is checked with the SDK, not with the processor's own word.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use streamstack::aws::Aws;
use streamstack::processor::read::program::Program;
use support::{
    Deployed, consume_until_idle, deployed, json_out, keys_under, s, scan_all, streamstack,
    streamstack_std,
};

const INJECTED: [&[u8]; 4] = [
    b"{broken json",
    b"not json at all",
    b"\xff\xfe binary \x00",
    br#"{"errors": [{"title": "Operational Disconnect", "detail": "injected"}]}"#,
];

#[tokio::test(flavor = "multi_thread")]
async fn replay_stores_each_tweet_once_dead_letters_the_bad_lines_and_resumes_from_checkpoints() {
    let Deployed {
        copy,
        file,
        stack,
        aws,
    } = deployed(|t| t).await;

    // The shared v2 data with malformed lines injected between its pages.
    let data = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/tweets-v2.jsonl")).unwrap();
    let pages: Vec<&[u8]> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut replay = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        replay.extend_from_slice(INJECTED[i]);
        replay.push(b'\n');
        replay.extend_from_slice(page);
        replay.push(b'\n');
    }
    replay.extend_from_slice(INJECTED[3]);
    replay.push(b'\n');
    let replay_file = copy.dir.path().join("replay.jsonl");
    std::fs::write(&replay_file, &replay).unwrap();

    // What the data holds, from the pure transform.
    let expected = support::pure_plan(pages.iter().copied(), &Program::default());
    let expected_ids: HashSet<String> = expected.items.keys().cloned().collect();
    assert_eq!(expected_ids.len(), 218);
    let expected_top = support::expected_top(&expected);

    let produced = streamstack()
        .args([
            "--output",
            "json",
            "produce",
            &file,
            "-e",
            "local",
            "--replay",
            replay_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let p = json_out(&produced)["producer"].clone();
    assert_eq!(
        (p["sent"].as_u64(), p["failed"].as_u64()),
        (Some(218 + 4), Some(0)),
        "{p}"
    );

    let m = consume_until_idle(&file);
    assert_eq!(m["records_in"], 222, "{m}");
    assert_eq!(m["dead_letters"], 4, "{m}");

    // The table holds exactly the distinct tweets.
    let items = scan_all(&aws, &format!("{stack}-tweets")).await;
    let ids: HashSet<String> = items.iter().map(|i| s(i, "tweet_id")).collect();
    assert_eq!((items.len(), &ids), (218, &expected_ids));
    // The dead letters are exactly the injected lines, raw bytes kept.
    let bucket = format!("{stack}-archive-123456789012-us-east-1");
    let dead = keys_under(&aws, &bucket, "dead-letters/").await;
    assert_eq!(dead.len(), 4, "{dead:?}");
    let mut stored: Vec<Vec<u8>> = Vec::new();
    for key in &dead {
        let body = aws
            .s3()
            .get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap();
        let letter: serde_json::Value = serde_json::from_slice(&body.into_bytes()).unwrap();
        stored.push(aws_smithy_types::base64::decode(letter["data"].as_str().unwrap()).unwrap());
    }
    stored.sort();
    let mut injected: Vec<Vec<u8>> = INJECTED.iter().map(|l| l.to_vec()).collect();
    injected.sort();
    assert_eq!(stored, injected);
    // Live aggregates: distinct tweets per hashtag, as the data says.
    assert_eq!(support::top_all(&file), expected_top);

    // A restarted consumer resumes from the checkpoints: nothing is read again.
    let again = consume_until_idle(&file);
    assert_eq!(again["records_in"], 0, "{again}");

    // The same tweets replayed (a producer retry, a re-run) store nothing new and count once.
    streamstack()
        .args([
            "produce",
            &file,
            "-e",
            "local",
            "--replay",
            replay_file.to_str().unwrap(),
        ])
        .assert()
        .success();
    let m = consume_until_idle(&file);
    assert_eq!(m["records_in"], 222, "{m}");
    assert_eq!(scan_all(&aws, &format!("{stack}-tweets")).await.len(), 218);
    assert_eq!(support::top_all(&file), expected_top);
    assert_eq!(
        keys_under(&aws, &bucket, "dead-letters/").await.len(),
        4 + 4
    );

    support::down_deleting_data(&file);
}

fn spawn_consumer(file: &str, log: &std::path::Path) -> Child {
    let mut cmd = streamstack_std();
    cmd.args(["--output", "json", "consume", file, "-e", "local"])
        .args([
            "--lease-seconds",
            "3",
            "--lease-interval-ms",
            "300",
            "--idle-poll-ms",
            "200",
            "--report-every",
            "1",
        ])
        .args(["--exit-when-idle", "3", "--no-metrics"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

async fn owners(aws: &Aws, table: &str) -> BTreeMap<String, String> {
    scan_all(aws, table)
        .await
        .iter()
        .map(|i| (s(i, "shard_id"), s(i, "owner")))
        .collect()
}

fn produce_synthetic(file: &str, count: u64, first_id: u64, rate: u32) -> std::process::Child {
    let mut cmd = streamstack_std();
    cmd.args(["produce", file, "-e", "local", "--synthetic"])
        .args([
            "--count",
            &count.to_string(),
            "--first-id",
            &first_id.to_string(),
            "--rate",
            &rate.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_consumers_share_four_shards_and_a_killed_one_is_taken_over_without_loss() {
    let Deployed {
        copy,
        file,
        stack,
        aws,
    } = deployed(|t| t.replace("shards: 2", "shards: 4")).await;
    let leases = format!("{stack}-leases");

    // Tweets keep arriving while the workers run, are killed and take over.
    let mut producer = produce_synthetic(&file, 6000, 1_000_000, 1000);
    let mut a = spawn_consumer(&file, &copy.dir.path().join("a.log"));
    let b = spawn_consumer(&file, &copy.dir.path().join("b.log"));
    let (pa, pb) = (a.id().to_string(), b.id().to_string());

    // Both get a share: two shards each.
    let deadline = Instant::now() + Duration::from_secs(30);
    let shared = loop {
        let o = owners(&aws, &leases).await;
        let count = |pid: &str| {
            o.values()
                .filter(|w| w.contains(&format!(":{pid}:")))
                .count()
        };
        if o.len() == 4 && count(&pa) == 2 && count(&pb) == 2 {
            break o;
        }
        assert!(
            Instant::now() < deadline,
            "the shards were never shared: {o:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let a_shards: Vec<String> = shared
        .iter()
        .filter(|(_, w)| w.contains(&format!(":{pa}:")))
        .map(|(s, _)| s.clone())
        .collect();

    // kill -9 a mid-run: no graceful handover, its leases must expire.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.kill().unwrap();
    a.wait().unwrap();
    assert!(producer.wait().unwrap().success());

    let out = b.wait_with_output().unwrap();
    let b_log = std::fs::read_to_string(copy.dir.path().join("b.log")).unwrap();
    assert!(out.status.success(), "{b_log}");
    // The log is JSON lines (stderr is a file): one event a take-over, with the shard as a field.
    let taken: Vec<String> = b_log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["message"] == "took shard over")
        .filter_map(|e| e["shard"].as_str().map(str::to_string))
        .collect();
    for shard in &a_shards {
        assert!(taken.contains(shard), "b never took {shard} over:\n{b_log}");
    }
    // Nothing lost, nothing twice: every produced tweet is one item.
    let items = scan_all(&aws, &format!("{stack}-tweets")).await;
    let ids: HashSet<String> = items.iter().map(|i| s(i, "tweet_id")).collect();
    assert_eq!(items.len(), 6000);
    assert_eq!(
        ids,
        (1_000_000u64..1_006_000)
            .map(|i| i.to_string())
            .collect::<HashSet<_>>()
    );
    // Counted once through the steal and the take-over: every aggregate is
    // the pure transform's tally.
    let want = support::synthetic_plan(1_000_000, 6000);
    for (n, aggregate) in Program::default().aggregates.iter().enumerate() {
        assert_eq!(
            support::top_all_by(&file, &aggregate.name),
            support::expected_top_of(&want, n),
            "{}",
            aggregate.name
        );
    }
    // b released everything on its way out.
    let o = owners(&aws, &leases).await;
    assert!(
        o.values().all(String::is_empty),
        "leases still owned: {o:?}"
    );

    support::down_deleting_data(&file);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_batch_checkpoints_and_releases_the_leases() {
    let Deployed {
        copy,
        file,
        stack,
        aws,
    } = deployed(|t| t).await;
    let leases = format!("{stack}-leases");
    let mut producer = produce_synthetic(&file, 3000, 5_000_000, 1500);

    let log = copy.dir.path().join("c.log");
    let c = spawn_consumer(&file, &log);
    let deadline = Instant::now() + Duration::from_secs(30);
    while owners(&aws, &leases)
        .await
        .values()
        .filter(|w| !w.is_empty())
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the consumer never took its leases"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = c.wait_with_output().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("shut down in"), "{text}");
    assert!(
        owners(&aws, &leases).await.values().all(String::is_empty),
        "leases not released:\n{text}"
    );
    let stored = json_out(&out)["metrics"]["tweets_stored"].as_u64().unwrap();

    // What it stored is checkpointed: a new consumer reads only the rest.
    assert!(producer.wait().unwrap().success());
    let rest = consume_until_idle(&file);
    let items = scan_all(&aws, &format!("{stack}-tweets")).await;
    assert_eq!(items.len(), 3000);
    assert_eq!(
        rest["records_in"].as_u64().unwrap() + stored,
        3000,
        "first run {stored}, then {rest}"
    );

    support::down_deleting_data(&file);
}

/// The processor section a test gives a copy of tweets.yaml: order events
/// in jq, one or several a record, counted by country.
const ORDERS: &str = "processor:
  transform:
    events: 'if type == \"array\" then .[] else . end'
    key: '.order_id'
    time: '.placed_at'
    fields: { customer: '.customer.id', total: '.total' }
  aggregates:
    - { name: country, by: '.customer.country', window: 1h }
";

/// The orders of a replay file: single orders, pairs in one record, repeats
/// (the same order twice), orders without a time (they count at the
/// record's arrival), and events the pipeline cannot store.
fn orders_file() -> (Vec<String>, usize) {
    let countries = ["NL", "DE", "FR", "ES", "IT"];
    let order = |i: usize| {
        let mut o = serde_json::json!({
            "order_id": format!("o-{i}"),
            "customer": { "id": format!("c-{}", i % 37), "country": countries[i % 5] },
            "total": (i as f64) * 1.25,
        });
        if !i.is_multiple_of(4) {
            o["placed_at"] = format!("2024-05-01T{:02}:{:02}:00Z", i % 24, i % 60).into();
        }
        o
    };
    let mut lines = Vec::new();
    for i in 0..150 {
        lines.push(order(i).to_string());
    }
    for i in 150..170 {
        lines.push(serde_json::json!([order(i), order(i + 20)]).to_string());
    }
    // The same orders again: stored once, counted once.
    for i in 0..10 {
        lines.push(order(i).to_string());
    }
    let bad = [
        r#"{"customer": {"country": "NL"}}"#.to_string(), // no key
        r#"{"order_id": ["o-1", "o-2"]}"#.to_string(),    // two keys
        r#"{"order_id": "o-x", "total": 123456789012345678901234567890123456789}"#.to_string(), // 39 digits
        "{not json".to_string(),
        r#"[{"order_id": "o-y", "placed_at": "yesterday"}, {"order_id": "o-z"}]"#.to_string(), // a bad time beside a good order
    ];
    lines.extend(bad.iter().cloned());
    (lines, bad.len())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jq_transform_stores_its_items_counts_exactly_under_replay_and_dead_letters_bad_events() {
    let Deployed {
        copy,
        file,
        stack,
        aws,
    } = deployed(|t| {
        t.replacen("  partition_key: tweet_id", "  partition_key: order_id", 1)
            .replacen("processor:\n", ORDERS, 1)
    })
    .await;
    let (lines, bad) = orders_file();
    let replay_file = copy.dir.path().join("orders.jsonl");
    std::fs::write(&replay_file, lines.join("\n") + "\n").unwrap();

    // What the file holds, from the pure plan with the same stack.
    let resolved = streamstack::spec::load(std::path::Path::new(&file), Some("local")).unwrap();
    let program = Program::new(&resolved.stack).unwrap();
    let expected = support::pure_plan(lines.iter().map(|l| l.as_bytes()), &program);
    let expected_keys: HashSet<String> = expected.items.keys().cloned().collect();
    assert_eq!(expected_keys.len(), 191, "150 + 40 orders, and o-z");
    assert_eq!(
        expected.dead_letters.len(),
        bad,
        "{:?}",
        expected.dead_letters
    );
    let country = program
        .aggregates
        .iter()
        .position(|a| a.name == "country")
        .unwrap();
    let expected_top = support::expected_top_of(&expected, country);
    assert_eq!(
        expected_top.values().sum::<u64>(),
        190,
        "o-z has no country"
    );

    let replay = || {
        streamstack()
            .args(["produce", &file, "-e", "local", "--replay"])
            .arg(&replay_file)
            .assert()
            .success();
        consume_until_idle(&file)
    };
    let m = replay();
    assert_eq!(m["records_in"], lines.len() as u64, "{m}");
    assert_eq!(m["dead_letters"], bad as u64, "{m}");

    let items = scan_all(&aws, &format!("{stack}-tweets")).await;
    let keys: HashSet<String> = items.iter().map(|i| s(i, "order_id")).collect();
    assert_eq!((items.len(), &keys), (expected_keys.len(), &expected_keys));
    let o7 = items.iter().find(|i| s(i, "order_id") == "o-7").unwrap();
    assert_eq!(s(o7, "customer"), "c-7");
    assert_eq!(
        o7.get("total")
            .and_then(|v| v.as_n().ok())
            .map(String::as_str),
        Some("8.75")
    );
    let bucket = format!("{stack}-archive-123456789012-us-east-1");
    let dead = keys_under(&aws, &bucket, "dead-letters/").await;
    assert_eq!(dead.len(), bad, "{dead:?}");
    let by_country = |file: &str| support::top_all_by(file, "country");
    assert_eq!(by_country(&file), expected_top);

    // The same file replayed: new records (so new dead letters), the same
    // items, and the same counts (the orders without a time now count in
    // their new records' arrival window, but each order counts once).
    let again = replay();
    assert_eq!(again["records_in"], lines.len() as u64, "{again}");
    let items = scan_all(&aws, &format!("{stack}-tweets")).await;
    assert_eq!(items.len(), expected_keys.len());
    assert_eq!(by_country(&file), expected_top);
    assert_eq!(
        keys_under(&aws, &bucket, "dead-letters/").await.len(),
        2 * bad
    );

    support::down_deleting_data(&file);
}

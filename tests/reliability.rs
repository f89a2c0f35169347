//! Reliability, against the local emulator: what the processor does when
//! AWS misbehaves and when it is killed.
//!
//! - Faults: `scripts/fault_proxy.py` sits between the processor and the
//!   emulator and fails 5% of the calls of every kind the way AWS fails
//!   (throttling, partial PutRecords failures, 500/503
//!   with and without the work done, replies slower than the client's
//!   timeout, connection resets). 20,000 tweets go through; the table must
//!   hold each exactly once and the aggregates count each once.
//! - Crashes: the consumer is killed with SIGKILL at random moments while
//!   tweets arrive, and restarted each time.
//!
//! Every count is checked with the SDK against what the input holds (the
//! synthetic source is deterministic), not with the processor's own word.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use streamstack::processor::read::batch::BatchPlan;
use streamstack::processor::read::program::Program;
use support::{Deployed, deployed, json_out, keys_under, s, scan_all, streamstack_std};

/// One test of this file at a time: each drives the emulator as hard as it
/// takes item writes (one PutItem a tweet), and the kill test's pacing
/// (a consumer's few seconds of life must see progress) only holds when it
/// has the emulator to itself.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Checks the stored data against the plan: each tweet once, each
/// aggregate's counts exactly the pure tally, no dead letter.
async fn assert_stored_exactly(d: &Deployed, want: &BatchPlan) {
    let items = scan_all(&d.aws, &format!("{}-tweets", d.stack)).await;
    let ids: HashSet<String> = items.iter().map(|i| s(i, "tweet_id")).collect();
    let want_ids: HashSet<String> = want.items.keys().cloned().collect();
    assert_eq!(items.len(), want.items.len(), "tweet items");
    assert_eq!(ids.len(), want_ids.len());
    assert!(
        ids == want_ids,
        "the stored tweet ids differ from the input's"
    );

    // Every aggregate's counts, summed over its windows, are the pure
    // transform's tally: each tweet counted once.
    for (n, aggregate) in Program::default().aggregates.iter().enumerate() {
        let want_top = support::expected_top_of(want, n);
        assert!(!want_top.is_empty(), "{}", aggregate.name);
        assert_eq!(
            support::top_all_by(&d.file, &aggregate.name),
            want_top,
            "top --all --by {}",
            aggregate.name
        );
    }

    let bucket = format!("{}-archive-123456789012-us-east-1", d.stack);
    let dead = keys_under(&d.aws, &bucket, "dead-letters/").await;
    assert!(
        dead.is_empty(),
        "well-formed tweets were dead-lettered: {dead:?}"
    );
}

/// `scripts/fault_proxy.py` in front of the emulator.
struct FaultProxy {
    child: Child,
    url: String,
    stats: PathBuf,
}

impl FaultProxy {
    fn start(seed: u64, rate: f64, dir: &Path, extra: &[&str]) -> Self {
        let stats = dir.join(format!("fault-proxy-{seed}.json"));
        let (rate, seed) = (rate.to_string(), seed.to_string());
        let mut args = vec![
            "--rate",
            &rate,
            "--seed",
            &seed,
            // Past the processor's 1 s call timeout set below.
            "--slow-seconds",
            "2",
            "--stats-file",
            stats.to_str().unwrap(),
        ];
        args.extend(extra);
        let (child, url) = support::start_fault_proxy(&args);
        Self { child, url, stats }
    }

    /// The processor, pointed at the proxy, abandoning an attempt after 1 s.
    fn streamstack(&self) -> Command {
        let mut cmd = streamstack_std();
        cmd.env("AWS_ENDPOINT_URL", &self.url)
            .env("STREAMSTACK_CALL_TIMEOUT", "1s");
        cmd
    }

    /// `consume` through the proxy until idle: its JSON report and its log.
    fn consume(&self, file: &str) -> (Value, String) {
        run_ok(
            self.streamstack()
                .args(["--output", "json", "consume", file, "-e", "local"])
                .args(["--exit-when-idle", "3", "--lease-seconds", "3"])
                .args(["--lease-interval-ms", "300", "--idle-poll-ms", "200"]),
            "consume",
        )
    }

    /// Stops the proxy and returns its counts.
    fn stop(mut self) -> Value {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap();
        serde_json::from_str(&std::fs::read_to_string(&self.stats).unwrap()).unwrap()
    }
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn run_ok(cmd: &mut Command, what: &str) -> (Value, String) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{what} failed:\n{stderr}");
    (json_out(&out), stderr)
}

/// `produce --synthetic` of `count` tweets from `first_id`, its JSON report asked for.
fn produce_synthetic<'c>(
    cmd: &'c mut Command,
    file: &str,
    count: u64,
    first_id: u64,
) -> &'c mut Command {
    cmd.args([
        "--output",
        "json",
        "produce",
        file,
        "-e",
        "local",
        "--synthetic",
    ])
    .args([
        "--count",
        &count.to_string(),
        "--first-id",
        &first_id.to_string(),
    ])
}

/// Faults and retries of one process, for the report below.
fn fault_summary(who: &str, stats: &Value) {
    eprintln!(
        "{who}: {} calls through the proxy, {} faults {}",
        stats["total_calls"], stats["total_faults"], stats["faults_by_kind"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn five_percent_faults_on_every_call_lose_nothing_and_store_nothing_twice() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // 6,000: every item is one PutItem, which the emulator takes at a
    // few hundred a second (20,000 took 15 minutes through the proxy).
    const TWEETS: u64 = 6_000;
    const FIRST_ID: u64 = 7_000_000;
    // PutRecords of 50 and pages of 50 records: about 120 PutRecords, 130
    // GetRecords calls and as many commits, so that 5% of each fault with
    // near certainty (10,000-record pages made about 40 calls at the
    // reader's 400 ms pace, and none faulted in 1 run of 7 or so).
    let d = deployed(|t| {
        assert!(
            t.contains("get_records: 10000"),
            "the shipped stack's batch line moved"
        );
        t.replace(
            "batch: { put_records: 500, get_records: 10000, write_items: 25 }",
            "batch: { put_records: 50, get_records: 50, write_items: 25 }",
        )
    })
    .await;
    let want = support::synthetic_plan(FIRST_ID, TWEETS);
    let dir = d.copy.dir.path().to_path_buf();
    // One proxy a process, so each process's retries can be set against the faults it met.
    let producer_proxy = FaultProxy::start(66, 0.05, &dir, &[]);
    let consumer_proxy = FaultProxy::start(20261129, 0.05, &dir, &[]);

    let (produced, _) = run_ok(
        produce_synthetic(&mut producer_proxy.streamstack(), &d.file, TWEETS, FIRST_ID),
        "produce",
    );
    let (consumed, consumer_log) = consumer_proxy.consume(&d.file);
    let producer_faults = producer_proxy.stop();
    let consumer_faults = consumer_proxy.stop();
    fault_summary("producer", &producer_faults);
    fault_summary("consumer", &consumer_faults);
    eprintln!("producer: {produced}");
    eprintln!("consumer: {consumed}");
    // What the consumer said about the faults it met (not its progress lines).
    for line in consumer_log
        .lines()
        .filter(|l| !l.contains("\"message\":\"progress\""))
    {
        eprintln!("  {line}");
    }

    // Nothing lost, nothing twice.
    let p = &produced["producer"];
    assert_eq!((count(&p["sent"]), count(&p["failed"])), (TWEETS, 0), "{p}");
    assert_stored_exactly(&d, &want).await;
    assert_eq!(count(&consumed["metrics"]["dead_letters"]), 0);

    // The faults happened: about 5% of the consumer's thousands of calls
    // (the producer makes a few dozen), every kind, on the calls that carry
    // the data.
    let share = count(&consumer_faults["total_faults"]) as f64
        / count(&consumer_faults["total_calls"]) as f64;
    assert!((0.035..0.065).contains(&share), "fault share {share}");
    // (No partial kind: the consumer's writes are single items and
    // transactions, which fail whole; the producer's PutRecords meet it.)
    let kinds = &consumer_faults["faults_by_kind"];
    for kind in ["throttle", "error", "lost-reply", "slow", "reset"] {
        assert!(
            count(&kinds[kind]) > 0,
            "no {kind} fault was injected: {kinds}"
        );
    }
    let faulted = |stats: &Value, call: &str| {
        stats["faults"][call]
            .as_object()
            .map_or(0, |k| k.values().map(count).sum::<u64>())
    };
    assert!(faulted(&producer_faults, "kinesis.PutRecords") > 0);
    // Item writes (PutItem) and commits (the counts and the checkpoint,
    // one TransactWriteItems) met faults too, and lost or doubled nothing.
    // The proxy seeds each call's n-th request on its own, so these seeds
    // give each of them a fault on the same request every run: the 16th
    // PutRecords, the 14th GetRecords, the 22nd PutItem, the 23rd of the
    // 60-odd TransactWriteItems.
    for call in [
        "kinesis.GetRecords",
        "dynamodb.PutItem",
        "dynamodb.TransactWriteItems",
    ] {
        assert!(
            faulted(&consumer_faults, call) > 0,
            "no fault on {call}: {consumer_faults}"
        );
    }

    // Retries are counted, and account for every fault.
    for (who, run, stats) in [
        ("producer", &produced, &producer_faults),
        ("consumer", &consumed, &consumer_faults),
    ] {
        let calls = &run["aws_calls"];
        // Every attempt the process made reached the proxy, and only those.
        assert_eq!(
            count(&calls["attempts"]),
            count(&stats["total_calls"]),
            "{who}: {calls} vs {stats}"
        );
        // Each failed attempt was retried by the SDK, unless it was the
        // third and last attempt of its call (then the processor's own loop
        // retried the call): at most one failed attempt in three goes
        // without an SDK retry. An attempt can also time out with no fault
        // injected, when the emulator is slow on a loaded machine: that
        // makes more retries, not fewer.
        let failed_attempts =
            count(&stats["total_faults"]) - count(&stats["faults_by_kind"]["partial"]);
        let retried = count(&calls["sdk_retries"]);
        assert!(
            failed_attempts.saturating_sub(retried) * 3 <= failed_attempts,
            "{who}: {retried} SDK retries for {failed_attempts} failed attempts"
        );
    }
    let partial = |stats: &Value, call: &str| count(&stats["faults"][call]["partial"]);
    // ...and each partly failed PutRecords had its failed entries (one or more) sent again.
    assert!(count(&p["retried"]) >= partial(&producer_faults, "kinesis.PutRecords"));
    assert!(
        !consumer_log.contains("panicked"),
        "the consumer panicked:\n{consumer_log}"
    );

    support::down_deleting_data(&d.file);
}

/// Kinesis answers ExpiredIteratorException for an iterator used more than
/// five minutes after it was made; the reader then starts again from its
/// checkpoint. A run of counts open at that moment (its records stored, not
/// committed) is committed first: read again into the same run, its records
/// would be counted twice.
#[tokio::test(flavor = "multi_thread")]
async fn expired_iterators_restart_from_the_checkpoint_and_count_nothing_twice() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const TWEETS: u64 = 2_000;
    const FIRST_ID: u64 = 8_000_000;
    // Pages of 50 records: a run (100 records or 1 s) is open across pages.
    let d = deployed(|t| {
        t.replace(
            "batch: { put_records: 500, get_records: 10000, write_items: 25 }",
            "batch: { put_records: 500, get_records: 50, write_items: 25 }",
        )
    })
    .await;
    let want = support::synthetic_plan(FIRST_ID, TWEETS);
    run_ok(
        produce_synthetic(&mut streamstack_std(), &d.file, TWEETS, FIRST_ID),
        "produce",
    );
    let dir = d.copy.dir.path().to_path_buf();
    let proxy = FaultProxy::start(
        15,
        0.2,
        &dir,
        &["--kinds", "expired", "--calls", "kinesis.GetRecords"],
    );
    proxy.consume(&d.file);
    let faults = proxy.stop();
    let expired = count(&faults["faults"]["kinesis.GetRecords"]["expired"]);
    assert!(expired >= 5, "{expired} expired iterators: {faults}");
    assert_stored_exactly(&d, &want).await;
    support::down_deleting_data(&d.file);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_killed_at_random_moments_and_restarted_stores_each_tweet_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const TWEETS: u64 = 4_000;
    const FIRST_ID: u64 = 9_000_000;
    const KILLS: usize = 5;
    let d = deployed(|t| t).await;
    let want = support::synthetic_plan(FIRST_ID, TWEETS);
    let tweets_table = format!("{}-tweets", d.stack);

    // Tweets keep arriving (2,000 a second) while the consumer dies and comes back.
    let mut producer = streamstack_std()
        .args(["produce", &d.file, "-e", "local", "--synthetic"])
        .args([
            "--count",
            &TWEETS.to_string(),
            "--first-id",
            &FIRST_ID.to_string(),
        ])
        .args(["--rate", "2000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let consumer = || {
        streamstack_std()
            .args(["consume", &d.file, "-e", "local", "--no-metrics"])
            .args(["--lease-seconds", "2", "--lease-interval-ms", "300"])
            .args(["--idle-poll-ms", "200"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut rng = fastrand::Rng::with_seed(20261128);
    let mut stored_at_kill = Vec::new();
    for _ in 0..KILLS {
        let mut c = consumer();
        // Somewhere in a lease takeover (the last one's leases expire
        // after 2 s), a read, a store or a commit.
        tokio::time::sleep(Duration::from_millis(rng.u64(4_000..8_000))).await;
        c.kill().unwrap(); // SIGKILL: no handover, no last checkpoint
        c.wait().unwrap();
        stored_at_kill.push(scan_all(&d.aws, &tweets_table).await.len());
    }
    assert!(producer.wait().unwrap().success());
    eprintln!("tweets stored when each consumer was killed: {stored_at_kill:?}");
    // The kills fell while there was work: progress was made and was not complete.
    assert!(
        stored_at_kill.windows(2).any(|w| w[1] > w[0]),
        "{stored_at_kill:?}"
    );
    assert!(stored_at_kill[0] < TWEETS as usize, "{stored_at_kill:?}");

    // A last consumer runs until the stream is drained.
    let (last, _) = run_ok(
        streamstack_std()
            .args([
                "--output",
                "json",
                "consume",
                &d.file,
                "-e",
                "local",
                "--no-metrics",
            ])
            .args(["--exit-when-idle", "3", "--lease-seconds", "2"])
            .args(["--lease-interval-ms", "300", "--idle-poll-ms", "200"]),
        "the last consume",
    );
    eprintln!("the last consumer: {}", last["metrics"]);
    assert_stored_exactly(&d, &want).await;
    // The live analysis counts each tweet once, restarts notwithstanding.
    assert_eq!(support::top_all(&d.file), support::expected_top(&want));

    support::down_deleting_data(&d.file);
}

/// Synthetic tweets through a shard split in the middle, then the same
/// tweets again (a replay) with new ones: every aggregate counts each tweet
/// once, in parent and child shards alike.
#[tokio::test(flavor = "multi_thread")]
async fn counts_stay_exact_through_a_split_and_a_replay() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const FIRST_ID: u64 = 11_000_000;
    let d = deployed(|t| t).await;
    let produce = |count: u64| {
        run_ok(
            produce_synthetic(&mut streamstack_std(), &d.file, count, FIRST_ID),
            "produce",
        );
    };
    produce(1_500);
    support::consume_until_idle(&d.file);
    let before = support::synthetic_plan(FIRST_ID, 1_500);
    assert_eq!(
        support::top_all_by(&d.file, "lang"),
        support::expected_top_of(&before, 1)
    );

    // Split shard 0: its records stay in it, new ones go to its children.
    support::split_first_shard(&d.aws, &format!("{}-stream", d.stack)).await;
    // The first 1,500 again (now in the children), and 1,000 new ones.
    produce(2_500);
    support::consume_until_idle(&d.file);
    let want = support::synthetic_plan(FIRST_ID, 2_500);
    assert_stored_exactly(&d, &want).await;
    let leases = scan_all(&d.aws, &format!("{}-leases", d.stack)).await;
    assert_eq!(
        leases.len(),
        4,
        "the parent, its two children, the other shard"
    );
}

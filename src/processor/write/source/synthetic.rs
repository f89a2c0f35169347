//! Generated tweets at a target rate, for load: X API v2 stream messages
//! with realistic text, hashtags (a skewed popularity, as real ones have),
//! mentions, links, languages, metrics and references. Deterministic for a
//! seed, so a load test can be repeated and its results checked.

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::processor::Record;

const HASHTAGS: [&str; 12] = [
    "rustlang",
    "dataengineering",
    "aws",
    "kinesis",
    "dynamodb",
    "streaming",
    "bigdata",
    "opensource",
    "python",
    "analytics",
    "cloud",
    "devops",
];
const LANGS: [&str; 6] = ["en", "en", "en", "es", "de", "ja"];
const WORDS: [&str; 16] = [
    "pipeline",
    "shipped",
    "today",
    "latency",
    "throughput",
    "records",
    "shard",
    "batch",
    "checkpoint",
    "lease",
    "table",
    "stream",
    "query",
    "archive",
    "alarm",
    "dashboard",
];

#[derive(Debug, Clone)]
pub struct SyntheticConfig {
    /// Tweets a second; None: as fast as the producer takes them.
    pub rate_per_s: Option<u32>,
    /// Stop after this many tweets (None: until cancelled).
    pub count: Option<u64>,
    pub seed: u64,
    /// First tweet id; ids then count up, so every tweet is distinct.
    pub first_id: u64,
}

/// The `n`th generated stream message (pure: the same seed and `n` give the same tweet).
pub fn tweet(seed: u64, first_id: u64, n: u64) -> Record {
    let mut rng = fastrand::Rng::with_seed(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let id = (first_id + n).to_string();
    let author = rng.u64(1..50_000).to_string();
    // Popularity falls off with rank: the square of a uniform pick skews to the front.
    let pick = |rng: &mut fastrand::Rng| {
        let x = rng.f64();
        HASHTAGS[((x * x) * HASHTAGS.len() as f64) as usize]
    };
    let tags: Vec<&str> = (0..rng.usize(0..4)).map(|_| pick(&mut rng)).collect();
    let words: Vec<&str> = (0..rng.usize(5..20))
        .map(|_| WORDS[rng.usize(..WORDS.len())])
        .collect();
    let mention = format!("user{}", rng.u32(1..5_000));
    let mut text = format!("@{mention} {}", words.join(" "));
    let mut hashtags = Vec::new();
    for tag in &tags {
        let start = text.chars().count() + 1;
        text.push_str(&format!(" #{tag}"));
        hashtags.push(json!({ "start": start, "end": start + 1 + tag.len(), "tag": tag }));
    }
    let created = time::OffsetDateTime::from_unix_timestamp(1_700_000_000 + (n / 50) as i64)
        .expect("in range")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats");
    let mut data = json!({
        "id": id,
        "text": text,
        "author_id": author,
        "created_at": created,
        "lang": LANGS[rng.usize(..LANGS.len())],
        "entities": {
            "hashtags": hashtags,
            "mentions": [{ "start": 0, "end": mention.len() + 1, "username": mention }],
        },
        "public_metrics": {
            "retweet_count": rng.u32(0..100), "reply_count": rng.u32(0..20),
            "like_count": rng.u32(0..500), "quote_count": rng.u32(0..10),
        },
    });
    if rng.u8(0..10) == 0 {
        data["referenced_tweets"] =
            json!([{ "type": "quoted", "id": rng.u64(1..first_id.max(2)).to_string() }]);
    }
    let message = json!({
        "data": data,
        "includes": { "users": [{ "id": author, "username": format!("author{author}"), "name": "Synthetic" }] },
        "matching_rules": [{ "id": "1", "tag": "synthetic" }],
    });
    Record {
        partition_key: id,
        data: serde_json::to_vec(&message).expect("JSON serializes"),
    }
}

/// Sends generated tweets; returns how many.
pub async fn run(
    config: &SyntheticConfig,
    out: mpsc::Sender<Record>,
    cancel: CancellationToken,
) -> u64 {
    let started = tokio::time::Instant::now();
    let mut n = 0;
    while config.count.is_none_or(|count| n < count) {
        if let Some(rate) = config.rate_per_s {
            let due = started + Duration::from_secs_f64(n as f64 / f64::from(rate));
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = cancel.cancelled() => return n,
            }
        }
        tokio::select! {
            r = out.send(tweet(config.seed, config.first_id, n)) => if r.is_err() { return n },
            _ = cancel.cancelled() => return n,
        }
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tweets_are_distinct_valid_and_repeatable() {
        let mut ids = std::collections::HashSet::new();
        let mut tagged = 0;
        for n in 0..500 {
            let r = tweet(7, 1_000_000, n);
            assert_eq!(r.data, tweet(7, 1_000_000, n).data, "same seed, same tweet");
            let out = crate::processor::read::transform::transform(&r.data).expect("a tweet");
            let t = &out.tweets[0];
            assert!(ids.insert(t.id.clone()));
            assert_eq!(t.rule_tags, ["synthetic"]);
            assert!(t.author_username.is_some() && t.created_at.is_some());
            tagged += usize::from(!t.hashtags.is_empty());
        }
        assert!(
            tagged > 300 && tagged < 500,
            "{tagged} of 500 have hashtags"
        );
    }
}

//! Replays an NDJSON file into the stream: X API v2 response pages
//! (`{data: [...], includes}`), v2 stream messages or bare tweets, and v1.1
//! statuses. A page is split into one stream message a tweet, with its
//! author from `includes.users`, so the stream carries what the filtered
//! stream would: one tweet a record, partitioned by tweet id. A line that is
//! not JSON, or JSON of another shape, is sent as it is: the processor
//! decides what it is (a dead letter), as it would for any producer.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::processor::Record;

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub file: PathBuf,
    /// Records a second; None: as fast as the producer takes them.
    pub rate_per_s: Option<u32>,
    /// Start over at the end of the file (until cancelled or `limit`).
    pub repeat: bool,
    /// Stop after this many records.
    pub limit: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
}

/// The records one line of the file becomes.
pub fn records_of_line(line: &[u8], line_no: u64) -> Vec<Record> {
    let raw = || Record {
        partition_key: format!("line-{line_no}"),
        data: line.to_vec(),
    };
    let Ok(value) = serde_json::from_slice::<Value>(line) else {
        return vec![raw()];
    };
    let Some(tweets) = value.get("data").and_then(Value::as_array) else {
        // A stream message, a bare tweet or a v1.1 status: one record.
        let id = value
            .get("data")
            .and_then(|d| d.get("id"))
            .or_else(|| value.get("id_str"))
            .or_else(|| value.get("id"))
            .and_then(Value::as_str);
        return vec![match id {
            Some(id) => Record {
                partition_key: id.to_string(),
                data: line.to_vec(),
            },
            None => raw(),
        }];
    };
    let users = value
        .pointer("/includes/users")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    tweets
        .iter()
        .map(|tweet| {
            let author = tweet.get("author_id").and_then(Value::as_str);
            let includes: Vec<&Value> = users
                .iter()
                .filter(|u| author.is_some() && u.get("id").and_then(Value::as_str) == author)
                .take(1)
                .collect();
            let message = json!({ "data": tweet, "includes": { "users": includes } });
            Record {
                partition_key: tweet
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("line-{line_no}"), str::to_string),
                data: serde_json::to_vec(&message).expect("JSON serializes"),
            }
        })
        .collect()
}

/// Sends the file's records; returns how many were sent.
pub async fn run(
    config: &ReplayConfig,
    out: mpsc::Sender<Record>,
    cancel: CancellationToken,
) -> Result<u64, ReplayError> {
    let started = tokio::time::Instant::now();
    let mut sent: u64 = 0;
    let read_err = |source| ReplayError::Read {
        file: config.file.display().to_string(),
        source,
    };
    loop {
        let file = tokio::fs::File::open(&config.file)
            .await
            .map_err(read_err)?;
        // Bytes, not text: a line that is not UTF-8 is still a record (a dead letter).
        let mut reader = tokio::io::BufReader::new(file);
        let mut line = Vec::new();
        let mut line_no = 0;
        loop {
            line.clear();
            if reader
                .read_until(b'\n', &mut line)
                .await
                .map_err(read_err)?
                == 0
            {
                break;
            }
            line_no += 1;
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            for record in records_of_line(&line, line_no) {
                if config.limit.is_some_and(|limit| sent >= limit) {
                    return Ok(sent);
                }
                if let Some(rate) = config.rate_per_s {
                    // Paced against the start, so pauses do not accumulate drift.
                    let due = started + Duration::from_secs_f64(sent as f64 / f64::from(rate));
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => {}
                        _ = cancel.cancelled() => return Ok(sent),
                    }
                }
                tokio::select! {
                    r = out.send(record) => if r.is_err() { return Ok(sent) },
                    _ = cancel.cancelled() => return Ok(sent),
                }
                sent += 1;
            }
        }
        if !config.repeat || cancel.is_cancelled() {
            return Ok(sent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_becomes_one_message_a_tweet_with_its_author() {
        let page = r#"{"data": [{"id": "1", "author_id": "7", "text": "a"}, {"id": "2", "author_id": "8", "text": "b"}],
                       "includes": {"users": [{"id": "8", "username": "bo"}, {"id": "7", "username": "al"}]}}"#;
        let records = records_of_line(page.as_bytes(), 1);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].partition_key, "1");
        let message: Value = serde_json::from_slice(&records[1].data).unwrap();
        assert_eq!(message["data"]["id"], "2");
        assert_eq!(
            message["includes"]["users"],
            json!([{"id": "8", "username": "bo"}])
        );
        // The processor reads the message as the tweet it is.
        let out = crate::processor::read::transform::transform(&records[0].data).unwrap();
        assert_eq!(out.tweets[0].author_username.as_deref(), Some("al"));
    }

    #[test]
    fn other_lines_go_as_they_are() {
        let r = records_of_line(b"{broken", 4);
        assert_eq!(
            (r[0].partition_key.as_str(), r[0].data.as_slice()),
            ("line-4", b"{broken".as_slice())
        );
        let v1 = r#"{"id_str": "55", "text": "x", "user": {"id_str": "1", "screen_name": "a"}}"#;
        assert_eq!(records_of_line(v1.as_bytes(), 1)[0].partition_key, "55");
        assert_eq!(records_of_line(v1.as_bytes(), 1)[0].data, v1.as_bytes());
        assert_eq!(records_of_line(b"\xff\xfe", 9)[0].data, b"\xff\xfe");
    }
}

//! What waits in a shard behind its checkpoint: the records not yet
//! stored, and how long the oldest has waited. `status` shows it as lag
//! (from the checkpoint, not from the reader's last GetRecords, so a reader
//! stuck on a slice shows), `down` counts it as data not yet read.

use super::lease::{LeaseTable, SHARD_END};
use super::list_shards;
use super::shard::iterator_after;
use crate::aws::{Aws, AwsError, ResultExt};

/// The records of one shard after its checkpoint, as far as was read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Backlog {
    /// Records found after the checkpoint (at most the pages read hold).
    pub records: u64,
    /// When the oldest of them arrived in the stream (Unix milliseconds).
    pub oldest_arrival_ms: Option<i64>,
    /// What Kinesis says of the first record after the checkpoint: how far
    /// it is behind the tip (None when no page was read, or the endpoint
    /// does not say).
    pub millis_behind: Option<i64>,
}

impl Backlog {
    /// How long the oldest unread record has waited, as of `now_ms`, or
    /// what Kinesis says, whichever is larger.
    pub fn lag_ms(&self, now_ms: i64) -> Option<i64> {
        let waited = self.oldest_arrival_ms.map(|at| (now_ms - at).max(0));
        match (waited, self.millis_behind) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Reads what follows `checkpoint` in `shard`: up to `pages` GetRecords
/// of `limit` records, stopping at the first page with records or at the
/// tip. A shard read to its end ([`SHARD_END`]) or gone (past retention)
/// has nothing unread.
pub async fn behind_checkpoint(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    checkpoint: Option<&str>,
    limit: i32,
    pages: usize,
) -> Result<Backlog, AwsError> {
    let mut backlog = Backlog::default();
    if checkpoint == Some(SHARD_END) {
        return Ok(backlog);
    }
    let mut iterator = match iterator_after(kinesis, stream, shard, checkpoint).await {
        Ok(it) => it,
        Err(e) if e.is_not_found() => return Ok(backlog),
        Err(e) => return Err(e),
    };
    // A shard can answer empty pages before its first record; a few pages settle it.
    for _ in 0..pages {
        let Some(it) = iterator.take() else { break };
        let page = kinesis
            .get_records()
            .shard_iterator(it)
            .limit(limit)
            .send()
            .await
            .aws(format!("reading shard {shard} of stream {stream}"))?;
        backlog.millis_behind = page.millis_behind_latest();
        backlog.records += page.records().len() as u64;
        if let Some(first) = page.records().first() {
            backlog.oldest_arrival_ms = first
                .approximate_arrival_timestamp()
                .and_then(|t| t.to_millis().ok());
            break;
        }
        if page.millis_behind_latest().unwrap_or(0) == 0 {
            break;
        }
        iterator = page.next_shard_iterator().map(str::to_string);
    }
    Ok(backlog)
}

/// Records per shard read to tell "unread" (one GetRecords page).
pub const UNREAD_SAMPLE: i32 = 10_000;

/// The records of `stream` after the consumer's checkpoints (every retained
/// record of a shard without one), at most [`UNREAD_SAMPLE`] a shard; None
/// when there is no such stream. `down` counts them as data not yet stored.
pub async fn unread_records(
    aws: &Aws,
    stream: &str,
    lease_table: &str,
) -> Result<Option<u64>, AwsError> {
    let kinesis = aws.kinesis();
    let shards = match list_shards(&kinesis, stream).await {
        Ok(shards) => shards,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut unread = 0;
    for shard in shards {
        let shard_id = shard.shard_id();
        let checkpoint = checkpoint(aws, lease_table, shard_id).await?;
        // A finished shard (SHARD_END) or one gone past retention holds nothing unread.
        unread += behind_checkpoint(
            &kinesis,
            stream,
            shard_id,
            checkpoint.as_deref(),
            UNREAD_SAMPLE,
            5,
        )
        .await?
        .records;
    }
    Ok(Some(unread))
}

async fn checkpoint(aws: &Aws, table: &str, shard_id: &str) -> Result<Option<String>, AwsError> {
    let leases = LeaseTable::new(aws.dynamodb(), table, "down");
    match leases.get(shard_id).await {
        Ok(lease) => Ok(lease.and_then(|l| l.checkpoint)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_longer_of_the_wait_and_what_kinesis_says() {
        let b = Backlog {
            records: 3,
            oldest_arrival_ms: Some(1_000),
            millis_behind: Some(0),
        };
        // The emulator always says 0 behind; the record has waited 60 s.
        assert_eq!(b.lag_ms(61_000), Some(60_000));
        let b = Backlog {
            millis_behind: Some(90_000),
            ..b
        };
        assert_eq!(b.lag_ms(61_000), Some(90_000));
        assert_eq!(Backlog::default().lag_ms(5), None);
    }
}

//! The consumer: a worker that shares the stream's shards with every other
//! worker (on this host or another) through the lease table. Each lease
//! pass it syncs new shards into the table, renews its leases, takes free or
//! expired ones (a parent shard before its children) up to its fair share,
//! steals one from the busiest worker when it has less than its share, and
//! runs one reader a held shard. On shutdown the readers finish their batch
//! and checkpoint, and the leases are released for others to take at once.

pub mod backlog;
pub mod idle;
pub mod lease;
pub mod shard;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use self::lease::{Lease, LeaseTable};
use self::shard::{ReaderContext, ReaderEnd};
use crate::aws::{AwsError, ResultExt};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// A lease whose counter has not moved this long is expired.
    pub lease_duration: Duration,
    /// How often leases are renewed and the table read.
    pub lease_interval: Duration,
    /// Lease passes between shard listings (new shards after a reshard).
    pub shard_sync_every: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(10),
            lease_interval: Duration::from_secs(1),
            shard_sync_every: 10,
        }
    }
}

/// A unique worker id: host, process, and a random part (a restarted
/// process is a new worker; its old leases expire or were released).
pub fn worker_id() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "host".into());
    format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..))
}

/// What a worker decides to take in one pass (pure, see [`choose`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Free or expired leases to take.
    pub take: Vec<Lease>,
    /// A lease of the busiest worker to take over, when nothing is free.
    pub steal: Option<Lease>,
}

/// Whether a shard may be read: not finished, and its parents finished (or
/// gone from the table, their records past retention).
pub fn eligible(lease: &Lease, by_shard: &HashMap<&str, &Lease>) -> bool {
    !lease.finished()
        && lease.parents.iter().all(|p| {
            by_shard
                .get(p.as_str())
                .is_none_or(|parent| parent.finished())
        })
}

/// Decides which leases `me` takes, given the table, which owned leases are
/// expired, and what it holds.
pub fn choose(
    leases: &[Lease],
    expired: &HashSet<String>,
    me: &str,
    held: &HashSet<String>,
) -> Choice {
    let by_shard: HashMap<&str, &Lease> = leases.iter().map(|l| (l.shard_id.as_str(), l)).collect();
    let readable: Vec<&Lease> = leases.iter().filter(|l| eligible(l, &by_shard)).collect();
    // A lease the table says is ours but no reader of ours holds (a renewal
    // whose outcome was lost, a release that failed) is as good as free.
    let alive = |l: &Lease| {
        l.owner.is_some() && l.owner.as_deref() != Some(me) && !expired.contains(&l.shard_id)
    };
    let mut per_owner: BTreeMap<&str, usize> = BTreeMap::new();
    per_owner.insert(me, held.len());
    for l in &readable {
        if alive(l) {
            *per_owner
                .entry(l.owner.as_deref().expect("alive has an owner"))
                .or_default() += 1;
        }
    }
    let workers = per_owner.len();
    let target = readable.len().div_ceil(workers);
    let want = target.saturating_sub(held.len());
    let take: Vec<Lease> = readable
        .iter()
        .filter(|l| !held.contains(&l.shard_id) && !alive(l))
        .take(want)
        .map(|l| (*l).clone())
        .collect();
    let mut steal = None;
    if take.len() < want {
        // The busiest other worker gives one up when it has more than its
        // share and more than one more than us (no ping-pong).
        if let Some((&victim, &count)) = per_owner
            .iter()
            .filter(|(owner, _)| **owner != me)
            .max_by_key(|(owner, count)| (**count, std::cmp::Reverse(**owner)))
            && count > target
            && count > held.len() + 1
        {
            steal = readable
                .iter()
                .find(|l| l.owner.as_deref() == Some(victim) && alive(l))
                .map(|l| (*l).clone());
        }
    }
    Choice { take, steal }
}

struct Held {
    counter: u64,
    cancel: CancellationToken,
    reader: JoinHandle<Result<ReaderEnd, AwsError>>,
}

/// Every shard of the stream, all pages of ListShards (closed shards
/// included, as long as they are within retention).
pub async fn list_shards(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<Vec<aws_sdk_kinesis::types::Shard>, AwsError> {
    let mut token: Option<String> = None;
    let mut shards = Vec::new();
    loop {
        // A NextToken carries the stream; AWS refuses both in one call.
        let request = match &token {
            Some(t) => kinesis.list_shards().next_token(t),
            None => kinesis.list_shards().stream_name(stream),
        };
        let out = request
            .send()
            .await
            .aws(format!("listing the shards of {stream}"))?;
        shards.extend_from_slice(out.shards());
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(shards);
        }
    }
}

/// Lists the stream's shards into the lease table, and removes the leases
/// of shards the stream no longer has: read to their end, or confirmed gone
/// (GetShardIterator says so) once past retention. A lease missing only
/// from a listing that lags (a child shard just created) is kept.
pub async fn sync_shards(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    leases: &LeaseTable,
) -> Result<usize, AwsError> {
    let shards = list_shards(kinesis, stream).await?;
    let mut listed = HashSet::new();
    for shard in &shards {
        let parents: Vec<String> = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
            .into_iter()
            .flatten()
            .map(str::to_string)
            .collect();
        leases.create_if_missing(shard.shard_id(), &parents).await?;
        listed.insert(shard.shard_id().to_string());
    }
    for lease in leases.scan().await? {
        if listed.contains(&lease.shard_id) {
            continue;
        }
        let gone = lease.finished()
            || match shard::iterator_after(kinesis, stream, &lease.shard_id, None).await {
                Ok(_) => false,
                Err(e) if e.is_not_found() => true,
                Err(e) => return Err(e),
            };
        // Tidying: a lease that cannot go now goes on a later pass, and
        // must not keep a worker from starting.
        if gone && let Err(e) = leases.delete(&lease.shard_id).await {
            warn!(stream, shard = %lease.shard_id, error = %e, "deleting the lease of a shard gone from the stream failed; trying again next listing");
        }
    }
    Ok(shards.len())
}

/// Runs a worker until `cancel`, then hands its shards over. Returns after
/// the readers have stored and checkpointed their last batch and the leases
/// are released. Its events (and its readers') are in a span with the
/// worker id and the stream.
pub async fn run(
    ctx: Arc<ReaderContext>,
    config: WorkerConfig,
    cancel: CancellationToken,
) -> Result<(), AwsError> {
    let span = info_span!("worker", worker = %ctx.leases.worker(), stream = %ctx.stream);
    work(ctx, config, cancel).instrument(span).await
}

async fn work(
    ctx: Arc<ReaderContext>,
    config: WorkerConfig,
    cancel: CancellationToken,
) -> Result<(), AwsError> {
    let table = ctx.leases.clone();
    let me = table.worker().to_string();
    let mut held: HashMap<String, Held> = HashMap::new();
    // Counter of every owned lease and when it was first seen at that value.
    let mut seen: HashMap<String, (u64, Instant)> = HashMap::new();
    let mut pass: u32 = 0;
    // Nothing is known to be read until the first pass completes.
    ctx.settled.publish(None);
    let result = loop {
        if pass.is_multiple_of(config.shard_sync_every.max(1))
            && let Err(e) = sync_shards(&ctx.kinesis, &ctx.stream, &table).await
        {
            if pass == 0 {
                break Err(e);
            }
            warn!(error = %e, "listing the shards failed; trying again next pass");
        }
        pass = pass.wrapping_add(1);
        if let Err(e) = lease_pass(&ctx, &config, &table, &me, &mut held, &mut seen, &cancel).await
        {
            // What is read and what is not is unknown until a pass completes.
            ctx.settled.publish(None);
            warn!(error = %e, "lease pass failed; trying again next pass");
        }
        tokio::select! {
            _ = tokio::time::sleep(config.lease_interval) => {}
            _ = cancel.cancelled() => break Ok(()),
        }
    };
    // Graceful handover: readers finish their batch and checkpoint, then the
    // leases are released so others take them at once.
    for h in held.values() {
        h.cancel.cancel();
    }
    for (shard, h) in held {
        match h.reader.await {
            Ok(Ok(ReaderEnd::Lost)) => {}
            Ok(Ok(_)) => {
                let _ = table.release(&shard).await?;
            }
            Ok(Err(e)) => {
                error!(shard = %shard, error = %e, "shard reader failed");
                let _ = table.release(&shard).await?;
            }
            Err(e) => error!(shard = %shard, error = %e, "shard reader task failed"),
        }
    }
    result
}

async fn lease_pass(
    ctx: &Arc<ReaderContext>,
    config: &WorkerConfig,
    table: &LeaseTable,
    me: &str,
    held: &mut HashMap<String, Held>,
    seen: &mut HashMap<String, (u64, Instant)>,
    cancel: &CancellationToken,
) -> Result<(), AwsError> {
    // Readers that ended: a finished shard is released (its children wait for it).
    let ended: Vec<String> = held
        .iter()
        .filter(|(_, h)| h.reader.is_finished())
        .map(|(s, _)| s.clone())
        .collect();
    for shard in ended {
        let h = held.remove(&shard).expect("listed");
        match h.reader.await {
            Ok(Ok(ReaderEnd::ShardEnd)) => {
                info!(shard = %shard, "shard read to its end");
                table.release(&shard).await?;
            }
            Ok(Ok(ReaderEnd::Lost)) => {
                info!(shard = %shard, "shard taken over by another worker")
            }
            Ok(Ok(ReaderEnd::Stopped)) => {
                table.release(&shard).await?;
            }
            Ok(Err(e)) => {
                error!(shard = %shard, error = %e, "shard reader failed; releasing the shard");
                table.release(&shard).await?;
            }
            Err(e) => error!(shard = %shard, error = %e, "shard reader task failed"),
        }
    }
    for (shard, h) in held.iter_mut() {
        match table.renew(shard, h.counter).await? {
            Some(counter) => h.counter = counter,
            None => h.cancel.cancel(),
        }
    }
    held.retain(|shard, h| {
        let lost = h.cancel.is_cancelled() && !cancel.is_cancelled();
        if lost {
            warn!(shard = %shard, "lost the lease of the shard");
        }
        !lost
    });
    if cancel.is_cancelled() {
        return Ok(());
    }
    let leases = table.scan().await?;
    let now = Instant::now();
    let mut expired = HashSet::new();
    for l in &leases {
        if l.owner.is_none() || l.owner.as_deref() == Some(me) {
            seen.remove(&l.shard_id);
            continue;
        }
        let entry = seen.entry(l.shard_id.clone()).or_insert((l.counter, now));
        if entry.0 != l.counter {
            *entry = (l.counter, now);
        } else if now.duration_since(entry.1) >= config.lease_duration {
            expired.insert(l.shard_id.clone());
        }
    }
    let holding: HashSet<String> = held.keys().cloned().collect();
    let choice = choose(&leases, &expired, me, &holding);
    for lease in choice.take.iter().chain(choice.steal.iter()) {
        let Some(counter) = table.take(lease).await? else {
            continue;
        };
        if let Some(owner) = &lease.owner {
            let how = if expired.contains(&lease.shard_id) {
                "expired"
            } else {
                "busiest"
            };
            info!(shard = %lease.shard_id, from = how, owner = %owner, "took shard over");
        }
        // The checkpoint as of now: the previous owner may have moved it since the scan.
        let checkpoint = table.get(&lease.shard_id).await?.and_then(|l| l.checkpoint);
        let reader_cancel = CancellationToken::new();
        // The reader's events carry its shard and stream (and, as a child of
        // the worker's span, the worker).
        let span = info_span!("shard", shard = %lease.shard_id, stream = %ctx.stream);
        let reader = tokio::spawn(
            shard::read(
                ctx.clone(),
                lease.shard_id.clone(),
                checkpoint,
                reader_cancel.clone(),
            )
            .instrument(span),
        );
        held.insert(
            lease.shard_id.clone(),
            Held {
                counter,
                cancel: reader_cancel,
                reader,
            },
        );
    }
    let by_shard: HashMap<&str, &Lease> = leases.iter().map(|l| (l.shard_id.as_str(), l)).collect();
    let unsettled = leases
        .iter()
        .filter(|l| eligible(l, &by_shard))
        .filter(|l| {
            let read_by_another =
                l.owner.as_deref().is_some_and(|o| o != me) && !expired.contains(&l.shard_id);
            let read_to_tip_by_us =
                held.contains_key(&l.shard_id) && ctx.settled.is_at_tip(&l.shard_id);
            !(read_by_another || read_to_tip_by_us)
        })
        .count();
    ctx.settled.publish(Some(unsettled));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(shard: &str, owner: Option<&str>) -> Lease {
        Lease {
            shard_id: shard.into(),
            owner: owner.map(str::to_string),
            counter: 1,
            checkpoint: None,
            parents: vec![],
            checkpointed_at: None,
            stalled_since: None,
            last_error: None,
        }
    }

    fn ids(v: &[Lease]) -> Vec<&str> {
        v.iter().map(|l| l.shard_id.as_str()).collect()
    }

    #[test]
    fn a_lone_worker_takes_every_free_shard() {
        let leases = [
            lease("a", None),
            lease("b", None),
            lease("c", None),
            lease("d", None),
        ];
        let c = choose(&leases, &HashSet::new(), "me", &HashSet::new());
        assert_eq!(ids(&c.take), ["a", "b", "c", "d"]);
        assert_eq!(c.steal, None);
    }

    #[test]
    fn two_workers_split_the_shards_and_the_newcomer_steals_one_at_a_time() {
        let leases = [
            lease("a", Some("w1")),
            lease("b", Some("w1")),
            lease("c", Some("w1")),
            lease("d", Some("w1")),
        ];
        let c = choose(&leases, &HashSet::new(), "me", &HashSet::new());
        assert!(c.take.is_empty());
        assert_eq!(c.steal.map(|l| l.shard_id), Some("a".into()));
        // Once balanced (2 and 2), nobody steals.
        let leases = [
            lease("a", Some("me")),
            lease("b", Some("me")),
            lease("c", Some("w1")),
            lease("d", Some("w1")),
        ];
        let held = HashSet::from(["a".to_string(), "b".to_string()]);
        assert_eq!(
            choose(&leases, &HashSet::new(), "me", &held),
            Choice {
                take: vec![],
                steal: None
            }
        );
    }

    #[test]
    fn expired_leases_are_taken_like_free_ones() {
        let leases = [lease("a", Some("dead")), lease("b", Some("dead"))];
        let expired = HashSet::from(["a".to_string(), "b".to_string()]);
        let c = choose(&leases, &expired, "me", &HashSet::new());
        assert_eq!(ids(&c.take), ["a", "b"]);
    }

    #[test]
    fn children_wait_for_their_parents_to_finish() {
        let mut parent = lease("p", None);
        let mut child = lease("c", None);
        child.parents = vec!["p".into()];
        let c = choose(
            &[parent.clone(), child.clone()],
            &HashSet::new(),
            "me",
            &HashSet::new(),
        );
        assert_eq!(ids(&c.take), ["p"]);
        parent.checkpoint = Some(lease::SHARD_END.into());
        let c = choose(
            &[parent, child.clone()],
            &HashSet::new(),
            "me",
            &HashSet::new(),
        );
        assert_eq!(ids(&c.take), ["c"]);
        // A parent gone from the table (past retention) does not block.
        let c = choose(&[child], &HashSet::new(), "me", &HashSet::new());
        assert_eq!(ids(&c.take), ["c"]);
    }

    #[test]
    fn a_lease_owned_by_me_but_not_held_is_taken_back() {
        // A renewal applied upstream whose reply was lost leaves the table
        // naming this worker while it holds no reader for the shard.
        let leases = [lease("a", Some("me")), lease("b", Some("me"))];
        let held = HashSet::from(["b".to_string()]);
        let c = choose(&leases, &HashSet::new(), "me", &held);
        assert_eq!(ids(&c.take), ["a"]);
        assert_eq!(c.steal, None);
    }

    #[test]
    fn a_worker_takes_no_more_than_its_share() {
        let leases = [
            lease("a", None),
            lease("b", None),
            lease("c", Some("w1")),
            lease("d", Some("w2")),
        ];
        // Three workers, four shards: a share is two.
        let c = choose(&leases, &HashSet::new(), "me", &HashSet::new());
        assert_eq!(ids(&c.take), ["a", "b"]);
        let held = HashSet::from(["x".to_string(), "y".to_string()]);
        let c = choose(&leases, &HashSet::new(), "me", &held);
        assert!(c.take.is_empty() && c.steal.is_none());
    }
}

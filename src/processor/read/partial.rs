//! The live aggregates as partial counts, committed with the checkpoint.
//! Pure: the shard reader passes in which occurrence of each key counts
//! (decided when the items were written, see [`super::sink`]).
//!
//! A slice of records is cut into *runs*; a run's counts become a few
//! items, one per (aggregate, window) touched, holding `value -> count`:
//!
//! - partition key `{aggregate}#{window start}#{bucket}`, the bucket being
//!   the shard's number modulo [`BUCKETS`]: a key takes the writes of the
//!   shards of one bucket, a write per slice at most, never one per record;
//! - sort key `{shard}#{run's first sequence number}#{part}`: a run read
//!   again (after a crash, or by a new owner) starts after the same
//!   checkpoint, so it writes the same keys, and overwrites.
//!
//! The items go in one TransactWriteItems with the checkpoint's move to the
//! run's last record, on condition that the lease is still this worker's
//! at the run's first checkpoint ([`super::consumer::lease::LeaseTable::commit`]).
//! Counts exist for exactly the records the checkpoint has passed, each
//! record in exactly one run. A record whose counts alone pass a
//! transaction's limits starts a run of its own and is committed in
//! several transactions, the checkpoint moving in the last: a crash
//! between them leaves items that its next reading overwrites, key for key.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use super::batch::{BatchPlan, InRecord, expiry};
use super::item::{Item, item_size, write_units};
use super::program::Program;
use crate::names::attribute::{AGGREGATES_PK, AGGREGATES_SK, AGGREGATES_TTL};

/// Partition-key buckets an aggregate's window is spread over. A reader
/// queries them all (`top` makes BUCKETS Queries a window); writers share
/// one only when a stream has more than BUCKETS shards.
pub const BUCKETS: u64 = 8;

/// The attribute of a partial item that holds `value -> count`.
pub const COUNTS: &str = "counts";

/// Items a transaction may hold besides the lease (DynamoDB: 100 actions).
pub const MAX_TRANSACTION_ITEMS: usize = 99;

/// Bytes of counts a transaction carries (DynamoDB: 4 MB a transaction),
/// with room for keys and attribute names.
pub const MAX_TRANSACTION_BYTES: usize = 3_000_000;

/// Bytes of counts one item holds (DynamoDB: 400 KB an item).
pub const MAX_PART_BYTES: usize = 300_000;

/// One transaction: partial items and, for the last of a run, the
/// checkpoint it moves to.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    pub puts: Vec<Item>,
    /// The sequence number the checkpoint moves to; None for a transaction
    /// that only adds counts (all but the last of one record's).
    pub checkpoint: Option<String>,
}

/// (aggregate index, window start) -> value -> count.
type Tally = BTreeMap<(usize, String), BTreeMap<String, u64>>;

/// The open run of a shard: counts since the checkpoint, not committed yet.
#[derive(Debug)]
struct OpenRun {
    first: String,
    last: String,
    tally: Tally,
    bytes: usize,
    records: usize,
}

/// A shard's runs, built slice after slice. A run may span several slices:
/// the reader commits it when it is full, when it has been open for a
/// while, or before it stops, so that a slow stream (small slices) does not
/// pay a transaction per slice.
#[derive(Debug)]
pub struct Runs {
    shard: String,
    open: Option<OpenRun>,
}

impl Runs {
    pub fn new(shard: &str) -> Self {
        Self {
            shard: shard.to_string(),
            open: None,
        }
    }

    /// Records in the open run (0 when none is open).
    pub fn open_records(&self) -> usize {
        self.open.as_ref().map_or(0, |r| r.records)
    }

    /// Adds a slice's counts, given which position counts each key
    /// (`counted`: key -> position, from the item writes). Returns the
    /// transactions due now, in order: runs that cannot take more, and a
    /// record whose counts alone pass a transaction's limits. The slice's
    /// last run stays open ([`Runs::close`]).
    pub fn add(
        &mut self,
        records: &[InRecord<'_>],
        plan: &BatchPlan,
        counted: &HashMap<String, String>,
        program: &Program,
        now_s: i64,
    ) -> Vec<Commit> {
        let tallies = record_tallies(plan, counted, records.len());
        let mut out = Vec::new();
        for (record, tally) in records.iter().zip(tallies) {
            let bytes = tally_bytes(&tally);
            let sequence = record.sequence_number;
            if let Some(run) = &mut self.open {
                let new_keys = tally.keys().filter(|k| !run.tally.contains_key(k)).count();
                let fits = run.tally.len() + new_keys + (run.bytes + bytes) / MAX_PART_BYTES
                    <= MAX_TRANSACTION_ITEMS
                    && run.bytes + bytes <= MAX_TRANSACTION_BYTES;
                if fits {
                    merge(&mut run.tally, tally);
                    run.bytes += bytes;
                    run.records += 1;
                    run.last = sequence.to_string();
                    continue;
                }
                out.extend(self.close(program, now_s));
            }
            let alone = tally.len() + bytes / MAX_PART_BYTES;
            if alone <= MAX_TRANSACTION_ITEMS && bytes <= MAX_TRANSACTION_BYTES {
                self.open = Some(OpenRun {
                    first: sequence.to_string(),
                    last: sequence.to_string(),
                    tally,
                    bytes,
                    records: 1,
                });
                continue;
            }
            // Too much for one transaction even alone: its own run, in several.
            let puts = partial_items(&tally, &self.shard, sequence, program, now_s);
            let mut chunks = chunked(puts).into_iter().peekable();
            while let Some(puts) = chunks.next() {
                out.push(Commit {
                    puts,
                    checkpoint: chunks.peek().is_none().then(|| sequence.to_string()),
                });
            }
        }
        out
    }

    /// Closes the open run: the transaction that commits its counts and
    /// moves the checkpoint to its last record (None when no run is open).
    pub fn close(&mut self, program: &Program, now_s: i64) -> Option<Commit> {
        let run = self.open.take()?;
        Some(Commit {
            puts: partial_items(&run.tally, &self.shard, &run.first, program, now_s),
            checkpoint: Some(run.last),
        })
    }
}

/// Each record's counts: the occurrences `counted` names, by record.
fn record_tallies(
    plan: &BatchPlan,
    counted: &HashMap<String, String>,
    records: usize,
) -> Vec<Tally> {
    let mut tallies: Vec<Tally> = vec![Tally::new(); records];
    for (key, occurrences) in &plan.occurrences {
        let Some(position) = counted.get(key) else {
            continue;
        };
        let Some(occurrence) = occurrences.iter().find(|o| &o.position == position) else {
            continue;
        };
        let Some(tally) = tallies.get_mut(occurrence.record) else {
            continue;
        };
        for (aggregate, window, values) in &occurrence.counts {
            let counts = tally.entry((*aggregate, window.clone())).or_default();
            for value in values {
                *counts.entry(value.clone()).or_default() += 1;
            }
        }
    }
    tallies
}

/// The write units committing `plan` would take, its records committed
/// `slice` at a time and each key counted by its first occurrence (what
/// `plan` estimates from sample data): the partial counts (transactional,
/// twice their units) and the checkpoints.
pub fn estimated_units(plan: &BatchPlan, program: &Program, slice: usize) -> u64 {
    let counted: HashMap<String, String> = plan
        .occurrences
        .iter()
        .filter_map(|(key, o)| Some((key.clone(), o.first()?.position.clone())))
        .collect();
    // A real sequence number's length (56 digits) and shard id, for the sort key's size.
    let sequence = "4".repeat(56);
    record_tallies(plan, &counted, plan.records)
        .chunks(slice.max(1))
        .map(|tallies| {
            let mut run = Tally::new();
            for tally in tallies {
                merge(&mut run, tally.clone());
            }
            let puts = partial_items(&run, "shardId-000000000000", &sequence, program, 0);
            let checkpoint = if puts.is_empty() { 1 } else { 2 };
            checkpoint + puts.iter().map(|p| 2 * write_units(p)).sum::<u64>()
        })
        .sum()
}

fn merge(into: &mut Tally, from: Tally) {
    for (key, counts) in from {
        let into = into.entry(key).or_default();
        for (value, n) in counts {
            *into.entry(value).or_default() += n;
        }
    }
}

/// A value's bytes in a counts map (its name, a number, the map's overhead).
fn entry_bytes(value: &str) -> usize {
    value.len() + 8
}

fn tally_bytes(tally: &Tally) -> usize {
    tally
        .values()
        .flat_map(|counts| counts.keys())
        .map(|v| entry_bytes(v))
        .sum()
}

/// Groups items into transactions within DynamoDB's limits.
fn chunked(items: Vec<Item>) -> Vec<Vec<Item>> {
    let mut chunks: Vec<Vec<Item>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let size = item_size(&item);
        match chunks.last_mut() {
            Some(chunk)
                if chunk.len() < MAX_TRANSACTION_ITEMS && bytes + size <= MAX_TRANSACTION_BYTES =>
            {
                bytes += size;
                chunk.push(item);
            }
            _ => {
                bytes = size;
                chunks.push(vec![item]);
            }
        }
    }
    chunks
}

/// The bucket of a shard: its number (`shardId-000000000012` is 12) modulo
/// [`BUCKETS`]; 0 for a shard id without one.
pub fn bucket_of(shard_id: &str) -> u64 {
    shard_id
        .rsplit('-')
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .map_or(0, |n| n % BUCKETS)
}

/// The partition key of one bucket of an aggregate's window.
pub fn partial_pk(aggregate: &str, window: &str, bucket: u64) -> String {
    format!("{aggregate}#{window}#{bucket}")
}

/// The items of a run's counts: one an (aggregate, window), split into
/// parts of at most [`MAX_PART_BYTES`] of counts.
fn partial_items(
    tally: &Tally,
    shard: &str,
    first_sequence: &str,
    program: &Program,
    now_s: i64,
) -> Vec<Item> {
    let bucket = bucket_of(shard);
    let expires = expiry(now_s, program.shape.aggregates_ttl_days).to_string();
    let mut items = Vec::new();
    for ((aggregate, window), counts) in tally {
        let Some(aggregate) = program.aggregates.get(*aggregate) else {
            continue;
        };
        let pk = partial_pk(&aggregate.name, window, bucket);
        let mut parts: Vec<HashMap<String, AttributeValue>> = vec![HashMap::new()];
        let mut bytes = 0;
        for (value, n) in counts {
            let size = entry_bytes(value);
            if bytes + size > MAX_PART_BYTES && !parts.last().is_some_and(HashMap::is_empty) {
                parts.push(HashMap::new());
                bytes = 0;
            }
            bytes += size;
            parts
                .last_mut()
                .expect("parts start with one")
                .insert(value.clone(), AttributeValue::N(n.to_string()));
        }
        for (part, counts) in parts.into_iter().enumerate() {
            items.push(Item::from([
                (AGGREGATES_PK.to_string(), AttributeValue::S(pk.clone())),
                (
                    AGGREGATES_SK.to_string(),
                    AttributeValue::S(format!("{shard}#{first_sequence}#{part}")),
                ),
                (COUNTS.to_string(), AttributeValue::M(counts)),
                (
                    AGGREGATES_TTL.to_string(),
                    AttributeValue::N(expires.clone()),
                ),
            ]));
        }
    }
    items
}

/// Adds a partial item's counts to `into` (value -> count).
pub fn add_counts(item: &Item, into: &mut BTreeMap<String, u64>) {
    let Some(Ok(counts)) = item.get(COUNTS).map(AttributeValue::as_m) else {
        return;
    };
    for (value, n) in counts {
        if let Some(n) = n.as_n().ok().and_then(|n| n.parse::<u64>().ok()) {
            *into.entry(value.clone()).or_default() += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::read::batch::{self, pure_counts};

    /// The transactions that commit one slice by itself, in order: the last
    /// one always moves the checkpoint to the slice's last record; a slice that
    /// counts nothing is one commit with no items.
    fn commits(
        records: &[InRecord<'_>],
        plan: &BatchPlan,
        counted: &HashMap<String, String>,
        program: &Program,
        now_s: i64,
    ) -> Vec<Commit> {
        let Some(last) = records.last() else {
            return Vec::new();
        };
        let mut runs = Runs::new(last.shard_id);
        let mut out = runs.add(records, plan, counted, program, now_s);
        out.extend(runs.close(program, now_s));
        out
    }

    /// Synthetic tweets: `n` records, each a tweet with two hashtags out of
    /// 40 and a minute out of 3, some keys repeated.
    fn records(n: usize) -> (Vec<String>, Vec<Vec<u8>>) {
        let seqs = (0..n).map(|i| format!("{:056}", 1000 + i)).collect();
        let data = (0..n)
            .map(|i| {
                let id = i % (n * 9 / 10).max(1); // a tenth are duplicates
                let lang = ["en", "de", "ja"][id % 3];
                serde_json::json!({"data": {
                    "id": id.to_string(), "text": "t", "lang": lang,
                    "created_at": format!("2026-12-03T10:0{}:00Z", id % 3),
                    "entities": {"hashtags": [{"tag": format!("t{}", id % 40)}, {"tag": format!("u{}", id % 7)}]}
                }})
                .to_string()
                .into_bytes()
            })
            .collect();
        (seqs, data)
    }

    fn inputs<'a>(seqs: &'a [String], data: &'a [Vec<u8>]) -> Vec<InRecord<'a>> {
        seqs.iter()
            .zip(data)
            .map(|(seq, data)| InRecord {
                shard_id: "shardId-000000000011",
                sequence_number: seq,
                partition_key: "k",
                data,
                arrival_s: Some(1),
            })
            .collect()
    }

    /// Each key counted by its first occurrence anywhere in `plans`, as the
    /// items would say after the first write of each.
    fn first_positions(plans: &[&BatchPlan]) -> HashMap<String, String> {
        let mut counted = HashMap::new();
        for plan in plans {
            for (key, o) in &plan.occurrences {
                counted
                    .entry(key.clone())
                    .or_insert_with(|| o[0].position.clone());
            }
        }
        counted
    }

    /// The counts of commits, summed: aggregate name -> value -> count.
    fn summed(commits: &[Commit]) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for put in commits.iter().flat_map(|c| &c.puts) {
            let pk = put[AGGREGATES_PK].as_s().unwrap();
            let name = pk.split('#').next().unwrap().to_string();
            add_counts(put, out.entry(name).or_default());
        }
        out
    }

    #[test]
    fn a_slice_writes_each_partition_key_once_and_counts_what_the_items_say() {
        let program = Program::default();
        let (seqs, data) = records(100);
        let records = inputs(&seqs, &data);
        let plan = batch::plan(&records, &program, 5);
        let counted = first_positions(&[&plan]);
        let slice = commits(&records, &plan, &counted, &program, 5);
        // One transaction, moving the checkpoint to the slice's last record.
        assert_eq!(slice.len(), 1);
        assert_eq!(slice[0].checkpoint.as_deref(), Some(seqs[99].as_str()));
        // No partition key gets more than one write in the slice: one item
        // an (aggregate, window), whatever the records and values.
        let pks: Vec<&str> = slice[0]
            .puts
            .iter()
            .map(|p| p[AGGREGATES_PK].as_s().unwrap().as_str())
            .collect();
        let unique: std::collections::BTreeSet<&str> = pks.iter().copied().collect();
        assert_eq!(pks.len(), unique.len(), "{pks:?}");
        assert_eq!(pks.len(), 2 * 3, "2 aggregates x 3 minutes");
        assert!(
            pks.iter().all(|pk| pk.ends_with("#3")),
            "shard 11 is bucket 3"
        );
        // The counts are the pure tally: 90 distinct tweets, each once.
        let sums = summed(&slice);
        assert_eq!(sums["lang"].values().sum::<u64>(), 90);
        assert_eq!(sums["hashtag"].values().sum::<u64>(), 180);
        let pure = pure_counts(&plan);
        assert_eq!(pure[&1].values().flat_map(|v| v.values()).sum::<u64>(), 90);
        // A key whose item names another position (a duplicate seen first
        // elsewhere) is not counted here.
        let mut elsewhere = counted.clone();
        elsewhere.insert("0".into(), "5:999::0".into());
        let sums = summed(&commits(&records, &plan, &elsewhere, &program, 5));
        assert_eq!(sums["lang"].values().sum::<u64>(), 89);
    }

    #[test]
    fn slices_cut_differently_count_the_same() {
        let program = Program::default();
        let (seqs, data) = records(300);
        let all = inputs(&seqs, &data);
        let whole = batch::plan(&all, &program, 5);
        let counted = first_positions(&[&whole]);
        let once = summed(&commits(&all, &whole, &counted, &program, 5));
        for cut in [1, 7, 100, 299] {
            let mut got = Vec::new();
            for slice in all.chunks(cut) {
                let plan = batch::plan(slice, &program, 5);
                got.extend(commits(slice, &plan, &counted, &program, 5));
            }
            assert_eq!(summed(&got), once, "slices of {cut}");
            // Each record's counts are in exactly one committed run: the
            // checkpoints of the runs are the slices' ends.
            let checkpoints: Vec<&str> =
                got.iter().filter_map(|c| c.checkpoint.as_deref()).collect();
            assert_eq!(checkpoints.len(), all.chunks(cut).count());
        }
        assert_eq!(once["lang"].values().sum::<u64>(), 270);
    }

    #[test]
    fn a_run_spans_slices_until_it_is_closed() {
        let program = Program::default();
        let (seqs, data) = records(120);
        let all = inputs(&seqs, &data);
        let plan_of = |slice: &[InRecord<'_>]| batch::plan(slice, &program, 5);
        let counted = first_positions(&[&plan_of(&all)]);
        let once = summed(&commits(&all, &plan_of(&all), &counted, &program, 5));
        // Slices of 30 added to one run: nothing is due until it is closed,
        // and then one commit holds the four slices' counts, keyed by the
        // run's first record, moving the checkpoint to its last.
        let mut runs = Runs::new("shardId-000000000011");
        for slice in all.chunks(30) {
            assert!(
                runs.add(slice, &plan_of(slice), &counted, &program, 5)
                    .is_empty()
            );
        }
        assert_eq!(runs.open_records(), 120);
        let commit = runs.close(&program, 5).expect("an open run");
        assert_eq!(commit.checkpoint.as_deref(), Some(seqs[119].as_str()));
        assert!(
            commit.puts.iter().all(|p| p[AGGREGATES_SK].as_s().unwrap()
                == &format!("shardId-000000000011#{}#0", seqs[0]))
        );
        assert_eq!(summed(std::slice::from_ref(&commit)), once);
        // Fewer partition keys written than one commit a slice would write.
        let per_slice: usize = all
            .chunks(30)
            .flat_map(|slice| commits(slice, &plan_of(slice), &counted, &program, 5))
            .map(|c| c.puts.len())
            .sum();
        assert!(
            commit.puts.len() < per_slice,
            "{} vs {per_slice}",
            commit.puts.len()
        );
        assert_eq!(runs.open_records(), 0);
        assert!(runs.close(&program, 5).is_none());
    }

    #[test]
    fn counts_past_a_transactions_limits_commit_in_several_the_checkpoint_last() {
        // One record of jq events over 250 windows: 250 items of counts,
        // more than a transaction takes.
        let yaml = "name: wide\nregion: us-east-1\ntable: { partition_key: id }\nprocessor:\n  transform: { events: '.[]', key: '.id', time: '.t' }\n  aggregates:\n    - { name: kind, by: '.k', window: 1m }\n";
        let file = crate::spec::parse("w.yaml", yaml.as_bytes()).unwrap();
        let program = Program::new(&file.resolve(None).unwrap().stack).unwrap();
        let events: Vec<_> = (0..250)
            .map(|i| serde_json::json!({"id": format!("e{i}"), "t": i * 60, "k": "x"}))
            .collect();
        let big = serde_json::to_vec(&events).unwrap();
        let small = br#"[{"id": "s", "t": 0, "k": "y"}]"#.to_vec();
        let seqs: Vec<String> = (1..=3).map(|i| i.to_string()).collect();
        let data = [small.clone(), big, small];
        let records: Vec<InRecord<'_>> = seqs
            .iter()
            .zip(&data)
            .map(|(seq, data)| InRecord {
                shard_id: "shardId-000000000000",
                sequence_number: seq,
                partition_key: "k",
                data,
                arrival_s: None,
            })
            .collect();
        let plan = batch::plan(&records, &program, 5);
        let counted = first_positions(&[&plan]);
        // Record 3 repeats record 1's key: not counted again.
        assert_eq!(counted["s"], "0:1::0");
        let commits = commits(&records, &plan, &counted, &program, 5);
        let checkpoints: Vec<Option<&str>> =
            commits.iter().map(|c| c.checkpoint.as_deref()).collect();
        // Record 1 alone; record 2 in three transactions (99 + 99 + 52),
        // the checkpoint moving with the last; record 3 (nothing counted).
        assert_eq!(
            checkpoints,
            [Some("1"), None, None, Some("2"), Some("3")],
            "{:?}",
            commits.iter().map(|c| c.puts.len()).collect::<Vec<_>>()
        );
        assert!(
            commits
                .iter()
                .all(|c| c.puts.len() <= MAX_TRANSACTION_ITEMS)
        );
        assert_eq!(summed(&commits)["kind"]["x"], 250);
        assert_eq!(summed(&commits)["kind"]["y"], 1);
        // Record 2's items are keyed by its own sequence number: read again
        // after a crash between its transactions, they are overwritten.
        assert!(commits[1..4].iter().flat_map(|c| &c.puts).all(|p| {
            p[AGGREGATES_SK]
                .as_s()
                .unwrap()
                .starts_with("shardId-000000000000#2#")
        }));
    }

    #[test]
    fn large_counts_are_split_into_parts() {
        let program = Program::default();
        let mut tally = Tally::new();
        let counts: BTreeMap<String, u64> = (0..5_000).map(|i| (format!("{i:0>100}"), 1)).collect();
        tally.insert((0, "2026-12-03T10:00".into()), counts);
        let items = partial_items(&tally, "shardId-000000000000", "7", &program, 0);
        assert_eq!(
            items.len(),
            2,
            "5,000 values of 108 bytes in parts of 300 KB"
        );
        assert!(items.iter().all(|i| item_size(i) < 400 * 1024));
        let mut total = BTreeMap::new();
        items.iter().for_each(|i| add_counts(i, &mut total));
        assert_eq!(total.len(), 5_000);
        let sks: Vec<&str> = items
            .iter()
            .map(|i| i[AGGREGATES_SK].as_s().unwrap().as_str())
            .collect();
        assert_eq!(
            sks,
            ["shardId-000000000000#7#0", "shardId-000000000000#7#1"]
        );
    }
}

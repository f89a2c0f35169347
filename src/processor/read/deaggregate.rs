//! KPL de-aggregation: one Kinesis record in, the user records it carries out.
//!
//! The Kinesis Producer Library packs several user records into one Kinesis
//! record (the "aggregated record format"):
//!
//! ```text
//! +----+----+----+----+==================+----+ ... +----+
//! | F3 | 89 | 9A | C2 | AggregatedRecord |  MD5 (16 bytes) |
//! +----+----+----+----+==================+----+ ... +----+
//!   magic               protobuf (proto2)   MD5 of the protobuf bytes
//! ```
//!
//! [`deaggregate`] follows the Kinesis Client Library (`AggregatorUtil` in
//! KCL 2.x): a record is *not* an aggregate, and comes back unchanged as the
//! one user record, when it lacks the magic, has nothing between the magic
//! and the digest, fails the MD5 check, or whose protobuf does not decode
//! (a proto2 `required` field missing counts as not decoding, as it does for
//! protobuf-java). User records taken out of an aggregate are numbered by
//! their index in it ([`UserRecord::sub_sequence`]), so a checkpoint can
//! point inside an aggregate: (sequence number, sub-sequence number).
//!
//! # Where this differs from the KCL
//!
//! * A user record whose `partition_key_index` or `explicit_hash_key_index`
//!   points outside its table: the KCL logs an error, keeps the user records
//!   it had taken out before the bad one and silently drops the rest. Here
//!   the whole Kinesis record is passed through instead, as if it were not an
//!   aggregate. Nothing is lost without a trace (the raw bytes reach the
//!   transform, which dead-letters them, so they can be looked at), and the
//!   sub-sequence numbers of a record are all-or-nothing: a checkpoint's
//!   sub-sequence number always points into the same list.
//! * A key table entry that is not UTF-8: protobuf-java lets it through as
//!   replacement characters; prost refuses it, so the record passes through.
//! * An aggregate whose user records' keys, copied out one per user record,
//!   would total more than 4 times the record's size (or 1 MiB when that is
//!   more) passes through as well. The KCL copies them regardless, so one
//!   1 MiB record with a 500 KB key shared by 80,000 empty user records
//!   would take 40 GB; a real KPL aggregate (keys of at most 256 characters)
//!   never comes near the limit.
//! * The KCL also drops an aggregate any of whose user records hashes outside
//!   the shard's hash-key range (a leftover of resharding). That needs the
//!   shard's range, which this pure module does not have; the caller can do
//!   it from [`UserRecord::partition_key`] and
//!   [`UserRecord::explicit_hash_key`].
//!
//! As in the KCL, a valid aggregate that holds no user records yields none.
//!
//! ```
//! use streamstack::processor::read::deaggregate::{aggregate, deaggregate};
//!
//! let record = aggregate(&[("user-1", b"one".as_slice()), ("user-1", b"two".as_slice())]);
//! let users = deaggregate("user-1", &record);
//! assert_eq!(users.len(), 2);
//! assert_eq!(&*users[1].data, b"two");
//! assert_eq!(users[1].sub_sequence, Some(1));
//!
//! let plain = deaggregate("k", b"{\"id\": \"1\"}");
//! assert_eq!(plain.len(), 1);
//! assert_eq!(plain[0].sub_sequence, None);
//! ```

use std::borrow::Cow;
use std::collections::HashMap;

use md5::{Digest, Md5};
use prost::Message;

/// The 4 bytes that open every KPL aggregated record.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Length of the MD5 digest that closes every KPL aggregated record.
const DIGEST_LEN: usize = 16;

/// Each user record gets its own copy of its partition key and explicit hash
/// key; together these copies may total at most this many times the Kinesis
/// record's size, or [`MIN_KEY_BYTES`], whichever is more. Keys of the KPL are
/// at most 256 characters, so a real aggregate stays far below: only a
/// hand-made one (one long key shared by thousands of empty records) reaches it.
const KEY_BYTES_PER_RECORD_BYTE: usize = 4;
const MIN_KEY_BYTES: usize = 1 << 20;

/// One user record: either a whole Kinesis record that was not an aggregate
/// (borrowed, `sub_sequence` is `None`) or one taken out of an aggregate
/// (owned, `sub_sequence` is its index in the aggregate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord<'a> {
    /// The user record's own partition key (the Kinesis record's key when it
    /// was not an aggregate).
    pub partition_key: Cow<'a, str>,
    /// The explicit hash key the producer gave the user record, if any
    /// (decimal, as in PutRecord). Always `None` for a record that was not an
    /// aggregate: GetRecords does not return explicit hash keys.
    pub explicit_hash_key: Option<String>,
    /// The user record's bytes.
    pub data: Cow<'a, [u8]>,
    /// Index of the user record in its aggregate, `None` when the Kinesis
    /// record was not an aggregate.
    pub sub_sequence: Option<u64>,
}

impl UserRecord<'_> {
    /// The same record, owning its key and bytes (to keep it past the
    /// Kinesis record it came from).
    pub fn into_owned(self) -> UserRecord<'static> {
        UserRecord {
            partition_key: Cow::Owned(self.partition_key.into_owned()),
            explicit_hash_key: self.explicit_hash_key,
            data: Cow::Owned(self.data.into_owned()),
            sub_sequence: self.sub_sequence,
        }
    }
}

/// Splits one Kinesis record into its user records. A record that is not a
/// valid KPL aggregate comes back as the one user record, borrowed and
/// unchanged; see the [module docs](self) for what counts as valid.
///
/// Never panics, whatever the bytes.
pub fn deaggregate<'a>(partition_key: &'a str, data: &'a [u8]) -> Vec<UserRecord<'a>> {
    decode_aggregate(data).unwrap_or_else(|| {
        vec![UserRecord {
            partition_key: Cow::Borrowed(partition_key),
            explicit_hash_key: None,
            data: Cow::Borrowed(data),
            sub_sequence: None,
        }]
    })
}

/// Builds one KPL aggregated record (magic, protobuf, MD5) from `(partition
/// key, data)` pairs, in order; repeated partition keys share one table
/// entry. The result is byte-for-byte what the KPL writes for the same user
/// records without explicit hash keys.
///
/// The caller chooses what to put it under and keeps it within Kinesis's
/// limits (1 MiB for data plus partition key). The KPL puts an aggregate
/// under its first user record's partition key and only aggregates user
/// records bound for the same shard: a KCL consumer drops an aggregate any of
/// whose user records hashes outside the shard it was read from. An empty
/// slice gives the magic and the digest of an empty protobuf, which
/// [`deaggregate`] (like the KCL) does not take for an aggregate: it comes
/// back as one user record of those 20 bytes, so do not send one.
pub fn aggregate<K: AsRef<str>, D: AsRef<[u8]>>(records: &[(K, D)]) -> Vec<u8> {
    let mut key_index: HashMap<&str, u64> = HashMap::new();
    let mut message = AggregatedRecord::default();
    for (key, data) in records {
        let key = key.as_ref();
        let index = *key_index.entry(key).or_insert_with(|| {
            message.partition_key_table.push(key.to_owned());
            message.partition_key_table.len() as u64 - 1
        });
        message.records.push(Record {
            partition_key_index: Some(index),
            explicit_hash_key_index: None,
            data: Some(data.as_ref().to_vec()),
            tags: Vec::new(),
        });
    }
    let body = message.encode_to_vec();
    let mut out = Vec::with_capacity(KPL_MAGIC.len() + body.len() + DIGEST_LEN);
    out.extend_from_slice(&KPL_MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

/// The user records of a valid aggregate, `None` when `data` is not one.
fn decode_aggregate(data: &[u8]) -> Option<Vec<UserRecord<'static>>> {
    let body = data.strip_prefix(&KPL_MAGIC)?;
    // The KCL wants at least one protobuf byte: magic + digest alone is not an
    // aggregate.
    if body.len() <= DIGEST_LEN {
        return None;
    }
    let (message, digest) = body.split_at(body.len() - DIGEST_LEN);
    if Md5::digest(message).as_slice() != digest {
        return None;
    }
    let AggregatedRecord {
        partition_key_table,
        explicit_hash_key_table,
        records,
    } = AggregatedRecord::decode(message).ok()?;

    // Keys are copied only while within budget, so that the copies stay
    // proportionate to the record (see the module docs).
    let mut key_budget = data
        .len()
        .saturating_mul(KEY_BYTES_PER_RECORD_BYTE)
        .max(MIN_KEY_BYTES);
    let mut lookup = |table: &[String], index: u64| -> Option<String> {
        let key = table.get(usize::try_from(index).ok()?)?;
        key_budget = key_budget.checked_sub(key.len())?;
        Some(key.clone())
    };
    let mut out = Vec::with_capacity(records.len());
    for (sub_sequence, record) in (0u64..).zip(records) {
        // proto2 `required` fields: protobuf-java refuses a message without
        // them, so the KCL treats it as not an aggregate.
        let partition_key = lookup(&partition_key_table, record.partition_key_index?)?;
        let data = record.data?;
        if record.tags.iter().any(|tag| tag.key.is_none()) {
            return None;
        }
        let explicit_hash_key = match record.explicit_hash_key_index {
            Some(index) => Some(lookup(&explicit_hash_key_table, index)?),
            None => None,
        };
        out.push(UserRecord {
            partition_key: Cow::Owned(partition_key),
            explicit_hash_key,
            data: Cow::Owned(data),
            sub_sequence: Some(sub_sequence),
        });
    }
    Some(out)
}

// The KPL's messages (proto2), hand-written for prost's derive. Required
// fields are `optional` here so that a missing one can be told from a zero;
// writing them as `Some` also makes prost always emit them, as proto2 does.

#[derive(Clone, PartialEq, Message)]
struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    records: Vec<Record>,
}

#[derive(Clone, PartialEq, Message)]
struct Record {
    /// proto2 `required`.
    #[prost(uint64, optional, tag = "1")]
    partition_key_index: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    explicit_hash_key_index: Option<u64>,
    /// proto2 `required`.
    #[prost(bytes = "vec", optional, tag = "3")]
    data: Option<Vec<u8>>,
    #[prost(message, repeated, tag = "4")]
    tags: Vec<Tag>,
}

#[derive(Clone, PartialEq, Message)]
struct Tag {
    /// proto2 `required`.
    #[prost(string, optional, tag = "1")]
    key: Option<String>,
    #[prost(string, optional, tag = "2")]
    value: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wraps protobuf bytes as the KPL does (magic, bytes, MD5), whatever they are.
    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = KPL_MAGIC.to_vec();
        out.extend_from_slice(body);
        out.extend_from_slice(&Md5::digest(body));
        out
    }

    fn frame_message(message: &AggregatedRecord) -> Vec<u8> {
        frame(&message.encode_to_vec())
    }

    fn record(pk: u64, data: &[u8]) -> Record {
        Record {
            partition_key_index: Some(pk),
            explicit_hash_key_index: None,
            data: Some(data.to_vec()),
            tags: Vec::new(),
        }
    }

    /// Asserts that `data` came back as the one, unchanged, borrowed record.
    fn assert_passed_through(key: &str, data: &[u8]) {
        let out = deaggregate(key, data);
        assert_eq!(out.len(), 1, "{out:?}");
        let only = &out[0];
        assert!(matches!(only.partition_key, Cow::Borrowed(k) if k == key));
        assert!(matches!(only.data, Cow::Borrowed(d) if d == data));
        assert_eq!(only.explicit_hash_key, None);
        assert_eq!(only.sub_sequence, None);
    }

    /// Standard base64 (with padding), enough for the fixtures below.
    fn base64(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        };
        let symbols: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
        let mut out = Vec::new();
        for chunk in symbols.chunks(4) {
            let mut acc = 0u32;
            for (i, s) in chunk.iter().enumerate() {
                acc |= u32::from(*s) << (18 - 6 * i);
            }
            let bytes = acc.to_be_bytes();
            out.extend_from_slice(&bytes[1..chunk.len()]);
        }
        out
    }

    // Two Kinesis records written by the real KPL (Java SampleKPLProducer),
    // as published in the test data of awslabs/kinesis-aggregation
    // (python/test/test_deagg.py, Apache-2.0), with their expected contents.
    const KPL_NO_EHKS: &str = concat!(
        "84mawgokNzhmZWIxMmEtZGJhMC00NWNhLWE5MWUtYmIxZjJmMTgxOWI0CiRjMmE3NTc4Ny00NjliLTQzMTAtODQwZC1kNDg2ZGNhN2",
        "ViNWUKJDY1MGU5MzYyLTU3MmItNDQyNy1iM2ZjLTEzNTQ5ZDdlNWFlNQokMWQ4ZDk2MDAtMDBiNy00NmYzLWE5ODMtZGU4MzQ3NzU0",
        "MGMwCiRmMmU3MThhMC0zODliLTQ5NGEtYjc5Ni0zMzU1YjA3NTY5Y2MKJDk2NWI4ZGE0LWE2YmQtNDc1NS04MWM5LWU3MTgxYWI3ZG",
        "M5YQokZDY5M2M1ZjAtNTc3Mi00NmM5LThkODYtMDhjNzA1NWJkYjc1CiQ4ZDkyNDc2Yi1lYjg5LTRlODEtOTlmYi1jMmJhNjNhZDZk",
        "OTAaJAgAGiBSRUNPUkQgMTggaWtscnBzdnloeG5lcm9kZmVoZXJ1ChokCAEaIFJFQ09SRCAxOSBsbm1udWR5aHZwdmNncm9rZm16ZG",
        "gKGiQIAhogUkVDT1JEIDIwIHBqcXJjZmJ4YWZ6ZG5kem1iZ2FuZQoaJAgDGiBSRUNPUkQgMjEgYWFmcmV5cm50d3V3eGxpeWdrYmhr",
        "ChokCAQaIFJFQ09SRCAyMiBxc2FhZGhic2dtdnFnZGlmZ3V5b3UKGiQIBRogUkVDT1JEIDIzIHdqb2tvaXd2enpobGZ0bHpocWZqaw",
        "oaJAgGGiBSRUNPUkQgMjQgem9wY2FzY3J0aGJicG5qaXd1aGpiChokCAcaIFJFQ09SRCAyNSB0eGJidm5venJ3c2JveHVvbXFib3EK",
        "vV1rrLdU+Sy2v8xkgZ5YaA==",
    );
    const KPL_NO_EHKS_RECORDS: [(&str, &str); 8] = [
        (
            "78feb12a-dba0-45ca-a91e-bb1f2f1819b4",
            "RECORD 18 iklrpsvyhxnerodfeheru\n",
        ),
        (
            "c2a75787-469b-4310-840d-d486dca7eb5e",
            "RECORD 19 lnmnudyhvpvcgrokfmzdh\n",
        ),
        (
            "650e9362-572b-4427-b3fc-13549d7e5ae5",
            "RECORD 20 pjqrcfbxafzdndzmbgane\n",
        ),
        (
            "1d8d9600-00b7-46f3-a983-de83477540c0",
            "RECORD 21 aafreyrntwuwxliygkbhk\n",
        ),
        (
            "f2e718a0-389b-494a-b796-3355b07569cc",
            "RECORD 22 qsaadhbsgmvqgdifguyou\n",
        ),
        (
            "965b8da4-a6bd-4755-81c9-e7181ab7dc9a",
            "RECORD 23 wjokoiwvzzhlftlzhqfjk\n",
        ),
        (
            "d693c5f0-5772-46c9-8d86-08c7055bdb75",
            "RECORD 24 zopcascrthbbpnjiwuhjb\n",
        ),
        (
            "8d92476b-eb89-4e81-99fb-c2ba63ad6d90",
            "RECORD 25 txbbvnozrwsboxuomqboq\n",
        ),
    ];
    const KPL_WITH_EHKS: &str = concat!(
        "84mawgokZmMwM2RkODgtM2U3OS00NDhhLWIwMWEtN2NmMWJkNDdiNzg0CiRjYWU0MWIxYy1lYTYxLTQzZjItOTBiZS1iODc1NWViZj",
        "g4ZTIKJGQ0OTA2OTBjLWU3NGQtNGRiMi1hM2M4LWQ4ZjJmMTg0ZmQyMwokYzkyNGJjMDktYjg1ZS00N2YxLWIzMmUtMzM2NTIyZWU1",
        "M2M4EiYzODQ4NjQ5NTg2NzUwODM5OTA3ODE1OTcyMzg0NjA1MTgwNzAyMBInMTkzNzg3NjAwMDM3NjgxNzA2OTUyMTQzMzU3MDcxOT",
        "E2MzUyNjA0EicyNjY4ODA0MzY5NjQ5MzI0MjQyNjU0NjY5MTY3MzQwNjg2ODQ0MzkSJzMzOTYwNjYwMDk0Mjk2NzM5MTg1NDYwMzU1",
        "MjQwMjAyMTg0NzI5MhomCAAQABogUkVDT1JEIDIyIHBlZW9iaGN6YnpkbXNrYm91cGd5cQoaJggBEAEaIFJFQ09SRCAyMyB1c3dreG",
        "Z0eHJvZXVzc2N4c2pobm8KGiYIAhACGiBSRUNPUkQgMjQgY2FzZWhkZ2l2ZmF4ZXVzdGx5c3p5ChomCAMQAxogUkVDT1JEIDI1IG52",
        "ZmZ2cG11b2dkb3BqaGFtZXZyawpRwVPQ3go0yp4Y6kvM0q3V",
    );
    const KPL_WITH_EHKS_RECORDS: [(&str, &str, &str); 4] = [
        (
            "fc03dd88-3e79-448a-b01a-7cf1bd47b784",
            "38486495867508399078159723846051807020",
            "RECORD 22 peeobhczbzdmskboupgyq\n",
        ),
        (
            "cae41b1c-ea61-43f2-90be-b8755ebf88e2",
            "193787600037681706952143357071916352604",
            "RECORD 23 uswkxftxroeusscxsjhno\n",
        ),
        (
            "d490690c-e74d-4db2-a3c8-d8f2f184fd23",
            "266880436964932424265466916734068684439",
            "RECORD 24 casehdgivfaxeustlyszy\n",
        ),
        (
            "c924bc09-b85e-47f1-b32e-336522ee53c8",
            "339606600942967391854603552402021847292",
            "RECORD 25 nvffvpmuogdopjhamevrk\n",
        ),
    ];

    #[test]
    fn deaggregate_real_kpl_record() {
        let bytes = base64(KPL_NO_EHKS);
        let out = deaggregate("a", &bytes);
        assert_eq!(out.len(), KPL_NO_EHKS_RECORDS.len());
        for (i, (user, (pk, data))) in out.iter().zip(KPL_NO_EHKS_RECORDS).enumerate() {
            assert_eq!(user.partition_key, pk);
            assert_eq!(user.explicit_hash_key, None);
            assert_eq!(&*user.data, data.as_bytes());
            assert_eq!(user.sub_sequence, Some(i as u64));
        }
    }

    #[test]
    fn deaggregate_real_kpl_record_with_explicit_hash_keys() {
        let bytes = base64(KPL_WITH_EHKS);
        let out = deaggregate("a", &bytes);
        assert_eq!(out.len(), KPL_WITH_EHKS_RECORDS.len());
        for (i, (user, (pk, ehk, data))) in out.iter().zip(KPL_WITH_EHKS_RECORDS).enumerate() {
            assert_eq!(user.partition_key, pk);
            assert_eq!(user.explicit_hash_key.as_deref(), Some(ehk));
            assert_eq!(&*user.data, data.as_bytes());
            assert_eq!(user.sub_sequence, Some(i as u64));
        }
    }

    /// `aggregate` writes exactly what the KPL wrote for the same user records.
    #[test]
    fn aggregate_matches_real_kpl_bytes() {
        let records = KPL_NO_EHKS_RECORDS.map(|(pk, data)| (pk, data.as_bytes()));
        assert_eq!(aggregate(&records), base64(KPL_NO_EHKS));
    }

    #[test]
    fn round_trip_with_distinct_and_shared_keys() {
        let records: Vec<(String, Vec<u8>)> = vec![
            ("alpha".into(), b"first".to_vec()),
            ("beta".into(), b"second".to_vec()),
            ("alpha".into(), b"third".to_vec()),
            ("gamma".into(), Vec::new()),
            ("beta".into(), vec![0, 0xF3, 0x89, 0x9A, 0xC2, 255]),
            (String::new(), b"empty key".to_vec()),
        ];
        let bytes = aggregate(&records);
        assert!(bytes.starts_with(&KPL_MAGIC));

        // Shared keys are stored once.
        let body = &bytes[KPL_MAGIC.len()..bytes.len() - DIGEST_LEN];
        let message = AggregatedRecord::decode(body).unwrap();
        assert_eq!(message.partition_key_table, ["alpha", "beta", "gamma", ""]);

        let out = deaggregate("outer-key", &bytes);
        assert_eq!(out.len(), records.len());
        for (i, (user, (pk, data))) in out.iter().zip(&records).enumerate() {
            assert_eq!(user.partition_key, pk.as_str());
            assert_eq!(&*user.data, data.as_slice());
            assert_eq!(user.explicit_hash_key, None);
            assert_eq!(user.sub_sequence, Some(i as u64));
        }
    }

    #[test]
    fn round_trip_of_a_single_record() {
        let bytes = aggregate(&[("k", b"x")]);
        let out = deaggregate("k", &bytes);
        assert_eq!(out.len(), 1);
        assert_eq!(&*out[0].data, b"x");
        assert_eq!(out[0].sub_sequence, Some(0));
    }

    #[test]
    fn plain_records_pass_through() {
        assert_passed_through("key", br#"{"id": "1", "text": "hello"}"#);
        assert_passed_through("key", b"");
        assert_passed_through("", &[0xF3, 0x89, 0x9A]); // a prefix of the magic
        assert_passed_through("key", &[0xF3, 0x89, 0x9A, 0xC3, 1, 2, 3]); // magic off by one bit
    }

    #[test]
    fn magic_with_nothing_between_it_and_the_digest_passes_through() {
        // An empty protobuf is a valid (empty) message with a valid MD5, but the
        // KCL wants at least one byte of it.
        assert_passed_through("k", &frame(&[]));
        let mut short = KPL_MAGIC.to_vec();
        short.extend_from_slice(&[0; 10]);
        assert_passed_through("k", &short);
    }

    #[test]
    fn wrong_md5_passes_through_unchanged() {
        let mut bytes = aggregate(&[("a", b"one"), ("b", b"two")]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        assert_passed_through("a", &bytes);

        // A payload bit flipped, digest left as it was.
        let mut bytes = aggregate(&[("a", b"one"), ("b", b"two")]);
        bytes[KPL_MAGIC.len() + 3] ^= 0x40;
        assert_passed_through("a", &bytes);
    }

    #[test]
    fn truncated_records_pass_through() {
        let bytes = aggregate(&[("a", b"one"), ("b", b"two")]);
        // Cut anywhere: the digest no longer matches (or there is none).
        for len in 0..bytes.len() {
            assert_passed_through("a", &bytes[..len]);
        }
        // Cut inside the protobuf, but with a correct MD5 of what is left: the
        // protobuf itself does not decode.
        let body = &bytes[KPL_MAGIC.len()..bytes.len() - DIGEST_LEN];
        let mut truncated_protobuf = 0;
        for len in 1..body.len() {
            let framed = frame(&body[..len]);
            if AggregatedRecord::decode(&body[..len]).is_err() {
                truncated_protobuf += 1;
                assert_passed_through("a", &framed);
            } else {
                // Cut on a field boundary: decodes, but may lack required
                // fields; either way no panic, and no half-made records.
                check_shape("a", &framed);
            }
        }
        assert!(truncated_protobuf > 0);
    }

    /// Out-of-range indexes pass the whole record through (see the module
    /// docs for why this differs from the KCL), even when earlier user records
    /// in the aggregate were fine.
    #[test]
    fn out_of_range_indexes_pass_the_whole_record_through() {
        let bad_pk = frame_message(&AggregatedRecord {
            partition_key_table: vec!["a".into()],
            explicit_hash_key_table: Vec::new(),
            records: vec![record(0, b"fine"), record(1, b"bad index")],
        });
        assert_passed_through("a", &bad_pk);

        let huge_pk = frame_message(&AggregatedRecord {
            partition_key_table: vec!["a".into()],
            explicit_hash_key_table: Vec::new(),
            records: vec![record(u64::MAX, b"huge index")],
        });
        assert_passed_through("a", &huge_pk);

        let mut with_bad_ehk = record(0, b"bad ehk");
        with_bad_ehk.explicit_hash_key_index = Some(0);
        let bad_ehk = frame_message(&AggregatedRecord {
            partition_key_table: vec!["a".into()],
            explicit_hash_key_table: Vec::new(),
            records: vec![with_bad_ehk],
        });
        assert_passed_through("a", &bad_ehk);
    }

    /// proto2 `required` fields missing: protobuf-java refuses the message, so
    /// the KCL passes the record through, and so does this.
    #[test]
    fn missing_required_fields_pass_through() {
        let mut no_pk = record(0, b"x");
        no_pk.partition_key_index = None;
        let mut no_data = record(0, b"x");
        no_data.data = None;
        let mut keyless_tag = record(0, b"x");
        keyless_tag.tags.push(Tag {
            key: None,
            value: Some("v".into()),
        });
        for bad in [no_pk, no_data, keyless_tag] {
            let bytes = frame_message(&AggregatedRecord {
                partition_key_table: vec!["a".into()],
                explicit_hash_key_table: Vec::new(),
                records: vec![bad],
            });
            assert_passed_through("a", &bytes);
        }
    }

    #[test]
    fn tags_and_explicit_hash_keys_are_read() {
        let mut tagged = record(1, b"tagged");
        tagged.explicit_hash_key_index = Some(0);
        tagged.tags.push(Tag {
            key: Some("k".into()),
            value: None,
        });
        let bytes = frame_message(&AggregatedRecord {
            partition_key_table: vec!["a".into(), "b".into()],
            explicit_hash_key_table: vec!["12345".into()],
            records: vec![tagged],
        });
        let out = deaggregate("a", &bytes);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].partition_key, "b");
        assert_eq!(out[0].explicit_hash_key.as_deref(), Some("12345"));
        assert_eq!(&*out[0].data, b"tagged");
        assert_eq!(out[0].sub_sequence, Some(0));
    }

    #[test]
    fn non_utf8_key_passes_through() {
        // Field 1 (partition_key_table), length 2, invalid UTF-8.
        let mut body = vec![0x0A, 0x02, 0xFF, 0xFE];
        body.extend(
            AggregatedRecord {
                partition_key_table: Vec::new(),
                explicit_hash_key_table: Vec::new(),
                records: vec![record(0, b"x")],
            }
            .encode_to_vec(),
        );
        assert_passed_through("a", &frame(&body));
    }

    #[test]
    fn valid_aggregate_with_no_records_yields_none() {
        // As in the KCL. A protobuf of only a key table is at least one byte.
        let bytes = frame_message(&AggregatedRecord {
            partition_key_table: vec!["a".into()],
            explicit_hash_key_table: Vec::new(),
            records: Vec::new(),
        });
        assert!(deaggregate("a", &bytes).is_empty());
    }

    #[test]
    fn into_owned_keeps_everything() {
        let data = b"plain".to_vec();
        let owned = deaggregate("k", &data).remove(0).into_owned();
        drop(data);
        assert_eq!(owned.partition_key, "k");
        assert_eq!(&*owned.data, b"plain");
        assert_eq!(owned.sub_sequence, None);
    }

    /// A small deterministic generator (Knuth's MMIX LCG, high bits).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn bytes(&mut self, max_len: u64) -> Vec<u8> {
            let len = self.below(max_len + 1);
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// What any output must look like: the input unchanged, or user records
    /// numbered 0, 1, 2, ...
    fn check_shape(key: &str, data: &[u8]) {
        let out = deaggregate(key, data);
        let passed_through = out.len() == 1 && out[0].sub_sequence.is_none();
        if passed_through {
            assert_eq!(out[0].partition_key, key);
            assert_eq!(&*out[0].data, data);
        } else {
            for (i, user) in out.iter().enumerate() {
                assert_eq!(user.sub_sequence, Some(i as u64));
            }
        }
    }

    /// No input panics: random bytes, random bytes behind the magic, random
    /// protobuf bytes with a correct MD5 (so the protobuf decoder and the
    /// index checks really run), and valid aggregates with bytes mutated
    /// before the MD5 is recomputed.
    #[test]
    fn random_inputs_never_panic() {
        let mut rng = Lcg(0x5EED_0FDE_A6A6);
        for _ in 0..2_000 {
            let raw = rng.bytes(64);
            check_shape("k", &raw);

            let mut magic_then_random = KPL_MAGIC.to_vec();
            magic_then_random.extend(rng.bytes(64));
            check_shape("k", &magic_then_random);

            check_shape("k", &frame(&rng.bytes(64)));
        }

        let mut aggregated = 0;
        for _ in 0..2_000 {
            let count = rng.below(5) as usize;
            let records: Vec<(String, Vec<u8>)> = (0..count)
                .map(|_| (format!("pk{}", rng.below(3)), rng.bytes(8)))
                .collect();
            let bytes = aggregate(&records);
            let mut body = bytes[KPL_MAGIC.len()..bytes.len() - DIGEST_LEN].to_vec();
            if !body.is_empty() {
                for _ in 0..=rng.below(3) {
                    let at = rng.below(body.len() as u64) as usize;
                    body[at] = rng.next() as u8;
                }
            }
            let framed = frame(&body);
            check_shape("k", &framed);
            if deaggregate("k", &framed)
                .first()
                .is_some_and(|u| u.sub_sequence.is_some())
            {
                aggregated += 1;
            }
        }
        // The mutations leave some aggregates valid, so that path ran too.
        assert!(aggregated > 0);
    }
}

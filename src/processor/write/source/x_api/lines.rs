//! The line reader: the stream's body split into lines across chunk
//! boundaries with bounded memory ([`LineBuffer`]), and each complete line
//! made into a [`Record`] keyed by its tweet id ([`to_record`]).

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::processor::Record;

pub(super) fn is_json_object(line: &[u8]) -> bool {
    line.trim_ascii_start().starts_with(b"{") && serde_json::from_slice::<IgnoredAny>(line).is_ok()
}

/// Splits the body into lines across chunk boundaries, holding at most
/// `max + 1` bytes of an incomplete line (the `+ 1` is its `\r`).
pub struct LineBuffer {
    max: usize,
    /// The incomplete line so far.
    buf: Vec<u8>,
    /// Inside a line found too long: dropping bytes up to the next `\n`.
    skipping: bool,
    /// Bytes dropped with oversize lines, for the caller to take.
    pub(super) dropped: u64,
    /// The most bytes `buf` has held.
    pub(super) peak: usize,
}

/// What a chunk of the body completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// A line without its `\n` or `\r\n`.
    Line(Vec<u8>),
    /// A line over the limit was found (and is being dropped).
    Oversize,
}

/// What was left when the body ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    None,
    Partial(Vec<u8>),
    Oversize,
}

impl LineBuffer {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            buf: Vec::new(),
            skipping: false,
            dropped: 0,
            peak: 0,
        }
    }

    /// Each byte is looked at once, however the line is cut into chunks.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Piece> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (part, rest, complete) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            bytes = rest;
            let newline = u64::from(complete);
            if self.skipping {
                self.dropped += part.len() as u64 + newline;
                self.skipping = !complete;
                continue;
            }
            if self.buf.len() + part.len() > self.max + 1 {
                self.dropped += (self.buf.len() + part.len()) as u64 + newline;
                // The allocation goes too: memory is back to normal at once.
                self.buf = Vec::new();
                self.skipping = !complete;
                out.push(Piece::Oversize);
                continue;
            }
            self.buf.extend_from_slice(part);
            self.peak = self.peak.max(self.buf.len());
            if complete {
                let mut line = std::mem::take(&mut self.buf);
                let with_newline = line.len() as u64 + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > self.max {
                    self.dropped += with_newline;
                    out.push(Piece::Oversize);
                } else {
                    out.push(Piece::Line(line));
                }
            }
        }
        out
    }

    /// What is left at the end of the body; the buffer is empty afterwards.
    pub fn finish(&mut self) -> Tail {
        let buf = std::mem::take(&mut self.buf);
        if std::mem::take(&mut self.skipping) {
            Tail::Oversize
        } else if buf.trim_ascii().is_empty() {
            Tail::None
        } else {
            Tail::Partial(buf)
        }
    }
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    data: Option<ProbeData<'a>>,
    errors: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ProbeData<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

/// What a line of the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Message,
    /// An X system message: `errors` without `data`.
    System,
    /// Not a JSON object.
    Malformed,
}

/// The record for one line, and what kind of line it is.
pub fn to_record(line: Vec<u8>) -> (Record, LineKind) {
    // Invalid UTF-8 in a field the probe skips would go unnoticed by serde.
    let probe = std::str::from_utf8(&line)
        .ok()
        .filter(|text| text.trim_ascii_start().starts_with('{'))
        .map(serde_json::from_str::<Probe>);
    let (id, kind) = match probe {
        Some(Ok(probe)) => {
            let kind = if probe.data.is_none() && probe.errors.is_some() {
                LineKind::System
            } else {
                LineKind::Message
            };
            (probe.data.and_then(|d| d.id).map(Cow::into_owned), kind)
        }
        _ => (None, LineKind::Malformed),
    };
    let partition_key = id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("{:016x}", fnv1a(&line)));
    (
        Record {
            partition_key,
            data: line,
        },
        kind,
    )
}

/// Stable across runs and Rust versions, unlike `DefaultHasher`, so the same
/// bytes always go to the same shard.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::write::source::x_api::MAX_LINE;

    fn line(bytes: &[u8]) -> Piece {
        Piece::Line(bytes.to_vec())
    }

    #[test]
    fn lines_are_split_across_chunks_and_crlf_is_dropped() {
        let mut lines = LineBuffer::new(MAX_LINE);
        assert_eq!(lines.push(b"{\"a\":"), []);
        assert_eq!(lines.buf.len(), 5);
        assert_eq!(
            lines.push(b"1}\r\n\r\n{\"b\""),
            [line(b"{\"a\":1}"), line(b"")]
        );
        assert_eq!(lines.push(b":2}\n"), [line(b"{\"b\":2}")]);
        assert_eq!(lines.push(b"\r"), []);
        assert_eq!(lines.push(b"\n"), [line(b"")]);
        assert_eq!(lines.finish(), Tail::None);
        assert_eq!((lines.peak, lines.dropped), (8, 0));
    }

    #[test]
    fn a_line_at_the_limit_is_kept_and_one_byte_more_is_dropped() {
        let mut lines = LineBuffer::new(8);
        assert_eq!(lines.push(b"12345678\r\n"), [line(b"12345678")]);
        assert_eq!(lines.push(b"12345678\n"), [line(b"12345678")]);
        assert_eq!(lines.push(b"123456789\n"), [Piece::Oversize]);
        assert_eq!(
            lines.push(b"123456789\r\nok\r\n"),
            [Piece::Oversize, line(b"ok")]
        );
        assert_eq!(lines.dropped, 10 + 11);
        assert_eq!(lines.peak, 9, "the line and its \\r, never more");
    }

    #[test]
    fn an_oversize_line_is_dropped_up_to_the_next_newline_with_bounded_memory() {
        let mut lines = LineBuffer::new(1000);
        assert_eq!(
            lines.push(b"{\"before\":1}\r\n{\"giant\":\""),
            [line(b"{\"before\":1}")]
        );
        let mut found = Vec::new();
        // 10 MB in 4 KiB chunks, no newline.
        for _ in 0..2560 {
            found.extend(lines.push(&[b'x'; 4096]));
            assert!(lines.buf.len() <= 1001, "{}", lines.buf.len());
            assert_eq!(
                lines.buf.capacity(),
                0,
                "the buffer is freed while skipping"
            );
        }
        assert_eq!(found, [Piece::Oversize], "found once, not once a chunk");
        assert_eq!(
            lines.push(b"xx\"}\r\n{\"after\":2}\r\n"),
            [line(b"{\"after\":2}")]
        );
        assert_eq!(lines.dropped, 10 + 2560 * 4096 + 6);
        assert!(lines.peak <= 1001);
        assert_eq!(lines.finish(), Tail::None);

        // The body ends inside the giant line.
        lines.push(&[b'y'; 2000]);
        assert_eq!(lines.finish(), Tail::Oversize);
        assert_eq!(lines.finish(), Tail::None);
    }

    #[test]
    fn what_is_left_at_the_end_is_a_partial_line_or_nothing() {
        let mut lines = LineBuffer::new(MAX_LINE);
        lines.push(b"{\"data\":{\"id\":\"1\"},\"matching");
        assert_eq!(
            lines.finish(),
            Tail::Partial(b"{\"data\":{\"id\":\"1\"},\"matching".to_vec())
        );
        lines.push(b"\r");
        assert_eq!(lines.finish(), Tail::None, "half a heartbeat is nothing");
        assert!(is_json_object(b"{\"data\":{\"id\":\"1\"}}"));
        assert!(is_json_object(b" {}\r"));
        for cut in [
            &b"{\"data\":{\"id\":\"1\"}"[..],
            b"{",
            b"[]",
            b"12",
            b"\"{}\"",
            b"{}x",
        ] {
            assert!(!is_json_object(cut), "{}", String::from_utf8_lossy(cut));
        }
    }

    #[test]
    fn records_are_keyed_by_tweet_id_or_a_stable_hash() {
        let line = br#"{"data":{"id":"1439800001232728069","text":"hi"},"matching_rules":[{"id":"9","tag":"t"}]}"#;
        let (record, kind) = to_record(line.to_vec());
        assert_eq!(record.partition_key, "1439800001232728069");
        assert_eq!(record.data, line);
        assert_eq!(kind, LineKind::Message);

        let notice = br#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect"}]}"#;
        let (record, kind) = to_record(notice.to_vec());
        assert_eq!(kind, LineKind::System);
        assert_eq!(record.partition_key, format!("{:016x}", fnv1a(notice)));
        assert_eq!(record.partition_key.len(), 16);

        let (garbage, kind) = to_record(b"not json".to_vec());
        assert_eq!(kind, LineKind::Malformed);
        assert_eq!(garbage.partition_key, "5cf74153161a1a88");
        assert_ne!(
            to_record(b"not json!".to_vec()).0.partition_key,
            garbage.partition_key
        );
    }

    #[test]
    fn lines_that_are_not_json_objects_are_malformed() {
        for line in [
            &b"[null,null]"[..],
            b"\"text\"",
            b"null",
            b"<html>",
            b"{\"data\":{\"id\":\"1\",\"text\":\"\xff\xfe\"}}",
            b"{\"data\":",
        ] {
            let (record, kind) = to_record(line.to_vec());
            assert_eq!(
                kind,
                LineKind::Malformed,
                "{}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(record.data, line, "sent unchanged");
            assert_eq!(record.partition_key.len(), 16);
        }
        let (_, kind) = to_record(b"{}".to_vec());
        assert_eq!(kind, LineKind::Message, "an object, if an odd one");
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}

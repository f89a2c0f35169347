//! Reading a record's JSON into a jq value with fewer allocations than
//! `jaq_json::read`, on the same lexer (hifijson), to the same value.
//!
//! Why not jaq_json's reader alone: on the bench's X API pages, reading took a
//! quarter of the jq path's time, most of it in the allocator. jaq_json
//! allocates every object key anew (two allocations: the bytes and their
//! box), and grows every object's index map and every array one doubling at
//! a time. Here the keys of one record are made once and shared (a record's
//! objects repeat the same few keys), each with its hash, which the
//! record's objects share a hasher to use; and each object and array is built
//! at its final size from a scratch stack.
//!
//! Anything this reader does not take on (jaq's byte strings `b"..."`, keys
//! that are not strings) and every error go to `jaq_json::read::parse_single`,
//! so the value, and the error's text, are jaq's own. A property test checks
//! that both readers give the same value.
//!
//! Except one error: arrays and objects nested deeper than [`MAX_DEPTH`].
//! jaq_json reads (and a value is dropped) by recursion without a limit, so
//! a record of a few hundred thousand `[` overflowed the thread's stack and
//! aborted the processor, on that record again after every restart: its
//! shard stalled. serde_json, which reads records for the built-in
//! transform, stops at the same depth, and such a record is a `not_json`
//! dead letter on both paths.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher as _;

use hifijson::num::LexWrite as _;
use hifijson::str::LexWrite as _;
use hifijson::token::Lex as _;
use hifijson::{Read as _, SliceLexer};
use indexmap::map::{RawEntryApiV1 as _, raw_entry_v1::RawEntryMut};
use jaq_json::{Map, Num, Val};

use super::demand::Demand;

/// How deep arrays and objects may nest in a record (serde_json's limit).
pub const MAX_DEPTH: usize = 128;

/// Parses one JSON document into a jq value.
pub fn parse(bytes: &[u8]) -> Result<Val, String> {
    parse_for(bytes, &Demand::All)
}

/// Parses one JSON document into a jq value, with only what `demand`
/// needs of its objects; the rest is checked as JSON and skipped, so a
/// document is refused exactly when [`parse`] refuses it, with its error.
pub fn parse_for(bytes: &[u8], demand: &Demand) -> Result<Val, String> {
    let mut reader = Reader::default();
    let mut lexer = SliceLexer::new(bytes);
    let fast = lexer.exactly_one(ws_tk, |next, lexer| reader.projected(next, lexer, demand));
    match fast {
        Ok(value) => Ok(value),
        // The lexer stopped at the opening past the limit.
        Err(_) if reader.too_deep => Err(format!(
            "byte offset {}: arrays and objects nested more than {MAX_DEPTH} deep",
            bytes.len() - lexer.as_slice().len()
        )),
        // jaq_json stops at an error where this reader did, but reads on
        // through a form this reader leaves to it: bound its recursion too.
        Err(Unsupported) if nesting(bytes) > MAX_DEPTH => Err(format!(
            "arrays and objects nested more than {MAX_DEPTH} deep"
        )),
        Err(Unsupported) => jaq_json::read::parse_single(bytes).map_err(|e| e.to_string()),
    }
}

/// The deepest nesting of arrays and objects in `bytes`, strings skipped
/// (more than the truth only where a `#` comment holds brackets).
fn nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in bytes {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            _ if in_string => {}
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// What this reader leaves to jaq_json's: an error, or a form it does not
/// read (or, with [`Reader::too_deep`] set, a record too deep to read).
struct Unsupported;

impl From<hifijson::Error> for Unsupported {
    fn from(_: hifijson::Error) -> Self {
        Unsupported
    }
}

impl From<hifijson::str::Error> for Unsupported {
    fn from(_: hifijson::str::Error) -> Self {
        Unsupported
    }
}

impl From<hifijson::token::Expect> for Unsupported {
    fn from(_: hifijson::token::Expect) -> Self {
        Unsupported
    }
}

#[derive(Default)]
struct Reader<'a> {
    /// Arrays and objects open around the value being read.
    depth: usize,
    /// Whether an array or object opened past [`MAX_DEPTH`].
    too_deep: bool,
    /// The hasher of every object of this record (jaq's: foldhash, seeded
    /// at random, here once a record instead of once an object).
    hasher: foldhash::fast::RandomState,
    /// The keys read so far in this record, each made once, with its hash
    /// under [`Reader::hasher`] (hashed once a record, not once an object).
    keys: HashMap<&'a [u8], (Val, u64), foldhash::fast::RandomState>,
    /// Elements of the arrays being read, innermost last.
    elements: Vec<Val>,
    /// Entries of the objects being read, innermost last.
    entries: Vec<((Val, u64), Val)>,
}

/// A string as read: borrowed from the input when it holds no escape.
enum Text<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl Text<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Text::Borrowed(bytes) => bytes,
            Text::Owned(bytes) => bytes,
        }
    }
}

impl<'a> Reader<'a> {
    /// Opens an array or object, unless that nests it past [`MAX_DEPTH`].
    fn open(&mut self) -> Result<(), Unsupported> {
        if self.depth == MAX_DEPTH {
            self.too_deep = true;
            return Err(Unsupported);
        }
        self.depth += 1;
        Ok(())
    }

    /// A value, with only what `demand` needs of it if it is an object.
    fn projected(
        &mut self,
        next: u8,
        lexer: &mut SliceLexer<'a>,
        demand: &Demand,
    ) -> Result<Val, Unsupported> {
        match demand {
            Demand::Keys(keys) if next == b'{' => {
                self.open()?;
                let value = self.object(lexer, Some(keys));
                self.depth -= 1;
                value
            }
            _ => self.value(next, lexer),
        }
    }

    fn value(&mut self, next: u8, lexer: &mut SliceLexer<'a>) -> Result<Val, Unsupported> {
        if matches!(next, b'[' | b'{') {
            self.open()?;
            let value = self.collection(next, lexer);
            self.depth -= 1;
            return value;
        }
        Ok(match scalar(next, lexer)? {
            Scalar::Value(value) => value,
            Scalar::Text(Text::Borrowed(bytes)) => Val::utf8_str(bytes.to_vec()),
            Scalar::Text(Text::Owned(bytes)) => Val::utf8_str(bytes),
        })
    }

    /// An array or an object, from its opening bracket.
    fn collection(&mut self, next: u8, lexer: &mut SliceLexer<'a>) -> Result<Val, Unsupported> {
        Ok(match next {
            b'[' => {
                let start = self.elements.len();
                lexer.discarded().seq(b']', ws_tk, |next, lexer| {
                    let element = self.value(next, lexer)?;
                    self.elements.push(element);
                    Ok::<_, Unsupported>(())
                })?;
                Val::Arr(self.elements.drain(start..).collect::<Vec<_>>().into())
            }
            b'{' => self.object(lexer, None)?,
            _ => return Err(Unsupported),
        })
    }

    /// An object, from its opening brace: all its keys, or only `keys`
    /// (each with what its demand needs), the others checked and skipped.
    fn object(
        &mut self,
        lexer: &mut SliceLexer<'a>,
        keys: Option<&BTreeMap<String, Demand>>,
    ) -> Result<Val, Unsupported> {
        let start = self.entries.len();
        lexer.discarded().seq(b'}', ws_tk, |next, lexer| {
            if next != b'"' {
                return Err(Unsupported);
            }
            let text = string(lexer.discarded())?;
            lexer.expect(ws_tk, b':').ok_or(Unsupported)?;
            let next = ws_tk(lexer).ok_or(Unsupported)?;
            let demand = match keys {
                None => Some(&Demand::All),
                Some(keys) => std::str::from_utf8(text.bytes())
                    .ok()
                    .and_then(|name| keys.get(name)),
            };
            match demand {
                Some(demand) => {
                    let key = self.key(text);
                    let value = self.projected(next, lexer, demand)?;
                    self.entries.push((key, value));
                }
                None => self.skip(next, lexer)?,
            }
            Ok(())
        })?;
        let entries = self.entries.drain(start..);
        let mut map = Map::with_capacity_and_hasher(entries.len(), self.hasher);
        // As jaq_json: a repeated key keeps its first place and its last value.
        for ((key, hash), value) in entries {
            match map.raw_entry_mut_v1().from_hash(hash, |k| *k == key) {
                RawEntryMut::Occupied(mut entry) => *entry.get_mut() = value,
                RawEntryMut::Vacant(entry) => {
                    entry.insert_hashed_nocheck(hash, key, value);
                }
            }
        }
        Ok(Val::obj(map))
    }

    /// Checks a value as [`Reader::value`] reads it, making nothing of it.
    fn skip(&mut self, next: u8, lexer: &mut SliceLexer<'a>) -> Result<(), Unsupported> {
        match next {
            b'[' => {
                self.open()?;
                lexer
                    .discarded()
                    .seq(b']', ws_tk, |next, lexer| self.skip(next, lexer))?;
                self.depth -= 1;
            }
            b'{' => {
                self.open()?;
                lexer.discarded().seq(b'}', ws_tk, |next, lexer| {
                    if next != b'"' {
                        return Err(Unsupported);
                    }
                    string(lexer.discarded())?;
                    lexer.expect(ws_tk, b':').ok_or(Unsupported)?;
                    self.skip(ws_tk(lexer).ok_or(Unsupported)?, lexer)
                })?;
                self.depth -= 1;
            }
            _ => {
                scalar(next, lexer)?;
            }
        }
        Ok(())
    }

    /// An object's key and its hash, made once per record when it holds
    /// no escape.
    fn key(&mut self, text: Text<'a>) -> (Val, u64) {
        let hasher = &self.hasher;
        let hashed = |key: Val| {
            let hash = hasher.hash_one(&key);
            (key, hash)
        };
        match text {
            Text::Borrowed(bytes) => self
                .keys
                .entry(bytes)
                .or_insert_with(|| hashed(Val::utf8_str(bytes.to_vec())))
                .clone(),
            Text::Owned(bytes) => hashed(Val::utf8_str(bytes)),
        }
    }
}

/// A value that is not an array or object, as [`Reader::value`] and
/// [`Reader::skip`] both read it (one grammar for both): a string as its
/// text, which the one makes a value of and the other drops.
enum Scalar<'a> {
    Value(Val),
    Text(Text<'a>),
}

fn scalar<'a>(next: u8, lexer: &mut SliceLexer<'a>) -> Result<Scalar<'a>, Unsupported> {
    Ok(Scalar::Value(match next {
        b'n' if lexer.strip_prefix(b"null") => Val::Null,
        b't' if lexer.strip_prefix(b"true") => Val::Bool(true),
        b'f' if lexer.strip_prefix(b"false") => Val::Bool(false),
        b'N' if lexer.strip_prefix(b"NaN") => Val::Num(Num::Float(f64::NAN)),
        b'I' if lexer.strip_prefix(b"Infinity") => Val::Num(Num::Float(f64::INFINITY)),
        b'0'..=b'9' | b'+' | b'-' => Val::Num(number(lexer)?),
        b'"' => return Ok(Scalar::Text(string(lexer.discarded())?)),
        _ => return Err(Unsupported),
    }))
}

/// Whitespace and `#` comments (jaq reads both), then the next byte.
fn ws_tk(lexer: &mut SliceLexer<'_>) -> Option<u8> {
    loop {
        lexer.eat_whitespace();
        match lexer.peek_next() {
            Some(b'#') => lexer.skip_until(|c| c == b'\n'),
            next => return next,
        }
    }
}

/// A string's bytes after its opening quote, as jaq_json reads a text
/// string: escapes decoded to UTF-8, the rest as it is.
fn string<'a>(lexer: &mut SliceLexer<'a>) -> Result<Text<'a>, Unsupported> {
    use hifijson::escape::Lex as _;
    let on_string = |bytes: &mut &'a [u8], out: &mut Text<'a>| {
        match out {
            Text::Borrowed(first) if first.is_empty() => *first = bytes,
            Text::Borrowed(first) => {
                let mut owned = first.to_vec();
                owned.extend_from_slice(bytes);
                *out = Text::Owned(owned);
            }
            Text::Owned(owned) => owned.extend_from_slice(bytes),
        }
        Ok::<_, Unsupported>(())
    };
    lexer.str_fold(Text::Borrowed(b""), on_string, |lexer, out| {
        let next = lexer.take_next().ok_or(Unsupported)?;
        let c = lexer.escape(next).map_err(|_| Unsupported)?;
        let mut owned = match std::mem::replace(out, Text::Owned(Vec::new())) {
            Text::Borrowed(first) => first.to_vec(),
            Text::Owned(owned) => owned,
        };
        owned.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        *out = Text::Owned(owned);
        Ok(())
    })
}

/// A number, as jaq_json reads it: an integer when it is one and fits,
/// else the decimal text as written (so no digit is lost).
fn number(lexer: &mut SliceLexer<'_>) -> Result<Num, Unsupported> {
    let (text, parts) = lexer
        .num_string_with(hifijson::num::Num::signed_digits())
        .unvalidated();
    match text {
        "+" | "-" => Err(Unsupported),
        _ if text.ends_with(|c: char| c.is_ascii_digit()) => Ok(if parts.is_int() {
            Num::from_str_radix(text, 10).ok_or(Unsupported)?
        } else {
            Num::Dec(std::rc::Rc::new(text.to_string()))
        }),
        _ => Err(Unsupported),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A value as jq prints it (keys in order; NaN, which equals nothing, too).
    fn shown(read: Result<Val, String>) -> Result<String, String> {
        read.map(|value| value.to_string())
    }

    fn jaq(text: &str) -> Result<String, String> {
        shown(jaq_json::read::parse_single(text.as_bytes()).map_err(|e| e.to_string()))
    }

    #[test]
    fn reads_what_jaq_reads_and_fails_as_jaq_fails() {
        for text in [
            r#"{"a":1,"b":[true,false,null],"a":2,"c":{"a":"x\"y\u00e9\ud83d\ude00"}}"#,
            r#"[1, -0, 1.50, 1e400, 123456789012345678901234567890123456789, -7E-3]"#,
            r#"{"k": "é", "": ""} # a comment"#,
            "  [NaN, Infinity, -Infinity, +5]  ",
            r#"{1: 2}"#,
            r#"b"bytes""#,
            r#"{"a":[{"a":{"a":[]}}],"b":{}}"#,
            "",
            "{",
            r#"{"a" 1}"#,
            "[1,]",
            r#""\x""#,
            "1 2",
            "\"a\u{1}b\"",
        ] {
            assert_eq!(shown(parse(text.as_bytes())), jaq(text), "{text}");
        }
    }

    #[test]
    fn arrays_and_objects_nest_at_most_128_deep_and_deeper_is_an_error_not_an_abort() {
        let nested = |depth: usize| {
            let mut text = String::new();
            for level in 0..depth {
                text.push_str(if level % 2 == 0 { "[" } else { r#"{"k":"# });
            }
            for level in (0..depth).rev() {
                text.push(if level % 2 == 0 { ']' } else { '}' });
            }
            text
        };
        let deepest = nested(MAX_DEPTH);
        assert_eq!(shown(parse(deepest.as_bytes())), jaq(&deepest));
        // The 129th opening, after 64 `[` and 64 `{"k":`.
        assert_eq!(
            parse(nested(MAX_DEPTH + 1).as_bytes()).unwrap_err(),
            "byte offset 384: arrays and objects nested more than 128 deep"
        );
        // Deep enough to overflow the stack of a reader without a limit
        // (jaq_json's: this test aborted the process before the limit).
        let deep = format!("{}{}", "[".repeat(500_000), "]".repeat(500_000));
        // Forms this reader leaves to jaq_json's (a key that is not a
        // string, a byte string) do not take a deep record past the limit.
        for record in [
            deep.clone(),
            format!("{{1: {deep}}}"),
            format!(r#"[b"x", {deep}]"#),
        ] {
            assert!(
                parse(record.as_bytes())
                    .unwrap_err()
                    .ends_with("nested more than 128 deep"),
                "{}",
                &record[..20]
            );
        }
        // Brackets in strings are not nesting.
        let brackets = format!(r#"{{1: ["{}\"{}"]}}"#, "[".repeat(300), "{".repeat(300));
        assert_eq!(shown(parse(brackets.as_bytes())), jaq(&brackets));
    }

    /// JSON documents (keys such as `a`, `b`, `ab`, `id`).
    pub(in crate::jq) fn json() -> impl Strategy<Value = String> {
        let string = prop_oneof![
            "[a-c]{0,3}",
            "[a-c\"\\\\/é😀\u{8}\n\t]{0,6}",
            Just("id".to_string()),
        ]
        .prop_map(|s| serde_json::to_string(&s).unwrap());
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,5})?([eE][+-]?[0-9]{1,3})?",
            string.clone(),
            // An escape that is only \u, written by hand (serde writes é as is).
            Just(r#""\u0041\u00e9""#.to_string()),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6)
                    .prop_map(|items| format!("[{}]", items.join(" , "))),
                prop::collection::vec((string.clone(), inner), 0..6).prop_map(|entries| {
                    let entries: Vec<String> = entries
                        .into_iter()
                        .map(|(k, v)| format!("{k}:{v}"))
                        .collect();
                    format!("{{ {} }}", entries.join(","))
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn any_json_reads_as_jaq_reads_it(text in json()) {
            let ours = parse(text.as_bytes());
            prop_assert!(ours.is_ok(), "{ours:?}");
            prop_assert_eq!(shown(ours), jaq(&text));
        }

        #[test]
        fn any_cut_json_fails_as_jaq_fails(text in json(), cut in 0usize..64) {
            let cut = text.len().saturating_sub(cut);
            if let Ok(part) = std::str::from_utf8(&text.as_bytes()[..cut]) {
                prop_assert_eq!(shown(parse(part.as_bytes())), jaq(part));
            }
        }
    }
}

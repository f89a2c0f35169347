//! A DynamoDB item as the processor plans it: attribute values exactly as
//! DynamoDB takes them (a number is its decimal text, so a 38-digit number
//! stays exact, which a JSON library's f64 would not), their size as
//! DynamoDB counts it, and their JSON for people (`transform`, `test`).

use std::collections::HashMap;
use std::io::Write;

use aws_sdk_dynamodb::types::AttributeValue;

/// One item: attribute name to value.
pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB's item size limit (attribute names and values, 400 KB).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// An upper bound of an item's size as DynamoDB counts it: attribute names
/// and string and binary values in bytes, a number at most 21 bytes, a list
/// or map 3 bytes plus 1 an element (and a map's names).
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(_) => 21,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => 21 * set.len(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        _ => 1,
    }
}

/// The item as one line of JSON, attributes in name order; numbers are
/// written as DynamoDB holds them, digit for digit, binary as base64.
pub fn to_json_text(item: &Item) -> String {
    let mut out = Vec::with_capacity(256);
    map(&mut out, item);
    // Every piece written is UTF-8 (strings through serde_json, numbers and
    // punctuation ASCII).
    String::from_utf8(out).unwrap_or_default()
}

/// The item as a JSON value (what `test` compares); a number past what f64
/// holds exactly is compared as f64 on both sides.
pub fn to_json(item: &Item) -> serde_json::Value {
    serde_json::from_str(&to_json_text(item)).unwrap_or(serde_json::Value::Null)
}

fn string(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping, written straight into the line.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn map(out: &mut Vec<u8>, map: &Item) {
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    out.push(b'{');
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, name);
        out.push(b':');
        value(out, &map[name]);
    }
    out.push(b'}');
}

fn list<V: std::borrow::Borrow<AttributeValue>>(out: &mut Vec<u8>, items: impl Iterator<Item = V>) {
    out.push(b'[');
    for (i, v) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        value(out, v.borrow());
    }
    out.push(b']');
}

fn value(out: &mut Vec<u8>, v: &AttributeValue) {
    match v {
        AttributeValue::S(s) => string(out, s),
        AttributeValue::N(n) => out.extend_from_slice(n.as_bytes()),
        AttributeValue::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        AttributeValue::B(b) => string(out, &aws_smithy_types::base64::encode(b.as_ref())),
        AttributeValue::L(items) => list(out, items.iter()),
        AttributeValue::M(m) => map(out, m),
        AttributeValue::Ss(set) => list(out, set.iter().cloned().map(AttributeValue::S)),
        AttributeValue::Ns(set) => list(out, set.iter().cloned().map(AttributeValue::N)),
        _ => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_every_digit_and_names_are_sorted() {
        let item: Item = [
            (
                "b".to_string(),
                AttributeValue::N("12345678901234567890123456789012345678".into()),
            ),
            (
                "a".to_string(),
                AttributeValue::L(vec![
                    AttributeValue::S("x\"y".into()),
                    AttributeValue::Null(true),
                    AttributeValue::Bool(false),
                ]),
            ),
        ]
        .into();
        assert_eq!(
            to_json_text(&item),
            r#"{"a":["x\"y",null,false],"b":12345678901234567890123456789012345678}"#
        );
        assert_eq!(item_size(&item), 1 + 3 + 4 + 2 + 2 + 1 + 21);
    }
}

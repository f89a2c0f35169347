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

/// An item's size as DynamoDB counts it (the developer guide's "item sizes
/// and formats"): attribute names and string and binary values in bytes; a
/// number 1 byte a two significant digits plus 1; null and booleans 1; a
/// list or map 3 bytes plus 1 an element (and a map's names).
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// The write units one write of `item` takes: a unit a 1 KB started
/// (DynamoDB rounds an item's size up to the next 1 KB for writes).
/// TransactWriteItems takes twice that.
pub fn write_units(item: &Item) -> u64 {
    item_size(item).div_ceil(1024).max(1) as u64
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        _ => 1,
    }
}

/// A number's size: 1 byte a two significant digits (leading and trailing
/// zeros trimmed), plus 1.
fn number_size(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    let digits = || mantissa.bytes().filter(u8::is_ascii_digit);
    let leading = digits().take_while(|&d| d == b'0').count();
    let trailing = digits().rev().take_while(|&d| d == b'0').count();
    let significant = digits().count().saturating_sub(leading + trailing);
    significant.div_ceil(2) + 1
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
    let mut entries: Vec<(&String, &AttributeValue)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (name, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, name);
        out.push(b':');
        value(out, v);
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
        // "a": 3 for the list, 1 + 3, 1 + 1, 1 + 1; "b": 38 digits, 19 + 1.
        assert_eq!(item_size(&item), 1 + 3 + 4 + 2 + 2 + 1 + 20);
    }

    #[test]
    fn sizes_and_write_units_follow_dynamodbs_rules() {
        let n = |text: &str| item_size(&[("n".to_string(), AttributeValue::N(text.into()))].into());
        // 1 byte a two significant digits, plus 1; zeros at either end are not counted.
        assert_eq!(n("7"), 1 + 2);
        assert_eq!(n("12"), 1 + 2);
        assert_eq!(n("123"), 1 + 3);
        assert_eq!(n("-0.00120"), 1 + 2);
        assert_eq!(n("1500000"), 1 + 2);
        assert_eq!(n("1.5E+30"), 1 + 2);
        assert_eq!(n("0"), 1 + 1);
        assert_eq!(n("-0.000"), 1 + 1);
        assert_eq!(n("100.001"), 1 + 4);
        let text = |bytes: usize| -> Item {
            [("t".to_string(), AttributeValue::S("é".repeat(bytes / 2)))].into()
        };
        // A unit a 1 KB started, at least one: names count, UTF-8 bytes count.
        assert_eq!(write_units(&Item::new()), 1);
        assert_eq!(write_units(&text(1022)), 1); // 1 + 1,022 bytes
        assert_eq!(write_units(&text(1024)), 2); // 1 + 1,024
        assert_eq!(write_units(&text(400 * 1024 - 2)), 400);
    }
}

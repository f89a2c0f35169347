//! A DynamoDB item as the processor plans it: attribute values exactly as
//! DynamoDB takes them (a number is its decimal text, so a 38-digit number
//! stays exact, which a JSON library's f64 would not), their size as
//! DynamoDB counts it, and their JSON for people (`transform`, `test`).

use std::collections::HashMap;
use std::fmt::Write;

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
    let mut out = String::new();
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    out.push('{');
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(&mut out, name);
        out.push(':');
        value(&mut out, &item[name]);
    }
    out.push('}');
    out
}

/// The item as a JSON value (what `test` compares); a number past what f64
/// holds exactly is compared as f64 on both sides.
pub fn to_json(item: &Item) -> serde_json::Value {
    serde_json::from_str(&to_json_text(item)).unwrap_or(serde_json::Value::Null)
}

fn string(out: &mut String, s: &str) {
    out.push_str(&serde_json::Value::from(s).to_string());
}

fn value(out: &mut String, v: &AttributeValue) {
    match v {
        AttributeValue::S(s) => string(out, s),
        AttributeValue::N(n) => out.push_str(n),
        AttributeValue::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        AttributeValue::B(b) => string(out, &aws_smithy_types::base64::encode(b.as_ref())),
        AttributeValue::L(list) => {
            out.push('[');
            for (i, v) in list.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                value(out, v);
            }
            out.push(']');
        }
        AttributeValue::M(map) => {
            let mut names: Vec<&String> = map.keys().collect();
            names.sort();
            out.push('{');
            for (i, name) in names.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(out, name);
                out.push(':');
                value(out, &map[name]);
            }
            out.push('}');
        }
        AttributeValue::Ss(set) => {
            let list: Vec<AttributeValue> = set.iter().cloned().map(AttributeValue::S).collect();
            value(out, &AttributeValue::L(list));
        }
        AttributeValue::Ns(set) => {
            let list: Vec<AttributeValue> = set.iter().cloned().map(AttributeValue::N).collect();
            value(out, &AttributeValue::L(list));
        }
        _ => out.push_str("null"),
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

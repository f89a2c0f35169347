//! The slow path: records that are JSON but hold a value of an unexpected
//! type somewhere. Only these pay for a `serde_json::Value` tree, so the
//! hot path never builds one; here it finds the field at fault and lets a
//! page keep its good tweets.

use serde::Deserialize;
use serde_json::Value;

use super::Transformed;
use super::classify::{classify, page};
use super::reason::{DeadLetterReason, bad_field, not_a_tweet, not_json};
use super::wire::{Obj, RawObject};

/// The slow path, for records that are JSON but have a value of an
/// unexpected type somewhere: a page keeps its good tweets and sets aside the
/// bad ones; any other record is a dead letter naming the field.
pub(super) fn transform_slow(text: &str) -> Result<Transformed, DeadLetterReason> {
    let mut value: Value = serde_json::from_str(text).map_err(|e| not_json(&e))?;
    let Value::Object(map) = &mut value else {
        return Err(not_a_tweet(format!(
            "expected a JSON object, found {}",
            json_kind(&value)
        )));
    };
    if let Some(Value::Array(_)) = map.get("data") {
        let Some(Value::Array(items)) = map.remove("data") else {
            unreachable!("`data` was just seen to be an array")
        };
        let rest = Value::Object(std::mem::take(map));
        let envelope: Obj<RawObject<'_>> = strict(&rest)?;
        let parsed = items
            .iter()
            .map(|item| strict::<Obj<RawObject<'_>>>(item).map(|o| o.0));
        return Ok(page(parsed, envelope.0.includes.as_ref()));
    }
    // Not a page: the whole record is unusable. Say where it went wrong.
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, Obj<RawObject<'_>>>(&mut de) {
        Ok(raw) => classify(raw.0, text),
        Err(e) => Err(path_error(e.path(), e.inner())),
    }
}

/// Deserializes a tweet object or envelope from a `Value`, naming the field
/// at fault.
fn strict<'a, T: Deserialize<'a>>(value: &'a Value) -> Result<T, DeadLetterReason> {
    serde_path_to_error::deserialize(value).map_err(|e| path_error(e.path(), e.inner()))
}

fn path_error(path: &serde_path_to_error::Path, e: &serde_json::Error) -> DeadLetterReason {
    let path = path.to_string();
    let path = if path == "." {
        "(record)".to_owned()
    } else {
        path
    };
    bad_field(path, e.to_string())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

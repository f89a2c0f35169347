//! The tweet's DynamoDB item: the built-in transform yields typed
//! [`Tweet`]s and knows nothing of items; their shape lives here.

use aws_sdk_dynamodb::types::AttributeValue;

use super::batch::{ItemShape, expiry};
use super::item::{Item, MAX_ITEM_BYTES, item_size};
use super::transform::Tweet;

/// Longest tweet text stored whole. X's longest posts (25,000 characters)
/// take at most 100 KB of UTF-8; longer text is cut at a character boundary
/// and the item says `text_truncated: true`, so an item stays under
/// DynamoDB's 400 KB.
pub const MAX_TEXT_BYTES: usize = 128 * 1024;

/// The tweet as the attributes of its DynamoDB item: strings, numbers,
/// lists of strings, and `referenced` as a list of `{type, id}` maps.
/// Attributes whose value is unknown (None) are left out, as DynamoDB items
/// are sparse; lists are always present, possibly empty. Built as
/// attribute values directly: this is the hot path.
///
/// Attributes: `tweet_id`, `author_id`, `author_username`, `created_at`,
/// `lang`, `text`, `hashtags`, `mentions`, `urls`, `retweet_count`,
/// `reply_count`, `like_count`, `quote_count`, `impression_count`,
/// `referenced`, `rule_tags`.
pub fn dynamodb_item(tweet: &Tweet) -> Item {
    fn strings(list: &[String]) -> AttributeValue {
        AttributeValue::L(list.iter().map(|s| AttributeValue::S(s.clone())).collect())
    }
    let mut item = Item::with_capacity(20);
    let put_opt_str = |item: &mut Item, k: &str, v: &Option<String>| {
        if let Some(v) = v {
            item.insert(k.to_owned(), AttributeValue::S(v.clone()));
        }
    };
    item.insert("tweet_id".into(), AttributeValue::S(tweet.id.clone()));
    put_opt_str(&mut item, "author_id", &tweet.author_id);
    put_opt_str(&mut item, "author_username", &tweet.author_username);
    put_opt_str(&mut item, "created_at", &tweet.created_at);
    put_opt_str(&mut item, "lang", &tweet.lang);
    item.insert("text".into(), AttributeValue::S(tweet.text.clone()));
    item.insert("hashtags".into(), strings(&tweet.hashtags));
    item.insert("mentions".into(), strings(&tweet.mentions));
    item.insert("urls".into(), strings(&tweet.urls));
    let m = &tweet.metrics;
    for (k, v) in [
        ("retweet_count", m.retweet_count),
        ("reply_count", m.reply_count),
        ("like_count", m.like_count),
        ("quote_count", m.quote_count),
        ("impression_count", m.impression_count),
    ] {
        if let Some(v) = v {
            item.insert(k.into(), AttributeValue::N(v.to_string()));
        }
    }
    let referenced = tweet
        .referenced
        .iter()
        .map(|r| {
            AttributeValue::M(
                [
                    (
                        "type".to_string(),
                        AttributeValue::S(r.kind.as_str().to_owned()),
                    ),
                    ("id".to_string(), AttributeValue::S(r.id.clone())),
                ]
                .into(),
            )
        })
        .collect();
    item.insert("referenced".into(), AttributeValue::L(referenced));
    item.insert("rule_tags".into(), strings(&tweet.rule_tags));
    item
}

/// The tweet's item, keyed by the table's partition key, with its TTL;
/// text over [`MAX_TEXT_BYTES`] cut and flagged. An item that would still
/// pass DynamoDB's 400 KB (a record of other fields in the hundreds of
/// kilobytes) is refused with its estimated size.
pub fn tweet_item(tweet: &Tweet, shape: &ItemShape, now_s: i64) -> Result<Item, String> {
    let mut item = dynamodb_item(tweet);
    if tweet.text.len() > MAX_TEXT_BYTES {
        let mut cut = MAX_TEXT_BYTES;
        while !tweet.text.is_char_boundary(cut) {
            cut -= 1;
        }
        item.insert(
            "text".into(),
            AttributeValue::S(tweet.text[..cut].to_string()),
        );
        item.insert("text_truncated".into(), AttributeValue::Bool(true));
    }
    if shape.partition_key != "tweet_id"
        && let Some(id) = item.remove("tweet_id")
    {
        item.insert(shape.partition_key.clone(), id);
    }
    if let Some((attribute, days)) = &shape.ttl {
        item.insert(
            attribute.clone(),
            AttributeValue::N(expiry(now_s, *days).to_string()),
        );
    }
    let size = item_size(&item);
    if size > MAX_ITEM_BYTES {
        return Err(format!(
            "the item of tweet {} would take about {size} bytes, over DynamoDB's {MAX_ITEM_BYTES}-byte item limit",
            tweet.id
        ));
    }
    Ok(item)
}

#!/usr/bin/env python3
"""The processor's extraction in plain Python, for `make bench` to compare
with `streamstack transform` on the same file in the same run.

Same input shapes (X API v2 pages and stream messages, bare v2 tweets, v1.1
statuses), the same attributes out as NDJSON items, dead letters counted.
Plain Python on purpose: the stdlib json module, no tricks, as a data
engineer would first write it.
"""
import json
import sys
from datetime import datetime, timezone


def iso(created):
    if created is None:
        return None
    if created[4:5] == "-":
        return datetime.fromisoformat(created.replace("Z", "+00:00")).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return datetime.strptime(created, "%a %b %d %H:%M:%S %z %Y").astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def dedup_tags(tags):
    seen, out = set(), []
    for t in tags:
        if t.lower() not in seen:
            seen.add(t.lower())
            out.append(t)
    return out


def v2(tweet, users, rules):
    ents = tweet.get("entities") or {}
    note = tweet.get("note_tweet")
    if note and note.get("text"):
        text, ents = note["text"], note.get("entities") or ents
    else:
        text = tweet["text"]
    m = tweet.get("public_metrics") or {}
    author = users.get(tweet.get("author_id"))
    item = {
        "tweet_id": tweet["id"], "author_id": tweet.get("author_id"),
        "author_username": author.get("username") if author else None,
        "created_at": iso(tweet.get("created_at")), "lang": tweet.get("lang"), "text": text,
        "hashtags": dedup_tags([h["tag"] for h in ents.get("hashtags", [])]),
        "mentions": [x["username"] for x in ents.get("mentions", [])],
        "urls": [u.get("expanded_url") or u["url"] for u in ents.get("urls", [])],
        "retweet_count": m.get("retweet_count"), "reply_count": m.get("reply_count"),
        "like_count": m.get("like_count"), "quote_count": m.get("quote_count"),
        "impression_count": m.get("impression_count"),
        "referenced": [{"type": r["type"], "id": r["id"]} for r in tweet.get("referenced_tweets", [])],
        "rule_tags": [r.get("tag") for r in rules if r.get("tag")],
    }
    return {k: v for k, v in item.items() if v is not None}


def v1(status):
    ext = status.get("extended_tweet") or {}
    text = ext.get("full_text") or status.get("full_text") or status["text"]
    ents = ext.get("entities") or status.get("entities") or {}
    user = status.get("user") or {}
    refs = []
    if status.get("retweeted_status"):
        refs.append({"type": "retweeted", "id": status["retweeted_status"]["id_str"]})
    if status.get("quoted_status_id_str"):
        refs.append({"type": "quoted", "id": status["quoted_status_id_str"]})
    if status.get("in_reply_to_status_id_str"):
        refs.append({"type": "replied_to", "id": status["in_reply_to_status_id_str"]})
    item = {
        "tweet_id": status["id_str"], "author_id": user.get("id_str"), "author_username": user.get("screen_name"),
        "created_at": iso(status.get("created_at")), "lang": status.get("lang"), "text": text,
        "hashtags": dedup_tags([h["text"] for h in ents.get("hashtags", [])]),
        "mentions": [x["screen_name"] for x in ents.get("user_mentions", [])],
        "urls": [u.get("expanded_url") or u["url"] for u in ents.get("urls", [])],
        "retweet_count": status.get("retweet_count"), "like_count": status.get("favorite_count"),
        "referenced": refs, "rule_tags": [],
    }
    return {k: v for k, v in item.items() if v is not None}


def main(path):
    out = sys.stdout
    tweets = dead = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if isinstance(rec.get("data"), list):
                    users = {u["id"]: u for u in (rec.get("includes") or {}).get("users", [])}
                    items = [v2(t, users, []) for t in rec["data"]]
                elif isinstance(rec.get("data"), dict):
                    users = {u["id"]: u for u in (rec.get("includes") or {}).get("users", [])}
                    items = [v2(rec["data"], users, rec.get("matching_rules") or [])]
                elif "id_str" in rec or "user" in rec:
                    items = [v1(rec)]
                elif "id" in rec and "text" in rec:
                    items = [v2(rec, {}, [])]
                else:
                    raise ValueError("not a tweet")
            except (ValueError, KeyError, TypeError, AttributeError):
                dead += 1
                continue
            for item in items:
                out.write(json.dumps(item, separators=(",", ":"), sort_keys=True))
                out.write("\n")
            tweets += len(items)
    print(f"transform.py: {tweets} tweets, {dead} dead letters", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])

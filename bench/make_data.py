#!/usr/bin/env python3
"""Benchmark inputs from the shared X API v2 data (MIT, see data/):

  v2  the real pages repeated with every id shifted per copy, so every
      tweet is distinct (a transform that de-duplicates writes them all);
  v1  large v1.1-style statuses (extended_tweet, entities, a quoted and a
      retweeted status inside), built from the same tweets.

usage: make_data.py v2|v1 TARGET_MB OUT
"""
import json
import sys


def pages(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def shift(id_str, k):
    # Ids are up to 19 digits; adding a copy offset keeps them distinct and within u64.
    return str(int(id_str) + k * 10**13)


def shifted(obj, k):
    if isinstance(obj, dict):
        return {key: shift(v, k) if key in ("id", "author_id") and isinstance(v, str) and v.isdigit()
                else shifted(v, k) for key, v in obj.items()}
    if isinstance(obj, list):
        return [shifted(v, k) for v in obj]
    return obj


def v1_status(t, users, k):
    user = users.get(t.get("author_id"), {"id": t.get("author_id", "0"), "username": "unknown"})
    ents = t.get("entities") or {}
    created = t.get("created_at", "2021-01-01T00:00:00.000Z")
    from datetime import datetime
    dt = datetime.fromisoformat(created.replace("Z", "+00:00"))
    status = {
        "created_at": dt.strftime("%a %b %d %H:%M:%S +0000 %Y"),
        "id": int(shift(t["id"], k)), "id_str": shift(t["id"], k),
        "text": t["text"][:140], "truncated": True, "lang": t.get("lang"),
        "user": {"id_str": user["id"], "screen_name": user["username"], "name": user.get("name", ""),
                 "description": user.get("description", "") * 3, "followers_count": 10, "friends_count": 5},
        "extended_tweet": {"full_text": t["text"], "entities": {
            "hashtags": [{"text": h["tag"], "indices": [h["start"], h["end"]]} for h in ents.get("hashtags", [])],
            "user_mentions": [{"screen_name": m["username"], "indices": [m["start"], m["end"]]} for m in ents.get("mentions", [])],
            "urls": [{"url": u["url"], "expanded_url": u.get("expanded_url", u["url"])} for u in ents.get("urls", [])]}},
        "retweet_count": 3, "favorite_count": 7, "entities": {"hashtags": [], "user_mentions": [], "urls": []},
    }
    status["quoted_status_id_str"] = "1"
    status["quoted_status"] = dict(status, id_str="1", id=1)
    return status


def main(kind, target_mb, out_path):
    src = pages("data/tweets-v2.jsonl")
    limit = float(target_mb) * 1e6
    written, k = 0, 1
    with open(out_path, "w") as out:
        while written < limit:
            for page in src:
                if kind == "v2":
                    line = json.dumps(shifted({"data": page["data"], "includes": page["includes"]}, k))
                    out.write(line + "\n")
                    written += len(line) + 1
                else:
                    users = {u["id"]: u for u in page["includes"].get("users", [])}
                    for t in page["data"]:
                        line = json.dumps(v1_status(t, users, k))
                        out.write(line + "\n")
                        written += len(line) + 1
            k += 1


if __name__ == "__main__":
    main(*sys.argv[1:4])

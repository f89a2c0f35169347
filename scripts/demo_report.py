#!/usr/bin/env python3
"""`make demo`'s helper, for any stack file: what the demo needs to know of
the stack file (`describe`), and the last step: waits until the replayed
records are stored in DynamoDB and archived in S3, then prints a short report.

Reads what the pipeline wrote with boto3 (from the emulator's virtualenv),
through the same standard settings as the tool (AWS_ENDPOINT_URL and
friends): a second, independent look at the data, not the processor's word.

The archive counts only what the replay put there, in archive objects written
since REPLAY_STARTED (Unix seconds, taken just before the replay). Objects from
before, such as the smoke canary of `up`, do not count. With KIND `tweets`
(the built-in tweet transform; the default) these are REPLAY_FILE's tweets, by
id (the replay splits a page of tweets into one record a tweet); with KIND
`records` (a stack file's own transform) the lines of REPLAY_FILE, each sent
as one record as it is, found by their text. Firehose writes a buffer when its
interval has passed, so the archive trails DynamoDB by up to that interval; on
timeout the report says how many it saw archived.

usage: demo_report.py STACK EXPECTED_ITEMS EXPECTED_DEAD_LETTERS TIMEOUT_S REPLAY_FILE REPLAY_STARTED [tweets|records]
       demo_report.py describe STACK_FILE [ENV [stack|replay|kind|top]]
         what the demo needs to know of a stack file in ENV (default `local`),
         as shell assignments, or the one value asked for: DEMO_STACK (the
         deployed stack's name), DEMO_REPLAY (the replay file of ENV's
         processor.source), DEMO_KIND (tweets: the built-in tweet transform;
         records: a transform of the stack file's own), DEMO_TOP (each
         aggregate the stack declares, as NAME:LIMIT for `top --by`). Reads
         the YAML with PyYAML (in the emulator's virtualenv); `streamstack
         validate` checks the file first.
"""
import gzip
import json
import shlex
import sys
import time


def tweet_id(doc: object) -> str | None:
    """The id of a tweet record: a v2 message ({"data": tweet}), a bare tweet or a v1.1 one."""
    tweet = doc.get("data", doc) if isinstance(doc, dict) else None
    if not isinstance(tweet, dict):
        return None
    found = tweet.get("id_str") or tweet.get("id")
    return str(found) if found is not None else None


def replayed_ids(path: str) -> set[str]:
    """The ids of the tweets in a replay file (one JSON document a line; a v2 page holds many)."""
    ids = set()
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            try:
                doc = json.loads(line)
            except ValueError:
                continue  # a malformed line: a dead letter, never archived as a tweet
            data = doc.get("data") if isinstance(doc, dict) else None
            for tweet in data if isinstance(data, list) else [doc]:
                if (found := tweet_id(tweet)) is not None:
                    ids.add(found)
    return ids


def records(body: bytes) -> list[object]:
    """The records of an archive object: Firehose concatenates them as they came, with no separator."""
    text, decoder, out, at = body.decode("utf-8", "replace"), json.JSONDecoder(), [], 0
    while at < len(text):
        try:
            doc, end = decoder.raw_decode(text, at)
        except ValueError:
            out.append(None)  # not JSON from here on: counted as one record that is no tweet
            break
        out.append(doc)
        at = end
        while at < len(text) and text[at].isspace():
            at += 1
    return out


def merged(base: object, override: object) -> object:
    """An environment's override on the base, as the stack file loader merges them: mappings key
    by key, anything else replaced, `~` (None) removes an optional value."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merged(out.get(key), value)
    return out


def describe(stack_file: str, env: str = "local", field: str | None = None) -> int:
    import yaml  # PyYAML, pinned in scripts/requirements-emulator.txt

    with open(stack_file, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    spec = merged({k: v for k, v in doc.items() if k not in ("environments", "tests")},
                  (doc.get("environments") or {}).get(env) or {})
    processor = spec.get("processor") or {}
    replay = ((processor.get("source") or {}).get("replay") or {}).get("file")
    if not replay:
        print(f"demo: {stack_file}: the {env} environment has no processor.source.replay.file to replay",
              file=sys.stderr)
        return 1
    transform = processor.get("transform")
    kind = "tweets" if transform in (None, "tweets") else "records"
    aggregates = processor.get("aggregates")
    if not aggregates and kind == "tweets":
        top = ["hashtag:5", "lang:3"]  # the tweet transform's default aggregates, as the demo always showed them
    else:
        top = [f"{a['name']}:5" for a in aggregates or []]
    values = {"stack": f"{spec['name']}-{env}", "replay": replay, "kind": kind, "top": " ".join(top)}
    if field is not None:
        print(values[field])
        return 0
    for name, value in values.items():
        print(f"DEMO_{name.upper()}={shlex.quote(value)}")
    return 0


def replayed_lines(path: str) -> set[str]:
    """The records of a replay file that the replay sends as they are: its non-empty lines."""
    with open(path, encoding="utf-8", errors="replace") as lines:
        return {line.strip() for line in lines if line.strip()}


def main(stack: str, expected: int, expected_dead: int, timeout: float, replay_file: str, replay_started: float,
         kind: str = "tweets") -> int:
    import boto3

    tweets = kind == "tweets"
    noun = "tweets" if tweets else "records"
    ddb, s3, cfn, cw, firehose = (
        boto3.client(s) for s in ("dynamodb", "s3", "cloudformation", "cloudwatch", "firehose")
    )
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])}
    bucket, table = outputs["ArchiveBucketName"], outputs["TableName"]
    prefix = outputs.get("DeadLetterPrefix", "dead-letters/")
    delivery = firehose.describe_delivery_stream(DeliveryStreamName=outputs["DeliveryStreamName"])
    destination = delivery["DeliveryStreamDescription"]["Destinations"][0]
    s3_destination = destination.get("ExtendedS3DestinationDescription") or destination.get("S3DestinationDescription")
    interval = (s3_destination or {}).get("BufferingHints", {}).get("IntervalInSeconds")
    flushes = f"Firehose writes its buffer every {interval} s" if interval else "Firehose writes at its buffer interval"
    wanted = replayed_ids(replay_file) if tweets else replayed_lines(replay_file)

    def count_items() -> int:
        total, kwargs = 0, {"TableName": table, "Select": "COUNT"}
        while True:
            page = ddb.scan(**kwargs)
            total += page["Count"]
            if "LastEvaluatedKey" not in page:
                return total
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def objects(pfx: str) -> list[dict]:
        out = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=pfx):
            out += page.get("Contents", [])
        return out

    seen: dict[str, list[object]] = {}  # archive key -> its records (objects are written once)
    texts: dict[str, str] = {}  # archive key -> its text (KIND records)

    def archive() -> tuple[int, int, int, int, int]:
        """Replayed tweets (or records) archived since the replay (distinct), the objects and records
        written since (replayed or not), and the objects and records of the archive in all."""
        everything = objects("raw/")
        for o in everything:
            if o["Key"] not in seen:
                body = gzip.decompress(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
                seen[o["Key"]] = records(body)
                texts[o["Key"]] = body.decode("utf-8", "replace")
        since = [o["Key"] for o in everything if o["LastModified"].timestamp() >= replay_started]
        if tweets:
            found = {i for k in since for i in map(tweet_id, seen[k]) if i in wanted}
        else:
            found = {line for line in wanted if any(line in texts[k] for k in since)}
        return (len(found), len(since), sum(len(seen[k]) for k in since),
                len(everything), sum(len(seen[o["Key"]]) for o in everything))

    start = time.monotonic()
    last = None
    while True:
        stored, dead = count_items(), objects(prefix)
        figures = archive()
        state = (stored, len(dead), figures)
        if state != last:
            print(f"demo: {stored}/{expected} {'tweets' if tweets else 'items'} in DynamoDB, {len(dead)} dead letters, "
                  f"{figures[0]}/{len(wanted)} replayed {noun} archived in S3 ({time.monotonic() - start:.0f} s; "
                  f"{flushes})", flush=True)
            last = state
        done = stored >= expected and len(dead) >= expected_dead and figures[0] >= len(wanted)
        if done or time.monotonic() - start > timeout:
            break
        time.sleep(2)

    archived, objects_since, records_since, objects_all, records_all = figures
    alarms = cw.describe_alarms(AlarmNamePrefix=f"{stack}-")["MetricAlarms"]
    states: dict[str, int] = {}
    for a in alarms:
        states[a["StateValue"]] = states.get(a["StateValue"], 0) + 1
    print()
    print(f"=== {stack}: the pipeline at work ===")
    if tweets:
        print(f"  tweets stored in DynamoDB   {stored} (the bundled data holds {expected} distinct tweets)")
    else:
        print(f"  items stored in DynamoDB    {stored} (the bundled data gives {expected} distinct items)")
    print(f"  dead letters in S3          {len(dead)} (s3://{bucket}/{prefix})")
    print(f"  raw archive (Firehose)      {archived} of the {len(wanted)} replayed {noun}, in {objects_since} gzip "
          f"object(s) ({records_since} records) written since the replay; {objects_all} object(s), "
          f"{records_all} records in all, s3://{bucket}/raw/")
    if archived < len(wanted):
        print(f"  the archive lags: {len(wanted) - archived} replayed {noun} not archived after {timeout:.0f} s "
              f"({flushes})")
    print(f"  alarms                      {', '.join(f'{n} {s}' for s, n in sorted(states.items())) or 'none'}")
    if not done:
        print(f"demo: gave up after {timeout:.0f} s", file=sys.stderr)
    return 0 if done and stored == expected else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["describe"]:
        sys.exit(describe(*sys.argv[2:5]))
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], float(sys.argv[6]),
                  *sys.argv[7:8]))

#!/usr/bin/env python3
"""`make demo`'s last step: waits until the replayed tweets are stored in
DynamoDB and archived in S3, then prints a short report.

Reads what the pipeline wrote with boto3 (from the emulator's virtualenv),
through the same standard settings as the tool (AWS_ENDPOINT_URL and
friends): a second, independent look at the data, not the processor's word.

usage: demo_report.py STACK EXPECTED_TWEETS EXPECTED_DEAD_LETTERS TIMEOUT_S
"""
import gzip
import sys
import time

import boto3


def main(stack: str, expected: int, expected_dead: int, timeout: float) -> int:
    ddb, s3, cfn, cw = (boto3.client(s) for s in ("dynamodb", "s3", "cloudformation", "cloudwatch"))
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])}
    bucket, table = outputs["ArchiveBucketName"], outputs["TableName"]
    prefix = outputs.get("DeadLetterPrefix", "dead-letters/")

    def count_items() -> int:
        total, kwargs = 0, {"TableName": table, "Select": "COUNT"}
        while True:
            page = ddb.scan(**kwargs)
            total += page["Count"]
            if "LastEvaluatedKey" not in page:
                return total
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def keys(pfx: str) -> list[str]:
        out = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=pfx):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out

    start = time.monotonic()
    last = None
    while True:
        stored, archived, dead = count_items(), keys("raw/"), keys(prefix)
        state = (stored, len(archived), len(dead))
        if state != last:
            print(f"demo: {stored}/{expected} tweets in DynamoDB, {len(dead)} dead letters, "
                  f"{len(archived)} archive object(s) in S3 ({time.monotonic() - start:.0f} s; "
                  "Firehose flushes its buffer at its interval)", flush=True)
            last = state
        if stored >= expected and archived and len(dead) >= expected_dead:
            break
        if time.monotonic() - start > timeout:
            print(f"demo: gave up after {timeout:.0f} s", file=sys.stderr)
            return 1
        time.sleep(2)

    archived_records = sum(
        gzip.decompress(s3.get_object(Bucket=bucket, Key=k)["Body"].read()).count(b'{"data"') for k in archived
    )
    alarms = cw.describe_alarms(AlarmNamePrefix=f"{stack}-")["MetricAlarms"]
    states: dict[str, int] = {}
    for a in alarms:
        states[a["StateValue"]] = states.get(a["StateValue"], 0) + 1
    print()
    print(f"=== {stack}: the pipeline at work ===")
    print(f"  tweets stored in DynamoDB   {stored} (the bundled data holds {expected} distinct tweets)")
    print(f"  dead letters in S3          {len(dead)} (s3://{bucket}/{prefix})")
    print(f"  raw archive (Firehose)      {len(archived)} gzip object(s), {archived_records} records, s3://{bucket}/raw/")
    print(f"  alarms                      {', '.join(f'{n} {s}' for s, n in sorted(states.items())) or 'none'}")
    return 0 if stored == expected else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))

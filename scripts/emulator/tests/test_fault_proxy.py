"""scripts/fault_proxy.py fails calls the way AWS does, and only as it says.

Each test starts the proxy in front of the session's emulator with one fault
kind at rate 1 (every call faulted) and checks, with boto3 (no retries),
what the client sees and what the emulator holds afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

PROXY = Path(__file__).resolve().parents[2] / "fault_proxy.py"  # scripts/fault_proxy.py
REGION = "us-east-1"


@contextmanager
def proxy(endpoint: str, kinds: str, rate: float = 1.0, seed: int = 1, **extra: str) -> Iterator[str]:
    args = [sys.executable, str(PROXY), "--upstream", endpoint, "--rate", str(rate), "--seed", str(seed)]
    args += ["--kinds", kinds]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("fault-proxy: listening on "), line
        yield line.strip().rsplit(" ", 1)[-1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def through(url: str) -> Callable[[str], Any]:
    config = Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=1, connect_timeout=2)
    return lambda service: boto3.client(service, endpoint_url=url, region_name=REGION, config=config)


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/__fault_proxy/stats", timeout=5) as r:
        return json.load(r)


def create_table(ddb: Any, name: str) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def stream_payloads(kinesis: Any, stream: str) -> list[bytes]:
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    return [r["Data"] for r in kinesis.get_records(ShardIterator=it, Limit=10000)["Records"]]


def test_partial_put_records_stores_exactly_the_entries_reported_as_stored(endpoint: str, client: Any) -> None:
    client("kinesis").create_stream(StreamName="fp-partial", ShardCount=1)
    with proxy(endpoint, "partial") as url:
        answer = through(url)("kinesis").put_records(
            StreamName="fp-partial",
            Records=[{"Data": f"r{i}".encode(), "PartitionKey": "k"} for i in range(50)],
        )
    failed = [i for i, r in enumerate(answer["Records"]) if "ErrorCode" in r]
    assert 0 < len(failed) < 50
    assert answer["FailedRecordCount"] == len(failed)
    assert {answer["Records"][i]["ErrorCode"] for i in failed} == {"ProvisionedThroughputExceededException"}
    stored = stream_payloads(client("kinesis"), "fp-partial")
    # Only the entries reported as stored are in the stream, in order.
    assert stored == [f"r{i}".encode() for i in range(50) if i not in failed]


def test_partial_batch_write_returns_as_unprocessed_exactly_the_items_not_written(
    endpoint: str, client: Any
) -> None:
    ddb = client("dynamodb")
    create_table(ddb, "fp-batch")
    items = [{"PutRequest": {"Item": {"id": {"S": f"i{n}"}}}} for n in range(25)]
    with proxy(endpoint, "partial") as url:
        answer = through(url)("dynamodb").batch_write_item(RequestItems={"fp-batch": items})
    left = {w["PutRequest"]["Item"]["id"]["S"] for w in answer["UnprocessedItems"].get("fp-batch", [])}
    assert 0 < len(left) < 25
    written = {i["id"]["S"] for i in ddb.scan(TableName="fp-batch")["Items"]}
    assert written == {f"i{n}" for n in range(25)} - left


def test_a_lost_reply_fails_the_call_after_the_work_is_done(endpoint: str, client: Any) -> None:
    ddb = client("dynamodb")
    create_table(ddb, "fp-lost")
    with proxy(endpoint, "lost-reply") as url:
        with pytest.raises(botocore.exceptions.ClientError) as failure:
            through(url)("dynamodb").put_item(TableName="fp-lost", Item={"id": {"S": "done"}})
    assert failure.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert ddb.get_item(TableName="fp-lost", Key={"id": {"S": "done"}}).get("Item") is not None


def test_throttling_uses_each_service_s_own_error(endpoint: str, client: Any) -> None:
    client("kinesis").create_stream(StreamName="fp-throttle", ShardCount=1)
    with proxy(endpoint, "throttle") as url:
        aws = through(url)
        with pytest.raises(botocore.exceptions.ClientError) as listing:
            aws("kinesis").list_shards(StreamName="fp-throttle")
        with pytest.raises(botocore.exceptions.ClientError) as putting:
            aws("kinesis").put_record(StreamName="fp-throttle", Data=b"x", PartitionKey="k")
        with pytest.raises(botocore.exceptions.ClientError) as metrics:
            aws("cloudwatch").put_metric_data(Namespace="fp", MetricData=[{"MetricName": "m", "Value": 1}])
        with pytest.raises(botocore.exceptions.ClientError) as s3:
            aws("s3").list_buckets()
    assert listing.value.response["Error"]["Code"] == "LimitExceededException"
    assert putting.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert metrics.value.response["Error"]["Code"] == "Throttling"
    assert (s3.value.response["Error"]["Code"], s3.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "SlowDown",
        503,
    )
    # Nothing was done: the stream is still empty.
    assert stream_payloads(client("kinesis"), "fp-throttle") == []


def test_a_reset_drops_the_connection_and_a_slow_reply_outlasts_the_timeout(endpoint: str) -> None:
    with proxy(endpoint, "reset") as url:
        with pytest.raises((botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError)):
            through(url)("kinesis").list_streams()
    with proxy(endpoint, "slow", slow_seconds="3") as url:
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            through(url)("kinesis").list_streams()


def test_the_same_seed_faults_the_same_calls_and_the_counts_add_up(endpoint: str) -> None:
    def run(seed: int) -> dict[str, Any]:
        with proxy(endpoint, "error,throttle", rate=0.3, seed=seed) as url:
            kinesis = through(url)("kinesis")
            outcomes = []
            for _ in range(40):
                try:
                    kinesis.list_streams()
                    outcomes.append("ok")
                except botocore.exceptions.ClientError as e:
                    outcomes.append(e.response["Error"]["Code"])
            return {"outcomes": outcomes, "stats": stats(url)}

    first, again, other = run(7), run(7), run(8)
    assert first["outcomes"] == again["outcomes"]
    assert first["outcomes"] != other["outcomes"]
    s = first["stats"]
    faulted = sum(1 for o in first["outcomes"] if o != "ok")
    assert s["total_calls"] == 40 and s["total_faults"] == faulted > 0
    assert s["faults"]["kinesis.ListStreams"] == s["faults_by_kind"]

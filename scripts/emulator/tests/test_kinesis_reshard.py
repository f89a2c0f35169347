"""Resharding as on AWS (kinesis_reshard): closed shards end and keep their
records, new records go to the children, sequence numbers are validated."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError


def _read_all(kinesis: Any, shard: str, stream: str) -> tuple[list[bytes], bool]:
    """Every record of a shard, and whether the shard ended (no next iterator)."""
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    data: list[bytes] = []
    for _ in range(10):
        page = kinesis.get_records(ShardIterator=it, Limit=1000)
        data += [r["Data"] for r in page["Records"]]
        it = page.get("NextShardIterator")
        if not it:
            return data, True
        if not page["Records"]:
            break
    return data, False


def test_a_split_parent_keeps_its_records_ends_and_children_take_new_ones(client: Any) -> None:
    kinesis = client("kinesis")
    stream = "ss-reshard"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.put_records(StreamName=stream, Records=[{"Data": f"old{i}".encode(), "PartitionKey": f"k{i}"} for i in range(20)])
    parent = kinesis.list_shards(StreamName=stream)["Shards"][0]
    middle = (int(parent["HashKeyRange"]["StartingHashKey"]) + int(parent["HashKeyRange"]["EndingHashKey"])) // 2
    kinesis.split_shard(StreamName=stream, ShardToSplit=parent["ShardId"], NewStartingHashKey=str(middle))
    kinesis.put_records(StreamName=stream, Records=[{"Data": f"new{i}".encode(), "PartitionKey": f"k{i}"} for i in range(20)])

    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    assert len(shards) == 3
    children = [s for s in shards if s.get("ParentShardId") == parent["ShardId"]]
    assert len(children) == 2
    closed = next(s for s in shards if s["ShardId"] == parent["ShardId"])
    assert "EndingSequenceNumber" in closed["SequenceNumberRange"]

    old, ended = _read_all(kinesis, parent["ShardId"], stream)
    assert sorted(old) == sorted(f"old{i}".encode() for i in range(20))  # moto moves them to the children
    assert ended  # moto never ends a closed shard
    new: list[bytes] = []
    for child in children:
        data, child_ended = _read_all(kinesis, child["ShardId"], stream)
        assert not child_ended  # open shards go on
        new += data
    assert sorted(new) == sorted(f"new{i}".encode() for i in range(20))


def test_shard_end_is_not_a_sequence_number(client: Any) -> None:
    kinesis = client("kinesis")
    kinesis.create_stream(StreamName="ss-validate", ShardCount=1)
    shard = kinesis.list_shards(StreamName="ss-validate")["Shards"][0]["ShardId"]
    with pytest.raises(ClientError) as caught:
        kinesis.get_shard_iterator(
            StreamName="ss-validate",
            ShardId=shard,
            ShardIteratorType="AFTER_SEQUENCE_NUMBER",
            StartingSequenceNumber="SHARD_END",
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "Value 'SHARD_END' at 'startingSequenceNumber' failed to satisfy constraint" in error["Message"]
    # A real sequence number still works.
    kinesis.get_shard_iterator(
        StreamName="ss-validate", ShardId=shard, ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber="0"
    )

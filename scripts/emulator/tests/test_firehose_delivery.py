"""Firehose delivery (firehose_delivery): buffering semantics, key layout, prefixes.

The first tests drive the delivery loop in-process with an injected clock
(``run_once(now=...)``), so the interval/size rules are checked exactly and
without sleeping. The last one checks buffering end to end on the server.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import re
import time
from typing import Any

from conftest import deploy_with_change_set, wait_for

from streamstack_emulator import apply_all
from streamstack_emulator.firehose_delivery import FirehoseDeliveryLoop, evaluate_prefix, java_datetime_format

TS = dt.datetime(2024, 3, 5, 7, 9, 2)


def test_java_datetime_patterns() -> None:
    assert java_datetime_format("yyyy/MM/dd/HH", TS) == "2024/03/05/07"
    assert java_datetime_format("yy-M-d H:mm:ss", TS) == "24-3-5 7:09:02"
    assert java_datetime_format("uuuu'-week-'DDD", TS) == "2024-week-065"
    assert java_datetime_format("'it''s' MMM", TS) == "it's Mar"


def test_prefix_evaluation() -> None:
    assert evaluate_prefix("raw/!{timestamp:yyyy/MM/dd/HH}/", TS) == "raw/2024/03/05/07/"
    # without an expression Firehose appends the default YYYY/MM/DD/HH/ layout
    assert evaluate_prefix("raw/", TS) == "raw/2024/03/05/07/"
    assert evaluate_prefix("", TS) == "2024/03/05/07/"
    assert evaluate_prefix("errors/!{firehose:error-output-type}/!{timestamp:yyyy}/", TS, "processing-failed") == (
        "errors/processing-failed/2024/"
    )
    assert re.fullmatch(r"x/[A-Za-z0-9]{11}/", evaluate_prefix("x/!{firehose:random-string}/", TS))


# --- in-process loop with an injected clock ----------------------------------

ACCOUNT, REGION = "111122223333", "us-east-1"


class World:
    """Kinesis stream + bucket + delivery stream directly on moto's backends (no server)."""

    counter = 0

    def __init__(self, size_mb: int, interval_s: int, compression: str = "UNCOMPRESSED", prefix: str = "") -> None:
        from moto.firehose.models import firehose_backends
        from moto.kinesis.models import kinesis_backends
        from moto.s3.models import s3_backends

        apply_all(start_delivery=False)
        World.counter += 1
        n = World.counter
        self.kinesis = kinesis_backends[ACCOUNT][REGION]
        self.s3 = s3_backends[ACCOUNT]["aws"]
        self.firehose = firehose_backends[ACCOUNT][REGION]
        self.stream = self.kinesis.create_stream(f"unit-src-{n}", 1)
        self.bucket = f"unit-bucket-{n}"
        self.s3.create_bucket(self.bucket, REGION)
        self.name = f"unit-delivery-{n}"
        self.firehose.create_delivery_stream(
            region=REGION,
            delivery_stream_name=self.name,
            delivery_stream_type="KinesisStreamAsSource",
            kinesis_stream_source_configuration={
                "KinesisStreamARN": self.stream.arn,
                "RoleARN": "arn:aws:iam::1:role/r",
            },
            delivery_stream_encryption_configuration_input=None,
            s3_destination_configuration=None,
            extended_s3_destination_configuration={
                "BucketARN": f"arn:aws:s3:::{self.bucket}",
                "RoleARN": "arn:aws:iam::1:role/r",
                "BufferingHints": {"SizeInMBs": size_mb, "IntervalInSeconds": interval_s},
                "CompressionFormat": compression,
                "Prefix": prefix,
            },
            redshift_destination_configuration=None,
            elasticsearch_destination_configuration=None,
            splunk_destination_configuration=None,
            http_endpoint_destination_configuration=None,
            snowflake_destination_configuration=None,
            tags=None,
        )
        self.loop = FirehoseDeliveryLoop()

    def put(self, *records: bytes) -> None:
        for record in records:
            self.stream.put_record("pk", None, base64.b64encode(record).decode())  # type: ignore[arg-type]

    def objects(self) -> list[tuple[str, bytes]]:
        keys = self.s3.buckets[self.bucket].keys
        return sorted((k.name, k.value) for k in keys.values())


def test_interval_flush_happens_exactly_when_the_interval_passes() -> None:
    w = World(size_mb=1, interval_s=2)
    w.put(b"a", b"bb", b"ccc")
    w.loop.run_once(now=100.0)  # reads the records
    w.loop.run_once(now=101.99)
    assert w.objects() == []
    w.loop.run_once(now=102.0)
    [(key, body)] = w.objects()
    assert body == b"abbccc"
    assert re.fullmatch(rf"\d{{4}}/\d\d/\d\d/\d\d/{w.name}-1-\d{{4}}(-\d\d){{5}}-[0-9a-f-]{{36}}", key)
    # nothing is delivered twice
    w.loop.run_once(now=200.0)
    assert len(w.objects()) == 1


def test_size_flush_splits_at_the_size_hint_and_keeps_the_rest_buffered() -> None:
    w = World(size_mb=1, interval_s=900)
    chunk = b"x" * (300 * 1024)
    w.put(*(chunk for _ in range(8)))  # 2.4 MiB
    w.loop.run_once(now=0.0)
    objects = w.objects()
    assert [len(body) for _, body in objects] == [3 * len(chunk), 3 * len(chunk)]  # <= 1 MiB each
    w.loop.run_once(now=899.0)
    assert len(w.objects()) == 2  # 600 KiB still waits for the interval
    w.loop.run_once(now=900.0)
    assert sorted(len(body) for _, body in w.objects()) == [2 * len(chunk), 3 * len(chunk), 3 * len(chunk)]


def test_gzip_and_literal_prefix() -> None:
    w = World(size_mb=1, interval_s=1, compression="GZIP", prefix="logs/")
    w.put(b"one\n", b"two\n")
    w.loop.run_once(now=0.0)
    w.loop.run_once(now=1.0)
    [(key, body)] = w.objects()
    assert key.startswith("logs/") and key.endswith(".gz")
    assert re.match(r"logs/\d{4}/\d\d/\d\d/\d\d/", key)
    assert gzip.decompress(body) == b"one\ntwo\n"


def test_missing_bucket_is_retried_not_lost() -> None:
    w = World(size_mb=1, interval_s=1)
    w.s3.delete_bucket(w.bucket)
    w.put(b"kept")
    w.loop.run_once(now=0.0)
    w.loop.run_once(now=5.0)  # write fails: buffer kept
    w.s3.create_bucket(w.bucket, REGION)
    w.loop.run_once(now=6.0)
    assert [body for _, body in w.objects()] == [b"kept"]


def test_records_put_before_the_delivery_stream_exists_are_read_from_trim_horizon() -> None:
    w = World(size_mb=1, interval_s=1)
    w.put(b"first")
    w.loop.run_once(now=0.0)
    w.loop.run_once(now=1.0)
    w.put(b"second")
    w.loop.run_once(now=2.0)
    w.loop.run_once(now=3.0)
    assert sorted(body for _, body in w.objects()) == [b"first", b"second"]


# --- end to end on the server --------------------------------------------------

BUF_TEMPLATE: dict[str, Any] = {
    "Resources": {
        "Stream": {"Type": "AWS::Kinesis::Stream", "Properties": {"Name": "ss-buf-stream", "ShardCount": 1}},
        "Archive": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "ss-buf-archive"}},
        "Delivery": {
            "Type": "AWS::KinesisFirehose::DeliveryStream",
            "Properties": {
                # no DeliveryStreamName: generated as <stack>-<logicalId>-<random>
                "DeliveryStreamType": "KinesisStreamAsSource",
                "KinesisStreamSourceConfiguration": {
                    "KinesisStreamARN": {"Fn::GetAtt": ["Stream", "Arn"]},
                    "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                },
                "S3DestinationConfiguration": {
                    "BucketARN": {"Fn::GetAtt": ["Archive", "Arn"]},
                    "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                    "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 900},
                    "CompressionFormat": "UNCOMPRESSED",
                    "Prefix": "buf/",
                },
            },
        },
    },
    "Outputs": {"Delivery": {"Value": {"Ref": "Delivery"}}},
}


def test_buffering_end_to_end(client: Any) -> None:
    cfn, kinesis, s3 = client("cloudformation"), client("kinesis"), client("s3")
    stack = deploy_with_change_set(cfn, "ss-buf", BUF_TEMPLATE)
    delivery = stack["Outputs"][0]["OutputValue"]
    assert re.fullmatch(r"ss-buf-Delivery-[A-Za-z0-9]+", delivery)

    small = [json.dumps({"n": i}).encode() for i in range(50)]
    kinesis.put_records(StreamName="ss-buf-stream", Records=[{"Data": r, "PartitionKey": "k"} for r in small])
    time.sleep(3)  # six delivery ticks: far below 1 MiB and 900 s, so nothing may be written
    assert s3.list_objects_v2(Bucket="ss-buf-archive")["KeyCount"] == 0

    big = [bytes([65 + i]) * 100_000 for i in range(11)]  # pushes the buffer past 1 MiB
    kinesis.put_records(StreamName="ss-buf-stream", Records=[{"Data": r, "PartitionKey": "k"} for r in big])
    listing = wait_for(lambda: s3.list_objects_v2(Bucket="ss-buf-archive").get("Contents"), 10, what="size flush")
    assert len(listing) == 1
    key = listing[0]["Key"]
    now = dt.datetime.now(dt.UTC)
    assert re.fullmatch(rf"buf/\d{{4}}/\d\d/\d\d/\d\d/{delivery}-1-\d{{4}}(-\d\d){{5}}-[0-9a-f-]{{36}}", key), key
    assert key.startswith(f"buf/{now:%Y/}")
    body = s3.get_object(Bucket="ss-buf-archive", Key=key)["Body"].read()
    # everything that fits in 1 MiB, in order; the 11th big record stays buffered
    assert body == b"".join(small + big[:10])
    time.sleep(1.5)
    assert s3.list_objects_v2(Bucket="ss-buf-archive")["KeyCount"] == 1

    cfn.delete_stack(StackName="ss-buf")  # non-empty bucket: DELETE_FAILED (cfn_s3)
    assert cfn.describe_stacks(StackName="ss-buf")["Stacks"][0]["StackStatus"] == "DELETE_FAILED"

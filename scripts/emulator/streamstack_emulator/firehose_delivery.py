"""Deliver Kinesis-sourced Firehose streams to S3, the way Firehose does.

Gap in moto 5.2.1: a delivery stream of type ``KinesisStreamAsSource`` is only
a record in the Firehose backend; nothing ever reads the source stream, so
the S3 archive stays empty. (Direct PutRecord/PutRecordBatch, which moto
does implement, writes one object per call at once: no buffering, no
compression, prefix expressions left literal. That path is left as moto has it.)

Patch: a daemon thread in the server process that, every ``tick`` seconds,
for every Kinesis-sourced delivery stream with an S3 / ExtendedS3 destination:

* reads the new records of every shard of the source stream straight from
  moto's Kinesis backend (in-process), starting at TRIM_HORIZON and
  remembering the last sequence number read per shard;
* buffers them and writes an S3 object when the buffer reaches
  ``BufferingHints.SizeInMBs`` (MiB) or when ``BufferingHints.IntervalInSeconds``
  has passed since the oldest buffered record was read (defaults 5 MiB /
  300 s, as on AWS); objects never exceed the size hint unless a single
  record does;
* concatenates the record payloads as they are (Firehose adds no delimiter),
  gzip-compresses them for ``CompressionFormat: GZIP`` (key ends in ``.gz``);
* names the object ``<prefix><name>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid>``, where
  ``<prefix>`` is the Prefix with its ``!{timestamp:<Java pattern>}`` and
  ``!{firehose:random-string}`` expressions evaluated, or, when the Prefix has
  no expression, the Prefix followed by ``YYYY/MM/DD/HH/``; times are UTC and
  come from the arrival time of the oldest record in the object, as on AWS;
* publishes the AWS/Firehose metrics DeliveryToS3.Records/Bytes/Success/
  DataFreshness and DataReadFromKinesisStream.Records/Bytes to moto's
  CloudWatch, so freshness alarms and dashboards have data points.

A failed S3 write (bucket missing) keeps the buffer and is retried on the
next tick, as Firehose retries. Thread safety: moto's request threads append
to ``Shard.records`` (an OrderedDict keyed by consecutive integers); this
loop only does single ``dict.get`` lookups on it, which are atomic under the
GIL, and takes snapshots (``list(...)``) of the backends' dicts, retrying on
the next tick if one changed size during the copy. All buffer state is owned
by the delivery thread.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import logging
import re
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends
from moto.core.utils import utcnow
from moto.firehose.models import DeliveryStream, firehose_backends
from moto.kinesis.models import Shard, kinesis_backends
from moto.moto_api._internal import mock_random
from moto.s3.models import s3_backends

log = logging.getLogger("streamstack_emulator.firehose")

DEFAULT_SIZE_MB = 5
DEFAULT_INTERVAL_S = 300

# ---------------------------------------------------------------------------
# Prefix expressions
# ---------------------------------------------------------------------------

_EXPRESSION = re.compile(r"!\{([^}:]+):([^}]*)\}")


def java_datetime_format(pattern: str, ts: dt.datetime) -> str:
    """Format ``ts`` with a java.time.format.DateTimeFormatter pattern.

    Supports what Firehose prefixes use: y/u (year), M (month), d (day), H
    (hour), m (minute), s (second), D (day of year), 'quoted literals' and
    any non-letter characters as literals. Unknown letters are kept as is.
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "'":
            if pattern.startswith("''", i):  # '' is a literal quote
                out.append("'")
                i += 2
                continue
            j = i + 1  # 'quoted text', in which '' is a quote too
            while j < len(pattern):
                if pattern.startswith("''", j):
                    out.append("'")
                    j += 2
                elif pattern[j] == "'":
                    break
                else:
                    out.append(pattern[j])
                    j += 1
            i = j + 1
            continue
        if c not in string.ascii_letters:
            out.append(c)
            i += 1
            continue
        j = i
        while j < len(pattern) and pattern[j] == c:
            j += 1
        n = j - i
        if c in "yu":
            out.append(f"{ts.year % 100:02d}" if n == 2 else f"{ts.year:0{max(n, 4)}d}")
        elif c in "ML":
            if n >= 4:
                out.append(ts.strftime("%B"))
            elif n == 3:
                out.append(ts.strftime("%b"))
            else:
                out.append(f"{ts.month:0{n}d}")
        elif c == "d":
            out.append(f"{ts.day:0{n}d}")
        elif c == "D":
            out.append(f"{ts.timetuple().tm_yday:0{n}d}")
        elif c == "H":
            out.append(f"{ts.hour:0{n}d}")
        elif c == "m":
            out.append(f"{ts.minute:0{n}d}")
        elif c == "s":
            out.append(f"{ts.second:0{n}d}")
        else:
            out.append(pattern[i:j])
        i = j
    return "".join(out)


def _random_string() -> str:
    return "".join(mock_random.choice(string.ascii_letters + string.digits) for _ in range(11))


def evaluate_prefix(prefix: str, ts: dt.datetime, error_output_type: str | None = None) -> str:
    """The S3 key prefix Firehose derives from a Prefix/ErrorOutputPrefix at ``ts`` (UTC)."""
    if not _EXPRESSION.search(prefix):
        return f"{prefix}{ts:%Y/%m/%d/%H}/"

    def substitute(match: re.Match[str]) -> str:
        namespace, argument = match.group(1), match.group(2)
        if namespace == "timestamp":
            return java_datetime_format(argument, ts)
        if namespace == "firehose" and argument == "random-string":
            return _random_string()
        if namespace == "firehose" and argument == "error-output-type" and error_output_type:
            return error_output_type
        return match.group(0)

    return _EXPRESSION.sub(substitute, prefix)


def object_key(stream_name: str, version: str, destination: dict[str, Any], ts: dt.datetime) -> str:
    compressed = destination.get("CompressionFormat") == "GZIP"
    return (
        f"{evaluate_prefix(destination.get('Prefix') or '', ts)}"
        f"{stream_name}-{version}-{ts:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}"
        f"{'.gz' if compressed else ''}"
    )


# ---------------------------------------------------------------------------
# Delivery state and loop
# ---------------------------------------------------------------------------


@dataclass
class _Buffered:
    data: bytes
    arrival: dt.datetime  # Kinesis ApproximateArrivalTimestamp (UTC, naive)
    read_at: float  # time.monotonic() when this loop read it


@dataclass
class _DeliveryState:
    positions: dict[str, int] = field(default_factory=dict)  # shard id -> last sequence read
    buffer: list[_Buffered] = field(default_factory=list)
    buffered_bytes: int = 0
    warned: str | None = None


def _destination(stream: DeliveryStream) -> dict[str, Any] | None:
    for destination in stream.destinations:
        config = destination.get("ExtendedS3") or destination.get("S3")
        if config:
            return config
    return None


def _new_records(shard: Shard, last: int) -> list[Any]:
    """Records of ``shard`` after sequence number ``last``, without iterating the live dict."""
    records = shard.records
    found = []
    seq = last + 1
    while (record := records.get(seq)) is not None:  # moto numbers records 1, 2, 3, ... per shard
        found.append(record)
        seq += 1
    if not found and records:
        # Fallback for gaps (not produced by moto 5.2, but cheap to tolerate).
        keys = sorted(k for k in list(records.keys()) if k > last)
        found = [records[k] for k in keys if k in records]
    return found


class FirehoseDeliveryLoop:
    """Background thread moving Kinesis records into S3 for Kinesis-sourced delivery streams."""

    def __init__(self, tick: float = 0.5):
        self.tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._states: dict[int, tuple[DeliveryStream, _DeliveryState]] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="firehose-delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.run_once()
            except RuntimeError as exc:  # a backend dict changed size during a copy
                log.debug("delivery tick skipped: %s", exc)
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("firehose delivery tick failed")

    def run_once(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        live: set[int] = set()
        for account_id, per_region in list(dict.items(firehose_backends)):
            for region, backend in list(dict.items(per_region)):
                for stream in list(backend.delivery_streams.values()):
                    if stream.delivery_stream_type != "KinesisStreamAsSource":
                        continue
                    destination = _destination(stream)
                    if destination is None:
                        continue
                    # Keyed by object identity: a re-created stream of the same name starts afresh.
                    key = id(stream)
                    live.add(key)
                    if key not in self._states or self._states[key][0] is not stream:
                        self._states[key] = (stream, _DeliveryState())
                    state = self._states[key][1]
                    self._read_source(account_id, region, stream, state, now)
                    self._flush(account_id, region, stream, destination, state, now)
        for key in set(self._states) - live:
            del self._states[key]

    def _read_source(
        self, account_id: str, region: str, stream: DeliveryStream, state: _DeliveryState, now: float
    ) -> None:
        arn = (stream.source or {}).get("KinesisStreamARN", "")
        parts = arn.split(":")
        if len(parts) < 6:
            return
        src_region, src_account = parts[3] or region, parts[4] or account_id
        source = kinesis_backends[src_account][src_region].streams.get(parts[5].split("/", 1)[-1])
        if source is None:
            self._warn_once(state, f"source stream {arn} not found")
            return
        count = size = 0
        for shard_id, shard in list(source.shards.items()):
            records = _new_records(shard, state.positions.get(shard_id, 0))
            if not records:
                continue
            state.positions[shard_id] = records[-1].sequence_number
            for record in records:
                data = base64.b64decode(record.data)
                state.buffer.append(_Buffered(data, record.created_at_datetime, now))
                state.buffered_bytes += len(data)
                count += 1
                size += len(data)
        if count:
            self._metrics(
                account_id,
                region,
                stream,
                [
                    ("DataReadFromKinesisStream.Records", count, "Count"),
                    ("DataReadFromKinesisStream.Bytes", size, "Bytes"),
                ],
            )

    def _flush(
        self,
        account_id: str,
        region: str,
        stream: DeliveryStream,
        destination: dict[str, Any],
        state: _DeliveryState,
        now: float,
    ) -> None:
        hints = destination.get("BufferingHints") or {}
        size_limit = int(float(hints.get("SizeInMBs") or DEFAULT_SIZE_MB) * 1024 * 1024)
        interval = float(hints.get("IntervalInSeconds") or DEFAULT_INTERVAL_S)
        while state.buffer:
            interval_passed = now - state.buffer[0].read_at >= interval
            if state.buffered_bytes < size_limit and not interval_passed:
                return
            batch, batch_bytes = [], 0
            for item in state.buffer:
                if batch and batch_bytes + len(item.data) > size_limit:
                    break
                batch.append(item)
                batch_bytes += len(item.data)
            if not self._write(account_id, stream, destination, batch, state):
                return  # keep the buffer, retry next tick
            del state.buffer[: len(batch)]
            state.buffered_bytes -= batch_bytes
            oldest = min(item.arrival for item in batch)
            freshness = max(0.0, (utcnow() - oldest).total_seconds())
            self._metrics(
                account_id,
                region,
                stream,
                [
                    ("DeliveryToS3.Records", len(batch), "Count"),
                    ("DeliveryToS3.Bytes", batch_bytes, "Bytes"),
                    ("DeliveryToS3.Success", 1, "None"),
                    ("DeliveryToS3.DataFreshness", freshness, "Seconds"),
                ],
            )

    def _write(
        self,
        account_id: str,
        stream: DeliveryStream,
        destination: dict[str, Any],
        batch: list[_Buffered],
        state: _DeliveryState,
    ) -> bool:
        ts = min(item.arrival for item in batch)
        body = b"".join(item.data for item in batch)
        compression = destination.get("CompressionFormat") or "UNCOMPRESSED"
        if compression == "GZIP":
            body = gzip.compress(body)
        elif compression != "UNCOMPRESSED":
            self._warn_once(state, f"CompressionFormat {compression} not emulated; writing uncompressed")
        bucket_arn = destination.get("BucketARN", "")
        bucket = bucket_arn.split(":::", 1)[-1]
        partition = bucket_arn.split(":")[1] if bucket_arn.count(":") >= 2 else "aws"
        key = object_key(stream.delivery_stream_name, stream.version_id, destination, ts)
        try:
            s3_backends[account_id][partition].put_object(bucket, key, body)
        except Exception as exc:  # noqa: BLE001 - Firehose retries S3 failures
            self._warn_once(state, f"S3 delivery to {bucket_arn} failed, will retry: {exc!r}")
            return False
        state.warned = None
        log.info(
            "firehose %s: delivered %d records (%d bytes) to s3://%s/%s",
            stream.delivery_stream_name,
            len(batch),
            len(body),
            bucket,
            key,
        )
        return True

    @staticmethod
    def _metrics(account_id: str, region: str, stream: DeliveryStream, values: list[tuple[str, float, str]]) -> None:
        dimensions = [{"Name": "DeliveryStreamName", "Value": stream.delivery_stream_name}]
        data = [
            {"MetricName": name, "Value": float(value), "Unit": unit, "Dimensions": dimensions}
            for name, value, unit in values
        ]
        try:
            cloudwatch_backends[account_id][region].put_metric_data("AWS/Firehose", data)
        except Exception:  # noqa: BLE001 - metrics are best effort
            log.debug("could not publish firehose metrics", exc_info=True)

    @staticmethod
    def _warn_once(state: _DeliveryState, message: str) -> None:
        if state.warned != message:
            log.warning(message)
            state.warned = message


_loop: FirehoseDeliveryLoop | None = None


def apply(tick: float = 0.5) -> FirehoseDeliveryLoop:
    """Start the delivery thread (once per process) and return it."""
    global _loop
    if _loop is None:
        _loop = FirehoseDeliveryLoop(tick)
        _loop.start()
    return _loop

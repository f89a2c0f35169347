"""Kinesis resharding and request validation as AWS does them.

Gaps in moto 5.2.1 (``moto/kinesis/models.py``, ``utils.py``), measured:

* ``GetShardIterator`` takes any ``StartingSequenceNumber``: ``SHARD_END``
  (a checkpoint marker, not a sequence number) gives an HTTP 500 from
  ``int()``. AWS answers ``ValidationException: 1 validation error detected:
  Value 'SHARD_END' at 'startingSequenceNumber' failed to satisfy
  constraint: Member must satisfy regular expression pattern:
  0|([1-9]\\d{0,128})``;
* a closed shard never ends: ``GetRecords`` on a split or merged parent
  always returns a ``NextShardIterator``, so a consumer can never read it
  to its end and start the children. AWS returns no ``NextShardIterator``
  once a closed shard's last record has been read;
* ``SplitShard`` and ``MergeShards`` move the parents' records into the
  children (a consumer reads them twice, under new sequence numbers), and
  puts after a reshard still land in the closed parents (``get_shard_for_key``
  looks at every shard). On AWS a parent keeps its records until they
  expire and takes no new ones; new records go to the open children.

Patch: validate the sequence number like AWS, end closed shards, keep the
parents' records where they are, and route puts to open shards only.
"""

from __future__ import annotations

import re
from operator import attrgetter
from typing import Any

from moto.kinesis import utils as kinesis_utils
from moto.utilities.utils import md5_hash
from moto.kinesis.exceptions import InvalidArgumentError, ValidationException
from moto.kinesis.models import KinesisBackend, Shard, Stream

SEQUENCE_PATTERN = r"0|([1-9]\d{0,128})"
_SEQUENCE = re.compile(rf"^(?:{SEQUENCE_PATTERN})$")


def _new_shard_id(stream: Stream) -> int:
    return sorted(stream.shards.values(), key=attrgetter("_shard_id"))[-1]._shard_id + 1


def split_shard(self: Stream, shard_to_split: str, new_starting_hash_key: str) -> None:
    new_start = int(new_starting_hash_key)
    shard = self.shards[shard_to_split]
    if not shard.starting_hash < new_start < shard.ending_hash:
        raise InvalidArgumentError(
            message=f"NewStartingHashKey {new_start} used in SplitShard() on shard {shard_to_split} "
            f"in stream {self.stream_name} under account {self.account_id} is not both greater than "
            f"one plus the shard's StartingHashKey {shard.starting_hash} and less than the shard's "
            f"EndingHashKey {(shard.ending_hash - 1)}."
        )
    if not shard.is_open:
        raise InvalidArgumentError(
            message=f"Shard {shard.shard_id} in stream {self.stream_name} under account "
            f"{self.account_id} has already been merged or split, and thus is not eligible for "
            "merging or splitting."
        )
    first = _new_shard_id(self)
    for index, (start, end) in enumerate(
        [(shard.starting_hash, new_start - 1), (new_start, shard.ending_hash)]
    ):
        child = Shard(first + index, starting_hash=start, ending_hash=end, parent=shard.shard_id)
        self.shards[child.shard_id] = child
    # The parent keeps its records (readable until they expire) and is closed.
    shard.is_open = False


def merge_shards(self: Stream, shard_to_merge: str, adjacent_shard_to_merge: str) -> None:
    first, second = self.shards[shard_to_merge], self.shards[adjacent_shard_to_merge]
    for shard in (first, second):
        if not shard.is_open:
            raise InvalidArgumentError(
                message=f"Shard {shard.shard_id} in stream {self.stream_name} under account "
                f"{self.account_id} has already been merged or split, and thus is not eligible for "
                "merging or splitting."
            )
    if first.ending_hash + 1 != second.starting_hash and second.ending_hash + 1 != first.starting_hash:
        raise InvalidArgumentError(adjacent_shard_to_merge)
    child = Shard(
        _new_shard_id(self),
        starting_hash=min(first.starting_hash, second.starting_hash),
        ending_hash=max(first.ending_hash, second.ending_hash),
        parent=first.shard_id,
        adjacent_parent=second.shard_id,
    )
    self.shards[child.shard_id] = child
    first.is_open = False
    second.is_open = False


def get_shard_for_key(self: Stream, partition_key: str, explicit_hash_key: str) -> Shard | None:
    """moto's own routing and checks, over the open shards only."""
    if not isinstance(partition_key, str) or len(partition_key) > 256:
        raise InvalidArgumentError("partition_key")
    if explicit_hash_key:
        if not isinstance(explicit_hash_key, str):
            raise InvalidArgumentError("explicit_hash_key")
        int_key = int(explicit_hash_key)
        if int_key >= 2**128:
            raise InvalidArgumentError("explicit_hash_key")
    else:
        int_key = int(md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
    for shard in self.shards.values():
        if shard.is_open and shard.starting_hash <= int_key <= shard.ending_hash:
            return shard
    return None


def get_shard_iterator(
    self: KinesisBackend,
    stream_arn: str | None,
    stream_name: str | None,
    shard_id: str,
    shard_iterator_type: str,
    starting_sequence_number: Any,
    at_timestamp: Any,
) -> str:
    if starting_sequence_number is not None and not _SEQUENCE.match(str(starting_sequence_number)):
        raise ValidationException(
            value=str(starting_sequence_number),
            position="startingSequenceNumber",
            regex_to_match=SEQUENCE_PATTERN,
        )
    return _original_get_shard_iterator(
        self,
        stream_arn,
        stream_name,
        shard_id,
        shard_iterator_type,
        starting_sequence_number,
        at_timestamp,
    )


def get_records(
    self: KinesisBackend, stream_arn: str | None, shard_iterator: str, limit: int | None
) -> tuple[str | None, list[Any], int]:
    next_iterator, records, behind = _original_get_records(self, stream_arn, shard_iterator, limit)
    stream_name, shard_id, _ = kinesis_utils.decompose_shard_iterator(next_iterator)
    stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
    shard = stream.get_shard(shard_id)
    _, _, position = kinesis_utils.decompose_shard_iterator(next_iterator)
    if not shard.is_open and int(position) >= shard.get_max_sequence_number():
        # Read to its end: AWS gives no next iterator for a closed shard.
        return None, records, behind  # type: ignore[return-value]
    return next_iterator, records, behind


_original_get_shard_iterator = KinesisBackend.get_shard_iterator
_original_get_records = KinesisBackend.get_records


def apply() -> None:
    """Install the patches (idempotent)."""
    if getattr(Stream, "_streamstack_reshard", False):
        return
    Stream.split_shard = split_shard  # type: ignore[method-assign]
    Stream.merge_shards = merge_shards  # type: ignore[method-assign]
    Stream.get_shard_for_key = get_shard_for_key  # type: ignore[method-assign]
    KinesisBackend.get_shard_iterator = get_shard_iterator  # type: ignore[method-assign]
    KinesisBackend.get_records = get_records  # type: ignore[method-assign]
    Stream._streamstack_reshard = True  # type: ignore[attr-defined]

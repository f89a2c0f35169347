"""CloudFormation ``AWS::Kinesis::Stream``: honour StreamEncryption and StreamModeSpecification.

Gap in moto 5.2.1: ``Stream.create_from_cloudformation_json`` reads only Name,
ShardCount, RetentionPeriodHours and Tags. A template asking for KMS
encryption (``StreamEncryption: {EncryptionType: KMS, KeyId: alias/aws/kinesis}``)
or on-demand capacity gets an unencrypted provisioned stream, and
DescribeStreamSummary says so.

Patch: wrap moto's create/update classmethods and afterwards apply the two
properties through moto's own Kinesis backend (the same state that
StartStreamEncryption / UpdateStreamMode set).
"""

from __future__ import annotations

from typing import Any

from moto.kinesis.models import Stream, kinesis_backends


def _converge(stream: Stream, properties: dict[str, Any], account_id: str, region_name: str) -> None:
    backend = kinesis_backends[account_id][region_name]
    encryption = properties.get("StreamEncryption")
    if encryption:
        backend.start_stream_encryption(
            stream_arn=None,  # type: ignore[arg-type]
            stream_name=stream.stream_name,
            encryption_type=encryption.get("EncryptionType", "KMS"),
            key_id=encryption.get("KeyId"),
        )
    elif stream.encryption_type != "NONE":
        backend.stop_stream_encryption(stream_arn=None, stream_name=stream.stream_name)  # type: ignore[arg-type]

    mode = (properties.get("StreamModeSpecification") or {}).get("StreamMode", "PROVISIONED")
    if mode != stream.stream_mode.get("StreamMode"):
        stream.stream_mode = {"StreamMode": mode}
        if mode == "ON_DEMAND" and not any(s.records for s in stream.shards.values()):
            stream.init_shards(4)  # what moto's CreateStream gives an on-demand stream


def apply() -> None:
    """Wrap Stream's CloudFormation create/update to apply the two properties."""
    if getattr(Stream, "_streamstack_patched", False):
        return
    original_create = Stream.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
    original_update = Stream.update_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        stream = original_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        _converge(stream, cloudformation_json.get("Properties", {}), account_id, region_name)
        return stream

    def update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):  # type: ignore[no-untyped-def]
        stream = original_update(
            cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )
        _converge(stream, cloudformation_json.get("Properties", {}), account_id, region_name)
        return stream

    Stream.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment]
    Stream.update_from_cloudformation_json = classmethod(update)  # type: ignore[method-assign,assignment]
    Stream._streamstack_patched = True  # type: ignore[attr-defined]

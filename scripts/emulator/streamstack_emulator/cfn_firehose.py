"""CloudFormation support for ``AWS::KinesisFirehose::DeliveryStream``.

Gap in moto 5.2.1: moto has a Firehose backend, but no ``CloudFormationModel``
for this resource type, so CloudFormation logs "No Moto CloudFormation support
for AWS::KinesisFirehose::DeliveryStream", skips the resource and still
reports CREATE_COMPLETE. The archive half of the pipeline silently does not
exist.

Patch: a ``CloudFormationModel`` subclass (moto discovers resource types
through ``CloudFormationModel.__subclasses__()``) that creates and deletes the
delivery stream on moto's own Firehose backend, so the normal Firehose API
(DescribeDeliveryStream, PutRecord, ...) sees it. Ref returns the stream name,
Fn::GetAtt Arn the stream ARN, exactly as on AWS.
"""

from __future__ import annotations

from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.firehose.exceptions import ResourceNotFoundException
from moto.firehose.models import firehose_backends

from .cfn_resource_handler import ResourceHandlerWithAttributes

# CloudFormation property -> keyword of FirehoseBackend.create_delivery_stream.
# The nested property names of these configurations are the same in
# CloudFormation and in the Firehose API, so they pass through unchanged.
_DESTINATIONS = {
    "S3DestinationConfiguration": "s3_destination_configuration",
    "ExtendedS3DestinationConfiguration": "extended_s3_destination_configuration",
    "RedshiftDestinationConfiguration": "redshift_destination_configuration",
    "ElasticsearchDestinationConfiguration": "elasticsearch_destination_configuration",
    "SplunkDestinationConfiguration": "splunk_destination_configuration",
    "HttpEndpointDestinationConfiguration": "http_endpoint_destination_configuration",
    "SnowflakeDestinationConfiguration": "snowflake_destination_configuration",
}


class FirehoseDeliveryStreamResource(ResourceHandlerWithAttributes, CloudFormationModel):
    """Stack-side handle of a delivery stream that lives in moto's Firehose backend."""

    cfn_type = "AWS::KinesisFirehose::DeliveryStream"
    cfn_name_property = "DeliveryStreamName"
    cfn_attributes = {"Arn": "arn"}
    already_gone = (ResourceNotFoundException,)

    def __init__(self, account_id: str, region_name: str, name: str, arn: str):
        super().__init__(name)
        self.account_id = account_id
        self.region_name = region_name
        self.arn = arn

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> FirehoseDeliveryStreamResource:
        props = cloudformation_json.get("Properties", {})
        backend = firehose_backends[account_id][region_name]
        destinations = {kw: props.get(prop) for prop, kw in _DESTINATIONS.items()}
        arn = backend.create_delivery_stream(
            region=region_name,
            delivery_stream_name=resource_name,
            delivery_stream_type=props.get("DeliveryStreamType") or "DirectPut",
            kinesis_stream_source_configuration=props.get("KinesisStreamSourceConfiguration"),
            delivery_stream_encryption_configuration_input=props.get("DeliveryStreamEncryptionConfigurationInput"),
            tags=props.get("Tags"),
            **destinations,
        )
        return cls(account_id, region_name, resource_name, arn)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: FirehoseDeliveryStreamResource,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> FirehoseDeliveryStreamResource:
        # Replace: simpler than mapping every property onto UpdateDestination,
        # and the observable result (a stream with the new configuration) is
        # the same. Records still buffered in the emulator are dropped.
        cls.delete_from_cloudformation_json(original_resource.name, cloudformation_json, account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    @classmethod
    def delete_named(cls, name: str, account_id: str, region_name: str) -> None:
        firehose_backends[account_id][region_name].delete_delivery_stream(name)


def apply() -> None:
    """Nothing to patch: defining the subclass above registers the type.

    ``streamstack_emulator.apply_all`` clears moto's cached model map afterwards.
    """

"""CloudFormation support for ``AWS::Logs::LogStream``.

Gap in moto 5.2.1: no ``CloudFormationModel`` for this type. CloudFormation
logs "No Moto CloudFormation support for AWS::Logs::LogStream", creates
nothing, and the stack still reaches CREATE_COMPLETE: DescribeLogStreams does
not show the stream (a Firehose error log stream, for instance),
DescribeStackResources lists it with an empty LogicalResourceId and
ResourceType, and it has no stack events.

Patch: a ``CloudFormationModel`` subclass that creates the stream on moto's
own CloudWatch Logs backend (``create_log_stream``) and deletes it with the
stack (a stream or group already gone counts as deleted). Physical id and
``Ref``: the stream name; without ``LogStreamName`` one is generated as
``<stack>-<logicalId>-<RANDOM>``. Changing the name or group replaces the
stream, as on AWS.
"""

from __future__ import annotations

from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.logs.exceptions import ResourceNotFoundException
from moto.logs.models import logs_backends

from .cfn_resource_handler import ResourceHandler


class LogStreamResource(ResourceHandler, CloudFormationModel):
    """Stack-side handle of a log stream in moto's CloudWatch Logs backend."""

    cfn_type = "AWS::Logs::LogStream"
    cfn_name_property = "LogStreamName"
    already_gone = (ResourceNotFoundException,)
    # A stream is deleted through its group (``delete``), never by name alone:
    # moto's class-level fallback stays skipped, as for any model without one.
    delete_from_cloudformation_json = vars(CloudFormationModel)["delete_from_cloudformation_json"]

    def __init__(self, log_group_name: str, name: str):
        super().__init__(name)
        self.log_group_name = log_group_name

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> LogStreamResource:
        group = cloudformation_json.get("Properties", {})["LogGroupName"]
        logs_backends[account_id][region_name].create_log_stream(group, resource_name)
        return cls(group, resource_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: LogStreamResource,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> LogStreamResource:
        props = cloudformation_json.get("Properties", {})
        # moto generates a fresh name on every update: keep a generated one.
        name = props.get("LogStreamName") or original_resource.name
        if (props.get("LogGroupName"), name) == (original_resource.log_group_name, original_resource.name):
            return original_resource
        new = cls.create_from_cloudformation_json(name, cloudformation_json, account_id, region_name)
        original_resource.delete(account_id, region_name)
        return new

    def delete(self, account_id: str, region_name: str) -> None:
        try:
            logs_backends[account_id][region_name].delete_log_stream(self.log_group_name, self.name)
        except self.already_gone:
            pass


def apply() -> None:
    """Nothing to patch: defining the subclass registers the type (see ``apply_all``)."""

"""Resource types moto has no CloudFormation support for stay visible in the stack.

Gap in moto 5.2.1: a resource whose type has no ``CloudFormationModel`` (moto
logs "No Moto CloudFormation support for AWS::...") is skipped without a
trace: no stack events, an entry with empty LogicalResourceId/ResourceType in
DescribeStackResources, ``Ref`` to it resolves to nothing (the referencing
property is silently dropped), and every later lookup tries to create it again.

Patch: such a resource is recorded in the stack as a placeholder: it gets
CREATE_IN_PROGRESS / CREATE_COMPLETE (and DELETE_*) events like any other, a
physical id generated like CloudFormation's (``<stack>-<logicalId>-<RANDOM>``,
also what ``Ref`` returns) and a listing in DescribeStackResources. Nothing is
created in any backend, and the CREATE_COMPLETE event and the resource's
ResourceStatusReason say so. ``Fn::GetAtt`` on it is a template error.
Types with a real model (moto's or this package's, e.g. ``cfn_bucket_policy``,
``cfn_log_stream``) are unaffected, as are moto's deliberate no-op types
(``AWS::CloudFormation::WaitCondition[Handle]``).
"""

from __future__ import annotations

import logging
from typing import Any

from moto.cloudformation import parsing
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

from .stack_events_core import STATUS_REASON_ATTR

log = logging.getLogger("streamstack_emulator")


class PlaceholderResource:
    """Stands in for a resource of a type moto cannot create (not a registered model)."""

    def __init__(self, resource_type: str, physical_id: str):
        self.cf_resource_type = resource_type
        self.physical_id = physical_id
        setattr(
            self,
            STATUS_REASON_ATTR,
            f"streamstack emulator: moto has no CloudFormation support for {resource_type}; "
            "the resource is recorded in the stack only, nothing was created",
        )

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        raise UnformattedGetAttTemplateException()

    def is_created(self) -> bool:
        return True

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> PlaceholderResource:
        resource_type = kwargs.get("ResourceType") or cloudformation_json.get("Type", "")
        log.warning("%s %s: placeholder only (no moto support)", resource_type, kwargs.get("LogicalId", resource_name))
        return cls(resource_type, resource_name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: PlaceholderResource,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> PlaceholderResource:
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        return None

    def delete(self, account_id: str, region_name: str) -> None:
        return None


def apply() -> None:
    """Wrap parsing.resource_class_from_type (idempotent)."""
    if getattr(parsing, "_streamstack_placeholder_patched", False):
        return
    original = parsing.resource_class_from_type

    def resource_class_from_type(resource_type: str) -> Any:
        resource_class = original(resource_type)
        if resource_class is None and resource_type not in parsing.NULL_MODELS:
            return PlaceholderResource
        return resource_class

    parsing.resource_class_from_type = resource_class_from_type  # type: ignore[assignment]
    parsing._streamstack_placeholder_patched = True  # type: ignore[attr-defined]

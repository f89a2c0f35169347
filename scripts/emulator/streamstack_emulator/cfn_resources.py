"""DescribeStackResources / ListStackResources / DescribeStackResource from what really happened.

Gaps in moto 5.2.1:

* The three calls list ``ResourceMap.values()``, and ResourceMap is lazy: a
  resource that is not (or no longer) in the map is *created on the spot*.
  Describing a rolled-back (ROLLBACK_COMPLETE) or DELETE_FAILED stack re-created
  every resource it had deleted (queues, VPCs, ... came back), and a template
  moto cannot evaluate (``Fn::Select`` over ``Fn::Cidr``) made the call an
  HTTP 500 by re-raising the create error.
* A resource moto did not create (unsupported type, false condition) comes
  back as ``None``: an entry with an empty LogicalResourceId and ResourceType.
* ResourceStatus is the *stack's* status for every resource (DescribeStackResources)
  or a hard-coded CREATE_COMPLETE (ListStackResources); there is no
  ResourceStatusReason, and the timestamps are fixed dates from 2010/2011.
* DescribeStackResources ignores ``PhysicalResourceId``.

Patch: answer the three calls from the stack's template, its live resources
(``_parsed_resources``, never creating anything) and the per-resource events
that ``cfn_events`` records: each resource the stack has acted on, with its
logical id, type, physical id (also after deletion), last status, reason and
time, in template order, for live and deleted stacks (by stack id) alike.
"""

from __future__ import annotations

import json
from typing import Any

from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import Stack
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.responses import ActionResult

NOT_CHECKED = {"StackResourceDriftStatus": "NOT_CHECKED"}


def _live_physical_id(resource: Any) -> str | None:
    value = getattr(resource, "physical_resource_id", None)
    return value if isinstance(value, str) and value else None


def _template_resources(stack: Stack) -> dict[str, Any]:
    return (getattr(stack, "template_dict", None) or {}).get("Resources") or stack.resource_map._resource_json_map or {}


def resource_rows(stack: Stack) -> list[dict[str, Any]]:
    """One dict per resource of the stack (see module docstring); internal field names."""
    last_event: dict[str, Any] = {}
    last_physical: dict[str, str] = {}
    for event in stack.events:  # oldest first
        if event.physical_resource_id == stack.stack_id:
            continue  # the stack's own events
        last_event[event.logical_resource_id] = event
        if event.physical_resource_id:
            last_physical[event.logical_resource_id] = event.physical_resource_id
    parsed = stack.resource_map._parsed_resources
    rows = []
    for logical_id, resource_json in _template_resources(stack).items():
        event = last_event.get(logical_id)
        resource = parsed.get(logical_id)
        if isinstance(resource, str):
            resource = None
        if event is None and resource is None:
            continue  # never attempted (condition false, change set not executed, ...)
        metadata = resource_json.get("Metadata")
        rows.append(
            {
                "logical_id": logical_id,
                "physical_id": _live_physical_id(resource) or last_physical.get(logical_id),
                "type": resource_json.get("Type") or getattr(resource, "cf_resource_type", ""),
                "status": event.resource_status if event else "CREATE_COMPLETE",
                "reason": event.resource_status_reason if event else None,
                "timestamp": event.timestamp if event else stack.creation_time,
                "metadata": json.dumps(metadata) if metadata is not None else None,
            }
        )
    return rows


def _drop_none(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if v is not None}


def stack_resource(stack: Stack, row: dict[str, Any]) -> dict[str, Any]:
    """A ``StackResource`` (DescribeStackResources)."""
    return _drop_none(
        {
            "StackName": stack.name,
            "StackId": stack.stack_id,
            "LogicalResourceId": row["logical_id"],
            "PhysicalResourceId": row["physical_id"],
            "ResourceType": row["type"],
            "Timestamp": row["timestamp"],
            "ResourceStatus": row["status"],
            "ResourceStatusReason": row["reason"],
            "DriftInformation": NOT_CHECKED,
        }
    )


def stack_resource_summary(row: dict[str, Any]) -> dict[str, Any]:
    """A ``StackResourceSummary`` (ListStackResources)."""
    return _drop_none(
        {
            "LogicalResourceId": row["logical_id"],
            "PhysicalResourceId": row["physical_id"],
            "ResourceType": row["type"],
            "LastUpdatedTimestamp": row["timestamp"],
            "ResourceStatus": row["status"],
            "ResourceStatusReason": row["reason"],
            "DriftInformation": NOT_CHECKED,
        }
    )


def stack_resource_detail(stack: Stack, row: dict[str, Any]) -> dict[str, Any]:
    """A ``StackResourceDetail`` (DescribeStackResource)."""
    detail = stack_resource(stack, row)
    detail["LastUpdatedTimestamp"] = detail.pop("Timestamp")
    if row["metadata"] is not None:
        detail["Metadata"] = row["metadata"]
    return detail


def _stack_of_physical_id(backend: Any, physical_id: str) -> Stack:
    for stack in [*backend.stacks.values(), *backend.deleted_stacks.values()]:
        if any(row["physical_id"] == physical_id for row in resource_rows(stack)):
            return stack
    raise ValidationError(physical_id, message=f"Stack for {physical_id} does not exist")


def describe_stack_resources(self: CloudFormationResponse) -> ActionResult:
    stack_name = self._get_param("StackName")
    logical_id = self._get_param("LogicalResourceId")
    physical_id = self._get_param("PhysicalResourceId")
    backend = self.cloudformation_backend
    stack = backend.get_stack(stack_name) if stack_name else _stack_of_physical_id(backend, physical_id)
    rows = [row for row in resource_rows(stack) if logical_id is None or row["logical_id"] == logical_id]
    return ActionResult({"StackResources": [stack_resource(stack, row) for row in rows]})


def list_stack_resources(self: CloudFormationResponse) -> ActionResult:
    stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
    return ActionResult({"StackResourceSummaries": [stack_resource_summary(row) for row in resource_rows(stack)]})


def describe_stack_resource(self: CloudFormationResponse) -> ActionResult:
    stack_name = self._get_param("StackName")
    logical_id = self._get_param("LogicalResourceId")
    stack = self.cloudformation_backend.get_stack(stack_name)
    for row in resource_rows(stack):
        if row["logical_id"] == logical_id:
            return ActionResult({"StackResourceDetail": stack_resource_detail(stack, row)})
    raise ValidationError(stack_name, message=f"Resource {logical_id} does not exist for stack {stack_name}")


def _existing_resources(self: Stack) -> list[Any]:
    """``Stack.stack_resources`` without ResourceMap's create-on-lookup."""
    parsed = self.resource_map._parsed_resources
    return [
        parsed[lid]
        for lid in self.resource_map._resource_json_map
        if parsed.get(lid) is not None and not isinstance(parsed.get(lid), str)
    ]


def apply() -> None:
    """Replace the three responses and Stack.stack_resources (idempotent)."""
    if getattr(CloudFormationResponse, "_streamstack_resources_patched", False):
        return
    CloudFormationResponse.describe_stack_resources = describe_stack_resources  # type: ignore[method-assign]
    CloudFormationResponse.list_stack_resources = list_stack_resources  # type: ignore[method-assign]
    CloudFormationResponse.describe_stack_resource = describe_stack_resource  # type: ignore[method-assign]
    Stack.stack_resources = property(_existing_resources)  # type: ignore[method-assign,assignment]
    CloudFormationResponse._streamstack_resources_patched = True  # type: ignore[attr-defined]

"""Per-resource stack events, and updates that no longer drop resources.

Gaps in moto 5.2.1:

* DescribeStackEvents only ever returns stack-level events
  (``AWS::CloudFormation::Stack``); there is never a CREATE_IN_PROGRESS /
  CREATE_COMPLETE / DELETE_COMPLETE for a resource, so a deploy tool that
  tails events to show progress, or that looks for the failing resource,
  sees nothing.
* On an update that modifies a resource whose moto model has no
  ``update_from_cloudformation_json`` (DynamoDB table, EC2 instance, IAM
  instance profile, KMS key, log group, ...), moto stores ``None`` for it:
  the resource silently leaves the stack (ListStackResources no longer shows
  it and DeleteStack leaks it).

Patch: wrap the module-level functions of ``moto.cloudformation.parsing`` that
create, update and delete one resource (``ResourceMap`` looks them up at call
time) to append resource events to the owning stack, tag a raised exception
with the failing logical id (used by ``cfn_failures``), and keep the previous
resource when moto cannot update it, saying so in the event's reason. The
events themselves are written by ``stack_events_core``, shared with the other
modules that report on stacks.
"""

from __future__ import annotations

from typing import Any

from moto.cloudformation import parsing

from .stack_events_core import (
    DELETE_ERRORS_ATTR,
    STATUS_REASON_ATTR,
    add_event,
    describe_exception,
    link_resource_maps,
    stack_of,
    tag_failure,
)


def _physical_id(resource: Any) -> str | None:
    value = getattr(resource, "physical_resource_id", None)
    return value if isinstance(value, str) else None


def apply() -> None:
    """Install the wrappers (idempotent)."""
    if getattr(parsing, "_streamstack_events_patched", False):
        return

    link_resource_maps()

    original_create = parsing.parse_and_create_resource

    def parse_and_create_resource(logical_id, resource_json, resources_map, account_id, region_name):  # type: ignore[no-untyped-def]
        stack = stack_of(resources_map)
        resource_type = resource_json.get("Type", "")
        condition = resource_json.get("Condition")
        skipped = condition and not resources_map.lazy_condition_map[condition]
        known = parsing.resource_class_from_type(resource_type) is not None
        if not skipped and known:
            add_event(stack, logical_id, resource_type, "CREATE_IN_PROGRESS")
        try:
            resource = original_create(logical_id, resource_json, resources_map, account_id, region_name)
        except Exception as exc:
            if tag_failure(exc, logical_id, resource_type):
                add_event(stack, logical_id, resource_type, "CREATE_FAILED", reason=describe_exception(exc))
            raise
        if resource is not None:
            reason = getattr(resource, STATUS_REASON_ATTR, None)
            add_event(stack, logical_id, resource_type, "CREATE_COMPLETE", _physical_id(resource), reason)
        return resource

    original_update = parsing.parse_and_update_resource

    def parse_and_update_resource(logical_id, resource_json, resources_map, account_id, region_name):  # type: ignore[no-untyped-def]
        stack = stack_of(resources_map)
        resource_type = resource_json.get("Type", "")
        previous = resources_map._parsed_resources.get(logical_id)
        try:
            resource = original_update(logical_id, resource_json, resources_map, account_id, region_name)
        except Exception as exc:
            # moto retries failed modifications; the stack-level handler
            # reports the last failure, tagged with its resource here.
            tag_failure(exc, logical_id, resource_type)
            raise
        add_event(stack, logical_id, resource_type, "UPDATE_IN_PROGRESS", _physical_id(previous))
        if resource is None and previous is not None:
            add_event(
                stack,
                logical_id,
                resource_type,
                "UPDATE_COMPLETE",
                _physical_id(previous),
                reason=(
                    f"streamstack emulator: moto cannot update {resource_type}; "
                    "the resource keeps its previous properties"
                ),
            )
            return previous
        add_event(stack, logical_id, resource_type, "UPDATE_COMPLETE", _physical_id(resource))
        return resource

    original_delete_resource = parsing.ResourceMap._delete_resource

    def _delete_resource(self, parsed_resource, resource_json):  # type: ignore[no-untyped-def]
        stack = stack_of(self)
        logical_id = getattr(parsed_resource, "logical_resource_id", "")
        resource_type = resource_json.get("Type", "")
        physical_id = _physical_id(parsed_resource)
        add_event(stack, logical_id, resource_type, "DELETE_IN_PROGRESS", physical_id)
        errors = self.__dict__.setdefault(DELETE_ERRORS_ATTR, {})
        try:
            original_delete_resource(self, parsed_resource, resource_json)
        except Exception as exc:
            # moto retries failed deletes (dependency order); cfn_failures
            # reports the ones that still failed at the end.
            errors[logical_id] = (resource_type, physical_id, exc)
            raise
        errors.pop(logical_id, None)
        add_event(stack, logical_id, resource_type, "DELETE_COMPLETE", physical_id)

    parsing.parse_and_create_resource = parse_and_create_resource
    parsing.parse_and_update_resource = parse_and_update_resource
    parsing.ResourceMap._delete_resource = _delete_resource  # type: ignore[method-assign]
    parsing._streamstack_events_patched = True  # type: ignore[attr-defined]

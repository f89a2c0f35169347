"""The shared core of stack events: what every module that writes or reads a
stack's events relies on.

CloudFormation reports what it does to a stack as events: one per resource and
status (CREATE_IN_PROGRESS, CREATE_COMPLETE, DELETE_FAILED, ...) and the
stack's own. moto 5.2.1 records only the stack's own; the modules that close
that gap share this core:

* ``cfn_events`` appends resource events as moto creates, updates and deletes
  resources, and tags a failure with the failing resource (``tag_failure``);
* ``cfn_failures`` turns a tagged failure into CREATE_FAILED / UPDATE_FAILED /
  DELETE_FAILED events and the stack's ROLLBACK_* / *_FAILED status;
* ``cfn_delete_order`` gives retained resources their DELETE_SKIPPED event;
* ``cfn_placeholder`` puts its "nothing was created" reason on the
  CREATE_COMPLETE event (``STATUS_REASON_ATTR``);
* ``cfn_resources`` answers DescribeStackResources from those events.

Events go to the owning stack, found from a ResourceMap through the
back-reference ``link_resource_maps`` installs (``stack_of``).
"""

from __future__ import annotations

from typing import Any

from moto.cloudformation.models import Event, Stack

FAILED_RESOURCE_ATTR = "_streamstack_failed_resource"
DELETE_ERRORS_ATTR = "_streamstack_delete_errors"  # on a ResourceMap: logical id -> (type, physical id, exc)
STATUS_REASON_ATTR = "streamstack_status_reason"  # on a resource: reason of its CREATE_COMPLETE event


def link_resource_maps() -> None:
    """Give every ResourceMap a back-reference to its Stack (for ``stack_of``)."""
    original_resource_map = Stack._create_resource_map

    def _create_resource_map(self: Stack) -> Any:
        resource_map = original_resource_map(self)
        resource_map._streamstack_stack = self
        return resource_map

    Stack._create_resource_map = _create_resource_map  # type: ignore[method-assign]


def stack_of(resources_map: Any) -> Stack | None:
    """The Stack owning a ResourceMap (back-reference set by ``link_resource_maps``)."""
    return getattr(resources_map, "_streamstack_stack", None)


def add_event(
    stack: Stack | None,
    logical_id: str,
    resource_type: str,
    status: str,
    physical_id: str | None = None,
    reason: str | None = None,
) -> None:
    if stack is None:
        return
    event = Event(
        stack_id=stack.stack_id,
        stack_name=stack.name,
        logical_resource_id=logical_id,
        physical_resource_id=physical_id or "",
        resource_type=resource_type,
        resource_status=status,
        resource_status_reason=reason,
        resource_properties=None,
    )
    event.sendToSns(stack.account_id, stack.region_name, stack.notification_arns)
    stack.events.append(event)


def describe_exception(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def tag_failure(exc: BaseException, logical_id: str, resource_type: str) -> bool:
    """Remember the innermost failing resource on the exception; True if newly tagged."""
    if getattr(exc, FAILED_RESOURCE_ATTR, None):
        return False
    try:
        setattr(exc, FAILED_RESOURCE_ATTR, (logical_id, resource_type))
    except AttributeError:
        return False
    return True

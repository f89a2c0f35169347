"""Stack operations that fail end in a FAILED/ROLLBACK status, not in HTTP 500.

Gap in moto 5.2.1: when a resource cannot be created (a backend error, a
missing property, an unsupported value), the exception escapes the
CreateStack / ExecuteChangeSet request: the client gets an HTTP 500 HTML page
(botocore: "Unable to parse response ... invalid XML") and the stack stays in
CREATE_IN_PROGRESS (or REVIEW_IN_PROGRESS) forever, without a reason. The
same happens for a failing update or delete.

Patch, mirroring what CloudFormation does (with rollback enabled):

* create (CreateStack, or a CREATE change set): the failing resource gets a
  CREATE_FAILED event with the error, the stack goes ROLLBACK_IN_PROGRESS,
  the resources created so far are deleted, and the stack ends in
  ROLLBACK_COMPLETE (ROLLBACK_FAILED if that delete fails) with a
  StackStatusReason naming the resource. The request itself succeeds, as on AWS.
* update (UpdateStack, or an UPDATE change set): moto cannot roll an update
  back, so the stack ends in UPDATE_ROLLBACK_FAILED, with a reason saying so.
* delete: the stack ends in DELETE_FAILED with the reason and stays
  describable by name (``cfn_delete_order`` gives resources with
  ``DeletionPolicy: Retain`` their DELETE_SKIPPED event).

Template errors that moto reports as CloudFormation ``ValidationError`` before
any resource is touched (e.g. bad Fn::GetAtt in Outputs at CreateChangeSet)
are unchanged: they are 400 responses on AWS too.
"""

from __future__ import annotations

from typing import Any

from moto.cloudformation.models import CloudFormationBackend, Stack, cloudformation_backends

from .cfn_changeset import find_change_set
from .stack_events_core import DELETE_ERRORS_ATTR, FAILED_RESOURCE_ATTR, add_event, describe_exception, tag_failure

STACK_TYPE = "AWS::CloudFormation::Stack"


def _stack_event(stack: Stack, status: str, reason: str | None = None) -> None:
    stack.status = status
    stack.status_reason = reason  # type: ignore[attr-defined]  # serialized as StackStatusReason
    add_event(stack, stack.name, STACK_TYPE, status, stack.stack_id, reason)


class FrozenOutputs(dict):  # type: ignore[type-arg]
    """Outputs evaluated once, standing in for moto's lazy OutputMap.

    moto's OutputMap evaluates Ref/GetAtt on demand, and ResourceMap creates
    a missing resource on lookup: describing a stack whose resources were
    deleted (rollback, failed delete) would re-create them. Rolled-back and
    deleted stacks show no outputs; a DELETE_FAILED one keeps those it had.
    """

    def __init__(self, outputs: dict[str, Any], exports: list[Any]):
        super().__init__(outputs)
        self.exports = exports


def freeze_outputs(stack: Stack) -> FrozenOutputs:
    if isinstance(stack.output_map, FrozenOutputs):
        return stack.output_map
    try:
        outputs = {key: stack.output_map[key] for key in stack.output_map.outputs}
        exports = list(stack.output_map.exports)
    except Exception:  # noqa: BLE001 - outputs that cannot be evaluated are dropped
        outputs, exports = {}, []
    return FrozenOutputs({k: v for k, v in outputs.items() if v}, exports)


def _drop_exports(stack: Stack) -> None:
    backend = cloudformation_backends[stack.account_id][stack.region_name]
    for name, export in list(backend.exports.items()):
        if export.exporting_stack_id == stack.stack_id:
            del backend.exports[name]


def _failure_reason(exc: BaseException, verb: str) -> str:
    failed = getattr(exc, FAILED_RESOURCE_ATTR, None)
    if failed:
        return f"The following resource(s) failed to {verb}: [{failed[0]}]. {describe_exception(exc)}"
    return describe_exception(exc)


def fail_create(stack: Stack, exc: BaseException) -> None:
    """CREATE failed: roll back what was created, end in ROLLBACK_COMPLETE/FAILED."""
    reason = _failure_reason(exc, "create")
    _stack_event(stack, "ROLLBACK_IN_PROGRESS", reason + " Rollback requested by user.")
    stack.output_map = FrozenOutputs({}, [])  # type: ignore[assignment]
    _drop_exports(stack)
    try:
        stack.resource_map.delete()
    except Exception as rollback_exc:  # noqa: BLE001 - report, never raise
        _stack_event(stack, "ROLLBACK_FAILED", f"{reason} Rollback failed: {describe_exception(rollback_exc)}")
        return
    _stack_event(stack, "ROLLBACK_COMPLETE", reason)


def fail_update(stack: Stack, exc: BaseException) -> None:
    """UPDATE failed: moto has no rollback, so say so in a terminal status."""
    failed = getattr(exc, FAILED_RESOURCE_ATTR, None)
    if failed:
        add_event(stack, failed[0], failed[1], "UPDATE_FAILED", reason=describe_exception(exc))
    _stack_event(
        stack,
        "UPDATE_ROLLBACK_FAILED",
        _failure_reason(exc, "update") + " The streamstack emulator (moto) cannot roll back updates; delete the stack.",
    )


def apply() -> None:
    """Wrap Stack.create_resources/update/delete and the backend's execute_change_set/delete_stack."""
    if getattr(Stack, "_streamstack_failures_patched", False):
        return

    original_create_resources = Stack.create_resources

    def create_resources(self: Stack) -> None:
        try:
            original_create_resources(self)
        except Exception as exc:  # noqa: BLE001
            fail_create(self, exc)

    original_update = Stack.update

    def update(self: Stack, *args: Any, **kwargs: Any) -> None:
        try:
            original_update(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            fail_update(self, exc)

    original_delete = Stack.delete

    def delete(self: Stack) -> None:
        outputs_before = freeze_outputs(self)
        resource_map = self.resource_map
        try:
            original_delete(self)
        except Exception as exc:  # noqa: BLE001
            self.output_map = outputs_before  # type: ignore[assignment]
            failed = getattr(resource_map, DELETE_ERRORS_ATTR, {})
            for logical_id, (resource_type, physical_id, error) in failed.items():
                add_event(self, logical_id, resource_type, "DELETE_FAILED", physical_id, describe_exception(error))
            reason = (
                f"The following resource(s) failed to delete: [{', '.join(failed)}]. "
                if failed
                else describe_exception(exc)
            )
            failed.clear()
            _stack_event(self, "DELETE_FAILED", reason)
            return
        self.output_map = FrozenOutputs({}, [])  # type: ignore[assignment]

    original_execute = CloudFormationBackend.execute_change_set

    def execute_change_set(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> Any:
        change_set = find_change_set(self, change_set_name, stack_name)  # 4xx if unknown
        if change_set.execution_status != "AVAILABLE":
            return original_execute(self, change_set_name, stack_name)  # raises the 4xx
        stack = self.stacks[change_set.stack_id]
        try:
            return original_execute(self, change_set.change_set_id, stack_name)
        except Exception as exc:  # noqa: BLE001
            change_set.execution_status = "EXECUTE_FAILED"
            stack.template = change_set.template
            stack._parse_template()
            if change_set.change_set_type == "CREATE":
                fail_create(stack, exc)
            else:
                fail_update(stack, exc)
            return None

    original_delete_stack = CloudFormationBackend.delete_stack

    def delete_stack(self: CloudFormationBackend, name_or_stack_id: str) -> None:
        original_delete_stack(self, name_or_stack_id)
        # moto moved the stack to deleted_stacks and dropped its exports even
        # if the delete failed: a DELETE_FAILED stack stays live on AWS.
        for stack_id, stack in list(self.deleted_stacks.items()):
            if stack.status == "DELETE_FAILED":
                self.stacks[stack_id] = self.deleted_stacks.pop(stack_id)
                for export in stack.exports:
                    self.exports[export.name] = export

    Stack.create_resources = create_resources  # type: ignore[method-assign]
    Stack.update = update  # type: ignore[method-assign]
    Stack.delete = delete  # type: ignore[method-assign]
    CloudFormationBackend.execute_change_set = execute_change_set  # type: ignore[method-assign]
    CloudFormationBackend.delete_stack = delete_stack  # type: ignore[method-assign]
    Stack._streamstack_failures_patched = True  # type: ignore[attr-defined]


__all__ = ["apply", "fail_create", "fail_update", "tag_failure"]

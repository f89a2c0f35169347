"""Change sets: Outputs (and exports) after ExecuteChangeSet, and change-set lookup.

Gaps in moto 5.2.1:

* ``CreateChangeSet(ChangeSetType=CREATE)`` builds the ``Stack`` with an empty
  template, so its ``OutputMap`` is empty; ``ExecuteChangeSet`` applies the
  resources but never rebuilds the outputs. DescribeStacks then shows no
  Outputs at all. UPDATE change sets have the same defect: the outputs stay
  those of the previous template (new outputs missing, values stale). Exports
  of change-set stacks are never registered either, so Fn::ImportValue and
  ListExports do not see them.
* ``ExecuteChangeSet`` with a change-set *name* takes the last change set of
  that name of *any* stack (the StackName argument is ignored), and an unknown
  name is an HTTP 500 (UnboundLocalError) instead of ChangeSetNotFound.

* ``CreateChangeSet`` for an unchanged template *with parameters* answers a
  synchronous ``ValidationError: No updates are to be performed.`` (moto
  reuses UpdateStack's check). AWS creates the change set and fails it with
  "The submitted information didn't contain changes...", which is what
  ``aws cloudformation deploy --no-fail-on-empty-changeset`` and streamstack
  look for; moto's backend already does that once the check is skipped.

Patch: skip that check inside CreateChangeSet (UpdateStack keeps it, as on
AWS); wrap ``CloudFormationBackend.execute_change_set`` to resolve the change
set by ARN, or by name within the given stack, answer ChangeSetNotFound /
InvalidChangeSetStatus like AWS, and after execution re-parse the stack's
template, rebuild its output map and refresh its exports.
"""

from __future__ import annotations

from typing import Any

from moto.cloudformation.exceptions import CloudFormationError
from moto.cloudformation.models import ChangeSet, CloudFormationBackend, Stack


class ChangeSetNotFound(CloudFormationError):
    code = "ChangeSetNotFoundException"


class InvalidChangeSetStatus(CloudFormationError):
    code = "InvalidChangeSetStatusException"


def find_change_set(backend: CloudFormationBackend, change_set_name: str, stack_name: str | None) -> ChangeSet:
    """The change set named by ARN, or by name within ``stack_name`` (name or id)."""
    if change_set_name in backend.change_sets:
        return backend.change_sets[change_set_name]
    matches = [
        cs
        for cs in backend.change_sets.values()
        if cs.change_set_name == change_set_name and (not stack_name or stack_name in (cs.stack_name, cs.stack_id))
    ]
    if not matches:
        raise ChangeSetNotFound(f"ChangeSet [{change_set_name}] does not exist")
    return matches[-1]


def refresh_outputs(backend: CloudFormationBackend, stack: Stack, change_set: ChangeSet) -> None:
    """Make the stack's outputs, exports and description those of its (new) template."""
    stack._parse_template()
    stack.description = stack.template_dict.get("Description")
    if change_set.parameters:
        stack.parameters = change_set.parameters
    stack.output_map = stack._create_output_map()
    for name, export in list(backend.exports.items()):
        if export.exporting_stack_id == stack.stack_id:
            del backend.exports[name]
    for export in stack.exports:
        backend.exports[export.name] = export


def _skip_update_check_in_change_sets() -> None:
    from moto.cloudformation.responses import CloudFormationResponse

    original_create = CloudFormationResponse.create_change_set
    original_validate = CloudFormationResponse._validate_different_update

    def create_change_set(self: Any) -> Any:
        self._streamstack_in_change_set = True
        try:
            return original_create(self)
        finally:
            self._streamstack_in_change_set = False

    def validate_different_update(self: Any, *args: Any, **kwargs: Any) -> None:
        if getattr(self, "_streamstack_in_change_set", False):
            return
        original_validate(self, *args, **kwargs)

    CloudFormationResponse.create_change_set = create_change_set
    CloudFormationResponse._validate_different_update = validate_different_update

    # moto compares the parameters as given, so a default passed explicitly
    # (as `aws cloudformation deploy` does) looks like a change; AWS compares
    # the values in effect.
    original_backend_create = CloudFormationBackend.create_change_set

    def backend_create_change_set(self: CloudFormationBackend, *args: Any, **kwargs: Any) -> Any:
        change_set_id, stack_id = original_backend_create(self, *args, **kwargs)
        change_set = self.change_sets[change_set_id]
        stack = change_set.stack
        if (
            change_set.change_set_type == "UPDATE"
            and change_set.status == "CREATE_COMPLETE"
            and stack.has_template(change_set.template)
            and _unchanged_parameters(stack, change_set.parameters)
        ):
            change_set.status = "FAILED"
            change_set.execution_status = "UNAVAILABLE"
            change_set.status_reason = (
                "The submitted information didn't contain changes. Submit different information to create a change set."
            )
        return change_set_id, stack_id

    CloudFormationBackend.create_change_set = backend_create_change_set


def _unchanged_parameters(stack: Stack, given: dict[str, Any] | None) -> bool:
    """Every parameter keeps its value: the one given before (or the default),
    or the resolved one (``UsePreviousValue`` passes moto's resolved value,
    an AMI id for an SSM-typed parameter)."""
    declared = stack.template_dict.get("Parameters") or {}
    given = given or {}
    resolved = getattr(stack, "stack_parameters", {}) or {}
    for name in set(declared) | set(given):
        default = declared.get(name, {}).get("Default")
        new = given.get(name, default)
        before = (stack.parameters or {}).get(name, default)
        if str(new) not in (str(before), str(resolved.get(name))):
            return False
    return True


def apply() -> None:
    """Wrap CloudFormationBackend.execute_change_set (see module docstring)."""
    if getattr(CloudFormationBackend, "_streamstack_changeset_patched", False):
        return
    _skip_update_check_in_change_sets()
    original = CloudFormationBackend.execute_change_set

    def execute_change_set(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> Any:
        change_set = find_change_set(self, change_set_name, stack_name)
        if change_set.execution_status != "AVAILABLE":
            raise InvalidChangeSetStatus(
                f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current "
                f"execution status of [{change_set.execution_status}]"
            )
        # Pass the ARN so moto's own lookup cannot pick another stack's change set.
        result = original(self, change_set.change_set_id, stack_name)
        refresh_outputs(self, self.stacks[change_set.stack_id], change_set)
        return result

    CloudFormationBackend.execute_change_set = execute_change_set  # type: ignore[method-assign]
    CloudFormationBackend._streamstack_changeset_patched = True  # type: ignore[attr-defined]

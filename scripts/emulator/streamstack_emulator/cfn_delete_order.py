"""Stack deletion (and rollback) in reverse dependency order, as CloudFormation does it.

Gap in moto 5.2.1: ``ResourceMap.delete`` walks the stack's resources in set
order and retries whatever failed, up to no more progress. A VPC is then
attempted before its subnets, route table and gateway attachment (each
attempt a DELETE_IN_PROGRESS event), and any failure of the last pass ends the
stack in DELETE_FAILED even though the order alone was wrong. CloudFormation
deletes a resource only after every resource that references it (``Ref``,
``Fn::GetAtt``, ``Fn::Sub``, ``DependsOn``) is gone, and never touches the
dependencies of a resource that failed to delete.

Patch: replace ``ResourceMap.delete`` with exactly that: dependents first,
one attempt per resource, resources with ``DeletionPolicy: Retain`` skipped
with a DELETE_SKIPPED event (they do not hold their dependencies back), dependencies of a failed resource
left in place, and the last failure raised (``cfn_failures`` turns it into
DELETE_FAILED / ROLLBACK_FAILED). Each delete still goes through
``_delete_resource``, so ``cfn_events`` reports it.
"""

from __future__ import annotations

import re
from typing import Any

from moto.cloudformation import parsing

from .stack_events_core import add_event, stack_of

_SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


def references(node: Any) -> set[str]:
    """Names a template fragment refers to by Ref, Fn::GetAtt, Fn::Sub or DependsOn."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                if isinstance(value, list) and value and isinstance(value[0], str):
                    found.add(value[0])
                elif isinstance(value, str):
                    found.add(value.split(".", 1)[0])
                else:
                    found |= references(value)
            elif key == "Fn::Sub":
                text, variables = (value[0], value[1]) if isinstance(value, list) and len(value) == 2 else (value, {})
                local = set(variables) if isinstance(variables, dict) else set()
                if isinstance(text, str):
                    for variable in _SUB_VARIABLE.findall(text):
                        name = variable.split(".", 1)[0].strip()
                        if name not in local:
                            found.add(name)
                found |= references(variables)
            elif key == "DependsOn":
                found |= {value} if isinstance(value, str) else {v for v in value or [] if isinstance(v, str)}
            else:
                found |= references(value)
    return found


def dependencies(resource_json_map: dict[str, Any]) -> dict[str, set[str]]:
    """logical id -> the logical ids of the other resources it depends on."""
    ids = set(resource_json_map)
    return {lid: (references(rjson) & ids) - {lid} for lid, rjson in resource_json_map.items()}


def deletion_waves(resource_json_map: dict[str, Any]) -> list[list[str]]:
    """Resources grouped so that each group's dependents are all in earlier groups.

    Within a group, reverse template order. A cycle (which CloudFormation would
    have rejected) ends up in one last group, in reverse template order.
    """
    deps = dependencies(resource_json_map)
    dependents: dict[str, set[str]] = {lid: set() for lid in deps}
    for lid, needs in deps.items():
        for dep in needs:
            dependents[dep].add(lid)
    remaining = list(reversed(list(resource_json_map)))
    waves: list[list[str]] = []
    while remaining:
        wave = [lid for lid in remaining if not (dependents[lid] & set(remaining))]
        if not wave:
            waves.append(remaining)
            break
        waves.append(wave)
        remaining = [lid for lid in remaining if lid not in wave]
    return waves


def delete(self: parsing.ResourceMap) -> None:
    """Replacement of ``ResourceMap.delete`` (see module docstring)."""
    resource_json_map: dict[str, Any] = self._resource_json_map
    deps = dependencies(resource_json_map)
    held: set[str] = set()  # not attempted: a resource that depends on them failed
    last_exception: BaseException | None = None
    for wave in deletion_waves(resource_json_map):
        for lid in wave:
            resource_json = resource_json_map[lid]
            if lid in held:
                held |= deps[lid]
                continue
            resource = self._parsed_resources.get(lid)
            if resource is None or isinstance(resource, str):
                continue  # never created (condition false, failed create)
            if resource_json.get("DeletionPolicy") == "Retain":
                physical_id = getattr(resource, "physical_resource_id", None)
                add_event(stack_of(self), lid, resource_json.get("Type", ""), "DELETE_SKIPPED", physical_id)
                continue
            try:
                self._delete_resource(resource, resource_json)
            except Exception as exc:  # noqa: BLE001 - reported by cfn_failures
                held |= deps[lid]
                last_exception = exc
                continue
            self._parsed_resources.pop(lid, None)
    if last_exception is not None:
        raise last_exception


def apply() -> None:
    """Replace ResourceMap.delete (idempotent)."""
    if getattr(parsing.ResourceMap, "_streamstack_delete_order_patched", False):
        return
    parsing.ResourceMap.delete = delete  # type: ignore[method-assign]
    parsing.ResourceMap._streamstack_delete_order_patched = True  # type: ignore[attr-defined]

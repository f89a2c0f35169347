"""EC2 teardown leftovers: launch-created network interfaces and a deleted VPC's default ACL.

Gaps in moto 5.2.1 (EC2 backend, so the API and CloudFormation alike):

* The primary network interface that RunInstances creates for an instance in
  a subnet gets ``DeleteOnTermination: false`` (moto only sets it when the
  request says so explicitly); on AWS interfaces created by the launch are
  deleted with the instance. After terminating the stack's host, its ENI
  stayed ``in-use`` in the (deleted) subnet, holding the VPC.
* DeleteVpc deletes the main route table and the default security group but
  leaves the VPC's default network ACL behind (DescribeNetworkAcls still lists
  it, for a VPC that no longer exists).
* DeleteVpc does not check what AWS checks: it succeeds with an internet
  gateway still attached, network interfaces in it, or its own security groups
  and network ACLs left, orphaning them. AWS answers DependencyViolation.

Patch: new interfaces of a launch (no ``NetworkInterfaceId``) default to
``DeleteOnTermination: true`` unless the request says false; interfaces kept
at termination are detached (``available``), as on AWS. ``delete_vpc``
answers DependencyViolation naming what still holds the VPC, and removes its
default network ACL with it.
"""

from __future__ import annotations

from typing import Any

from moto.ec2.exceptions import DependencyViolationError
from moto.ec2.models.instances import Instance
from moto.ec2.models.vpcs import VPCBackend


def _explicitly_false(value: Any) -> bool:
    return value is False or str(value).lower() == "false"


def vpc_holders(backend: Any, vpc_id: str) -> list[str]:
    """What, besides subnets and route tables (moto checks those), keeps a VPC from being deleted."""
    holders = [
        f"internet gateway {igw.id}"
        for igw in backend.internet_gateways.values()
        if igw.vpc is not None and igw.vpc.id == vpc_id
    ]
    holders += [
        f"network interface {eni.id}"
        for eni in backend.enis.values()
        if getattr(eni.subnet, "vpc_id", None) == vpc_id
    ]
    holders += [
        f"security group {group.id}"
        for group in backend.groups.get(vpc_id, {}).values()
        if group.name != "default"
    ]
    holders += [
        f"network ACL {acl.id}"
        for acl in backend.network_acls.values()
        if acl.vpc_id == vpc_id and not acl.default
    ]
    return holders


def apply() -> None:
    """Patch Instance.prep_nics / Instance.terminate and VPCBackend.delete_vpc (idempotent)."""
    if getattr(VPCBackend, "_streamstack_patched", False):
        return

    original_prep_nics = Instance.prep_nics

    def prep_nics(self: Instance, nic_spec: list[dict[str, Any]], *args: Any, **kwargs: Any) -> None:
        original_prep_nics(self, nic_spec, *args, **kwargs)
        by_index = {int(spec.get("DeviceIndex", 0)): spec for spec in nic_spec or []}
        for device_index, nic in self.nics.items():
            spec = by_index.get(int(device_index), {})
            if "NetworkInterfaceId" in spec or _explicitly_false(spec.get("DeleteOnTermination")):
                continue
            nic.delete_on_termination = True

    original_terminate = Instance.terminate

    def terminate(self: Instance) -> Any:
        previous = original_terminate(self)
        for nic in list(self.nics.values()):
            if not nic.delete_on_termination and nic.instance is self:
                self.detach_eni(nic)
        return previous

    original_delete_vpc = VPCBackend.delete_vpc

    def delete_vpc(self: Any, vpc_id: str) -> Any:
        holders = vpc_holders(self, vpc_id)
        if holders:
            raise DependencyViolationError(
                f"The vpc '{vpc_id}' has dependencies and cannot be deleted. "
                f"(streamstack emulator: still held by {', '.join(holders)})"
            )
        vpc = original_delete_vpc(self, vpc_id)
        for acl in list(self.network_acls.values()):
            if acl.vpc_id == vpc_id and acl.default:
                self.network_acls.pop(acl.id, None)
        return vpc

    Instance.prep_nics = prep_nics  # type: ignore[method-assign]
    Instance.terminate = terminate  # type: ignore[method-assign]
    VPCBackend.delete_vpc = delete_vpc  # type: ignore[method-assign]
    VPCBackend._streamstack_patched = True  # type: ignore[attr-defined]

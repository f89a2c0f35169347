"""CloudFormation deletes of the VPC plumbing, and real subnet route-table associations.

Gaps in moto 5.2.1 (CloudFormation models of ``moto.ec2``):

* ``AWS::EC2::RouteTable``, ``AWS::EC2::Route``,
  ``AWS::EC2::SubnetRouteTableAssociation``, ``AWS::EC2::InternetGateway`` and
  ``AWS::EC2::VPCGatewayAttachment`` have no delete: DeleteStack reports
  DELETE_COMPLETE for them and leaves them all in EC2, the internet gateway
  still attached. The leftover route table is what makes the VPC fail with
  "The vpc vpc-... has dependencies and cannot be deleted".
* ``AWS::EC2::SubnetRouteTableAssociation`` never associates anything: it is
  only recorded on the side (DescribeRouteTables shows no association, the
  subnet keeps using the main route table), and its physical id is the route
  table id instead of the association id (``rtbassoc-...``).

Patch: associate through moto's own ``associate_route_table`` (physical id =
association id), and give the five models a ``delete`` that calls the EC2
backend (``disassociate_route_table``, ``delete_route``, ``delete_route_table``,
``detach_internet_gateway`` / ``detach_vpn_gateway``, ``delete_internet_gateway``);
a resource that is already gone counts as deleted, as on AWS.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from moto.ec2 import exceptions as ec2_errors
from moto.ec2.models import ec2_backends
from moto.ec2.models.internet_gateways import InternetGateway
from moto.ec2.models.route_tables import Route, RouteTable
from moto.ec2.models.subnets import SubnetRouteTableAssociation
from moto.ec2.models.vpn_gateway import VPCGatewayAttachment

# "does not exist" answers of the EC2 backend: the resource is gone already.
_GONE = (
    ec2_errors.InvalidRouteTableIdError,
    ec2_errors.InvalidRouteError,
    ec2_errors.InvalidAssociationIdError,
    ec2_errors.InvalidInternetGatewayIdError,
    ec2_errors.GatewayNotAttachedError,
    ec2_errors.InvalidVpnGatewayIdError,
    ec2_errors.InvalidVpnGatewayAttachmentError,
)


def _delete_method(body: Callable[[Any, Any], None]) -> Callable[[Any, str, str], None]:
    """A model ``delete(account_id, region)`` around ``body(model, ec2_backend)``.

    moto's ``ResourceMap._delete_resource`` treats an AttributeError/TypeError
    from ``delete`` as "no such method" and silently falls back to the (empty)
    class-level delete, so such errors are re-raised as RuntimeError.
    """

    @functools.wraps(body)
    def delete(self: Any, account_id: str, region_name: str) -> None:
        try:
            body(self, ec2_backends[account_id][region_name])
        except _GONE:
            return
        except (AttributeError, TypeError) as exc:
            raise RuntimeError(f"{type(exc).__name__}: {exc}") from exc

    return delete


def _delete_route_table(table: RouteTable, backend: Any) -> None:
    backend.delete_route_table(table.id)


def _delete_route(route: Route, backend: Any) -> None:
    destination = route.id.split("~", 1)[1]  # route ids are "<rtb>~<destination>"
    backend.delete_route(route.route_table.id, destination)


def _delete_association(association: SubnetRouteTableAssociation, backend: Any) -> None:
    association_id = getattr(association, "association_id", None)
    if association_id:
        backend.disassociate_route_table(association_id)
    backend.subnet_associations.pop(f"{association.route_table_id}:{association.subnet_id}", None)


def _delete_internet_gateway(gateway: InternetGateway, backend: Any) -> None:
    backend.delete_internet_gateway(gateway.id)


def _delete_gateway_attachment(attachment: VPCGatewayAttachment, backend: Any) -> None:
    if attachment.gateway_id:  # internet gateway (moto does not record VPN gateway ids)
        backend.detach_internet_gateway(attachment.gateway_id, attachment.vpc_id)
        return
    for gateway in list(backend.vpn_gateways.values()):
        if gateway.attachments.get(attachment.vpc_id) is attachment:
            backend.detach_vpn_gateway(gateway.id, attachment.vpc_id)


def _create_association(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
    properties = cloudformation_json["Properties"]
    backend = ec2_backends[account_id][region_name]
    association = backend.create_subnet_association(
        route_table_id=properties["RouteTableId"], subnet_id=properties["SubnetId"]
    )
    association.association_id = backend.associate_route_table(
        route_table_id=properties["RouteTableId"], subnet_id=properties["SubnetId"]
    )
    return association


def _association_physical_id(self: SubnetRouteTableAssociation) -> str:
    return getattr(self, "association_id", None) or self.route_table_id


def apply() -> None:
    """Install the deletes and the real association (idempotent)."""
    if getattr(RouteTable, "_streamstack_patched", False):
        return
    RouteTable.delete = _delete_method(_delete_route_table)  # type: ignore[attr-defined]
    Route.delete = _delete_method(_delete_route)  # type: ignore[attr-defined]
    SubnetRouteTableAssociation.delete = _delete_method(_delete_association)  # type: ignore[attr-defined]
    InternetGateway.delete = _delete_method(_delete_internet_gateway)  # type: ignore[attr-defined]
    VPCGatewayAttachment.delete = _delete_method(_delete_gateway_attachment)  # type: ignore[attr-defined]
    SubnetRouteTableAssociation.create_from_cloudformation_json = classmethod(_create_association)  # type: ignore[method-assign,assignment]
    SubnetRouteTableAssociation.physical_resource_id = property(_association_physical_id)  # type: ignore[method-assign,assignment]
    RouteTable._streamstack_patched = True  # type: ignore[attr-defined]

"""CloudFormation ``AWS::EC2::Instance`` launched from a ``LaunchTemplate``.

Gap in moto 5.2.1: ``Instance.create_from_cloudformation_json`` reads
``Properties["ImageId"]`` unconditionally, so an instance that takes its AMI,
type and user data from a launch template (``LaunchTemplate: {LaunchTemplateId,
Version}``, the usual way to get IMDSv2 and a profile onto a host) fails with
``KeyError: 'ImageId'`` (an HTTP 500 without ``cfn_failures``).
It also ignores ``SecurityGroupIds``.

Patch: for instances with a LaunchTemplate (or SecurityGroupIds), call moto's
own ``run_instances`` with ``launch_template=``, which already merges the
template's ImageId, InstanceType, UserData, KeyName, security groups, tags and
block devices, then associate the instance profile from the properties or the
template. Other instances go through moto's code unchanged.
"""

from __future__ import annotations

from typing import Any

from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import Instance


def _create_with_launch_template(properties: dict[str, Any], account_id: str, region_name: str) -> Instance:
    backend = ec2_backends[account_id][region_name]
    launch_template = properties.get("LaunchTemplate")
    template_data = backend._get_template_from_args(launch_template).data if launch_template else {}
    kwargs: dict[str, Any] = {
        "instance_type": properties.get("InstanceType", "m1.small"),
        "is_instance_type_default": not properties.get("InstanceType"),
        "subnet_id": properties.get("SubnetId"),
        "key_name": properties.get("KeyName"),
        "private_ip": properties.get("PrivateIpAddress"),
    }
    if launch_template:
        kwargs["launch_template"] = launch_template
    if properties.get("SecurityGroupIds"):
        kwargs["security_group_ids"] = properties["SecurityGroupIds"]
    if "BlockDeviceMappings" in properties:
        kwargs["block_device_mappings"] = properties["BlockDeviceMappings"]
    group_names = [
        backend.get_security_group_from_id(group_id).name  # type: ignore[union-attr]
        for group_id in properties.get("SecurityGroups", [])
    ]
    reservation = backend.run_instances(
        image_id=properties.get("ImageId"),  # None: run_instances takes the template's
        count=1,
        user_data=properties.get("UserData"),
        security_group_names=group_names,
        **kwargs,
    )
    instance = reservation.instances[0]
    for tag in properties.get("Tags", []):
        instance.add_tag(tag["Key"], tag["Value"])
    profile = properties.get("IamInstanceProfile")
    template_profile = template_data.get("IamInstanceProfile") or {}
    if profile or template_profile:
        backend.associate_iam_instance_profile(
            instance_id=instance.id,
            iam_instance_profile_name=profile or template_profile.get("Name"),
            iam_instance_profile_arn=None if profile else template_profile.get("Arn"),
        )
    return instance


def apply() -> None:
    """Route Instance resources with LaunchTemplate/SecurityGroupIds through run_instances(launch_template=...)."""
    if getattr(Instance, "_streamstack_patched", False):
        return
    original = Instance.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        properties = cloudformation_json.get("Properties", {})
        if "LaunchTemplate" in properties or "SecurityGroupIds" in properties:
            return _create_with_launch_template(properties, account_id, region_name)
        return original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    Instance.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment]
    Instance._streamstack_patched = True  # type: ignore[attr-defined]

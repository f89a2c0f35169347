"""CloudFormation support for ``AWS::S3::BucketPolicy``.

Gap in moto 5.2.1: no ``CloudFormationModel`` for this type. CloudFormation
logs "No Moto CloudFormation support for AWS::S3::BucketPolicy", creates
nothing, and the stack still reaches CREATE_COMPLETE: GetBucketPolicy answers
NoSuchBucketPolicy, DescribeStackResources lists the resource with an empty
LogicalResourceId and ResourceType, and it has no stack events.

Patch: a ``CloudFormationModel`` subclass that puts the policy on moto's own S3
backend (``put_bucket_policy``, the document serialized as JSON like the S3
API stores it) and deletes it with the stack (``delete_bucket_policy``; a
bucket that is already gone counts as deleted). Physical id and ``Ref``: the
bucket name, as on AWS. An update re-puts the policy (moving it if the bucket
changed).

Second gap, which the first exposes: moto evaluates a bucket policy's
conditions with no request context, so a ``Bool aws:SecureTransport false``
Deny (the TLS-only statement every hardened bucket has) matches every request
and object reads, writes and deletes answer 403. On AWS that statement denies
only plain-HTTP requests. The emulator stands in for AWS's HTTPS endpoint, so
``apply`` evaluates bucket policies as if ``aws:SecureTransport`` were true:
statements that apply only to plain HTTP are left out, the rest are
evaluated as moto does.
"""

from __future__ import annotations

import json
from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.s3.exceptions import MissingBucket
from moto.s3.models import s3_backends
from moto.utilities.utils import get_partition

from .cfn_resource_handler import ResourceHandler


def _backend(account_id: str, region_name: str) -> Any:
    return s3_backends[account_id][get_partition(region_name)]


class BucketPolicyResource(ResourceHandler, CloudFormationModel):
    """Stack-side handle of the policy of one bucket in moto's S3 backend;
    ``name`` is the bucket's (the physical id, as on AWS)."""

    cfn_type = "AWS::S3::BucketPolicy"
    already_gone = (MissingBucket,)

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> BucketPolicyResource:
        props = cloudformation_json.get("Properties", {})
        bucket, document = props["Bucket"], props["PolicyDocument"]
        policy = document if isinstance(document, str) else json.dumps(document)
        _backend(account_id, region_name).put_bucket_policy(bucket, policy.encode("utf-8"))
        return cls(bucket)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: BucketPolicyResource,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> BucketPolicyResource:
        new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
        if new.name != original_resource.name:
            original_resource.delete(account_id, region_name)
        return new

    @classmethod
    def delete_named(cls, name: str, account_id: str, region_name: str) -> None:
        _backend(account_id, region_name).delete_bucket_policy(name)


def _only_for_plain_http(statement: dict[str, Any]) -> bool:
    """A statement conditioned on ``aws:SecureTransport`` being false: it never
    matches a request to the emulator, which counts as HTTPS."""
    condition = statement.get("Condition") or {}
    secure = (condition.get("Bool") or {}).get("aws:SecureTransport")
    return secure in ("false", False, ["false"])


def apply() -> None:
    """Defining the subclass registers the type (see ``apply_all``); this
    patches the policy evaluation of S3 buckets (see the module's doc)."""
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: FakeBucket, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        document = json.loads(self.policy.decode())
        statements = document.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        # moto ignores operators it does not know (Bool among them), so such a
        # statement would always match: drop the ones that only apply to plain HTTP.
        document["Statement"] = [s for s in statements if not _only_for_plain_http(s)]
        if not document["Statement"]:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps(document)).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission

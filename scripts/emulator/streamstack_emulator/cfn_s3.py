"""CloudFormation ``AWS::S3::Bucket``: deleting a non-empty bucket fails, as on AWS.

Gap in moto 5.2.1: ``S3Backend.delete_bucket`` returns ``None`` for a bucket
that still holds objects, and the CloudFormation model ignores that result: the
stack reaches DELETE_COMPLETE while the bucket (and its data) silently stays.
On AWS the bucket fails with "The bucket you tried to delete is not empty" and
the stack ends in DELETE_FAILED, which is what a teardown that "keeps data
unless told otherwise" has to handle (empty the bucket, or DeletionPolicy: Retain).

Patch: wrap ``FakeBucket.delete_from_cloudformation_json`` to raise moto's own
``BucketNotEmpty`` in that case (``cfn_failures`` turns it into DELETE_FAILED),
and to treat an already deleted bucket as deleted.
"""

from __future__ import annotations

from moto.s3.exceptions import BucketNotEmpty, MissingBucket
from moto.s3.models import FakeBucket, s3_backends
from moto.utilities.utils import get_partition


def apply() -> None:
    """Make the CloudFormation delete of a non-empty bucket fail like AWS."""
    if getattr(FakeBucket, "_streamstack_patched", False):
        return

    def delete(cls, resource_name, cloudformation_json, account_id, region_name):  # type: ignore[no-untyped-def]
        backend = s3_backends[account_id][get_partition(region_name)]
        try:
            deleted = backend.delete_bucket(resource_name)
        except MissingBucket:
            return
        if deleted is None:
            raise BucketNotEmpty(resource_name)

    FakeBucket.delete_from_cloudformation_json = classmethod(delete)  # type: ignore[method-assign,assignment]
    FakeBucket._streamstack_patched = True  # type: ignore[attr-defined]

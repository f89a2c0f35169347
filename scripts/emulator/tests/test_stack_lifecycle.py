"""Stack failures end in CloudFormation statuses with reasons, not HTTP 500 (cfn_failures,
cfn_events, cfn_s3), and updates keep resources moto cannot update."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import deploy_with_change_set, wait_for

QUEUE = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "ss-fail-queue"}}
# A table without KeySchema/AttributeDefinitions: moto raises a TypeError inside
# CreateStack (HTTP 500 without the extension).
BAD_TABLE = {"Type": "AWS::DynamoDB::Table", "DependsOn": "Queue", "Properties": {"TableName": "ss-fail-table"}}
BAD_TEMPLATE = {
    "Resources": {"Queue": QUEUE, "BadTable": BAD_TABLE},
    "Outputs": {"QueueUrl": {"Value": {"Ref": "Queue"}}},
}


def _events(cfn: Any, stack: str) -> list[tuple[str, str, str | None]]:
    return [
        (e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceStatusReason"))
        for e in cfn.describe_stack_events(StackName=stack)["StackEvents"]
    ][::-1]


def _assert_rolled_back(client: Any, stack: dict[str, Any]) -> None:
    cfn = client("cloudformation")
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert "[BadTable]" in stack["StackStatusReason"]
    assert "Outputs" not in stack
    events = _events(cfn, stack["StackId"])
    failed = [e for e in events if e[:2] == ("BadTable", "CREATE_FAILED")]
    assert failed and failed[0][2]  # with the error as its reason
    assert ("Queue", "DELETE_COMPLETE", None) in events  # rolled back
    assert client("sqs").list_queues(QueueNamePrefix="ss-fail-queue").get("QueueUrls", []) == []


def test_create_stack_with_a_bad_resource_rolls_back(client: Any) -> None:
    cfn = client("cloudformation")
    stack_id = cfn.create_stack(StackName="ss-fail", TemplateBody=json.dumps(BAD_TEMPLATE))["StackId"]
    _assert_rolled_back(client, cfn.describe_stacks(StackName=stack_id)["Stacks"][0])
    cfn.delete_stack(StackName="ss-fail")
    assert cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"


def test_change_set_with_a_bad_resource_rolls_back(client: Any) -> None:
    cfn = client("cloudformation")
    stack = deploy_with_change_set(cfn, "ss-fail-cs", BAD_TEMPLATE)
    _assert_rolled_back(client, stack)
    change_set = cfn.describe_change_set(ChangeSetName="ss-fail-cs-create", StackName="ss-fail-cs")
    assert change_set["ExecutionStatus"] == "EXECUTE_FAILED"
    cfn.delete_stack(StackName="ss-fail-cs")


TABLE = {
    "Type": "AWS::DynamoDB::Table",
    "Properties": {
        "TableName": "ss-life-table",
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
    },
}


def test_update_keeps_a_resource_moto_cannot_update(client: Any) -> None:
    cfn = client("cloudformation")
    template = {"Resources": {"Table": TABLE}, "Outputs": {"Table": {"Value": {"Ref": "Table"}}}}
    deploy_with_change_set(cfn, "ss-life", template)
    changed = json.loads(json.dumps(template))
    changed["Resources"]["Table"]["Properties"]["Tags"] = [{"Key": "team", "Value": "data"}]
    cfn.update_stack(StackName="ss-life", TemplateBody=json.dumps(changed))
    stack = cfn.describe_stacks(StackName="ss-life")["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    resources = cfn.list_stack_resources(StackName="ss-life")["StackResourceSummaries"]
    assert [r["LogicalResourceId"] for r in resources] == ["Table"]  # moto alone drops it
    reasons = [e[2] for e in _events(cfn, "ss-life") if e[:2] == ("Table", "UPDATE_COMPLETE")]
    assert reasons and "cannot update AWS::DynamoDB::Table" in reasons[-1]
    cfn.delete_stack(StackName="ss-life")
    assert "ss-life-table" not in client("dynamodb").list_tables()["TableNames"]  # still deleted with the stack


def test_failed_update_ends_in_update_rollback_failed(client: Any) -> None:
    cfn = client("cloudformation")
    deploy_with_change_set(cfn, "ss-upd", {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})
    cfn.update_stack(
        StackName="ss-upd",
        TemplateBody=json.dumps(
            {
                "Resources": {
                    "Queue": {"Type": "AWS::SQS::Queue"},
                    "BadTable": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
                }
            }
        ),
    )
    stack = cfn.describe_stacks(StackName="ss-upd")["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_FAILED"
    assert "[BadTable]" in stack["StackStatusReason"]
    cfn.delete_stack(StackName="ss-upd")


def test_deleting_a_non_empty_bucket_fails_like_aws(client: Any) -> None:
    cfn, s3 = client("cloudformation"), client("s3")
    template = {
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "ss-life-bucket"}},
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "ss-life-q"}},
        }
    }
    deploy_with_change_set(cfn, "ss-bucket", template)
    s3.put_object(Bucket="ss-life-bucket", Key="data", Body=b"keep me")
    cfn.delete_stack(StackName="ss-bucket")
    stack = cfn.describe_stacks(StackName="ss-bucket")["Stacks"][0]  # still there, by name
    assert stack["StackStatus"] == "DELETE_FAILED"
    assert stack["StackStatusReason"].startswith("The following resource(s) failed to delete: [Bucket]")
    events = _events(cfn, "ss-bucket")
    assert any(e[:2] == ("Bucket", "DELETE_FAILED") and "not empty" in (e[2] or "") for e in events)
    assert ("Queue", "DELETE_COMPLETE", None) in events
    # empty it and delete again: now it goes
    s3.delete_object(Bucket="ss-life-bucket", Key="data")
    cfn.delete_stack(StackName="ss-bucket")
    wait_for(lambda: "ss-life-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]], 5)
    assert cfn.describe_stacks(StackName=stack["StackId"])["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"


def test_a_tls_only_bucket_policy_denies_only_what_it_says(client: Any) -> None:
    """The TLS-only Deny must not block requests to the emulator, which stands in
    for AWS's HTTPS endpoint; any other Deny in the same policy still applies."""
    cfn, s3 = client("cloudformation"), client("s3")
    bucket = "ss-tls-only-bucket"
    arn = f"arn:aws:s3:::{bucket}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {"Sid": "DenyLocked", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"{arn}/locked/*"},
        ],
    }
    template = {
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": bucket}},
            "Policy": {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "Bucket"}, "PolicyDocument": policy}},
        }
    }
    deploy_with_change_set(cfn, "ss-tls", template)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"][0]["Sid"] == "DenyInsecureTransport"
    s3.put_object(Bucket=bucket, Key="raw/a", Body=b"x")
    assert s3.get_object(Bucket=bucket, Key="raw/a")["Body"].read() == b"x"
    with pytest.raises(ClientError) as denied:
        s3.put_object(Bucket=bucket, Key="locked/a", Body=b"x")
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    s3.delete_object(Bucket=bucket, Key="raw/a")
    cfn.delete_stack(StackName="ss-tls")


def test_an_unchanged_change_set_with_parameters_fails_like_aws(client: Any) -> None:
    """AWS creates the change set and fails it ("didn't contain changes"), which
    `aws cloudformation deploy --no-fail-on-empty-changeset` relies on; moto
    answered a synchronous ValidationError instead."""
    cfn = client("cloudformation")
    template = {
        "Parameters": {"Name": {"Type": "String", "Default": "ss-unchanged-q"}},
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "Name"}}}},
    }
    deploy_with_change_set(cfn, "ss-unchanged", template)
    cfn.create_change_set(
        StackName="ss-unchanged", ChangeSetName="again", ChangeSetType="UPDATE", TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": "Name", "ParameterValue": "ss-unchanged-q"}],
    )
    described = cfn.describe_change_set(StackName="ss-unchanged", ChangeSetName="again")
    assert described["Status"] == "FAILED"
    assert "didn't contain changes" in described["StatusReason"]
    # UpdateStack keeps AWS's synchronous answer.
    with pytest.raises(ClientError) as unchanged:
        cfn.update_stack(StackName="ss-unchanged", TemplateBody=json.dumps(template),
                         Parameters=[{"ParameterKey": "Name", "ParameterValue": "ss-unchanged-q"}])
    assert "No updates are to be performed" in str(unchanged.value)
    cfn.delete_stack(StackName="ss-unchanged")

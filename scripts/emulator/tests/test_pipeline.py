"""The streamstack pipeline, deployed through a change set on the extended emulator.

Stream (2 shards, KMS) -> Firehose (Kinesis source, GZIP, timestamp prefix) -> S3,
a DynamoDB table, CloudWatch alarms and a dashboard. Every assertion below
fails on plain moto 5.2.1 (or if the matching extension breaks).
Tests run in file order; the last one deletes the stack.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import deploy_with_change_set, wait_for

STACK = "ss-test"
STREAM = "ss-test-stream"
BUCKET = "ss-test-archive"
DELIVERY = "ss-test-archive-stream"
TABLE = "ss-test-tweets"
ITERATOR_ALARM = "ss-test-iterator-age"

TEMPLATE: dict[str, Any] = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Description": "streamstack emulator test pipeline",
    "Resources": {
        "Stream": {
            "Type": "AWS::Kinesis::Stream",
            "Properties": {
                "Name": STREAM,
                "ShardCount": 2,
                "RetentionPeriodHours": 24,
                "StreamModeSpecification": {"StreamMode": "PROVISIONED"},
                "StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
            },
        },
        "Archive": {
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Retain",
            "Properties": {"BucketName": BUCKET},
        },
        "FirehoseRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "firehose.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "Policies": [
                    {
                        "PolicyName": "archive",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Action": ["kinesis:Get*", "kinesis:Describe*", "kinesis:List*"],
                                    "Resource": {"Fn::GetAtt": ["Stream", "Arn"]},
                                },
                                {
                                    "Effect": "Allow",
                                    "Action": ["s3:PutObject", "s3:GetBucketLocation"],
                                    "Resource": [{"Fn::GetAtt": ["Archive", "Arn"]}, {"Fn::Sub": "${Archive.Arn}/*"}],
                                },
                            ],
                        },
                    }
                ],
            },
        },
        "DeliveryStream": {
            "Type": "AWS::KinesisFirehose::DeliveryStream",
            "Properties": {
                "DeliveryStreamName": DELIVERY,
                "DeliveryStreamType": "KinesisStreamAsSource",
                "KinesisStreamSourceConfiguration": {
                    "KinesisStreamARN": {"Fn::GetAtt": ["Stream", "Arn"]},
                    "RoleARN": {"Fn::GetAtt": ["FirehoseRole", "Arn"]},
                },
                "ExtendedS3DestinationConfiguration": {
                    "BucketARN": {"Fn::GetAtt": ["Archive", "Arn"]},
                    "RoleARN": {"Fn::GetAtt": ["FirehoseRole", "Arn"]},
                    "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 2},
                    "CompressionFormat": "GZIP",
                    "Prefix": "raw/!{timestamp:yyyy/MM/dd/HH}/",
                    "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/",
                },
            },
        },
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "TableName": TABLE,
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "tweet_id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "tweet_id", "KeyType": "HASH"}],
                "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            },
        },
        "IteratorAgeAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmName": ITERATOR_ALARM,
                "AlarmDescription": "processor falls behind the stream",
                "Namespace": "AWS/Kinesis",
                "MetricName": "GetRecords.IteratorAgeMilliseconds",
                "Dimensions": [{"Name": "StreamName", "Value": {"Ref": "Stream"}}],
                "Statistic": "Maximum",
                "Period": 60,
                "EvaluationPeriods": 5,
                "DatapointsToAlarm": 3,
                "Threshold": 60000,
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching",
            },
        },
        "DeadLetterAlarm": {  # no AlarmName: CloudFormation generates one
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "Namespace": "Streamstack/Processor",
                "MetricName": "DeadLetters",
                "Dimensions": [{"Name": "Pipeline", "Value": STACK}],
                "Statistic": "Sum",
                "Period": "300",  # strings, as YAML-quoted or parameter values arrive
                "EvaluationPeriods": "1",
                "Threshold": "1",
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "breaching",
            },
        },
        "FreshnessAlarm": {  # metric math
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmName": "ss-test-archive-freshness",
                "EvaluationPeriods": 1,
                "Threshold": 15,
                "ComparisonOperator": "GreaterThanThreshold",
                "Metrics": [
                    {
                        "Id": "m1",
                        "ReturnData": False,
                        "MetricStat": {
                            "Metric": {
                                "Namespace": "AWS/Firehose",
                                "MetricName": "DeliveryToS3.DataFreshness",
                                "Dimensions": [{"Name": "DeliveryStreamName", "Value": {"Ref": "DeliveryStream"}}],
                            },
                            "Period": 60,
                            "Stat": "Maximum",
                        },
                    },
                    {"Id": "e1", "Expression": "m1 / 60", "Label": "minutes", "ReturnData": True},
                ],
            },
        },
    },
    "Outputs": {
        "StreamName": {"Value": {"Ref": "Stream"}},
        "StreamArn": {"Value": {"Fn::GetAtt": ["Stream", "Arn"]}},
        "ArchiveBucket": {"Value": {"Ref": "Archive"}},
        "DeliveryStreamName": {"Value": {"Ref": "DeliveryStream"}},
        "DeliveryStreamArn": {"Value": {"Fn::GetAtt": ["DeliveryStream", "Arn"]}},
        "TableName": {"Value": {"Ref": "Table"}},
        "IteratorAgeAlarm": {"Value": {"Ref": "IteratorAgeAlarm"}},
        "DeadLetterAlarm": {"Value": {"Ref": "DeadLetterAlarm"}},
        "FreshnessAlarmArn": {"Value": {"Fn::GetAtt": ["FreshnessAlarm", "Arn"]}},
    },
}

STREAM_ARN = f"arn:aws:kinesis:us-east-1:123456789012:stream/{STREAM}"


@pytest.fixture(scope="module")
def stack(client: Any) -> dict[str, Any]:
    return deploy_with_change_set(client("cloudformation"), STACK, TEMPLATE)


def outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def test_change_set_stack_reaches_create_complete_with_all_outputs(stack: dict[str, Any]) -> None:
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    out = outputs(stack)
    assert set(out) == set(TEMPLATE["Outputs"])
    assert out["StreamName"] == STREAM
    assert out["StreamArn"] == STREAM_ARN
    assert out["ArchiveBucket"] == BUCKET
    assert out["DeliveryStreamName"] == DELIVERY
    assert out["DeliveryStreamArn"] == f"arn:aws:firehose:us-east-1:123456789012:deliverystream/{DELIVERY}"
    assert out["TableName"] == TABLE
    assert out["IteratorAgeAlarm"] == ITERATOR_ALARM
    assert re.fullmatch(rf"{STACK}-DeadLetterAlarm-[A-Za-z0-9]+", out["DeadLetterAlarm"])
    assert out["FreshnessAlarmArn"] == "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ss-test-archive-freshness"


def test_stack_lists_the_new_resource_types_with_events(client: Any, stack: dict[str, Any]) -> None:
    cfn = client("cloudformation")
    resources = {r["LogicalResourceId"]: r for r in cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]}
    assert resources["DeliveryStream"]["PhysicalResourceId"] == DELIVERY
    assert resources["DeliveryStream"]["ResourceType"] == "AWS::KinesisFirehose::DeliveryStream"
    assert resources["IteratorAgeAlarm"]["PhysicalResourceId"] == ITERATOR_ALARM
    events = cfn.describe_stack_events(StackName=STACK)["StackEvents"]
    completed = {e["LogicalResourceId"] for e in events if e["ResourceStatus"] == "CREATE_COMPLETE"}
    assert {"Stream", "Archive", "DeliveryStream", "Table", "IteratorAgeAlarm", STACK} <= completed
    # newest first, as on AWS: the stack's CREATE_COMPLETE comes before (above) its resources'
    assert events[0]["LogicalResourceId"] == STACK and events[0]["ResourceStatus"] == "CREATE_COMPLETE"


def test_stream_is_kms_encrypted_with_two_shards(client: Any, stack: dict[str, Any]) -> None:
    summary = client("kinesis").describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]
    assert summary["EncryptionType"] == "KMS"
    assert summary["KeyId"] == "alias/aws/kinesis"
    assert summary["OpenShardCount"] == 2
    assert summary["StreamModeDetails"]["StreamMode"] == "PROVISIONED"


def test_delivery_stream_has_kinesis_source_and_s3_destination(client: Any, stack: dict[str, Any]) -> None:
    desc = client("firehose").describe_delivery_stream(DeliveryStreamName=DELIVERY)["DeliveryStreamDescription"]
    assert desc["DeliveryStreamStatus"] == "ACTIVE"
    assert desc["DeliveryStreamType"] == "KinesisStreamAsSource"
    source = desc["Source"]["KinesisStreamSourceDescription"]
    assert source["KinesisStreamARN"] == STREAM_ARN
    assert source["RoleARN"].endswith(":role/" + source["RoleARN"].split("/")[-1])
    s3 = desc["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert s3["BucketARN"] == f"arn:aws:s3:::{BUCKET}"
    assert s3["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 2}
    assert s3["CompressionFormat"] == "GZIP"
    assert s3["Prefix"] == "raw/!{timestamp:yyyy/MM/dd/HH}/"
    assert s3["ErrorOutputPrefix"].startswith("errors/!{firehose:error-output-type}/")


def test_alarms_exist_with_their_metrics(client: Any, stack: dict[str, Any]) -> None:
    out = outputs(stack)
    cw = client("cloudwatch")
    alarms = {
        a["AlarmName"]: a
        for a in cw.describe_alarms(AlarmNames=[ITERATOR_ALARM, out["DeadLetterAlarm"], "ss-test-archive-freshness"])[
            "MetricAlarms"
        ]
    }
    assert set(alarms) == {ITERATOR_ALARM, out["DeadLetterAlarm"], "ss-test-archive-freshness"}

    lag = alarms[ITERATOR_ALARM]
    assert (lag["Namespace"], lag["MetricName"]) == ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds")
    assert lag["Dimensions"] == [{"Name": "StreamName", "Value": STREAM}]
    assert lag["Threshold"] == 60000.0
    assert lag["ComparisonOperator"] == "GreaterThanThreshold"
    shape = (lag["Statistic"], lag["Period"], lag["EvaluationPeriods"], lag["DatapointsToAlarm"])
    assert shape == ("Maximum", 60, 5, 3)
    assert lag["TreatMissingData"] == "notBreaching"
    assert lag["AlarmDescription"] == "processor falls behind the stream"

    dead = alarms[out["DeadLetterAlarm"]]
    assert (dead["Namespace"], dead["MetricName"]) == ("Streamstack/Processor", "DeadLetters")
    assert dead["Dimensions"] == [{"Name": "Pipeline", "Value": STACK}]
    assert (dead["Threshold"], dead["Period"], dead["EvaluationPeriods"]) == (1.0, 300, 1)
    assert dead["TreatMissingData"] == "breaching"

    fresh = alarms["ss-test-archive-freshness"]
    by_id = {m["Id"]: m for m in fresh["Metrics"]}
    assert by_id["e1"]["Expression"] == "m1 / 60"
    metric = by_id["m1"]["MetricStat"]["Metric"]
    assert (metric["Namespace"], metric["MetricName"]) == ("AWS/Firehose", "DeliveryToS3.DataFreshness")
    assert metric["Dimensions"] == [{"Name": "DeliveryStreamName", "Value": DELIVERY}]


def _hour_prefixes(start: dt.datetime, end: dt.datetime) -> set[str]:
    return {f"raw/{t:%Y/%m/%d/%H}/" for t in (start, end)}


def _new_objects(s3: Any, seen: set[str], prefix: str = "") -> list[dict[str, Any]]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return [o for o in listing if o["Key"] not in seen]


def _all_keys(s3: Any) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_records_reach_s3_gzipped_under_the_timestamp_prefix(client: Any, stack: dict[str, Any]) -> None:
    kinesis, s3 = client("kinesis"), client("s3")
    seen = _all_keys(s3)
    # One partition key: one shard, so the object must be these bytes in this order.
    records = [json.dumps({"tweet_id": str(i), "text": f"hello {i}"}).encode() for i in range(25)]
    start = dt.datetime.now(dt.UTC)
    put = kinesis.put_records(StreamName=STREAM, Records=[{"Data": r, "PartitionKey": "one"} for r in records])
    assert put["FailedRecordCount"] == 0

    objects = wait_for(lambda: _new_objects(s3, seen), 15, what="archive object")
    end = dt.datetime.now(dt.UTC)
    assert len(objects) == 1, [o["Key"] for o in objects]
    key = objects[0]["Key"]
    assert any(key.startswith(p) for p in _hour_prefixes(start, end)), key
    name = key.rsplit("/", 1)[1]
    assert re.fullmatch(rf"{DELIVERY}-1-\d{{4}}-\d\d-\d\d-\d\d-\d\d-\d\d-[0-9a-f-]{{36}}\.gz", name), name
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body[:2] == b"\x1f\x8b"  # really gzip
    assert gzip.decompress(body) == b"".join(records)  # no delimiter added


def test_records_of_both_shards_are_archived(client: Any, stack: dict[str, Any]) -> None:
    kinesis, s3 = client("kinesis"), client("s3")
    seen = _all_keys(s3)
    records = [f"<rec {i:03d}>".encode() for i in range(60)]
    put = kinesis.put_records(
        StreamName=STREAM, Records=[{"Data": r, "PartitionKey": f"pk-{i}"} for i, r in enumerate(records)]
    )
    shards = {r["ShardId"] for r in put["Records"]}
    assert len(shards) == 2  # the partition keys spread over both shards

    def delivered() -> bytes | None:
        data = b"".join(
            gzip.decompress(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read())
            for o in _new_objects(s3, seen, "raw/")
        )
        return data if len(data) >= sum(map(len, records)) else None

    data = wait_for(delivered, 15, what="both shards archived")
    assert sorted(re.findall(rb"<rec \d{3}>", data)) == sorted(records)
    assert len(data) == sum(map(len, records))
    # within a shard, Kinesis order is kept
    for shard in shards:
        mine = [r for r, res in zip(records, put["Records"], strict=True) if res["ShardId"] == shard]
        positions = [data.index(r) for r in mine]
        assert positions == sorted(positions)


def test_firehose_metrics_are_published(client: Any, stack: dict[str, Any]) -> None:
    cw = client("cloudwatch")
    metrics = cw.list_metrics(Namespace="AWS/Firehose", Dimensions=[{"Name": "DeliveryStreamName", "Value": DELIVERY}])
    names = {m["MetricName"] for m in metrics["Metrics"]}
    assert {"DeliveryToS3.Records", "DeliveryToS3.DataFreshness", "DataReadFromKinesisStream.Records"} <= names


def test_update_change_set_refreshes_outputs(client: Any, stack: dict[str, Any]) -> None:
    cfn = client("cloudformation")
    template = json.loads(json.dumps(TEMPLATE))
    template["Outputs"]["TableArn"] = {"Value": {"Fn::GetAtt": ["Table", "Arn"]}}
    del template["Outputs"]["FreshnessAlarmArn"]
    change_set = cfn.create_change_set(
        StackName=STACK,
        ChangeSetName="ss-test-update",
        ChangeSetType="UPDATE",
        TemplateBody=json.dumps(template),
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    wait_for(lambda: cfn.describe_change_set(ChangeSetName=change_set["Id"])["Status"] == "CREATE_COMPLETE", 30)
    # by name + stack name: must resolve to this stack's change set
    cfn.execute_change_set(ChangeSetName="ss-test-update", StackName=STACK)
    updated = wait_for(
        lambda: (lambda s: s if s["StackStatus"] == "UPDATE_COMPLETE" else None)(
            cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        ),
        30,
    )
    out = outputs(updated)
    assert out["TableArn"] == f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}"
    assert "FreshnessAlarmArn" not in out
    assert out["DeliveryStreamName"] == DELIVERY


def test_unknown_change_set_is_a_client_error(client: Any, stack: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as err:
        client("cloudformation").execute_change_set(ChangeSetName="no-such-change-set", StackName=STACK)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] < 500


def test_delete_stack_removes_delivery_stream_and_alarms(client: Any, stack: dict[str, Any]) -> None:
    cfn, firehose, cw, s3 = client("cloudformation"), client("firehose"), client("cloudwatch"), client("s3")
    dead_letter_alarm = outputs(stack)["DeadLetterAlarm"]
    cfn.delete_stack(StackName=STACK)
    final = cfn.describe_stacks(StackName=stack["StackId"])["Stacks"][0]
    assert final["StackStatus"] == "DELETE_COMPLETE"
    with pytest.raises(ClientError) as err:
        firehose.describe_delivery_stream(DeliveryStreamName=DELIVERY)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    names = [ITERATOR_ALARM, dead_letter_alarm, "ss-test-archive-freshness"]
    assert cw.describe_alarms(AlarmNames=names)["MetricAlarms"] == []
    with pytest.raises(ClientError):
        client("kinesis").describe_stream_summary(StreamName=STREAM)
    # DeletionPolicy: Retain keeps the archive (and its objects)
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] > 0
    events = cfn.describe_stack_events(StackName=stack["StackId"])["StackEvents"]
    statuses = {(e["LogicalResourceId"], e["ResourceStatus"]) for e in events}
    assert ("DeliveryStream", "DELETE_COMPLETE") in statuses
    assert ("Archive", "DELETE_SKIPPED") in statuses

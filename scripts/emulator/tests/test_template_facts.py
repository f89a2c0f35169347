"""Facts about templates on the emulator that the streamstack template compiler relies on."""

from __future__ import annotations

from typing import Any

from conftest import deploy_with_change_set

AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"

HOST_TEMPLATE: dict[str, Any] = {
    "Parameters": {"AmiId": {"Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", "Default": AL2023}},
    "Resources": {
        "HostTemplate": {
            "Type": "AWS::EC2::LaunchTemplate",
            "Properties": {
                "LaunchTemplateName": "ss-facts-host",
                "LaunchTemplateData": {
                    "ImageId": {"Ref": "AmiId"},
                    "InstanceType": "t3.micro",
                    "MetadataOptions": {"HttpTokens": "required"},
                    "UserData": {"Fn::Base64": "#!/bin/bash\necho streamstack\n"},
                },
            },
        },
        "Host": {
            "Type": "AWS::EC2::Instance",
            "Properties": {
                "LaunchTemplate": {
                    "LaunchTemplateId": {"Ref": "HostTemplate"},
                    "Version": {"Fn::GetAtt": ["HostTemplate", "LatestVersionNumber"]},
                },
                "Tags": [{"Key": "Name", "Value": "ss-facts-host"}],
            },
        },
        "Kept": {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Retain",
            "Properties": {
                "TableName": "ss-facts-kept",
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
            },
        },
    },
    "Outputs": {"Ami": {"Value": {"Ref": "AmiId"}}, "HostId": {"Value": {"Ref": "Host"}}},
}


def test_ssm_ami_parameter_launch_template_instance_and_retain(client: Any) -> None:
    cfn, ec2, ssm = client("cloudformation"), client("ec2"), client("ssm")
    stack = deploy_with_change_set(cfn, "ss-facts", HOST_TEMPLATE)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    out = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    # The public SSM parameter resolves (moto ships /aws/service/ami-amazon-linux-latest/*).
    ami = ssm.get_parameter(Name=AL2023)["Parameter"]["Value"]
    assert out["Ami"] == ami and ami.startswith("ami-")

    # The instance takes image and type from its launch template (cfn_ec2).
    instance = ec2.describe_instances(InstanceIds=[out["HostId"]])["Reservations"][0]["Instances"][0]
    assert (instance["ImageId"], instance["InstanceType"]) == (ami, "t3.micro")
    assert {"Key": "Name", "Value": "ss-facts-host"} in instance["Tags"]

    # DeletionPolicy: Retain keeps the table; the instance goes.
    cfn.delete_stack(StackName="ss-facts")
    assert "ss-facts-kept" in client("dynamodb").list_tables()["TableNames"]
    state = ec2.describe_instances(InstanceIds=[out["HostId"]])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state == "terminated"

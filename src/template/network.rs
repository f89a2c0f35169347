//! The host's network. With `host.vpc_id` and `host.subnet_ids` the host
//! joins the user's network; without them the stack brings a small network
//! of its own (a VPC with two public subnets in two zones), so it works in
//! accounts that have no default VPC and never lands in a shared one.

use serde_json::{Value, json};

use super::{Template, checkov_skips, r};

const VPC: &str = "Vpc";
const GATEWAY: &str = "InternetGateway";
const GATEWAY_ATTACHMENT: &str = "InternetGatewayAttachment";
const ROUTE_TABLE: &str = "PublicRouteTable";
const SUBNETS: [&str; 2] = ["PublicSubnetA", "PublicSubnetB"];
/// The stack's own address range, and a /24 of it for each subnet.
const CIDR: &str = "10.42.0.0/16";
const SUBNET_CIDRS: [&str; 2] = ["10.42.0.0/24", "10.42.1.0/24"];

/// Where the host goes: its VPC and subnets, as template values.
pub struct Placement {
    pub vpc: Value,
    pub subnets: Vec<Value>,
}

pub fn add(t: &mut Template<'_>) -> Placement {
    if let Some(vpc) = &t.stack.host.vpc_id {
        return Placement {
            vpc: json!(vpc),
            subnets: t.stack.host.subnet_ids.iter().map(|s| json!(s)).collect(),
        };
    }
    let tags = t.tags();
    t.resource(
        VPC,
        json!({
            "Type": "AWS::EC2::VPC",
            "Metadata": checkov_skips(&[("CKV2_AWS_11", "Only the processor host lives here, with no inbound rule; flow logs are left to the account's network policy.")]),
            "Properties": { "CidrBlock": CIDR, "EnableDnsSupport": true, "EnableDnsHostnames": true, "Tags": tags },
        }),
    );
    let tags = t.tags();
    t.resource(
        GATEWAY,
        json!({ "Type": "AWS::EC2::InternetGateway", "Properties": { "Tags": tags } }),
    );
    t.resource(
        GATEWAY_ATTACHMENT,
        json!({ "Type": "AWS::EC2::VPCGatewayAttachment", "Properties": { "VpcId": r(VPC), "InternetGatewayId": r(GATEWAY) } }),
    );
    let tags = t.tags();
    t.resource(
        ROUTE_TABLE,
        json!({ "Type": "AWS::EC2::RouteTable", "Properties": { "VpcId": r(VPC), "Tags": tags } }),
    );
    t.resource(
        "PublicDefaultRoute",
        json!({
            "Type": "AWS::EC2::Route",
            "DependsOn": GATEWAY_ATTACHMENT,
            "Properties": { "RouteTableId": r(ROUTE_TABLE), "DestinationCidrBlock": "0.0.0.0/0", "GatewayId": r(GATEWAY) },
        }),
    );
    for (i, subnet) in SUBNETS.iter().enumerate() {
        let tags = t.tags();
        t.resource(
            subnet,
            json!({
                "Type": "AWS::EC2::Subnet",
                "Metadata": checkov_skips(&[(
                    "CKV_AWS_130",
                    "The host needs outbound HTTPS (AWS APIs, X API) and a public address is the cost-free way without a NAT gateway; its security group admits no inbound traffic and access is through Session Manager.",
                )]),
                "Properties": {
                    "VpcId": r(VPC),
                    "CidrBlock": SUBNET_CIDRS[i],
                    "AvailabilityZone": { "Fn::Select": [i, { "Fn::GetAZs": "" }] },
                    "MapPublicIpOnLaunch": true,
                    "Tags": tags,
                },
            }),
        );
        t.resource(
            &format!("{subnet}RouteTableAssociation"),
            json!({ "Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": { "SubnetId": r(subnet), "RouteTableId": r(ROUTE_TABLE) } }),
        );
    }
    t.output("VpcId", "VPC of the processor host(s)", r(VPC));
    Placement {
        vpc: r(VPC),
        subnets: SUBNETS.iter().map(|s| r(s)).collect(),
    }
}

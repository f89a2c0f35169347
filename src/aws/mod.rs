//! AWS clients, built from the standard settings only: profile, region,
//! endpoint URL (`--endpoint-url` or the SDK's `AWS_ENDPOINT_URL`) and the
//! default credential chain. The local emulator is reached the same way as
//! AWS: there is no code path of its own.

mod calls;
mod error;
#[cfg(test)]
pub(crate) mod replay;

pub use calls::{CallStats, call_stats};
pub use error::{
    AwsError, ErrorClass, ResultExt, backoff, class_of, classify, is_conditional_failure,
    is_not_found, is_permanent, is_retryable, service_code,
};

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use clap::Args;

use self::calls::CallCounter;

/// The SDK's own connect timeout, kept when the attempt timeout is set.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// Where and as whom to call AWS.
#[derive(Debug, Clone, Args)]
pub struct AwsArgs {
    /// Named profile from the shared AWS config files.
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// Region; default: the stack file's `region`.
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Endpoint of every service (the SDK's AWS_ENDPOINT_URL works too).
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// Longest wait for one attempt at an AWS call before it is abandoned
    /// and retried (a slow or silent endpoint must not hang the processor).
    #[arg(long, global = true, env = "STREAMSTACK_CALL_TIMEOUT", value_name = "DURATION",
          default_value = "30s", value_parser = humantime::parse_duration)]
    pub call_timeout: Duration,
}

/// The clients of every service the tool calls, made once from one
/// configuration (cheap to clone: each is a handle).
#[derive(Debug, Clone)]
pub struct Aws {
    region: String,
    endpoint_url: Option<String>,
    cloudformation: aws_sdk_cloudformation::Client,
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    kinesis: aws_sdk_kinesis::Client,
    firehose: aws_sdk_firehose::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    kms: aws_sdk_kms::Client,
    ssm: aws_sdk_ssm::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
}

/// Clients for [`Aws::from_clients`] (tests with recorded responses build them).
pub struct Clients {
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub firehose: aws_sdk_firehose::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub kms: aws_sdk_kms::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

impl Aws {
    /// Loads the configuration. The stack file's region applies unless
    /// `--region` says otherwise: a stack lives in one region.
    pub async fn connect(args: &AwsArgs, stack_region: &str) -> Self {
        let region = args
            .region
            .clone()
            .unwrap_or_else(|| stack_region.to_string());
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(args.call_timeout)
                    .build(),
            );
        if let Some(profile) = &args.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &args.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        Self::from_config(&loader.load().await)
    }

    /// Clients for `config`, each counting its calls and retries ([`call_stats`]).
    pub fn from_config(config: &SdkConfig) -> Self {
        macro_rules! client {
            ($sdk:ident) => {
                $sdk::Client::from_conf(
                    $sdk::config::Builder::from(config)
                        .interceptor(CallCounter)
                        .build(),
                )
            };
        }
        // S3-compatible endpoints (MinIO, local emulators, VPC endpoints
        // without private DNS) need path-style addressing; AWS's own
        // endpoint takes virtual-hosted style, the SDK default.
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .interceptor(CallCounter)
            .build();
        Self {
            region: config.region().map(ToString::to_string).unwrap_or_default(),
            endpoint_url: config.endpoint_url().map(str::to_string),
            cloudformation: client!(aws_sdk_cloudformation),
            s3: aws_sdk_s3::Client::from_conf(s3),
            dynamodb: client!(aws_sdk_dynamodb),
            kinesis: client!(aws_sdk_kinesis),
            firehose: client!(aws_sdk_firehose),
            cloudwatch: client!(aws_sdk_cloudwatch),
            kms: client!(aws_sdk_kms),
            ssm: client!(aws_sdk_ssm),
            logs: client!(aws_sdk_cloudwatchlogs),
        }
    }

    pub fn from_clients(region: &str, clients: Clients) -> Self {
        Self {
            region: region.to_string(),
            endpoint_url: None,
            cloudformation: clients.cloudformation,
            s3: clients.s3,
            dynamodb: clients.dynamodb,
            kinesis: clients.kinesis,
            firehose: clients.firehose,
            cloudwatch: clients.cloudwatch,
            kms: clients.kms,
            ssm: clients.ssm,
            logs: clients.logs,
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The custom endpoint, when one is configured.
    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    pub fn cloudformation(&self) -> aws_sdk_cloudformation::Client {
        self.cloudformation.clone()
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        self.s3.clone()
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        self.dynamodb.clone()
    }

    pub fn kinesis(&self) -> aws_sdk_kinesis::Client {
        self.kinesis.clone()
    }

    pub fn firehose(&self) -> aws_sdk_firehose::Client {
        self.firehose.clone()
    }

    pub fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        self.cloudwatch.clone()
    }

    pub fn kms(&self) -> aws_sdk_kms::Client {
        self.kms.clone()
    }

    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        self.ssm.clone()
    }

    /// CloudWatch Logs: the processor's log lines (`logging`).
    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        self.logs.clone()
    }
}

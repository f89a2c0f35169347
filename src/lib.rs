//! streamstack: provision, run and watch a real-time data pipeline on AWS
//! (Kinesis -> processor -> DynamoDB, Firehose -> S3, CloudWatch) from one
//! YAML stack file.
//!
//! Layers: `spec` (stack files: parse, validate) and `template` (compile to
//! CloudFormation) are pure; `cli` is the edge that reads files and prints.

pub mod app;
pub mod aws;
pub mod cli;
pub mod cost;
pub mod deploy;
pub mod jq;
pub mod logging;
pub mod names;
pub mod processor;
pub mod spec;
pub mod template;

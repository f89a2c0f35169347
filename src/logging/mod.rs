pub mod cloudwatch;
pub mod read;

//! `logs`: the processor's log lines from the stack's CloudWatch Logs
//! group, every worker's, in time order; or followed as they come.

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{AppError, Environment};
use crate::logging::read::{self, LogLine};

/// How often a follower asks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

/// The lines of a window.
#[derive(Debug)]
pub struct LogsReport {
    pub stack: String,
    pub log_group: String,
    pub lines: Vec<LogLine>,
}

/// The lines since `since` (the newest `limit` of them when given).
pub async fn fetch(
    env: &Environment,
    since: SystemTime,
    limit: Option<usize>,
) -> Result<LogsReport, AppError> {
    let group = env.names.processor_log_group.clone();
    let lines = read::fetch(&env.aws.logs(), &group, since, None, limit).await?;
    Ok(LogsReport {
        stack: env.stack().to_string(),
        log_group: group,
        lines,
    })
}

/// Hands each new line to `each` until `stop`.
pub async fn follow(
    env: &Environment,
    since: SystemTime,
    stop: CancellationToken,
    each: impl FnMut(&LogLine),
) -> Result<(), AppError> {
    let group = &env.names.processor_log_group;
    Ok(read::follow(env.aws.logs(), group, since, FOLLOW_EVERY, stop, each).await?)
}

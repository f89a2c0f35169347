//! `down`: teardown that never deletes data silently. The local processor
//! stops first (it stores its batch and checkpoints while its tables still
//! exist), the stream's unread records are counted from the consumer's
//! checkpoints, and the deployer tears down by the data policy.

use std::time::Duration;

use super::{AppError, Environment};
use crate::deploy::POLL_INTERVAL;
use crate::deploy::down::{self, DataPolicy, DownOutcome, StreamData};
use crate::deploy::local_processor;
use crate::processor::read::consumer::backlog::unread_records;

/// What `down` did.
#[derive(Debug)]
pub struct DownReport {
    pub stack: String,
    pub outcome: DownOutcome,
}

pub async fn down(env: &Environment, policy: DataPolicy) -> Result<DownReport, AppError> {
    let stack = env.stack().to_string();
    tracing::info!(stack = %stack, "taking stock of the data in stack {stack}");
    let mut stopped = false;
    if env.is_local() {
        match local_processor::stop(&stack, Duration::from_secs(10)) {
            Ok(true) => {
                tracing::info!(stack = %stack, "stopped the local processor of {stack}");
                stopped = true;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(stack = %stack, error = %e, "stopping the local processor of {stack} failed")
            }
        }
    }
    let result = teardown(env, policy).await;
    // Refused: nothing was torn down, so the processor goes back to work.
    if let Err(AppError::Deploy(e)) = &result
        && stopped
        && e.is_refusal()
    {
        restart_local_processor(env);
    }
    Ok(DownReport {
        stack,
        outcome: result?,
    })
}

async fn teardown(env: &Environment, policy: DataPolicy) -> Result<DownOutcome, AppError> {
    let names = &env.names;
    let stream = unread_records(&env.aws, &names.stream, &names.lease_table)
        .await?
        .map(|unread_records| StreamData {
            name: names.stream.clone(),
            unread_records,
        });
    Ok(down::down(&env.aws, env.stack(), policy, stream, POLL_INTERVAL).await?)
}

fn restart_local_processor(env: &Environment) {
    let stack = env.stack();
    let Ok(binary) = std::env::current_exe() else {
        return;
    };
    match local_processor::ensure_running(
        stack,
        &binary,
        &env.stack_file,
        env.environment.as_deref(),
    ) {
        Ok(_) => tracing::info!(stack, "restarted the local processor of {stack}"),
        Err(e) => {
            tracing::warn!(stack, error = %e, "restarting the local processor of {stack} failed")
        }
    }
}

//! Counts every AWS call this process makes and every attempt at one, so a
//! run can say how many calls the SDK had to retry (throttling, 5xx,
//! timeouts, dropped connections): retries are invisible otherwise.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde::Serialize;

static CALLS: AtomicU64 = AtomicU64::new(0);
static ATTEMPTS: AtomicU64 = AtomicU64::new(0);

/// Calls and attempts so far in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CallStats {
    /// Operations started (one a `send()`).
    pub calls: u64,
    /// HTTP attempts made for them (the first one and each retry).
    pub attempts: u64,
    /// Attempts past the first: what the SDK retried.
    pub sdk_retries: u64,
}

pub fn call_stats() -> CallStats {
    let calls = CALLS.load(Relaxed);
    let attempts = ATTEMPTS.load(Relaxed);
    CallStats {
        calls,
        attempts,
        sdk_retries: attempts.saturating_sub(calls),
    }
}

/// The interceptor every client of [`super::Aws`] carries.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct CallCounter;

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "streamstack::CallCounter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        CALLS.fetch_add(1, Relaxed);
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        ATTEMPTS.fetch_add(1, Relaxed);
        Ok(())
    }
}

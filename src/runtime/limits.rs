//! The hard limits of one call: memory and table growth (enforced in the call's store by
//! [`crate::host::limits::CallLimiter`]), wall-clock time (epoch interruption), CPU (fuel),
//! outgoing requests and result size.

use std::time::Duration;

/// Limits applied to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    pub timeout: Duration,
    pub memory_bytes: u64,
    pub max_result_bytes: u64,
    /// Instructions' worth of fuel, when the engine meters fuel.
    pub fuel: Option<u64>,
    /// Outgoing HTTP requests the call may make.
    pub max_requests: u64,
}

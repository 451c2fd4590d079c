//! The hard limits of one call: memory and table growth (a `ResourceLimiter`), wall-clock time
//! (epoch interruption), CPU (fuel), outgoing requests and result size. When a limit stops a tool we remember which one, so
//! the agent and the audit log learn "memory limit of 64 MiB exceeded", not a bare trap.

use std::time::Duration;

use wasmtime::ResourceLimiter;

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

/// Which limit stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    Memory { limit: u64, requested: u64 },
    TableElements { limit: u64, requested: u64 },
}

/// The error a limiter raises inside wasmtime; recognized again by `runtime::call`.
#[derive(Debug, thiserror::Error)]
#[error("{0:?}")]
pub struct LimitExceeded(pub LimitHit);

/// Table elements a single table may hold; generous for real code, fatal for a table bomb.
const MAX_TABLE_ELEMENTS: u64 = 1 << 20;

/// Tracks the memory of one store and refuses growth past the call's limit.
#[derive(Debug)]
pub struct CallLimiter {
    memory_limit: u64,
}

impl CallLimiter {
    pub fn new(limits: &CallLimits) -> Self {
        CallLimiter {
            memory_limit: limits.memory_bytes,
        }
    }
}

/// Refuses growth to `desired` beyond `limit`, naming the limit (via `hit`) in the error.
fn check_growth(
    desired: usize,
    limit: u64,
    hit: fn(u64, u64) -> LimitHit,
) -> wasmtime::Result<bool> {
    let requested = desired as u64;
    if requested > limit {
        return Err(LimitExceeded(hit(limit, requested)).into());
    }
    Ok(true)
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        check_growth(desired, self.memory_limit, |limit, requested| {
            LimitHit::Memory { limit, requested }
        })
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        check_growth(desired, MAX_TABLE_ELEMENTS, |limit, requested| {
            LimitHit::TableElements { limit, requested }
        })
    }
}

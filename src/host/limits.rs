//! The store's limiter: memory and table growth of one call, refused past their limits. When a
//! limit stops a tool we remember which one, so the agent and the audit log learn "memory limit
//! of 64 MiB exceeded", not a bare trap.

use wasmtime::ResourceLimiter;

/// Which limit stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    Memory { limit: u64, requested: u64 },
    TableElements { limit: u64, requested: u64 },
}

/// The error the limiter raises inside wasmtime, for the runtime to recognize and name.
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
    pub fn new(memory_bytes: u64) -> Self {
        CallLimiter {
            memory_limit: memory_bytes,
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

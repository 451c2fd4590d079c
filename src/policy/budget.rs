//! The wall-clock budget of one decision, as both evaluators enforce it and say it ran out.
//!
//! Its own module so the interpreter ([`super::store`]) and the compiled evaluator
//! ([`super::compiled`]) share it without one of them depending on the other's internals.

use std::num::NonZeroU32;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;

/// Work units between regorus clock reads: small enough that a runaway policy is stopped
/// within a fraction of a millisecond past its budget.
const TIMER_CHECK_INTERVAL: NonZeroU32 = NonZeroU32::new(32).unwrap();

/// regorus's timer for one evaluation within `budget`.
pub(super) fn timer(budget: Duration) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit: budget,
        check_interval: TIMER_CHECK_INTERVAL,
    }
}

/// The deny reason of a decision that ran out of its budget.
pub(super) fn exceeded(budget: Duration) -> String {
    format!("evaluation exceeded {}ms budget", budget.as_millis())
}

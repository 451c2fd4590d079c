//! The seam through which the call pipeline records: the gateway's verdicts and outcomes and
//! the decisions made while a tool runs all go through an [`AuditSink`], so that a test can
//! make recording fail on demand and watch the gateway fail closed. [`AuditLog`] is the one
//! implementation that serves.

use super::writer::{AuditLog, PendingAppend};
use super::{Appended, AuditError, NewEntry};

/// Where the call pipeline records. An implementation must guarantee:
///
/// - `Ok` from [`AuditSink::submit`] means the entry is queued after every entry submitted
///   before it (a call's in-flight records before its outcome), and the returned
///   [`PendingAppend`] resolves `Ok` only once the entry is durably committed;
/// - any `Err` — from `submit` or from the pending append — means the entry is not in the log
///   and will not be. The caller then fails closed: it refuses the call, denies the action the
///   entry describes, or withholds the result;
/// - `submit` does not wait for the disk: the in-flight guard calls it from the host's
///   synchronous hooks while a tool runs;
/// - entries go into the log the gateway serves from (a substitute wraps that log).
pub trait AuditSink: Send + Sync {
    /// Queues `entry`; await the returned handle before answering anyone who depends on it.
    fn submit(&self, entry: NewEntry) -> Result<PendingAppend, AuditError>;
}

impl dyn AuditSink {
    /// Records `entry` and returns once it is durably committed: [`AuditSink::submit`] and its
    /// commit, awaited together. A method here rather than in the trait so that the trait stays
    /// object safe without boxing a future per entry.
    pub async fn append(&self, entry: NewEntry) -> Result<Appended, AuditError> {
        self.submit(entry)?.committed().await
    }
}

impl AuditSink for AuditLog {
    fn submit(&self, entry: NewEntry) -> Result<PendingAppend, AuditError> {
        AuditLog::submit(self, entry)
    }
}

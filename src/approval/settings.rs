//! `[approvals]`: where questions are kept and how long a person has to answer.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The store's default file, in the working directory like the audit log's.
pub const DEFAULT_APPROVALS_FILE: &str = "gatehouse-approvals.db";

/// The longest a question may wait for a client's answer, and a parked one for an operator's:
/// a day. A call holds its concurrency slot while it waits.
const MAX_WAIT_SECS: u64 = 24 * 60 * 60;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalSettings {
    /// SQLite file of questions and grants (default `gatehouse-approvals.db`); the command line
    /// answers questions through it.
    pub path: Option<PathBuf>,
    /// How long a call (or a tool's request) waits for an answer before it is denied.
    pub timeout_secs: u64,
    /// How long a question that nobody could be asked waits for an operator.
    pub park_minutes: u64,
    /// The longest *approve for N minutes* a person may give.
    pub max_minutes: u32,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            path: None,
            timeout_secs: 120,
            park_minutes: 15,
            max_minutes: 8 * 60,
        }
    }
}

impl ApprovalSettings {
    pub fn path(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_APPROVALS_FILE))
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn park(&self) -> Duration {
        Duration::from_secs(self.park_minutes * 60)
    }

    /// Why these settings cannot be used, if they cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout_secs == 0 || self.timeout_secs > MAX_WAIT_SECS {
            return Err(format!(
                "[approvals] timeout_secs = {}: give 1 to {MAX_WAIT_SECS}",
                self.timeout_secs
            ));
        }
        if self.park_minutes == 0 || self.park_minutes * 60 > MAX_WAIT_SECS {
            return Err(format!(
                "[approvals] park_minutes = {}: give 1 to {}",
                self.park_minutes,
                MAX_WAIT_SECS / 60
            ));
        }
        if self.max_minutes == 0 || u64::from(self.max_minutes) * 60 > MAX_WAIT_SECS * 7 {
            return Err(format!(
                "[approvals] max_minutes = {}: give 1 to {}",
                self.max_minutes,
                MAX_WAIT_SECS * 7 / 60
            ));
        }
        Ok(())
    }
}

//! The `[audit]` section of `gatehouse.toml`: where the log is, who signs it, how hard each
//! commit is pushed to disk.

use std::path::PathBuf;

use serde::Deserialize;

use super::{AuditConfig, DEFAULT_AUDIT_FILE, Synchronous};

/// The append-only audit log (`[audit]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditLogConfig {
    /// SQLite file; created on first start. Default `gatehouse-audit.db` in the working
    /// directory (not the config file's: the default is where the operator runs the gateway).
    pub path: Option<PathBuf>,
    /// Ed25519 checkpoint signing key (`gatehouse audit keygen`); without it the installation's
    /// key in `key_dir` signs.
    pub signing_key: Option<PathBuf>,
    /// The gateway's state directory for its audit keys (checkpoint key created on first start,
    /// redaction key), mode 0700, apart from the log. Default (applied by `serve` and `call`):
    /// `$XDG_STATE_HOME/gatehouse`, else `~/.local/state/gatehouse` ([`super::default_key_dir`]).
    pub key_dir: Option<PathBuf>,
    /// Where checkpoints are also appended for shipping off the host (default `<path>.checkpoints`).
    pub checkpoint_file: Option<PathBuf>,
    /// A checkpoint after this many entries…
    pub checkpoint_every: u64,
    /// …or this many seconds after the first entry not yet covered.
    pub checkpoint_interval_secs: u64,
    /// `full` (default): every commit is fsynced, so an answered call's entries survive a power
    /// loss. `normal`: they survive a crash of the gateway but not of the machine, and commits
    /// are not fsynced (BENCHMARKS.md#audit-durability).
    pub synchronous: Synchronous,
}

/// The writer's own defaults ([`AuditConfig::default`]), so each is written once.
impl Default for AuditLogConfig {
    fn default() -> Self {
        let writer = AuditConfig::default();
        AuditLogConfig {
            path: None,
            signing_key: writer.signing_key,
            key_dir: writer.key_dir,
            checkpoint_file: writer.checkpoint_file,
            checkpoint_every: writer.checkpoint_every,
            checkpoint_interval_secs: writer.checkpoint_interval.as_secs(),
            synchronous: writer.synchronous,
        }
    }
}

impl AuditLogConfig {
    /// The log file: as configured, else [`DEFAULT_AUDIT_FILE`] in the working directory.
    pub fn path(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_AUDIT_FILE))
    }

    /// The writer's settings this section describes.
    pub fn writer_config(&self) -> AuditConfig {
        AuditConfig {
            signing_key: self.signing_key.clone(),
            key_dir: self.key_dir.clone(),
            checkpoint_file: self.checkpoint_file.clone(),
            checkpoint_every: self.checkpoint_every,
            checkpoint_interval: std::time::Duration::from_secs(self.checkpoint_interval_secs),
            synchronous: self.synchronous,
            ..AuditConfig::default()
        }
    }
}

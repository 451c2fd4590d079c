//! Every way the audit log can fail, each specific enough for an operator to act on. The gateway
//! treats any of them on the write path as "deny the call" (fail closed).

use std::path::PathBuf;

/// An audit log error, naming the file and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{path}: not a Gatehouse audit log: {detail}")]
    NotAnAuditLog { path: PathBuf, detail: String },

    #[error("{path}: audit log is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },

    #[error(
        "{path}: audit log schema version {found} is newer than this Gatehouse supports ({supported}); upgrade Gatehouse"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error("{path}: audit log does not exist")]
    NotFound { path: PathBuf },

    #[error(
        "{path}: cannot write here (directory missing, not a directory or not writable): {detail}"
    )]
    Unwritable { path: PathBuf, detail: String },

    #[error("{path}: disk full, the audit entry was not written")]
    DiskFull { path: PathBuf },

    #[error("{path}: audit log is already open for writing by another process or handle")]
    AlreadyOpen { path: PathBuf },

    #[error("{path}: origin is {found:?} but the configuration expects {expected:?}")]
    OriginMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },

    #[error(
        "{path}: the checkpoint file attests {file_size} entries but the log holds {db_size}: the log was truncated or replaced (checkpoint file {checkpoint_file})"
    )]
    CheckpointAhead {
        path: PathBuf,
        checkpoint_file: PathBuf,
        file_size: u64,
        db_size: u64,
    },

    #[error("{path}: checkpoint file: {detail}")]
    CheckpointFile { path: PathBuf, detail: String },

    #[error("{path}: checkpoint file does not exist")]
    CheckpointFileMissing { path: PathBuf },

    #[error("{path}: key file: {detail}")]
    Key { path: PathBuf, detail: String },

    #[error("{path}: key file does not exist")]
    KeyMissing { path: PathBuf },

    /// The state directory holding the installation's audit keys cannot be used.
    #[error(
        "{path}: audit key directory not used: {detail}; anyone else with access could read or \
         swap the keys that sign and redact the log. Fix: {fix}"
    )]
    StateDir {
        path: PathBuf,
        detail: String,
        fix: String,
    },

    #[error("invalid audit entry: {field}: {detail}")]
    InvalidEntry { field: &'static str, detail: String },

    #[error("cannot redact {pointer:?}: {detail}")]
    Redaction { pointer: String, detail: String },

    #[error("{path}: writing the audit log failed: {detail}")]
    Write { path: PathBuf, detail: String },

    #[error("{path}: the audit writer has stopped; no entry can be recorded ({detail})")]
    WriterStopped { path: PathBuf, detail: String },

    #[error("{path}: the audit log was closed")]
    Closed { path: PathBuf },

    #[error("{path}: {context}: {source}")]
    Sqlite {
        path: PathBuf,
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    #[error("{path}: {context}: {source}")]
    Io {
        path: PathBuf,
        context: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    Invalid(String),
}

impl AuditError {
    pub(crate) fn sqlite(
        path: &std::path::Path,
        context: &'static str,
        source: rusqlite::Error,
    ) -> Self {
        if let rusqlite::Error::SqliteFailure(e, _) = &source {
            match e.code {
                rusqlite::ErrorCode::DiskFull => {
                    return AuditError::DiskFull {
                        path: path.to_owned(),
                    };
                }
                rusqlite::ErrorCode::NotADatabase => {
                    return AuditError::NotAnAuditLog {
                        path: path.to_owned(),
                        detail: "not an SQLite database".into(),
                    };
                }
                rusqlite::ErrorCode::DatabaseCorrupt => {
                    return AuditError::Corrupt {
                        path: path.to_owned(),
                        detail: source.to_string(),
                    };
                }
                _ => {}
            }
        }
        AuditError::Sqlite {
            path: path.to_owned(),
            context,
            source,
        }
    }

    pub(crate) fn io(
        path: &std::path::Path,
        context: &'static str,
        source: std::io::Error,
    ) -> Self {
        AuditError::Io {
            path: path.to_owned(),
            context,
            source,
        }
    }

    /// A copy for answering every waiter of a failed batch (the source errors are not `Clone`).
    pub(crate) fn for_waiter(&self, path: &std::path::Path) -> Self {
        match self {
            AuditError::DiskFull { path } => AuditError::DiskFull { path: path.clone() },
            AuditError::InvalidEntry { field, detail } => AuditError::InvalidEntry {
                field,
                detail: detail.clone(),
            },
            other => AuditError::Write {
                path: path.to_owned(),
                detail: other.to_string(),
            },
        }
    }
}

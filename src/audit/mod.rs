//! The append-only, tamper-evident audit log.
//!
//! Every policy verdict and every call outcome is one entry in an SQLite file. The gateway
//! appends through an [`AuditLog`] handle and gets an answer only once the entry is durably
//! committed (no record, no call). Each entry's canonical bytes (RFC 8785 JSON) are a leaf of an
//! RFC 6962 Merkle tree whose root is periodically written as a signed checkpoint (a C2SP signed
//! note), both into the database and into a separate file meant to leave the host. The auditor
//! side ([`AuditReader`], [`verify()`]) opens the file read-only. `audit/VERIFY.md` specifies the
//! format precisely enough to check a log without this code.
//!
//! This module knows nothing about wasmtime, MCP or Rego: callers hand it plain JSON.

mod blocks;
mod canonical;
mod checkpoint;
mod entry;
mod error;
mod file_sync;
pub mod merkle;
mod note;
mod reader;
mod redact;
mod settings;
mod sink;
mod state;
mod store;
mod verify;
// What the command line and the web view show of entries (they build only with `full`).
#[cfg(feature = "full")]
mod views;
mod writer;

/// The log file used when the configuration names none: in the working directory, created on
/// first start.
pub const DEFAULT_AUDIT_FILE: &str = "gatehouse-audit.db";

pub use blocks::ENTRIES_PER_BLOCK;
pub(crate) use blocks::principal_of;
pub use checkpoint::{Checkpoint, SignedCheckpoint, parse_checkpoint_file, read_checkpoint_file};
pub(crate) use entry::PreparedEntry;
pub use entry::{Appended, Entry, EntryColumns, NewEntry, format_time, parse_time};
pub use error::AuditError;
pub use note::{NoteSigner, NoteVerifier, public_key_path};
pub use reader::{AuditReader, ConsistencyProof, Count, EntryFilter, InclusionProof, Stats};
pub use redact::{RedactionKey, holds_redacted};
pub use settings::AuditLogConfig;
pub use sink::AuditSink;
pub use state::{
    CHECKPOINT_KEY, CHECKPOINT_KEY_NAME, CHECKPOINT_PUBLIC_KEY, REDACTION_KEY, StateDir,
    default_key_dir,
};
pub use store::{
    APPLICATION_ID, CanonicalRow, ENTRY_COLUMNS, LogMeta, OLDEST_SCHEMA_VERSION, RawRow,
    SCHEMA_VERSION, StoredCheckpoint,
};
pub use verify::{Problem, Verifier, VerifyOptions, VerifyReport, verify};
#[cfg(feature = "full")]
pub use views::{
    Activity, ActivityBucket, CallStory, CallSummary, StoryStep, describe, parse_time_bound,
    principal,
};
pub use writer::{
    AuditConfig, AuditLog, Closed, PendingAppend, Rotated, SigningKeyInfo, Synchronous,
    default_checkpoint_file,
};

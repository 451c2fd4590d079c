//! The write side: one thread owns the write connection; [`AuditLog`] handles send it entries and
//! wait for the durable commit.
//!
//! Group commit: the writer takes every entry waiting in its queue (up to `max_batch`), writes
//! them in one transaction, commits, and only then answers all of their waiters. Under load one
//! fsync is shared by many entries (and a batch much smaller than recent ones waits a fraction of
//! a millisecond for more, see [`Writer::next_in_batch`]); alone, an entry waits for exactly its
//! own commit.
//!
//! Durability: WAL with `synchronous = FULL` by default. With FULL the WAL is fsynced at every
//! commit, so an entry acknowledged to the gateway (the pre-call verdict!) survives power loss;
//! NORMAL only survives a process crash (the last commits may roll back after power loss). Group
//! commit amortizes the fsync, which is why FULL is affordable. See the benchmark for figures.
//! Neither setting makes an append wait for the fsyncs of the database file or the checkpoint file:
//! WAL checkpoints run on their own connection and thread (`wal_checkpointer`), the checkpoint file
//! is synced by [`FileSync`]. Their work can still delay the writer: on a small machine a
//! background checkpoint's page copying can take the writer's core (BENCHMARKS.md#wal-checkpoints).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::AuditError;
use super::blocks::{self, BlockKey, BlockRecorder};
use super::checkpoint::{Checkpoint, file_record, read_checkpoint_file};
use super::entry::{Appended, NewEntry, PreparedEntry, format_time};
use super::file_sync::FileSync;
use super::merkle::CompactRange;
use super::note::NoteSigner;
use super::redact::RedactionKey;
use super::state::StateDir;
use super::store::{self, ENTRY_COLUMN_COUNT, ENTRY_COLUMNS, LogMeta};
use crate::telemetry::AuditMetrics;

/// How hard SQLite pushes each commit to disk (`[audit] synchronous` in the config file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync at every commit: acknowledged entries survive power loss (default).
    #[default]
    Full,
    /// fsync only at WAL checkpoints: survives a process crash, not a power loss.
    Normal,
}

/// Settings of the audit writer.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The checkpoint origin line for a NEW log (an existing log keeps its own; a different value
    /// here is an error). Default: `gatehouse.local/audit/<random>`.
    pub origin: Option<String>,
    /// Checkpoint signing key (`gatehouse audit keygen`). Without it, the installation's key in
    /// `key_dir` signs; without either, checkpoints are unsigned.
    pub signing_key: Option<PathBuf>,
    /// The installation's state directory ([`super::StateDir`]): its checkpoint key (created on
    /// first start) signs when no `signing_key` is given, and it holds the redaction key, apart
    /// from the log. The CLI always sets it; `None` (library use) keeps the keys of old versions.
    pub key_dir: Option<PathBuf>,
    /// Redaction key file; created (0600) if absent. Default: `<signing_key>.redaction` if that
    /// exists, else the state directory's key (adopting a `<db>.redaction-key` left beside the
    /// log by an older version), else `<signing_key>.redaction` or `<db>.redaction-key`.
    pub redaction_key: Option<PathBuf>,
    /// File every checkpoint is also appended to. Default: `<db>.checkpoints`.
    pub checkpoint_file: Option<PathBuf>,
    /// Write a checkpoint after this many new entries…
    pub checkpoint_every: u64,
    /// …or this long after the first entry not yet covered by one.
    pub checkpoint_interval: Duration,
    pub synchronous: Synchronous,
    /// Most entries committed in one transaction.
    pub max_batch: usize,
    /// Where the writer reports its commits and queue (default: nowhere exposed).
    pub metrics: AuditMetrics,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            origin: None,
            signing_key: None,
            key_dir: None,
            redaction_key: None,
            checkpoint_file: None,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(10),
            synchronous: Synchronous::default(),
            max_batch: 4096,
            metrics: AuditMetrics::default(),
        }
    }
}

/// `<path><suffix>` (e.g. `audit.db` → `audit.db.checkpoints`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Default external checkpoint file of a log.
pub fn default_checkpoint_file(db: &Path) -> PathBuf {
    with_suffix(db, ".checkpoints")
}

/// What closing the log wrote last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub tree_size: u64,
    /// The final checkpoint note (`None` for an empty log).
    pub checkpoint: Option<String>,
}

/// A handle to the audit log. Cheap to clone; all clones feed the same writer thread. When the
/// last handle is dropped the writer writes a final checkpoint and stops.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path())
            .finish()
    }
}

struct Inner {
    tx: Sender<Request>,
    /// Which file is written now (changes on rotation); shared with the writer thread.
    identity: Arc<Mutex<Identity>>,
    redaction: RedactionKey,
    /// Why the writer stopped, once it has.
    stopped: Arc<Mutex<Option<StopReason>>>,
    signing_key: Option<SigningKeyInfo>,
    metrics: AuditMetrics,
}

/// Which key signs the checkpoints (shown in the serve banner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyInfo {
    /// The private key file.
    pub path: PathBuf,
    /// The C2SP verifier key text (`<name>+<key id>+<key>`), what auditors check with.
    pub verifier: String,
}

/// The redaction key, by the precedence [`AuditConfig::redaction_key`] documents.
fn open_redaction_key(
    db: &Path,
    config: &AuditConfig,
    state: Option<&StateDir>,
) -> Result<RedactionKey, AuditError> {
    if let Some(path) = &config.redaction_key {
        return RedactionKey::load_or_create(path);
    }
    let beside_signing_key = config
        .signing_key
        .as_deref()
        .map(|key| with_suffix(key, ".redaction"));
    let legacy = with_suffix(db, ".redaction-key");
    match (beside_signing_key, state) {
        (Some(path), _) if path.exists() => RedactionKey::load_or_create(&path),
        (_, Some(state)) => state.redaction_key(&legacy),
        (Some(path), None) => RedactionKey::load_or_create(&path),
        (None, None) => RedactionKey::load_or_create(&legacy),
    }
}

/// An entry queued by [`AuditLog::submit`], not yet known to be committed.
pub struct PendingAppend(Pending);

enum Pending {
    Queued {
        rx: tokio::sync::oneshot::Receiver<Result<Appended, AuditError>>,
        log: AuditLog,
    },
    /// Boxed: the queued case, on every entry's path, stays two pointers and a tag.
    Failed(Box<AuditError>),
}

impl PendingAppend {
    /// An entry that was accepted for recording but will never be committed, for an
    /// [`AuditSink`](super::AuditSink) that learns of its failure only after queueing.
    pub fn failed(error: AuditError) -> PendingAppend {
        PendingAppend(Pending::Failed(Box::new(error)))
    }

    /// Waits until the entry is durably committed; any error means it is not in the log.
    pub async fn committed(self) -> Result<Appended, AuditError> {
        match self.0 {
            Pending::Queued { rx, log } => rx.await.map_err(|_| log.stopped_error())?,
            Pending::Failed(error) => Err(*error),
        }
    }
}

/// The file currently written.
#[derive(Debug, Clone)]
struct Identity {
    path: PathBuf,
    origin: String,
    checkpoint_file: PathBuf,
}

/// What [`AuditLog::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub previous_path: PathBuf,
    pub previous_tree_size: u64,
    /// The previous file's final checkpoint, also recorded in the new file's first entry.
    pub previous_checkpoint: Option<String>,
    pub path: PathBuf,
    pub origin: String,
    pub checkpoint_file: PathBuf,
}

#[derive(Debug, Clone)]
enum StopReason {
    Closed,
    Failed(String),
}

enum Reply<T> {
    Async(tokio::sync::oneshot::Sender<Result<T, AuditError>>),
    Blocking(SyncSender<Result<T, AuditError>>),
}

impl<T> Reply<T> {
    fn send(self, value: Result<T, AuditError>) {
        // A waiter that gave up (dropped its future) is not an error for the others.
        match self {
            Reply::Async(tx) => {
                let _ = tx.send(value);
            }
            Reply::Blocking(tx) => {
                let _ = tx.send(value);
            }
        }
    }
}

enum Request {
    Append(Box<PreparedEntry>, Reply<Appended>),
    Close(Reply<Closed>),
    Rotate(PathBuf, Option<String>, Reply<Rotated>),
}

impl AuditLog {
    /// Opens the log at `path`, creating it (and its schema) on first start. Refuses a file that
    /// is not a Gatehouse audit log, one with a newer schema, or one whose state disagrees with
    /// its checkpoint file.
    pub fn open(path: &Path, config: AuditConfig) -> Result<AuditLog, AuditError> {
        let new_origin = match &config.origin {
            Some(o) => o.clone(),
            None => {
                let mut r = [0u8; 6];
                getrandom::fill(&mut r)
                    .map_err(|e| AuditError::Invalid(format!("no randomness: {e}")))?;
                format!("gatehouse.local/audit/{}", hex::encode(r))
            }
        };
        let (conn, meta, _) = store::open_for_write(path, &new_origin)?;
        if let Some(expected) = &config.origin
            && *expected != meta.origin
        {
            return Err(AuditError::OriginMismatch {
                path: path.to_owned(),
                found: meta.origin,
                expected: expected.clone(),
            });
        }
        configure(&conn, path, config.synchronous)?;

        let state = config.key_dir.as_deref().map(StateDir::open).transpose()?;
        let (signer, signing_key_path) = match (&config.signing_key, &state) {
            (Some(key), _) => (Some(NoteSigner::load(key)?), Some(key.clone())),
            (None, Some(state)) => (
                Some(state.checkpoint_key()?),
                Some(state.path().join(super::CHECKPOINT_KEY)),
            ),
            (None, None) => (None, None),
        };
        let redaction = open_redaction_key(path, &config, state.as_ref())?;
        let signing_key =
            signing_key_path
                .zip(signer.as_ref())
                .map(|(path, signer)| SigningKeyInfo {
                    path,
                    verifier: signer.verifier().to_text(),
                });
        let checkpoint_path = config
            .checkpoint_file
            .clone()
            .unwrap_or_else(|| default_checkpoint_file(path));

        let stopped = Arc::new(Mutex::new(None));
        let metrics = config.metrics.clone();
        let identity = Arc::new(Mutex::new(Identity {
            path: path.to_owned(),
            origin: meta.origin.clone(),
            checkpoint_file: checkpoint_path.clone(),
        }));
        let (wal_nudge, wal_commits) = mpsc::sync_channel(1);
        let mut writer = Writer::resume(
            conn,
            path,
            &meta,
            signer,
            &checkpoint_path,
            config.clone(),
            Shared {
                stopped: stopped.clone(),
                identity: identity.clone(),
                redaction: redaction.clone(),
                wal_nudge,
            },
        )?;
        writer.sync_checkpoint_file()?;

        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError::io(path, "starting the audit writer thread", e))?;
        let id = identity.clone();
        std::thread::Builder::new()
            .name("audit-wal".into())
            .spawn(move || wal_checkpointer(&id, &wal_commits))
            .map_err(|e| AuditError::io(path, "starting the WAL checkpoint thread", e))?;
        Ok(AuditLog {
            inner: Arc::new(Inner {
                tx,
                identity,
                redaction,
                stopped,
                signing_key,
                metrics,
            }),
        })
    }

    /// The key that signs this log's checkpoints, or `None` when they are unsigned.
    pub fn signing_key(&self) -> Option<&SigningKeyInfo> {
        self.inner.signing_key.as_ref()
    }

    fn identity(&self) -> Identity {
        match self.inner.identity.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The file currently written (changes on [`AuditLog::rotate`]).
    pub fn path(&self) -> PathBuf {
        self.identity().path
    }

    /// The checkpoint origin of the file currently written.
    pub fn origin(&self) -> String {
        self.identity().origin
    }

    /// The external checkpoint file of the file currently written.
    pub fn checkpoint_file(&self) -> PathBuf {
        self.identity().checkpoint_file
    }

    /// Records `entry` and returns once its transaction is durably committed. Any error means
    /// the entry is not in the log (the gateway must then deny). Dropping the future after it
    /// was first polled does not withdraw the entry: it may still be committed, unanswered.
    pub async fn append(&self, entry: NewEntry) -> Result<Appended, AuditError> {
        self.submit(entry)?.committed().await
    }

    /// Queues `entry` now, in order with every entry submitted before it, and returns a
    /// handle that resolves once it is durably committed. For records that must be in the log
    /// before the agent is answered but need not hold up the operation they describe (the
    /// decisions made while a tool runs).
    pub fn submit(&self, entry: NewEntry) -> Result<PendingAppend, AuditError> {
        let prepared = PreparedEntry::new(entry, &self.inner.redaction)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Request::Append(Box::new(prepared), Reply::Async(tx)))?;
        Ok(PendingAppend(Pending::Queued {
            rx,
            log: self.clone(),
        }))
    }

    /// [`AuditLog::append`] for callers outside an async context (blocks the thread).
    pub fn append_blocking(&self, entry: NewEntry) -> Result<Appended, AuditError> {
        let prepared = PreparedEntry::new(entry, &self.inner.redaction)?;
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Request::Append(Box::new(prepared), Reply::Blocking(tx)))?;
        rx.recv().map_err(|_| self.stopped_error())?
    }

    /// Flushes pending entries, writes a final checkpoint and stops the writer. Later appends
    /// (from any clone) fail with [`AuditError::Closed`]. Blocking.
    pub fn close(&self) -> Result<Closed, AuditError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Request::Close(Reply::Blocking(tx)))?;
        rx.recv().map_err(|_| self.stopped_error())?
    }

    /// Seals the current file with a final checkpoint and continues in a new file at `new_path`
    /// (which must not hold a log yet). The new file's first entry (phase `lifecycle`) records
    /// the previous file's path, origin, size and final checkpoint; no row is ever deleted.
    /// The new file gets its own origin (default: the old one with a rotation timestamp) and its
    /// own checkpoint file `<new_path>.checkpoints`. Blocking.
    pub fn rotate(
        &self,
        new_path: &Path,
        new_origin: Option<String>,
    ) -> Result<Rotated, AuditError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Request::Rotate(
            new_path.to_owned(),
            new_origin,
            Reply::Blocking(tx),
        ))?;
        rx.recv().map_err(|_| self.stopped_error())?
    }

    fn send(&self, request: Request) -> Result<(), AuditError> {
        let append = matches!(request, Request::Append(..));
        if append {
            self.inner.metrics.queued();
        }
        self.inner.tx.send(request).map_err(|_| {
            if append {
                self.inner.metrics.dequeued();
            }
            self.stopped_error()
        })
    }

    fn stopped_error(&self) -> AuditError {
        let reason = self.inner.stopped.lock().map(|g| g.clone()).unwrap_or(None);
        let path = self.path();
        match reason {
            Some(StopReason::Closed) => AuditError::Closed { path },
            Some(StopReason::Failed(detail)) => AuditError::WriterStopped { path, detail },
            None => AuditError::WriterStopped {
                path,
                detail: "the writer thread ended unexpectedly".into(),
            },
        }
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    path: PathBuf,
    origin: String,
    config: AuditConfig,
    signer: Option<NoteSigner>,
    range: CompactRange,
    last_time: chrono::DateTime<chrono::Utc>,
    checkpoint_path: PathBuf,
    /// Open in append mode and exclusively locked: one writer per log. Shared only with
    /// `file_sync` while it syncs the file.
    checkpoint_out: Arc<File>,
    file_sync: FileSync,
    last_checkpoint_size: u64,
    /// When the first entry not covered by a checkpoint was written.
    uncovered_since: Option<Instant>,
    /// Fills `entry_blocks`; `None` for a schema version 1 log, which indexes callers and tools
    /// row by row instead.
    blocks: Option<BlockRecorder>,
    shared: Shared,
    /// Entries per batch, smoothed over the last few batches (weight 1/8 for the newest): how
    /// loaded the log is, for [`Writer::next_in_batch`].
    recent_batch: usize,
}

/// Smoothed batch size from which the writer counts as under load.
const LOADED_BATCH: usize = 16;
/// How long a batch gathered under load may wait for more entries, from its first entry.
const BATCH_LINGER: Duration = Duration::from_micros(300);

/// What the writer shares with the handles and the WAL checkpoint thread.
struct Shared {
    stopped: Arc<Mutex<Option<StopReason>>>,
    identity: Arc<Mutex<Identity>>,
    redaction: RedactionKey,
    /// Tells `wal_checkpointer` that a commit added to the WAL (a full channel means it is
    /// already told); dropped with the writer, which stops the checkpointer.
    wal_nudge: SyncSender<()>,
}

/// Connection settings of a file the writer owns.
fn configure(conn: &Connection, path: &Path, synchronous: Synchronous) -> Result<(), AuditError> {
    let sync = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    // WAL checkpoints (copying the WAL back into the database) run on their own thread (see
    // `wal_checkpointer`), off the appends' path; the writer's own automatic checkpoint stays
    // only as a backstop (WAL_BACKSTOP_PAGES).
    // temp_store = MEMORY: a multi-row INSERT keeps a statement journal, and with the default
    // it spilled to a new file in /var/tmp past 64 KiB: about 8 files per 1,000 entries under
    // load (strace), and appends that depended on /var/tmp being writable. It is bounded by
    // one statement's pages (ROWS_PER_INSERT rows).
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY; \
         PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES};"
    ))
    .map_err(|e| AuditError::sqlite(path, "configuring the connection", e))
}

/// The writer connection's own automatic WAL checkpoint threshold (pages): a backstop only.
/// While appends keep coming, the background checkpoints never catch up with the last commit,
/// and SQLite restarts the WAL from its start only after one that did; so under steady load the
/// WAL grows to this size, the writer's own checkpoint catches up, and the WAL is then reused
/// in place. That catch-up is on an append's path: at 1,024 pages it came often enough to more
/// than double the NORMAL per-call p99, and 4,096 pages gained nothing measurable
/// (BENCHMARKS.md#wal-checkpoints).
const WAL_BACKSTOP_PAGES: u32 = 32_768;
/// The shortest time between two background WAL checkpoints. Small and frequent copies keep
/// each one's work small, and that work delays the writer's own commits: polling
/// every 250 ms, one caller's slowest append (NORMAL) took up to 46 ms, now up to 10 ms
/// (BENCHMARKS.md#wal-checkpoints).
const WAL_CHECKPOINT_SPACING: Duration = Duration::from_millis(20);

/// Background WAL checkpoints on a separate connection, after commits (at most one per
/// `WAL_CHECKPOINT_SPACING`; none while the log is idle). PASSIVE never blocks the writer; it
/// copies what it can and leaves the rest for the next round. Stops with the writer; follows
/// rotations through the shared identity.
fn wal_checkpointer(identity: &Mutex<Identity>, commits: &Receiver<()>) {
    let mut current: Option<(PathBuf, Connection)> = None;
    loop {
        std::thread::sleep(WAL_CHECKPOINT_SPACING);
        if commits.recv().is_err() {
            return;
        }
        let Ok(path) = identity.lock().map(|id| id.path.clone()) else {
            return;
        };
        if current.as_ref().is_none_or(|(p, _)| *p != path) {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
            current = Connection::open_with_flags(&path, flags)
                .ok()
                .map(|c| (path, c));
        }
        if let Some((_, conn)) = &current {
            // Failures are harmless here (the writer's backstop still bounds the WAL).
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
    }
}

/// Opens the checkpoint file for appending and locks it: one writer per log.
fn open_checkpoint_out(db: &Path, checkpoint_path: &Path) -> Result<File, AuditError> {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(checkpoint_path)
        .map_err(|e| AuditError::Unwritable {
            path: checkpoint_path.to_owned(),
            detail: format!("opening the checkpoint file: {e}"),
        })?;
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => AuditError::AlreadyOpen {
            path: db.to_owned(),
        },
        std::fs::TryLockError::Error(e) => {
            AuditError::io(checkpoint_path, "locking the checkpoint file", e)
        }
    })?;
    Ok(file)
}

/// The origin of a rotated file: the base origin plus the rotation time (an earlier rotation
/// suffix is replaced, not stacked).
fn rotated_origin(origin: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let is_stamp = |s: &str| {
        s.len() == 18
            && s.starts_with('r')
            && s.ends_with('Z')
            && s[1..9].bytes().all(|b| b.is_ascii_digit())
    };
    let base = match origin.rsplit_once('/') {
        Some((base, last)) if is_stamp(last) => base,
        _ => origin,
    };
    format!("{base}/{}", at.format("r%Y%m%dT%H%M%SZ"))
}

/// Rows per multi-row `INSERT` (15 parameters each): one statement step per chunk instead of
/// one per entry; a batch's remainder goes in one row at a time.
const ROWS_PER_INSERT: usize = 32;

/// `INSERT INTO entries (…) VALUES (?, …)` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let one = format!("({})", vec!["?"; ENTRY_COLUMN_COUNT].join(", "));
    format!(
        "INSERT INTO entries ({ENTRY_COLUMNS}) VALUES {}",
        vec![one; rows].join(", ")
    )
}

static INSERT_ROWS: LazyLock<String> = LazyLock::new(|| insert_sql(ROWS_PER_INSERT));
static INSERT_ROW: LazyLock<String> = LazyLock::new(|| insert_sql(1));

/// Binds and inserts `rows` (as many as `stmt` has rows) as the next entries of `range`: assigns
/// each its seq, computes its leaf hash and appends it to the tree.
fn insert_rows(
    stmt: &mut rusqlite::Statement<'_>,
    rows: &[Box<PreparedEntry>],
    time: &str,
    range: &mut CompactRange,
    appended: &mut Vec<Appended>,
) -> rusqlite::Result<()> {
    let mut leaves = Vec::with_capacity(rows.len());
    for (k, p) in rows.iter().enumerate() {
        let seq = range.size() + leaves.len() as u64 + 1;
        let leaf = p.leaf_hash(seq, time);
        let c = &p.columns;
        let at = k * ENTRY_COLUMN_COUNT;
        let seq_column = seq as i64;
        let values: [&dyn rusqlite::ToSql; ENTRY_COLUMN_COUNT] = [
            // The order of ENTRY_COLUMNS.
            &seq_column,
            &time,
            &c.decision_id,
            &c.call_id,
            &c.phase,
            &c.caller,
            &c.tool,
            &c.component_digest,
            &c.policy_revision,
            &c.input,
            &c.verdict,
            &c.reasons,
            &c.obligations,
            &c.metrics,
            &&leaf[..],
        ];
        for (offset, value) in values.into_iter().enumerate() {
            stmt.raw_bind_parameter(at + offset + 1, value)?;
        }
        leaves.push((seq, leaf));
    }
    stmt.raw_execute()?;
    for (seq, leaf) in leaves {
        range.append(leaf);
        appended.push(Appended {
            seq,
            entry_hash: leaf,
        });
    }
    Ok(())
}

impl Writer {
    /// Restores the tree state saved with the last checkpoint, replays the leaf hashes of the
    /// entries committed after it, and checks the result against the entries and the last
    /// checkpoint.
    fn resume(
        conn: Connection,
        path: &Path,
        meta: &LogMeta,
        signer: Option<NoteSigner>,
        checkpoint_path: &Path,
        config: AuditConfig,
        shared: Shared,
    ) -> Result<Self, AuditError> {
        let corrupt = |detail: String| AuditError::Corrupt {
            path: path.to_owned(),
            detail,
        };
        let (state_size, nodes): (i64, Vec<u8>) = conn
            .query_row(
                "SELECT tree_size, compact_range FROM writer_state WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| AuditError::sqlite(path, "reading writer state", e))?
            .ok_or_else(|| corrupt("writer_state row is missing".into()))?;
        let state_size = state_size.max(0) as u64;
        let mut range = CompactRange::from_parts(state_size, &nodes)
            .ok_or_else(|| corrupt("writer_state does not match its tree size".into()))?;
        let (max_seq, last_time): (Option<i64>, Option<String>) = conn
            .query_row(
                "SELECT seq, time FROM entries ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| AuditError::sqlite(path, "reading the last entry", e))?
            .unwrap_or((None, None));
        let max_seq = max_seq.unwrap_or(0).max(0) as u64;
        if max_seq < state_size {
            return Err(corrupt(format!(
                "the last entry is seq {max_seq} but the tree state covers {state_size} entries"
            )));
        }
        let last_time = match last_time {
            Some(t) => super::entry::parse_time(&t)
                .ok_or_else(|| corrupt(format!("the last entry's time {t:?} is malformed")))?,
            None => chrono::DateTime::<chrono::Utc>::MIN_UTC,
        };
        let last_cp: Option<(i64, Vec<u8>)> = conn
            .query_row(
                "SELECT tree_size, root_hash FROM checkpoints ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| AuditError::sqlite(path, "reading the last checkpoint", e))?;
        let last_cp = last_cp.map(|(size, root)| (size.max(0) as u64, root));
        if let Some((size, _)) = last_cp
            && size > max_seq
        {
            return Err(corrupt(format!(
                "the last checkpoint covers {size} entries but the log holds {max_seq}"
            )));
        }
        let check_root = |range: &CompactRange| match &last_cp {
            Some((size, root)) if *size == range.size() && root[..] != range.root()[..] => Err(
                corrupt("the last checkpoint's root does not match the entries' tree".into()),
            ),
            _ => Ok(()),
        };
        check_root(&range)?;
        // The state is saved with checkpoints: replay what was committed after it.
        if max_seq > state_size {
            for leaf in store::stored_leaf_hashes(&conn, path, state_size + 1..=max_seq)? {
                range.append(leaf);
            }
            check_root(&range)?;
        }
        let last_checkpoint_size = last_cp.map_or(0, |(size, _)| size);
        let checkpoint_out = Arc::new(open_checkpoint_out(path, checkpoint_path)?);
        let file_sync = FileSync::start("audit-cp-sync")
            .map_err(|e| AuditError::io(path, "starting the checkpoint file sync thread", e))?;
        let uncovered_since = (range.size() > last_checkpoint_size).then(Instant::now);
        Ok(Self {
            conn,
            path: path.to_owned(),
            origin: meta.origin.clone(),
            config,
            signer,
            range,
            last_time,
            checkpoint_path: checkpoint_path.to_owned(),
            checkpoint_out,
            file_sync,
            last_checkpoint_size,
            uncovered_since,
            blocks: meta.has_entry_blocks().then(BlockRecorder::default),
            shared,
            recent_batch: 0,
        })
    }

    /// Makes the external checkpoint file agree with the log: every checkpoint it holds must be
    /// one of ours (else the log was truncated or replaced), and checkpoints it misses (a crash
    /// between commit and file write, or a new file) are appended.
    fn sync_checkpoint_file(&mut self) -> Result<(), AuditError> {
        let in_file = read_checkpoint_file(&self.checkpoint_path)?;
        let stored = store::load_checkpoints(&self.conn, &self.path, i64::MIN)?;
        let file_error = |detail: String| AuditError::CheckpointFile {
            path: self.checkpoint_path.clone(),
            detail,
        };
        let mut resume_after_id = 0;
        if let Some(last) = in_file.last() {
            if let Some(other) = in_file.iter().find(|c| c.checkpoint.origin != self.origin) {
                return Err(file_error(format!(
                    "holds checkpoints of origin {:?}, this log is {:?}",
                    other.checkpoint.origin, self.origin
                )));
            }
            if last.checkpoint.size > self.range.size() {
                return Err(AuditError::CheckpointAhead {
                    path: self.path.clone(),
                    checkpoint_file: self.checkpoint_path.clone(),
                    file_size: last.checkpoint.size,
                    db_size: self.range.size(),
                });
            }
            resume_after_id = stored
                .iter()
                .find(|(_, _, _, parsed)| parsed.as_ref().is_ok_and(|p| p.note == last.note))
                .map(|(id, ..)| *id)
                .ok_or_else(|| {
                    file_error(format!(
                        "its last checkpoint (size {}) is not in the log: the log was rewritten; run `gatehouse audit verify`",
                        last.checkpoint.size
                    ))
                })?;
        }
        let missing: String = stored
            .iter()
            .filter(|(id, ..)| *id > resume_after_id)
            .filter_map(|(_, _, _, parsed)| parsed.as_ref().ok().map(|p| file_record(&p.note)))
            .collect();
        if !missing.is_empty() {
            self.append_to_checkpoint_file(&missing)?;
        }
        Ok(())
    }

    /// Appends `text` to the checkpoint file; its fsync follows on the sync thread.
    fn append_to_checkpoint_file(&mut self, text: &str) -> Result<(), AuditError> {
        (&*self.checkpoint_out)
            .write_all(text.as_bytes())
            .map_err(|e| {
                AuditError::io(&self.checkpoint_path, "appending to the checkpoint file", e)
            })?;
        self.file_sync
            .request(&self.checkpoint_path, &self.checkpoint_out);
        Ok(())
    }

    /// Waits for the checkpoint file's pending fsyncs; `Err` if one failed.
    fn settle_checkpoint_file(&self) -> Result<(), AuditError> {
        self.file_sync.settle();
        self.checkpoint_file_failure()
    }

    /// A failed fsync of the checkpoint file stops the writer, as a failed write does.
    fn checkpoint_file_failure(&self) -> Result<(), AuditError> {
        match self.file_sync.take_failure() {
            Some(failure) => Err(AuditError::io(
                &failure.path,
                "syncing the checkpoint file",
                failure.error,
            )),
            None => Ok(()),
        }
    }

    fn run(mut self, rx: Receiver<Request>) {
        let idle = Duration::from_secs(3600);
        loop {
            self.config
                .metrics
                .uncovered(self.range.size() - self.last_checkpoint_size);
            let timeout = match self.uncovered_since {
                Some(since) => self
                    .config
                    .checkpoint_interval
                    .saturating_sub(since.elapsed()),
                None => idle,
            };
            let first = match rx.recv_timeout(timeout) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.checkpoint_if_due() {
                        self.stop(StopReason::Failed(e.to_string()));
                        return;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Every handle is gone: seal what was written.
                    let _ = self.finish();
                    self.stop(StopReason::Closed);
                    return;
                }
            };
            let gathering_since = Instant::now();
            let mut appends = Vec::new();
            let mut next = Some(first);
            while let Some(request) = next {
                match request {
                    Request::Append(entry, reply) => {
                        self.config.metrics.dequeued();
                        appends.push((entry, reply));
                    }
                    Request::Close(reply) => {
                        let flushed = self.write_batch(std::mem::take(&mut appends));
                        let result = flushed.and_then(|()| self.finish());
                        self.stop(StopReason::Closed);
                        // Release the database and the checkpoint file lock before answering, so
                        // the caller may reopen the log at once.
                        drop(self);
                        reply.send(result);
                        return;
                    }
                    Request::Rotate(path, origin, reply) => {
                        let flushed = self.write_batch(std::mem::take(&mut appends));
                        if let Err(e) = flushed {
                            self.stop(StopReason::Failed(e.to_string()));
                            reply.send(Err(e));
                            return;
                        }
                        reply.send(self.rotate(&path, origin));
                    }
                }
                next = if appends.len() < self.config.max_batch {
                    self.next_in_batch(&rx, appends.len(), gathering_since)
                } else {
                    None
                };
            }
            self.recent_batch = (self.recent_batch * 7 + appends.len()) / 8;
            if let Err(e) = self.write_batch(appends) {
                self.stop(StopReason::Failed(e.to_string()));
                return;
            }
        }
    }

    /// The next request for the batch being gathered, if one is queued. Under load (recent
    /// batches of `LOADED_BATCH` entries or more), a batch far smaller than recent ones waits up
    /// to `BATCH_LINGER` from its first entry for the callers that were just answered: without
    /// it, most commits of a saturated log held fewer than 16 entries, and each commit rewrites
    /// the same index pages (BENCHMARKS.md#group-commit). A lone caller never waits.
    fn next_in_batch(
        &self,
        rx: &Receiver<Request>,
        gathered: usize,
        gathering_since: Instant,
    ) -> Option<Request> {
        if let Ok(request) = rx.try_recv() {
            return Some(request);
        }
        if self.recent_batch < LOADED_BATCH || gathered >= self.recent_batch / 2 {
            return None;
        }
        let left = BATCH_LINGER.saturating_sub(gathering_since.elapsed());
        if left.is_zero() {
            return None;
        }
        rx.recv_timeout(left).ok()
    }

    fn stop(&self, reason: StopReason) {
        if let Ok(mut g) = self.shared.stopped.lock() {
            g.get_or_insert(reason);
        }
    }

    /// Writes a batch and answers its waiters. `Err` only for failures that leave the writer
    /// unable to continue safely (the batch's waiters have been answered either way).
    fn write_batch(
        &mut self,
        batch: Vec<(Box<PreparedEntry>, Reply<Appended>)>,
    ) -> Result<(), AuditError> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.checkpoint_file_failure() {
            for (_, reply) in batch {
                reply.send(Err(e.for_waiter(&self.path)));
            }
            return Err(e);
        }
        let saved = (self.range.clone(), self.last_time);
        let (entries, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let started = Instant::now();
        match self.commit_batch(&entries) {
            Ok((appended, note)) => {
                self.config
                    .metrics
                    .committed(entries.len(), started.elapsed());
                // Durable in the database: acknowledge, then mirror the checkpoint.
                for (reply, a) in replies.into_iter().zip(appended) {
                    reply.send(Ok(a));
                }
                if let Some(note) = note {
                    self.append_to_checkpoint_file(&file_record(&note))?;
                }
                Ok(())
            }
            Err(e) => {
                (self.range, self.last_time) = saved;
                if let Some(recorder) = &mut self.blocks {
                    recorder.forget();
                }
                for reply in replies {
                    reply.send(Err(e.for_waiter(&self.path)));
                }
                Ok(())
            }
        }
    }

    /// One transaction: the entries, and a checkpoint with the new tree state if one is due.
    fn commit_batch(
        &mut self,
        entries: &[Box<PreparedEntry>],
    ) -> Result<(Vec<Appended>, Option<String>), AuditError> {
        let path = self.path.clone();
        let sql = |context: &'static str| {
            let path = path.clone();
            move |e| AuditError::sqlite(&path, context, e)
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("starting a transaction"))?;
        let mut appended = Vec::with_capacity(entries.len());
        // One timestamp per batch (the entries commit together); never let time run backwards
        // in the log, whatever the wall clock does.
        self.last_time = self.last_time.max(chrono::Utc::now());
        let time = format_time(self.last_time);
        let first_seq = self.range.size() + 1;
        let mut chunks = entries.chunks_exact(ROWS_PER_INSERT);
        for chunk in chunks.by_ref() {
            let mut stmt = tx
                .prepare_cached(&INSERT_ROWS)
                .map_err(sql("preparing insert"))?;
            insert_rows(&mut stmt, chunk, &time, &mut self.range, &mut appended)
                .map_err(sql("inserting entries"))?;
        }
        for one in chunks.remainder().chunks(1) {
            let mut stmt = tx
                .prepare_cached(&INSERT_ROW)
                .map_err(sql("preparing insert"))?;
            insert_rows(&mut stmt, one, &time, &mut self.range, &mut appended)
                .map_err(sql("inserting an entry"))?;
        }
        if let Some(recorder) = &mut self.blocks {
            let mut rows: Vec<BlockKey> = Vec::new();
            for (seq, entry) in (first_seq..).zip(entries) {
                recorder.record(
                    seq,
                    entry.principal.as_deref(),
                    entry.columns.tool.as_deref(),
                    &mut rows,
                );
            }
            blocks::insert(&tx, &rows).map_err(sql("listing callers and tools per block"))?;
        }
        let due = self.range.size() - self.last_checkpoint_size >= self.config.checkpoint_every
            || self
                .uncovered_since
                .is_some_and(|t| t.elapsed() >= self.config.checkpoint_interval);
        let note = if due {
            Some(insert_checkpoint(
                &tx,
                &self.path,
                &self.origin,
                self.signer.as_ref(),
                &self.range,
            )?)
        } else {
            None
        };
        tx.commit().map_err(sql("committing"))?;
        // Full means a checkpoint is already due.
        let _ = self.shared.wal_nudge.try_send(());
        if note.is_some() {
            self.last_checkpoint_size = self.range.size();
            self.uncovered_since = None;
        } else if self.uncovered_since.is_none() {
            self.uncovered_since = Some(Instant::now());
        }
        Ok((appended, note))
    }

    /// A checkpoint in its own transaction, if entries are waiting for one.
    fn checkpoint_if_due(&mut self) -> Result<Option<String>, AuditError> {
        if self.range.size() == self.last_checkpoint_size {
            self.uncovered_since = None;
            return Ok(None);
        }
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| AuditError::sqlite(&self.path, "starting a transaction", e))?;
        let note = insert_checkpoint(
            &tx,
            &self.path,
            &self.origin,
            self.signer.as_ref(),
            &self.range,
        )?;
        tx.commit()
            .map_err(|e| AuditError::sqlite(&self.path, "committing a checkpoint", e))?;
        self.last_checkpoint_size = self.range.size();
        self.uncovered_since = None;
        self.append_to_checkpoint_file(&file_record(&note))?;
        Ok(Some(note))
    }

    /// Final checkpoint and a WAL checkpoint, so the file is self-contained after close.
    fn finish(&mut self) -> Result<Closed, AuditError> {
        self.checkpoint_if_due()?;
        self.settle_checkpoint_file()?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| AuditError::sqlite(&self.path, "checkpointing the WAL", e))?;
        let checkpoint = self
            .conn
            .query_row(
                "SELECT note FROM checkpoints ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| AuditError::sqlite(&self.path, "reading the last checkpoint", e))?;
        Ok(Closed {
            tree_size: self.range.size(),
            checkpoint,
        })
    }

    /// See [`AuditLog::rotate`]. The new file is fully prepared before the current one is sealed,
    /// so a failure to create it leaves the writer on the current file.
    fn rotate(&mut self, new_path: &Path, origin: Option<String>) -> Result<Rotated, AuditError> {
        let origin = origin.unwrap_or_else(|| rotated_origin(&self.origin, chrono::Utc::now()));
        if origin == self.origin {
            return Err(AuditError::Invalid(format!(
                "the rotated log needs an origin different from the current one ({origin:?})"
            )));
        }
        let (conn, meta, created) = store::open_for_write(new_path, &origin)?;
        if !created {
            return Err(AuditError::Invalid(format!(
                "{}: already holds an audit log; rotate into a new file",
                new_path.display()
            )));
        }
        configure(&conn, new_path, self.config.synchronous)?;
        let checkpoint_path = default_checkpoint_file(new_path);
        let checkpoint_out = open_checkpoint_out(new_path, &checkpoint_path)?;

        let sealed = self.finish()?;
        let previous = serde_json::json!({
            "path": self.path.display().to_string(),
            "origin": self.origin,
            "tree_size": sealed.tree_size,
            "root": hex::encode(self.range.root()),
            "checkpoint": sealed.checkpoint,
        });
        let previous_path = std::mem::replace(&mut self.path, new_path.to_owned());
        self.conn = conn;
        self.blocks = meta.has_entry_blocks().then(BlockRecorder::default);
        self.origin = meta.origin;
        self.range = CompactRange::new();
        self.checkpoint_path = checkpoint_path;
        self.checkpoint_out = Arc::new(checkpoint_out);
        self.last_checkpoint_size = 0;
        self.uncovered_since = None;
        if let Ok(mut id) = self.shared.identity.lock() {
            *id = Identity {
                path: self.path.clone(),
                origin: self.origin.clone(),
                checkpoint_file: self.checkpoint_path.clone(),
            };
        }

        // The link to the previous file, attested by a checkpoint at once.
        let link = NewEntry::new(
            "lifecycle",
            "ok",
            serde_json::json!({"principal": "gatehouse", "transport": "internal", "client": "gatehouse", "authenticated": true}),
            serde_json::json!({"event": "rotated", "previous": previous}),
        );
        let prepared = PreparedEntry::new(link, &self.shared.redaction)?;
        let (_, note) = self.commit_batch(&[Box::new(prepared)])?;
        match note {
            Some(note) => self.append_to_checkpoint_file(&file_record(&note))?,
            None => {
                self.checkpoint_if_due()?;
            }
        }
        Ok(Rotated {
            previous_path,
            previous_tree_size: sealed.tree_size,
            previous_checkpoint: sealed.checkpoint,
            path: self.path.clone(),
            origin: self.origin.clone(),
            checkpoint_file: self.checkpoint_path.clone(),
        })
    }
}

/// Signs (if a key is configured) and stores a checkpoint of the current tree, with the tree state
/// a restart resumes from; returns the note.
fn insert_checkpoint(
    tx: &Connection,
    path: &Path,
    origin: &str,
    signer: Option<&NoteSigner>,
    range: &CompactRange,
) -> Result<String, AuditError> {
    let body = Checkpoint {
        origin: origin.to_owned(),
        size: range.size(),
        root: range.root(),
    }
    .body();
    let note = match signer {
        Some(s) => s.sign_note(&body),
        None => body,
    };
    tx.execute(
        "INSERT INTO checkpoints (tree_size, root_hash, time, signed, note) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            range.size() as i64,
            &range.root()[..],
            format_time(chrono::Utc::now()),
            signer.is_some() as i64,
            note
        ],
    )
    .map_err(|e| AuditError::sqlite(path, "writing a checkpoint", e))?;
    // The tree state to resume from, saved with each checkpoint rather than with every commit
    // (one page less per commit); a restart replays the leaf hashes stored after it.
    tx.execute(
        "UPDATE writer_state SET tree_size = ?1, compact_range = ?2 WHERE id = 1",
        params![range.size() as i64, range.node_bytes()],
    )
    .map_err(|e| AuditError::sqlite(path, "updating writer state", e))?;
    Ok(note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_statements_bind_every_column_of_every_row() {
        assert_eq!(ENTRY_COLUMNS.split(',').count(), ENTRY_COLUMN_COUNT);
        assert_eq!(
            INSERT_ROWS.matches('?').count(),
            ENTRY_COLUMN_COUNT * ROWS_PER_INSERT
        );
        assert_eq!(INSERT_ROW.matches('?').count(), ENTRY_COLUMN_COUNT);
    }

    #[test]
    fn commits_are_copied_into_the_database_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let log = AuditLog::open(&path, AuditConfig::default()).unwrap();
        let created = std::fs::metadata(&path).unwrap().len();
        for i in 0..200 {
            let entry = NewEntry::new(
                "call",
                "allow",
                serde_json::json!({"principal": "p", "transport": "cli"}),
                serde_json::json!({"n": i, "padding": "x".repeat(500)}),
            );
            log.append_blocking(entry).unwrap();
        }
        // The entries are in the WAL; only a checkpoint grows the database file itself, and
        // the writer's own backstop is far above 200 entries.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() == created {
            assert!(
                Instant::now() < deadline,
                "no WAL checkpoint within 10 s of 200 commits"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        log.close().unwrap();
    }

    #[test]
    fn the_configured_durability_reaches_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let conn = Connection::open(&path).unwrap();
        // SQLite's numbering: 1 = NORMAL, 2 = FULL.
        for (setting, expected) in [(Synchronous::Normal, 1), (Synchronous::Full, 2)] {
            configure(&conn, &path, setting).unwrap();
            let synchronous: i64 = conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            assert_eq!(synchronous, expected, "{setting:?}");
            // 2 = MEMORY: statement journals never become files in /var/tmp.
            let temp_store: i64 = conn
                .query_row("PRAGMA temp_store", [], |r| r.get(0))
                .unwrap();
            assert_eq!(temp_store, 2, "{setting:?}");
        }
    }
}

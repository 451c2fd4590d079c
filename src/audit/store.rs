//! The SQLite file: creating it from `audit/schema.sql`, recognizing (or refusing) an existing
//! file, and reading rows back. Shared by the writer and the read-only auditor side.

use std::ops::RangeInclusive;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};

use super::AuditError;
use super::blocks::{BlockDerivation, ENTRIES_PER_BLOCK, principal_of};
use super::checkpoint::{SignedCheckpoint, check_origin};
use super::entry::{CanonicalFields, Entry, EntryColumns};
use super::merkle::Hash;

/// The schema applied to a new log.
pub const SCHEMA_SQL: &str = include_str!("../../audit/schema.sql");
/// Schema version this build creates (`PRAGMA user_version`). It reads and appends to version 1
/// logs as well: they index callers and tools row by row instead of listing them per block in
/// `entry_blocks` (see `blocks`).
pub const SCHEMA_VERSION: i64 = 2;
/// The oldest schema version this build reads and appends to.
pub const OLDEST_SCHEMA_VERSION: i64 = 1;
/// `PRAGMA application_id` of a Gatehouse audit log: 'GHAU'.
pub const APPLICATION_ID: i64 = 0x4748_4155;
/// The `format` row of `meta`.
pub const FORMAT_NAME: &str = "gatehouse-audit-log";

/// What the `meta` table says about a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMeta {
    pub origin: String,
    pub created: String,
    pub schema_version: i64,
}

impl LogMeta {
    /// Whether the log lists callers and tools per block (`entry_blocks`, version 2 on).
    pub fn has_entry_blocks(&self) -> bool {
        self.schema_version >= 2
    }
}

/// Opens (or creates) the log for writing. `origin` is used only when the file is new; the flag
/// says whether it was.
pub(crate) fn open_for_write(
    path: &Path,
    new_origin: &str,
) -> Result<(Connection, LogMeta, bool), AuditError> {
    check_parent_writable(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| AuditError::sqlite(path, "setting busy timeout", e))?;
    let (meta, created) = match identify(&conn, path)? {
        Some(meta) => (meta, false),
        None => (create_schema(&conn, path, new_origin)?, true),
    };
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| AuditError::sqlite(path, "enabling WAL", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(AuditError::Write {
            path: path.to_owned(),
            detail: format!("journal mode is {mode}, WAL is required"),
        });
    }
    Ok((conn, meta, created))
}

/// Opens an existing log read-only (the auditor side never writes).
pub(crate) fn open_read_only(path: &Path) -> Result<(Connection, LogMeta), AuditError> {
    if !path.exists() {
        return Err(AuditError::NotFound {
            path: path.to_owned(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| AuditError::sqlite(path, "setting busy timeout", e))?;
    // Auditor scans read the whole file: map it instead of copying every page through read().
    conn.query_row("PRAGMA mmap_size = 2147418112", [], |_| Ok(()))
        .map_err(|e| AuditError::sqlite(path, "configuring the connection", e))?;
    match identify(&conn, path)? {
        Some(meta) => Ok((conn, meta)),
        None => Err(AuditError::NotAnAuditLog {
            path: path.to_owned(),
            detail: "empty database (no audit log schema)".into(),
        }),
    }
}

fn check_parent_writable(path: &Path) -> Result<(), AuditError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let unwritable = |detail: String| AuditError::Unwritable {
        path: path.to_owned(),
        detail,
    };
    let md =
        std::fs::metadata(parent).map_err(|e| unwritable(format!("{}: {e}", parent.display())))?;
    if !md.is_dir() {
        return Err(unwritable(format!(
            "{} is not a directory",
            parent.display()
        )));
    }
    if md.permissions().readonly() {
        return Err(unwritable(format!("{} is read-only", parent.display())));
    }
    // The mode bits do not tell the whole story (ownership, read-only mounts): probe.
    let probe = parent.join(format!(".gatehouse-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(unwritable(format!("{}: {e}", parent.display()))),
    }
}

fn open_error(path: &Path, e: rusqlite::Error) -> AuditError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && matches!(
            f.code,
            rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly
        )
    {
        return AuditError::Unwritable {
            path: path.to_owned(),
            detail: e.to_string(),
        };
    }
    AuditError::sqlite(path, "opening", e)
}

/// `Some(meta)` for one of our logs, `None` for an empty database (to be created), and a
/// specific error for anything else.
fn identify(conn: &Connection, path: &Path) -> Result<Option<LogMeta>, AuditError> {
    // The first read of the header: a text file or garbage fails here with "not a database".
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| AuditError::sqlite(path, "reading the database header", e))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| AuditError::sqlite(path, "reading the schema version", e))?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| AuditError::sqlite(path, "listing tables", e))?;
    if app_id == 0 && version == 0 && tables.is_empty() {
        return Ok(None);
    }
    if app_id != APPLICATION_ID {
        return Err(AuditError::NotAnAuditLog {
            path: path.to_owned(),
            detail: format!(
                "SQLite database of another application (application_id 0x{app_id:08x}, tables: {})",
                if tables.is_empty() {
                    "none".into()
                } else {
                    tables.join(", ")
                }
            ),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(AuditError::NewerSchema {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < OLDEST_SCHEMA_VERSION {
        return Err(AuditError::Corrupt {
            path: path.to_owned(),
            detail: format!("schema version {version} is not a released audit schema"),
        });
    }
    let blocks_table = (version >= 2).then_some("entry_blocks");
    for needed in ["checkpoints", "entries", "meta", "writer_state"]
        .into_iter()
        .chain(blocks_table)
    {
        if !tables.iter().any(|t| t == needed) {
            return Err(AuditError::Corrupt {
                path: path.to_owned(),
                detail: format!("table {needed} is missing"),
            });
        }
    }
    let get = |key: &str| -> Result<String, AuditError> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| AuditError::sqlite(path, "reading meta", e))?
            .ok_or_else(|| AuditError::Corrupt {
                path: path.to_owned(),
                detail: format!("meta row {key:?} is missing"),
            })
    };
    let format = get("format")?;
    if format != FORMAT_NAME {
        return Err(AuditError::NotAnAuditLog {
            path: path.to_owned(),
            detail: format!("meta format is {format:?}, expected {FORMAT_NAME:?}"),
        });
    }
    if version >= 2 {
        let per_block = get("entries_per_block")?;
        if per_block != ENTRIES_PER_BLOCK.to_string() {
            return Err(AuditError::Corrupt {
                path: path.to_owned(),
                detail: format!(
                    "meta entries_per_block is {per_block:?}; schema version {version} fixes it at {ENTRIES_PER_BLOCK}"
                ),
            });
        }
    }
    Ok(Some(LogMeta {
        origin: get("origin")?,
        created: get("created")?,
        schema_version: version,
    }))
}

fn create_schema(conn: &Connection, path: &Path, origin: &str) -> Result<LogMeta, AuditError> {
    check_origin(origin)
        .map_err(|detail| AuditError::Invalid(format!("audit origin: {detail}")))?;
    let created = super::entry::format_time(chrono::Utc::now());
    let tx = conn
        .unchecked_transaction()
        .map_err(|e| AuditError::sqlite(path, "creating the schema", e))?;
    tx.execute_batch(SCHEMA_SQL)
        .map_err(|e| AuditError::sqlite(path, "creating the schema", e))?;
    for (k, v) in [
        ("format", FORMAT_NAME),
        ("schema_version", &SCHEMA_VERSION.to_string()),
        ("origin", origin),
        ("created", &created),
        ("hash", "sha256 rfc6962"),
        ("canonicalization", "rfc8785"),
        ("entries_per_block", &ENTRIES_PER_BLOCK.to_string()),
    ] {
        tx.execute("INSERT INTO meta (key, value) VALUES (?1, ?2)", [k, v])
            .map_err(|e| AuditError::sqlite(path, "writing meta", e))?;
    }
    tx.commit()
        .map_err(|e| AuditError::sqlite(path, "creating the schema", e))?;
    Ok(LogMeta {
        origin: origin.to_owned(),
        created,
        schema_version: SCHEMA_VERSION,
    })
}

/// Column list matching [`raw_row`] (and the writer's insert).
pub const ENTRY_COLUMNS: &str = "seq, time, decision_id, call_id, phase, caller, tool, component_digest, \
     policy_revision, input, verdict, reasons, obligations, metrics, entry_hash";
/// How many names [`ENTRY_COLUMNS`] lists.
pub(crate) const ENTRY_COLUMN_COUNT: usize = 15;

/// One `entries` row exactly as stored (what the fleet shipper copies to PostgreSQL).
#[derive(Debug, Clone)]
pub struct RawRow {
    pub seq: i64,
    pub time: String,
    pub columns: EntryColumns,
    pub entry_hash: Vec<u8>,
}

pub(crate) fn raw_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        seq: r.get(0)?,
        time: r.get(1)?,
        columns: EntryColumns {
            decision_id: r.get(2)?,
            call_id: r.get(3)?,
            phase: r.get(4)?,
            caller: r.get(5)?,
            tool: r.get(6)?,
            component_digest: r.get(7)?,
            policy_revision: r.get(8)?,
            input: r.get(9)?,
            verdict: r.get(10)?,
            reasons: r.get(11)?,
            obligations: r.get(12)?,
            metrics: r.get(13)?,
        },
        entry_hash: r.get(14)?,
    })
}

impl RawRow {
    /// The typed entry; a column that is not valid JSON is reported with its seq.
    pub fn into_entry(self) -> Result<Entry, String> {
        let c = self.columns;
        let json = |name: &str, text: &str| -> Result<serde_json::Value, String> {
            serde_json::from_str(text)
                .map_err(|e| format!("seq {}: column {name} is not JSON: {e}", self.seq))
        };
        let reasons = match json("reasons", &c.reasons)? {
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => Ok(s),
                    other => Ok(other.to_string()),
                })
                .collect::<Result<Vec<_>, String>>()?,
            _ => return Err(format!("seq {}: reasons is not a JSON array", self.seq)),
        };
        Ok(Entry {
            seq: self.seq.max(0) as u64,
            time: self.time,
            decision_id: c.decision_id,
            call_id: c.call_id,
            phase: c.phase,
            caller: json("caller", &c.caller)?,
            tool: c.tool,
            component_digest: c.component_digest,
            policy_revision: c.policy_revision,
            input: json("input", &c.input)?,
            verdict: c.verdict,
            reasons,
            obligations: json("obligations", &c.obligations)?,
            metrics: json("metrics", &c.metrics)?,
            entry_hash: self.entry_hash.as_slice().try_into().unwrap_or([0; 32]),
        })
    }
}

/// One row reduced to what verification needs: its canonical bytes, rebuilt straight from the
/// row's borrowed columns (no per-column allocation), and the stored hash.
pub struct CanonicalRow {
    pub seq: i64,
    pub time: String,
    pub canonical: Vec<u8>,
    pub entry_hash: Vec<u8>,
}

/// Every entry in seq order as [`CanonicalRow`]s. A column of the wrong type (only possible by
/// editing the file) yields bytes that cannot match the stored hash, so it is reported as an
/// altered entry rather than aborting the scan.
pub(crate) fn for_each_canonical(
    conn: &Connection,
    path: &Path,
    mut blocks: Option<&mut BlockDerivation>,
    mut f: impl FnMut(CanonicalRow) -> Result<(), AuditError>,
) -> Result<(), AuditError> {
    let sql = |e| AuditError::sqlite(path, "reading entries", e);
    let mut stmt = conn
        .prepare(&format!("SELECT {ENTRY_COLUMNS} FROM entries ORDER BY seq"))
        .map_err(sql)?;
    let mut rows = stmt.query([]).map_err(sql)?;
    const WRONG_TYPE: &str = "\u{0}";
    while let Some(r) = rows.next().map_err(sql)? {
        let text = |i: usize| -> Result<&str, AuditError> {
            Ok(r.get_ref(i).map_err(sql)?.as_str().unwrap_or(WRONG_TYPE))
        };
        let opt = |i: usize| -> Result<Option<&str>, AuditError> {
            Ok(r.get_ref(i)
                .map_err(sql)?
                .as_str_or_null()
                .unwrap_or(Some(WRONG_TYPE)))
        };
        let seq: i64 = r.get(0).map_err(sql)?;
        let time = text(1)?;
        let fields = CanonicalFields {
            decision_id: text(2)?,
            call_id: opt(3)?,
            phase: text(4)?,
            caller: text(5)?,
            tool: opt(6)?,
            component_digest: opt(7)?,
            policy_revision: opt(8)?,
            input: text(9)?,
            verdict: text(10)?,
            reasons: text(11)?,
            obligations: text(12)?,
            metrics: text(13)?,
        };
        let mut canonical = Vec::with_capacity(1024);
        fields.write_canonical(seq.max(0) as u64, time, &mut canonical);
        let entry_hash = r
            .get_ref(14)
            .map_err(sql)?
            .as_blob()
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        if let Some(blocks) = blocks.as_deref_mut() {
            blocks.entry(
                seq.max(0) as u64,
                principal_of(fields.caller).as_deref(),
                fields.tool,
            );
        }
        f(CanonicalRow {
            seq,
            time: time.to_owned(),
            canonical,
            entry_hash,
        })?;
    }
    Ok(())
}

impl CanonicalRow {
    /// The row of a stored entry's columns (from another store than the file).
    pub fn new(seq: i64, time: String, columns: &EntryColumns, entry_hash: Vec<u8>) -> Self {
        let canonical = columns.canonical(seq.max(0) as u64, &time);
        Self {
            seq,
            time,
            canonical,
            entry_hash,
        }
    }
}

/// All stored checkpoints in insertion order, each with its parsed note (or why it is unreadable):
/// (id, tree_size column, root_hash column, the parsed note).
pub type StoredCheckpoint = (i64, u64, Vec<u8>, Result<SignedCheckpoint, String>);

pub(crate) fn load_checkpoints(
    conn: &Connection,
    path: &Path,
    after_id: i64,
) -> Result<Vec<StoredCheckpoint>, AuditError> {
    let mut stmt = conn
        .prepare("SELECT id, tree_size, root_hash, note FROM checkpoints WHERE id > ?1 ORDER BY id")
        .map_err(|e| AuditError::sqlite(path, "reading checkpoints", e))?;
    let rows = stmt
        .query_map([after_id], |r| {
            let note: String = r.get(3)?;
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?.max(0) as u64,
                r.get::<_, Vec<u8>>(2)?,
                SignedCheckpoint::parse(&note),
            ))
        })
        .map_err(|e| AuditError::sqlite(path, "reading checkpoints", e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| AuditError::sqlite(path, "reading checkpoints", e))
}

/// Leaf hashes of the entries `seqs` as stored (for proofs and the writer's restart; `verify`
/// recomputes them instead). A missing entry is an error.
pub(crate) fn stored_leaf_hashes(
    conn: &Connection,
    path: &Path,
    seqs: RangeInclusive<u64>,
) -> Result<Vec<Hash>, AuditError> {
    let (first, last) = (*seqs.start(), *seqs.end());
    if first > last {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare("SELECT seq, entry_hash FROM entries WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq")
        .map_err(|e| AuditError::sqlite(path, "reading entry hashes", e))?;
    let mut rows = stmt
        .query([first as i64, last as i64])
        .map_err(|e| AuditError::sqlite(path, "reading entry hashes", e))?;
    let mut out = Vec::with_capacity((last - first + 1) as usize);
    while let Some(r) = rows
        .next()
        .map_err(|e| AuditError::sqlite(path, "reading entry hashes", e))?
    {
        let seq: i64 = r
            .get(0)
            .map_err(|e| AuditError::sqlite(path, "reading entry hashes", e))?;
        let h: Vec<u8> = r
            .get(1)
            .map_err(|e| AuditError::sqlite(path, "reading entry hashes", e))?;
        let expected = (first + out.len() as u64) as i64;
        let h: Hash = h.try_into().map_err(|_| AuditError::Corrupt {
            path: path.to_owned(),
            detail: format!("seq {seq}: entry_hash is not 32 bytes"),
        })?;
        if seq != expected {
            return Err(AuditError::Corrupt {
                path: path.to_owned(),
                detail: format!(
                    "seq {expected} is missing (next stored seq is {seq}); run `gatehouse audit verify`"
                ),
            });
        }
        out.push(h);
    }
    if (out.len() as u64) < last - first + 1 {
        return Err(AuditError::Corrupt {
            path: path.to_owned(),
            detail: format!(
                "the log holds {} entries, fewer than {last}",
                first - 1 + out.len() as u64
            ),
        });
    }
    Ok(out)
}

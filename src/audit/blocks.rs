//! Per-block lookups of callers and tools (`entry_blocks`, schema version 2).
//!
//! Schema version 1 indexed `principal` and `tool` row by row. Every commit then rewrote one index
//! page per distinct caller and tool in its batch: at a few dozen entries per commit that was most
//! of the writer's WAL traffic and held group commit below 50,000 entries/s
//! (BENCHMARKS.md#per-block-lookups). Version 2 records each (key, block of [`ENTRIES_PER_BLOCK`]
//! entries) once, when the key first occurs in the block, and a query for a caller or tool reads
//! only the blocks listed for it, each a rowid range of `entries`.
//!
//! The table is derived data: the writer fills it in the transaction of the entries it derives
//! from, and `verify` recomputes it from the entries and reports any difference, so a query
//! cannot silently miss an entry of an intact log.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};

use rusqlite::{Connection, params};

/// Entries per block. Fixed by the format (meta row `entries_per_block`): a block is the unit
/// a caller or tool query scans, 1,024 rows (~0.7 MB) of `entries`.
pub const ENTRIES_PER_BLOCK: u64 = 1024;

/// What a row of `entry_blocks` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum KeyKind {
    /// `caller.principal`, when it is a string.
    Principal,
    /// The `tool` column.
    Tool,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Principal => "principal",
            KeyKind::Tool => "tool",
        }
    }
}

/// One row of `entry_blocks`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct BlockKey {
    pub kind: KeyKind,
    pub key: String,
    pub block: u64,
}

/// The block that holds entry `seq` (seq starts at 1).
pub(crate) fn block_of(seq: u64) -> u64 {
    seq.saturating_sub(1) / ENTRIES_PER_BLOCK
}

/// The first and last seq of `block`.
pub(crate) fn seq_range(block: u64) -> (u64, u64) {
    (
        block * ENTRIES_PER_BLOCK + 1,
        (block + 1) * ENTRIES_PER_BLOCK,
    )
}

/// The principal an entry is filed under: `caller.principal` when the caller is a JSON object
/// whose `principal` is a string (the writer refuses other principals), else none. Borrowed
/// unless the string has escapes: `verify` calls this for every entry.
pub(crate) fn principal_of(caller_json: &str) -> Option<Cow<'_, str>> {
    #[derive(serde::Deserialize)]
    struct Caller<'a> {
        #[serde(borrow)]
        principal: Option<Cow<'a, str>>,
    }
    serde_json::from_str::<Caller<'_>>(caller_json)
        .ok()?
        .principal
}

/// The (kind, key) pairs an entry with this principal and tool is filed under (and that a query
/// for them looks up).
pub(crate) fn keys_of<'a>(
    principal: Option<&'a str>,
    tool: Option<&'a str>,
) -> impl Iterator<Item = (KeyKind, &'a str)> {
    [(KeyKind::Principal, principal), (KeyKind::Tool, tool)]
        .into_iter()
        .filter_map(|(kind, key)| Some((kind, key?)))
}

/// The writer's memory of which keys the newest block already lists, so each (key, block) is
/// inserted once rather than once per commit.
#[derive(Debug, Default)]
pub(crate) struct BlockRecorder {
    block: u64,
    principals: HashSet<String>,
    tools: HashSet<String>,
}

impl BlockRecorder {
    /// Adds to `out` the rows entry `seq` needs that are not known to be in the table.
    pub fn record(
        &mut self,
        seq: u64,
        principal: Option<&str>,
        tool: Option<&str>,
        out: &mut Vec<BlockKey>,
    ) {
        let block = block_of(seq);
        if block != self.block {
            self.forget();
            self.block = block;
        }
        for (kind, key) in keys_of(principal, tool) {
            let seen = match kind {
                KeyKind::Principal => &mut self.principals,
                KeyKind::Tool => &mut self.tools,
            };
            if !seen.contains(key) {
                seen.insert(key.to_owned());
                out.push(BlockKey {
                    kind,
                    key: key.to_owned(),
                    block,
                });
            }
        }
    }

    /// Forgets what it knows: after a rolled-back transaction its rows may be missing. Rows
    /// inserted again are ignored by the table's primary key.
    pub fn forget(&mut self) {
        self.principals.clear();
        self.tools.clear();
    }
}

/// Inserts `rows` (within the caller's transaction).
pub(crate) fn insert(conn: &Connection, rows: &[BlockKey]) -> rusqlite::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO entry_blocks (kind, key, block) VALUES (?1, ?2, ?3)",
    )?;
    for row in rows {
        stmt.execute(params![row.kind.as_str(), row.key, row.block as i64])?;
    }
    Ok(())
}

/// The blocks within `first..=last` that list every given key, in ascending order.
pub(crate) fn candidate_blocks(
    conn: &Connection,
    keys: &[(KeyKind, &str)],
    first: u64,
    last: u64,
) -> rusqlite::Result<Vec<u64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT block FROM entry_blocks WHERE kind = ?1 AND key = ?2 AND block BETWEEN ?3 AND ?4 \
         ORDER BY block",
    )?;
    let mut result: Option<Vec<u64>> = None;
    for (kind, key) in keys {
        let blocks: Vec<u64> = stmt
            .query_map(
                params![
                    kind.as_str(),
                    key,
                    first as i64,
                    last.min(i64::MAX as u64) as i64
                ],
                |r| r.get::<_, i64>(0),
            )?
            .map(|b| b.map(|b| b.max(0) as u64))
            .collect::<rusqlite::Result<_>>()?;
        result = Some(match result {
            None => blocks,
            Some(previous) => {
                let keep: BTreeSet<u64> = blocks.into_iter().collect();
                previous.into_iter().filter(|b| keep.contains(b)).collect()
            }
        });
    }
    Ok(result.unwrap_or_default())
}

/// The rows `verify` expects, derived from the entries as they are read.
#[derive(Debug, Default)]
pub(crate) struct BlockDerivation {
    expected: BTreeSet<BlockKey>,
    recorder: BlockRecorder,
    scratch: Vec<BlockKey>,
}

impl BlockDerivation {
    pub fn entry(&mut self, seq: u64, principal: Option<&str>, tool: Option<&str>) {
        self.recorder
            .record(seq, principal, tool, &mut self.scratch);
        self.expected.extend(self.scratch.drain(..));
    }

    /// Compares the derived rows with the table: the rows it lacks and the rows it should not
    /// have, each as `(kind, key, block)` in key order.
    pub fn compare(self, conn: &Connection) -> rusqlite::Result<(Vec<ListedKey>, Vec<ListedKey>)> {
        let expected: BTreeSet<ListedKey> = self
            .expected
            .into_iter()
            .map(|k| (k.kind.as_str().to_owned(), k.key, k.block))
            .collect();
        // Read as plain values: a kind outside the table's CHECK (only by editing the file
        // around it) is then reported like any other row that should not be there.
        let stored: BTreeSet<ListedKey> = conn
            .prepare("SELECT kind, key, block FROM entry_blocks")?
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok((
            expected.difference(&stored).cloned().collect(),
            stored.difference(&expected).cloned().collect(),
        ))
    }
}

/// A row of `entry_blocks` as stored: kind, key, block.
pub(crate) type ListedKey = (String, String, u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_partition_the_seqs() {
        assert_eq!(block_of(1), 0);
        assert_eq!(block_of(ENTRIES_PER_BLOCK), 0);
        assert_eq!(block_of(ENTRIES_PER_BLOCK + 1), 1);
        assert_eq!(seq_range(0), (1, ENTRIES_PER_BLOCK));
        assert_eq!(
            seq_range(2),
            (2 * ENTRIES_PER_BLOCK + 1, 3 * ENTRIES_PER_BLOCK)
        );
        for seq in [1, 2, 1023, 1024, 1025, 5000] {
            let (first, last) = seq_range(block_of(seq));
            assert!(first <= seq && seq <= last, "seq {seq}");
        }
    }

    #[test]
    fn the_recorder_emits_each_key_once_per_block() {
        let mut recorder = BlockRecorder::default();
        let mut out = Vec::new();
        recorder.record(1, Some("alice"), Some("fetch"), &mut out);
        recorder.record(2, Some("alice"), Some("echo"), &mut out);
        recorder.record(3, Some("bob"), None, &mut out);
        recorder.record(ENTRIES_PER_BLOCK, Some("alice"), Some("fetch"), &mut out);
        recorder.record(ENTRIES_PER_BLOCK + 1, Some("alice"), None, &mut out);
        let rows: Vec<(&str, &str, u64)> = out
            .iter()
            .map(|k| (k.kind.as_str(), k.key.as_str(), k.block))
            .collect();
        assert_eq!(
            rows,
            [
                ("principal", "alice", 0),
                ("tool", "fetch", 0),
                ("tool", "echo", 0),
                ("principal", "bob", 0),
                ("principal", "alice", 1),
            ]
        );
        // After a rollback everything is emitted again.
        recorder.forget();
        out.clear();
        recorder.record(ENTRIES_PER_BLOCK + 2, Some("alice"), None, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn only_string_principals_are_filed() {
        assert_eq!(
            principal_of(r#"{"principal":"alice","transport":"stdio"}"#).as_deref(),
            Some("alice")
        );
        assert_eq!(
            principal_of(r#"{"principal":"a\"b"}"#).as_deref(),
            Some("a\"b")
        );
        assert_eq!(principal_of(r#"{"principal":7}"#), None);
        assert_eq!(principal_of(r#"{"transport":"stdio"}"#), None);
        assert_eq!(principal_of("not json"), None);
    }
}

//! The auditor side: a read-only view of a log for queries, the story of one call, statistics,
//! export and inclusion proofs. Never writes (the file is opened read-only).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, ToSql};
use serde::Serialize;

use super::AuditError;
use super::blocks::{self, KeyKind};
use super::checkpoint::SignedCheckpoint;
use super::entry::Entry;
use super::merkle::{self, Hash};
use super::store::{self, ENTRY_COLUMNS, LogMeta, RawRow, StoredCheckpoint, raw_row};

/// A read-only handle on an audit log file.
pub struct AuditReader {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
    meta: LogMeta,
}

/// Which entries a query returns. Every field narrows the result; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    /// Inclusive lower bound, in our time format (see [`super::entry::format_time`]).
    pub since: Option<String>,
    /// Exclusive upper bound.
    pub until: Option<String>,
    /// Caller principal.
    pub principal: Option<String>,
    pub tool: Option<String>,
    pub phase: Option<String>,
    /// Any of these phases (empty: any phase); with `phase` as well, both must hold.
    pub phases: Vec<String>,
    pub verdict: Option<String>,
    pub call_id: Option<String>,
    /// The session a decision was made in (`input.session.id`); read from each row's input,
    /// so narrow by time or caller too on a large log.
    pub session: Option<String>,
    /// Case-insensitive substring of any reason.
    pub text: Option<String>,
    /// Only entries with a larger seq (for following a log).
    pub after_seq: Option<u64>,
    pub limit: Option<u64>,
    /// Newest first (then `limit` keeps the newest).
    pub newest_first: bool,
}

/// A count per key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    pub key: String,
    pub count: u64,
}

/// Overview of a log (or of its entries since a time).
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub entries: u64,
    pub calls: u64,
    pub calls_denied: u64,
    pub by_phase_verdict: Vec<Count>,
    pub denials_by_reason: Vec<Count>,
    pub top_tools: Vec<Count>,
    pub top_callers: Vec<Count>,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
}

/// An inclusion proof of one entry under one checkpoint, for independent checking.
#[derive(Debug, Clone, Serialize)]
pub struct InclusionProof {
    pub origin: String,
    pub seq: u64,
    /// 0-based leaf index (`seq - 1`).
    pub leaf_index: u64,
    pub tree_size: u64,
    #[serde(serialize_with = "hex_hash")]
    pub leaf_hash: Hash,
    #[serde(serialize_with = "hex_hash")]
    pub root_hash: Hash,
    #[serde(serialize_with = "hex_hashes")]
    pub proof: Vec<Hash>,
    /// The checkpoint note the proof leads to.
    pub checkpoint: String,
    /// The entry's canonical bytes (RFC 8785 text); its leaf hash is SHA-256(0x00 ‖ these).
    pub canonical_entry: String,
}

/// A consistency proof: the tree of `old_size` entries is a prefix of the checkpoint's tree.
#[derive(Debug, Clone, Serialize)]
pub struct ConsistencyProof {
    pub origin: String,
    pub old_size: u64,
    #[serde(serialize_with = "hex_hash")]
    pub old_root: Hash,
    pub new_size: u64,
    #[serde(serialize_with = "hex_hash")]
    pub new_root: Hash,
    #[serde(serialize_with = "hex_hashes")]
    pub proof: Vec<Hash>,
    /// The checkpoint note of the newer tree.
    pub checkpoint: String,
}

fn hex_hash<S: serde::Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(h))
}

fn hex_hashes<S: serde::Serializer>(hs: &[Hash], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(hs.iter().map(hex::encode))
}

impl AuditReader {
    /// Opens an existing log read-only.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let (conn, meta) = store::open_read_only(path)?;
        Ok(Self {
            conn,
            path: path.to_owned(),
            meta,
        })
    }

    pub fn meta(&self) -> &LogMeta {
        &self.meta
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, context: &'static str) -> impl Fn(rusqlite::Error) -> AuditError + '_ {
        move |e| AuditError::sqlite(&self.path, context, e)
    }

    /// Entries matching `filter`, in seq order (or newest first).
    pub fn query(&self, filter: &EntryFilter) -> Result<Vec<Entry>, AuditError> {
        let mut rows = Vec::new();
        self.for_each_raw(filter, |raw| {
            rows.push(raw);
            Ok(())
        })?;
        rows.into_iter()
            .map(|r| {
                r.into_entry().map_err(|detail| AuditError::Corrupt {
                    path: self.path.clone(),
                    detail,
                })
            })
            .collect()
    }

    /// Streams matching entries without holding them all in memory.
    pub fn for_each(
        &self,
        filter: &EntryFilter,
        mut f: impl FnMut(Entry) -> Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        self.for_each_raw(filter, |raw| {
            let entry = raw.into_entry().map_err(|detail| AuditError::Corrupt {
                path: self.path.clone(),
                detail,
            })?;
            f(entry)
        })
    }

    pub(crate) fn for_each_raw(
        &self,
        filter: &EntryFilter,
        mut f: impl FnMut(RawRow) -> Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        let Some((first, last)) = self.seq_bounds(filter)? else {
            return Ok(());
        };
        let mut clauses: Vec<&str> = Vec::new();
        let mut args: Vec<Box<dyn ToSql>> = Vec::new();
        let mut add = |clause: &'static str, v: Box<dyn ToSql>| {
            clauses.push(clause);
            args.push(v);
        };
        if let Some(v) = &filter.since {
            add("time >= ?", Box::new(v.clone()));
        }
        if let Some(v) = &filter.until {
            add("time < ?", Box::new(v.clone()));
        }
        if let Some(v) = &filter.tool {
            add("tool = ?", Box::new(v.clone()));
        }
        if let Some(v) = &filter.phase {
            add("phase = ?", Box::new(v.clone()));
        }
        if let Some(v) = &filter.verdict {
            add("verdict = ?", Box::new(v.clone()));
        }
        if let Some(v) = &filter.call_id {
            add("call_id = ?", Box::new(v.clone()));
        }
        // After the plain columns: `principal` is computed from the caller's JSON for each row
        // that reaches it.
        if let Some(v) = &filter.principal {
            add("principal = ?", Box::new(v.clone()));
        }
        if let Some(v) = &filter.text {
            add("instr(lower(reasons), lower(?)) > 0", Box::new(v.clone()));
        }
        if let Some(v) = &filter.session {
            add(
                "json_extract(input, '$.session.id') = ?",
                Box::new(v.clone()),
            );
        }
        let any_phase;
        if !filter.phases.is_empty() {
            // `+phase`: a list of phases usually covers most of the log, which the rowid scan
            // reads in seq order; through the phase index SQLite would sort every row first.
            any_phase = format!("+phase IN ({})", vec!["?"; filter.phases.len()].join(", "));
            clauses.push(&any_phase);
            for phase in &filter.phases {
                args.push(Box::new(phase.clone()));
            }
        }
        let keys: Vec<(KeyKind, &str)> =
            blocks::keys_of(filter.principal.as_deref(), filter.tool.as_deref()).collect();
        // A caller or tool is looked up per block (schema version 2; see `blocks`), unless a
        // call id narrows the query further through its own index.
        let by_block = !keys.is_empty() && filter.call_id.is_none() && self.meta.has_entry_blocks();
        // The seq bounds (of the whole query, or of one block) and the rows still wanted are the
        // last parameters. Every index ends in seq, so any of them can use the bounds; a side
        // with no bound is left out, or SQLite would take the whole log's range for a narrow
        // one and scan rows instead of using an index.
        let bounded = (by_block || first > 1, by_block || last < i64::MAX as u64);
        if bounded.0 {
            clauses.push("seq >= ?");
        }
        if bounded.1 {
            clauses.push("seq <= ?");
        }
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM entries{}{} ORDER BY seq{} LIMIT ?",
            if clauses.is_empty() { "" } else { " WHERE " },
            clauses.join(" AND "),
            if filter.newest_first { " DESC" } else { "" }
        );
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(self.sql("preparing query"))?;
        let mut remaining = filter.limit.map_or(-1, |l| l.min(i64::MAX as u64) as i64);
        let mut run = |lo: u64, hi: u64, remaining: &mut i64| -> Result<(), AuditError> {
            let (lo, hi) = (lo as i64, hi.min(i64::MAX as u64) as i64);
            let mut params: Vec<&dyn ToSql> = args.iter().map(|b| b.as_ref()).collect();
            if bounded.0 {
                params.push(&lo);
            }
            if bounded.1 {
                params.push(&hi);
            }
            params.push(&*remaining);
            let mut rows = stmt
                .query(params.as_slice())
                .map_err(self.sql("querying entries"))?;
            while let Some(row) = rows.next().map_err(self.sql("reading entries"))? {
                f(raw_row(row).map_err(self.sql("reading entries"))?)?;
                if *remaining > 0 {
                    *remaining -= 1;
                }
            }
            Ok(())
        };
        if !by_block {
            return run(first, last, &mut remaining);
        }
        let mut candidates = blocks::candidate_blocks(
            &self.conn,
            &keys,
            blocks::block_of(first),
            blocks::block_of(last),
        )
        .map_err(self.sql("looking up blocks"))?;
        if filter.newest_first {
            candidates.reverse();
        }
        for block in candidates {
            if remaining == 0 {
                break;
            }
            let (lo, hi) = blocks::seq_range(block);
            run(lo.max(first), hi.min(last), &mut remaining)?;
        }
        Ok(())
    }

    /// The seq range a filter's time bounds and `after_seq` allow, `None` if empty. Time grows
    /// with seq in an intact log (`verify` checks it), so a time bound is a seq bound, found
    /// through the time index; the time conditions stay in the query as well.
    fn seq_bounds(&self, filter: &EntryFilter) -> Result<Option<(u64, u64)>, AuditError> {
        let (mut first, mut last) = (1u64, i64::MAX as u64);
        let seq_at = |sql: &str, time: &str| -> Result<Option<u64>, AuditError> {
            let seq: Option<i64> = self
                .conn
                .query_row(sql, [time], |r| r.get(0))
                .optional()
                .map_err(self.sql("finding a time in the log"))?;
            Ok(seq.map(|s| s.max(0) as u64))
        };
        // No entry inside a time bound: nothing can match.
        if let Some(since) = &filter.since {
            let sql = "SELECT seq FROM entries WHERE time >= ?1 ORDER BY time, seq LIMIT 1";
            let Some(seq) = seq_at(sql, since)? else {
                return Ok(None);
            };
            first = first.max(seq);
        }
        if let Some(until) = &filter.until {
            let sql =
                "SELECT seq FROM entries WHERE time < ?1 ORDER BY time DESC, seq DESC LIMIT 1";
            let Some(seq) = seq_at(sql, until)? else {
                return Ok(None);
            };
            last = last.min(seq);
        }
        if let Some(after) = filter.after_seq {
            first = first.max(after.saturating_add(1));
        }
        Ok((first <= last).then_some((first, last)))
    }

    /// Every entry of one call, in order: its decisions, egress checks and outcome.
    pub fn call_story(&self, call_id: &str) -> Result<Vec<Entry>, AuditError> {
        self.query(&EntryFilter {
            call_id: Some(call_id.to_owned()),
            ..Default::default()
        })
    }

    /// The highest seq in the log (0 if empty).
    pub fn last_seq(&self) -> Result<u64, AuditError> {
        let seq: Option<i64> = self
            .conn
            .query_row("SELECT max(seq) FROM entries", [], |r| r.get(0))
            .map_err(self.sql("reading the last seq"))?;
        Ok(seq.unwrap_or(0).max(0) as u64)
    }

    /// Totals, denials by reason, and the most frequent tools and callers.
    pub fn stats(&self, since: Option<&str>) -> Result<Stats, AuditError> {
        let since = since.unwrap_or("");
        let counts = |sql: &str| -> Result<Vec<Count>, AuditError> {
            let mut stmt = self
                .conn
                .prepare(sql)
                .map_err(self.sql("computing statistics"))?;
            let rows = stmt
                .query_map([since], |r| {
                    Ok(Count {
                        key: r
                            .get::<_, Option<String>>(0)?
                            .unwrap_or_else(|| "(none)".into()),
                        count: r.get::<_, i64>(1)?.max(0) as u64,
                    })
                })
                .map_err(self.sql("computing statistics"))?;
            rows.collect::<Result<_, _>>()
                .map_err(self.sql("computing statistics"))
        };
        let one = |sql: &str| -> Result<u64, AuditError> {
            self.conn
                .query_row(sql, [since], |r| r.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
                .map_err(self.sql("computing statistics"))
        };
        let (first_time, last_time) = self
            .conn
            .query_row(
                "SELECT min(time), max(time) FROM entries WHERE time >= ?1",
                [since],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.sql("computing statistics"))?;
        Ok(Stats {
            entries: one("SELECT count(*) FROM entries WHERE time >= ?1")?,
            calls: one("SELECT count(*) FROM entries WHERE phase = 'call' AND time >= ?1")?,
            calls_denied: one(
                "SELECT count(*) FROM entries WHERE phase = 'call' AND verdict = 'deny' AND time >= ?1",
            )?,
            by_phase_verdict: counts(
                "SELECT phase || ' ' || verdict, count(*) FROM entries WHERE time >= ?1 \
                 GROUP BY phase, verdict ORDER BY count(*) DESC, 1",
            )?,
            // Each denial once: a `deny` decision, or a call that ended `denied` without one
            // (the gateway's own refusals: unusable limits, an audit failure). The `denied`
            // outcome of a call a policy denied repeats the decision's reasons, joined.
            denials_by_reason: counts(
                "SELECT r.value, count(*) FROM entries AS e, json_each(e.reasons) AS r \
                 WHERE e.time >= ?1 AND (e.verdict = 'deny' OR (e.verdict = 'denied' \
                   AND NOT EXISTS (SELECT 1 FROM entries AS d \
                                   WHERE d.call_id = e.call_id AND d.verdict = 'deny'))) \
                 GROUP BY r.value ORDER BY count(*) DESC, 1 LIMIT 20",
            )?,
            top_tools: counts(
                "SELECT tool, count(*) FROM entries WHERE phase = 'call' AND time >= ?1 \
                 GROUP BY tool ORDER BY count(*) DESC, 1 LIMIT 10",
            )?,
            top_callers: counts(
                "SELECT principal, count(*) FROM entries WHERE phase = 'call' AND time >= ?1 \
                 GROUP BY principal ORDER BY count(*) DESC, 1 LIMIT 10",
            )?,
            first_time,
            last_time,
        })
    }

    /// Stored checkpoints, in the order they were written.
    pub fn checkpoints(&self) -> Result<Vec<SignedCheckpoint>, AuditError> {
        self.stored_checkpoints()?
            .into_iter()
            .map(|(id, _, _, parsed)| {
                parsed.map_err(|detail| AuditError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("checkpoint #{id}: {detail}"),
                })
            })
            .collect()
    }

    /// Up to `limit` entries after `after_seq`, in seq order, exactly as stored: what a copy
    /// of the log elsewhere (the fleet's store) is made of.
    pub fn raw_after(&self, after_seq: u64, limit: u64) -> Result<Vec<RawRow>, AuditError> {
        let mut rows = Vec::new();
        let filter = EntryFilter {
            after_seq: Some(after_seq),
            limit: Some(limit),
            ..Default::default()
        };
        self.for_each_raw(&filter, |row| {
            rows.push(row);
            Ok(())
        })?;
        Ok(rows)
    }

    /// Stored checkpoints with their ids and columns, as [`crate::audit::verify()`] reads them.
    pub fn stored_checkpoints(&self) -> Result<Vec<StoredCheckpoint>, AuditError> {
        self.checkpoints_after(i64::MIN)
    }

    /// The stored checkpoints written after the one with id `after_id`.
    pub fn checkpoints_after(&self, after_id: i64) -> Result<Vec<StoredCheckpoint>, AuditError> {
        store::load_checkpoints(&self.conn, &self.path, after_id)
    }

    /// Proves entry `seq` is in the tree of `checkpoint` (default: the latest stored checkpoint).
    /// The proof is computed from the stored leaf hashes and checked before it is returned.
    pub fn inclusion_proof(
        &self,
        seq: u64,
        checkpoint: Option<&SignedCheckpoint>,
    ) -> Result<InclusionProof, AuditError> {
        let (cp, leaves) = self.attested_leaves(checkpoint)?;
        let size = cp.checkpoint.size;
        let root = cp.checkpoint.root;
        if seq == 0 || seq > size {
            return Err(AuditError::Invalid(format!(
                "seq {seq} is not covered by the checkpoint (tree size {size})"
            )));
        }
        let proof = merkle::inclusion_proof(&leaves, seq - 1)
            .map_err(|e| AuditError::Invalid(e.to_string()))?;
        let raw = self
            .query_raw_one(seq)?
            .ok_or_else(|| AuditError::Invalid(format!("seq {seq} is not in the log")))?;
        let mut canonical = Vec::new();
        raw.columns
            .fields()
            .write_canonical(seq, &raw.time, &mut canonical);
        let leaf_hash = merkle::hash_leaf(&canonical);
        if leaf_hash != leaves[seq as usize - 1] {
            return Err(AuditError::Corrupt {
                path: self.path.clone(),
                detail: format!("seq {seq}: entry content does not match its stored hash"),
            });
        }
        merkle::verify_inclusion(seq - 1, size, &leaf_hash, &proof, &root)
            .map_err(|e| AuditError::Invalid(e.to_string()))?;
        Ok(InclusionProof {
            origin: cp.checkpoint.origin.clone(),
            seq,
            leaf_index: seq - 1,
            tree_size: size,
            leaf_hash,
            root_hash: root,
            proof,
            checkpoint: cp.note.clone(),
            canonical_entry: String::from_utf8_lossy(&canonical).into_owned(),
        })
    }

    /// The latest stored checkpoint, or `checkpoint` if given; and the stored leaves it covers,
    /// checked against its root.
    fn attested_leaves(
        &self,
        checkpoint: Option<&SignedCheckpoint>,
    ) -> Result<(SignedCheckpoint, Vec<Hash>), AuditError> {
        let cp = match checkpoint {
            Some(cp) => cp.clone(),
            None => self
                .checkpoints()?
                .into_iter()
                .max_by_key(|c| c.checkpoint.size)
                .ok_or_else(|| {
                    AuditError::Invalid(format!(
                        "{}: the log has no checkpoint yet",
                        self.path.display()
                    ))
                })?,
        };
        let size = cp.checkpoint.size;
        let leaves = store::stored_leaf_hashes(&self.conn, &self.path, 1..=size)?;
        if merkle::root(&leaves) != cp.checkpoint.root {
            return Err(AuditError::Corrupt {
                path: self.path.clone(),
                detail: format!(
                    "the entries' tree of size {size} does not match the checkpoint's root; run `gatehouse audit verify`"
                ),
            });
        }
        Ok((cp, leaves))
    }

    /// Proves that the log's first `old_size` entries are a prefix of the tree of `checkpoint`
    /// (default: the latest stored one): an auditor holding an older checkpoint of that size
    /// compares `old_root` with it and checks the proof (RFC 9162 §2.1.4.2).
    pub fn consistency_proof(
        &self,
        old_size: u64,
        checkpoint: Option<&SignedCheckpoint>,
    ) -> Result<ConsistencyProof, AuditError> {
        let (cp, leaves) = self.attested_leaves(checkpoint)?;
        let new_size = cp.checkpoint.size;
        let proof = merkle::consistency_proof(&leaves, old_size)
            .map_err(|e| AuditError::Invalid(e.to_string()))?;
        let old_root = merkle::root(&leaves[..old_size as usize]);
        merkle::verify_consistency(old_size, new_size, &proof, &old_root, &cp.checkpoint.root)
            .map_err(|e| AuditError::Invalid(e.to_string()))?;
        Ok(ConsistencyProof {
            origin: cp.checkpoint.origin.clone(),
            old_size,
            old_root,
            new_size,
            new_root: cp.checkpoint.root,
            proof,
            checkpoint: cp.note,
        })
    }

    fn query_raw_one(&self, seq: u64) -> Result<Option<RawRow>, AuditError> {
        let mut out = None;
        self.for_each_raw(
            &EntryFilter {
                after_seq: Some(seq - 1),
                limit: Some(1),
                ..Default::default()
            },
            |r| {
                if r.seq == seq as i64 {
                    out = Some(r);
                }
                Ok(())
            },
        )?;
        Ok(out)
    }
}

//! `audit verify`: recomputes the whole log from its rows and checks it against every checkpoint
//! it holds and every checkpoint the operator kept elsewhere. The checks are specified in
//! `audit/VERIFY.md`; each finding names the first sequence number it puts in doubt.

use std::path::PathBuf;

use serde::Serialize;

use super::AuditError;
use super::blocks::{BlockDerivation, seq_range};
use super::checkpoint::SignedCheckpoint;
use super::entry::parse_time;
use super::merkle::{CompactRange, Hash, hash_leaf};
use super::note::NoteVerifier;
use super::reader::AuditReader;
use super::store::{CanonicalRow, StoredCheckpoint, for_each_canonical};

/// What to check the log against, besides itself.
#[derive(Debug, Default)]
pub struct VerifyOptions {
    /// The log's checkpoint key: every checkpoint must carry a valid signature by it.
    pub pubkey: Option<NoteVerifier>,
    /// Checkpoints kept outside the log (the checkpoint file shipped off the host).
    pub external: Option<(PathBuf, Vec<SignedCheckpoint>)>,
}

/// One thing that is wrong, and the first entry it puts in doubt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub seq: Option<u64>,
    pub what: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub path: PathBuf,
    pub origin: String,
    pub entries: u64,
    pub root: String,
    pub checkpoints: usize,
    pub signed_checkpoints: usize,
    pub signatures_checked: bool,
    pub external_checkpoints: usize,
    /// Size of the largest stored checkpoint.
    pub last_checkpoint_size: u64,
    /// Entries after the last checkpoint (first, last): intact as far as the rows go, but not yet
    /// attested by any checkpoint.
    pub uncovered: Option<(u64, u64)>,
    pub warnings: Vec<String>,
    pub problems: Vec<Problem>,
    /// Problems beyond the first `MAX_PROBLEMS` are only counted.
    pub more_problems: u64,
}

/// How many problems a report lists.
pub const MAX_PROBLEMS: usize = 100;

impl VerifyReport {
    /// No problem found (warnings may remain).
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }

    /// The smallest sequence number any problem puts in doubt.
    pub fn first_bad_seq(&self) -> Option<u64> {
        self.problems.iter().filter_map(|p| p.seq).min()
    }

    /// The problem naming [`VerifyReport::first_bad_seq`].
    pub fn first_problem(&self) -> Option<&Problem> {
        let first = self.first_bad_seq();
        self.problems
            .iter()
            .find(|p| p.seq == first)
            .or(self.problems.first())
    }
}

/// Which entries a failed checkpoint puts in doubt.
enum Doubt {
    /// Exactly this seq (the first one missing from a truncated tail).
    Exact(u64),
    /// Its root does not match: the first bad row in its range if one was found, else the range.
    Root,
    /// It is not trustworthy itself (signature, origin, malformed): its whole range.
    Attestation,
}

/// A checkpoint to compare with the recomputed tree.
struct Target {
    label: String,
    size: u64,
    root: Hash,
    /// Why this checkpoint cannot vouch for its entries.
    failure: Option<(Doubt, String)>,
}

/// Verifies the log behind `reader`.
pub fn verify(reader: &AuditReader, options: &VerifyOptions) -> Result<VerifyReport, AuditError> {
    let verifier = Verifier::new(
        reader.meta().origin.clone(),
        reader.stored_checkpoints()?,
        options,
    );
    // Recompute every leaf and the tree, comparing roots as each checkpoint's size is reached.
    // The rows are read on this thread and replayed on another (reading and hashing overlap).
    // The `entry_blocks` rows the entries call for (schema version 2 on), derived as they are read.
    let mut blocks = reader
        .meta()
        .has_entry_blocks()
        .then(BlockDerivation::default);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<CanonicalRow>>(8);
    let (verifier, read_result) = std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            let mut verifier = verifier;
            for batch in rx {
                for row in batch {
                    verifier.row(row);
                }
            }
            verifier
        });
        let mut batch = Vec::with_capacity(BATCH);
        let read_result = for_each_canonical(&reader.conn, reader.path(), blocks.as_mut(), |row| {
            batch.push(row);
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                // A closed channel means the worker failed; its error is reported below.
                if tx.send(full).is_err() {
                    return Err(AuditError::Invalid("verification stopped".into()));
                }
            }
            Ok(())
        });
        if !batch.is_empty() {
            let _ = tx.send(batch);
        }
        drop(tx);
        let verifier = worker
            .join()
            .map_err(|_| AuditError::Invalid("the verification worker panicked".into()));
        (verifier, read_result)
    });
    let mut verifier = verifier?;
    read_result?;
    if let Some(derived) = blocks {
        let (missing, extra) = derived
            .compare(&reader.conn)
            .map_err(|e| AuditError::sqlite(reader.path(), "reading entry_blocks", e))?;
        for ((kind, key, block), listed) in missing
            .into_iter()
            .map(|r| (r, false))
            .chain(extra.into_iter().map(|r| (r, true)))
        {
            let (first, last) = seq_range(block);
            let what = if listed {
                format!(
                    "entry_blocks lists {kind} {key:?} in block {block} (entries {first}..={last}), which holds no such entry (the table was edited)"
                )
            } else {
                format!(
                    "entry_blocks does not list {kind} {key:?} in block {block} (entries {first}..={last}): queries for it would miss entries there (the table was edited)"
                )
            };
            verifier.problem(first, what);
        }
    }
    Ok(verifier.finish(reader.path().to_owned()))
}

/// The checks of `audit verify` over any store of one log's entries: the file (by [`verify()`]),
/// or one gateway's chain in the fleet's PostgreSQL store. Built from the log's origin and its
/// stored checkpoints, fed every entry in seq order ([`Verifier::row`]), then
/// [`Verifier::finish`]ed into the report. Store-specific checks add their findings with
/// [`Verifier::problem`].
pub struct Verifier {
    origin: String,
    replay: Replay,
    last_checkpoint_size: u64,
    stored: usize,
    signed: usize,
    external: Option<usize>,
    signatures_checked: bool,
}

impl Verifier {
    /// Starts a verification of the log `origin` whose store holds the checkpoints `stored`.
    pub fn new(origin: String, stored: Vec<StoredCheckpoint>, options: &VerifyOptions) -> Self {
        let mut targets = Vec::new();
        let mut signed = 0;
        let mut previous_size = 0u64;
        for (id, size_col, root_col, parsed) in &stored {
            let label = format!("stored checkpoint #{id}");
            let (cp, failure) = match parsed {
                Err(e) => (None, Some(format!("{label} is malformed: {e}"))),
                Ok(cp) => {
                    let c = &cp.checkpoint;
                    let failure = if c.origin != origin {
                        Some(format!(
                            "{label} has origin {:?}, the log is {origin:?}",
                            c.origin
                        ))
                    } else if c.size != *size_col || c.root[..] != root_col[..] {
                        Some(format!(
                            "{label}: its columns (size {size_col}) disagree with its signed note (size {})",
                            c.size
                        ))
                    } else if c.size < previous_size {
                        Some(format!(
                            "{label} (size {}) is smaller than the one before it ({previous_size})",
                            c.size
                        ))
                    } else {
                        signature_failure(&label, cp, options.pubkey.as_ref())
                    };
                    previous_size = previous_size.max(c.size);
                    signed += cp.is_signed() as usize;
                    (Some(c.clone()), failure)
                }
            };
            targets.push(Target {
                label,
                size: cp.as_ref().map_or(*size_col, |c| c.size),
                root: cp.map_or([0; 32], |c| c.root),
                failure: failure.map(|f| (Doubt::Attestation, f)),
            });
        }
        let last_checkpoint_size = targets.iter().map(|t| t.size).max().unwrap_or(0);

        if let Some((path, external)) = &options.external {
            for (i, cp) in external.iter().enumerate() {
                let label = format!("checkpoint {} of {}", i + 1, path.display());
                let failure = if cp.checkpoint.origin != origin {
                    Some(format!(
                        "{label} has origin {:?}, the log is {origin:?}",
                        cp.checkpoint.origin
                    ))
                } else {
                    signature_failure(&label, cp, options.pubkey.as_ref())
                };
                targets.push(Target {
                    label,
                    size: cp.checkpoint.size,
                    root: cp.checkpoint.root,
                    failure: failure.map(|f| (Doubt::Attestation, f)),
                });
            }
        }
        targets.sort_by_key(|t| t.size);
        let mut replay = Replay::new(targets);
        replay.check_targets();
        Verifier {
            origin,
            replay,
            last_checkpoint_size,
            stored: stored.len(),
            signed,
            external: options.external.as_ref().map(|(_, e)| e.len()),
            signatures_checked: options.pubkey.is_some(),
        }
    }

    /// The next entry, in the order the store returns them by seq.
    pub fn row(&mut self, row: CanonicalRow) {
        self.replay.row(row);
    }

    /// A finding of a check only one store can make, naming the first entry it puts in doubt.
    pub fn problem(&mut self, seq: u64, what: String) {
        self.replay.problem(seq, what);
    }

    /// The report, once every entry was fed; `location` names the store in it.
    pub fn finish(self, location: PathBuf) -> VerifyReport {
        let Verifier {
            origin,
            replay,
            last_checkpoint_size,
            stored,
            signed,
            external,
            signatures_checked,
        } = self;
        let Replay {
            mut targets,
            range,
            next_target,
            mut problems,
            mut more_problems,
            ..
        } = replay;
        let entries = range.size();

        // Checkpoints beyond the end: the tail was cut off.
        for t in &mut targets[next_target..] {
            if t.failure.is_none() {
                t.failure = Some((
                    Doubt::Exact(entries + 1),
                    format!(
                        "{} attests {} entries but the log holds only {entries}: entries {}..={} are missing (the tail was truncated)",
                        t.label,
                        t.size,
                        entries + 1,
                        t.size
                    ),
                ));
            }
        }
        // A failed checkpoint puts in doubt the entries after the last checkpoint that vouched.
        let row_problems: Vec<u64> = problems.iter().filter_map(|p| p.seq).collect();
        let mut vouched = 0u64;
        for t in &targets {
            let Some((doubt, what)) = &t.failure else {
                vouched = vouched.max(t.size);
                continue;
            };
            let range_start = (vouched + 1).min(t.size.max(1));
            let seq = match doubt {
                Doubt::Exact(seq) => *seq,
                Doubt::Root => row_problems
                    .iter()
                    .copied()
                    .filter(|s| (range_start..=t.size).contains(s))
                    .min()
                    .unwrap_or(range_start),
                Doubt::Attestation => range_start,
            };
            if problems.len() < MAX_PROBLEMS {
                problems.push(Problem {
                    seq: Some(seq),
                    what: what.clone(),
                });
            } else {
                more_problems += 1;
            }
        }
        problems.sort_by_key(|p| p.seq.unwrap_or(u64::MAX));

        let mut warnings = Vec::new();
        if !signatures_checked {
            warnings.push(
                "SIGNATURES NOT CHECKED: no key given (--pubkey, --key-dir) or found in the state directory. Without the log's public key anyone able to write the file can rebuild it consistently.".into(),
            );
        }
        let unsigned = stored - signed;
        if unsigned > 0 {
            warnings.push(format!(
                "{unsigned} of {stored} stored checkpoints are UNSIGNED (no signing key configured when they were written): they prove internal consistency only."
            ));
        }
        if external.is_none() {
            warnings.push(
                "No external checkpoint file given (--checkpoint): removing the newest entries together with their checkpoints cannot be detected.".into(),
            );
        }
        let uncovered =
            (entries > last_checkpoint_size).then_some((last_checkpoint_size + 1, entries));
        VerifyReport {
            path: location,
            origin,
            entries,
            root: hex::encode(range.root()),
            checkpoints: stored,
            signed_checkpoints: signed,
            signatures_checked,
            external_checkpoints: external.unwrap_or(0),
            last_checkpoint_size,
            uncovered,
            warnings,
            problems,
            more_problems,
        }
    }
}

/// Rows per batch handed from the reading thread to the replaying one.
const BATCH: usize = 2048;

/// The recomputation of the log, row by row: leaf hashes, seq and time checks, the tree, and
/// the comparison with each checkpoint when the tree reaches its size.
struct Replay {
    targets: Vec<Target>,
    next_target: usize,
    range: CompactRange,
    expected_seq: i64,
    previous_time: Option<String>,
    previous_parsed: Option<chrono::DateTime<chrono::Utc>>,
    problems: Vec<Problem>,
    more_problems: u64,
}

impl Replay {
    fn new(targets: Vec<Target>) -> Self {
        Self {
            targets,
            next_target: 0,
            range: CompactRange::new(),
            expected_seq: 1,
            previous_time: None,
            previous_parsed: None,
            problems: Vec::new(),
            more_problems: 0,
        }
    }

    fn problem(&mut self, seq: u64, what: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                seq: Some(seq),
                what,
            });
        } else {
            self.more_problems += 1;
        }
    }

    fn row(&mut self, row: CanonicalRow) {
        let seq = row.seq;
        let expected = self.expected_seq;
        if seq != expected {
            let what = if seq > expected {
                if seq == expected + 1 {
                    format!("entry {expected} is missing (deleted)")
                } else {
                    format!("entries {expected}..={} are missing (deleted)", seq - 1)
                }
            } else {
                format!("entry with seq {seq} is out of sequence (expected {expected})")
            };
            self.problem(expected.max(1) as u64, what);
        }
        let useq = seq.max(0) as u64;
        let leaf = hash_leaf(&row.canonical);
        if row.entry_hash[..] != leaf[..] {
            self.problem(
                useq,
                format!("entry {seq}: its content does not match its stored entry_hash (the entry was altered)"),
            );
        }
        // Entries of one batch share their time: parse only when it changes.
        if self.previous_time.as_deref() != Some(row.time.as_str()) {
            match parse_time(&row.time) {
                None => self.problem(
                    useq,
                    format!(
                        "entry {seq}: time {:?} is not in the log's RFC 3339 format",
                        row.time
                    ),
                ),
                Some(t) => {
                    if let (Some(prev), Some(prev_text)) =
                        (self.previous_parsed, &self.previous_time)
                        && t < prev
                    {
                        let what = format!(
                            "entry {seq}: time {} runs backwards (previous entry: {prev_text})",
                            row.time
                        );
                        self.problem(useq, what);
                    }
                    self.previous_parsed = Some(t);
                }
            }
            self.previous_time = Some(row.time);
        }
        self.range.append(leaf);
        self.check_targets();
        self.expected_seq = seq + 1;
    }

    /// Compares the tree with every checkpoint of exactly its current size (the root is only
    /// computed when there is one).
    fn check_targets(&mut self) {
        let size = self.range.size();
        if self
            .targets
            .get(self.next_target)
            .is_none_or(|t| t.size != size)
        {
            return;
        }
        let root = self.range.root();
        while let Some(t) = self.targets.get_mut(self.next_target)
            && t.size == size
        {
            if t.root != root && t.failure.is_none() {
                t.failure = Some((
                    Doubt::Root,
                    format!(
                        "{} (size {}): the root recomputed from the entries does not match: an entry was altered, removed, inserted or reordered",
                        t.label, t.size
                    ),
                ));
            }
            self.next_target += 1;
        }
    }
}

fn signature_failure(
    label: &str,
    cp: &SignedCheckpoint,
    key: Option<&NoteVerifier>,
) -> Option<String> {
    let key = key?;
    key.check(&cp.body(), &cp.signatures)
        .err()
        .map(|e| format!("{label} (size {}): {e}", cp.checkpoint.size))
}

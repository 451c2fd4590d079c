//! The audit log end to end through its public API: writing, tampering with the file behind its
//! back, crashing the writer, redaction, and every kind of bad input.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gatehouse::audit::{
    AuditConfig, AuditError, AuditLog, AuditReader, ENTRIES_PER_BLOCK, EntryFilter, NewEntry,
    NoteSigner, NoteVerifier, Synchronous, VerifyOptions, VerifyReport, merkle,
    read_checkpoint_file, verify,
};
use rusqlite::Connection;
use serde_json::json;

struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
    key: PathBuf,
    pubkey: PathBuf,
    checkpoints: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("audit.key");
    let signer = NoteSigner::generate("test-log").unwrap();
    let pubkey = signer.write_key_files(&key).unwrap();
    Fixture {
        db: dir.path().join("audit.db"),
        checkpoints: dir.path().join("audit.db.checkpoints"),
        key,
        pubkey,
        _dir: dir,
    }
}

fn config(f: &Fixture, origin: &str) -> AuditConfig {
    AuditConfig {
        origin: Some(origin.into()),
        signing_key: Some(f.key.clone()),
        checkpoint_every: 10,
        ..Default::default()
    }
}

fn entry(i: u64) -> NewEntry {
    let phase = ["call", "http", "fs", "outcome"][(i % 4) as usize];
    let verdict = match phase {
        "outcome" => "ok",
        _ if i.is_multiple_of(3) => "deny",
        _ => "allow",
    };
    let mut e = NewEntry::new(
        phase,
        verdict,
        json!({"principal": format!("user{}", i % 3), "transport": "stdio", "client": "test", "authenticated": true}),
        json!({"arguments": {"n": i, "text": format!("value-{i}")}, "request": {"method": "GET", "url": format!("https://example.com/{i}")}}),
    );
    e.call_id = Some(format!("call-{}", i / 4));
    e.tool = Some(format!("tool{}", i % 2));
    if verdict == "deny" {
        e.reasons = vec![format!("reason {}", i % 2)];
    }
    e
}

/// Writes `n` entries (checkpoint every 10) and closes the log.
fn populate(f: &Fixture, origin: &str, n: u64) {
    append_entries(f, origin, 0..n);
}

/// Opens the log, appends `entry(i)` for each `i` (it must become seq `i + 1`), and closes it.
fn append_entries(f: &Fixture, origin: &str, entries: std::ops::Range<u64>) {
    let log = AuditLog::open(&f.db, config(f, origin)).unwrap();
    for i in entries.clone() {
        let a = log.append_blocking(entry(i)).unwrap();
        assert_eq!(a.seq, i + 1);
    }
    let closed = log.close().unwrap();
    assert_eq!(closed.tree_size, entries.end);
}

fn verify_with(f: &Fixture, external: bool) -> VerifyReport {
    let reader = AuditReader::open(&f.db).unwrap();
    let options = VerifyOptions {
        pubkey: Some(NoteVerifier::load(&f.pubkey).unwrap()),
        external: external.then(|| {
            (
                f.checkpoints.clone(),
                read_checkpoint_file(&f.checkpoints).unwrap(),
            )
        }),
    };
    verify(&reader, &options).unwrap()
}

/// A plain connection that can change anything: the attacker's view of the file, with every
/// append-only trigger dropped.
fn attacker(db: &Path) -> Connection {
    let c = Connection::open(db).unwrap();
    let triggers: Vec<String> = c
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(triggers.len() >= 8, "{triggers:?}");
    for name in triggers {
        c.execute_batch(&format!("DROP TRIGGER {name}")).unwrap();
    }
    c
}

#[test]
fn intact_log_verifies_with_key_and_external_checkpoints() {
    let f = fixture();
    populate(&f, "test/intact", 95);
    let report = verify_with(&f, true);
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.entries, 95);
    // Checkpoints every 10 entries plus the final one at close.
    assert_eq!(report.checkpoints, 10);
    assert_eq!(report.signed_checkpoints, 10);
    assert_eq!(report.last_checkpoint_size, 95);
    assert_eq!(report.uncovered, None);
    assert_eq!(report.external_checkpoints, 10);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn reopening_resumes_the_tree_and_seq() {
    let f = fixture();
    populate(&f, "test/resume", 7);
    append_entries(&f, "test/resume", 7..8);
    let report = verify_with(&f, true);
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.entries, 8);
    // A different origin in the configuration is refused.
    let err = AuditLog::open(&f.db, config(&f, "test/other")).unwrap_err();
    assert!(matches!(err, AuditError::OriginMismatch { .. }), "{err}");
}

/// The writer saves its tree state with each checkpoint, not with every commit. Entries committed
/// after the saved state (a crash before the next checkpoint) are replayed from their stored leaf
/// hashes when the log is reopened.
#[test]
fn reopening_replays_entries_committed_after_the_saved_tree_state() {
    let f = fixture();
    populate(&f, "test/replay", 10);
    let c = Connection::open(&f.db).unwrap();
    let state = "SELECT tree_size, compact_range FROM writer_state";
    let saved: (i64, Vec<u8>) = c
        .query_row(state, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(saved.0, 10);
    append_entries(&f, "test/replay", 10..15);
    // As after a crash between two checkpoints: the saved state is five entries behind.
    c.execute(
        "UPDATE writer_state SET tree_size = ?1, compact_range = ?2",
        rusqlite::params![saved.0, saved.1],
    )
    .unwrap();
    drop(c);
    append_entries(&f, "test/replay", 15..16);
    let report = verify_with(&f, true);
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.entries, 16);
    assert_eq!(report.uncovered, None);
}

#[test]
fn triggers_block_update_and_delete() {
    let f = fixture();
    populate(&f, "test/triggers", 12);
    let c = Connection::open(&f.db).unwrap();
    for sql in [
        "UPDATE entries SET verdict = 'allow' WHERE seq = 1",
        "DELETE FROM entries WHERE seq = 12",
        "UPDATE checkpoints SET tree_size = 1",
        "DELETE FROM checkpoints",
        "DELETE FROM meta",
        "UPDATE entry_blocks SET block = 9",
        "DELETE FROM entry_blocks",
    ] {
        let err = c.execute(sql, []).unwrap_err().to_string();
        assert!(err.contains("audit log is append-only"), "{sql}: {err}");
    }
}

#[test]
fn changed_byte_in_input_is_caught_at_its_seq() {
    let f = fixture();
    populate(&f, "test/byte", 60);
    attacker(&f.db)
        .execute(
            "UPDATE entries SET input = replace(input, 'value-36', 'value-37') WHERE seq = 37",
            [],
        )
        .unwrap();
    let report = verify_with(&f, false);
    assert_eq!(report.first_bad_seq(), Some(37), "{:?}", report.problems);
    assert!(
        report
            .first_problem()
            .unwrap()
            .what
            .contains("does not match its stored entry_hash")
    );
}

#[test]
fn rewritten_entry_with_recomputed_hash_is_caught_by_the_checkpoint() {
    let f = fixture();
    populate(&f, "test/rehash", 60);
    // A careful attacker also fixes entry_hash; the signed checkpoint still disagrees.
    let reader = AuditReader::open(&f.db).unwrap();
    let mut e = reader.query(&Default::default()).unwrap().remove(36);
    drop(reader);
    e.verdict = "allow".into();
    let canonical = serde_json_canonicalizer::to_vec(&e.canonical_object()).unwrap();
    let leaf = merkle::hash_leaf(&canonical);
    attacker(&f.db)
        .execute(
            "UPDATE entries SET verdict = 'allow', entry_hash = ?1 WHERE seq = 37",
            [&leaf[..]],
        )
        .unwrap();
    let report = verify_with(&f, false);
    // Entries 31..=40 are attested only by the checkpoint at 40, which no longer matches.
    assert_eq!(report.first_bad_seq(), Some(31), "{:?}", report.problems);
    assert!(
        report
            .first_problem()
            .unwrap()
            .what
            .contains("root recomputed")
    );
}

#[test]
fn deleted_row_is_caught_at_its_seq() {
    let f = fixture();
    populate(&f, "test/delete", 60);
    attacker(&f.db)
        .execute("DELETE FROM entries WHERE seq = 50", [])
        .unwrap();
    let report = verify_with(&f, false);
    assert_eq!(report.first_bad_seq(), Some(50), "{:?}", report.problems);
    assert!(report.first_problem().unwrap().what.contains("missing"));
}

#[test]
fn swapped_rows_are_caught_at_the_first() {
    let f = fixture();
    populate(&f, "test/swap", 60);
    let c = attacker(&f.db);
    let cols = "time, decision_id, call_id, phase, caller, tool, component_digest, policy_revision, input, verdict, reasons, obligations, metrics, entry_hash";
    c.execute_batch(&format!(
        "CREATE TEMP TABLE a AS SELECT {cols} FROM entries WHERE seq = 20;
         CREATE TEMP TABLE b AS SELECT {cols} FROM entries WHERE seq = 30;
         DELETE FROM entries WHERE seq IN (20, 30);
         INSERT INTO entries (seq, {cols}) SELECT 20, * FROM b;
         INSERT INTO entries (seq, {cols}) SELECT 30, * FROM a;"
    ))
    .unwrap();
    let report = verify_with(&f, false);
    assert_eq!(report.first_bad_seq(), Some(20), "{:?}", report.problems);
}

#[test]
fn truncated_tail_is_caught_by_the_external_checkpoint_file() {
    let f = fixture();
    populate(&f, "test/truncate", 100);
    let c = attacker(&f.db);
    c.execute("DELETE FROM entries WHERE seq > 85", []).unwrap();
    c.execute("DELETE FROM checkpoints WHERE tree_size > 85", [])
        .unwrap();
    drop(c);
    // Internally the shortened log is consistent: only the external file can tell.
    let inside = verify_with(&f, false);
    assert!(inside.is_intact(), "{:?}", inside.problems);
    assert_eq!(inside.uncovered, Some((81, 85)));
    let report = verify_with(&f, true);
    assert_eq!(report.first_bad_seq(), Some(86), "{:?}", report.problems);
    assert!(report.first_problem().unwrap().what.contains("truncated"));
}

#[test]
fn log_rebuilt_with_another_key_is_caught() {
    let f = fixture();
    populate(&f, "test/rebuild", 40);
    // The attacker rebuilds a log with the same origin and entry count, signed with their key.
    let forged = fixture();
    populate(&forged, "test/rebuild", 40);
    std::fs::copy(&forged.db, &f.db).unwrap();
    let report = verify_with(&f, false);
    assert_eq!(report.first_bad_seq(), Some(1), "{:?}", report.problems);
    assert!(
        report
            .first_problem()
            .unwrap()
            .what
            .contains("no signature by test-log+")
    );
    let with_file = verify_with(&f, true);
    assert_eq!(with_file.first_bad_seq(), Some(1));
    // And the writer refuses to continue such a log.
    assert!(AuditLog::open(&f.db, config(&f, "test/rebuild")).is_err());
}

#[test]
fn unsigned_log_verifies_with_loud_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("plain.db");
    let log = AuditLog::open(&db, AuditConfig::default()).unwrap();
    for i in 0..5 {
        log.append_blocking(entry(i)).unwrap();
    }
    log.close().unwrap();
    let report = verify(&AuditReader::open(&db).unwrap(), &VerifyOptions::default()).unwrap();
    assert!(report.is_intact());
    let warnings = report.warnings.join("\n");
    assert!(warnings.contains("SIGNATURES NOT CHECKED"), "{warnings}");
    assert!(warnings.contains("UNSIGNED"), "{warnings}");
    // Asking for signatures on an unsigned log fails.
    let key = NoteSigner::generate("k").unwrap().verifier();
    let report = verify(
        &AuditReader::open(&db).unwrap(),
        &VerifyOptions {
            pubkey: Some(key),
            external: None,
        },
    )
    .unwrap();
    assert_eq!(report.first_bad_seq(), Some(1));
}

#[test]
fn redacted_values_never_reach_the_file_and_stay_linkable() {
    let f = fixture();
    let log = AuditLog::open(&f.db, config(&f, "test/redact")).unwrap();
    let secret = "Sup3rSecretT0ken-4242";
    for i in 0..3 {
        let mut e = entry(0);
        e.input = json!({"headers": {"authorization": format!("Bearer {secret}")}, "i": i});
        e.redact = vec!["/headers/authorization".into()];
        log.append_blocking(e).unwrap();
    }
    log.close().unwrap();
    let mut bytes = std::fs::read(&f.db).unwrap();
    if let Ok(wal) = std::fs::read(format!("{}-wal", f.db.display())) {
        bytes.extend(wal);
    }
    let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
    assert!(!found, "the secret is stored in clear");
    let entries = AuditReader::open(&f.db)
        .unwrap()
        .query(&Default::default())
        .unwrap();
    let hashes: Vec<&str> = entries
        .iter()
        .map(|e| {
            e.input["headers"]["authorization"]["redacted"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(hashes[0].starts_with("hmac-sha256:"));
    assert!(hashes.iter().all(|h| *h == hashes[0]));
    assert!(verify_with(&f, true).is_intact());
    // A malformed pointer is refused rather than silently ignored.
    let log = AuditLog::open(&f.db, config(&f, "test/redact")).unwrap();
    let mut e = entry(0);
    e.redact = vec!["headers".into()];
    assert!(matches!(
        log.append_blocking(e),
        Err(AuditError::Redaction { .. })
    ));
}

#[test]
fn bad_files_and_keys_give_specific_errors() {
    let dir = tempfile::tempdir().unwrap();
    // A text file.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some notes, not a database\n".repeat(200)).unwrap();
    let err = AuditLog::open(&text, AuditConfig::default()).unwrap_err();
    assert!(matches!(err, AuditError::NotAnAuditLog { .. }), "{err}");
    assert!(matches!(
        AuditReader::open(&text),
        Err(AuditError::NotAnAuditLog { .. })
    ));
    // Another application's SQLite database.
    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'x');")
        .unwrap();
    let err = AuditLog::open(&other, AuditConfig::default()).unwrap_err();
    assert!(err.to_string().contains("another application"), "{err}");
    // A newer schema.
    let newer = dir.path().join("newer.db");
    AuditLog::open(&newer, AuditConfig::default())
        .unwrap()
        .close()
        .unwrap();
    Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = AuditLog::open(&newer, AuditConfig::default()).unwrap_err();
    assert!(
        matches!(err, AuditError::NewerSchema { found: 99, .. }),
        "{err}"
    );
    // A directory that cannot hold the log.
    let err = AuditLog::open(&text.join("audit.db"), AuditConfig::default()).unwrap_err();
    assert!(matches!(err, AuditError::Unwritable { .. }), "{err}");
    let err =
        AuditLog::open(&dir.path().join("missing/audit.db"), AuditConfig::default()).unwrap_err();
    assert!(matches!(err, AuditError::Unwritable { .. }), "{err}");
    // Missing log for the auditor.
    assert!(matches!(
        AuditReader::open(&dir.path().join("absent.db")),
        Err(AuditError::NotFound { .. })
    ));
    // Keys: missing, malformed.
    assert!(matches!(
        NoteVerifier::load(&dir.path().join("none.pub")),
        Err(AuditError::KeyMissing { .. })
    ));
    std::fs::write(dir.path().join("bad.pub"), "not a key\n").unwrap();
    assert!(matches!(
        NoteVerifier::load(&dir.path().join("bad.pub")),
        Err(AuditError::Key { .. })
    ));
    let cfg = AuditConfig {
        signing_key: Some(dir.path().join("none.key")),
        ..Default::default()
    };
    assert!(matches!(
        AuditLog::open(&dir.path().join("k.db"), cfg),
        Err(AuditError::KeyMissing { .. })
    ));
    // Missing external checkpoint file.
    assert!(matches!(
        read_checkpoint_file(&dir.path().join("none.checkpoints")),
        Err(AuditError::CheckpointFileMissing { .. })
    ));
    // Invalid entries are refused before anything is written.
    let log = AuditLog::open(&dir.path().join("v.db"), AuditConfig::default()).unwrap();
    assert!(matches!(
        log.append_blocking(NewEntry::new("call", "maybe", json!({}), json!({}))),
        Err(AuditError::InvalidEntry {
            field: "verdict",
            ..
        })
    ));
    // One writer per log.
    let err = AuditLog::open(&dir.path().join("v.db"), AuditConfig::default()).unwrap_err();
    assert!(matches!(err, AuditError::AlreadyOpen { .. }), "{err}");
    // After close every handle fails closed.
    let clone = log.clone();
    log.close().unwrap();
    assert!(matches!(
        clone.append_blocking(entry(1)),
        Err(AuditError::Closed { .. })
    ));
}

#[test]
fn log_that_lost_its_tail_is_refused_by_the_writer() {
    let f = fixture();
    populate(&f, "test/ahead", 30);
    let c = attacker(&f.db);
    c.execute("DELETE FROM entries WHERE seq > 20", []).unwrap();
    c.execute("DELETE FROM checkpoints WHERE tree_size > 20", [])
        .unwrap();
    // Even with the writer state made to match, the checkpoint file still says 30.
    let reader = AuditReader::open(&f.db).unwrap();
    let leaves: Vec<merkle::Hash> = reader
        .query(&Default::default())
        .unwrap()
        .iter()
        .map(|e| e.entry_hash)
        .collect();
    drop(reader);
    let mut range = merkle::CompactRange::new();
    leaves.iter().for_each(|l| range.append(*l));
    c.execute(
        "UPDATE writer_state SET tree_size = 20, compact_range = ?1",
        [range.node_bytes()],
    )
    .unwrap();
    drop(c);
    let err = AuditLog::open(&f.db, config(&f, "test/ahead")).unwrap_err();
    assert!(
        matches!(
            err,
            AuditError::CheckpointAhead {
                file_size: 30,
                db_size: 20,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_async_appends_get_unique_gapless_seqs() {
    let f = fixture();
    let log = AuditLog::open(&f.db, config(&f, "test/concurrent")).unwrap();
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..50 {
                seqs.push(log.append(entry(t * 100 + i)).await.unwrap().seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (1..=800).collect::<Vec<u64>>());
    log.close().unwrap();
    assert!(verify_with(&f, true).is_intact());
}

/// Entries queued faster than the writer commits go in large batches (several multi-row inserts
/// and a remainder per transaction): each keeps its submission order, its content and its leaf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_queued_together_keep_order_and_content_in_large_batches() {
    let f = fixture();
    let log = AuditLog::open(&f.db, config(&f, "test/batches")).unwrap();
    let pending: Vec<_> = (0..300).map(|i| log.submit(entry(i)).unwrap()).collect();
    let mut seqs = Vec::new();
    for p in pending {
        seqs.push(p.committed().await.unwrap().seq);
    }
    assert_eq!(seqs, (1..=300).collect::<Vec<u64>>());
    log.close().unwrap();
    assert!(verify_with(&f, true).is_intact());
    let reader = AuditReader::open(&f.db).unwrap();
    for i in [0u64, 31, 32, 33, 150, 299] {
        let e = &reader.call_story(&format!("call-{}", i / 4)).unwrap()[(i % 4) as usize];
        let expected = entry(i);
        assert_eq!(
            (e.seq, &e.phase, &e.tool),
            (i + 1, &expected.phase, &expected.tool)
        );
        assert_eq!(e.input, expected.input);
    }
}

#[test]
fn inclusion_proof_checks_against_the_checkpoint() {
    let f = fixture();
    populate(&f, "test/prove", 23);
    let reader = AuditReader::open(&f.db).unwrap();
    for seq in [1, 12, 23] {
        let p = reader.inclusion_proof(seq, None).unwrap();
        assert_eq!(p.tree_size, 23);
        assert_eq!(merkle::hash_leaf(p.canonical_entry.as_bytes()), p.leaf_hash);
        merkle::verify_inclusion(
            p.leaf_index,
            p.tree_size,
            &p.leaf_hash,
            &p.proof,
            &p.root_hash,
        )
        .unwrap();
        let note = gatehouse::audit::SignedCheckpoint::parse(&p.checkpoint).unwrap();
        assert_eq!(note.checkpoint.root, p.root_hash);
        NoteVerifier::load(&f.pubkey)
            .unwrap()
            .check(&note.body(), &note.signatures)
            .unwrap();
    }
    assert!(reader.inclusion_proof(24, None).is_err());
}

/// Child half of the crash test: appends from many tasks until killed, printing each ack.
#[test]
#[ignore = "helper process started by crash_loses_no_acknowledged_entry"]
fn crash_child() {
    let db = std::env::var("GATEHOUSE_AUDIT_CRASH_DB").expect("run by the crash test only");
    let key = std::env::var("GATEHOUSE_AUDIT_CRASH_KEY").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let log = AuditLog::open(
            Path::new(&db),
            AuditConfig {
                origin: Some("test/crash".into()),
                signing_key: Some(key.into()),
                checkpoint_every: 100,
                ..Default::default()
            },
        )
        .unwrap();
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let a = log.append(entry(t * 1_000_000 + i)).await.unwrap();
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {}", a.seq).unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn crash_loses_no_acknowledged_entry() {
    let f = fixture();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GATEHOUSE_AUDIT_CRASH_DB", &f.db)
        .env("GATEHOUSE_AUDIT_CRASH_KEY", &f.key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    while acked.len() < 3000 {
        let line = lines.next().expect("child ended early").unwrap();
        if let Some(seq) = line.strip_prefix("ACK ") {
            acked.push(seq.parse::<u64>().unwrap());
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no final checkpoint
    child.wait().unwrap();
    for line in lines {
        if let Some(seq) = line.unwrap().strip_prefix("ACK ") {
            acked.push(seq.parse::<u64>().unwrap());
        }
    }
    let reader = AuditReader::open(&f.db).unwrap();
    let stored: std::collections::HashSet<u64> = reader
        .query(&Default::default())
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    for seq in &acked {
        assert!(stored.contains(seq), "acknowledged seq {seq} was lost");
    }
    let report = verify_with(&f, true);
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.entries as usize, stored.len());
    // The writer resumes after the crash and seals the uncovered tail.
    let log = AuditLog::open(
        &f.db,
        AuditConfig {
            checkpoint_every: 100,
            ..config(&f, "test/crash")
        },
    )
    .unwrap();
    let next = log.append_blocking(entry(1)).unwrap();
    assert_eq!(next.seq, report.entries + 1);
    log.close().unwrap();
    let after = verify_with(&f, true);
    assert!(after.is_intact(), "{:?}", after.problems);
    assert_eq!(after.uncovered, None);
    eprintln!(
        "crash test: {} acknowledged before SIGKILL, {} stored",
        acked.len(),
        stored.len()
    );
}

#[test]
fn rotation_links_the_new_file_to_the_sealed_one() {
    let f = fixture();
    let log = AuditLog::open(&f.db, config(&f, "test/rotate")).unwrap();
    for i in 0..25 {
        log.append_blocking(entry(i)).unwrap();
    }
    let new_db = f.db.with_file_name("audit-2.db");
    let rotated = log.rotate(&new_db, None).unwrap();
    assert_eq!(rotated.previous_tree_size, 25);
    assert!(
        rotated.origin.starts_with("test/rotate/r"),
        "{}",
        rotated.origin
    );
    assert_eq!(log.path(), new_db);
    for i in 0..5 {
        assert_eq!(log.append_blocking(entry(i)).unwrap().seq, i + 2);
    }
    // Rotating into an existing log is refused and leaves the writer where it was.
    assert!(log.rotate(&f.db, None).is_err());
    assert_eq!(log.append_blocking(entry(9)).unwrap().seq, 7);
    log.close().unwrap();

    // The sealed file is intact and complete.
    let old = verify_with(&f, true);
    assert!(old.is_intact(), "{:?}", old.problems);
    assert_eq!((old.entries, old.last_checkpoint_size), (25, 25));
    // The new file starts with the link to the old one's final checkpoint.
    let reader = AuditReader::open(&new_db).unwrap();
    let first = reader.query(&Default::default()).unwrap().remove(0);
    assert_eq!((first.seq, first.phase.as_str()), (1, "lifecycle"));
    let previous = &first.input["previous"];
    assert_eq!(previous["tree_size"], 25);
    assert_eq!(previous["root"].as_str().unwrap(), old.root);
    assert_eq!(
        previous["checkpoint"].as_str(),
        rotated.previous_checkpoint.as_deref()
    );
    let new_cps = gatehouse::audit::default_checkpoint_file(&new_db);
    let report = verify(
        &reader,
        &VerifyOptions {
            pubkey: Some(NoteVerifier::load(&f.pubkey).unwrap()),
            external: Some((new_cps.clone(), read_checkpoint_file(&new_cps).unwrap())),
        },
    )
    .unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.entries, 7);
}

/// Fills a real file system: a 2 MiB tmpfs, mounted by a child process (this test binary again,
/// running `disk_full_child`) in a mount namespace of its own (`unshare --mount`). The mount
/// exists only in that namespace, so it goes away with the child however the child ends: a
/// failed assertion, a panic or a kill cannot leave it mounted. Mounting needs root; without
/// it, or where namespaces or tmpfs are not allowed, the test says why it skipped.
#[test]
fn disk_full_is_a_specific_error_and_loses_nothing_acknowledged() {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid());
    if !matches!(uid, Ok(0)) {
        eprintln!("SKIPPED: mounting a small tmpfs to fill needs root (uid: {uid:?})");
        return;
    }
    let probe = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let why = String::from_utf8_lossy(&out.stderr);
            eprintln!("SKIPPED: no private mount namespace (`unshare --mount`): {why}");
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run `unshare` for a private mount namespace: {e}");
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "disk_full_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GATEHOUSE_TINYFS", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    if let Some(why) = stdout.lines().find_map(|l| l.strip_prefix(SKIPPED)) {
        eprintln!("SKIPPED: {why}");
        return;
    }
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the disk-full run failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // The mount was the child's alone.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(dir.path().to_str().unwrap()), "{mounts}");
}

/// What `disk_full_child` prints when it cannot mount, before the reason.
const SKIPPED: &str = "GATEHOUSE-SKIPPED: ";

#[test]
#[ignore = "helper process started by disk_full_is_a_specific_error_and_loses_nothing_acknowledged"]
fn disk_full_child() {
    let dir =
        PathBuf::from(std::env::var("GATEHOUSE_TINYFS").expect("run by the disk-full test only"));
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&dir)
        .output();
    match mounted {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let why = String::from_utf8_lossy(&out.stderr);
            println!("{SKIPPED}mount -t tmpfs failed: {}", why.trim());
            return;
        }
        Err(e) => {
            println!("{SKIPPED}cannot run mount: {e}");
            return;
        }
    }
    let db = dir.join("full.db");
    let log = AuditLog::open(
        &db,
        AuditConfig {
            checkpoint_every: 5,
            ..Default::default()
        },
    )
    .unwrap();
    let mut acked = Vec::new();
    let err = loop {
        let mut e = entry(1);
        e.input = json!({"blob": "x".repeat(8000), "n": acked.len()});
        match log.append_blocking(e) {
            Ok(a) => acked.push(a.seq),
            Err(e) => break e,
        }
        assert!(acked.len() < 10_000, "the file system never filled up");
    };
    eprintln!("after {} entries: {err}", acked.len());
    assert!(matches!(err, AuditError::DiskFull { .. }), "{err}");
    // The next attempt either fails too or, when a WAL checkpoint has freed space meanwhile,
    // is written right after the last acknowledged entry: never a gap, never a lost entry.
    if let Ok(appended) = log.append_blocking(entry(2)) {
        assert_eq!(appended.seq, acked.last().unwrap() + 1);
        acked.push(appended.seq);
    }
    drop(log);
    let reader = AuditReader::open(&db).unwrap();
    assert_eq!(reader.last_seq().unwrap(), *acked.last().unwrap());
    let report = verify(&reader, &VerifyOptions::default()).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
}

#[test]
fn column_of_the_wrong_type_is_reported_not_fatal() {
    let f = fixture();
    populate(&f, "test/type", 20);
    attacker(&f.db)
        .execute("UPDATE entries SET input = X'00FF' WHERE seq = 9", [])
        .unwrap();
    let report = verify_with(&f, false);
    assert_eq!(report.first_bad_seq(), Some(9), "{:?}", report.problems);
}

/// Entries over three blocks of `entry_blocks`, with a caller and a tool that occur only in the
/// first and the third block. Written with `synchronous = normal`: 2,500 fsyncs would only slow
/// the test down.
fn populate_blocks(f: &Fixture, origin: &str) -> u64 {
    let n = 2 * ENTRIES_PER_BLOCK + 452;
    let log = AuditLog::open(
        &f.db,
        AuditConfig {
            synchronous: Synchronous::Normal,
            checkpoint_every: 500,
            ..config(f, origin)
        },
    )
    .unwrap();
    for i in 0..n {
        let mut e = entry(i);
        if i == 4 || i == 2 * ENTRIES_PER_BLOCK + 100 {
            e.tool = Some("rare".into());
            e.caller = json!({"principal": "auditor", "transport": "http", "client": "test", "authenticated": true});
        }
        log.append_blocking(e).unwrap();
    }
    log.close().unwrap();
    n
}

/// What a filter should select, checked entry by entry.
type EntryTest = dyn Fn(&gatehouse::audit::Entry) -> bool;

fn seqs(entries: &[gatehouse::audit::Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

#[test]
fn caller_and_tool_queries_find_every_entry_across_blocks() {
    let f = fixture();
    let n = populate_blocks(&f, "test/blocks");
    let reader = AuditReader::open(&f.db).unwrap();
    let all = reader.query(&EntryFilter::default()).unwrap();
    assert_eq!(all.len() as u64, n);
    let principal = |e: &gatehouse::audit::Entry| e.caller["principal"].as_str().map(str::to_owned);
    let cases: Vec<(EntryFilter, Box<EntryTest>)> = vec![
        (
            EntryFilter {
                tool: Some("rare".into()),
                ..Default::default()
            },
            Box::new(|e| e.tool.as_deref() == Some("rare")),
        ),
        (
            EntryFilter {
                principal: Some("user1".into()),
                ..Default::default()
            },
            Box::new(move |e| principal(e).as_deref() == Some("user1")),
        ),
        (
            EntryFilter {
                principal: Some("user2".into()),
                tool: Some("tool1".into()),
                verdict: Some("deny".into()),
                ..Default::default()
            },
            Box::new(move |e| {
                principal(e).as_deref() == Some("user2")
                    && e.tool.as_deref() == Some("tool1")
                    && e.verdict == "deny"
            }),
        ),
        (
            EntryFilter {
                tool: Some("tool0".into()),
                after_seq: Some(1500),
                ..Default::default()
            },
            Box::new(|e| e.tool.as_deref() == Some("tool0") && e.seq > 1500),
        ),
        (
            EntryFilter {
                principal: Some("nobody".into()),
                ..Default::default()
            },
            Box::new(|_| false),
        ),
        // Any of several phases (what `policy replay` reads), with a tool and a bound.
        (
            EntryFilter {
                phases: vec!["http".into(), "fs".into()],
                tool: Some("tool1".into()),
                after_seq: Some(700),
                ..Default::default()
            },
            Box::new(|e| {
                ["http", "fs"].contains(&e.phase.as_str())
                    && e.tool.as_deref() == Some("tool1")
                    && e.seq > 700
            }),
        ),
        (
            EntryFilter {
                phases: vec!["call".into(), "fs".into()],
                phase: Some("fs".into()),
                ..Default::default()
            },
            Box::new(|e| e.phase == "fs"),
        ),
    ];
    for (filter, wanted) in cases {
        let expected: Vec<u64> = all.iter().filter(|e| wanted(e)).map(|e| e.seq).collect();
        assert_eq!(
            seqs(&reader.query(&filter).unwrap()),
            expected,
            "{filter:?}"
        );
        // Newest first with a limit that ends inside a block and one that spans blocks.
        for limit in [1, 7, 600, 5000] {
            let newest = EntryFilter {
                newest_first: true,
                limit: Some(limit),
                ..filter.clone()
            };
            let want: Vec<u64> = expected
                .iter()
                .rev()
                .take(limit as usize)
                .copied()
                .collect();
            assert_eq!(seqs(&reader.query(&newest).unwrap()), want, "{newest:?}");
            let oldest = EntryFilter {
                limit: Some(limit),
                ..filter.clone()
            };
            let want: Vec<u64> = expected.iter().take(limit as usize).copied().collect();
            assert_eq!(seqs(&reader.query(&oldest).unwrap()), want, "{oldest:?}");
        }
    }
    assert_eq!(
        seqs(
            &reader
                .query(&EntryFilter {
                    tool: Some("rare".into()),
                    ..Default::default()
                })
                .unwrap()
        ),
        [5, 2 * ENTRIES_PER_BLOCK + 101]
    );
    // Each (key, block) is listed once: 3 callers and 2 tools in each of the 3 blocks, plus the
    // rare caller and tool in 2 of them.
    let c = Connection::open(&f.db).unwrap();
    let rows: i64 = c
        .query_row("SELECT count(*) FROM entry_blocks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 3 * 5 + 2 + 2);
    assert!(verify_with(&f, true).is_intact());
}

#[test]
fn an_edited_block_list_is_caught() {
    let f = fixture();
    populate_blocks(&f, "test/blocks-edit");
    let c = attacker(&f.db);
    c.execute_batch(
        "DELETE FROM entry_blocks WHERE kind = 'tool' AND key = 'rare' AND block = 2;
         INSERT INTO entry_blocks (kind, key, block) VALUES ('principal', 'ghost', 1);",
    )
    .unwrap();
    let report = verify_with(&f, true);
    assert!(!report.is_intact());
    let whats: Vec<&str> = report.problems.iter().map(|p| p.what.as_str()).collect();
    assert_eq!(report.problems.len(), 2, "{whats:?}");
    let missing = &report.problems[1];
    assert_eq!(missing.seq, Some(2 * ENTRIES_PER_BLOCK + 1));
    assert!(
        missing
            .what
            .contains("does not list tool \"rare\" in block 2"),
        "{}",
        missing.what
    );
    let extra = &report.problems[0];
    assert_eq!(extra.seq, Some(ENTRIES_PER_BLOCK + 1));
    assert!(
        extra.what.contains("lists principal \"ghost\" in block 1"),
        "{}",
        extra.what
    );
    // The query for the rare tool now misses its entry in block 2: that is what verify warns of.
    let reader = AuditReader::open(&f.db).unwrap();
    let rare = EntryFilter {
        tool: Some("rare".into()),
        ..Default::default()
    };
    assert_eq!(seqs(&reader.query(&rare).unwrap()), [5]);
}

#[test]
fn schema_version_1_logs_are_still_read_appended_and_verified() {
    let f = fixture();
    populate(&f, "test/v1", 30);
    // What a log written by the version 1 schema holds: per-row indexes instead of the blocks.
    let c = attacker(&f.db);
    c.execute_batch(
        "DROP TABLE entry_blocks;
         CREATE INDEX entries_tool ON entries (tool);
         CREATE INDEX entries_principal ON entries (principal);
         DELETE FROM meta WHERE key = 'entries_per_block';
         UPDATE meta SET value = '1' WHERE key = 'schema_version';
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(c);
    let log = AuditLog::open(&f.db, config(&f, "test/v1")).unwrap();
    for i in 30..40 {
        log.append_blocking(entry(i)).unwrap();
    }
    log.close().unwrap();
    let reader = AuditReader::open(&f.db).unwrap();
    assert_eq!(reader.meta().schema_version, 1);
    let tool1 = EntryFilter {
        tool: Some("tool1".into()),
        newest_first: true,
        limit: Some(3),
        ..Default::default()
    };
    assert_eq!(seqs(&reader.query(&tool1).unwrap()), [40, 38, 36]);
    let user0 = EntryFilter {
        principal: Some("user0".into()),
        ..Default::default()
    };
    assert_eq!(reader.query(&user0).unwrap().len(), 14);
    let report = verify_with(&f, true);
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.entries, 40);
}

#[test]
fn a_principal_that_is_not_a_string_is_refused() {
    let f = fixture();
    let log = AuditLog::open(&f.db, config(&f, "test/principal")).unwrap();
    let mut e = entry(0);
    e.caller = json!({"principal": 42, "transport": "stdio"});
    let err = log.append_blocking(e).unwrap_err();
    assert!(
        err.to_string().contains("principal must be a string"),
        "{err}"
    );
    // The log goes on.
    assert_eq!(log.append_blocking(entry(1)).unwrap().seq, 1);
    log.close().unwrap();
}

#[test]
fn a_version_2_log_with_a_broken_block_layout_is_refused() {
    let f = fixture();
    populate(&f, "test/layout", 3);
    let c = attacker(&f.db);
    c.execute(
        "UPDATE meta SET value = '512' WHERE key = 'entries_per_block'",
        [],
    )
    .unwrap();
    let err = AuditReader::open(&f.db).err().unwrap().to_string();
    assert!(err.contains("entries_per_block is \"512\""), "{err}");
    c.execute_batch(
        "UPDATE meta SET value = '1024' WHERE key = 'entries_per_block';
         DROP TABLE entry_blocks;",
    )
    .unwrap();
    let err = AuditLog::open(&f.db, config(&f, "test/layout"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("table entry_blocks is missing"), "{err}");
}

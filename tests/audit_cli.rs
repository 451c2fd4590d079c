//! The auditor CLI (`gatehouse audit …`) run as a real binary over a log written through the API.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gatehouse::audit::{
    AuditConfig, AuditLog, AuditReader, CHECKPOINT_KEY, CHECKPOINT_PUBLIC_KEY, NewEntry,
    NoteSigner, REDACTION_KEY, StateDir, merkle,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// Runs the CLI with an `XDG_STATE_HOME` that holds no installation key (so `verify` without
/// `--key-dir` or `--pubkey` checks internal consistency only) and is never the user's.
fn gatehouse(args: &[&str]) -> Output {
    Command::new(BIN)
        .env(
            "XDG_STATE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-state"),
        )
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

struct Log {
    _dir: tempfile::TempDir,
    db: PathBuf,
    pubkey: PathBuf,
    checkpoints: PathBuf,
}

impl Log {
    fn db(&self) -> &str {
        self.db.to_str().unwrap()
    }
}

fn caller(who: &str) -> Value {
    json!({"principal": who, "transport": "http", "client": "agent/1.0", "authenticated": true})
}

/// Two calls: one allowed (with an egress check and an outcome), one denied.
fn populate() -> Log {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("audit.key");
    let pubkey = NoteSigner::generate("cli-test")
        .unwrap()
        .write_key_files(&key)
        .unwrap();
    let db = dir.path().join("audit.db");
    let log = AuditLog::open(
        &db,
        AuditConfig {
            origin: Some("test/cli".into()),
            signing_key: Some(key),
            checkpoint_every: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let mut call = NewEntry::new(
        "call",
        "allow",
        caller("alice"),
        json!({"arguments": {"url": "https://api.example.com/x"}}),
    );
    call.call_id = Some("c-1".into());
    call.tool = Some("fetch".into());
    call.policy_revision = Some("rev-7".into());
    log.append_blocking(call).unwrap();
    let mut http = NewEntry::new(
        "http",
        "deny",
        caller("alice"),
        json!({"request": {"method": "GET", "scheme": "https", "host": "evil.example.net", "port": 443, "path": "/exfil", "query": ""}}),
    );
    http.call_id = Some("c-1".into());
    http.tool = Some("fetch".into());
    http.reasons = vec!["host not allowed".into()];
    log.append_blocking(http).unwrap();
    let mut outcome = NewEntry::new("outcome", "ok", caller("alice"), json!({}));
    outcome.call_id = Some("c-1".into());
    outcome.tool = Some("fetch".into());
    outcome.metrics = json!({"duration_us": 1234});
    log.append_blocking(outcome).unwrap();
    let mut denied = NewEntry::new(
        "call",
        "deny",
        caller("bob"),
        json!({"arguments": {"path": "/etc/shadow"}}),
    );
    denied.call_id = Some("c-2".into());
    denied.tool = Some("read-file".into());
    denied.reasons = vec!["path outside the sandbox".into()];
    log.append_blocking(denied).unwrap();
    log.close().unwrap();
    Log {
        checkpoints: dir.path().join("audit.db.checkpoints"),
        _dir: dir,
        db,
        pubkey,
    }
}

#[test]
fn query_filters_and_formats() {
    let log = populate();
    let all = gatehouse(&["audit", "query", log.db()]);
    assert!(all.status.success(), "{all:?}");
    let text = stdout(&all);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("SEQ") && lines[0].contains("VERDICT"));
    // Columns are aligned: the VERDICT column starts at the same offset on every line.
    let col = lines[0].find("VERDICT").unwrap();
    assert!(lines[1][col..].starts_with("allow"), "{text}");
    assert!(lines[2][col..].starts_with("deny"), "{text}");

    let denies = stdout(&gatehouse(&[
        "audit",
        "query",
        log.db(),
        "--verdict",
        "deny",
        "--format",
        "json",
    ]));
    let objs: Vec<Value> = denies
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 2);
    assert_eq!(objs[0]["seq"], 2);
    assert_eq!(objs[1]["caller"]["principal"], "bob");

    let bob = stdout(&gatehouse(&[
        "audit",
        "query",
        log.db(),
        "--caller",
        "bob",
        "--format",
        "json",
    ]));
    assert_eq!(bob.lines().count(), 1);
    let text_hit = stdout(&gatehouse(&[
        "audit",
        "query",
        log.db(),
        "--text",
        "SANDBOX",
        "--format",
        "json",
    ]));
    assert_eq!(text_hit.lines().count(), 1);
    let phase = stdout(&gatehouse(&[
        "audit",
        "query",
        log.db(),
        "--phase",
        "http",
        "--tool",
        "fetch",
        "--format",
        "json",
    ]));
    assert_eq!(phase.lines().count(), 1);
    let recent = stdout(&gatehouse(&[
        "audit",
        "query",
        log.db(),
        "--since",
        "1h",
        "--call",
        "c-1",
        "--format",
        "json",
    ]));
    assert_eq!(recent.lines().count(), 3);
    let future = stdout(&gatehouse(&[
        "audit",
        "query",
        log.db(),
        "--since",
        "2999-01-01T00:00:00Z",
        "--format",
        "json",
    ]));
    assert_eq!(future.lines().count(), 0);
    let limited = stdout(&gatehouse(&[
        "audit",
        "query",
        log.db(),
        "--limit",
        "1",
        "--newest",
        "--format",
        "json",
    ]));
    let last: Value = serde_json::from_str(limited.trim()).unwrap();
    assert_eq!(last["seq"], 4);

    let csv = stdout(&gatehouse(&["audit", "query", log.db(), "--format", "csv"]));
    let mut rows = csv.lines();
    assert!(rows.next().unwrap().starts_with("seq,time,decision_id"));
    assert_eq!(rows.count(), 4);

    let bad = gatehouse(&["audit", "query", log.db(), "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("yesterday"));
}

#[test]
fn show_tells_one_calls_story() {
    let log = populate();
    let out = gatehouse(&["audit", "show", log.db(), "c-1"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("call c-1") && text.contains("fetch") && text.contains("alice"),
        "{text}"
    );
    assert!(text.contains("+0 ms"), "{text}");
    assert!(
        text.contains("GET https://evil.example.net:443/exfil — host not allowed"),
        "{text}"
    );
    assert!(text.contains("duration_us=1234"), "{text}");
    let missing = gatehouse(&["audit", "show", log.db(), "nope"]);
    assert_eq!(missing.status.code(), Some(2));
}

/// A call a policy denied has a `deny` decision and a `denied` outcome repeating its reasons
/// (joined); `stats` counts the denial once, by the decision's reasons. A call that ended
/// `denied` without a deny decision (the gateway's own refusal) is counted by its outcome.
#[test]
fn stats_counts_each_denial_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let log = AuditLog::open(&db, AuditConfig::default()).unwrap();
    let append = |call: &str, phase: &str, verdict: &str, reasons: &[&str]| {
        let mut e = NewEntry::new(phase, verdict, caller("carol"), json!({}));
        e.call_id = Some(call.into());
        e.tool = Some("fetch".into());
        e.reasons = reasons.iter().map(|r| r.to_string()).collect();
        log.append_blocking(e).unwrap();
    };
    append("c-1", "call", "deny", &["no url", "caller unknown"]);
    append("c-1", "outcome", "denied", &["no url; caller unknown"]);
    append("c-2", "call", "allow", &[]);
    append("c-2", "result", "deny", &["secret in result"]);
    append(
        "c-2",
        "outcome",
        "denied",
        &["result withheld: secret in result"],
    );
    append("c-3", "call", "allow", &[]);
    append(
        "c-3",
        "outcome",
        "denied",
        &["limits: memory is not a size"],
    );
    log.close().unwrap();

    let out = gatehouse(&["audit", "stats", db.to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let mut counts: Vec<(String, u64)> = json["denials_by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    counts.sort();
    let expected = [
        "caller unknown",
        "limits: memory is not a size",
        "no url",
        "secret in result",
    ];
    assert_eq!(
        counts,
        expected.map(|r| (r.to_owned(), 1)).to_vec(),
        "{json}"
    );
}

#[test]
fn stats_tail_and_export() {
    let log = populate();
    let stats = stdout(&gatehouse(&["audit", "stats", log.db()]));
    assert!(stats.contains("calls:    2 (1 denied)"), "{stats}");
    assert!(stats.contains("path outside the sandbox"), "{stats}");
    let json: Value = serde_json::from_str(&stdout(&gatehouse(&[
        "audit",
        "stats",
        log.db(),
        "--format",
        "json",
    ])))
    .unwrap();
    assert_eq!(json["denials_by_reason"].as_array().unwrap().len(), 2);

    let tail = stdout(&gatehouse(&[
        "audit",
        "tail",
        log.db(),
        "-n",
        "2",
        "--format",
        "json",
    ]));
    let seqs: Vec<u64> = tail
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![3, 4]);

    let export = stdout(&gatehouse(&["audit", "export", log.db()]));
    assert_eq!(export.lines().count(), 4);
    for line in export.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["entry_hash"].as_str().unwrap().len(), 64);
    }
}

#[test]
fn verify_passes_then_names_the_tampered_entry() {
    let log = populate();
    let ok = gatehouse(&[
        "audit",
        "verify",
        log.db(),
        "--pubkey",
        log.pubkey.to_str().unwrap(),
        "--checkpoint",
        log.checkpoints.to_str().unwrap(),
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("OK:"));

    let no_key = gatehouse(&["audit", "verify", log.db()]);
    assert_eq!(no_key.status.code(), Some(0));
    assert!(stdout(&no_key).contains("SIGNATURES NOT CHECKED"));

    let c = rusqlite::Connection::open(&log.db).unwrap();
    c.execute_batch("DROP TRIGGER entries_no_update; UPDATE entries SET input = replace(input, 'shadow', 'passwd') WHERE seq = 4;")
        .unwrap();
    drop(c);
    let bad = gatehouse(&[
        "audit",
        "verify",
        log.db(),
        "--pubkey",
        log.pubkey.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stdout(&bad).contains("FAILED: first bad entry: seq 4"),
        "{}",
        stdout(&bad)
    );

    let json: Value = serde_json::from_str(&stdout(&gatehouse(&[
        "audit",
        "verify",
        log.db(),
        "--json",
    ])))
    .unwrap();
    assert_eq!(json["problems"][0]["seq"], 4);
}

#[test]
fn verify_reports_bad_inputs_specifically() {
    let log = populate();
    let dir = tempfile::tempdir().unwrap();
    let missing_cp = gatehouse(&[
        "audit",
        "verify",
        log.db(),
        "--checkpoint",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(missing_cp.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing_cp.stderr).contains("checkpoint file does not exist"));
    let other_key = dir.path().join("other.key");
    let other_pub = NoteSigner::generate("cli-test")
        .unwrap()
        .write_key_files(&other_key)
        .unwrap();
    let wrong = gatehouse(&[
        "audit",
        "verify",
        log.db(),
        "--pubkey",
        other_pub.to_str().unwrap(),
    ]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stdout(&wrong).contains("no signature by cli-test+"),
        "{}",
        stdout(&wrong)
    );
    let text = dir.path().join("a.txt");
    std::fs::write(&text, "hello\n".repeat(100)).unwrap();
    let foreign = gatehouse(&["audit", "verify", text.to_str().unwrap()]);
    assert_eq!(foreign.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&foreign.stderr).contains("not a Gatehouse audit log"));
}

#[test]
fn prove_prints_a_checkable_inclusion_proof() {
    let log = populate();
    let out = gatehouse(&[
        "audit",
        "prove",
        log.db(),
        "--seq",
        "2",
        "--checkpoint",
        log.checkpoints.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let p: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let h = |v: &Value| -> merkle::Hash {
        hex::decode(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let proof: Vec<merkle::Hash> = p["proof"].as_array().unwrap().iter().map(h).collect();
    let leaf = merkle::hash_leaf(p["canonical_entry"].as_str().unwrap().as_bytes());
    assert_eq!(leaf, h(&p["leaf_hash"]));
    merkle::verify_inclusion(
        1,
        p["tree_size"].as_u64().unwrap(),
        &leaf,
        &proof,
        &h(&p["root_hash"]),
    )
    .unwrap();
    assert_eq!(p["tree_size"], 4);

    // Consistency: the first 3 entries (the checkpoint written at 3) are a prefix of the tree of 4.
    let out = gatehouse(&["audit", "prove", log.db(), "--old-size", "3"]);
    assert!(out.status.success(), "{out:?}");
    let c: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let proof: Vec<merkle::Hash> = c["proof"].as_array().unwrap().iter().map(h).collect();
    let stored = gatehouse::audit::read_checkpoint_file(&log.checkpoints).unwrap();
    let at3 = stored.iter().find(|c| c.checkpoint.size == 3).unwrap();
    assert_eq!(h(&c["old_root"]), at3.checkpoint.root);
    merkle::verify_consistency(3, 4, &proof, &at3.checkpoint.root, &h(&c["new_root"])).unwrap();
    assert_eq!(
        gatehouse(&["audit", "prove", log.db()]).status.code(),
        Some(2)
    );
}

#[test]
fn keygen_writes_a_private_key_and_a_verifier_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    let out = gatehouse(&[
        "audit",
        "keygen",
        "--out",
        key.to_str().unwrap(),
        "--name",
        "ops.example.com",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let public = std::fs::read_to_string(Path::new(&format!("{}.pub", key.display()))).unwrap();
    assert!(public.starts_with("ops.example.com+"));
    gatehouse::audit::NoteVerifier::parse(&public).unwrap();
    let again = gatehouse(&["audit", "keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "overwrote an existing key");
}

#[test]
fn tail_follow_prints_new_entries_as_they_are_committed() {
    use std::io::{BufRead, BufReader};
    let log = populate();
    let mut child = Command::new(BIN)
        .args([
            "audit",
            "tail",
            log.db(),
            "-f",
            "-n",
            "1",
            "--interval-ms",
            "50",
            "--format",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let seq_of = |l: String| {
        serde_json::from_str::<Value>(&l).unwrap()["seq"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(seq_of(lines.next().unwrap().unwrap()), 4);
    // The gateway keeps writing while the auditor follows.
    let writer = AuditLog::open(
        &log.db,
        AuditConfig {
            origin: Some("test/cli".into()),
            signing_key: Some(log.pubkey.with_extension("")),
            ..Default::default()
        },
    )
    .unwrap();
    let mut e = NewEntry::new("call", "allow", caller("carol"), json!({}));
    e.tool = Some("fetch".into());
    writer.append_blocking(e).unwrap();
    assert_eq!(seq_of(lines.next().unwrap().unwrap()), 5);
    child.kill().unwrap();
    child.wait().unwrap();
    writer.close().unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `gatehouse audit verify DB ARGS` with `XDG_STATE_HOME` set to `state_home`.
fn verify_with_state_home(state_home: &Path, db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env("XDG_STATE_HOME", state_home)
        .args(["audit", "verify", db.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

/// A log of `entries` entries written with the installation keys in `key_dir` (`None`: the
/// library's old default, unsigned), with origin `origin`.
fn write_log(db: &Path, key_dir: Option<&Path>, origin: &str, entries: usize) {
    let log = AuditLog::open(
        db,
        AuditConfig {
            origin: Some(origin.into()),
            key_dir: key_dir.map(Path::to_owned),
            checkpoint_every: 2,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..entries {
        let mut e = NewEntry::new("call", "allow", caller("alice"), json!({"i": i}));
        e.tool = Some("fetch".into());
        log.append_blocking(e).unwrap();
    }
    log.close().unwrap();
}

#[test]
fn a_fresh_gateway_signs_with_its_own_private_key_kept_apart_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let state_home = dir.path().join("state");
    let db = dir.path().join("audit.db");
    let echo = common::component("echo");
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/policies/allow-all");
    // No --audit-key, no --audit-key-dir: the default state directory is used.
    let out = Command::new(BIN)
        .env("XDG_STATE_HOME", &state_home)
        .args(["call", echo.to_str().unwrap(), "echo(\"x\")"])
        .args(["--policies", policies, "--audit", db.to_str().unwrap()])
        .args(["--cache-dir", dir.path().join("cache").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let keys = state_home.join("gatehouse");
    assert_eq!(mode(&keys), 0o700);
    assert_eq!(mode(&keys.join(CHECKPOINT_KEY)), 0o600);
    assert_eq!(mode(&keys.join(REDACTION_KEY)), 0o600);
    let public = std::fs::read_to_string(keys.join(CHECKPOINT_PUBLIC_KEY)).unwrap();
    let checkpoints = AuditReader::open(&db).unwrap().checkpoints().unwrap();
    assert!(!checkpoints.is_empty());
    for checkpoint in &checkpoints {
        assert!(checkpoint.is_signed(), "{}", checkpoint.note);
    }
    assert!(
        !dir.path().join("audit.db.redaction-key").exists(),
        "the redaction key must not be beside the log"
    );
    let beside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("key"))
        .collect();
    assert!(beside.is_empty(), "key files beside the log: {beside:?}");

    // verify finds the installation's key by itself and says so.
    let checked = verify_with_state_home(&state_home, &db, &[]);
    let text = stdout(&checked);
    assert_eq!(checked.status.code(), Some(0), "{text}");
    let key_id = public.trim().split('+').nth(1).unwrap();
    assert!(
        text.contains(&format!("signatures checked with gatehouse-audit+{key_id}")),
        "{text}"
    );
}

#[test]
fn a_rebuilt_log_fails_verify_once_the_installation_key_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let installation = dir.path().join("installation");
    let genuine = dir.path().join("genuine.db");
    write_log(&genuine, Some(&installation), "test/rebuild", 5);
    // The attacker rebuilds the log consistently: same origin, their own key...
    let forged = dir.path().join("forged.db");
    write_log(
        &forged,
        Some(&dir.path().join("attacker")),
        "test/rebuild",
        4,
    );
    // ...or with no key at all.
    let unsigned = dir.path().join("unsigned.db");
    write_log(&unsigned, None, "test/rebuild", 4);
    let no_state = dir.path().join("no-state");

    for db in [&forged, &unsigned] {
        let consistent = verify_with_state_home(&no_state, db, &[]);
        let text = stdout(&consistent);
        assert_eq!(consistent.status.code(), Some(0), "{text}");
        assert!(
            text.contains("internal consistency only: no key, a rebuilt log would also pass"),
            "{text}"
        );
        let with_key = verify_with_state_home(
            &no_state,
            db,
            &["--key-dir", installation.to_str().unwrap()],
        );
        let text = stdout(&with_key);
        assert_eq!(with_key.status.code(), Some(1), "{text}");
        assert!(
            text.contains("signatures checked with gatehouse-audit+"),
            "{text}"
        );
        assert!(text.contains("FAILED"), "{text}");
    }
    // The default state directory is searched too: $XDG_STATE_HOME/gatehouse.
    let state_home = dir.path().join("state-home");
    std::fs::create_dir(&state_home).unwrap();
    std::fs::rename(&installation, state_home.join("gatehouse")).unwrap();
    assert_eq!(
        verify_with_state_home(&state_home, &forged, &[])
            .status
            .code(),
        Some(1)
    );
    let genuine_ok = verify_with_state_home(&state_home, &genuine, &[]);
    assert_eq!(genuine_ok.status.code(), Some(0), "{}", stdout(&genuine_ok));
    let json: Value =
        serde_json::from_slice(&verify_with_state_home(&state_home, &genuine, &["--json"]).stdout)
            .unwrap();
    assert!(
        json["proved"]
            .as_str()
            .unwrap()
            .starts_with("signatures checked with gatehouse-audit+"),
        "{json}"
    );
}

#[test]
fn a_published_checkpoint_verifies_and_catches_a_truncated_log() {
    let log = populate();
    let out = gatehouse(&["audit", "checkpoint", log.db()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let published = log._dir.path().join("published.note");
    std::fs::write(&published, &out.stdout).unwrap();
    let note = stdout(&out);
    assert!(note.starts_with("test/cli\n4\n"), "{note}");
    assert!(note.contains("\n— cli-test "), "{note}");

    let args = |db: &str| {
        gatehouse(&[
            "audit",
            "verify",
            db,
            "--pubkey",
            log.pubkey.to_str().unwrap(),
            "--checkpoint",
            published.to_str().unwrap(),
        ])
    };
    let ok = args(log.db());
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("the log extends the checkpoints in"));

    // Someone who can write the file drops the last entries and the checkpoints covering them.
    let c = rusqlite::Connection::open(&log.db).unwrap();
    c.execute_batch(
        "DROP TRIGGER entries_no_delete; DROP TRIGGER checkpoints_no_delete;
         DROP TRIGGER entry_blocks_no_delete;
         DELETE FROM entries WHERE seq > 2; DELETE FROM checkpoints WHERE tree_size > 2;
         DELETE FROM entry_blocks WHERE key IN ('bob', 'read-file');",
    )
    .unwrap();
    drop(c);
    let truncated = args(log.db());
    assert_eq!(truncated.status.code(), Some(1), "{}", stdout(&truncated));
    assert!(
        stdout(&truncated).contains("FAILED: first bad entry: seq 3"),
        "{}",
        stdout(&truncated)
    );
}

#[test]
fn a_group_writable_state_directory_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o770)).unwrap();
    let error = AuditLog::open(
        &dir.path().join("audit.db"),
        AuditConfig {
            key_dir: Some(keys.clone()),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains(keys.to_str().unwrap()), "{error}");
    assert!(
        error.contains(&format!("Fix: chmod 700 {}", keys.display())),
        "{error}"
    );
    assert!(!keys.join(CHECKPOINT_KEY).exists());
    // Readable by others is refused as well: the directory holds secrets.
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o750)).unwrap();
    assert!(StateDir::open(&keys).is_err());
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    let state = StateDir::open(&keys).unwrap();
    state.checkpoint_key().unwrap();
    // A private key others may read is not used either.
    let key = keys.join(CHECKPOINT_KEY);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let error = state.checkpoint_key().unwrap_err().to_string();
    assert!(
        error.contains(&format!("Fix: chmod 600 {}", key.display())),
        "{error}"
    );
}

#[test]
fn concurrent_first_starts_end_with_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let start = std::sync::Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let keys = keys.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let state = StateDir::open(&keys).unwrap();
                let signer = state.checkpoint_key().unwrap();
                let redaction = state
                    .redaction_key(&keys.join("no-legacy-key"))
                    .unwrap()
                    .mac(&json!("x"))
                    .unwrap();
                (signer.verifier().to_text(), redaction)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
    let public = std::fs::read_to_string(keys.join(CHECKPOINT_PUBLIC_KEY)).unwrap();
    assert_eq!(public.trim(), results[0].0);
    let mut names: Vec<_> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [CHECKPOINT_KEY, CHECKPOINT_PUBLIC_KEY, REDACTION_KEY]
    );
}

#[test]
fn a_redaction_key_beside_an_old_log_moves_into_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_log(&db, None, "test/legacy", 1);
    let legacy = dir.path().join("audit.db.redaction-key");
    let old_key = std::fs::read_to_string(&legacy).unwrap();
    let keys = dir.path().join("keys");
    write_log(&db, Some(&keys), "test/legacy", 1);
    assert!(!legacy.exists());
    assert_eq!(
        std::fs::read_to_string(keys.join(REDACTION_KEY)).unwrap(),
        old_key
    );
    // Another log's different old key is not silently dropped or preferred.
    let other = dir.path().join("other.db");
    write_log(&other, None, "test/other", 1);
    let error = AuditLog::open(
        &other,
        AuditConfig {
            key_dir: Some(keys.clone()),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("differs from the installation's"), "{error}");
    assert!(dir.path().join("other.db.redaction-key").exists());
}

#[test]
fn gateways_starting_together_for_the_first_time_share_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let state_home = dir.path().join("state");
    let echo = common::component("echo");
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/policies/allow-all");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache");
    let dbs: Vec<PathBuf> = (0..4)
        .map(|i| dir.path().join(format!("audit-{i}.db")))
        .collect();
    let children: Vec<_> = dbs
        .iter()
        .map(|db| {
            Command::new(BIN)
                .env("XDG_STATE_HOME", &state_home)
                .args(["call", echo.to_str().unwrap(), "echo(\"x\")"])
                .args(["--policies", policies, "--audit", db.to_str().unwrap()])
                .args(["--cache-dir", cache.to_str().unwrap()])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let keys = state_home.join("gatehouse");
    let mut names: Vec<_> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [CHECKPOINT_KEY, CHECKPOINT_PUBLIC_KEY, REDACTION_KEY]
    );
    // Every gateway signed with the one key that stayed.
    for db in &dbs {
        let out = verify_with_state_home(&state_home, db, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        assert!(stdout(&out).contains("signatures checked with"));
    }
}

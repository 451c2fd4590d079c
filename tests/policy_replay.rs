//! `gatehouse policy replay` as a real binary over a real audit log: calls made through an
//! in-process gateway (bundled policy, the `echo` and `escape` test components, a local HTTP
//! server), then replayed against the same bundle, a tightened one and broken ones.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gatehouse::audit::{AuditReader, EntryFilter};
use gatehouse::auth::Caller;
use gatehouse::config::{Config, MountConfig};
use gatehouse::gateway::{CallResult, Gateway};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

/// A log of real calls, and the id of each call by a name the tests use.
struct Log {
    dir: tempfile::TempDir,
    calls: BTreeMap<&'static str, String>,
}

impl Log {
    fn db(&self) -> PathBuf {
        self.dir.path().join("audit.db")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("policy-data.json")
    }

    /// `policy replay` of this log with `policies` and the log's own policy data.
    fn replay(&self, policies: &Path, extra: &[&str]) -> Output {
        let mut command = Command::new(BIN);
        command
            .args(["policy", "replay"])
            .arg(self.db())
            .arg("--policies")
            .arg(policies)
            .arg("--data")
            .arg(self.data())
            // A budget no loaded test machine runs out of: a timeout would be a (correct) change.
            .args(["--timeout-ms", "10000"])
            .args(extra)
            .env_remove("RUST_LOG");
        command.output().unwrap()
    }

    /// The JSON report of `replay` (which must succeed).
    fn report(&self, policies: &Path, extra: &[&str]) -> Value {
        let mut args = vec!["--format", "json"];
        args.extend_from_slice(extra);
        let output = self.replay(policies, &args);
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// The time an entry of `call` was recorded (its `call` decision).
    fn time_of(&self, call: &str) -> String {
        entries(
            &self.db(),
            EntryFilter {
                call_id: Some(self.calls[call].clone()),
                phase: Some("call".into()),
                ..Default::default()
            },
        )[0]
        .time
        .clone()
    }
}

fn entries(db: &Path, filter: EntryFilter) -> Vec<gatehouse::audit::Entry> {
    AuditReader::open(db).unwrap().query(&filter).unwrap()
}

/// Makes the calls every test replays, as alice and bob, through the bundled policy; `echo`'s
/// `message` argument is redacted in the log (the policy data names it).
async fn record() -> Log {
    let (server, _hits) = common::counting_server().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("work")).unwrap();
    let data = json!({
        "settings": {"mode": "dev"},
        "principals": {"alice": {"tools": ["*"]}, "bob": {"tools": ["*"]}},
        "fs": {"allowed_prefixes": ["/work"], "writable": ["/work"]},
        "http": {"allowed_domains": ["127.0.0.1"], "allowed_schemes": ["http"], "allowed_classes": ["loopback"]},
        "redact": {"argument_names": ["message", "token"]},
    });
    std::fs::write(root.join("policy-data.json"), data.to_string()).unwrap();
    let mut config = Config::default();
    for name in ["echo", "escape"] {
        config
            .components
            .push(toml::from_str(&format!("path = {:?}", common::component(name))).unwrap());
    }
    config.mounts = vec![MountConfig {
        host: root.join("work"),
        guest: "/work".into(),
        writable: true,
    }];
    config.policy.dir = Some(POLICIES.into());
    config.policy.data = vec![root.join("policy-data.json")];
    config.audit.path = Some(root.join("audit.db"));
    config.audit.key_dir = Some(root.join("state"));
    config.cache.dir = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"));
    let gateway = Gateway::from_config(&config).unwrap();
    let url = format!("http://{server}/hello");
    let plan: [(&'static str, &str, &str, Value); 7] = [
        (
            "alice-echo",
            "alice",
            "echo_echo",
            json!({"message": "hello"}),
        ),
        ("bob-echo", "bob", "echo_echo", json!({"message": "hi"})),
        (
            "alice-write",
            "alice",
            "escape_write-readonly",
            json!({"path": "/work/a.txt"}),
        ),
        (
            "bob-write",
            "bob",
            "escape_write-readonly",
            json!({"path": "/work/b.txt"}),
        ),
        ("alice-get", "alice", "escape_http-get", json!({"url": url})),
        ("bob-lookup", "bob", "echo_fetch", json!({"key": "alpha"})),
        (
            "carol-echo",
            "carol",
            "echo_echo",
            json!({"message": "let me in"}),
        ),
    ];
    let mut calls = BTreeMap::new();
    for (name, principal, tool, arguments) in plan {
        let Value::Object(arguments) = arguments else {
            unreachable!()
        };
        let answer = gateway
            .call(&Caller::operator(principal), tool, Some(arguments))
            .await;
        let denied = principal == "carol";
        assert_eq!(
            matches!(answer, CallResult::Denied { .. }),
            denied,
            "{name}: {answer:?}"
        );
        let newest = entries(
            &root.join("audit.db"),
            EntryFilter {
                phase: Some("call".into()),
                newest_first: true,
                limit: Some(1),
                ..Default::default()
            },
        );
        calls.insert(name, newest[0].call_id.clone().unwrap());
    }
    gateway.audit().close().unwrap();
    Log { dir, calls }
}

/// A copy of the bundled policy with `files` added (or, with empty contents, removed).
fn bundle_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(POLICIES).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    for (name, contents) in files {
        let path = dir.path().join(name);
        if contents.is_empty() {
            std::fs::remove_file(path).unwrap();
        } else {
            std::fs::write(path, contents).unwrap();
        }
    }
    dir
}

/// Tightens one rule: bob may no longer write files.
const NO_WRITES_FOR_BOB: &str = "package gatehouse.fs\n\n\
    deny contains \"bob may not write files\" if {\n\
    \tinput.caller.principal == \"bob\"\n\
    \tinput.fs.access == \"write\"\n}\n";

fn changes(report: &Value) -> Vec<(String, String, String)> {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["call_id"].as_str().unwrap().to_owned(),
                c["phase"].as_str().unwrap().to_owned(),
                c["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tightened_rule_shows_exactly_the_calls_it_affects() {
    let log = record().await;
    let db = log.db();
    let before = (
        std::fs::read(&db).unwrap(),
        std::fs::metadata(&db).unwrap().modified().unwrap(),
    );

    // The bundle that made the decisions changes none of them.
    let same = log.report(Path::new(POLICIES), &["--fail-on-change"]);
    assert_eq!(changes(&same), [], "{same:#}");
    // Every policy decision of the log is replayed, and only those.
    let decisions = entries(&db, EntryFilter::default())
        .iter()
        .filter(|e| {
            ["call", "http", "fs", "socket", "config", "result"].contains(&e.phase.as_str())
        })
        .count() as u64;
    let expected = 7 + 6 + 2 + 1; // 7 calls, 6 results, 2 writes, 1 request
    assert!(decisions >= expected, "{decisions} decisions");
    assert_eq!(same["replayed"], decisions, "{same:#}");
    assert_eq!(same["unchanged"], same["replayed"]);
    // Each echo call's message was redacted, and every result's value is.
    assert!(same["redacted"].as_u64().unwrap() >= 3 + 6, "{same:#}");
    let text = log.replay(Path::new(POLICIES), &["--fail-on-change"]);
    assert_eq!(text.status.code(), Some(0), "{text:?}");
    assert!(
        stdout(&text).contains("no decision would change"),
        "{}",
        stdout(&text)
    );

    let tightened = bundle_with(&[("fs_tightened.rego", NO_WRITES_FOR_BOB)]);
    let report = log.report(tightened.path(), &[]);
    let bob_write = log.calls["bob-write"].clone();
    assert_eq!(
        changes(&report),
        [(bob_write.clone(), "fs".into(), "allow_to_deny".into())],
        "{report:#}"
    );
    let change = &report["changes"][0];
    assert_eq!(change["tool"], "escape_write-readonly");
    assert_eq!(change["principal"], "bob");
    assert_eq!(change["recorded_verdict"], "allow");
    assert_eq!(change["replayed_verdict"], "deny");
    assert_eq!(
        change["replayed_reasons"],
        json!(["bob may not write files"])
    );
    assert_eq!(change["redacted"], false);
    assert_eq!(report["changed"]["allow_to_deny"], 1);
    assert_eq!(
        report["by_tool"]["escape_write-readonly"]["allow_to_deny"],
        1
    );
    assert_eq!(report["by_caller"]["bob"]["allow_to_deny"], 1);
    assert_eq!(report["by_caller"].as_object().unwrap().len(), 1);

    // The gate: a change fails the run; the table names the call.
    let gate = log.replay(tightened.path(), &["--fail-on-change"]);
    assert_eq!(gate.status.code(), Some(1), "{gate:?}");
    let table = stdout(&gate);
    assert!(table.contains(&bob_write), "{table}");
    assert!(
        table.contains("allow→deny") && table.contains("bob may not write files"),
        "{table}"
    );
    assert!(
        table.contains("changes by tool:") && table.contains("changes by caller:"),
        "{table}"
    );

    // Filters: only the phase that changed shows it; only the entries since a time are read.
    let fs_only = log.report(tightened.path(), &["--phase", "fs"]);
    assert_eq!(changes(&fs_only).len(), 1);
    let calls_only = log.replay(tightened.path(), &["--phase", "call", "--fail-on-change"]);
    assert_eq!(calls_only.status.code(), Some(0), "{calls_only:?}");
    let since_bob = log.time_of("bob-write");
    let since = log.report(tightened.path(), &["--since", &since_bob]);
    assert_eq!(changes(&since).len(), 1, "{since:#}");
    assert!(since["replayed"].as_u64() < same["replayed"].as_u64());
    let later = log.time_of("alice-get");
    let after = log.report(tightened.path(), &["--since", &later, "--fail-on-change"]);
    assert_eq!(changes(&after), []);
    let recent = log.report(tightened.path(), &["--since", "1h"]);
    assert_eq!(recent["replayed"], same["replayed"]);

    // Replay never wrote to the log.
    let after_all = (
        std::fs::read(&db).unwrap(),
        std::fs::metadata(&db).unwrap().modified().unwrap(),
    );
    assert!(before == after_all, "the log file changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redacted_input_is_reported_as_may_differ() {
    let log = record().await;
    // The recorded message is a keyed digest: the rule sees an object, not the text.
    let no_messages = bundle_with(&[(
        "call_tightened.rego",
        "package gatehouse.call\n\ndeny contains \"messages are not accepted\" if input.arguments.message\n",
    )]);
    let report = log.report(no_messages.path(), &["--phase", "call"]);
    let expected: Vec<(String, String, String)> = ["alice-echo", "bob-echo"]
        .iter()
        .map(|name| {
            (
                log.calls[name].clone(),
                "call".into(),
                "allow_to_deny".into(),
            )
        })
        .chain(std::iter::once((
            log.calls["carol-echo"].clone(),
            "call".into(),
            "reasons_changed".into(),
        )))
        .collect();
    let mut found = changes(&report);
    found.sort_by_key(|c| c.0.clone());
    let mut expected = expected;
    expected.sort_by_key(|c| c.0.clone());
    assert_eq!(found, expected, "{report:#}");
    assert!(
        report["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["redacted"] == true)
    );
    let table = stdout(&log.replay(no_messages.path(), &["--phase", "call"]));
    assert_eq!(table.matches("redacted: may differ").count(), 4, "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_phase_the_bundle_does_not_define_is_reported() {
    let log = record().await;
    let without_fs = bundle_with(&[("fs.rego", ""), ("fs_test.rego", "")]);
    let report = log.report(without_fs.path(), &[]);
    assert_eq!(report["phases_undefined"]["fs"], 2, "{report:#}");
    let mut found = changes(&report);
    found.sort();
    let mut expected = vec![
        (
            log.calls["alice-write"].clone(),
            "fs".to_owned(),
            "allow_to_deny".to_owned(),
        ),
        (
            log.calls["bob-write"].clone(),
            "fs".to_owned(),
            "allow_to_deny".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(found, expected);
    let table = stdout(&log.replay(without_fs.path(), &[]));
    assert!(
        table.contains("the bundle has no gatehouse.fs package: 2 fs decisions; the gateway would deny them all"),
        "{table}"
    );
    assert!(table.contains("no gatehouse.fs package]"), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_broken_bundle_or_log_is_a_clear_error() {
    let log = record().await;
    let missing = log.dir.path().join("no-such-bundle");
    let output = log.replay(&missing, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no-such-bundle"),
        "{}",
        stderr(&output)
    );

    let broken = bundle_with(&[("call_broken.rego", "package gatehouse.call\n\nallow if {\n")]);
    let output = log.replay(broken.path(), &[]);
    assert_eq!(output.status.code(), Some(2));
    let error = stderr(&output);
    assert!(
        error.contains("invalid Rego") && error.contains("call_broken.rego"),
        "{error}"
    );

    let output = Command::new(BIN)
        .args([
            "policy",
            "replay",
            "/nonexistent/audit.db",
            "--policies",
            POLICIES,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("/nonexistent/audit.db: audit log does not exist"),
        "{}",
        stderr(&output)
    );
    let text_file = log.dir.path().join("notes.db");
    std::fs::write(&text_file, "not a database at all, just some text").unwrap();
    let output = Command::new(BIN)
        .args(["policy", "replay"])
        .arg(&text_file)
        .args(["--policies", POLICIES])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("notes.db"), "{}", stderr(&output));
}

//! Failing closed while serving: when the audit log cannot record a step of a call, the step
//! does not happen or its answer is withheld. The gateway is real (bundled policy, the `escape`
//! test component, a real SQLite log); only recording is made to fail, by a sink wrapping that
//! log that refuses the entries of chosen phases — either at once (the entry cannot be queued)
//! or at its commit (queued, then never written).

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gatehouse::audit::{
    AuditError, AuditLog, AuditReader, AuditSink, EntryFilter, NewEntry, PendingAppend,
    VerifyOptions, read_checkpoint_file, verify,
};
use gatehouse::auth::Caller;
use gatehouse::config::{Config, MountConfig};
use gatehouse::gateway::{CallResult, Gateway};
use serde_json::{Value, json};

/// Where recording an entry fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `submit` refuses the entry: it is never queued.
    Submit,
    /// `submit` accepts it, its commit fails: it is never written.
    Commit,
}

/// The real log, with a switch that makes the entries of one phase fail.
struct SwitchedSink {
    log: AuditLog,
    failing: Mutex<Option<(&'static str, Stage)>>,
    refused: AtomicUsize,
}

impl SwitchedSink {
    fn fail(&self, phase: &'static str, stage: Stage) {
        *self.failing.lock().unwrap() = Some((phase, stage));
    }

    fn heal(&self) {
        *self.failing.lock().unwrap() = None;
    }

    /// The error a full disk gives: what the agent must be told about.
    fn disk_full(&self) -> AuditError {
        self.refused.fetch_add(1, Ordering::SeqCst);
        AuditError::DiskFull {
            path: self.log.path(),
        }
    }
}

impl AuditSink for SwitchedSink {
    fn submit(&self, entry: NewEntry) -> Result<PendingAppend, AuditError> {
        let failing = *self.failing.lock().unwrap();
        match failing {
            Some((phase, Stage::Submit)) if entry.phase == phase => Err(self.disk_full()),
            Some((phase, Stage::Commit)) if entry.phase == phase => {
                Ok(PendingAppend::failed(self.disk_full()))
            }
            _ => self.log.submit(entry),
        }
    }
}

/// A gateway over the `escape` component with `/work` (read-write) mounted, a policy that
/// allows every call, writes under `/work` and plain HTTP to 127.0.0.1, and its call pipeline
/// recording through a [`SwitchedSink`].
struct Served {
    dir: tempfile::TempDir,
    gateway: Gateway,
    sink: Arc<SwitchedSink>,
}

impl Served {
    fn new() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("work")).unwrap();
        let data = json!({
            "settings": {"mode": "dev"},
            "principals": {"local": {"tools": ["*"]}},
            "fs": {"allowed_prefixes": ["/work"], "writable": ["/work"]},
            "http": {"allowed_domains": ["127.0.0.1"], "allowed_schemes": ["http"], "allowed_classes": ["loopback"]},
        });
        std::fs::write(root.join("policy-data.json"), data.to_string()).unwrap();
        let mut config = Config::default();
        config
            .components
            .push(toml::from_str(&format!("path = {:?}", common::component("escape"))).unwrap());
        config.mounts = vec![MountConfig {
            host: root.join("work"),
            guest: "/work".into(),
            writable: true,
        }];
        config.policy.dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"));
        config.policy.data = vec![root.join("policy-data.json")];
        config.audit.path = Some(root.join("audit.db"));
        config.cache.dir = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"));
        let gateway = Gateway::from_config(&config).unwrap();
        let sink = Arc::new(SwitchedSink {
            log: gateway.audit().clone(),
            failing: Mutex::new(None),
            refused: AtomicUsize::new(0),
        });
        let gateway = gateway.with_audit_sink(sink.clone());
        Served { dir, gateway, sink }
    }

    fn work(&self, name: &str) -> PathBuf {
        self.dir.path().join("work").join(name)
    }

    async fn call(&self, tool: &str, arguments: Value) -> CallResult {
        let Value::Object(arguments) = arguments else {
            panic!("arguments must be an object")
        };
        self.gateway.call(&caller(), tool, Some(arguments)).await
    }

    /// Writes `/work/<name>` through the tool.
    async fn write(&self, name: &str) -> CallResult {
        self.call(
            "escape_write-readonly",
            json!({"path": format!("/work/{name}")}),
        )
        .await
    }

    /// The phases recorded so far, in order, leaving out the component's load (`supply`).
    fn phases(&self) -> Vec<String> {
        AuditReader::open(&self.dir.path().join("audit.db"))
            .unwrap()
            .query(&EntryFilter::default())
            .unwrap()
            .into_iter()
            .map(|e| e.phase)
            .filter(|phase| phase != "supply")
            .collect()
    }

    /// With recording working again, a call is served and recorded as usual, and the log
    /// verifies intact with the library's verifier, against its checkpoint file too.
    async fn serves_again_and_log_is_intact(self) {
        self.sink.heal();
        let before = self.phases().len();
        let answer = self.write("after.txt").await;
        assert!(
            matches!(&answer, CallResult::Completed { text, .. } if text.starts_with("succeeded: ")),
            "{answer:?}"
        );
        assert!(self.work("after.txt").is_file());
        assert_eq!(
            self.phases()[before..],
            ["call", "fs", "result", "outcome"],
            "the call after recovery is recorded in full"
        );
        self.gateway.audit().close().unwrap();
        let db = self.dir.path().join("audit.db");
        let external = gatehouse::audit::default_checkpoint_file(&db);
        let checkpoints = read_checkpoint_file(&external).unwrap();
        let report = verify(
            &AuditReader::open(&db).unwrap(),
            &VerifyOptions {
                pubkey: None,
                external: Some((external, checkpoints)),
            },
        )
        .unwrap();
        assert!(report.is_intact(), "{:?}", report.problems);
    }
}

fn caller() -> Caller {
    Caller::operator("local")
}

/// Asserts the answer is withheld with an error naming the audit failure, and that the agent
/// gets it as a tool error.
fn assert_withheld(answer: CallResult, because: &str) {
    let CallResult::Unrecorded(reason) = &answer else {
        panic!("expected the answer withheld ({because}), got {answer:?}");
    };
    assert!(
        reason.contains(because) && reason.contains("disk full"),
        "{reason}"
    );
    let mcp = gatehouse::mcp::to_mcp_result(answer).unwrap();
    assert_eq!(mcp.is_error, Some(true));
    let shown = serde_json::to_string(&mcp.content).unwrap();
    assert!(shown.contains("the audit log cannot record"), "{shown}");
    // Not a policy's verdict: the agent is not told the policy denied it.
    assert!(!shown.contains("denied by policy"), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_whose_verdict_cannot_be_committed_never_runs() {
    let served = Served::new();
    for stage in [Stage::Submit, Stage::Commit] {
        served.sink.fail("call", stage);
        let name = format!("{stage:?}.txt");
        let answer = served.write(&name).await;
        assert!(!served.work(&name).exists(), "{stage:?}: the tool ran");
        assert_withheld(answer, "calls are refused until it can");
    }
    assert_eq!(served.sink.refused.load(Ordering::SeqCst), 2);
    // Nothing of either call reached the log: no verdict, no decision, no outcome.
    assert!(served.phases().is_empty(), "{:?}", served.phases());
    served.serves_again_and_log_is_intact().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_decision_that_cannot_be_queued_denies_the_write_and_withholds_the_answer() {
    let served = Served::new();
    served.sink.fail("fs", Stage::Submit);
    let answer = served.write("denied.txt").await;
    assert!(!served.work("denied.txt").exists(), "the write happened");
    assert_withheld(answer, "cannot record what this call did");
    assert_eq!(served.sink.refused.load(Ordering::SeqCst), 1);
    // The call and its outcome are recorded; the decision that could not be is not.
    assert_eq!(served.phases(), ["call", "result", "outcome"]);
    served.serves_again_and_log_is_intact().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_decision_that_cannot_be_queued_sends_nothing_and_withholds_the_answer() {
    let (server, hits) = common::counting_server().await;
    let served = Served::new();
    served.sink.fail("http", Stage::Submit);
    let answer = served
        .call(
            "escape_http-get",
            json!({"url": format!("http://{server}/hello")}),
        )
        .await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the request was sent");
    assert_withheld(answer, "cannot record what this call did");
    // The control: recorded, the same request goes out.
    served.sink.heal();
    let answer = served
        .call(
            "escape_http-get",
            json!({"url": format!("http://{server}/hello")}),
        )
        .await;
    assert!(
        matches!(&answer, CallResult::Completed { text, .. } if text == "succeeded: status 200, 2 body bytes"),
        "{answer:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    served.serves_again_and_log_is_intact().await;
}

/// In-flight records are queued without waiting for the disk (`src/gateway/inflight.rs`): one
/// whose commit fails cannot stop the action it describes, which already happened, but the
/// agent must not be answered.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_decision_that_fails_to_commit_withholds_the_answer() {
    let served = Served::new();
    served.sink.fail("fs", Stage::Commit);
    let answer = served.write("written.txt").await;
    assert!(served.work("written.txt").is_file());
    assert_withheld(answer, "cannot record this call");
    assert_eq!(served.phases(), ["call", "result", "outcome"]);
    served.serves_again_and_log_is_intact().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_decision_that_cannot_be_recorded_withholds_the_result() {
    let served = Served::new();
    for stage in [Stage::Submit, Stage::Commit] {
        served.sink.fail("result", stage);
        let answer = served.write(&format!("{stage:?}.txt")).await;
        assert_withheld(answer, "cannot record the result decision");
    }
    // The tool ran both times (its records are kept); only the result went unrecorded.
    assert_eq!(
        served.phases(),
        ["call", "fs", "outcome", "call", "fs", "outcome"]
    );
    served.serves_again_and_log_is_intact().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outcome_that_cannot_be_committed_withholds_the_answer() {
    let served = Served::new();
    for stage in [Stage::Submit, Stage::Commit] {
        served.sink.fail("outcome", stage);
        let answer = served.write(&format!("{stage:?}.txt")).await;
        assert_withheld(answer, "cannot record this call");
    }
    assert_eq!(
        served.phases(),
        ["call", "fs", "result", "call", "fs", "result"]
    );
    served.serves_again_and_log_is_intact().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_that_cannot_be_recorded_shows_nothing() {
    let served = Served::new();
    assert!(
        !served
            .gateway
            .tools(&caller(), &served.gateway.open_session())
            .await
            .is_empty()
    );
    served.sink.fail("list", Stage::Commit);
    assert!(
        served
            .gateway
            .tools(&caller(), &served.gateway.open_session())
            .await
            .is_empty()
    );
    served.serves_again_and_log_is_intact().await;
}

//! The gateway's Prometheus metrics after a known sequence of calls through the real gateway
//! (the `echo`, `misbehave` and `files` test components, a Rego bundle written by the test, a
//! real audit log): exact counts per tool, verdict and outcome; decisions that agree with the
//! audit log's entries; limits, traps and reloads; and no label made of a name a caller chose.
//! The endpoint itself is checked over a real socket: `GET /metrics` on its own listener.

mod common;

use std::path::Path;

use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse::audit::{AuditReader, EntryFilter};
use gatehouse::auth::{ApiKeyConfig, Caller};
use gatehouse::config::{Config, MountConfig};
use gatehouse::gateway::{CallResult, Gateway};
use gatehouse::mcp::http::HttpOptions;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Every call is allowed but `echo_fetch`; principal `bob` may make one call a minute.
const CALL: &str = r#"package gatehouse.call

default allow := false

allow if input.tool.name != "echo_fetch"

deny contains "echo_fetch is not for anyone" if input.tool.name == "echo_fetch"

limits := {"calls_per_minute": 1} if input.caller.principal == "bob"
"#;

/// Reads under `/data/open` only.
const FS: &str = r#"package gatehouse.fs

default allow := false

allow if startswith(input.fs.path, "/data/open")
"#;

const RESULT: &str = r#"package gatehouse.result

default allow := true
"#;

const LIST: &str = r#"package gatehouse.list

default allow := true
"#;

/// A name no catalog has, which must never become a label.
const MADE_UP: &str = "made-up-tool-7f3a9c";

struct Gate {
    dir: tempfile::TempDir,
    gateway: Gateway,
}

impl Gate {
    fn new() -> Gate {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("policies");
        std::fs::create_dir(&bundle).unwrap();
        for (file, text) in [
            ("call.rego", CALL),
            ("fs.rego", FS),
            ("result.rego", RESULT),
            ("list.rego", LIST),
        ] {
            std::fs::write(bundle.join(file), text).unwrap();
        }
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("open")).unwrap();
        std::fs::create_dir_all(data.join("closed")).unwrap();
        std::fs::write(data.join("open/note.txt"), "hello").unwrap();
        std::fs::write(data.join("closed/secret.txt"), "no").unwrap();

        let mut config = Config::default();
        for name in ["echo", "misbehave", "files"] {
            config
                .components
                .push(toml::from_str(&format!("path = {:?}", common::component(name))).unwrap());
        }
        config.mounts = vec![MountConfig {
            host: data,
            guest: "/data".into(),
            writable: false,
        }];
        config.policy.dir = Some(bundle);
        config.audit.path = Some(dir.path().join("audit.db"));
        config.cache.dir = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"));
        let gateway = Gateway::from_config(&config).unwrap();
        Gate { dir, gateway }
    }

    async fn call(&self, principal: &str, tool: &str, arguments: Value) -> CallResult {
        let caller = Caller::operator(principal);
        let Value::Object(arguments) = arguments else {
            panic!("arguments must be an object")
        };
        self.gateway.call(&caller, tool, Some(arguments)).await
    }

    /// How many audit entries have this phase and verdict.
    fn entries(&self, phase: &str, verdict: &str) -> u64 {
        let filter = EntryFilter {
            phase: Some(phase.into()),
            verdict: Some(verdict.into()),
            ..EntryFilter::default()
        };
        AuditReader::open(&self.dir.path().join("audit.db"))
            .unwrap()
            .query(&filter)
            .unwrap()
            .len() as u64
    }
}

/// The value of the sample `series` (name and labels exactly as exposed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_after_a_known_sequence_of_calls() {
    let gate = Gate::new();
    let ok = |result: CallResult| {
        assert!(
            matches!(
                result,
                CallResult::Completed {
                    is_error: false,
                    ..
                }
            ),
            "{result:?}"
        )
    };
    ok(gate
        .call("alice", "echo_echo", json!({"message": "one"}))
        .await);
    ok(gate
        .call("alice", "echo_echo", json!({"message": "two"}))
        .await);
    let denied = gate
        .call("alice", "echo_fetch", json!({"key": "alpha"}))
        .await;
    assert!(matches!(denied, CallResult::Denied { .. }), "{denied:?}");
    let trapped = gate.call("alice", "misbehave_trap", json!({})).await;
    assert!(matches!(trapped, CallResult::Failed(_)), "{trapped:?}");
    let unknown = gate.call("alice", MADE_UP, json!({})).await;
    assert!(matches!(unknown, CallResult::UnknownTool(_)), "{unknown:?}");
    ok(gate.call("bob", "misbehave_ok", json!({})).await);
    let limited = gate.call("bob", "misbehave_ok", json!({})).await;
    assert!(matches!(limited, CallResult::Failed(_)), "{limited:?}");
    // The tool reports a denied read in its own words: a completed call with `err`.
    gate.call(
        "alice",
        "files_read-file",
        json!({"path": "/data/open/note.txt"}),
    )
    .await;
    gate.call(
        "alice",
        "files_read-file",
        json!({"path": "/data/closed/secret.txt"}),
    )
    .await;

    let text = gate.gateway.metrics().encode();
    let calls = |tool: &str, verdict: &str, outcome: &str| {
        sample(
            &text,
            &format!(
                r#"gatehouse_calls_total{{tool="{tool}",verdict="{verdict}",outcome="{outcome}"}}"#
            ),
        )
    };
    assert_eq!(calls("echo_echo", "allow", "ok"), Some(2.0));
    assert_eq!(calls("echo_fetch", "deny", "denied"), Some(1.0));
    assert_eq!(calls("misbehave_trap", "allow", "trap"), Some(1.0));
    assert_eq!(calls("(unknown)", "none", "unknown_tool"), Some(1.0));
    assert_eq!(calls("misbehave_ok", "allow", "ok"), Some(1.0));
    assert_eq!(calls("misbehave_ok", "deny", "limit"), Some(1.0));
    let calls_total: f64 = text
        .lines()
        .filter(|l| l.starts_with("gatehouse_calls_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(calls_total, 9.0, "{text}");
    assert!(
        !text.contains(MADE_UP),
        "a requested name became a label:\n{text}"
    );

    // Every call-, fs- and result-phase verdict is one audit entry, and counted once.
    for phase in ["call", "fs", "result"] {
        for verdict in ["allow", "deny"] {
            let series =
                format!(r#"gatehouse_decisions_total{{phase="{phase}",verdict="{verdict}"}}"#);
            let counted = sample(&text, &series).unwrap_or(0.0);
            assert_eq!(
                counted,
                gate.entries(phase, verdict) as f64,
                "{series} disagrees with the audit log"
            );
        }
    }
    assert_eq!(
        value(
            &text,
            r#"gatehouse_decisions_total{phase="call",verdict="deny"}"#
        ),
        2.0
    );
    assert!(
        value(
            &text,
            r#"gatehouse_decisions_total{phase="fs",verdict="deny"}"#
        ) >= 1.0
    );
    assert_eq!(
        value(
            &text,
            r#"gatehouse_denials_total{phase="call",tool="echo_fetch"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"gatehouse_denials_total{phase="call",tool="misbehave_ok"}"#
        ),
        1.0
    );
    assert!(
        value(
            &text,
            r#"gatehouse_denials_total{phase="fs",tool="files_read-file"}"#
        ) >= 1.0
    );
    assert_eq!(
        value(
            &text,
            r#"gatehouse_policy_evaluation_seconds_count{phase="call"}"#
        ),
        8.0
    );
    assert_eq!(
        value(&text, r#"gatehouse_limits_hit_total{kind="rate"}"#),
        1.0
    );
    assert_eq!(value(&text, "gatehouse_rate_limited_calls_total"), 1.0);
    assert_eq!(value(&text, "gatehouse_traps_total"), 1.0);
    assert_eq!(value(&text, "gatehouse_calls_in_flight"), 0.0);
    assert_eq!(
        value(
            &text,
            r#"gatehouse_call_duration_seconds_count{tool="echo_echo"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            r#"gatehouse_tool_run_seconds_count{tool="echo_echo"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            r#"gatehouse_tool_run_seconds_count{tool="echo_fetch"}"#
        ),
        None,
        "a denied call never ran"
    );

    // The catalog, the bundle's revision, the audit writer.
    let catalog = gate.gateway.catalog();
    assert_eq!(value(&text, "gatehouse_components_loaded"), 3.0);
    assert_eq!(
        value(&text, "gatehouse_tools_served"),
        catalog.tools.len() as f64
    );
    let revision = gate.gateway.policy().revision();
    assert_eq!(
        value(
            &text,
            &format!(r#"gatehouse_policy_revision_info{{revision="{revision}"}}"#)
        ),
        1.0
    );
    let reader = AuditReader::open(&gate.dir.path().join("audit.db")).unwrap();
    let all = reader.query(&EntryFilter::default()).unwrap().len() as f64;
    assert_eq!(value(&text, "gatehouse_audit_batch_entries_sum"), all);
    assert!(value(&text, "gatehouse_audit_commit_seconds_count") >= 1.0);
    assert!(value(&text, "gatehouse_audit_entries_since_checkpoint") <= all);
    assert_eq!(value(&text, "gatehouse_audit_queue_depth"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn reloads_are_counted_and_the_revision_follows() {
    let gate = Gate::new();
    let before = gate.gateway.policy().revision();
    let bundle = gate.dir.path().join("policies");
    std::fs::write(bundle.join("list.rego"), format!("{LIST}\n# changed\n")).unwrap();
    let after = gate.gateway.policy().reload().unwrap();
    assert_ne!(before, after);
    std::fs::write(
        bundle.join("broken.rego"),
        "package gatehouse.call\n\nallow if {\n",
    )
    .unwrap();
    assert!(gate.gateway.policy().reload().is_err());

    let text = gate.gateway.metrics().encode();
    assert_eq!(
        value(
            &text,
            r#"gatehouse_reloads_total{what="policy",result="ok"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"gatehouse_reloads_total{what="policy",result="failed"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"gatehouse_policy_revision_info{{revision="{after}"}}"#)
        ),
        1.0
    );
    assert!(
        !text.contains(&before),
        "the replaced revision is still exposed"
    );
}

/// `GET /metrics` on a listener of its own, read over a real socket as a scraper does.
#[tokio::test(flavor = "multi_thread")]
async fn the_own_listener_serves_the_text_format() {
    let gate = Gate::new();
    gate.call("alice", "echo_echo", json!({"message": "hi"}))
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(gatehouse::telemetry::endpoint::serve(
        gate.gateway.metrics().clone(),
        listener,
        shutdown.clone(),
    ));
    let response = get(addr, "/metrics", &format!("Host: {addr}")).await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        body.contains(r#"gatehouse_calls_total{tool="echo_echo",verdict="allow",outcome="ok"} 1"#),
        "{body}"
    );
    assert!(
        get(addr, "/mcp", &format!("Host: {addr}"))
            .await
            .starts_with("HTTP/1.1 404")
    );
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

/// A request as a scraper sends it, with `headers` (CRLF-separated lines); the whole response.
async fn get(addr: SocketAddr, path: &str, headers: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\n{headers}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

const API_KEY: &str = "metrics-test-key";

/// A gateway's MCP listener with `/metrics`, which asks for a credential when `auth` is set;
/// its address, its shutdown, and the directory it keeps its files in.
async fn mcp_listener(auth: bool) -> (SocketAddr, CancellationToken, tempfile::TempDir) {
    let Gate { dir, gateway } = Gate::new();
    let gateway = Arc::new(gateway);
    let options = HttpOptions {
        extra_hosts: Vec::new(),
        api_keys: vec![ApiKeyConfig {
            principal: "scraper".into(),
            key_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(API_KEY)),
        }],
        allow_anonymous: true,
        jwt: None,
        max_argument_bytes: 1 << 20,
        metrics: Some(gateway.metrics().clone()),
        metrics_auth: auth,
        ui: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(gatehouse::mcp::http::serve(
        gateway,
        listener,
        options,
        shutdown.clone(),
    ));
    (addr, shutdown, dir)
}

fn status(response: &str) -> &str {
    response.get(9..12).unwrap_or(response)
}

/// Served beside `/mcp` without a login, but only to a `Host` the listener answers to.
#[tokio::test(flavor = "multi_thread")]
async fn the_mcp_listener_serves_it_behind_the_host_check() {
    let (addr, shutdown, _dir) = mcp_listener(false).await;
    let own = format!("Host: {addr}");
    assert_eq!(status(&get(addr, "/metrics", &own).await), "200");
    let localhost = format!("Host: localhost:{}", addr.port());
    assert_eq!(status(&get(addr, "/metrics", &localhost).await), "200");
    let rebound = get(addr, "/metrics", "Host: attacker.example").await;
    assert_eq!(status(&rebound), "403", "{rebound}");
    assert!(!rebound.contains("gatehouse_"), "{rebound}");
    shutdown.cancel();
}

/// `[metrics] auth = true`: a key or JWT, never anonymous; a wrong key is refused like one.
#[tokio::test(flavor = "multi_thread")]
async fn with_auth_it_needs_a_credential() {
    let (addr, shutdown, _dir) = mcp_listener(true).await;
    let own = format!("Host: {addr}");
    let anonymous = get(addr, "/metrics", &own).await;
    assert_eq!(status(&anonymous), "401", "{anonymous}");
    assert!(!anonymous.contains("gatehouse_calls"), "{anonymous}");
    let wrong = get(
        addr,
        "/metrics",
        &format!("{own}\r\nAuthorization: Bearer nope"),
    )
    .await;
    assert_eq!(status(&wrong), "401", "{wrong}");
    let keyed = get(
        addr,
        "/metrics",
        &format!("{own}\r\nAuthorization: Bearer {API_KEY}"),
    )
    .await;
    assert_eq!(status(&keyed), "200", "{keyed}");
    assert!(keyed.contains("gatehouse_calls_in_flight 0"), "{keyed}");
    shutdown.cancel();
}

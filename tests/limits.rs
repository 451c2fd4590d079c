//! Limits the policy can set and limits per caller, through the real gateway: the `misbehave`
//! and `escape` test components, a Rego bundle written by each test, a real audit log.
//!
//! - A policy's `limits` obligation tightens each configured per-call limit (time, memory, fuel,
//!   outgoing requests, result size) and never loosens one; a fuel limit the engine cannot
//!   meter denies the call.
//! - `limits.calls_per_minute_per_principal` (tightened by the policy's `calls_per_minute`) and
//!   `limits.max_concurrent_per_principal` refuse a principal's call over them at once, naming
//!   the limit, and record it as a denied call. The rate tests step the gateway's clock by hand
//!   and the concurrency tests hold a call inside a local HTTP server until the test releases
//!   it, so nothing here depends on how fast the machine is.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse::audit::{AuditReader, Entry, EntryFilter};
use gatehouse::auth::Caller;
use gatehouse::config::Config;
use gatehouse::gateway::{CallResult, Gateway};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// A gateway over `misbehave` and `escape` whose bundle allows every call and every outgoing
/// request, and whose `limits` obligation for a principal is `obligations[principal]` (none for
/// a principal not listed).
struct Gate {
    dir: tempfile::TempDir,
    gateway: Gateway,
}

const BUNDLE_CALL: &str = r#"package gatehouse.call

default allow := true

limits := data.obligations[input.caller.principal]
"#;

const BUNDLE_HTTP: &str = r#"package gatehouse.http

default allow := true
"#;

impl Gate {
    fn new(obligations: Value, tweak: impl FnOnce(&mut Config)) -> Gate {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("policies");
        std::fs::create_dir(&bundle).unwrap();
        std::fs::write(bundle.join("call.rego"), BUNDLE_CALL).unwrap();
        std::fs::write(bundle.join("http.rego"), BUNDLE_HTTP).unwrap();
        std::fs::write(
            bundle.join("data.json"),
            json!({ "obligations": obligations }).to_string(),
        )
        .unwrap();
        Gate::with_policy(dir, |config| {
            config.policy.dir = Some(bundle);
            tweak(config);
        })
    }

    /// A gateway whose audit log is in `dir` and whose policy `configure` sets.
    fn with_policy(dir: tempfile::TempDir, configure: impl FnOnce(&mut Config)) -> Gate {
        let mut config = Config::default();
        for name in ["misbehave", "escape"] {
            config
                .components
                .push(toml::from_str(&format!("path = {:?}", common::component(name))).unwrap());
        }
        config.audit.path = Some(dir.path().join("audit.db"));
        config.cache.dir = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"));
        configure(&mut config);
        let gateway = Gateway::from_config(&config).unwrap();
        Gate { dir, gateway }
    }

    /// Gives the gateway's admission a clock that moves only when the test moves it.
    fn stop_the_clock(&self) -> Arc<Mutex<Instant>> {
        let now = Arc::new(Mutex::new(Instant::now()));
        let clock = now.clone();
        self.gateway
            .admission()
            .set_clock(move || *clock.lock().unwrap());
        now
    }

    /// Calls `tool` as `principal`; returns the text the agent gets, prefixed with `failed: `
    /// when the call was stopped by a limit and with `denied: ` when it was not run.
    async fn call(&self, principal: &str, tool: &str, arguments: Value) -> String {
        let caller = Caller::operator(principal);
        let Value::Object(arguments) = arguments else {
            panic!("arguments must be an object")
        };
        match self.gateway.call(&caller, tool, Some(arguments)).await {
            CallResult::Completed { text, .. } => text,
            CallResult::Failed(error) => format!("failed: {error}"),
            CallResult::Denied { reasons } => format!("denied: {}", reasons.join("; ")),
            other => panic!("{tool}: unexpected result {other:?}"),
        }
    }

    fn entries(&self, filter: EntryFilter) -> Vec<Entry> {
        AuditReader::open(&self.dir.path().join("audit.db"))
            .unwrap()
            .query(&filter)
            .unwrap()
    }

    /// The `call` and `outcome` entries of the newest call, as (verdict, reasons, kind).
    fn last_call(&self) -> [(String, Vec<String>, Value); 2] {
        let newest = |phase: &str| {
            let entry = self
                .entries(EntryFilter {
                    phase: Some(phase.into()),
                    newest_first: true,
                    limit: Some(1),
                    ..Default::default()
                })
                .remove(0);
            (entry.call_id.clone(), entry)
        };
        let (call_id, call) = newest("call");
        let (outcome_id, outcome) = newest("outcome");
        assert_eq!(call_id, outcome_id, "the newest call has its outcome");
        [
            (call.verdict, call.reasons, Value::Null),
            (
                outcome.verdict,
                outcome.reasons,
                outcome.input["kind"].clone(),
            ),
        ]
    }

    /// Asserts that the newest call was refused by a limit before it ran: a `call` entry with
    /// verdict deny and `reason`, and a `limit` outcome of `kind` with the same reason.
    fn assert_refused(&self, reason: &str, kind: &str) {
        let [call, outcome] = self.last_call();
        assert_eq!(call, ("deny".into(), vec![reason.to_owned()], Value::Null));
        assert_eq!(
            outcome,
            ("limit".into(), vec![reason.to_owned()], json!(kind))
        );
    }
}

/// The per-call limits a policy may set, each with a value that stops its probe.
const TIGHT: [(&str, u64); 5] = [
    ("timeout_ms", 100),
    ("memory_bytes", 16 << 20),
    ("fuel", 10_000),
    ("max_requests", 1),
    ("max_result_bytes", 1000),
];

/// The call that probes `limit` as `principal`: sleep 1 s, allocate 32 MiB, recurse 1000
/// levels, send two requests to `hello`, return 1 MiB. Each passes under the defaults.
async fn probe(gate: &Gate, principal: &str, limit: &str, hello: &str) -> String {
    let (tool, arguments) = match limit {
        "timeout_ms" => ("misbehave_sleep-ms", json!({"ms": 1000})),
        "memory_bytes" => ("misbehave_allocate", json!({"megabytes": 32})),
        "fuel" => ("misbehave_recurse", json!({"depth": 1000})),
        "max_requests" => (
            "escape_visit",
            json!({"urls": [hello, hello], "write-path": "/nowhere"}),
        ),
        "max_result_bytes" => ("misbehave_huge-result", json!({"megabytes": 1})),
        other => panic!("no probe for {other}"),
    };
    gate.call(principal, tool, arguments).await
}

/// Asserts that `text`, the answer to `limit`'s probe, passed.
fn assert_passed(limit: &str, text: &str) {
    let passed = match limit {
        "timeout_ms" => text.parse::<u32>().is_ok_and(|ms| ms >= 1000),
        "memory_bytes" => text == "32",
        "fuel" => text == "1000",
        "max_requests" => serde_json::from_str::<Vec<String>>(text).is_ok_and(|lines| {
            lines[..2]
                .iter()
                .all(|line| line.starts_with("succeeded: status 200"))
        }),
        "max_result_bytes" => text.len() == 1 << 20,
        other => panic!("no probe for {other}"),
    };
    assert!(passed, "{limit}: {}", shortened(text));
}

/// Asserts that `text`, the answer to `limit`'s probe, says it was stopped by `limit` at its
/// value in [`TIGHT`] (for requests: the second request was refused, and the refusal recorded).
fn assert_stopped(gate: &Gate, limit: &str, text: &str) {
    let expected = match limit {
        "timeout_ms" => "failed: the tool exceeded its time limit of 100 ms and was stopped",
        "memory_bytes" => "failed: the tool exceeded its memory limit of 16777216 bytes",
        "fuel" => {
            "failed: the tool used up its fuel of 10000 units (its CPU budget) and was stopped"
        }
        "max_result_bytes" => {
            "failed: the tool's result is 1048576 bytes of JSON, over the limit of 1000 bytes"
        }
        "max_requests" => {
            let lines: Vec<String> = serde_json::from_str(text).expect(text);
            assert!(lines[0].starts_with("succeeded: status 200"), "{lines:?}");
            assert!(
                lines[1].starts_with("refused: ") && lines[1].contains("HttpRequestDenied"),
                "the second request is over max_requests = 1: {lines:?}"
            );
            let newest = gate
                .entries(EntryFilter {
                    phase: Some("http".into()),
                    newest_first: true,
                    limit: Some(1),
                    ..Default::default()
                })
                .remove(0);
            assert_eq!(newest.verdict, "deny", "{newest:#?}");
            assert_eq!(
                newest.reasons,
                ["the call's limit of 1 outgoing requests is reached"],
                "{newest:#?}"
            );
            return;
        }
        other => panic!("no probe for {other}"),
    };
    assert!(text.starts_with(expected), "{limit}: {}", shortened(text));
}

/// At most the first 200 bytes of a text, for messages (a probe may answer 1 MiB).
fn shortened(text: &str) -> &str {
    &text[..text.len().min(200)]
}

/// The address of `/hello` on a fresh local web server.
async fn hello() -> String {
    format!("http://{}/hello", serve(None).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_limit_tightens_each_configured_limit() {
    // Each principal's obligation sets one limit, named like the limit.
    let obligations: serde_json::Map<String, Value> = TIGHT
        .iter()
        .map(|(limit, value)| (limit.to_string(), json!({ *limit: value })))
        .collect();
    let gate = Gate::new(Value::Object(obligations), |_| {});
    let hello = hello().await;
    for (limit, _) in TIGHT {
        // Without an obligation the configured defaults apply, and the probe passes…
        assert_passed(limit, &probe(&gate, "free", limit, &hello).await);
        // …and the same call under the policy's limit is stopped, naming the limit.
        assert_stopped(&gate, limit, &probe(&gate, limit, limit, &hello).await);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_asking_for_more_than_configured_never_loosens_a_limit() {
    let generous = json!({
        "timeout_ms": 60_000,
        "memory_bytes": 1u64 << 30,
        "fuel": 1_000_000_000_000_000u64,
        "max_requests": 1000,
        "max_result_bytes": 100u64 << 20,
    });
    let hello = hello().await;
    for (limit, value) in TIGHT {
        let gate = Gate::new(json!({ "greedy": generous }), |config| {
            let configured = match limit {
                "timeout_ms" => &mut config.limits.timeout_ms,
                "memory_bytes" => &mut config.limits.memory_bytes,
                "fuel" => &mut config.limits.fuel,
                "max_requests" => &mut config.limits.max_requests,
                "max_result_bytes" => &mut config.limits.max_result_bytes,
                other => panic!("no setting for {other}"),
            };
            *configured = value;
        });
        assert_stopped(&gate, limit, &probe(&gate, "greedy", limit, &hello).await);
        // The call entry shows what the policy asked for: the stop is the gateway's.
        let asked = gate.entries(EntryFilter {
            phase: Some("call".into()),
            newest_first: true,
            limit: Some(1),
            ..Default::default()
        });
        assert_eq!(asked[0].obligations["limits"][limit], generous[limit]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fuel_limit_without_fuel_metering_denies_the_call() {
    let gate = Gate::new(json!({"metered": {"fuel": 1_000_000}}), |config| {
        config.limits.fuel = 0;
    });
    assert_eq!(gate.call("free", "misbehave_ok", json!({})).await, "ok");
    let text = gate.call("metered", "misbehave_ok", json!({})).await;
    assert_eq!(
        text,
        "denied: the policy sets a fuel limit, but fuel metering is off (limits.fuel = 0 in the configuration); refusing to run the call unmetered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_principal_over_its_rate_is_refused_at_once_and_audited_as_a_denial() {
    let gate = Gate::new(json!({}), |config| {
        config.limits.calls_per_minute_per_principal = 2;
    });
    let clock = gate.stop_the_clock();
    assert_eq!(gate.call("alice", "misbehave_ok", json!({})).await, "ok");
    *clock.lock().unwrap() += Duration::from_secs(59);
    assert_eq!(gate.call("alice", "misbehave_ok", json!({})).await, "ok");

    let refusal = "rate limit: principal \"alice\" made 2 calls in the last 60 s (limits.calls_per_minute_per_principal = 2)";
    for _ in 0..2 {
        let text = gate.call("alice", "misbehave_ok", json!({})).await;
        assert_eq!(text, format!("failed: {refusal}"));
        gate.assert_refused(refusal, "limit:rate");
    }
    // Another principal has a window of its own.
    assert_eq!(gate.call("bob", "misbehave_ok", json!({})).await, "ok");
    // The first call leaves the window (refused calls never entered it): one more fits.
    *clock.lock().unwrap() += Duration::from_secs(1);
    assert_eq!(gate.call("alice", "misbehave_ok", json!({})).await, "ok");
    let text = gate.call("alice", "misbehave_ok", json!({})).await;
    assert_eq!(text, format!("failed: {refusal}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_tightens_the_rate_for_a_call_and_never_loosens_it() {
    let gate = Gate::new(
        json!({"tight": {"calls_per_minute": 1}, "greedy": {"calls_per_minute": 1000}}),
        |config| config.limits.calls_per_minute_per_principal = 3,
    );
    gate.stop_the_clock();
    assert_eq!(gate.call("tight", "misbehave_ok", json!({})).await, "ok");
    let refusal = "rate limit: principal \"tight\" made 1 calls in the last 60 s (the policy's limits.calls_per_minute = 1)";
    assert_eq!(
        gate.call("tight", "misbehave_ok", json!({})).await,
        format!("failed: {refusal}")
    );
    gate.assert_refused(refusal, "limit:rate");

    for _ in 0..3 {
        assert_eq!(gate.call("greedy", "misbehave_ok", json!({})).await, "ok");
    }
    let refusal = "rate limit: principal \"greedy\" made 3 calls in the last 60 s (limits.calls_per_minute_per_principal = 3)";
    assert_eq!(
        gate.call("greedy", "misbehave_ok", json!({})).await,
        format!("failed: {refusal}")
    );
    gate.assert_refused(refusal, "limit:rate");

    // With no configured rate, the policy's rate is the one that applies.
    let gate = Gate::new(json!({"tight": {"calls_per_minute": 1}}), |_| {});
    gate.stop_the_clock();
    assert_eq!(gate.call("tight", "misbehave_ok", json!({})).await, "ok");
    let text = gate.call("tight", "misbehave_ok", json!({})).await;
    assert!(
        text.ends_with("(the policy's limits.calls_per_minute = 1)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bundled_policy_gives_a_principal_its_own_rate_from_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.json");
    let tools = json!(["misbehave_*"]);
    std::fs::write(
        &data,
        json!({
            "settings": {"mode": "dev"},
            "principals": {
                "alice": {"tools": tools, "limits": {"calls_per_minute": 1}},
                "bob": {"tools": tools},
            },
        })
        .to_string(),
    )
    .unwrap();
    let gate = Gate::with_policy(dir, |config| {
        config.policy.dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"));
        config.policy.data = vec![data];
    });
    gate.stop_the_clock();
    assert_eq!(gate.call("alice", "misbehave_ok", json!({})).await, "ok");
    let refusal = "rate limit: principal \"alice\" made 1 calls in the last 60 s (the policy's limits.calls_per_minute = 1)";
    assert_eq!(
        gate.call("alice", "misbehave_ok", json!({})).await,
        format!("failed: {refusal}")
    );
    gate.assert_refused(refusal, "limit:rate");
    for _ in 0..3 {
        assert_eq!(gate.call("bob", "misbehave_ok", json!({})).await, "ok");
    }
}

/// A web server on 127.0.0.1: `/hello` answers at once; `/hold` signals `arrived` and answers
/// only once `release` is notified (the server never holds anything without one).
async fn serve(hold: Option<(Arc<Notify>, Arc<Notify>)>) -> SocketAddr {
    use axum::Router;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut app = Router::new().route("/hello", get(|| async { "hello" }));
    if let Some((arrived, release)) = hold {
        app = app.route(
            "/hold",
            get(move || async move {
                arrived.notify_one();
                release.notified().await;
                "released"
            }),
        );
    }
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// Runs `during` while a call of `holder` to `escape_http-get` is held inside the server; the
/// held call is released once `during` is done. Returns the held call's text and `during`'s.
async fn while_one_call_runs<T>(
    gate: &Gate,
    holder: &str,
    during: impl AsyncFnOnce() -> T,
) -> (String, T) {
    let (arrived, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let server = serve(Some((arrived.clone(), release.clone()))).await;
    let url = format!("http://{server}/hold");
    tokio::join!(
        gate.call(holder, "escape_http-get", json!({"url": url})),
        async {
            arrived.notified().await;
            let result = during().await;
            release.notify_one();
            result
        }
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_principal_over_its_concurrency_is_refused_while_others_run() {
    let gate = Gate::new(json!({}), |config| {
        config.limits.max_concurrent_per_principal = 1;
    });
    let refusal = "concurrency limit: principal \"alice\" is already running 1 calls (limits.max_concurrent_per_principal = 1); try again when one has finished";
    let (held, (second, bob)) = while_one_call_runs(&gate, "alice", async || {
        let second = gate.call("alice", "misbehave_ok", json!({})).await;
        gate.assert_refused(refusal, "limit:principal-concurrency");
        let bob = gate.call("bob", "misbehave_ok", json!({})).await;
        (second, bob)
    })
    .await;
    assert_eq!(held, "succeeded: status 200, 8 body bytes");
    assert_eq!(second, format!("failed: {refusal}"));
    assert_eq!(bob, "ok", "another principal is not held back");
    // The held call's place is free again.
    assert_eq!(gate.call("alice", "misbehave_ok", json!({})).await, "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_component_is_audited_like_the_other_admission_limits() {
    let gate = Gate::new(json!({}), |config| {
        config.limits.max_concurrent_per_component = 1;
    });
    let refusal =
        "component `escape` is already running 1 calls, its limit; try again when one has finished";
    let (held, (other, ok)) = while_one_call_runs(&gate, "alice", async || {
        let other = gate
            .call("bob", "escape_read-env", json!({"name": "HOME"}))
            .await;
        gate.assert_refused(refusal, "limit:concurrency");
        let ok = gate.call("bob", "misbehave_ok", json!({})).await;
        (other, ok)
    })
    .await;
    assert_eq!(held, "succeeded: status 200, 8 body bytes");
    assert_eq!(other, format!("failed: {refusal}"));
    assert_eq!(ok, "ok", "another component is not held back");
}

#[test]
fn a_rate_above_what_a_window_counts_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.audit.path = Some(dir.path().join("audit.db"));
    config.limits.calls_per_minute_per_principal = gatehouse::gateway::MAX_CALLS_PER_MINUTE + 1;
    let error = Gateway::from_config(&config).err().unwrap().to_string();
    assert!(
        error.contains("limits.calls_per_minute_per_principal = 100001 is above"),
        "{error}"
    );
}

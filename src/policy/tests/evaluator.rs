//! The compiled evaluator (RVM) against the interpreter: same decisions on the default bundle,
//! and the one documented difference (errors inside rule bodies).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn store(dir: &Path, extra_data: &[std::path::PathBuf], evaluator: Evaluator) -> PolicyStore {
    PolicyStore::load(
        dir,
        extra_data,
        PolicyOptions {
            evaluator,
            // Debug builds of regorus are slow; the budget is not what is tested here.
            time_budget: Duration::from_secs(5),
            ..PolicyOptions::default()
        },
    )
    .unwrap()
}

/// The default bundle under a configured deployment, once per evaluator.
fn default_bundle_pair(scratch: &Path) -> (PolicyStore, PolicyStore) {
    let data = scratch.join("deployment.json");
    std::fs::write(
        &data,
        json!({
            "principals": {
                "alice": {"tools": ["fetch_*", "files_read_file"], "env": ["API_KEY"]},
                "bob": {"tools": ["files_read_file"], "limits": {"timeout_ms": 1000}},
                "anonymous": {"tools": ["fetch_echo"]}
            },
            "components": {"allowed_digests": [DIGEST]},
            "http": {"allowed_domains": ["example.com"]},
            "fs": {"allowed_prefixes": ["/data", "/tmp/work"], "writable": ["/tmp/work"]},
            "socket": {"allowed": [
                {"protocol": "tcp", "operation": "connect", "address": "10.0.0.5", "port": 5432},
                {"protocol": "tcp", "operation": "connect", "address": "64:ff9b::a00:5", "port": 5432}
            ], "allowed_classes": ["private"]}
        })
        .to_string(),
    )
    .unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let extra = [data];
    (
        store(&dir, &extra, Evaluator::Interpreter),
        store(&dir, &extra, Evaluator::Compiled),
    )
}

fn callers() -> Vec<Value> {
    vec![
        json!({"principal": "alice", "authenticated": true, "transport": "http"}),
        json!({"principal": "alice", "authenticated": false, "transport": "http"}),
        json!({"principal": "bob", "authenticated": true, "transport": "stdio"}),
        json!({"principal": "anonymous", "authenticated": false, "transport": "stdio"}),
        json!({"principal": 5, "authenticated": "yes"}),
    ]
}

fn tools() -> Vec<Value> {
    let tool = |name: &str, digest: Value| {
        json!({"name": name, "function": "f", "interface": null,
               "component": {"name": "c", "digest": digest, "source": "c.wasm"}})
    };
    vec![
        tool("fetch_download", json!(DIGEST)),
        tool("files_read_file", json!("sha256:2222")),
        tool("fetch_echo", json!(DIGEST)),
        tool("shell_exec", json!(null)),
    ]
}

/// Arguments aimed at every argument rule of the default bundle, hostile shapes included.
fn argument_sets() -> Vec<Value> {
    vec![
        json!({}),
        json!({"message": "hello"}),
        json!({"url": "https://api.example.com/v1?q=1"}),
        json!({"url": "http://example.com/"}),
        json!({"url": "https://example.com@evil.example/"}),
        json!({"url": "https://[::1]:8443/x"}),
        json!({"url": 5}),
        json!({"url": ["https://example.com/"]}),
        json!({"request": {"url": "https://evil.example/", "headers": {"Authorization": "Bearer x"}}}),
        json!({"path": "/data/reports/q3.csv"}),
        json!({"path": "/data/a/../b.csv"}),
        json!({"path": "/data/../etc/passwd"}),
        json!({"path": "relative/x"}),
        json!({"path": 7}),
        json!({"path": format!("/data{}", "/a".repeat(70))}),
        json!({"size": 1e12}),
        json!({"megabytes": 4, "bytes": -1}),
        json!({"bytes": "12"}),
        json!({"token": "x", "Password": "y", "nested": [{"api_key": "z"}]}),
        json!({"a/b": {"~c": [[{"url": "https://example.com/"}]]}}),
        json!({"ünïcode": "✓", "url": "https://EXAMPLE.com/"}),
    ]
}

fn http_requests() -> Vec<Value> {
    // Addresses as the gateway classifies them (src/host/address.rs).
    let request = |scheme: &str, host: &str, port: u16, addresses: &[(&str, &str)]| {
        let ips: Vec<&str> = addresses.iter().map(|(ip, _)| *ip).collect();
        let addresses: Vec<Value> = addresses
            .iter()
            .map(|(ip, class)| json!({"ip": ip, "class": class, "embedded_ipv4": null, "embedding": null}))
            .collect();
        json!({"method": "GET", "scheme": scheme, "host": host, "port": port, "path": "/v1",
               "query": "", "headers": {"authorization": "***"}, "resolved_ips": ips,
               "addresses": addresses, "body_size": 0})
    };
    let public = ("93.184.215.14", "global");
    let nat64_loopback = json!({"ip": "64:ff9b::7f00:1", "class": "loopback",
                                "embedded_ipv4": "127.0.0.1", "embedding": "nat64"});
    let mut unclassified = request("https", "api.example.com", 443, &[public]);
    unclassified["addresses"] = json!(["93.184.215.14"]);
    let mut embedded = request("https", "api.example.com", 443, &[]);
    embedded["addresses"] = json!([nat64_loopback]);
    vec![
        request("https", "api.example.com", 443, &[public]),
        request("http", "api.example.com", 80, &[public]),
        request("https", "evil.example", 443, &[public]),
        request(
            "https",
            "api.example.com",
            443,
            &[("127.0.0.1", "loopback")],
        ),
        request(
            "https",
            "api.example.com",
            443,
            &[("169.254.169.254", "metadata")],
        ),
        request(
            "https",
            "api.example.com",
            443,
            &[("::1", "loopback"), public],
        ),
        request("https", "api.example.com", 443, &[]),
        request("https", "10.0.0.1", 443, &[("10.0.0.1", "private")]),
        embedded,
        unclassified,
        json!({"host": 5}),
    ]
}

fn fs_operations() -> Vec<Value> {
    let op = |operation: &str, path: &str, access: &str| json!({"operation": operation, "path": path, "mount": "/data", "access": access});
    vec![
        op("open", "/data/report.csv", "read"),
        op("open", "/data/report.csv", "write"),
        op("open", "/tmp/work/out.txt", "write"),
        op("unlink", "/etc/passwd", "write"),
        op("open", "/data/../etc/passwd", "read"),
        json!({"operation": "rename", "path": "/tmp/work/a", "mount": "/tmp/work", "access": "write", "target": "/data/a"}),
        json!({"path": 1}),
    ]
}

fn results() -> Vec<Value> {
    vec![
        json!({"ok": true, "size": 17, "value": {"rows": 3}}),
        json!({"ok": true, "size": 2_000_000, "value": "big"}),
        json!({"ok": true, "size": 10, "value": {"session": {"Token": "t"}, "items": [{"password": "p"}]}}),
        json!({"ok": true, "value": 1}),
        json!({"ok": false, "size": "x"}),
    ]
}

fn sockets() -> Vec<Value> {
    let socket = |address: &str, port: u16, class: &str| {
        json!({"protocol": "tcp", "operation": "connect", "address": address, "port": port,
               "class": class, "embedded_ipv4": null, "embedding": null})
    };
    vec![
        socket("10.0.0.5", 5432, "private"),
        socket("10.0.0.5", 5433, "private"),
        socket("93.184.215.14", 443, "global"),
        json!({"protocol": "tcp", "operation": "connect", "address": "64:ff9b::a00:5", "port": 5432,
               "class": "private", "embedded_ipv4": "10.0.0.5", "embedding": "nat64"}),
        json!({"protocol": "udp", "operation": "send", "address": "8.8.8.8", "port": 53}),
        json!({"port": "x"}),
    ]
}

/// Every (phase, input) pair the comparison runs.
fn inputs() -> Vec<(Phase, Value)> {
    let mut inputs = Vec::new();
    for caller in callers() {
        for tool in tools() {
            let base = json!({"time": "2026-11-22T03:04:05.123Z", "call": {"id": "c1"},
                              "caller": caller, "tool": tool});
            let with = |phase: Phase, extra: Value| {
                let mut input = base.clone();
                input["phase"] = json!(phase.as_str());
                for (key, value) in extra.as_object().unwrap() {
                    input[key] = value.clone();
                }
                (phase, input)
            };
            inputs.push(with(Phase::List, json!({})));
            for arguments in argument_sets() {
                inputs.push(with(Phase::Call, json!({ "arguments": arguments })));
            }
            for request in http_requests() {
                inputs.push(with(
                    Phase::Http,
                    json!({"arguments": {}, "request": request}),
                ));
            }
            for fs in fs_operations() {
                inputs.push(with(Phase::Fs, json!({"arguments": {}, "fs": fs})));
            }
            for result in results() {
                inputs.push(with(
                    Phase::Result,
                    json!({"arguments": {}, "result": result}),
                ));
            }
            for socket in sockets() {
                inputs.push(with(
                    Phase::Socket,
                    json!({"arguments": {}, "socket": socket}),
                ));
            }
        }
    }
    inputs
}

fn without_timing(mut decision: Decision) -> Decision {
    decision.eval_micros = 0;
    decision
}

#[test]
fn both_evaluators_decide_the_default_bundle_alike() {
    let scratch = tempfile::tempdir().unwrap();
    let (interpreter, compiled) = default_bundle_pair(scratch.path());
    let (mut same, mut errors, mut allowed) = (0, 0, 0);
    for (phase, input) in inputs() {
        let expected = without_timing(interpreter.decide(phase, &input));
        let actual = without_timing(compiled.decide(phase, &input));
        let interpreter_failed = expected
            .reasons
            .first()
            .is_some_and(|r| r.starts_with(POLICY_ERROR));
        if interpreter_failed {
            // The one documented difference: the compiled evaluator lets the erroring body
            // fail. On the default bundle that must never turn a deny into an allow.
            assert!(!actual.is_allowed(), "{phase} {input}: {actual:?}");
            errors += 1;
        } else {
            assert_eq!(actual, expected, "{phase} {input}");
            same += 1;
            allowed += usize::from(expected.is_allowed());
        }
    }
    // The inputs must exercise both verdicts, not only denials.
    assert!(
        allowed >= 40 && same >= 500,
        "same {same}, allowed {allowed}, errors {errors}"
    );
}

#[test]
fn every_phase_of_the_default_bundle_compiles() {
    let scratch = tempfile::tempdir().unwrap();
    let (_, compiled) = default_bundle_pair(scratch.path());
    for phase in Phase::ALL {
        let (_, explanation) = compiled.explain(phase, &json!({"phase": phase.as_str()}));
        assert_eq!(explanation.evaluator, "compiled", "{phase}");
    }
}

fn single_call_package(body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("call.rego"),
        format!("package gatehouse.call\n\ndefault allow := true\n\n{body}\n"),
    )
    .unwrap();
    dir
}

#[test]
fn an_error_inside_a_deny_body_denies_only_with_the_interpreter() {
    let dir = single_call_package("deny contains \"too big\" if to_number(input.n) > 5");
    let input = json!({"phase": "call", "n": "abc"});
    let interpreted = store(dir.path(), &[], Evaluator::Interpreter).decide(Phase::Call, &input);
    assert!(!interpreted.is_allowed());
    assert!(
        interpreted.reasons[0].starts_with("policy error: evaluation failed: call.rego:5:"),
        "{interpreted:?}"
    );
    // Documented (see `Evaluator`): the compiled evaluator fails the body, as OPA does.
    let compiled = store(dir.path(), &[], Evaluator::Compiled).decide(Phase::Call, &input);
    assert!(compiled.is_allowed(), "{compiled:?}");
}

#[test]
fn phases_the_rvm_cannot_serve_fall_back_to_the_interpreter() {
    // `walk` does not compile; `time.now_ns` compiles but would bypass the disabled clock.
    for (body, why) in [
        (
            "deny contains \"deep\" if { walk(input, [p, _]); count(p) > 3 }",
            "walk",
        ),
        (
            "deny contains \"late\" if time.now_ns() > 0",
            "time.now_ns, which Gatehouse disables",
        ),
    ] {
        let dir = single_call_package(body);
        let store = store(dir.path(), &[], Evaluator::Compiled);
        let (decision, explanation) = store.explain(Phase::Call, &json!({"phase": "call"}));
        assert!(
            explanation.evaluator.starts_with("interpreter (")
                && explanation.evaluator.contains(why),
            "{}",
            explanation.evaluator
        );
        if why.contains("now_ns") {
            assert!(
                decision.reasons[0].contains("time.now_ns is disabled"),
                "{decision:?}"
            );
        }
    }
}

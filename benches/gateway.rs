//! What the gateway costs per call, next to a raw wasmtime call measured in the same run.
//!
//! - raw: fresh `Store` from an `InstancePre`, instantiate, call `echo` (the floor);
//! - runtime: the same through `Runtime::call` (the gateway's host state, limits, timeout);
//! - gateway: the full pipeline (policy decision, audit commit of the verdict, run, audit commit
//!   of the outcome), with the audit log durable (`synchronous=FULL`) and, to show what the
//!   fsyncs cost, with `synchronous=NORMAL`;
//! - the parts alone: a policy decision (default bundle, 1,000 rules), one audit append;
//! - in-process throughput with concurrent callers (group commit shares the fsyncs);
//! - the first call of a component: cold compile against the compiled-component cache, for
//!   `echo` and for a generated 10 MB component.
//!
//! `cargo bench --bench gateway` (needs `scripts/build-components`). `GATEWAY_BENCH_SAMPLES`
//! sets the samples per figure (default 2000).

#[path = "support/inputs.rs"]
mod inputs;
#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use gatehouse::audit::{AuditConfig, AuditLog, NewEntry, Synchronous};
use gatehouse::auth::{Caller, Transport};
use gatehouse::config::{ComponentConfig, Config, LimitsConfig};
use gatehouse::gateway::{CallResult, Gateway};
use gatehouse::host::guard::{HostGuard, HostRequest, HostVerdict, ToolLog};
use gatehouse::host::{CallHost, HostConfig};
use gatehouse::policy::{Evaluator, Phase, PolicyOptions, PolicyStore};
use gatehouse::runtime::{CallLimits, ComponentSpec, Runtime, RuntimeOptions};
use serde_json::{Map, Value, json};
use support::{RawCall, Summary, header, sample, sample_async};
use wasmtime::component::Val;

/// The gateway binary's allocator, so the figures are the shipped binary's.
#[global_allocator]
static ALLOCATOR: gatehouse::Allocator = gatehouse::Allocator;

fn runtime(cache_dir: &Path) -> Runtime {
    let limits = LimitsConfig::default();
    Runtime::new(RuntimeOptions {
        cache_dir: Some(cache_dir.to_owned()),
        host: HostConfig::default(),
        max_memory_bytes: limits.memory_bytes,
        max_concurrent_calls: limits.max_concurrent_calls,
        fuel: limits.fuel > 0,
    })
    .unwrap()
}

/// The host guard of the calls made through `Runtime::call` alone: `echo` reaches no file and
/// no network, so nothing needs allowing, and anything it tried would be refused.
struct DenyEverything;

impl HostGuard for DenyEverything {
    fn decide(&self, _request: HostRequest) -> HostVerdict {
        HostVerdict::deny("the bench allows no host access")
    }

    fn refuse(&self, _request: HostRequest, reason: String) -> HostVerdict {
        HostVerdict::deny(reason)
    }

    fn log(&self, _record: ToolLog) {}
}

fn no_host_access() -> CallHost {
    CallHost {
        guard: Arc::new(DenyEverything),
        max_requests: 0,
        env: Vec::new(),
        config: Default::default(),
        waited: Default::default(),
    }
}

fn audit_log(path: &Path, synchronous: Synchronous) -> AuditLog {
    AuditLog::open(
        path,
        AuditConfig {
            origin: Some("bench/gateway".into()),
            synchronous,
            ..Default::default()
        },
    )
    .unwrap()
}

/// A gateway serving `echo` under the default bundle with the example deployment data (dev
/// mode; anonymous callers may use `echo_*`).
fn gateway(scratch: &Path, name: &str, synchronous: Synchronous, evaluator: Evaluator) -> Gateway {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let policy = policy_store(
        inputs::default_bundle_dir(),
        &[repo.join("examples/policy-data.json")],
        evaluator,
    );
    let audit_path = scratch.join(format!("{name}.db"));
    let audit = audit_log(&audit_path, synchronous);
    let mut config = Config::default();
    config.components.push(ComponentConfig::from_path(
        Some("echo".into()),
        support::component("echo"),
    ));
    config.audit.path = Some(audit_path);
    config.cache.dir = Some(scratch.join("cache"));
    Gateway::new(runtime(&scratch.join("cache")), &config, policy, audit).unwrap()
}

fn policy_store(dir: PathBuf, data: &[PathBuf], evaluator: Evaluator) -> PolicyStore {
    let options = PolicyOptions {
        evaluator,
        ..PolicyOptions::default()
    };
    PolicyStore::load(dir, data, options).unwrap()
}

fn anonymous() -> Caller {
    Caller {
        principal: Caller::ANONYMOUS.into(),
        authenticated: false,
        transport: Transport::Http,
        client: None,
        auth: gatehouse::auth::AuthMethod::None,
        claims: Default::default(),
    }
}

fn echo_arguments() -> Map<String, Value> {
    let Value::Object(map) = json!({"message": "hello"}) else {
        unreachable!()
    };
    map
}

async fn gateway_call(gateway: &Gateway, caller: &Caller) {
    let result = gateway
        .call(caller, "echo_echo", Some(echo_arguments()))
        .await;
    assert!(
        matches!(
            result,
            CallResult::Completed {
                is_error: false,
                ..
            }
        ),
        "{result:?}"
    );
}

/// Calls per second with `tasks` concurrent in-process callers making `per_task` calls each,
/// and how many were denied (a decision past its time budget under overload denies).
fn in_process_throughput(
    rt: &tokio::runtime::Runtime,
    gateway: &Arc<Gateway>,
    tasks: usize,
    per_task: usize,
) -> (f64, usize, Summary) {
    let start = Instant::now();
    let (latencies, refused) = rt.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let gateway = gateway.clone();
                tokio::spawn(async move {
                    let caller = anonymous();
                    let mut times = Vec::with_capacity(per_task);
                    let mut refused = 0;
                    for _ in 0..per_task {
                        let t0 = Instant::now();
                        let result = gateway
                            .call(&caller, "echo_echo", Some(echo_arguments()))
                            .await;
                        times.push(t0.elapsed());
                        match result {
                            CallResult::Completed {
                                is_error: false, ..
                            } => {}
                            // Overload shows as policy timeouts, which deny (fail closed).
                            CallResult::Denied { .. } => refused += 1,
                            other => panic!("{other:?}"),
                        }
                    }
                    (times, refused)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut refused = 0;
        for handle in handles {
            let (times, r) = handle.await.unwrap();
            all.extend(times);
            refused += r;
        }
        (all, refused)
    });
    let rate = (tasks * per_task) as f64 / start.elapsed().as_secs_f64();
    let label = format!("gateway, {tasks} concurrent callers, FULL");
    (rate, refused, Summary::of(label, latencies))
}

/// Writes a component of about `megabytes` MB: a data segment plus a few thousand small
/// functions (so that compiling it is real work), exporting `answer: func() -> u32`.
fn big_component(path: &Path, megabytes: usize) {
    let functions = 4000;
    let mut wat = String::from("(component\n (core module $m\n");
    for i in 0..functions {
        wat.push_str(&format!(
            "  (func $f{i} (param i32) (result i32) local.get 0 i32.const {i} i32.mul i32.const 7 i32.xor local.get 0 i32.add i32.const 3 i32.shl)\n"
        ));
    }
    let data_bytes = megabytes * 1_000_000;
    let pages = data_bytes / 65536 + 2;
    wat.push_str(&format!("  (memory {pages})\n  (data (i32.const 0) \""));
    let mut x: u32 = 12345;
    wat.extend((0..data_bytes).map(|_| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        char::from(b'a' + ((x >> 16) % 26) as u8)
    }));
    wat.push_str("\")\n");
    wat.push_str(&format!(
        "  (func (export \"answer\") (result i32) i32.const 6 call $f{} drop i32.const 42))\n",
        functions - 1
    ));
    wat.push_str(
        " (core instance $i (instantiate $m))\n (func (export \"answer\") (result u32) (canon lift (core func $i \"answer\"))))\n",
    );
    std::fs::write(path, wat::parse_str(&wat).unwrap()).unwrap();
}

/// Load (from the cache, or compiling) and call once: what the first call of a component costs.
fn first_call(
    rt: &tokio::runtime::Runtime,
    runtime: &Runtime,
    path: &Path,
    function: &str,
    params: &[Val],
) {
    let loaded = runtime
        .load(&ComponentSpec {
            name: "first",
            path,
            expected_digest: None,
            exclude: &[],
            prepared: None,
        })
        .unwrap();
    let function = loaded
        .functions
        .iter()
        .find(|f| f.function == function)
        .unwrap();
    let limits = call_limits();
    rt.block_on(runtime.call(&loaded, function, params, &limits, no_host_access()))
        .unwrap();
}

fn call_limits() -> CallLimits {
    let limits = LimitsConfig::default();
    CallLimits {
        timeout: limits.timeout(),
        memory_bytes: limits.memory_bytes,
        max_result_bytes: limits.max_result_bytes,
        fuel: (limits.fuel > 0).then_some(limits.fuel),
        max_requests: 0,
    }
}

fn main() {
    let samples: usize = std::env::var("GATEWAY_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let warmup = samples / 10;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let full = gateway(
        scratch.path(),
        "full",
        Synchronous::Full,
        Evaluator::Interpreter,
    );
    let normal = gateway(
        scratch.path(),
        "normal",
        Synchronous::Normal,
        Evaluator::Interpreter,
    );
    let normal_compiled = gateway(
        scratch.path(),
        "normal-compiled",
        Synchronous::Normal,
        Evaluator::Compiled,
    );
    let tool = full.tool("echo_echo").unwrap();
    let function = tool.function();
    let raw = RawCall::new(
        full.runtime().engine(),
        &tool.component.component,
        function.export,
        true,
    );
    let params = vec![Val::String("hello".into())];
    assert_eq!(
        rt.block_on(raw.call(&params)),
        Some(Val::String("hello".into()))
    );
    let caller = anonymous();
    let limits = call_limits();

    let mut rows = Vec::new();
    let baseline = Summary::of(
        "raw wasmtime: fresh Store + instantiate + call",
        sample_async(&rt, warmup, samples, || async {
            raw.call(&params).await;
        }),
    );
    rows.push(Summary::of(
        "runtime: Runtime::call (host state, limits, timeout)",
        sample_async(&rt, warmup, samples, || async {
            full.runtime()
                .call(
                    &tool.component,
                    function,
                    &params,
                    &limits,
                    no_host_access(),
                )
                .await
                .unwrap();
        }),
    ));
    let gateway_full = Summary::of(
        "gateway: policy + audit + run + audit, FULL (durable)",
        sample_async(&rt, warmup, samples, || gateway_call(&full, &caller)),
    );
    let gateway_normal = Summary::of(
        "gateway: same, audit synchronous=NORMAL",
        sample_async(&rt, warmup, samples, || gateway_call(&normal, &caller)),
    );
    let gateway_normal_compiled = Summary::of(
        "gateway: same, NORMAL, policy.evaluator = compiled",
        sample_async(&rt, warmup, samples, || {
            gateway_call(&normal_compiled, &caller)
        }),
    );

    // The gateway's own policy input for this call, and the realistic one of the policy bench.
    let echo_input = json!({
        "phase": "call", "time": "2026-11-22T03:04:05.123Z", "call": {"id": "x"},
        "caller": caller, "tool": {"name": "echo_echo", "function": "echo", "interface": null,
        "component": {"name": "echo", "digest": tool.component.digest, "source": "echo.wasm"}},
        "arguments": {"message": "hello"},
    });
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let realistic = inputs::realistic_input();
    let deployment = inputs::deployment_data(scratch.path());
    let generated_dir = support::generated_bundle(scratch.path(), 1000);
    let mut policy_rows = Vec::new();
    for evaluator in [Evaluator::Interpreter, Evaluator::Compiled] {
        let name = format!("{evaluator:?}").to_lowercase();
        let example = policy_store(
            inputs::default_bundle_dir(),
            &[repo.join("examples/policy-data.json")],
            evaluator,
        );
        let configured = policy_store(
            inputs::default_bundle_dir(),
            std::slice::from_ref(&deployment),
            evaluator,
        );
        let generated = policy_store(generated_dir.clone(), &[], evaluator);
        for (label, store, input, share) in [
            ("default bundle, echo input", &example, &echo_input, 1),
            (
                "default bundle, url/path/size args",
                &configured,
                &realistic,
                1,
            ),
            ("1,000 rules", &generated, &realistic, 4),
        ] {
            assert!(
                store.decide(Phase::Call, input).is_allowed(),
                "{name} {label}"
            );
            policy_rows.push(Summary::of(
                format!("policy decide(call) [{name}], {label}"),
                sample(warmup / share, samples / share, || {
                    std::hint::black_box(store.decide(Phase::Call, input));
                }),
            ));
        }
    }
    let log = audit_log(&scratch.path().join("alone.db"), Synchronous::Full);
    let entry = || {
        let mut e = NewEntry::new(
            "call",
            "allow",
            json!({"principal": "anonymous"}),
            echo_input.clone(),
        );
        e.call_id = Some("x".into());
        e
    };
    let append = Summary::of(
        "audit append, one caller, FULL (one commit + fsync)",
        sample_async(&rt, warmup, samples, || {
            let e = entry();
            let log = &log;
            async move {
                log.append(e).await.unwrap();
            }
        }),
    );
    rows.extend([gateway_full, gateway_normal, gateway_normal_compiled]);
    rows.extend(policy_rows);
    rows.push(append);

    // First call of a component: compile (empty cache) against deserialize (cache hit).
    let mut first = Vec::new();
    let big = scratch.path().join("big.wasm");
    big_component(&big, 10);
    let big_mb = std::fs::metadata(&big).unwrap().len() as f64 / 1e6;
    let echo = support::component("echo");
    for (label, path, function, params, cold_samples) in [
        ("echo", echo.as_path(), "echo", params.clone(), 5),
        ("10 MB component", big.as_path(), "answer", vec![], 3),
    ] {
        let cached_rt = runtime(&scratch.path().join(format!("first-cache-{label}")));
        let cold = sample(0, cold_samples, || {
            let empty = tempfile::tempdir().unwrap();
            first_call(&rt, &runtime(empty.path()), path, function, &params);
        });
        // Fill the cache, then measure hits.
        first_call(&rt, &cached_rt, path, function, &params);
        let cached = sample(2, 20, || {
            first_call(&rt, &cached_rt, path, function, &params)
        });
        first.push(Summary::of(
            format!("first call {label}: cold compile"),
            cold,
        ));
        first.push(Summary::of(format!("first call {label}: cached"), cached));
    }

    println!("== per call, one caller at a time ({samples} samples)");
    println!("{}", header(true));
    println!("{}", baseline.row(Some(&baseline)));
    for row in &rows {
        println!("{}", row.row(Some(&baseline)));
    }
    let added = |s: &Summary| s.p99.saturating_sub(baseline.p99);
    println!(
        "gateway added p99 over raw: FULL {}, NORMAL {}",
        support::fmt(added(&rows[1])),
        support::fmt(added(&rows[2]))
    );
    println!("== first call of a component (the 10 MB component is {big_mb:.1} MB)");
    println!("{}", header(true));
    for row in &first {
        println!("{}", row.row(Some(&baseline)));
    }

    let full = Arc::new(full);
    println!("== in-process throughput, durable audit log");
    for tasks in [1, 16, 32] {
        let per_task = (samples * 2 / tasks).max(20);
        let (rate, refused, summary) = in_process_throughput(&rt, &full, tasks, per_task);
        println!(
            "{}  {rate:>8.0} calls/s, {refused} denied",
            summary.row(Some(&baseline))
        );
    }
}

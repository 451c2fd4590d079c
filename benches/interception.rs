//! What interception adds to one outgoing HTTP request and to one file open.
//!
//! The same component function runs in a fresh store per iteration, on the gateway's engine,
//! three ways:
//!
//! - **off**: plain wasmtime-wasi and wasmtime-wasi-http (their own filesystem and default
//!   sender, no decisions) — the baseline;
//! - **host only**: our host code (guarded filesystem, own resolver and sender) with a guard
//!   that allows everything without asking anyone — the cost of the doors themselves;
//! - **on**: our host code deciding every request with the default policy bundle and queueing
//!   a record per decision in a real audit log, committed before the iteration ends — what a
//!   gateway call pays.
//!
//! `files.read-file` opens one file (one `fs` decision); `fetch.fetch` sends one GET to a
//! server on 127.0.0.1 (one `http` decision). Prints median and p99 per variant and the ratios
//! to the baseline measured in the same run. Run with `cargo bench --bench interception`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse::auth::Caller;
use gatehouse::config::{Config, MountConfig};
use gatehouse::gateway::Gateway;
use gatehouse::host::CallHost;
use gatehouse::host::guard::{HostGuard, HostRequest, HostVerdict, ToolLog};
use gatehouse::runtime::CallLimits;
use serde_json::json;
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable, Val};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The gateway binary's allocator, so the figures are the shipped binary's.
#[global_allocator]
static ALLOCATOR: gatehouse::Allocator = gatehouse::Allocator;

/// Iterations per variant (after as many again for warm-up); `GATEHOUSE_BENCH_ITERATIONS`
/// overrides it for a quick smoke run.
fn iterations() -> usize {
    std::env::var("GATEHOUSE_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("note.txt"), "a note for the benchmark\n").unwrap();
    let server = runtime.block_on(serve());
    let gateway = runtime.block_on(async { gateway(scratch.path(), &data) });

    let cases = [
        (
            "file open (files.read-file)",
            "files_read-file",
            json!({"path": "/data/note.txt"}),
        ),
        (
            "HTTP GET to 127.0.0.1 (fetch.fetch)",
            "fetch_fetch",
            json!({"url": format!("http://{server}/hello")}),
        ),
    ];
    println!(
        "interception cost per call, {} iterations each (median / p99):",
        iterations()
    );
    for (label, tool_name, arguments) in cases {
        let tool = gateway.tool(tool_name).expect("tool is loaded").clone();
        let params = gatehouse::wit_json::args_to_vals(
            &tool.function().signature,
            arguments.as_object().unwrap(),
        )
        .unwrap();
        let raw = RawRunner::new(gateway.runtime().engine(), &tool.component.source, &data);
        let export = tool.function().function.clone();
        let off = measure(|| runtime.block_on(raw.call(&export, &params)));
        let limits = CallLimits {
            timeout: Duration::from_secs(10),
            memory_bytes: 64 << 20,
            max_result_bytes: 1 << 20,
            fuel: Some(u64::MAX / 4),
            max_requests: 16,
        };
        let call_with = |guard: Arc<dyn HostGuard>| {
            let host = CallHost {
                guard,
                max_requests: 16,
                env: Vec::new(),
                config: Default::default(),
                waited: Default::default(),
            };
            gateway
                .runtime()
                .call(&tool.component, tool.function(), &params, &limits, host)
        };
        let host_only = measure(|| {
            runtime.block_on(async {
                let result = call_with(Arc::new(AllowEverything)).await;
                assert!(result.is_ok(), "{result:?}");
            })
        });
        let caller = Caller::operator("local");
        let on = measure(|| {
            runtime.block_on(async {
                let guard = gateway.guard_for(&caller, &tool, arguments.clone());
                let result = call_with(guard.clone()).await;
                assert!(result.is_ok(), "{result:?}");
                let tally = guard.settle().await.expect("records committed");
                assert_eq!(tally.fs_denied + tally.http_denied, 0, "{tally:?}");
            })
        });
        println!("  {label}");
        for (name, sample) in [
            ("off (plain wasmtime-wasi)", &off),
            ("host only", &host_only),
            ("on (policy + audit)", &on),
        ] {
            println!(
                "    {name:<26} {:>9.1} µs / {:>9.1} µs   ×{:.2} of off",
                sample.median_us(),
                sample.p99_us(),
                sample.median_us() / off.median_us()
            );
        }
        println!(
            "    added by interception: {:.1} µs per call (median)",
            on.median_us() - off.median_us()
        );
    }
}

/// Durations of individual iterations.
struct Sample(Vec<Duration>);

impl Sample {
    fn quantile_us(&self, q: f64) -> f64 {
        let index = ((self.0.len() - 1) as f64 * q).round() as usize;
        self.0[index].as_secs_f64() * 1e6
    }
    fn median_us(&self) -> f64 {
        self.quantile_us(0.5)
    }
    fn p99_us(&self) -> f64 {
        self.quantile_us(0.99)
    }
}

fn measure(mut run: impl FnMut()) -> Sample {
    for _ in 0..iterations() {
        run();
    }
    let mut times: Vec<Duration> = (0..iterations())
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .collect();
    times.sort();
    Sample(times)
}

/// A guard that allows everything and records nothing: our host code's own cost.
struct AllowEverything;

impl HostGuard for AllowEverything {
    fn decide(&self, _request: HostRequest) -> HostVerdict {
        HostVerdict::allow()
    }

    fn refuse(&self, _request: HostRequest, reason: String) -> HostVerdict {
        HostVerdict::deny(reason)
    }

    fn log(&self, _record: ToolLog) {}
}

/// The gateway whose engine, runtime, policy and audit log the variants share.
fn gateway(scratch: &std::path::Path, data: &std::path::Path) -> Gateway {
    let policy_data = scratch.join("policy-data.json");
    std::fs::write(
        &policy_data,
        json!({
            "settings": {"mode": "dev"},
            "principals": {"local": {"tools": ["*"]}},
            "http": {"allowed_domains": ["127.0.0.1"], "allowed_schemes": ["http"], "allow_private": true},
            "fs": {"allowed_prefixes": ["/data"]},
        })
        .to_string(),
    )
    .unwrap();
    let mut config = Config::default();
    for name in ["files", "fetch"] {
        config
            .components
            .push(toml::from_str(&format!("path = {:?}", common::component(name))).unwrap());
    }
    config.mounts = vec![MountConfig {
        host: data.to_owned(),
        guest: "/data".into(),
        writable: false,
    }];
    config.policy.dir = Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"));
    config.policy.data = vec![policy_data];
    config.audit.path = Some(scratch.join("audit.db"));
    config.cache.dir = Some(scratch.join("cache"));
    Gateway::from_config(&config).unwrap()
}

/// A local HTTP server answering `/hello`.
async fn serve() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "hello" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// Store data for the baseline: wasmtime-wasi's and wasmtime-wasi-http's own implementations.
struct RawState {
    wasi: WasiCtx,
    http: wasmtime_wasi_http::WasiHttpCtx,
    table: ResourceTable,
}

impl WasiView for RawState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for RawState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: wasmtime_wasi_http::default_hooks(),
        }
    }
}

/// Runs a component with interception off.
struct RawRunner {
    engine: Engine,
    pre: InstancePre<RawState>,
    data: std::path::PathBuf,
}

impl RawRunner {
    fn new(engine: &Engine, path: &std::path::Path, data: &std::path::Path) -> RawRunner {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).unwrap();
        let component = Component::from_file(engine, path).unwrap();
        RawRunner {
            engine: engine.clone(),
            pre: linker.instantiate_pre(&component).unwrap(),
            data: data.to_owned(),
        }
    }

    async fn call(&self, export: &str, params: &[Val]) {
        let wasi = WasiCtxBuilder::new()
            .preopened_dir(&self.data, "/data", wasmtime_wasi::FsPerms::ReadOnly)
            .unwrap()
            .build();
        let state = RawState {
            wasi,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&self.engine, state);
        // Same engine as the gateway's: it meters fuel and checks epochs, so grant both.
        store.set_fuel(u64::MAX / 4).unwrap();
        store.set_epoch_deadline(u64::MAX / 4);
        let instance = self.pre.instantiate_async(&mut store).await.unwrap();
        let func = instance.get_func(&mut store, export).unwrap();
        let mut results = vec![Val::Bool(false)];
        func.call_async(&mut store, params, &mut results)
            .await
            .unwrap();
        match &results[0] {
            Val::Result(Ok(_)) => {}
            other => panic!("the baseline call failed: {other:?}"),
        }
    }
}

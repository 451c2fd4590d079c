//! Shared by the benches: latency samples and their summary, the raw wasmtime call every
//! figure is compared with, and the test component paths.
//!
//! Every bench prints its figures next to a ratio to the raw call measured in the same process
//! run, because on a shared 2-core machine absolute figures drift with the load of the moment
//! and ratios from one run drift much less.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::component::{ComponentExportIndex, InstancePre, Linker, ResourceTable, Val};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Latency samples of one operation.
pub struct Summary {
    pub label: String,
    pub count: usize,
    pub mean: Duration,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
}

impl Summary {
    pub fn of(label: impl Into<String>, mut samples: Vec<Duration>) -> Summary {
        assert!(!samples.is_empty(), "no samples");
        samples.sort();
        let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
        Summary {
            label: label.into(),
            count: samples.len(),
            mean: samples.iter().sum::<Duration>() / samples.len() as u32,
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
        }
    }

    /// One table row; `baseline` adds the ratios of mean, p50 and p99 to it.
    pub fn row(&self, baseline: Option<&Summary>) -> String {
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        let ratios = baseline.map_or(String::new(), |b| {
            format!(
                "  {:>7.2}x {:>7.2}x {:>7.2}x",
                ratio(self.mean, b.mean),
                ratio(self.p50, b.p50),
                ratio(self.p99, b.p99)
            )
        });
        format!(
            "{:<52} {:>7} {:>10} {:>10} {:>10} {:>10}{ratios}",
            self.label,
            self.count,
            fmt(self.mean),
            fmt(self.p50),
            fmt(self.p95),
            fmt(self.p99)
        )
    }
}

pub fn header(with_ratios: bool) -> String {
    let ratios = if with_ratios {
        "  mean/raw  p50/raw  p99/raw"
    } else {
        ""
    };
    format!(
        "{:<52} {:>7} {:>10} {:>10} {:>10} {:>10}{ratios}",
        "operation", "n", "mean", "p50", "p95", "p99"
    )
}

pub fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

/// Times `samples` runs of `op` after `warmup` untimed ones.
pub fn sample(warmup: usize, samples: usize, mut op: impl FnMut()) -> Vec<Duration> {
    for _ in 0..warmup {
        op();
    }
    (0..samples)
        .map(|_| {
            let start = Instant::now();
            op();
            start.elapsed()
        })
        .collect()
}

/// [`sample`] for async operations, all inside one `block_on` so the executor's own entry cost
/// is not measured.
pub fn sample_async<F: std::future::Future<Output = ()>>(
    rt: &tokio::runtime::Runtime,
    warmup: usize,
    samples: usize,
    mut op: impl FnMut() -> F,
) -> Vec<Duration> {
    rt.block_on(async {
        for _ in 0..warmup {
            op().await;
        }
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let start = Instant::now();
            op().await;
            times.push(start.elapsed());
        }
        times
    })
}

/// The built test component `name` (`scripts/build-components` builds them).
pub fn component(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/components/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-components first",
        path.display()
    );
    path
}

/// The least a host needs to run a WASI component: a WASI context and a resource table.
pub struct RawState {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for RawState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// The floor every figure is compared with: a fresh `Store` from an `InstancePre`, instantiate,
/// call one export, on the gateway's own engine (same configuration: pooling allocator, epoch
/// interruption), with nothing of the gateway around it.
pub struct RawCall {
    engine: Engine,
    pre: InstancePre<RawState>,
    export: ComponentExportIndex,
    has_result: bool,
}

impl RawCall {
    pub fn new(
        engine: &Engine,
        component: &wasmtime::component::Component,
        export: ComponentExportIndex,
        has_result: bool,
    ) -> RawCall {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        RawCall {
            engine: engine.clone(),
            pre: linker.instantiate_pre(component).unwrap(),
            export,
            has_result,
        }
    }

    pub async fn call(&self, params: &[Val]) -> Option<Val> {
        let state = RawState {
            ctx: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&self.engine, state);
        // The engine interrupts at epoch deadlines; this call never reaches one.
        store.set_epoch_deadline(u64::MAX / 2);
        // When the engine meters fuel, a store starts with none; give it plenty. (Without fuel
        // metering this is an error, which is fine to ignore.)
        let _ = store.set_fuel(u64::MAX / 2);
        let instance = self.pre.instantiate_async(&mut store).await.unwrap();
        let func = instance.get_func(&mut store, self.export).unwrap();
        let mut results = vec![Val::Bool(false); usize::from(self.has_result)];
        func.call_async(&mut store, params, &mut results)
            .await
            .unwrap();
        results.pop()
    }
}

/// A call package with one allow rule and `rules` deny rules, each testing a different argument:
/// the "1,000 rules" bundle of the policy figures.
pub fn generated_bundle(dir: &Path, rules: usize) -> PathBuf {
    let dir = dir.join(format!("generated-{rules}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rego = String::from(
        "package gatehouse.call\n\ndefault allow := false\n\nallow if input.caller.principal == \"alice\"\n",
    );
    for i in 0..rules {
        rego.push_str(&format!(
            "\ndeny contains \"rule {i}\" if input.arguments.a{i} == {i}\n"
        ));
    }
    std::fs::write(dir.join("call.rego"), rego).unwrap();
    dir
}

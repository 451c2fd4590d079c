//! Latency of `PolicyStore::decide` for the call phase.
//!
//! - the default bundle (`policies/`) configured to allow a realistic call (URL, path, size and
//!   secret arguments, so every argument rule runs), with p50/p99 from individual samples;
//! - a generated bundle of 1,000 deny rules;
//! - a one-rule bundle, the per-decision floor of the engine;
//! - the default bundle from 1, 2 and 4 threads at once, to show decisions do not serialize;
//! - each with both evaluators (`policy.evaluator`: the interpreter, the compiled RVM).
//!
//! Run with `cargo bench --bench policy` (release).

use std::path::Path;
use std::time::{Duration, Instant};

#[path = "support/inputs.rs"]
mod inputs;
#[path = "support/mod.rs"]
mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::policy::{Evaluator, Phase, PolicyOptions, PolicyStore};
use inputs::realistic_input;
use serde_json::Value;

/// The gateway binary's allocator, so the figures are the shipped binary's.
#[global_allocator]
static ALLOCATOR: gatehouse::Allocator = gatehouse::Allocator;

fn options(evaluator: Evaluator) -> PolicyOptions {
    PolicyOptions {
        evaluator,
        ..PolicyOptions::default()
    }
}

fn configured_default_bundle(scratch: &Path, evaluator: Evaluator) -> PolicyStore {
    let data = inputs::deployment_data(scratch);
    let store =
        PolicyStore::load(inputs::default_bundle_dir(), &[data], options(evaluator)).unwrap();
    let decision = store.decide(Phase::Call, &realistic_input());
    assert!(
        decision.is_allowed(),
        "bench input must be allowed: {decision:?}"
    );
    store
}

/// A call package with `rules` deny rules, each checking a different argument.
fn generated_bundle(scratch: &Path, rules: usize, evaluator: Evaluator) -> PolicyStore {
    let dir = support::generated_bundle(scratch, rules);
    let store = PolicyStore::load(&dir, &[], options(evaluator)).unwrap();
    let decision = store.decide(Phase::Call, &realistic_input());
    assert!(decision.is_allowed(), "{decision:?}");
    store
}

/// The smallest useful bundle: one allow rule. Its cost is regorus's per-decision floor.
fn minimal_bundle(scratch: &Path, evaluator: Evaluator) -> PolicyStore {
    let dir = scratch.join("minimal");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("call.rego"),
        "package gatehouse.call\n\ndefault allow := false\n\nallow if input.caller.principal == \"alice\"\n",
    )
    .unwrap();
    PolicyStore::load(&dir, &[], options(evaluator)).unwrap()
}

/// p50 and p99 of single decisions, measured one by one after a warm-up.
fn percentiles(store: &PolicyStore, input: &Value, samples: usize) -> (Duration, Duration) {
    for _ in 0..200 {
        store.decide(Phase::Call, input);
    }
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(store.decide(Phase::Call, input));
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[samples / 2], times[samples * 99 / 100])
}

/// CPU time this process has used (user + system), from /proc on Linux, so a run can tell
/// "no spare core" (the machine is busy) from "threads wait for one another".
fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in clock ticks of 1/100 s on every common configuration.
    Some(Duration::from_millis(ticks * 10))
}

/// Decisions per second with `threads` threads deciding `per_thread` times each, and the
/// number of cores the run kept busy on average.
fn throughput(
    store: &PolicyStore,
    input: &Value,
    threads: usize,
    per_thread: usize,
) -> (f64, Option<f64>) {
    let cpu_before = process_cpu_time();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..per_thread {
                    std::hint::black_box(store.decide(Phase::Call, input));
                }
            });
        }
    });
    let wall = start.elapsed();
    let busy = process_cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| (after - before).as_secs_f64() / wall.as_secs_f64());
    ((threads * per_thread) as f64 / wall.as_secs_f64(), busy)
}

fn bench(c: &mut Criterion) {
    let scratch = tempfile::tempdir().unwrap();
    let input = realistic_input();
    let mut stores: Vec<(String, PolicyStore)> = Vec::new();
    for evaluator in [Evaluator::Interpreter, Evaluator::Compiled] {
        let name = format!("{evaluator:?}").to_lowercase();
        stores.extend([
            (
                format!("decide(call) [{name}] default bundle"),
                configured_default_bundle(scratch.path(), evaluator),
            ),
            (
                format!("decide(call) [{name}] 1000 rules"),
                generated_bundle(scratch.path(), 1000, evaluator),
            ),
            (
                format!("decide(call) [{name}] minimal bundle"),
                minimal_bundle(scratch.path(), evaluator),
            ),
        ]);
    }
    for (name, store) in &stores {
        c.bench_function(name, |b| b.iter(|| store.decide(Phase::Call, &input)));
    }
    let measured: Vec<(&str, Duration, Duration)> = stores
        .iter()
        .map(|(name, store)| {
            let (p50, p99) = percentiles(store, &input, 5000);
            println!("{name}: p50 {p50:?}, p99 {p99:?} (5000 samples)");
            (name.as_str(), p50, p99)
        })
        .collect();
    // Each evaluator's figures next to its own floor, the one-rule bundle of the same run.
    for (name, p50, p99) in &measured {
        let evaluator = name.split(']').next().unwrap_or_default();
        let floor = measured
            .iter()
            .find(|(other, ..)| other.starts_with(evaluator) && other.ends_with("minimal bundle"));
        if let Some((_, floor_p50, floor_p99)) = floor.filter(|_| !name.ends_with("minimal bundle"))
        {
            println!(
                "{name}: {:.1}x / {:.1}x the one-rule floor at p50 / p99",
                p50.as_secs_f64() / floor_p50.as_secs_f64(),
                p99.as_secs_f64() / floor_p99.as_secs_f64(),
            );
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (name, store) in stores
        .iter()
        .filter(|(name, _)| name.ends_with("default bundle"))
    {
        for threads in [1, 2, 4] {
            let (rate, busy) = throughput(store, &input, threads, 2000);
            let busy = busy.map_or(String::new(), |b| format!(", {b:.2} cores busy"));
            println!("{name}, {threads} thread(s) on {cores} core(s): {rate:.0} decisions/s{busy}");
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);

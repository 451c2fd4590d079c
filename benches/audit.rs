//! Audit log figures: group-commit throughput and append latency under load (synchronous FULL
//! and NORMAL), `verify` of a large log, and filtered queries on it.
//!
//! `cargo bench --bench audit` (release). Environment: `AUDIT_BENCH_ENTRIES` (default 1,000,000)
//! sets the size of the log used for verify and queries; `AUDIT_BENCH_DIR` where to put it
//! (default: a temporary directory; an existing log there is reused); `AUDIT_BENCH_SKIP_APPEND`
//! skips the append figures; `AUDIT_BENCH_SCATTERED_CALLS` (see `run_load`).

use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse::audit::{
    AuditConfig, AuditLog, AuditReader, EntryFilter, NewEntry, Synchronous, VerifyOptions, verify,
};
use serde_json::json;

/// The gateway binary's allocator, so the figures are the shipped binary's.
#[global_allocator]
static ALLOCATOR: gatehouse::Allocator = gatehouse::Allocator;

/// A realistic entry: an http decision with a request document of a few hundred bytes. Entry
/// `i` belongs to call `i / 5`; call ids are fixed-width and grow with `i`, like the gateway's
/// (UUIDv7, time-ordered: the calls in flight at one moment have neighbouring ids).
fn entry(i: u64) -> NewEntry {
    let mut e = NewEntry::new(
        if i.is_multiple_of(5) { "call" } else { "http" },
        if i.is_multiple_of(7) { "deny" } else { "allow" },
        json!({"principal": format!("agent-{}", i % 50), "transport": "http", "client": "claude-code/1.0", "authenticated": true}),
        json!({
            "call_id": call_id(i),
            "tool": {"name": format!("tool-{}", i % 20), "component": "sha256:0f3c…"},
            "request": {"method": "GET", "url": format!("https://api{}.example.com/v1/items/{i}?q=search", i % 30),
                        "host": format!("api{}.example.com", i % 30), "port": 443,
                        "headers": {"accept": "application/json", "user-agent": "gatehouse-tool/0.1"}},
        }),
    );
    e.call_id = Some(call_id(i));
    e.tool = Some(format!("tool-{}", i % 20));
    e.policy_revision = Some("sha256:policy-rev-42".into());
    if i.is_multiple_of(7) {
        e.reasons = vec![format!(
            "host api{}.example.com is not in the allow list",
            i % 30
        )];
    }
    e.metrics = json!({"policy_us": 85 + i % 40});
    e
}

fn call_id(i: u64) -> String {
    format!("call-{:010}", i / 5)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// `tasks` tasks append `per_task` entries each as fast as they can; optional pause between
/// appends of one task (to offer a fixed load instead of saturating). The entries are built
/// before the clock starts: the figures are the log's cost, not the cost of building JSON.
/// Entries are numbered from `first` in the order the tasks issue them (round `k` of task `t`
/// is `first + k * tasks + t`), so entries written together belong to neighbouring calls, as in
/// the gateway. `AUDIT_BENCH_SCATTERED_CALLS=1` numbers them task by task instead (`first +
/// t * per_task + k`, how this bench did before): every entry of a batch then lands in a
/// different part of the call-id index, which costs about a page of WAL per entry.
fn run_load(
    log: &AuditLog,
    first: u64,
    tasks: u64,
    per_task: u64,
    pause: Option<Duration>,
) -> (f64, Vec<Duration>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let scattered = std::env::var_os("AUDIT_BENCH_SCATTERED_CALLS").is_some();
    let work: Vec<Vec<NewEntry>> = (0..tasks)
        .map(|t| {
            (0..per_task)
                .map(|k| {
                    entry(if scattered {
                        first + t * per_task + k
                    } else {
                        first + k * tasks + t
                    })
                })
                .collect()
        })
        .collect();
    let start = Instant::now();
    let latencies = rt.block_on(async {
        let mut handles = Vec::new();
        for entries in work {
            let log = log.clone();
            handles.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(entries.len());
                for e in entries {
                    let t0 = Instant::now();
                    log.append(e).await.unwrap();
                    lat.push(t0.elapsed());
                    if let Some(p) = pause {
                        tokio::time::sleep(p).await;
                    }
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        all
    });
    let rate = (tasks * per_task) as f64 / start.elapsed().as_secs_f64();
    (rate, latencies)
}

/// Sorted, for [`quantiles`].
fn sorted(mut latencies: Vec<Duration>) -> Vec<Duration> {
    latencies.sort();
    latencies
}

/// `p50  0.123 ms  p99  4.567 ms …` for the named quantiles of sorted latencies.
fn quantiles(sorted: &[Duration], named: &[(&str, f64)]) -> String {
    named
        .iter()
        .map(|(name, p)| {
            format!(
                "{name} {:>7.3} ms",
                percentile(sorted, *p).as_secs_f64() * 1e3
            )
        })
        .collect::<Vec<_>>()
        .join("  ")
}

fn open(path: &Path, sync: Synchronous) -> AuditLog {
    AuditLog::open(
        path,
        AuditConfig {
            origin: Some("bench/audit".into()),
            synchronous: sync,
            ..Default::default()
        },
    )
    .unwrap()
}

/// The disk's own floor for a durable commit, measured in the same run: append one 4 KiB page
/// to a file and `fdatasync` it, as SQLite's WAL does for each commit with `synchronous=FULL`.
fn fsync_floor(dir: &Path, samples: usize) -> Vec<Duration> {
    use std::io::Write;
    let path = dir.join("fsync-floor");
    let mut file = std::fs::File::create(&path).unwrap();
    let page = [0x5au8; 4096];
    let latencies = (0..samples)
        .map(|_| {
            let t0 = Instant::now();
            file.write_all(&page).unwrap();
            file.sync_data().unwrap();
            t0.elapsed()
        })
        .collect();
    std::fs::remove_file(&path).unwrap();
    sorted(latencies)
}

fn timed<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let out = f();
    println!(
        "{label:<58} {:>10.1} ms",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    out
}

fn main() {
    let n: u64 = std::env::var("AUDIT_BENCH_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var("AUDIT_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| tmp.path().to_owned());
    std::fs::create_dir_all(&dir).unwrap();

    println!(
        "== append (group commit), entry ≈ {} bytes of input",
        serde_json::to_string(&entry(1).input).unwrap().len()
    );
    let modes = if std::env::var_os("AUDIT_BENCH_SKIP_APPEND").is_some() {
        vec![]
    } else {
        vec![("FULL", Synchronous::Full), ("NORMAL", Synchronous::Normal)]
    };
    let floor = fsync_floor(&dir, 2000);
    let floor_p99 = percentile(&floor, 0.99);
    println!(
        "disk floor: append 4 KiB + fdatasync, 2,000 samples:     latency {}",
        quantiles(&floor, &[("p50", 0.5), ("p99", 0.99), ("max", 1.0)])
    );
    for (name, sync) in modes {
        // Latency on a fresh log, before the saturated run: right after one, the WAL
        // checkpointer is still copying its ~100,000 entries into the database, and that I/O
        // (not the load offered here) sets the tail.
        let log = open(&dir.join(format!("latency-{name}.db")), sync);
        // A fixed offered load well below saturation: 64 tasks, each one append per ~5 ms.
        let (tasks, per_task) = (64, 200);
        let (rate, lat) = run_load(&log, 0, tasks, per_task, Some(Duration::from_millis(5)));
        println!(
            "synchronous={name:<6} offered load, 64 tasks: {rate:>7.0} entries/s   latency {}",
            quantiles(&sorted(lat), &[("p50", 0.5), ("p99", 0.99)])
        );
        // One caller appending back to back: the latency of an unloaded log, and its worst
        // case (a checkpoint every 1,000 entries).
        let (_, lat) = run_load(&log, tasks * per_task, 1, 5000, None);
        // What auditing adds to a call: its verdict and its outcome, appended one after the
        // other (the gateway commits the verdict before the run and the outcome before the
        // answer), so the sum of two consecutive appends.
        let per_call = sorted(lat.chunks_exact(2).map(|pair| pair[0] + pair[1]).collect());
        let tail = [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0)];
        println!(
            "synchronous={name:<6} one caller, 5,000 appends:        latency {}",
            quantiles(&sorted(lat), &tail)
        );
        println!(
            "synchronous={name:<6} one caller, per call (2 appends): latency {}",
            quantiles(&per_call, &tail)
        );
        if sync == Synchronous::Full {
            // The target for a durable log: what auditing adds to a call at p99 stays within
            // the disk's own fsync p99 plus 1 ms.
            let added = percentile(&per_call, 0.99);
            let target = floor_p99 + Duration::from_millis(1);
            println!(
                "synchronous=FULL   per call p99 {:.3} ms = {:.2}x the fsync p99; target fsync p99 + 1 ms = {:.3} ms: {}",
                added.as_secs_f64() * 1e3,
                added.as_secs_f64() / floor_p99.as_secs_f64(),
                target.as_secs_f64() * 1e3,
                if added <= target { "met" } else { "missed" },
            );
        }
        log.close().unwrap();
        let log = open(&dir.join(format!("throughput-{name}.db")), sync);
        let (rate, lat) = run_load(&log, 0, 256, 400, None);
        println!(
            "synchronous={name:<6} saturated, 256 tasks: {rate:>9.0} entries/s   latency {}",
            quantiles(&sorted(lat), &[("p50", 0.5), ("p99", 0.99)])
        );
        log.close().unwrap();
    }

    println!("== a log of {n} entries");
    let big = dir.join("big.db");
    if !big.exists() {
        let log = open(&big, Synchronous::Full);
        let t0 = Instant::now();
        // In chunks, so that the pre-built entries need not all be in memory at once.
        let tasks = 256;
        let per_chunk = (100_000 / tasks).max(1);
        let mut written = 0;
        while written + tasks * per_chunk <= n {
            run_load(&log, written, tasks, per_chunk, None);
            written += tasks * per_chunk;
        }
        for i in written..n {
            log.append_blocking(entry(i)).unwrap();
        }
        log.close().unwrap();
        let secs = t0.elapsed().as_secs_f64();
        println!("written in {secs:.1} s ({:.0} entries/s)", n as f64 / secs);
    }
    println!(
        "file size {:.0} MB",
        std::fs::metadata(&big).unwrap().len() as f64 / 1e6
    );
    let reader = AuditReader::open(&big).unwrap();
    let report = timed("verify (recompute every leaf, root, checkpoints)", || {
        verify(&reader, &VerifyOptions::default()).unwrap()
    });
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.entries, n);

    let q = |label: &str, f: EntryFilter| {
        let count = timed(label, || reader.query(&f).unwrap().len());
        println!("{:<58} {count:>10} rows", "");
    };
    q(
        "query: one call's story (call_id)",
        EntryFilter {
            call_id: Some(call_id(9999 * 5)),
            ..Default::default()
        },
    );
    q(
        "query: tool + verdict deny, newest 100",
        EntryFilter {
            tool: Some("tool-7".into()),
            verdict: Some("deny".into()),
            newest_first: true,
            limit: Some(100),
            ..Default::default()
        },
    );
    q(
        "query: caller, newest 100",
        EntryFilter {
            principal: Some("agent-7".into()),
            newest_first: true,
            limit: Some(100),
            ..Default::default()
        },
    );
    // Callers and tools are looked up per block of 1,024 entries (schema version 2): a key that
    // never occurs reads nothing, and the worst case is two keys that each occur in every block
    // but never in one entry, which reads every block.
    q(
        "query: caller that never called",
        EntryFilter {
            principal: Some("agent-unknown".into()),
            ..Default::default()
        },
    );
    q(
        "query: tool, every matching entry (no limit)",
        EntryFilter {
            tool: Some("tool-7".into()),
            ..Default::default()
        },
    );
    q(
        "query: caller + tool never together (reads every block)",
        EntryFilter {
            principal: Some("agent-0".into()),
            tool: Some("tool-1".into()),
            ..Default::default()
        },
    );
    let last_hour =
        gatehouse::audit::format_time(chrono::Utc::now() - chrono::Duration::minutes(1));
    q(
        "query: phase call + deny since 1 minute ago, limit 100",
        EntryFilter {
            phase: Some("call".into()),
            verdict: Some("deny".into()),
            since: Some(last_hour),
            limit: Some(100),
            ..Default::default()
        },
    );
    q(
        "query: text in reasons (full scan), limit 100",
        EntryFilter {
            text: Some("api29.example".into()),
            limit: Some(100),
            ..Default::default()
        },
    );
    timed("stats over the whole log", || reader.stats(None).unwrap());
}

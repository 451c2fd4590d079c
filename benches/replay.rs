//! Decision replay on a large log: what `gatehouse policy replay` costs per decision, next to
//! the floor measured in the same run, reading and parsing the same entries without deciding.
//!
//! The log holds `REPLAY_BENCH_ENTRIES` entries (default 1,000,000) shaped like the gateway's:
//! each call has its `call` decision, HTTP and file decisions, the `result` decision, the
//! outcome and sometimes a logged line; one call in six is denied. Inputs are built with the
//! gateway's own input builders and decided by the bundled policy (each kind of call once, its
//! verdict reused), so replaying with that bundle must change nothing, which is checked.
//!
//! Each replay decides with the interpreter (the gateway's default) on each thread count of
//! `REPLAY_BENCH_JOBS`, then with the compiled evaluator on the most threads.
//!
//! `cargo bench --bench replay` (release). Environment: `REPLAY_BENCH_ENTRIES`,
//! `REPLAY_BENCH_DIR` (where the log and its policy data are kept; an existing log is reused,
//! so `scripts/bench` can time the CLI on it afterwards), `REPLAY_BENCH_JOBS` (comma-separated
//! thread counts, default `1,2`).

use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

use gatehouse::audit::{AuditConfig, AuditLog, AuditReader, EntryFilter, NewEntry, Synchronous};
use gatehouse::auth::Caller;
use gatehouse::host::guard::{Access, FsAccess, HostRequest, HttpRequestFacts};
use gatehouse::policy::input::{ToolDoc, call_input, phase_input, shared_call_fields};
use gatehouse::policy::replay::{self, Recorded, ReplayOptions};
use gatehouse::policy::{Evaluator, Phase, PolicyOptions, PolicyStore};
use serde_json::{Value, json};

/// The gateway binary's allocator, so the figures are the shipped binary's.
#[global_allocator]
static ALLOCATOR: gatehouse::Allocator = gatehouse::Allocator;

/// Each decision's budget: generous, so that a loaded machine measures a slower replay rather
/// than timeouts (which replay would rightly report as changes).
const BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

/// Ten agents may call every tool; `mallory` none. HTTP to api.example.com, reads under /data.
fn policy_data() -> Value {
    let principals: serde_json::Map<String, Value> = (0..10)
        .map(|i| (format!("agent-{i}"), json!({"tools": ["*"]})))
        .collect();
    json!({
        "settings": {"mode": "dev"},
        "principals": principals,
        "http": {"allowed_domains": ["api.example.com"]},
        "fs": {"allowed_prefixes": ["/data"], "writable": []},
    })
}

/// The kinds of call in the log, in the order they repeat.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Echo,
    Fetch,
    Files,
    Denied,
}

const MIX: [Kind; 6] = [
    Kind::Echo,
    Kind::Fetch,
    Kind::Files,
    Kind::Fetch,
    Kind::Echo,
    Kind::Denied,
];

fn tool(kind: Kind) -> ToolDoc<'static> {
    let (name, function, component) = match kind {
        Kind::Echo | Kind::Denied => ("echo_echo", "echo", "echo"),
        Kind::Fetch => ("fetch_get", "get", "fetch"),
        Kind::Files => ("files_copy", "copy", "files"),
    };
    ToolDoc {
        name,
        function,
        interface: None,
        component_name: component,
        component_digest: "sha256:9f2c6d0e5b1a4f7c8e3d2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e",
        component_source: format!("/srv/components/{component}.wasm").into(),
        component_signed: false,
        component_signer: Value::Null,
        definition_changed: false,
    }
}

fn arguments(kind: Kind, i: u64) -> Value {
    match kind {
        Kind::Echo | Kind::Denied => json!({"message": format!("hello number {i}")}),
        Kind::Fetch => json!({"url": format!("https://api.example.com/v1/items/{i}?q=search")}),
        Kind::Files => json!({"path": format!("/data/in/{}.csv", i % 1000), "size": 4096}),
    }
}

fn http(host: &str, i: u64) -> HostRequest {
    let mut facts = HttpRequestFacts {
        method: "GET".into(),
        scheme: "https".into(),
        host: host.into(),
        port: 443,
        path: format!("/v1/items/{i}"),
        query: "q=search".into(),
        headers: [
            ("accept".to_owned(), json!("application/json")),
            ("user-agent".to_owned(), json!("gatehouse-tool/0.1")),
        ]
        .into_iter()
        .collect(),
        resolved_ips: Vec::new(),
        addresses: Vec::new(),
        body_size: None,
    };
    facts.set_resolved(["93.184.215.14".parse::<IpAddr>().unwrap()]);
    HostRequest::Http(facts)
}

fn fs(path: String, access: Access) -> HostRequest {
    HostRequest::Fs(FsAccess {
        operation: "open-at",
        path,
        requested: None,
        mount: "/data".into(),
        access,
        target: None,
        flags: match access {
            Access::Read => vec!["read"],
            Access::Write => vec!["create", "write"],
        },
    })
}

/// Decides and records every decision of call `i`, and its outcome; each kind's verdicts are
/// the bundle's for the first call of that kind and principal (they do not depend on the
/// call's id, time or counter).
struct Recorder {
    store: PolicyStore,
    verdicts: std::collections::HashMap<(Kind, String, usize), gatehouse::policy::Decision>,
}

impl Recorder {
    fn decide(
        &mut self,
        key: (Kind, String, usize),
        phase: Phase,
        input: &Value,
    ) -> gatehouse::policy::Decision {
        let store = &self.store;
        self.verdicts
            .entry(key)
            .or_insert_with(|| store.decide(phase, input))
            .clone()
    }

    fn call(&mut self, i: u64) -> Vec<NewEntry> {
        let kind = MIX[(i % MIX.len() as u64) as usize];
        let principal = if kind == Kind::Denied {
            "mallory".to_owned()
        } else {
            format!("agent-{}", i % 10)
        };
        let caller = Caller::operator(principal.clone());
        let caller_json = serde_json::to_value(&caller).unwrap();
        let call_id = format!("0193a5c2-{:04x}-7000-8000-{:012x}", i % 0xffff, i);
        let time = gatehouse::audit::format_time(chrono::Utc::now());
        let tool = tool(kind);
        // Each call in a session of its own, recorded as the gateway records it (no history).
        let session =
            json!({"id": format!("s-{call_id}"), "started": time, "labels": [], "decisions": 0});
        let input = call_input(
            &call_id,
            &time,
            &caller,
            session.clone(),
            &tool,
            arguments(kind, i),
        );
        let shared = shared_call_fields(&input);
        let entry = |phase: &str, decision: &gatehouse::policy::Decision, input: Value| {
            let mut e = NewEntry::new(phase, decision.verdict.as_str(), caller_json.clone(), input);
            e.call_id = Some(call_id.clone());
            e.tool = Some(tool.name.to_owned());
            e.component_digest = Some(tool.component_digest.to_owned());
            e.policy_revision = Some(decision.revision.clone());
            e.reasons = decision.reasons.clone();
            e.redact = decision.redact.clone();
            e.metrics = json!({"eval_us": decision.eval_micros});
            e
        };
        let decision = self.decide((kind, principal.clone(), 0), Phase::Call, &input);
        let mut entries = vec![entry("call", &decision, input)];
        let allowed = decision.is_allowed();
        if allowed {
            let requests = match kind {
                Kind::Echo | Kind::Denied => vec![],
                Kind::Fetch => vec![http("api.example.com", i), http("collect.example.net", i)],
                Kind::Files => vec![
                    fs(format!("/data/in/{}.csv", i % 1000), Access::Read),
                    // Denied: its reason quotes the path, so it is the same for every call.
                    fs("/data/out/report.csv".to_owned(), Access::Write),
                ],
            };
            for (n, request) in requests.into_iter().enumerate() {
                let input = phase_input(
                    &shared,
                    request.phase(),
                    &time,
                    session.clone(),
                    request.input_field(),
                    request.to_json(),
                );
                let phase = request.phase().parse().unwrap();
                let decision = self.decide((kind, principal.clone(), n + 1), phase, &input);
                entries.push(entry(request.phase(), &decision, input));
            }
            let result = json!({"ok": true, "size": 42, "value": format!("done with {i}")});
            let input = phase_input(&shared, "result", &time, session, "result", result);
            let decision = self.decide((kind, principal.clone(), 9), Phase::Result, &input);
            let mut result = entry("result", &decision, input);
            // The gateway always keeps the result's value as a keyed digest only.
            result.redact.push("/result/value".into());
            entries.push(result);
        }
        let mut outcome = NewEntry::new(
            "outcome",
            if allowed { "ok" } else { "denied" },
            caller_json.clone(),
            json!({"phase": "outcome", "call": {"id": call_id}}),
        );
        outcome.call_id = Some(call_id.clone());
        outcome.tool = Some(tool.name.to_owned());
        outcome.metrics = json!({"duration_us": 900 + i % 300});
        entries.push(outcome);
        if kind == Kind::Fetch {
            let mut line = NewEntry::new(
                "log",
                "info",
                caller_json,
                json!({"phase": "log", "call": {"id": call_id}, "log": {"level": "info", "context": "fetch", "message": format!("fetched item {i}")}}),
            );
            line.call_id = Some(call_id);
            line.tool = Some(tool.name.to_owned());
            entries.push(line);
        }
        entries
    }
}

fn write_log(path: &Path, store: &PolicyStore, n: u64) {
    let log = AuditLog::open(
        path,
        AuditConfig {
            origin: Some("bench/replay".into()),
            synchronous: Synchronous::Normal,
            ..Default::default()
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut recorder = Recorder {
        store: store.clone(),
        verdicts: Default::default(),
    };
    let t0 = Instant::now();
    let (mut written, mut call) = (0u64, 0u64);
    while written < n {
        let mut pending = Vec::new();
        while pending.len() < 4096 && written < n {
            for entry in recorder.call(call) {
                if written < n {
                    pending.push(log.submit(entry).unwrap());
                    written += 1;
                }
            }
            call += 1;
        }
        rt.block_on(async {
            for p in pending {
                p.committed().await.unwrap();
            }
        });
    }
    log.close().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    println!("written {n} entries ({call} calls) in {secs:.1} s");
}

fn filter() -> EntryFilter {
    EntryFilter {
        phases: Phase::ALL.iter().map(|p| p.as_str().to_owned()).collect(),
        ..Default::default()
    }
}

fn main() {
    let n: u64 = std::env::var("REPLAY_BENCH_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let jobs: Vec<usize> = std::env::var("REPLAY_BENCH_JOBS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .map(|j| j.trim().parse().expect("REPLAY_BENCH_JOBS: thread counts"))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var("REPLAY_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| tmp.path().to_owned());
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("policy-data.json");
    std::fs::write(&data, policy_data().to_string()).unwrap();
    let store = PolicyStore::load(
        POLICIES,
        std::slice::from_ref(&data),
        PolicyOptions {
            run_tests: false,
            time_budget: BUDGET,
            ..Default::default()
        },
    )
    .unwrap();
    let db = dir.join(format!("replay-{n}.db"));
    println!(
        "== decision replay, a log of {n} entries ({})",
        db.display()
    );
    if !db.exists() {
        write_log(&db, &store, n);
    }
    println!(
        "file size {:.0} MB",
        std::fs::metadata(&db).unwrap().len() as f64 / 1e6
    );
    let reader = AuditReader::open(&db).unwrap();

    // The floor: read and parse every decision entry replay reads, as it converts them.
    let t0 = Instant::now();
    let mut decisions = 0u64;
    reader
        .for_each(&filter(), |entry| {
            std::hint::black_box(Recorded::from(entry));
            decisions += 1;
            Ok(())
        })
        .unwrap();
    let floor = t0.elapsed().as_secs_f64();
    println!(
        "floor: read and parse {decisions} decision entries       {floor:>7.2} s  {:>9.0} decisions/s  {:>9.0} log entries/s",
        decisions as f64 / floor,
        n as f64 / floor
    );
    let compiled = PolicyStore::load(
        POLICIES,
        std::slice::from_ref(&data),
        PolicyOptions {
            run_tests: false,
            time_budget: BUDGET,
            evaluator: Evaluator::Compiled,
            ..Default::default()
        },
    )
    .unwrap();
    let most = jobs.iter().copied().max().unwrap_or(1);
    let runs = jobs
        .iter()
        .map(|&j| ("interpreter", &store, j))
        .chain(std::iter::once(("compiled", &compiled, most)));
    for (evaluator, store, jobs) in runs {
        let t0 = Instant::now();
        let report = replay::replay(
            store,
            &ReplayOptions {
                jobs,
                max_listed: Some(100),
            },
            |decide| {
                reader.for_each(&filter(), |entry| {
                    decide(Recorded::from(entry));
                    Ok(())
                })
            },
        )
        .unwrap();
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "replay, {evaluator:<11} {jobs} thread(s) deciding:        {secs:>7.2} s  {:>9.0} decisions/s  {:>9.0} log entries/s  {:.1}x the floor",
            report.replayed as f64 / secs,
            n as f64 / secs,
            secs / floor
        );
        assert!(
            !report.has_changes(),
            "the bundle that decided changes its own decisions: {:?}",
            &report.changes[..report.changes.len().min(3)]
        );
        assert_eq!(
            report.replayed + report.skipped.values().sum::<u64>(),
            decisions
        );
    }
}

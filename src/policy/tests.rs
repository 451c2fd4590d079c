//! Tests of the policy store against small bundles written to temporary directories.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::testing::{self, Outcome, TestOptions};
use super::*;

const ALLOW_ALL: &str = "package gatehouse.call\n\ndefault allow := false\n\nallow if input.caller.principal == \"alice\"\n";

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (path, contents) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

fn bundle(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), files);
    dir
}

fn load(dir: &Path) -> PolicyStore {
    PolicyStore::load(dir, &[], PolicyOptions::default()).unwrap()
}

fn alice() -> serde_json::Value {
    json!({"phase": "call", "caller": {"principal": "alice"}})
}

fn only_reason(decision: &Decision) -> &str {
    assert!(!decision.is_allowed(), "expected a deny: {decision:?}");
    assert_eq!(decision.reasons.len(), 1, "{decision:?}");
    &decision.reasons[0]
}

fn call_package(body: &str) -> tempfile::TempDir {
    bundle(&[(
        "call.rego",
        &format!("package gatehouse.call\n\ndefault allow := true\n\n{body}\n"),
    )])
}

#[test]
fn allow_and_deny_make_the_verdict() {
    let dir = bundle(&[(
        "call.rego",
        "package gatehouse.call\n\ndefault allow := false\n\nallow if input.caller.principal == \"alice\"\n\ndeny contains \"no evil\" if input.arguments.evil\n",
    )]);
    let store = load(dir.path());
    let allowed = store.decide(Phase::Call, &alice());
    assert!(allowed.is_allowed(), "{allowed:?}");
    assert_eq!(allowed.revision, store.revision());
    assert!(store.revision().starts_with("sha256:") && store.revision().len() == 71);

    let vetoed = store.decide(
        Phase::Call,
        &json!({"caller": {"principal": "alice"}, "arguments": {"evil": true}}),
    );
    assert_eq!(only_reason(&vetoed), "no evil");
    assert!(vetoed.allow);

    let bob = store.decide(Phase::Call, &json!({"caller": {"principal": "bob"}}));
    assert_eq!(
        only_reason(&bob),
        "not allowed by gatehouse.call (allow is false)"
    );
}

#[test]
fn undefined_phase_package_denies() {
    let dir = bundle(&[("call.rego", ALLOW_ALL)]);
    let store = load(dir.path());
    assert!(!store.defines(Phase::Http));
    let decision = store.decide(Phase::Http, &json!({"phase": "http"}));
    assert_eq!(
        only_reason(&decision),
        "policy error: bundle defines no gatehouse.http package, so every http decision is a deny"
    );
}

#[test]
fn deny_that_is_not_a_set_of_strings_denies() {
    let dir = call_package("deny := \"nope\"");
    let decision = load(dir.path()).decide(Phase::Call, &alice());
    assert_eq!(
        only_reason(&decision),
        "policy error: gatehouse.call.deny must be a set of strings, got string"
    );
    let dir = call_package("deny contains 42 if true");
    let decision = load(dir.path()).decide(Phase::Call, &alice());
    assert_eq!(
        only_reason(&decision),
        "policy error: gatehouse.call.deny must be a set of strings, got a set containing a number"
    );
}

#[test]
fn bad_limits_deny_naming_the_key() {
    let dir = call_package("limits := {\"timeout_ms\": 10, \"timeout\": 5}");
    let decision = load(dir.path()).decide(Phase::Call, &alice());
    assert!(
        only_reason(&decision).starts_with(
            "policy error: gatehouse.call.limits has unknown key \"timeout\" (known: timeout_ms,"
        ),
        "{decision:?}"
    );
    let dir = call_package("limits := {\"fuel\": -3}");
    let decision = load(dir.path()).decide(Phase::Call, &alice());
    assert_eq!(
        only_reason(&decision),
        "policy error: gatehouse.call.limits.fuel must be a non-negative integer, got -3"
    );
    let dir = call_package("limits := {\"fuel\": 1000, \"max_requests\": 3}");
    let decision = load(dir.path()).decide(Phase::Call, &alice());
    assert!(decision.is_allowed());
    assert_eq!(decision.limits.fuel, Some(1000));
    assert_eq!(decision.limits.max_requests, Some(3));
}

#[test]
fn evaluation_errors_deny_with_their_location() {
    let dir = call_package("deny contains \"x\" if { y := 1 / input.zero; y > 0 }");
    let decision = load(dir.path()).decide(
        Phase::Call,
        &json!({"caller": {"principal": "alice"}, "zero": 0}),
    );
    let reason = only_reason(&decision);
    assert!(
        reason.starts_with("policy error: evaluation failed: call.rego:5:")
            && reason.contains("divide by zero"),
        "{reason}"
    );

    // Builtin errors are strict: a bad argument denies instead of silently becoming undefined.
    let dir = call_package("deny contains \"bad\" if { not to_number(input.n) }");
    let decision = load(dir.path()).decide(
        Phase::Call,
        &json!({"caller": {"principal": "alice"}, "n": "abc"}),
    );
    assert!(
        only_reason(&decision).starts_with("policy error: evaluation failed: call.rego:5:"),
        "{decision:?}"
    );
}

#[test]
fn network_and_clock_builtins_are_unavailable() {
    let dir = call_package("deny contains \"late\" if time.now_ns() > 0");
    let decision = load(dir.path()).decide(Phase::Call, &alice());
    assert!(
        only_reason(&decision)
            .contains("time.now_ns is disabled in Gatehouse policies: use input.time"),
        "{decision:?}"
    );

    let dir = call_package(
        "deny contains \"fetched\" if { http.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1/\"}) }",
    );
    // Either rejected at load or denied at evaluation: never allowed, never sent.
    if let Ok(store) = PolicyStore::load(dir.path(), &[], PolicyOptions::default()) {
        let decision = store.decide(Phase::Call, &alice());
        assert!(only_reason(&decision).contains("http.send"), "{decision:?}");
    }
}

#[test]
fn time_budget_exceeded_denies() {
    let dir = call_package(
        "deny contains \"never\" if {\n  r := numbers.range(1, 2000)\n  some a in r\n  some b in r\n  some c in r\n  a + b + c < 0\n}",
    );
    for evaluator in [Evaluator::Interpreter, Evaluator::Compiled] {
        let store = PolicyStore::load(
            dir.path(),
            &[],
            PolicyOptions {
                time_budget: Duration::from_millis(20),
                evaluator,
                ..PolicyOptions::default()
            },
        )
        .unwrap();
        let start = Instant::now();
        let (decision, explanation) = store.explain(Phase::Call, &alice());
        assert!(
            explanation
                .evaluator
                .starts_with(&format!("{evaluator:?}").to_lowercase()),
            "{evaluator:?}: {}",
            explanation.evaluator
        );
        assert_eq!(
            only_reason(&decision),
            "policy error: evaluation exceeded 20ms budget"
        );
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{evaluator:?} stopped late: {:?}",
            start.elapsed()
        );
        // The store stays usable after a timeout.
        assert!(!store.decide(Phase::Call, &alice()).is_allowed());
    }
}

#[test]
fn bad_inputs_deny_unevaluated() {
    let dir = bundle(&[("call.rego", ALLOW_ALL)]);
    let store = load(dir.path());
    let big = json!({"caller": {"principal": "alice"}, "arguments": {"blob": "x".repeat(1 << 20)}});
    assert_eq!(
        only_reason(&store.decide(Phase::Call, &big)),
        "policy error: input too large: more than 1048576 bytes of JSON"
    );
    assert_eq!(
        only_reason(&store.decide(Phase::Call, &json!(["alice"]))),
        "policy error: input must be a JSON object, got array"
    );
    assert_eq!(
        only_reason(&store.decide(
            Phase::Call,
            &json!({"phase": "list", "caller": {"principal": "alice"}})
        )),
        "policy error: input.phase is \"list\" but the decision is for phase \"call\""
    );
}

#[test]
fn bundles_that_would_deny_or_confuse_are_rejected_at_load() {
    let dir = bundle(&[(
        "list.rego",
        "package gatehouse.list\n\ndefault allow := true\n",
    )]);
    let error = PolicyStore::load(dir.path(), &[], PolicyOptions::default()).unwrap_err();
    assert!(matches!(error, PolicyError::MissingCallPackage));
    assert_eq!(
        error.to_string(),
        "bundle defines no gatehouse.call package: every call would be denied"
    );

    let dir = bundle(&[(
        "call.rego",
        "package gatehouse.call\n\ndeny contains \"x\" if true\n",
    )]);
    let error = PolicyStore::load(dir.path(), &[], PolicyOptions::default()).unwrap_err();
    assert!(matches!(error, PolicyError::MissingCallAllow), "{error}");

    let dir = bundle(&[
        ("call.rego", ALLOW_ALL),
        (
            "extra/exec.rego",
            "package gatehouse.exec\n\nallow := true\n",
        ),
    ]);
    let error = PolicyStore::load(dir.path(), &[], PolicyOptions::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "extra/exec.rego: package gatehouse.exec is not a phase package: packages under \
         gatehouse. must be gatehouse.<phase> with phase one of list, call, http, fs, socket, result"
    );

    let dir = bundle(&[("call.rego", ALLOW_ALL), ("data.json", "[1, 2]")]);
    let error = PolicyStore::load(dir.path(), &[], PolicyOptions::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "bad data file data.json: the top level must be an object"
    );
}

#[test]
fn parse_errors_name_file_and_line() {
    let dir = bundle(&[
        ("call.rego", ALLOW_ALL),
        (
            "sub/broken.rego",
            "package lib\n\nx if {\n    input.a ==\n}\n",
        ),
    ]);
    let error = PolicyStore::load(dir.path(), &[], PolicyOptions::default()).unwrap_err();
    let PolicyError::Parse { file, message } = &error else {
        panic!("expected a parse error, got {error}");
    };
    assert_eq!(file, "sub/broken.rego");
    assert!(message.starts_with("sub/broken.rego:5:1: "), "{message}");
    assert!(
        error
            .to_string()
            .starts_with("invalid Rego: sub/broken.rego:5:1: ")
    );
}

#[test]
fn revision_covers_every_file_that_goes_in_and_nothing_else() {
    let dir = bundle(&[
        ("call.rego", ALLOW_ALL),
        (
            "call_test.rego",
            "package gatehouse.call_test\n\ntest_t if true\n",
        ),
        ("data.json", "{\"a\": 1}"),
    ]);
    let extra = dir.path().join("extra.json");
    std::fs::write(&extra, "{\"b\": 2}").unwrap();
    let read =
        |extra_data: &[PathBuf]| BundleSource::read(dir.path(), extra_data).unwrap().revision;

    let base = read(std::slice::from_ref(&extra));
    assert_eq!(
        read(std::slice::from_ref(&extra)),
        base,
        "stable across reads"
    );
    assert_ne!(read(&[]), base, "extra data counts");

    // Files that are not part of the bundle do not count.
    write(
        dir.path(),
        &[
            ("README.md", "docs"),
            (".call.rego.swp", "junk"),
            ("sub/data.json", "{}"),
        ],
    );
    assert_eq!(read(std::slice::from_ref(&extra)), base);

    for (file, contents) in [
        ("call.rego", format!("{ALLOW_ALL}\n# comment\n")),
        (
            "call_test.rego",
            "package gatehouse.call_test\n\ntest_u if true\n".into(),
        ),
        ("data.json", "{\"a\": 2}".into()),
        ("extra.json", "{\"b\": 3}".into()),
        ("more/lib.rego", "package lib\n".into()),
    ] {
        let path = dir.path().join(file);
        let before = std::fs::read(&path).ok();
        write(dir.path(), &[(file, &contents)]);
        assert_ne!(read(std::slice::from_ref(&extra)), base, "{file} changed");
        match before {
            Some(bytes) => std::fs::write(&path, bytes).unwrap(),
            None => std::fs::remove_file(&path).unwrap(),
        }
        assert_eq!(read(std::slice::from_ref(&extra)), base, "{file} restored");
    }
}

#[test]
fn extra_data_is_merged_over_the_bundle_data_in_order() {
    let dir = bundle(&[
        (
            "call.rego",
            "package gatehouse.call\n\ndefault allow := false\n\nallow if data.settings.mode == \"dev\"\n\nlimits := {\"fuel\": data.fuel}\n",
        ),
        (
            "data.json",
            "{\"settings\": {\"mode\": \"enforce\"}, \"fuel\": 1}",
        ),
    ]);
    let first = dir.path().join("dev.yaml");
    let second = dir.path().join("fuel.json");
    std::fs::write(&first, "settings:\n  mode: dev\nfuel: 2\n").unwrap();
    std::fs::write(&second, "{\"fuel\": 3}").unwrap();

    let enforce = load(dir.path()).decide(Phase::Call, &json!({}));
    assert!(!enforce.is_allowed());
    let store = PolicyStore::load(dir.path(), &[first, second], PolicyOptions::default()).unwrap();
    let dev = store.decide(Phase::Call, &json!({}));
    assert!(dev.is_allowed(), "{dev:?}");
    assert_eq!(dev.limits.fuel, Some(3), "later files win");
}

#[test]
fn bundle_tests_run_against_the_bundle_data_not_the_operator_data() {
    let dir = bundle(&[
        (
            "call.rego",
            "package gatehouse.call\n\ndefault allow := false\n\nallow if data.settings.mode == \"dev\"\n",
        ),
        ("data.json", "{\"settings\": {\"mode\": \"enforce\"}}"),
        (
            "call_test.rego",
            "package gatehouse.call_test\n\nimport data.gatehouse.call\n\ntest_shipped_data_denies if not call.allow\n",
        ),
    ]);
    let dev = dir.path().join("dev.json");
    std::fs::write(&dev, "{\"settings\": {\"mode\": \"dev\"}}").unwrap();
    let store = PolicyStore::load(
        dir.path(),
        std::slice::from_ref(&dev),
        PolicyOptions::default(),
    )
    .unwrap();
    assert!(store.decide(Phase::Call, &json!({})).is_allowed());

    // Asked for explicitly, the tests see the operator's data (and this one fails).
    let source = BundleSource::read(dir.path(), &[dev]).unwrap();
    let report = testing::run(&source, &TestOptions::default()).unwrap();
    assert_eq!(report.summary(), "0 passed, 1 failed");
}

#[test]
fn reload_keeps_the_old_bundle_when_the_new_one_is_bad() {
    let dir = bundle(&[
        ("call.rego", ALLOW_ALL),
        (
            "call_test.rego",
            "package gatehouse.call_test\n\nimport data.gatehouse.call\n\ntest_alice if call.allow with input as {\"caller\": {\"principal\": \"alice\"}}\n",
        ),
    ]);
    let store = load(dir.path());
    let first = store.revision();
    assert_eq!(
        store.reload().unwrap(),
        first,
        "unchanged bundle, same revision"
    );

    // A parse error: rejected with file and line, old bundle serves.
    write(
        dir.path(),
        &[("call.rego", "package gatehouse.call\n\nallow if {\n")],
    );
    let error = store.reload().unwrap_err();
    assert!(
        error.to_string().starts_with("invalid Rego: call.rego:4:"),
        "{error}"
    );
    assert_eq!(store.revision(), first);
    assert!(store.decide(Phase::Call, &alice()).is_allowed());

    // Parses, but its own test fails: rejected naming the test, file and line.
    write(
        dir.path(),
        &[(
            "call.rego",
            "package gatehouse.call\n\ndefault allow := false\n",
        )],
    );
    let error = store.reload().unwrap_err();
    let PolicyError::TestsFailed { failures } = &error else {
        panic!("expected failing tests, got {error}");
    };
    assert_eq!(
        failures,
        &vec![
            "data.gatehouse.call_test.test_alice (call_test.rego:5) evaluated to undefined"
                .to_string()
        ]
    );
    assert_eq!(store.revision(), first);
    assert!(store.decide(Phase::Call, &alice()).is_allowed());

    // A good change is swapped in.
    write(
        dir.path(),
        &[(
            "call.rego",
            "package gatehouse.call\n\ndefault allow := false\n\nallow if input.caller.principal in {\"alice\", \"bob\"}\n",
        )],
    );
    let second = store.reload().unwrap();
    assert_ne!(second, first);
    assert_eq!(store.revision(), second);
    let bob = store.decide(Phase::Call, &json!({"caller": {"principal": "bob"}}));
    assert!(bob.is_allowed());
    assert_eq!(bob.revision, second);
}

/// Polls `condition` every 20 ms until it holds or `limit` passes.
fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

#[test]
fn watch_reloads_when_a_file_changes() {
    let dir = bundle(&[("call.rego", ALLOW_ALL)]);
    let store = load(dir.path());
    let first = store.revision();
    let watcher = store.watch().unwrap();

    write(
        dir.path(),
        &[(
            "policies/more.rego",
            "package gatehouse.list\n\ndefault allow := true\n",
        )],
    );
    assert!(
        wait_until(Duration::from_secs(10), || store.revision() != first),
        "revision did not change"
    );
    assert!(store.defines(Phase::List));

    // A broken file is rejected and the last good bundle keeps serving.
    let second = store.revision();
    write(
        dir.path(),
        &[("call.rego", "package gatehouse.call\nallow if {\n")],
    );
    std::thread::sleep(DEBOUNCE * 3);
    assert_eq!(store.revision(), second);
    assert!(store.decide(Phase::Call, &alice()).is_allowed());
    drop(watcher);
}

#[cfg(unix)]
#[test]
fn sighup_reloads() {
    let dir = bundle(&[("call.rego", ALLOW_ALL)]);
    let store = load(dir.path());
    let first = store.revision();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    runtime.spawn(reload_on_sighup(store.clone()).unwrap());

    write(
        dir.path(),
        &[(
            "list.rego",
            "package gatehouse.list\n\ndefault allow := true\n",
        )],
    );
    assert_eq!(store.revision(), first, "nothing reloads by itself");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        wait_until(Duration::from_secs(10), || store.revision() != first),
        "SIGHUP did not reload"
    );
}

#[test]
fn decisions_from_many_threads_agree() {
    let dir = bundle(&[(
        "call.rego",
        "package gatehouse.call\n\ndefault allow := false\n\nallow if input.caller.principal == \"alice\"\n\ndeny contains sprintf(\"n=%d\", [input.n]) if input.n % 2 == 1\n",
    )]);
    // What is tested is agreement, not speed: a budget no loaded CI machine exceeds.
    let options = PolicyOptions {
        time_budget: std::time::Duration::from_secs(10),
        ..PolicyOptions::default()
    };
    let store = PolicyStore::load(dir.path(), &[], options).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..200u64 {
                    let n = t * 1000 + i;
                    let decision = store.decide(
                        Phase::Call,
                        &json!({"caller": {"principal": "alice"}, "n": n}),
                    );
                    if n % 2 == 1 {
                        assert_eq!(decision.reasons, vec![format!("n={n}")]);
                    } else {
                        assert!(decision.is_allowed(), "{decision:?}");
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn explain_shows_rule_values_and_prints() {
    let dir = bundle(&[(
        "call.rego",
        "package gatehouse.call\n\ndefault allow := false\n\nis_alice if input.caller.principal == \"alice\"\n\nallow if {\n  print(\"checking\", input.caller.principal)\n  is_alice\n}\n",
    )]);
    let (decision, explanation) = load(dir.path()).explain(Phase::Call, &alice());
    assert!(decision.is_allowed());
    assert_eq!(explanation.rules["is_alice"], json!(true));
    assert_eq!(explanation.rules["allow"], json!(true));
    assert!(
        explanation
            .prints
            .iter()
            .any(|p| p.contains("checking alice")),
        "{:?}",
        explanation.prints
    );
    assert!(explanation.evaluated_lines["call.rego"].contains(&9));
}

#[test]
fn the_test_runner_reports_pass_fail_error_skip_prints_and_coverage() {
    let dir = bundle(&[
        ("call.rego", ALLOW_ALL),
        (
            "call_test.rego",
            "package gatehouse.call_test\n\nimport data.gatehouse.call\n\n\
             test_alice if call.allow with input as {\"caller\": {\"principal\": \"alice\"}}\n\n\
             test_bob if {\n    print(\"bob's turn\")\n    call.allow with input as {\"caller\": {\"principal\": \"bob\"}}\n}\n\n\
             test_error if 1 / 0 == 1\n\n\
             todo_later if false\n\n\
             # test_in_comment if false\n",
        ),
    ]);
    let source = BundleSource::read(dir.path(), &[]).unwrap();
    let report = testing::run(
        &source,
        &TestOptions {
            coverage: true,
            verbose: true,
            ..TestOptions::default()
        },
    )
    .unwrap();
    let outcomes: Vec<(&str, &Outcome)> = report
        .results
        .iter()
        .map(|r| (r.name.as_str(), &r.outcome))
        .collect();
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    assert_eq!(
        outcomes[0],
        ("data.gatehouse.call_test.test_alice", &Outcome::Pass)
    );
    assert_eq!(
        outcomes[1],
        (
            "data.gatehouse.call_test.test_bob",
            &Outcome::Fail {
                value: "undefined".into()
            }
        )
    );
    assert!(
        matches!(outcomes[2].1, Outcome::Error { message } if message.contains("call_test.rego:12:17:") && message.contains("divide by zero")),
        "{:?}",
        outcomes[2]
    );
    assert_eq!(
        outcomes[3],
        ("data.gatehouse.call_test.todo_later", &Outcome::Skip)
    );

    let bob = &report.results[1];
    assert_eq!(bob.line, 7);
    assert!(bob.prints.iter().any(|p| p.contains("bob's turn")));
    assert_eq!(bob.stopped_at.as_ref().map(|s| s.0), Some(9));

    assert_eq!(report.summary(), "1 passed, 2 failed, 1 skipped");
    let rendered = report.render(true);
    assert!(rendered.contains("data.gatehouse.call_test.test_bob: FAIL ("));
    assert!(
        rendered.contains("last expression evaluated: call_test.rego:9: call.allow with input as")
    );
    assert!(rendered.ends_with("1 passed, 2 failed, 1 skipped\n"));

    let coverage = report.coverage.as_ref().unwrap();
    assert_eq!(
        coverage.len(),
        1,
        "test files are not in the coverage table"
    );
    assert_eq!(coverage[0].file, "call.rego");
    assert!(coverage[0].covered.contains(&5));

    let filtered = testing::run(
        &source,
        &TestOptions {
            run: Some(regex::Regex::new("alice").unwrap()),
            ..TestOptions::default()
        },
    )
    .unwrap();
    assert_eq!(filtered.summary(), "1 passed, 0 failed");
}

#[test]
fn the_default_bundle_loads_passes_its_tests_and_denies_by_default() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let store = load(&dir);
    for phase in Phase::ALL {
        assert!(store.defines(phase), "{phase}");
        let decision = store.decide(phase, &json!({"phase": phase.as_str()}));
        assert!(!decision.is_allowed(), "{phase}: {decision:?}");
    }
}

#[test]
fn the_store_can_be_shared_across_threads_and_tasks() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<PolicyStore>();
    shareable::<Decision>();
}

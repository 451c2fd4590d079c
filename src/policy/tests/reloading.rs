//! Reloading: a bad bundle leaves the old one serving; a changed file and SIGHUP reload.

use std::time::{Duration, Instant};

use super::*;

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

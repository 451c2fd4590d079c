//! Decisions: allow and deny make the verdict; undefined packages, errors, timeouts, bad
//! obligations and bad input deny and say why; `explain` shows rule values and prints.

use std::time::{Duration, Instant};

use super::*;

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

//! Replay: recorded decisions decided again and compared; what is skipped and why; phases the
//! bundle lacks; the same report from one thread or several.

use serde_json::json;

use super::*;
use crate::policy::replay::{self, ChangeKind, Recorded, ReplayOptions, Report};

/// Alice may call; any call with `arguments.evil` is vetoed; `arguments.n` must be a number
/// (a string makes the evaluation fail).
const CALL: &str = "package gatehouse.call\n\ndefault allow := false\n\n\
    allow if { input.caller.principal == \"alice\"; not input.arguments.n }\n\
    allow if { input.caller.principal == \"alice\"; to_number(input.arguments.n) > 0 }\n\n\
    deny contains \"no evil\" if input.arguments.evil\n";

fn recorded(seq: u64, principal: &str, arguments: serde_json::Value, verdict: &str) -> Recorded {
    Recorded {
        seq,
        time: format!("2026-12-06T10:00:{:02}.000Z", seq % 60),
        call_id: Some(format!("call-{seq}")),
        phase: "call".into(),
        principal: Some(principal.into()),
        tool: Some(format!("tool-{}", seq % 3)),
        input: json!({"phase": "call", "caller": {"principal": principal}, "arguments": arguments}),
        verdict: verdict.into(),
        reasons: Vec::new(),
        redacted: false,
        refused_by: None,
    }
}

fn denied(mut r: Recorded, reasons: &[&str]) -> Recorded {
    r.reasons = reasons.iter().map(|r| (*r).to_owned()).collect();
    r
}

fn run(store: &PolicyStore, entries: Vec<Recorded>, jobs: usize, max: Option<usize>) -> Report {
    replay::replay(
        store,
        &ReplayOptions {
            jobs,
            max_listed: max,
        },
        |decide| {
            entries.into_iter().for_each(decide);
            Ok::<(), ()>(())
        },
    )
    .unwrap()
}

#[test]
fn changes_are_found_by_kind_and_counted_by_tool_and_caller() {
    let dir = bundle(&[("call.rego", CALL)]);
    let store = load(dir.path());
    let not_allowed = "not allowed by gatehouse.call (allow is false)";
    let entries = vec![
        recorded(1, "alice", json!({}), "allow"),
        // Was allowed; the bundle no longer allows bob.
        recorded(2, "bob", json!({}), "allow"),
        // Was denied for another reason; now allowed.
        denied(recorded(3, "alice", json!({}), "deny"), &["old rule"]),
        denied(recorded(4, "bob", json!({}), "deny"), &[not_allowed]),
        // Denied both times, for other reasons (the order of a set does not count).
        denied(
            recorded(5, "alice", json!({"evil": true}), "deny"),
            &["was evil"],
        ),
        denied(
            recorded(6, "bob", json!({"evil": true}), "deny"),
            &["no evil"],
        ),
    ];
    let report = run(&store, entries, 1, None);
    assert_eq!(report.revision, store.revision());
    assert_eq!((report.replayed, report.unchanged), (6, 3));
    let found: Vec<(u64, ChangeKind)> = report.changes.iter().map(|c| (c.seq, c.kind)).collect();
    assert_eq!(
        found,
        [
            (2, ChangeKind::AllowToDeny),
            (3, ChangeKind::DenyToAllow),
            (5, ChangeKind::ReasonsChanged)
        ]
    );
    let bob = &report.changes[0];
    assert_eq!(bob.replayed_reasons, [not_allowed]);
    assert_eq!(bob.call_id.as_deref(), Some("call-2"));
    assert!(!bob.policy_error && !bob.redacted && bob.notes().is_empty());
    assert_eq!(report.changes[2].replayed_reasons, ["no evil"]);
    assert_eq!(report.changed.total(), 3);
    assert_eq!(report.by_caller["bob"].allow_to_deny, 1);
    assert_eq!(report.by_caller["alice"].deny_to_allow, 1);
    assert_eq!(report.by_caller["alice"].reasons_changed, 1);
    assert_eq!(report.by_tool["tool-2"].allow_to_deny, 1);
    assert_eq!(report.by_tool["tool-0"].deny_to_allow, 1);
    assert_eq!(report.by_phase[&Phase::Call].total(), 3);
}

#[test]
fn an_evaluation_error_is_a_deny_and_says_so() {
    let dir = bundle(&[("call.rego", CALL)]);
    let report = run(
        &load(dir.path()),
        vec![recorded(1, "alice", json!({"n": "x"}), "allow")],
        1,
        None,
    );
    let change = &report.changes[0];
    assert_eq!(change.kind, ChangeKind::AllowToDeny);
    assert!(change.policy_error, "{change:?}");
    assert!(change.replayed_reasons[0].starts_with("policy error: "));
    assert_eq!(change.notes(), ["policy error"]);
    assert_eq!(report.policy_errors, 1);
}

#[test]
fn entries_without_a_policy_decision_are_skipped_with_the_reason() {
    let dir = bundle(&[("call.rego", CALL)]);
    let mut listing = recorded(1, "alice", json!({}), "allow");
    listing.phase = "list".into();
    let mut outcome = recorded(2, "alice", json!({}), "ok");
    outcome.phase = "outcome".into();
    let mut refused = recorded(3, "alice", json!({}), "deny");
    refused.phase = "http".into();
    refused.refused_by = Some("host".into());
    let odd = recorded(4, "alice", json!({}), "maybe");
    let report = run(
        &load(dir.path()),
        vec![listing, outcome, refused, odd],
        1,
        None,
    );
    assert_eq!(report.replayed, 0);
    let skipped: Vec<(&str, u64)> = report
        .skipped
        .iter()
        .map(|(why, n)| (why.as_str(), *n))
        .collect();
    assert_eq!(
        skipped,
        [
            (
                "call: verdict \"maybe\" is not a decision (allow, deny or ask)",
                1
            ),
            ("http: refused by the host before the policy was asked", 1),
            (
                "list: a listing records which tools were shown, not each tool's input",
                1
            ),
            ("outcome: not a policy decision", 1),
        ]
    );
}

#[test]
fn a_phase_without_a_package_is_decided_as_the_gateway_would() {
    let dir = bundle(&[("call.rego", CALL)]);
    let store = load(dir.path());
    let mut http = recorded(1, "alice", json!({}), "allow");
    http.phase = "http".into();
    http.input["phase"] = json!("http");
    // Without a result package the gateway does not decide results: a recorded deny passes.
    let mut result = denied(recorded(2, "alice", json!({}), "deny"), &["too big"]);
    result.phase = "result".into();
    result.input["phase"] = json!("result");
    result.redacted = true;
    let report = run(&store, vec![http, result], 1, None);
    assert_eq!(report.phases_undefined[&Phase::Http], 1);
    assert_eq!(report.phases_undefined[&Phase::Result], 1);
    let kinds: Vec<ChangeKind> = report.changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [ChangeKind::AllowToDeny, ChangeKind::DenyToAllow]);
    assert_eq!(report.changes[0].notes(), ["no gatehouse.http package"]);
    assert_eq!(
        report.changes[1].notes(),
        ["redacted: may differ", "no gatehouse.result package"]
    );
    assert_eq!(report.redacted, 1);
}

#[test]
fn several_threads_report_what_one_does_and_list_the_earliest() {
    let dir = bundle(&[("call.rego", CALL)]);
    // A budget no loaded test machine runs out of: a timeout would be a (correct) change.
    let options = PolicyOptions {
        time_budget: std::time::Duration::from_secs(10),
        ..PolicyOptions::default()
    };
    let store = PolicyStore::load(dir.path(), &[], options).unwrap();
    let entries: Vec<Recorded> = (1..=2000)
        .map(|seq| {
            let who = ["alice", "bob", "carol"][(seq % 3) as usize];
            recorded(seq, who, json!({"evil": seq % 7 == 0}), "allow")
        })
        .collect();
    let one = run(&store, entries.clone(), 1, None);
    let three = run(&store, entries.clone(), 3, None);
    assert_eq!(one.changes.len(), three.changes.len());
    assert!(
        one.changes == three.changes,
        "the same changes in the same order"
    );
    assert_eq!(
        (&one.by_tool, &one.by_caller),
        (&three.by_tool, &three.by_caller)
    );
    assert_eq!(one, three);
    assert!(one.changed.total() > 1000, "{:?}", one.changed);
    let listed = run(&store, entries, 3, Some(10));
    let seqs: Vec<u64> = listed.changes.iter().map(|c| c.seq).collect();
    let earliest: Vec<u64> = one.changes.iter().take(10).map(|c| c.seq).collect();
    assert_eq!(seqs, earliest);
    assert_eq!(listed.unlisted, one.changed.total() - 10);
    assert_eq!(listed.changed, one.changed);
}

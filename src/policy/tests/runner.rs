//! The `policy test` runner's report: pass, fail, error, skip, prints, coverage and filtering.

use super::*;
use crate::policy::test_runner::{self, Outcome, TestOptions};

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
    let report = test_runner::run(
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

    let filtered = test_runner::run(
        &source,
        &TestOptions {
            run: Some(regex::Regex::new("alice").unwrap()),
            ..TestOptions::default()
        },
    )
    .unwrap();
    assert_eq!(filtered.summary(), "1 passed, 0 failed");
}

//! `gatehouse call` and `gatehouse tools` on the real test components: WAVE and JSON
//! arguments, WAVE and JSON output, and the errors a user sees.

mod common;

use std::process::{Command, Output};

fn gatehouse(args: &[&str]) -> Output {
    // Under target/, not a shared /tmp path: others could write native code into that.
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache");
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .arg("--cache-dir")
        .arg(&cache)
        .env("XDG_STATE_HOME", common::state_home())
        .env_remove("RUST_LOG")
        .output()
        .expect("running gatehouse")
}

fn call(component: &str, call_args: &[&str]) -> (i32, String, String) {
    let path = common::component(component);
    let audit = tempfile::tempdir().unwrap();
    let audit_db = audit.path().join("audit.db");
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/policies/allow-all");
    let mut args = vec!["call", path.to_str().unwrap(), "--policies", policies];
    args.extend(["--audit", audit_db.to_str().unwrap()]);
    args.extend_from_slice(call_args);
    let output = gatehouse(&args);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    )
}

#[test]
fn wave_arguments_and_wave_output() {
    let (code, out, err) = call(
        "types",
        &["area(circle({center: {x: 0.0, y: 0.0}, radius: 1.0}))"],
    );
    assert_eq!((code, out.as_str()), (0, "3.141592653589793"), "{err}");
    let (code, out, _) = call("types", &["echo-u64(18446744073709551615)"]);
    assert_eq!((code, out.as_str()), (0, "18446744073709551615"));
    let (code, out, _) = call("types", &["scale(point, 2.0)"]);
    assert_eq!((code, out.as_str()), (0, "point"));
    let (code, out, _) = call("types", &["next-char('a')"]);
    assert_eq!((code, out.as_str()), (0, "'b'"));
    // An interface function, by its WIT name.
    let (code, out, _) = call("types", &["add(2, 3)"]);
    assert_eq!((code, out.as_str()), (0, "5"));
    let (code, out, _) = call("types", &["permissions-for(editor)"]);
    assert_eq!((code, out.as_str()), (0, "{read, write}"));
}

/// A WAVE value that does not fit is explained as the JSON path explains it: the path to the
/// value, what its type expects and what was written, then the bytes wasm-wave reported.
#[test]
fn mistyped_wave_arguments_name_the_argument_and_the_expectation() {
    let cases: [(&str, &str, String); 9] = [
        (
            r#"area(circle({center: {x: 0.0, y: 0.0}, radius: "x"}))"#,
            r#""x""#,
            r#"s.circle.radius: expected f64 (a number, nan, inf or -inf), got string "x""#.into(),
        ),
        (
            r#"area(circle({center: {x: 0.0, y: true}, radius: 1.0}))"#,
            "true",
            "s.circle.center.y: expected f64 (a number, nan, inf or -inf), got bool true".into(),
        ),
        (
            "area(square(1.0))",
            "square(1.0)",
            "s: expected variant `shape`: one of circle(…), rectangle(…), point, got case square(1.0)"
                .into(),
        ),
        (
            r#"transpose([[1, 2], [3, "4"]])"#,
            r#""4""#,
            r#"matrix[1][1]: expected s32 (-2147483648..=2147483647), got string "4""#.into(),
        ),
        (
            "reverse-bytes([1, 256])",
            "256",
            "data[1]: expected u8 (0..=255), got number 256".into(),
        ),
        (
            r#"swap(("a", -1))"#,
            "-1",
            "pair[1]: expected u32 (0..=4294967295), got number -1".into(),
        ),
        (
            "echo-nested-option(some(some(5)))",
            "5",
            "value: expected string (in double quotes), got number 5".into(),
        ),
        (
            r#"permissions-for("editor")"#,
            r#""editor""#,
            r#"role: expected enum `role`: one of admin, editor, viewer, got string "editor""#.into(),
        ),
        (
            "add(1.5, 2)",
            "1.5",
            "a: expected s32 (-2147483648..=2147483647), got number 1.5".into(),
        ),
    ];
    for (text, culprit, expected) in cases {
        let (code, out, err) = call("types", &[text]);
        let start = text.find(culprit).unwrap();
        let end = start + culprit.len();
        assert_eq!(code, 2, "{text}: {out}");
        assert_eq!(
            err,
            format!("error: invalid arguments: {expected} (at bytes {start}..{end} of the call)"),
            "{text}"
        );
    }

    // Too few or too many arguments.
    let (code, _, err) = call("types", &["add(1)"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: invalid arguments: missing required argument \"b\" (at bytes "),
        "{err}"
    );
    let (code, _, err) = call("types", &["add(1, 2, 3)"]);
    assert_eq!(
        (code, err.as_str()),
        (
            2,
            "error: invalid arguments: unexpected argument 3: `add` takes 2 arguments (at bytes 10..11 of the call)"
        )
    );
}

#[test]
fn json_arguments_and_json_output() {
    let (code, out, err) = call(
        "types",
        &[
            "area",
            "--json",
            r#"{"s": {"rectangle": {"min": {"x": 0, "y": 0}, "max": {"x": 2, "y": 3}}}}"#,
        ],
    );
    assert_eq!((code, out.as_str()), (0, "6"), "{err}");
    let (code, out, _) = call("types", &["max-u64()", "--output", "json"]);
    assert_eq!((code, out.as_str()), (0, "\"18446744073709551615\""));
    let (code, out, _) = call(
        "types",
        &[
            "types_directory_nested-option",
            "--json",
            r#"{"depth": 1}"#,
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!({"some": null})
    );
}

#[test]
fn errors_are_specific() {
    let (code, _, err) = call(
        "types",
        &[
            "area",
            "--json",
            r#"{"s": {"circle": {"center": {"x": 0, "y": 0}, "radius": "x"}}}"#,
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains(r#"s.circle.radius: expected f64"#) && err.contains(r#"got string "x""#),
        "{err}"
    );
    let (code, _, err) = call("types", &["area(circle({radius: 1.0}))"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: invalid arguments: s.circle: missing field \"center\" (at bytes "),
        "{err}"
    );
    let (code, _, err) = call("types", &["no-such-function()"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("has no function `no-such-function`") && err.contains("types_area"),
        "{err}"
    );
    // The function's own error case: printed, exit status 1.
    let (code, out, _) = call("types", &["parse-port(\"x\")"]);
    assert_eq!((code, out.as_str()), (1, "err(not-a-number)"));
    // A trap is a failure with the reason, not a crash.
    let (code, _, err) = call("misbehave", &["trap()"]);
    assert_eq!(code, 1);
    assert!(err.contains("trapped"), "{err}");
}

#[test]
fn tools_lists_schemas_and_what_was_skipped() {
    let path = common::component("types");
    let output = gatehouse(&["tools", path.to_str().unwrap(), "--json"]);
    assert!(output.status.success());
    let tools: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    let area = tools
        .iter()
        .find(|t| t["name"] == "types_area")
        .expect("types_area listed");
    assert_eq!(area["inputSchema"]["required"], serde_json::json!(["s"]));
    assert!(
        area["description"]
            .as_str()
            .unwrap()
            .starts_with("The area of a shape.")
    );
    assert!(
        !tools
            .iter()
            .any(|t| t["name"].as_str().unwrap().contains("read-counter"))
    );
    let text = gatehouse(&["tools", path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("not offered: example:types/counters#read-counter"),
        "{text}"
    );
}

#[test]
fn no_call_runs_without_a_policy_bundle_or_a_writable_audit_log() {
    let path = common::component("echo");
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/policies/allow-all");
    let audit = tempfile::tempdir().unwrap();
    let audit_db = audit.path().join("audit.db");
    let unwritable = audit.path().join("missing-dir").join("audit.db");
    let path = path.to_str().unwrap();

    let output = gatehouse(&[
        "call",
        path,
        "echo(\"x\")",
        "--policies",
        policies,
        "--audit",
        unwritable.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.starts_with("error: audit log: ") && stderr.contains("missing-dir"),
        "{stderr}"
    );

    let no_bundle = audit.path().join("no-bundle");
    let output = gatehouse(&[
        "call",
        path,
        "echo(\"x\")",
        "--policies",
        no_bundle.to_str().unwrap(),
        "--audit",
        audit_db.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.starts_with("error: policy bundle: cannot read "),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing ran");
}

#[test]
fn a_tool_cannot_forge_a_line_of_the_gateway_log() {
    let path = common::component("misbehave");
    let audit = tempfile::tempdir().unwrap();
    let audit_db = audit.path().join("audit.db");
    let cache = audit.path().join("cache");
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/policies/allow-all");
    let forged = "2026-12-05T21:00:00.000000Z ERROR gatehouse: audit log corrupted";
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .env("XDG_STATE_HOME", common::state_home())
        .args(["call", path.to_str().unwrap()])
        .arg(format!(
            r#"print("out\n{forged}", "err\r\u{{1b}}[2K{forged}")"#
        ))
        .args([
            "--policies",
            policies,
            "--audit",
            audit_db.to_str().unwrap(),
        ])
        .arg("--cache-dir")
        .arg(&cache)
        .env("RUST_LOG", "info")
        .output()
        .expect("running gatehouse");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // Both streams were logged, each on its one line, with the control characters escaped.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("tool output"))
        .collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(stderr.contains(&format!(r"out\n{forged}")), "{stderr}");
    assert!(
        stderr.contains(&format!(r"err\r\u{{1b}}[2K{forged}")),
        "{stderr}"
    );
    assert!(
        !stderr
            .lines()
            .any(|line| line.starts_with(forged) || line.contains('\u{1b}')),
        "{stderr}"
    );
}

#[test]
fn a_failed_policy_evaluation_still_keeps_arguments_out_of_the_log() {
    let path = common::component("echo");
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    // An evaluation any caller can make fail: `to_number` errors on a non-numeric string.
    std::fs::write(
        policies.join("call.rego"),
        "package gatehouse.call\n\ndefault allow := false\n\nallow if to_number(input.arguments.message) > 0\n",
    )
    .unwrap();
    let audit_db = dir.path().join("audit.db");
    let secret = "CorrectHorseBatteryStaple";
    let output = gatehouse(&[
        "call",
        path.to_str().unwrap(),
        "echo",
        "--json",
        &format!(r#"{{"message": "{secret}"}}"#),
        "--policies",
        policies.to_str().unwrap(),
        "--audit",
        audit_db.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("policy error: evaluation failed"),
        "{stderr}"
    );
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let file = entry.unwrap().path();
        if file.is_file() {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds the argument in clear",
                file.display()
            );
        }
    }
    // What was masked is recorded with the verdict.
    let query = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args([
            "audit",
            "query",
            audit_db.to_str().unwrap(),
            "--phase",
            "call",
        ])
        .args(["--format", "json"])
        .output()
        .unwrap();
    let verdict: serde_json::Value = serde_json::from_slice(&query.stdout).unwrap();
    let masked = &verdict["input"]["arguments"]["redacted"];
    assert!(
        masked
            .as_str()
            .is_some_and(|m| m.starts_with("hmac-sha256:")),
        "{verdict:#}"
    );
}

//! `gatehouse policy test` and `gatehouse policy eval`, run as the built binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gatehouse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run gatehouse")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn default_bundle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn temp_bundle(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, contents) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    dir
}

const CALL: &str = "package gatehouse.call\n\ndefault allow := false\n\nallow if input.caller.principal == \"alice\"\n";

#[test]
fn the_default_bundle_passes_its_tests() {
    let out = gatehouse(&["policy", "test", "policies/"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("data.gatehouse.call_test.test_dotdot_escape_is_denied: PASS ("));
    let summary = stdout.lines().last().unwrap();
    let passed: usize = summary
        .strip_suffix(" passed, 0 failed")
        .unwrap_or_else(|| panic!("unexpected summary {summary:?}"))
        .parse()
        .unwrap();
    assert!(passed >= 50, "{summary}");
}

#[test]
fn coverage_is_reported_per_file() {
    let out = gatehouse(&[
        "policy",
        "test",
        "policies",
        "--coverage",
        "--run",
        "call_test",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("\ncoverage:\n"), "{stdout}");
    assert!(stdout.contains("  call.rego: "), "{stdout}");
    assert!(!stdout.contains("lib_test"), "--run filters: {stdout}");
}

#[test]
fn a_failing_test_exits_non_zero_and_is_named() {
    let dir = temp_bundle(&[
        ("call.rego", CALL),
        (
            "call_test.rego",
            "package gatehouse.call_test\n\nimport data.gatehouse.call\n\n\
             test_alice if call.allow with input as {\"caller\": {\"principal\": \"alice\"}}\n\n\
             test_bob if {\n\tprint(\"input is\", input)\n\tcall.allow with input as {\"caller\": {\"principal\": \"bob\"}}\n}\n\n\
             todo_carol if false\n",
        ),
    ]);
    let out = gatehouse(&["policy", "test", dir.path().to_str().unwrap(), "-v"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("data.gatehouse.call_test.test_alice: PASS ("));
    assert!(stdout.contains("data.gatehouse.call_test.test_bob: FAIL ("));
    assert!(stdout.contains("  call_test.rego:7: evaluated to undefined, expected true"));
    assert!(stdout.contains("last expression evaluated: call_test.rego:9:"));
    assert!(
        stdout.contains("print: call_test.rego:8: input is"),
        "{stdout}"
    );
    assert!(stdout.contains("data.gatehouse.call_test.todo_carol: SKIP ("));
    assert_eq!(stdout.lines().last(), Some("1 passed, 1 failed, 1 skipped"));
}

#[test]
fn a_broken_rego_file_is_reported_with_file_and_line() {
    let dir = temp_bundle(&[
        ("call.rego", CALL),
        (
            "lib/helpers.rego",
            "package lib\n\nok if {\n\tinput.a ==\n}\n",
        ),
    ]);
    let out = gatehouse(&["policy", "test", dir.path().to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: invalid Rego: lib/helpers.rego:5:1: "),
        "{stderr}"
    );
}

#[test]
fn an_unknown_phase_package_is_rejected() {
    let dir = temp_bundle(&[
        ("call.rego", CALL),
        ("exec.rego", "package gatehouse.exec\n\nallow := true\n"),
    ]);
    let out = gatehouse(&["policy", "test", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("exec.rego: package gatehouse.exec is not a phase package"),
        "{}",
        text(&out.stderr)
    );
}

/// `opa test` runs any directory's tests; so does `policy test`, with a warning when the
/// directory is no servable bundle. The exit status is the tests' own.
#[test]
fn any_rego_directory_is_tested_but_not_served() {
    const EXAMPLE: &str = "package example\n\nanswer := 42\n";
    const PASSING: &str = "test_answer if example.answer == 42\n";
    const FAILING: &str = "test_wrong_answer if example.answer == 41\n";
    let test_file = |tests: &[&str]| {
        format!(
            "package example_test\n\nimport data.example\n\n{}",
            tests.concat()
        )
    };
    let warning = "warning: bundle defines no gatehouse.call package: every call would be denied \
                   (the tests still run; `gatehouse serve` refuses this bundle)";

    let dir = temp_bundle(&[
        ("example.rego", EXAMPLE),
        ("example_test.rego", &test_file(&[PASSING, "\n", FAILING])),
    ]);
    let out = gatehouse(&["policy", "test", dir.path().to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("data.example_test.test_answer: PASS ("),
        "{stdout}"
    );
    assert!(
        stdout.contains("data.example_test.test_wrong_answer: FAIL ("),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("1 passed, 1 failed"),
        "{stdout}"
    );
    assert_eq!(stderr.trim_end(), warning);

    let dir = temp_bundle(&[
        ("example.rego", EXAMPLE),
        ("example_test.rego", &test_file(&[PASSING])),
    ]);
    let out = gatehouse(&["policy", "test", dir.path().to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.lines().last(),
        Some("1 passed, 0 failed"),
        "{stdout}"
    );
    assert_eq!(stderr.trim_end(), warning);

    // A gatehouse.call package without `allow` would deny every call too: the same warning.
    let dir = temp_bundle(&[
        (
            "call.rego",
            "package gatehouse.call\n\ndeny contains \"no\" if true\n",
        ),
        (
            "call_test.rego",
            "package gatehouse.call_test\n\nimport data.gatehouse.call\n\ntest_denies if \"no\" in call.deny\n",
        ),
    ]);
    let out = gatehouse(&["policy", "test", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning: package gatehouse.call declares no allow rule"),
        "{}",
        text(&out.stderr)
    );

    // The gateway still refuses to serve such a directory.
    let audit = tempfile::tempdir().unwrap();
    let echo = common::component("echo");
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .env("XDG_STATE_HOME", common::state_home())
        .args(["serve", "--policies", dir.path().to_str().unwrap()])
        .args(["--component", echo.to_str().unwrap()])
        .args(["--audit", audit.path().join("audit.db").to_str().unwrap()])
        .args(["--cache-dir", audit.path().join("cache").to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run gatehouse serve");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr
            .contains("package gatehouse.call declares no allow rule: every call would be denied"),
        "{stderr}"
    );
    let example = temp_bundle(&[("example.rego", EXAMPLE)]);
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .env("XDG_STATE_HOME", common::state_home())
        .args(["serve", "--policies", example.path().to_str().unwrap()])
        .args(["--component", echo.to_str().unwrap()])
        .args(["--audit", audit.path().join("audit.db").to_str().unwrap()])
        .args(["--cache-dir", audit.path().join("cache").to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run gatehouse serve");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bundle defines no gatehouse.call package: every call would be denied"),
        "{stderr}"
    );
}

#[test]
fn eval_prints_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(
        &input,
        r#"{
            "phase": "call",
            "time": "2026-11-22T03:04:05.123Z",
            "call": {"id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"},
            "caller": {"principal": "alice", "authenticated": true, "transport": "cli", "client": null},
            "tool": {"name": "files_read_file", "function": "read-file", "interface": null,
                     "component": {"name": "files", "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111", "source": "files.wasm"}},
            "arguments": {"path": "/data/../etc/passwd", "token": "secret"}
        }"#,
    )
    .unwrap();
    let dev = dir.path().join("dev.json");
    std::fs::write(
        &dev,
        r#"{"settings": {"mode": "dev"}, "principals": {"alice": {"tools": ["files_*"]}}, "fs": {"allowed_prefixes": ["/data"]}}"#,
    )
    .unwrap();
    let bundle = default_bundle();
    let args = [
        "policy",
        "eval",
        "--phase",
        "call",
        "--input",
        input.to_str().unwrap(),
        "--policies",
        bundle.to_str().unwrap(),
        "--policy-data",
        dev.to_str().unwrap(),
    ];
    let out = gatehouse(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let decision: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decision["phase"], "call");
    assert_eq!(decision["verdict"], "deny");
    assert_eq!(decision["allow"], true);
    assert_eq!(
        decision["reasons"],
        serde_json::json!([
            "argument /arguments/path: path \"/etc/passwd\" is outside fs.allowed_prefixes"
        ])
    );
    assert_eq!(decision["redact"], serde_json::json!(["/arguments/token"]));
    assert_eq!(decision["limits"]["timeout_ms"], 5000);
    assert!(
        decision["revision"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(decision["eval_micros"].is_u64());

    let mut explain = args.to_vec();
    explain.push("--explain");
    let out = gatehouse(&explain);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let explained: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(explained["verdict"], "deny");
    assert_eq!(explained["explain"]["rules"]["allow"], true);
    assert!(explained["explain"]["evaluated_lines"]["lib.rego"].is_array());
}

#[test]
fn eval_of_a_missing_input_is_an_error() {
    let out = gatehouse(&[
        "policy",
        "eval",
        "--phase",
        "call",
        "--input",
        "/nonexistent/input.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: cannot read /nonexistent/input.json"));
}

#[test]
fn the_readme_example_is_allowed_with_the_example_deployment_data() {
    let out = gatehouse(&[
        "policy",
        "eval",
        "--phase",
        "call",
        "--input",
        "policies/examples/call-input.json",
        "--policies",
        "policies",
        "--policy-data",
        "policies/examples/dev-data.json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let decision: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decision["verdict"], "allow", "{decision}");
    assert_eq!(decision["limits"]["timeout_ms"], 10000);
    assert_eq!(decision["redact"], serde_json::json!(["/arguments/token"]));

    // Without the deployment data the shipped bundle denies.
    let out = gatehouse(&[
        "policy",
        "eval",
        "--phase",
        "call",
        "--input",
        "policies/examples/call-input.json",
    ]);
    let decision: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decision["verdict"], "deny");
}

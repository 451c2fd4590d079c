//! Unit tests of the policy module, one file per subject, mostly against small bundles written
//! to temporary directories; the helpers they share are here.

use std::path::Path;

use serde_json::json;

use super::*;

mod decisions;
mod evaluator;
mod loading;
mod reloading;
mod replaying;
mod runner;
mod sharing;

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

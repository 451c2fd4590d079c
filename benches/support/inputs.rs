//! Policy inputs and deployment data shared by the benches.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

pub const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// A call that every argument rule of the default bundle looks at: URL, path with `..`, a size,
/// a secret and nested options. The deployment data of [`deployment_data`] allows it.
pub fn realistic_input() -> Value {
    json!({
        "phase": "call",
        "time": "2026-11-22T03:04:05.123Z",
        "call": {"id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"},
        "caller": {"principal": "alice", "authenticated": true, "transport": "http",
                   "client": {"name": "claude-code", "version": "1.0.0"}},
        "tool": {"name": "fetch_download", "function": "download", "interface": "example:fetch/http",
                 "component": {"name": "fetch", "digest": DIGEST, "source": "components/fetch.wasm"}},
        "arguments": {
            "url": "https://api.example.com/v1/reports?year=2026",
            "path": "/data/reports/../reports/2026.csv",
            "megabytes": 4,
            "token": "s3cr3t",
            "options": {"retries": 3, "follow_redirects": true}
        }
    })
}

/// Deployment data (written to `dir`) under which [`realistic_input`] is allowed.
pub fn deployment_data(dir: &Path) -> PathBuf {
    let data = dir.join("deployment.json");
    std::fs::write(
        &data,
        json!({
            "principals": {"alice": {"tools": ["fetch_*", "files_read_file"]}},
            "components": {"allowed_digests": [DIGEST]},
            "http": {"allowed_domains": ["example.com"]},
            "fs": {"allowed_prefixes": ["/data", "/tmp/work"], "writable": ["/tmp/work"]}
        })
        .to_string(),
    )
    .unwrap();
    data
}

/// The default bundle shipped in `policies/`.
pub fn default_bundle_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

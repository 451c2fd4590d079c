//! Support for the integration tests: the WebAssembly test components, built from source.
//!
//! `component("types")` builds all components once per test process with
//! `scripts/build-components` and returns the path of `types.wasm`. Concurrent test
//! processes are safe: the script holds a lock around its cargo build and docs step.

#[allow(dead_code, reason = "only the OCI test binaries start a registry")]
pub mod registry;
#[allow(dead_code, reason = "only the supply-chain test binaries sign")]
pub mod signing;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The names of the test components, in `tests/components/`.
pub const COMPONENTS: [&str; 7] = [
    "types",
    "fetch",
    "files",
    "echo",
    "misbehave",
    "escape",
    "contract",
];

/// The `XDG_STATE_HOME` of the gateways the tests start as processes, under `target/`: their
/// audit keys (created on first start) never go to the user's home.
#[allow(
    dead_code,
    reason = "only the test binaries that start gateways as processes use it"
)]
pub fn state_home() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("state-home")
}

/// The absolute path of the built test component `name` (e.g. `"fetch"`), building all of
/// them first if this process has not done so yet.
///
/// Panics with the build's output if the build fails or produced no such component: a
/// test cannot run without it.
pub fn component(name: &str) -> PathBuf {
    let directory = built_components()
        .as_ref()
        .unwrap_or_else(|failure| panic!("{failure}"));
    let path = directory.join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "no test component {name:?}: {} does not exist (known: {COMPONENTS:?})",
        path.display()
    );
    path
}

/// Runs the build once per process; later calls see the same outcome.
fn built_components() -> &'static Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build)
}

fn build() -> Result<PathBuf, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = repo.join("scripts/build-components");
    let output = Command::new(&script)
        .current_dir(repo)
        .output()
        .map_err(|e| format!("could not run {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        ));
    }
    // The script always builds into target/components, whatever target dir the tests use.
    Ok(repo.join("target/components/wasm32-wasip2/release"))
}

/// A plain HTTP server on 127.0.0.1 that counts the connections it accepts, so that a
/// request reaching it by any route is seen, whether or not it completes. Serves until the
/// test's runtime ends.
#[allow(dead_code, reason = "only the test binaries that send HTTP use it")]
pub async fn counting_server() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let response =
                    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (address, hits)
}

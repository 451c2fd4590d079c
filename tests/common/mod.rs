//! Support for the integration tests: the WebAssembly test components, built from source.
//!
//! `component("types")` builds all components once per test process with
//! `scripts/build-components` and returns the path of `types.wasm`. Concurrent test
//! processes are safe: the script holds a lock around its cargo build and docs step.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The names of the test components, in `tests/components/`.
pub const COMPONENTS: [&str; 6] = ["types", "fetch", "files", "echo", "misbehave", "escape"];

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

//! The compiled-component cache runs native code only when this installation wrote it for the
//! component being loaded: a changed or planted artifact, an entry copied from another
//! installation, or a directory others can write (or a symbolic link to one) is never
//! deserialized. The component is compiled instead, still answers, and a warning says why.
//! Real components from `target/components`, a real engine, real files.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gatehouse::config::LimitsConfig;
use gatehouse::host::guard::{HostGuard, HostRequest, HostVerdict, ToolLog};
use gatehouse::host::{CallHost, HostConfig};
use gatehouse::runtime::cache::CompileSource;
use gatehouse::runtime::{CallLimits, ComponentSpec, LoadedComponent, Runtime, RuntimeOptions};
use wasmtime::component::Val;

/// A fresh runtime (as at a gateway start) whose cache is `cache`, and `name` loaded through it,
/// with everything logged while opening the cache and loading.
fn start(cache: &Path, name: &str) -> (Runtime, LoadedComponent, String) {
    let path = common::component(name);
    logged(|| {
        let limits = LimitsConfig::default();
        let runtime = Runtime::new(RuntimeOptions {
            cache_dir: Some(cache.to_owned()),
            host: HostConfig::default(),
            max_memory_bytes: limits.memory_bytes,
            max_concurrent_calls: limits.max_concurrent_calls,
            fuel: false,
        })
        .unwrap();
        let loaded = runtime
            .load(&ComponentSpec {
                name,
                path: &path,
                expected_digest: None,
                exclude: &[],
                prepared: None,
            })
            .unwrap();
        (runtime, loaded)
    })
}

/// Runs `f` with a subscriber that records warnings (this thread only) and returns the text.
fn logged(f: impl FnOnce() -> (Runtime, LoadedComponent)) -> (Runtime, LoadedComponent, String) {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buffer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let (runtime, loaded) = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (runtime, loaded, text)
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

/// `echo` reaches nothing outside; anything it tried would be refused.
struct NoHostAccess;

impl HostGuard for NoHostAccess {
    fn decide(&self, _request: HostRequest) -> HostVerdict {
        HostVerdict::deny("this test allows no host access")
    }

    fn refuse(&self, _request: HostRequest, reason: String) -> HostVerdict {
        HostVerdict::deny(reason)
    }

    fn log(&self, _record: ToolLog) {}
}

/// Calls `echo("…")` on a loaded `echo` component and checks the answer.
fn assert_echo_answers(runtime: &Runtime, loaded: &LoadedComponent) {
    let function = loaded
        .functions
        .iter()
        .find(|f| f.function == "echo")
        .expect("echo exports `echo`");
    let limits = CallLimits {
        timeout: std::time::Duration::from_secs(30),
        memory_bytes: 64 << 20,
        max_result_bytes: 1 << 20,
        fuel: None,
        max_requests: 0,
    };
    let host = CallHost {
        guard: Arc::new(NoHostAccess),
        max_requests: 0,
        env: Vec::new(),
        config: Default::default(),
        waited: Default::default(),
    };
    let params = [Val::String("checked bytes are run".into())];
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = tokio
        .block_on(runtime.call(loaded, function, &params, &limits, host))
        .unwrap();
    assert_eq!(result, Some(Val::String("checked bytes are run".into())));
}

/// The cache entries in `dir` (the key and temporary files start with `.`).
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    entries.sort();
    entries
}

/// The single entry in `dir`.
fn entry(dir: &Path) -> PathBuf {
    let entries = entries(dir);
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.into_iter().next().unwrap()
}

/// Every name in `dir`, with the contents of the regular files: to show nothing changed there.
fn snapshot(dir: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut files: Vec<(String, Option<Vec<u8>>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let contents = e
                .file_type()
                .unwrap()
                .is_file()
                .then(|| std::fs::read(e.path()).unwrap());
            (name, contents)
        })
        .collect();
    files.sort();
    files
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Fills `cache` with `name`'s entry and shows that the next start loads from it, so the tests
/// below change one thing against a cache that works.
fn fill(cache: &Path, name: &str) {
    let (_, loaded, logs) = start(cache, name);
    assert_eq!(loaded.compiled, CompileSource::Compiled, "{logs}");
    let (_, loaded, logs) = start(cache, name);
    assert_eq!(loaded.compiled, CompileSource::Cached, "{logs}");
    assert!(
        !logs.contains("cache"),
        "a good cache warns about nothing: {logs}"
    );
}

/// A temporary directory with a filled cache in it (`cache`, created by the gateway).
fn filled_cache(name: &str) -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let cache = temp.path().join("cache");
    fill(&cache, name);
    (temp, cache)
}

#[test]
fn a_changed_artifact_is_never_deserialized() {
    let (_temp, cache) = filled_cache("echo");
    let entry = entry(&cache);
    let mut bytes = std::fs::read(&entry).unwrap();
    // Bytes in the middle of the artifact: its code, not the headers wasmtime itself checks.
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 16] {
        *byte ^= 0xff;
    }
    std::fs::write(&entry, &bytes).unwrap();

    let (runtime, loaded, logs) = start(&cache, "echo");
    assert_eq!(loaded.compiled, CompileSource::Compiled, "{logs}");
    assert!(
        logs.contains(&format!(
            "compiled-component cache entry {} failed its integrity check",
            entry.display()
        )),
        "{logs}"
    );
    assert_echo_answers(&runtime, &loaded);

    // The entry was replaced: the next start loads it again.
    let (runtime, loaded, logs) = start(&cache, "echo");
    assert_eq!(loaded.compiled, CompileSource::Cached, "{logs}");
    assert_echo_answers(&runtime, &loaded);
}

#[test]
fn another_components_artifact_planted_under_the_name_is_not_run() {
    let (_echo_temp, echo_cache) = filled_cache("echo");
    let (_types_temp, types_cache) = filled_cache("types");
    // Someone with write access to the cache puts `types`' native code where `echo`'s belongs,
    // with the key it was made with: the MAC also binds the entry to the component's digest.
    let echo_entry = entry(&echo_cache);
    std::fs::copy(entry(&types_cache), &echo_entry).unwrap();
    let key = types_cache.join(".cache-key");
    if key.exists() {
        std::fs::copy(key, echo_cache.join(".cache-key")).unwrap();
    }

    let (runtime, loaded, logs) = start(&echo_cache, "echo");
    assert_eq!(loaded.compiled, CompileSource::Compiled, "{logs}");
    assert!(logs.contains("failed its integrity check"), "{logs}");
    assert_echo_answers(&runtime, &loaded);
}

#[test]
fn a_cache_copied_from_another_installation_is_not_trusted() {
    let (_ours_temp, ours) = filled_cache("echo");
    let (_theirs_temp, theirs) = filled_cache("echo");
    let our_entry = entry(&ours);
    // The same component and engine give the same entry name; only the key differs.
    assert_eq!(our_entry.file_name(), entry(&theirs).file_name());
    std::fs::copy(entry(&theirs), &our_entry).unwrap();

    let (runtime, loaded, logs) = start(&ours, "echo");
    assert_eq!(loaded.compiled, CompileSource::Compiled, "{logs}");
    assert!(
        logs.contains(&format!(
            "compiled-component cache entry {} failed its integrity check (MAC mismatch",
            our_entry.display()
        )),
        "{logs}"
    );
    assert_echo_answers(&runtime, &loaded);
    assert_ne!(
        std::fs::read(&our_entry).unwrap(),
        std::fs::read(entry(&theirs)).unwrap(),
        "the copied entry was replaced by our own"
    );
    let (_, loaded, _) = start(&ours, "echo");
    assert_eq!(loaded.compiled, CompileSource::Cached);
}

#[test]
fn a_group_or_world_writable_cache_directory_is_refused() {
    for mode in [0o770, 0o707, 0o777, 0o1777] {
        let (_temp, cache) = filled_cache("echo");
        set_mode(&cache, mode);
        let before = snapshot(&cache);

        let (runtime, loaded, logs) = start(&cache, "echo");
        assert_eq!(
            loaded.compiled,
            CompileSource::Compiled,
            "mode {mode:o}: {logs}"
        );
        assert!(
            logs.contains(&format!(
                "compiled-component cache {} not used: it is writable by group or others (mode {mode:04o})",
                cache.display()
            )),
            "mode {mode:o}: {logs}"
        );
        assert!(
            logs.contains(&format!("Fix: chmod 700 {}", cache.display())),
            "{logs}"
        );
        assert_echo_answers(&runtime, &loaded);
        assert_eq!(
            snapshot(&cache),
            before,
            "mode {mode:o}: nothing written there"
        );
    }

    // An empty one: nothing is written into it either (no key, no entry).
    let temp = tempfile::tempdir().unwrap();
    set_mode(temp.path(), 0o777);
    let (_, loaded, logs) = start(temp.path(), "echo");
    assert_eq!(loaded.compiled, CompileSource::Compiled);
    assert!(
        logs.contains("not used: it is writable by group or others"),
        "{logs}"
    );
    assert!(snapshot(temp.path()).is_empty());
}

#[test]
fn a_cache_directory_owned_by_someone_else_is_refused() {
    let euid = rustix::process::geteuid().as_raw();
    let (_temp, cache, owner) = if euid == 0 {
        // As root: a filled cache given to `nobody`, which root could still read.
        let (temp, cache) = filled_cache("echo");
        std::os::unix::fs::chown(&cache, Some(65534), Some(65534)).unwrap();
        (Some(temp), cache, 65534)
    } else {
        // Otherwise a directory root owns is someone else's.
        (None, PathBuf::from("/"), 0)
    };
    let before = snapshot(&cache);
    let (runtime, loaded, logs) = start(&cache, "echo");
    assert_eq!(loaded.compiled, CompileSource::Compiled, "{logs}");
    assert!(
        logs.contains(&format!(
            "compiled-component cache {} not used: it is owned by uid {owner}, not by the gateway's effective uid {euid}",
            cache.display()
        )),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("Fix: chown {euid} {}", cache.display())),
        "{logs}"
    );
    assert_echo_answers(&runtime, &loaded);
    assert_eq!(snapshot(&cache), before, "nothing written there");
}

#[test]
fn a_symlinked_cache_directory_is_refused() {
    let (temp, real) = filled_cache("echo");
    let link = temp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let before = snapshot(&real);

    let (runtime, loaded, logs) = start(&link, "echo");
    assert_eq!(loaded.compiled, CompileSource::Compiled, "{logs}");
    assert!(
        logs.contains(&format!(
            "compiled-component cache {} not used: it is a symbolic link",
            link.display()
        )),
        "{logs}"
    );
    assert!(
        logs.contains(&format!(
            "Fix: give the real directory instead: --cache-dir {}",
            real.canonicalize().unwrap().display()
        )),
        "{logs}"
    );
    assert_echo_answers(&runtime, &loaded);
    assert_eq!(
        snapshot(&real),
        before,
        "nothing read into or written there"
    );
}

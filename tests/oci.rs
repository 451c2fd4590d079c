//! Components from an OCI registry, against a real one: Debian's `docker-registry` (the
//! reference distribution server, installed by `scripts/setup`), started on a free loopback port
//! with its storage in a temporary directory and stopped when the test ends. Through the real
//! `gatehouse` binary: push, inspect and serve by tag and by digest; a tag moved to another
//! component is refused by the digest pin; a tampered blob is refused; a registry that is down
//! is a clear error.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
const REGISTRY: &str = "/usr/bin/docker-registry";

/// A `docker-registry` on 127.0.0.1, killed on drop.
struct Registry {
    child: Child,
    address: String,
    storage: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        assert!(
            Path::new(REGISTRY).is_file(),
            "{REGISTRY} is missing: run scripts/setup (it installs Debian's docker-registry)"
        );
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
                storage.display()
            ),
        )
        .unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let registry = Registry {
            child,
            address,
            storage,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&registry.address).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    fn reference(&self, repository_and_tag: &str) -> String {
        format!("oci://{}/{repository_and_tag}", self.address)
    }

    /// The stored bytes of the blob `digest`.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gatehouse(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("XDG_STATE_HOME", common::state_home())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "gatehouse failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    assert!(!output.status.success(), "gatehouse succeeded unexpectedly");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Pushes `component` and returns the digest reference `push` says to pin.
fn push(component: &Path, reference: &str) -> String {
    let out = stdout(&gatehouse(&[
        "component",
        "push",
        component.to_str().unwrap(),
        reference,
    ]));
    out.lines()
        .find_map(|line| line.trim().strip_prefix("pin it as:"))
        .unwrap_or_else(|| panic!("no digest reference in {out}"))
        .trim()
        .to_owned()
}

fn digest_of(file: &Path) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(std::fs::read(file).unwrap()))
    )
}

fn inspect(reference: &str) -> serde_json::Value {
    serde_json::from_str(&stdout(&gatehouse(&[
        "component",
        "inspect",
        reference,
        "--json",
    ])))
    .unwrap()
}

#[test]
fn a_component_is_pushed_then_served_by_tag_and_by_digest() {
    let registry = Registry::start();
    let echo = common::component("echo");
    let tagged = registry.reference("tools/echo:1.0");
    let pinned = push(&echo, &tagged);
    assert!(
        pinned.starts_with(&registry.reference("tools/echo@sha256:")),
        "{pinned}"
    );

    // By tag: resolved to the manifest digest push reported; the component's digest is the
    // file's, as for a component from any source.
    let by_tag = inspect(&tagged);
    assert_eq!(by_tag["resolved"], pinned.as_str());
    assert_eq!(by_tag["digest"], digest_of(&echo).as_str());
    let by_digest = inspect(&pinned);
    assert_eq!(by_digest["digest"], digest_of(&echo).as_str());

    // Served: `tools` loads it like a file, named after the repository.
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path().to_str().unwrap();
    let listing = stdout(&gatehouse(&[
        "tools",
        &pinned,
        "--cache-dir",
        cache,
        "--json",
    ]));
    assert!(listing.contains("\"echo_echo\""), "{listing}");
}

#[test]
fn a_tag_moved_to_another_component_is_refused_by_the_pin() {
    let registry = Registry::start();
    let (echo, types) = (common::component("echo"), common::component("types"));
    let tagged = registry.reference("tools/tool:stable");
    push(&echo, &tagged);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "[[components]]\nurl = \"{tagged}\"\nsha256 = \"{}\"\n",
            digest_of(&echo)
        ),
    )
    .unwrap();
    // Served over stdio with nothing to read: it loads its components and prints its banner
    // (then ends: no client), or refuses to start.
    let served = |config: &Path| {
        gatehouse(&[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--audit",
            dir.path().join("audit.db").to_str().unwrap(),
            "--audit-key-dir",
            dir.path().join("keys").to_str().unwrap(),
            "--cache-dir",
            dir.path().join("cache").to_str().unwrap(),
        ])
    };
    let first = String::from_utf8_lossy(&served(&config).stderr).into_owned();
    assert!(first.contains("tools: tool_fetch, tool_echo"), "{first}");

    // Someone moves the tag to another component: the pin no longer holds, although the
    // pinned bytes are in the download cache.
    push(&types, &tagged);
    let refused = stderr(&served(&config));
    assert!(
        !refused.contains("tools: ")
            && refused.contains("digest mismatch")
            && refused.contains("which now resolves to")
            && refused.contains(&digest_of(&echo))
            && refused.contains(&digest_of(&types)),
        "{refused}"
    );
}

#[test]
fn a_tampered_blob_is_refused() {
    let registry = Registry::start();
    let echo = common::component("echo");
    let pinned = push(&echo, &registry.reference("tools/echo:1.0"));
    let blob = registry.blob_file(&digest_of(&echo));
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let refused = stderr(&gatehouse(&["component", "inspect", &pinned]));
    assert!(
        refused.contains("cannot pull component") && refused.contains(&digest_of(&echo)),
        "{refused}"
    );
}

#[test]
fn a_registry_that_is_down_is_a_clear_error() {
    let registry = Registry::start();
    let reference = registry.reference("tools/echo:1.0");
    drop(registry);
    let refused = stderr(&gatehouse(&["component", "inspect", &reference]));
    assert!(
        refused.contains(&format!("cannot pull component {reference}"))
            && refused.contains("cannot fetch its manifest"),
        "{refused}"
    );
    let not_registry = stderr(&gatehouse(&[
        "component",
        "inspect",
        "oci://tools/echo:1.0",
    ]));
    assert!(not_registry.contains("name the registry"), "{not_registry}");
}

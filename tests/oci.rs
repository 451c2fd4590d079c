//! Components from an OCI registry, against a real one: Debian's `docker-registry` (the
//! reference distribution server, installed by `scripts/setup`), started on a free loopback port
//! with its storage in a temporary directory and stopped when the test ends. Through the real
//! `gatehouse` binary: push, inspect and serve by tag and by digest; a tag moved to another
//! component is refused by the digest pin; a tampered blob is refused; a registry that is down
//! is a clear error. Signatures: a bundle pushed beside a component is found as its referrer
//! (this registry has no referrers API, so through the referrers tag) and verified; a bundle
//! for another component, or none where one is required, is refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::registry::Registry;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

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

/// Serves `config` over stdio with nothing to read: it loads its components and prints its
/// banner (then ends: no client), or refuses to start. State goes under `dir`.
fn serve(dir: &Path, config: &Path) -> Output {
    gatehouse(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--audit",
        dir.join("audit.db").to_str().unwrap(),
        "--audit-key-dir",
        dir.join("keys").to_str().unwrap(),
        "--cache-dir",
        dir.join("cache").to_str().unwrap(),
    ])
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
    let first = String::from_utf8_lossy(&serve(dir.path(), &config).stderr).into_owned();
    assert!(first.contains("tools: tool_fetch, tool_echo"), "{first}");

    // Someone moves the tag to another component: the pin no longer holds, although the
    // pinned bytes are in the download cache.
    push(&types, &tagged);
    let refused = stderr(&serve(dir.path(), &config));
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

/// A copy of `component` in `dir` with its signature bundle beside it (signed by `key`), as a
/// tool author has it after `cosign sign-blob --bundle`.
fn signed_copy(dir: &Path, component: &Path, key: &common::signing::CosignKey) -> PathBuf {
    let copy = dir.join(component.file_name().unwrap());
    std::fs::copy(component, &copy).unwrap();
    let bundle = common::signing::key_bundle(key, &std::fs::read(&copy).unwrap());
    std::fs::write(
        dir.join(format!(
            "{}.sigstore.json",
            copy.file_name().unwrap().to_str().unwrap()
        )),
        bundle.to_string(),
    )
    .unwrap();
    copy
}

/// A strict gateway config serving `reference`, requiring the signature of the key in
/// `dir/cosign.pub`.
fn strict_config(dir: &Path, key: &common::signing::CosignKey, reference: &str) -> PathBuf {
    let public = dir.join("cosign.pub");
    std::fs::write(&public, &key.public_pem).unwrap();
    let config = dir.join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "[supply_chain]\nmode = \"strict\"\n[supply_chain.signature]\nkey = \"{}\"\n\n[[components]]\nurl = \"{reference}\"\n",
            public.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn a_signed_component_is_pushed_with_its_bundle_and_verified_when_pulled() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let key = common::signing::cosign_key();
    let echo = signed_copy(dir.path(), &common::component("echo"), &key);
    let tagged = registry.reference("tools/echo:1.0");
    let pushed = stdout(&gatehouse(&[
        "component",
        "push",
        echo.to_str().unwrap(),
        &tagged,
    ]));
    assert!(
        pushed.contains("echo.wasm.sigstore.json attached as sha256:"),
        "{pushed}"
    );
    let pinned = pushed
        .lines()
        .find_map(|line| line.trim().strip_prefix("pin it as:"))
        .unwrap()
        .trim()
        .to_owned();
    // distribution 2.x has no referrers API: the bundle is indexed under the referrers tag.
    let manifest_digest = pinned.rsplit_once('@').unwrap().1;
    let referrers_tag = registry
        .storage
        .join("docker/registry/v2/repositories/tools/echo/_manifests/tags")
        .join(manifest_digest.replace(':', "-"));
    assert!(referrers_tag.is_dir(), "{}", referrers_tag.display());

    // A strict gateway loads it by digest and by tag, its signature found in the registry.
    for reference in [&pinned, &tagged] {
        let config = strict_config(dir.path(), &key, reference);
        let served = String::from_utf8_lossy(&serve(dir.path(), &config).stderr).into_owned();
        assert!(
            served.contains("signed by key sha256:")
                && served.contains("tools: echo_fetch, echo_echo"),
            "{reference}: {served}"
        );
    }
    let inspected = inspect_with_key(dir.path(), &tagged);
    assert!(
        inspected.starts_with("verified: signed by key sha256:"),
        "{inspected}"
    );

    // Another key's signature is not this one's.
    let other = common::signing::cosign_key();
    let config = strict_config(dir.path(), &other, &pinned);
    let refused = stderr(&serve(dir.path(), &config));
    assert!(
        refused.contains("signature check failed") && refused.contains("does not verify with key"),
        "{refused}"
    );
}

/// `component inspect REFERENCE --key dir/cosign.pub`: its signature line.
fn inspect_with_key(dir: &Path, reference: &str) -> String {
    let report = serde_json::from_str::<serde_json::Value>(&stdout(&gatehouse(&[
        "component",
        "inspect",
        reference,
        "--key",
        dir.join("cosign.pub").to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    report["signature"].as_str().unwrap().to_owned()
}

#[test]
fn a_bundle_for_another_component_is_refused() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let key = common::signing::cosign_key();
    let types = signed_copy(dir.path(), &common::component("types"), &key);
    // echo, published with the (valid) signature of another component.
    let pushed = stdout(&gatehouse(&[
        "component",
        "push",
        common::component("echo").to_str().unwrap(),
        &registry.reference("tools/echo:1.0"),
        "--bundle",
        &format!("{}.sigstore.json", types.display()),
    ]));
    let pinned = pushed
        .lines()
        .find_map(|line| line.trim().strip_prefix("pin it as:"))
        .unwrap()
        .trim()
        .to_owned();
    let config = strict_config(dir.path(), &key, &pinned);
    let refused = stderr(&serve(dir.path(), &config));
    assert!(
        !refused.contains("tools: ")
            && refused.contains("signature check failed")
            && refused.contains(&format!(
                "the bundle signs {}, but the component is {}",
                digest_of(&types),
                digest_of(&common::component("echo"))
            )),
        "{refused}"
    );
}

#[test]
fn a_required_signature_missing_from_the_registry_is_a_clear_error() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let key = common::signing::cosign_key();
    let pinned = push(
        &common::component("echo"),
        &registry.reference("tools/echo:1.0"),
    );
    let config = strict_config(dir.path(), &key, &pinned);
    let refused = stderr(&serve(dir.path(), &config));
    let manifest_digest = pinned.rsplit_once('@').unwrap().1;
    assert!(
        !refused.contains("tools: ")
            && refused.contains(&format!("no signature bundle at {pinned}"))
            && refused.contains(
                "no referrer of artifact type application/vnd.dev.sigstore.bundle.v0.3+json"
            )
            && refused.contains(&format!(
                "referrers tag {}",
                manifest_digest.replace(':', "-")
            )),
        "{refused}"
    );
}

/// A pull shows a progress bar on a terminal (a pseudo-terminal from `script`), and nothing
/// when stderr is a pipe.
#[test]
fn progress_is_shown_on_a_terminal_only() {
    let registry = Registry::start();
    let pinned = push(
        &common::component("echo"),
        &registry.reference("tools/echo:1.0"),
    );
    let piped = gatehouse(&["component", "inspect", &pinned]);
    let piped_err = String::from_utf8_lossy(&piped.stderr);
    assert!(
        piped.status.success() && !piped_err.contains("pulling"),
        "{piped_err}"
    );
    let terminal = Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg(format!("{BIN} component inspect {pinned} >/dev/null"))
        .arg("/dev/null")
        .env("XDG_STATE_HOME", common::state_home())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&terminal.stdout);
    assert!(
        terminal.status.success() && shown.contains("pulling component layer"),
        "{shown}"
    );
}

//! One policy for the fleet, with real parts: `gatehouse policy build` makes and signs the
//! archive; an https server started here on 127.0.0.1 (a certificate from a test CA, which the
//! gateways trust through `[policy] bundle_ca`) publishes it with an ETag; three `gatehouse
//! serve` processes poll it every second. Each replica's serving revision and failed reloads
//! are read from its own `/metrics`; the server counts full downloads and 304s. Refused on
//! every replica, the old revision serving on: a bundle signed by another key, one failing its
//! tests, and the server gone.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::signing::{CosignKey, cosign_key};
use rcgen::{
    BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

const CALL: &str = "package gatehouse.call\n\ndefault allow := true\n";
const CALL_TEST: &str =
    "package gatehouse.call_test\n\nimport data.gatehouse.call\n\ntest_allowed if call.allow\n";

/// A bundle directory under `dir` named `name`; `extra` is appended to call.rego (a new
/// revision) and `failing` adds a test that fails.
fn bundle(dir: &Path, name: &str, extra: &str, failing: bool) -> PathBuf {
    let bundle = dir.join(name);
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("call.rego"), format!("{CALL}{extra}")).unwrap();
    let mut test = CALL_TEST.to_owned();
    if failing {
        test.push_str("\ntest_fails if false\n");
    }
    std::fs::write(bundle.join("call_test.rego"), test).unwrap();
    bundle
}

/// `gatehouse policy build DIR -o OUT [--key KEY]`: its stdout, or its stderr on failure.
fn build(dir: &Path, out: &Path, key: Option<&Path>) -> Result<String, String> {
    let mut command = Command::new(BIN);
    command
        .args(["policy", "build"])
        .arg(dir)
        .arg("-o")
        .arg(out);
    if let Some(key) = key {
        command.arg("--key").arg(key);
    }
    let output = command.output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    if output.status.success() {
        Ok(text(&output.stdout))
    } else {
        Err(text(&output.stderr))
    }
}

/// The value of `  NAME: VALUE` in `policy build` output.
fn field(output: &str, name: &str) -> String {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {output}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// A CA and a server certificate for 127.0.0.1 it issued: (CA PEM, server cert DER, key DER).
fn test_ca() -> (String, Vec<u8>, Vec<u8>) {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, &ca_key);
    let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    (ca_pem, server.der().to_vec(), server_key.serialize_der())
}

/// What the server publishes: the archive (with its ETag) and its signature bundle.
#[derive(Default)]
struct Published {
    archive: Vec<u8>,
    etag: String,
    signature: Vec<u8>,
}

/// An https server on 127.0.0.1 serving `/bundle.tar.gz` (honouring `If-None-Match`) and
/// `/bundle.tar.gz.sigstore.json`; stopped on drop.
struct BundleServer {
    url: String,
    published: Arc<Mutex<Published>>,
    full_downloads: Arc<AtomicUsize>,
    not_modified: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    address: std::net::SocketAddr,
}

impl BundleServer {
    fn start(cert_der: Vec<u8>, key_der: Vec<u8>) -> BundleServer {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert_der.into()],
            rustls::pki_types::PrivateKeyDer::try_from(key_der).unwrap(),
        )
        .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = BundleServer {
            url: format!("https://{address}/bundle.tar.gz"),
            published: Arc::default(),
            full_downloads: Arc::default(),
            not_modified: Arc::default(),
            stop: Arc::default(),
            address,
        };
        let (published, full, not_modified, stop) = (
            server.published.clone(),
            server.full_downloads.clone(),
            server.not_modified.clone(),
            server.stop.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (config, published, full, not_modified) = (
                    config.clone(),
                    published.clone(),
                    full.clone(),
                    not_modified.clone(),
                );
                std::thread::spawn(move || {
                    let connection = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(connection, stream);
                    let Some((path, if_none_match)) = read_request(&mut tls) else {
                        return;
                    };
                    let published = published.lock().unwrap();
                    let (status, etag, body) = match path.as_str() {
                        "/bundle.tar.gz" if if_none_match.as_deref() == Some(&published.etag) => {
                            not_modified.fetch_add(1, Ordering::SeqCst);
                            ("304 Not Modified", published.etag.clone(), Vec::new())
                        }
                        "/bundle.tar.gz" => {
                            full.fetch_add(1, Ordering::SeqCst);
                            ("200 OK", published.etag.clone(), published.archive.clone())
                        }
                        "/bundle.tar.gz.sigstore.json" => {
                            ("200 OK", String::new(), published.signature.clone())
                        }
                        _ => ("404 Not Found", String::new(), Vec::new()),
                    };
                    drop(published);
                    let etag = if etag.is_empty() {
                        String::new()
                    } else {
                        format!("etag: {etag}\r\n")
                    };
                    let mut response = format!(
                        "HTTP/1.1 {status}\r\n{etag}content-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    response.extend_from_slice(&body);
                    let _ = tls.write_all(&response);
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        server
    }

    /// Publishes the archive `file` and its signature bundle beside it.
    fn publish(&self, file: &Path) {
        let archive = std::fs::read(file).unwrap();
        let signature = std::fs::read(format!("{}.sigstore.json", file.display())).unwrap();
        use sha2::Digest;
        let etag = format!("\"{}\"", hex::encode(sha2::Sha256::digest(&archive)));
        *self.published.lock().unwrap() = Published {
            archive,
            etag,
            signature,
        };
    }
}

impl Drop for BundleServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.address);
    }
}

/// The request path and `If-None-Match` of one HTTP/1.1 request.
fn read_request(stream: &mut impl Read) -> Option<(String, Option<String>)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut if_none_match = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("if-none-match")
        {
            if_none_match = Some(value.trim().to_owned());
        }
    }
    Some((path, if_none_match))
}

/// A `gatehouse serve` process subscribed to the bundle, with its own metrics listener;
/// killed on drop.
struct Replica {
    child: Child,
    metrics: String,
    log: PathBuf,
    audit: PathBuf,
}

impl Replica {
    /// Serves `component` (signed, like the bundle, with the key in `key`), its `[policy]`
    /// section `bundle_url = "url"` and `policy` (more keys).
    fn start(
        dir: &Path,
        name: &str,
        url: &str,
        policy: &str,
        key: &Path,
        component: &Path,
    ) -> Replica {
        let home = dir.join(name);
        std::fs::create_dir_all(&home).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = home.join("gatehouse.toml");
        std::fs::write(
            &config,
            format!(
                "[policy]\nbundle_url = \"{url}\"\nbundle_poll_secs = 1\n{policy}\n\n\
                 [supply_chain.signature]\nkey = \"{}\"\n\n\
                 [metrics]\nlisten = \"127.0.0.1:{port}\"\n\n\
                 [[components]]\npath = \"{}\"\n",
                key.display(),
                component.display()
            ),
        )
        .unwrap();
        let log = home.join("stderr.log");
        let child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--audit")
            .arg(home.join("audit.db"))
            .arg("--audit-key-dir")
            .arg(home.join("keys"))
            .arg("--cache-dir")
            .arg(home.join("cache"))
            .env("XDG_STATE_HOME", common::state_home())
            // stdin stays open (an MCP client that has not spoken yet), so it keeps serving.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Replica {
            child,
            metrics: format!("127.0.0.1:{port}"),
            log,
            audit: home.join("audit.db"),
        }
    }

    fn scrape(&self) -> Option<String> {
        let mut stream = TcpStream::connect(&self.metrics).ok()?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            self.metrics
        )
        .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    }

    fn revision(&self) -> Option<String> {
        let text = self.scrape()?;
        let start = text.find("gatehouse_policy_revision_info{revision=\"")? + 41;
        Some(text[start..].split('"').next()?.to_owned())
    }

    fn failed_reloads(&self) -> f64 {
        self.scrape()
            .and_then(|text| {
                text.lines()
                    .find(|l| {
                        l.starts_with(r#"gatehouse_reloads_total{what="policy",result="failed"}"#)
                    })
                    .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            })
            .unwrap_or(0.0)
    }

    /// Calls `echo_echo` as an MCP client on its stdin (the answer is not read: the verdict
    /// is in the audit log).
    fn call_echo(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        for message in [
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"fleet-test","version":"1"}}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo_echo","arguments":{"message":"hi"}}}"#,
        ] {
            writeln!(stdin, "{message}").unwrap();
        }
        stdin.flush().unwrap();
    }

    /// The policy revisions of the `call` verdicts in its audit log.
    fn call_verdict_revisions(&self) -> Vec<String> {
        let output = Command::new(BIN)
            .args(["audit", "query"])
            .arg(&self.audit)
            .args(["--format", "json"])
            .output()
            .unwrap();
        // One JSON object per line.
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|entry| entry["phase"] == "call")
            .filter_map(|entry| entry["policy_revision"].as_str().map(str::to_owned))
            .collect()
    }

    /// Whether the process has ended (a zombie until dropped: it is our child).
    fn exited(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until every replica satisfies `done`, or fails with their logs.
fn wait_for(replicas: &[Replica], what: &str, done: impl Fn(&Replica) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !replicas.iter().all(&done) {
        if Instant::now() > deadline || replicas.iter().any(Replica::exited) {
            let logs: Vec<String> = replicas.iter().map(Replica::log).collect();
            panic!("timed out waiting until {what}:\n{}", logs.join("\n----\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Writes `file`'s signature bundle beside it.
fn sign(key: &CosignKey, file: &Path) {
    let bundle = common::signing::key_bundle(key, &std::fs::read(file).unwrap());
    std::fs::write(
        format!("{}.sigstore.json", file.display()),
        bundle.to_string(),
    )
    .unwrap();
}

fn write_key(dir: &Path, key: &CosignKey, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    std::fs::write(&private, &key.private_pem).unwrap();
    std::fs::write(&public, &key.public_pem).unwrap();
    (private, public)
}

#[test]
fn three_replicas_follow_the_signed_bundle_and_keep_serving_through_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let fleet_key = cosign_key();
    let (signing, public) = write_key(dir, &fleet_key, "fleet");
    let (other_key, _) = write_key(dir, &cosign_key(), "other");

    // Built reproducibly: the same files make the same archive.
    let v1 = bundle(dir, "v1", "", false);
    let first = build(&v1, &dir.join("v1.tar.gz"), Some(&signing)).unwrap();
    let again = build(&v1, &dir.join("v1-again.tar.gz"), Some(&signing)).unwrap();
    assert_eq!(field(&first, "digest"), field(&again, "digest"));
    assert_eq!(
        std::fs::read(dir.join("v1.tar.gz")).unwrap(),
        std::fs::read(dir.join("v1-again.tar.gz")).unwrap()
    );
    let v1_revision = field(&first, "revision");
    // A bundle whose tests fail is not built at all.
    let failing = bundle(dir, "failing", "# failing\n", true);
    let refused = build(&failing, &dir.join("failing.tar.gz"), Some(&signing)).unwrap_err();
    assert!(
        refused.contains("not building a bundle that would be refused"),
        "{refused}"
    );

    let (ca_pem, cert, key) = test_ca();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let server = BundleServer::start(cert, key);
    server.publish(&dir.join("v1.tar.gz"));

    // The fleet's key signs its components too ([supply_chain.signature] is one requirement).
    let echo = dir.join("echo.wasm");
    std::fs::copy(common::component("echo"), &echo).unwrap();
    sign(&fleet_key, &echo);
    let mut replicas: Vec<Replica> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let ca = format!("bundle_ca = \"{}\"", ca.display());
            Replica::start(dir, name, &server.url, &ca, &public, &echo)
        })
        .collect();
    wait_for(&replicas, "every replica serves v1", |r| {
        r.revision().as_deref() == Some(v1_revision.as_str())
    });

    // A new, well-signed revision reaches all three.
    let v2 = bundle(dir, "v2", "# v2\n", false);
    let v2_revision = field(
        &build(&v2, &dir.join("v2.tar.gz"), Some(&signing)).unwrap(),
        "revision",
    );
    assert_ne!(v1_revision, v2_revision);
    server.publish(&dir.join("v2.tar.gz"));
    wait_for(&replicas, "every replica serves v2", |r| {
        r.revision().as_deref() == Some(v2_revision.as_str())
    });
    // The verdicts say which revision decided them.
    replicas.iter_mut().for_each(Replica::call_echo);
    wait_for(&replicas, "every replica recorded a call verdict", |r| {
        !r.call_verdict_revisions().is_empty()
    });
    for replica in &replicas {
        assert_eq!(
            replica.call_verdict_revisions(),
            std::slice::from_ref(&v2_revision)
        );
    }

    // Signed with a key the fleet does not trust: refused by all three, v2 keeps serving.
    let v3 = bundle(dir, "v3", "# v3\n", false);
    build(&v3, &dir.join("v3.tar.gz"), Some(&other_key)).unwrap();
    for replica in &replicas {
        assert_eq!(replica.failed_reloads(), 0.0, "{}", replica.log());
    }
    server.publish(&dir.join("v3.tar.gz"));
    wait_for(&replicas, "every replica refused v3 and counted it", |r| {
        r.log().contains("does not verify with key") && r.failed_reloads() == 1.0
    });
    for replica in &replicas {
        assert_eq!(replica.revision().as_deref(), Some(v2_revision.as_str()));
    }

    // Well signed but failing its own tests (packed and signed by hand: `policy build` would
    // not make it): the compile-and-test gate refuses it on all three.
    let v4 = bundle(dir, "v4", "# v4\n", true);
    let archive = gatehouse::supply::policy_bundle::pack(
        &gatehouse::policy::BundleSource::files(&v4).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("v4.tar.gz"), &archive).unwrap();
    sign(&fleet_key, &dir.join("v4.tar.gz"));
    server.publish(&dir.join("v4.tar.gz"));
    wait_for(&replicas, "every replica refused v4 and counted it", |r| {
        r.log().contains("bundle tests failed") && r.failed_reloads() == 2.0
    });
    for replica in &replicas {
        assert_eq!(replica.revision().as_deref(), Some(v2_revision.as_str()));
    }

    // ETag: a few more polls of the unchanged v4 are 304s, not downloads (nor refusals).
    let downloads = server.full_downloads.load(Ordering::SeqCst);
    let not_modified = server.not_modified.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(server.full_downloads.load(Ordering::SeqCst), downloads);
    assert!(server.not_modified.load(Ordering::SeqCst) >= not_modified + 3);
    // Each replica downloaded each of v1 to v4 once.
    assert_eq!(downloads, 12);
    for replica in &replicas {
        assert_eq!(replica.failed_reloads(), 2.0, "{}", replica.log());
    }

    // The server goes away: every poll fails, is counted, and v2 keeps serving.
    drop(server);
    wait_for(
        &replicas,
        "every replica counted the unreachable server",
        |r| r.failed_reloads() >= 4.0 && r.log().contains("cannot fetch the policy bundle"),
    );
    for replica in &replicas {
        assert_eq!(replica.revision().as_deref(), Some(v2_revision.as_str()));
    }
}

/// The same from an OCI registry: `policy build --push` publishes the archive with its
/// signature attached as a referrer; a replica subscribed to the tag follows it when it moves.
#[test]
fn a_replica_follows_a_signed_bundle_in_a_registry() {
    let registry = common::registry::Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let fleet_key = cosign_key();
    let (signing, public) = write_key(dir, &fleet_key, "fleet");
    let echo = dir.join("echo.wasm");
    std::fs::copy(common::component("echo"), &echo).unwrap();
    sign(&fleet_key, &echo);
    let tag = registry.reference("policy/fleet:stable");
    let publish = |name: &str, extra: &str| {
        let out = dir.join(format!("{name}.tar.gz"));
        let mut command = Command::new(BIN);
        command
            .args(["policy", "build"])
            .arg(bundle(dir, name, extra, false));
        let output = command
            .arg("-o")
            .arg(&out)
            .arg("--key")
            .arg(&signing)
            .args(["--push", &tag])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(field(&stdout, "pushed").starts_with(&registry.reference("policy/fleet@sha256:")));
        field(&stdout, "revision")
    };
    let v1 = publish("v1", "");
    let replica = Replica::start(dir, "a", &tag, "", &public, &echo);
    let replicas = [replica];
    wait_for(&replicas, "the replica serves v1", |r| {
        r.revision().as_deref() == Some(v1.as_str())
    });
    let v2 = publish("v2", "# v2\n");
    wait_for(&replicas, "the replica serves v2", |r| {
        r.revision().as_deref() == Some(v2.as_str())
    });
    assert_eq!(replicas[0].failed_reloads(), 0.0, "{}", replicas[0].log());
}

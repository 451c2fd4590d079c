//! Brokered secrets end to end through the real gateway: a secret read from a private file,
//! injected by the bundled policy's `http.credentials` into the `fetch` component's request to
//! a real server on 127.0.0.1 that echoes it back (in a header and in a body split mid-value);
//! the tool, its result and the audit log never hold the value.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse::audit::{AuditReader, Entry, EntryFilter};
use gatehouse::auth::Caller;
use gatehouse::config::{Config, SecretSource};
use gatehouse::gateway::{CallResult, Gateway};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "ghp_brokered0123456789abcdefXYZ";

/// Every request's header lines as the server received them, in order.
type Seen = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A server that answers each request with its `authorization` header echoed back in a
/// response header and in a chunked body whose chunks split the value in two.
async fn echo_server() -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).into_owned();
                let headers: Vec<(String, String)> = text
                    .lines()
                    .skip(1)
                    .filter_map(|line| line.split_once(": "))
                    .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
                    .collect();
                let auth = headers
                    .iter()
                    .find(|(n, _)| n == "authorization")
                    .map_or("none".to_owned(), |(_, v)| v.clone());
                record.lock().unwrap().push(headers);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-echo-authorization: {auth}\r\nconnection: close\r\n\r\n"
                );
                let body = format!("seen authorization: {auth}.");
                let (first, second) = body.split_at(body.len() / 2 + 10);
                let _ = stream.write_all(head.as_bytes()).await;
                for chunk in [first, second] {
                    let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                    let _ = stream.write_all(framed.as_bytes()).await;
                    let _ = stream.flush().await;
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    (address, seen)
}

struct Broker {
    dir: tempfile::TempDir,
    gateway: Gateway,
}

/// Writes the secret file with `mode` and the policy data naming `credentials`.
fn config(dir: &Path, mode: u32, credentials: Value) -> Config {
    let secret = dir.join("github.token");
    std::fs::write(&secret, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
    let data = json!({
        "settings": {"mode": "dev"},
        "principals": {"local": {"tools": ["*"]}},
        "http": {
            "allowed_domains": ["127.0.0.1", "localhost"],
            "allowed_schemes": ["http"],
            "allow_private": true,
            "credentials": credentials,
        },
    });
    std::fs::write(dir.join("policy-data.json"), data.to_string()).unwrap();
    let mut config = Config::default();
    config
        .components
        .push(toml::from_str(&format!("path = {:?}", common::component("fetch"))).unwrap());
    config.policy.dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"));
    config.policy.data = vec![dir.join("policy-data.json")];
    config.audit.path = Some(dir.join("audit.db"));
    config.cache.dir = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"));
    config.secrets.insert(
        "github".into(),
        SecretSource {
            env: None,
            file: Some(secret),
        },
    );
    config
}

fn credential(host: &str, template: &str) -> Value {
    json!([{"host": host, "scheme": "http", "headers": {"authorization": template}}])
}

impl Broker {
    fn new(credentials: Value) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let gateway = Gateway::from_config(&config(dir.path(), 0o600, credentials)).unwrap();
        Broker { dir, gateway }
    }

    /// Fetches `url` through the `fetch` tool; returns the tool's result as JSON and the call id.
    async fn fetch(&self, url: &str) -> (Value, String) {
        let caller = Caller::operator("local");
        let arguments = json!({"url": url}).as_object().cloned();
        let result = match self.gateway.call(&caller, "fetch_fetch", arguments).await {
            CallResult::Completed {
                structured: Some(structured),
                ..
            } => structured["result"].clone(),
            other => panic!("unexpected result {other:?}"),
        };
        let call = self.entries(Some("call"))[0].call_id.clone().unwrap();
        (result, call)
    }

    fn entries(&self, phase: Option<&str>) -> Vec<Entry> {
        AuditReader::open(&self.dir.path().join("audit.db"))
            .unwrap()
            .query(&EntryFilter {
                phase: phase.map(str::to_owned),
                newest_first: true,
                ..Default::default()
            })
            .unwrap()
    }

    fn story(&self, call: &str) -> Vec<Entry> {
        AuditReader::open(&self.dir.path().join("audit.db"))
            .unwrap()
            .query(&EntryFilter {
                call_id: Some(call.to_owned()),
                ..Default::default()
            })
            .unwrap()
    }

    /// Every file of the audit log (database, WAL) in bytes.
    fn audit_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path: PathBuf = entry.unwrap().path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("audit.db"))
            {
                all.extend(std::fs::read(path).unwrap());
            }
        }
        all
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secret_reaches_only_the_named_host_and_never_the_tool_or_the_log() {
    let (server, seen) = echo_server().await;
    let broker = Broker::new(credential("127.0.0.1", "Bearer {{secret.github}}"));

    let (result, call) = broker.fetch(&format!("http://{server}/echo")).await;
    let received = seen.lock().unwrap().pop().unwrap();
    assert!(
        received
            .iter()
            .any(|(n, v)| n == "authorization" && v == &format!("Bearer {TOKEN}")),
        "the server did not get the injected header: {received:?}"
    );
    let masked = "*".repeat(TOKEN.len());
    let ok = &result["ok"];
    assert_eq!(
        ok["body"],
        format!("seen authorization: Bearer {masked}."),
        "the echo in the body, split mid-value, comes back masked"
    );
    let echoed_header = ok["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "x-echo-authorization")
        .unwrap();
    assert_eq!(echoed_header[1], format!("Bearer {masked}"));

    let http = broker
        .story(&call)
        .into_iter()
        .find(|e| e.phase == "http")
        .unwrap();
    assert_eq!(http.verdict, "allow");
    assert_eq!(
        http.obligations,
        json!({"inject": {"headers": {"authorization": "Bearer {{secret.github}}"}}}),
        "the entry names the secret and the header"
    );

    // The same tool, a host the credential does not name: the request goes out without it.
    let (result, _) = broker
        .fetch(&format!("http://localhost:{}/echo", server.port()))
        .await;
    assert_eq!(result["ok"]["body"], "seen authorization: none.");
    let received = seen.lock().unwrap().pop().unwrap();
    assert!(
        !received.iter().any(|(n, _)| n == "authorization"),
        "{received:?}"
    );

    broker.gateway.audit().close().unwrap();
    let bytes = broker.audit_bytes();
    assert!(!bytes.is_empty());
    assert!(!contains(&bytes, TOKEN), "the audit log holds the secret");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_naming_an_unconfigured_secret_sends_nothing() {
    let (server, seen) = echo_server().await;
    let broker = Broker::new(credential("127.0.0.1", "Bearer {{secret.gitlab}}"));
    let (result, call) = broker.fetch(&format!("http://{server}/echo")).await;
    assert!(
        result["err"]
            .as_str()
            .is_some_and(|e| e.contains("HttpRequestDenied")),
        "{result}"
    );
    assert!(seen.lock().unwrap().is_empty(), "the request went out");
    let refusal = broker
        .story(&call)
        .into_iter()
        .find(|e| e.phase == "http" && e.verdict == "deny")
        .expect("a refusal entry");
    assert!(
        refusal.reasons[0].contains("no [secrets.gitlab] is configured"),
        "{:?}",
        refusal.reasons
    );
}

#[test]
fn a_secret_file_others_can_read_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 0o640, json!([]));
    let error = Gateway::from_config(&config)
        .err()
        .expect("an exposed secret file must refuse the start")
        .to_string();
    assert!(
        error.contains("[secrets.github]") && error.contains("github.token"),
        "{error}"
    );
    assert!(error.contains("chmod 600"), "{error}");
    assert!(!error.contains(TOKEN), "{error}");
}

#[test]
fn an_env_grant_holding_a_secret_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), 0o600, json!([]));
    config.env.insert("GH".into(), TOKEN.into());
    let error = Gateway::from_config(&config)
        .err()
        .expect("a secret in [env] must refuse the start")
        .to_string();
    assert!(
        error.contains("[env] GH") && error.contains("github"),
        "{error}"
    );
    assert!(!error.contains(TOKEN), "{error}");
}

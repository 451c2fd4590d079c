//! Callers identified by bearer JWTs over streamable HTTP: a real gateway (bundled policy, the
//! `echo` test component, a real SQLite audit log) serves on 127.0.0.1, and the tests mint
//! tokens with RSA, EC P-256 and Ed25519 keys they generate, published in a JWKS file or by an
//! HTTPS JWKS endpoint the test serves on 127.0.0.1.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use gatehouse::audit::{AuditReader, EntryFilter};
use gatehouse::auth::{
    ApiKeyConfig, JwksUrl, JwtSettings, JwtValidator, REFRESH_SECONDS, TokenError,
    UNKNOWN_KEY_COOLDOWN,
};
use gatehouse::config::{ComponentConfig, Config};
use gatehouse::gateway::Gateway;
use gatehouse::mcp::http::HttpOptions;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "gatehouse-test";
/// `printf %s test-api-key | sha256sum`
const API_KEY: &str = "test-api-key";

/// A signing key the test made, and its public half as a JWK named `kid`.
struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    jwk: Jwk,
    public_pem: String,
}

impl SigningKey {
    fn new(kid: &str, algorithm: Algorithm) -> SigningKey {
        let (rcgen_alg, encoding): (_, fn(&[u8]) -> _) = match algorithm {
            Algorithm::RS256 => (&rcgen::PKCS_RSA_SHA256, EncodingKey::from_rsa_pem),
            Algorithm::ES256 => (&rcgen::PKCS_ECDSA_P256_SHA256, EncodingKey::from_ec_pem),
            Algorithm::EdDSA => (&rcgen::PKCS_ED25519, EncodingKey::from_ed_pem),
            other => panic!("no test key for {other:?}"),
        };
        let pair = rcgen::KeyPair::generate_for(rcgen_alg).unwrap();
        let encoding = encoding(pair.serialize_pem().as_bytes()).unwrap();
        let mut jwk = match algorithm {
            // jsonwebtoken derives an Ed25519 JWK only from a PKCS#8 v1 key; aws-lc makes v2.
            Algorithm::EdDSA => serde_json::from_value(json!({
                "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key_raw()),
            }))
            .unwrap(),
            _ => Jwk::from_encoding_key(&encoding, algorithm).unwrap(),
        };
        jwk.common.key_id = Some(kid.to_owned());
        SigningKey {
            kid: kid.to_owned(),
            algorithm,
            encoding,
            jwk,
            public_pem: pair.public_key_pem(),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
}

/// Claims that pass every check, for `sub`, with `extra` merged over them.
fn claims(sub: &str, extra: Value) -> Value {
    let mut claims = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now(),
        "nbf": now() - 10,
        "exp": now() + 600,
        "groups": ["analysts"],
    });
    for (key, value) in extra.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

/// The settings every test uses but for where the keys are.
fn jwt_settings() -> JwtSettings {
    JwtSettings {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        ..JwtSettings::default()
    }
}

fn jwks_document(keys: &[&SigningKey]) -> Vec<u8> {
    let set = JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    };
    serde_json::to_vec(&set).unwrap()
}

fn write_jwks(path: &Path, keys: &[&SigningKey]) {
    // Replaced by a rename, as a deployment tool would, so no reader sees half a file.
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, jwks_document(keys)).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// A gateway serving the `echo` component over HTTP, whose policy grants `echo_*` to JWT
/// callers in group `analysts` and to nobody by name.
struct Served {
    dir: tempfile::TempDir,
    url: String,
    client: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Served {
    /// Keys from a JWKS file.
    async fn start(keys: &[&SigningKey], allow_anonymous: bool) -> Served {
        let dir = tempfile::tempdir().unwrap();
        write_jwks(&dir.path().join("jwks.json"), keys);
        let settings = JwtSettings {
            jwks_file: Some(dir.path().join("jwks.json")),
            ..jwt_settings()
        };
        let validator = JwtValidator::new(&settings).await.unwrap();
        Served::with_validator(dir, validator, allow_anonymous).await
    }

    async fn with_validator(
        dir: tempfile::TempDir,
        validator: JwtValidator,
        allow_anonymous: bool,
    ) -> Served {
        let root = dir.path();
        let data = json!({
            "settings": {"mode": "dev"},
            "principals": {"key-holder": {"tools": []}},
            "claim_grants": {"groups": {"analysts": {"tools": ["echo_*"]}}, "scopes": {}},
        });
        std::fs::write(root.join("policy-data.json"), data.to_string()).unwrap();
        let mut config = Config::default();
        let component: ComponentConfig =
            toml::from_str(&format!("path = {:?}", common::component("echo"))).unwrap();
        config.components.push(component);
        config.policy.dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"));
        config.policy.data = vec![root.join("policy-data.json")];
        config.audit.path = Some(root.join("audit.db"));
        config.cache.dir = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"));
        let gateway = Arc::new(Gateway::from_config(&config).unwrap());
        let options = HttpOptions {
            extra_hosts: Vec::new(),
            api_keys: vec![ApiKeyConfig {
                principal: "key-holder".into(),
                key_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(API_KEY)),
            }],
            allow_anonymous,
            jwt: Some(validator),
            max_argument_bytes: 1 << 20,
            metrics: None,
            metrics_auth: false,
            ui: None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(gatehouse::mcp::http::serve(
            gateway,
            listener,
            options,
            shutdown.clone(),
        ));
        Served {
            dir,
            url,
            client: reqwest::Client::new(),
            shutdown,
        }
    }

    fn jwks(&self) -> PathBuf {
        self.dir.path().join("jwks.json")
    }

    async fn post(
        &self,
        bearer: Option<&str>,
        session: Option<&str>,
        body: Value,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/mcp", self.url))
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        request.send().await.unwrap()
    }

    /// Opens a session as `bearer` and answers its `tools/list` tool names.
    async fn listed_tools(&self, bearer: &str) -> Vec<String> {
        let opened = self.post(Some(bearer), None, initialize()).await;
        assert_eq!(opened.status(), 200, "{:?}", opened.text().await);
        let session = opened.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        drop(opened.text().await);
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let notified = self.post(Some(bearer), Some(&session), initialized).await;
        assert!(notified.status().is_success(), "{}", notified.status());
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        let listed = self.post(Some(bearer), Some(&session), list).await;
        assert_eq!(listed.status(), 200);
        let answer = sse_message(&listed.text().await.unwrap());
        answer["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("no tools in {answer}"))
            .iter()
            .map(|tool| tool["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The reason `bearer` is refused with: the 401's `WWW-Authenticate` header.
    async fn refusal(&self, bearer: &str) -> String {
        let response = self.post(Some(bearer), None, initialize()).await;
        assert_eq!(response.status(), 401, "{bearer} was not refused");
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn entries(&self) -> Vec<gatehouse::audit::Entry> {
        AuditReader::open(&self.dir.path().join("audit.db"))
            .unwrap()
            .query(&EntryFilter::default())
            .unwrap()
    }

    /// Every byte the audit log wrote so far (database and write-ahead log).
    fn audit_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().contains("audit") && path.is_file() {
                bytes.extend(std::fs::read(path).unwrap());
            }
        }
        bytes
    }
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "jwt-test", "version": "1"},
    }})
}

/// The JSON-RPC message of an SSE (or plain JSON) response body.
fn sse_message(body: &str) -> Value {
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim)
        .find(|data| data.starts_with('{'))
        .map(|data| serde_json::from_str(data).unwrap())
        .unwrap_or_else(|| serde_json::from_str(body).unwrap())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn expect_reason(challenge: &str, reason: &str) {
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""),
        "{challenge}"
    );
    assert!(
        challenge.contains(reason),
        "{challenge} does not say {reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_of_each_key_type_is_served_with_its_claims_in_the_policy() {
    let keys = [
        SigningKey::new("rsa", Algorithm::RS256),
        SigningKey::new("ec", Algorithm::ES256),
        SigningKey::new("ed", Algorithm::EdDSA),
    ];
    let served = Served::start(&keys.iter().collect::<Vec<_>>(), false).await;
    let mut tokens = Vec::new();
    for key in &keys {
        let token = key.sign(&claims(&format!("user-{}", key.kid), json!({})));
        let tools = served.listed_tools(&token).await;
        assert!(tools.contains(&"echo_echo".to_owned()), "{tools:?}");
        tokens.push(token);
    }
    // Outside the group the policy grants, the same issuer's token lists nothing.
    let outsider = keys[0].sign(&claims("outsider", json!({"groups": ["staff"]})));
    assert_eq!(served.listed_tools(&outsider).await, Vec::<String>::new());

    // The list decisions carry the caller as the policy saw it: how, and the whole claim set.
    let entries = served.entries();
    let listed = entries
        .iter()
        .find(|e| e.phase == "list" && e.caller["principal"] == "user-ec")
        .expect("a list decision for user-ec");
    assert_eq!(listed.caller["auth"], "jwt");
    assert_eq!(listed.caller["authenticated"], true);
    assert_eq!(listed.caller["claims"]["groups"], json!(["analysts"]));
    assert_eq!(listed.caller["claims"]["iss"], ISSUER);
    assert_eq!(listed.input["caller"]["claims"], listed.caller["claims"]);
    let log = served.audit_bytes();
    for token in &tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !log.windows(signature.len())
                .any(|w| w == signature.as_bytes()),
            "the audit log holds a token"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_get_401_naming_the_reason_and_an_audit_entry() {
    let key = SigningKey::new("rsa", Algorithm::RS256);
    let stranger = SigningKey::new("stranger", Algorithm::ES256);
    let served = Served::start(&[&key], false).await;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            key.sign(&claims(
                "u",
                json!({"exp": now() - 3600, "iat": now() - 7200}),
            )),
            "the token has expired",
        ),
        (
            "not yet valid",
            key.sign(&claims("u", json!({"nbf": now() + 3600}))),
            "the token is not yet valid",
        ),
        (
            "issued in the future",
            key.sign(&claims("u", json!({"iat": now() + 3600}))),
            "the token was issued in the future",
        ),
        (
            "no exp",
            key.sign(&claims("u", json!({"exp": null}))),
            "the token lacks a required claim",
        ),
        (
            "no principal",
            key.sign(&claims("u", json!({"sub": null}))),
            "the token's principal claim is missing or not a string",
        ),
        (
            "wrong issuer",
            key.sign(&claims("u", json!({"iss": "https://evil.test"}))),
            "the token has the wrong issuer",
        ),
        (
            "wrong audience",
            key.sign(&claims("u", json!({"aud": "someone-else"}))),
            "the token has the wrong audience",
        ),
        (
            "unknown kid",
            stranger.sign(&claims("u", json!({}))),
            "the token names no `kid` or an unknown key",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT","kid":"rsa"}"#),
                b64(claims("u", json!({})).to_string().as_bytes())
            ),
            "the token's algorithm is not allowed",
        ),
        (
            "HS256 keyed with the public key",
            {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some("rsa".into());
                let secret = EncodingKey::from_secret(key.public_pem.as_bytes()).unwrap();
                jsonwebtoken::encode(&header, &claims("u", json!({})), &secret).unwrap()
            },
            "the token's algorithm is not allowed",
        ),
        (
            "bad signature",
            {
                let token = key.sign(&claims("u", json!({})));
                let forged = key.sign(&claims("admin", json!({})));
                let (body, _) = forged.rsplit_once('.').unwrap();
                format!("{body}.{}", token.rsplit('.').next().unwrap())
            },
            "the token's signature does not verify",
        ),
    ];
    for (case, token, reason) in &cases {
        let challenge = served.refusal(token).await;
        expect_reason(&challenge, reason);
        assert!(!challenge.contains(token.as_str()), "{case}: token echoed");
    }
    let refusals: Vec<_> = served
        .entries()
        .into_iter()
        .filter(|e| e.phase == "auth")
        .collect();
    assert_eq!(refusals.len(), cases.len(), "one auth entry per refusal");
    for (entry, (case, _, reason)) in refusals.iter().zip(&cases) {
        assert_eq!(entry.verdict, "deny", "{case}");
        assert_eq!(entry.reasons, [reason.to_string()], "{case}");
        assert_eq!(entry.caller["auth"], "jwt", "{case}");
        assert_eq!(entry.caller["authenticated"], false, "{case}");
    }
    let log = served.audit_bytes();
    for (case, token, _) in &cases {
        let payload = token.split('.').nth(1).unwrap();
        assert!(
            !log.windows(payload.len()).any(|w| w == payload.as_bytes()),
            "{case}: the audit log holds token bytes"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_keep_working_and_without_credentials_a_request_is_refused() {
    let key = SigningKey::new("ed", Algorithm::EdDSA);
    let served = Served::start(&[&key], false).await;
    // The API key's principal is served (the policy grants it nothing, so it lists nothing).
    assert_eq!(served.listed_tools(API_KEY).await, Vec::<String>::new());
    let listed = served
        .entries()
        .into_iter()
        .find(|e| e.phase == "list")
        .expect("a list decision");
    assert_eq!(listed.caller["principal"], "key-holder");
    assert_eq!(listed.caller["auth"], "api_key");
    assert_eq!(listed.caller["claims"], json!({}));

    let anonymous = served.post(None, None, initialize()).await;
    assert_eq!(anonymous.status(), 401);
    let unknown = served.refusal("not-a-key").await;
    expect_reason(&unknown, "unknown API key");
    let phases: Vec<_> = served
        .entries()
        .into_iter()
        .filter(|e| e.phase == "auth")
        .map(|e| e.caller["auth"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(phases, ["none", "api_key"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_jwks_file_retires_the_old_key_while_serving() {
    let old = SigningKey::new("2026-old", Algorithm::RS256);
    let new = SigningKey::new("2026-new", Algorithm::ES256);
    let served = Served::start(&[&old], false).await;
    let old_token = old.sign(&claims("u", json!({})));
    let new_token = new.sign(&claims("u", json!({})));
    assert!(!served.listed_tools(&old_token).await.is_empty());
    expect_reason(&served.refusal(&new_token).await, "unknown key");

    write_jwks(&served.jwks(), &[&new]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = served.post(Some(&old_token), None, initialize()).await;
        if response.status() == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the old key still works");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    expect_reason(&served.refusal(&old_token).await, "unknown key");
    assert!(!served.listed_tools(&new_token).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protected_resource_metadata_names_the_issuer_without_authentication() {
    let key = SigningKey::new("ec", Algorithm::ES256);
    let served = Served::start(&[&key], false).await;
    let response = served
        .client
        .get(format!(
            "{}/.well-known/oauth-protected-resource",
            served.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let metadata: Value = response.json().await.unwrap();
    assert_eq!(metadata["authorization_servers"], json!([ISSUER]));
    assert_eq!(metadata["resource"], format!("{}/mcp", served.url));
    // The 401 challenge points clients at it.
    let anonymous = served.post(None, None, initialize()).await;
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
            served.url
        )),
        "{challenge}"
    );
}

// Keys from a JWKS URL: an identity provider's endpoint served over HTTPS on 127.0.0.1.

/// A JWKS endpoint over HTTPS with a certificate the test makes for 127.0.0.1, counting the
/// requests it answers. It answers whatever `publish` or `respond` set last.
struct JwksServer {
    url: String,
    certificate_pem: String,
    body: Arc<Mutex<Vec<u8>>>,
    requests: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    listening: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.listening.abort();
    }
}

impl JwksServer {
    async fn start(keys: &[&SigningKey]) -> JwksServer {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der())
            .unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let body = Arc::new(Mutex::new(jwks_document(keys)));
        let requests = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let listening = tokio::spawn({
            let (body, requests, failing) = (body.clone(), requests.clone(), failing.clone());
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let (acceptor, body, requests) =
                        (acceptor.clone(), body.clone(), requests.clone());
                    let failing = failing.load(Ordering::SeqCst);
                    tokio::spawn(async move {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            answer(stream, &body, &requests, failing).await;
                        }
                    });
                }
            }
        });
        JwksServer {
            url,
            certificate_pem: certified.cert.pem(),
            body,
            requests,
            failing,
            listening,
        }
    }

    fn publish(&self, keys: &[&SigningKey]) {
        self.respond(jwks_document(keys));
    }

    fn respond(&self, body: Vec<u8>) {
        *self.body.lock().unwrap() = body;
    }

    /// Answers 503 from now on.
    fn fail(&self) {
        self.failing.store(true, Ordering::SeqCst);
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Stops listening: connections are refused from now on.
    async fn go_down(&self) {
        self.listening.abort();
        while !self.listening.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Settings fetching this server's keys, trusting only its certificate (written to `dir`).
    fn settings(&self, dir: &Path) -> JwtSettings {
        let ca_file = dir.join("idp-ca.pem");
        std::fs::write(&ca_file, &self.certificate_pem).unwrap();
        JwtSettings {
            jwks_url: Some(JwksUrl::try_from(self.url.clone()).unwrap()),
            jwks_ca_file: Some(ca_file),
            ..jwt_settings()
        }
    }
}

/// Reads one request head and answers the current body (or 503 when `failing`), closing the
/// connection.
async fn answer(
    mut stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    body: &Mutex<Vec<u8>>,
    requests: &AtomicUsize,
    failing: bool,
) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let (status, body) = if failing {
        ("503 Service Unavailable", Vec::new())
    } else {
        ("200 OK", body.lock().unwrap().clone())
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_a_jwks_url_serve_and_a_rotated_key_is_fetched_on_its_first_token() {
    let old = SigningKey::new("2026-old", Algorithm::RS256);
    let new = SigningKey::new("2026-new", Algorithm::EdDSA);
    let idp = JwksServer::start(&[&old]).await;
    let dir = tempfile::tempdir().unwrap();
    let validator = JwtValidator::new(&idp.settings(dir.path())).await.unwrap();
    assert_eq!(idp.requests(), 1, "fetched once at start");
    let served = Served::with_validator(dir, validator, false).await;
    let old_token = old.sign(&claims("u", json!({})));
    assert!(!served.listed_tools(&old_token).await.is_empty());
    assert_eq!(idp.requests(), 1, "a known key needs no fetch");

    // The provider rotates: the first token of the new key makes the gateway fetch again.
    idp.publish(&[&new]);
    let new_token = new.sign(&claims("u", json!({})));
    assert!(!served.listed_tools(&new_token).await.is_empty());
    assert_eq!(idp.requests(), 2);
    // The fetched set is the provider's word: the key it dropped no longer verifies.
    expect_reason(&served.refusal(&old_token).await, "unknown key");
    assert_eq!(idp.requests(), 2, "within the cooldown, no fetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_costs_the_provider_one_fetch() {
    let key = SigningKey::new("ec", Algorithm::ES256);
    let stranger = SigningKey::new("unused", Algorithm::ES256);
    let idp = JwksServer::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    let validator = JwtValidator::new(&idp.settings(dir.path())).await.unwrap();
    // Each token names a kid of its own, as an attacker's would.
    let forged = |i: usize| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(format!("random-{i}"));
        jsonwebtoken::encode(&header, &claims("u", json!({})), &stranger.encoding).unwrap()
    };
    let burst: Vec<_> = (0..64)
        .map(|i| {
            let (validator, token) = (validator.clone(), forged(i));
            tokio::spawn(async move { validator.validate(&token).await })
        })
        .collect();
    for refused in burst {
        assert_eq!(refused.await.unwrap().unwrap_err(), TokenError::UnknownKey);
    }
    for i in 64..128 {
        let refused = validator.validate(&forged(i)).await;
        assert_eq!(refused.unwrap_err(), TokenError::UnknownKey);
    }
    assert!(
        UNKNOWN_KEY_COOLDOWN >= Duration::from_secs(5),
        "the test ran within the cooldown"
    );
    assert_eq!(idp.requests(), 2, "the start's fetch and one for the flood");
    let token = key.sign(&claims("u", json!({})));
    assert_eq!(validator.validate(&token).await.unwrap().principal, "u");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_refreshed_on_schedule_and_kept_while_the_provider_is_down() {
    let old = SigningKey::new("old", Algorithm::RS256);
    let new = SigningKey::new("new", Algorithm::ES256);
    let idp = JwksServer::start(&[&old]).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = JwtSettings {
        jwks_refresh_seconds: Some(*REFRESH_SECONDS.start()),
        ..idp.settings(dir.path())
    };
    let validator = JwtValidator::new(&settings).await.unwrap();
    let old_token = old.sign(&claims("u", json!({})));
    let new_token = new.sign(&claims("u", json!({})));
    assert!(validator.validate(&old_token).await.is_ok());

    // No token asks for the new key: only the scheduled refresh can retire the old one.
    idp.publish(&[&new]);
    let deadline = Instant::now() + Duration::from_secs(*REFRESH_SECONDS.start() * 3);
    while validator.validate(&old_token).await.is_ok() {
        assert!(Instant::now() < deadline, "no scheduled refresh");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The scheduled fetch, and one for the refused token's kid, unknown since.
    assert_eq!(idp.requests(), 3);
    assert!(validator.validate(&new_token).await.is_ok());

    // Failing: the next scheduled refresh gets a 503, and the last good keys keep working.
    idp.fail();
    let deadline = Instant::now() + Duration::from_secs(*REFRESH_SECONDS.start() * 3);
    while idp.requests() == 3 {
        assert!(Instant::now() < deadline, "no scheduled refresh");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(validator.validate(&new_token).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_does_not_start_without_its_providers_keys() {
    let key = SigningKey::new("ec", Algorithm::ES256);
    let idp = JwksServer::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = idp.settings(dir.path());
    let failure = |settings: JwtSettings| async move {
        JwtValidator::new(&settings).await.unwrap_err().to_string()
    };

    // Without the provider's CA, its certificate is not trusted (the WebPKI roots are).
    let untrusted = failure(JwtSettings {
        jwks_ca_file: None,
        ..settings.clone()
    })
    .await;
    assert!(untrusted.contains(&idp.url), "{untrusted}");
    assert!(untrusted.contains("certificate"), "{untrusted}");

    // An oversized answer is refused.
    let mut oversized = jwks_document(&[&key]);
    oversized.resize(gatehouse::auth::MAX_JWKS_BYTES + 1, b' ');
    idp.respond(oversized);
    let too_large = failure(settings.clone()).await;
    assert!(too_large.contains("larger than"), "{too_large}");
    assert!(too_large.contains(&idp.url), "{too_large}");

    idp.respond(b"<html>login</html>".to_vec());
    let not_jwks = failure(settings.clone()).await;
    assert!(not_jwks.contains("not a JWKS document"), "{not_jwks}");

    idp.go_down().await;
    let down = failure(settings).await;
    assert!(down.contains(&idp.url), "{down}");
    assert!(down.contains("does not start"), "{down}");
}

#[test]
fn a_jwks_url_must_be_https_and_the_only_key_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gatehouse.toml");
    let load = |jwt: &str| {
        let text = format!("[auth.jwt]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n{jwt}");
        std::fs::write(&file, text).unwrap();
        Config::load(&file).map(|config| config.auth.jwt.unwrap())
    };
    let plain = load("jwks_url = \"http://idp.test/jwks.json\"").unwrap_err();
    assert!(
        plain.to_string().contains("must be an https:// URL"),
        "{plain}"
    );
    let settings = load("jwks_url = \"https://idp.test/jwks.json\"\njwks_refresh_seconds = 60");
    assert_eq!(
        settings.unwrap().jwks_url.unwrap().to_string(),
        "https://idp.test/jwks.json"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let both = load("jwks_url = \"https://idp.test/jwks.json\"\njwks_file = \"jwks.json\"");
    let error = runtime
        .block_on(JwtValidator::new(&both.unwrap()))
        .unwrap_err();
    assert!(
        error.to_string().contains("exactly one of jwks_file"),
        "{error}"
    );
}

//! Callers identified by bearer JWTs over streamable HTTP: a real gateway (bundled policy, the
//! `echo` test component, a real SQLite audit log) serves on 127.0.0.1, and the tests mint
//! tokens with RSA, EC P-256 and Ed25519 keys they generate, published in a JWKS file.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use gatehouse::audit::{AuditReader, EntryFilter};
use gatehouse::auth::{ApiKeyConfig, JwtSettings, JwtValidator};
use gatehouse::config::{ComponentConfig, Config};
use gatehouse::gateway::Gateway;
use gatehouse::mcp::http::HttpOptions;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
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

fn write_jwks(path: &Path, keys: &[&SigningKey]) {
    let set = JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    };
    // Replaced by a rename, as a deployment tool would, so no reader sees half a file.
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, serde_json::to_vec(&set).unwrap()).unwrap();
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
    async fn start(keys: &[&SigningKey], allow_anonymous: bool) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_jwks(&root.join("jwks.json"), keys);
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
        let settings = JwtSettings {
            jwks_file: Some(root.join("jwks.json")),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            ..JwtSettings::default()
        };
        let options = HttpOptions {
            extra_hosts: Vec::new(),
            api_keys: vec![ApiKeyConfig {
                principal: "key-holder".into(),
                key_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(API_KEY)),
            }],
            allow_anonymous,
            jwt: Some(JwtValidator::new(&settings).unwrap()),
            max_argument_bytes: 1 << 20,
            metrics: None,
            metrics_auth: false,
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

//! Streamable HTTP transport: `POST/GET/DELETE /mcp` on a local listener.
//!
//! Three guards run before MCP sees a request: DNS-rebinding protection (the `Host` must be the
//! listener's own authority or an operator-listed name; a browser `Origin` must match it),
//! caller authentication (`Authorization: Bearer` with a JWT of the identity provider or an API
//! key; without one the caller is `anonymous`, or refused when anonymous access is off), and the
//! session's owner (a session serves only the principal that opened it: `sessions`).
//!
//! Which credential a bearer value is: with `[auth.jwt]` configured, a value shaped like a JWT
//! (three base64url segments joined by dots) is validated as a JWT and only as one; anything
//! else is looked up as an API key. Every refusal is answered 401 and recorded in the audit log
//! (phase `auth`) with its reason, never with the credential.
//!
//! The auditor's web view (`/ui/`, [`crate::ui`]) passes the same `Host` check and checks
//! credentials with the same authenticator; it admits only the principals `[ui]` names.
//!
//! `GET /metrics` ([`crate::telemetry`]), when the configuration serves it here, passes the
//! same `Host` check as `/mcp`; it needs a credential only with `[metrics] auth = true`
//! (Prometheus scrapes without one by default).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::McpServer;
use super::sessions::{self, OwnedSessions, SessionOwners};
use crate::auth::{
    ApiKeyConfig, ApiKeys, AuthMethod, AuthenticatedPrincipal, Caller, JwtValidator, Transport,
    looks_like_jwt,
};
use crate::gateway::Gateway;

/// Room for the JSON-RPC envelope around the largest arguments object we accept.
const ENVELOPE_BYTES: usize = 64 << 10;

/// How the HTTP listener admits requests.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Extra `Host` names (besides the listener's own address) that are accepted.
    pub extra_hosts: Vec<String>,
    pub api_keys: Vec<ApiKeyConfig>,
    pub allow_anonymous: bool,
    /// Bearer JWTs, when `[auth.jwt]` is configured.
    pub jwt: Option<JwtValidator>,
    pub max_argument_bytes: usize,
    /// Served at `GET /metrics` when given (`[metrics]`).
    pub metrics: Option<crate::telemetry::Metrics>,
    /// Whether `/metrics` requires a credential (`[metrics] auth`); anonymous is refused.
    pub metrics_auth: bool,
    /// The auditor's web view at `/ui/`, when `[ui]` names someone.
    pub ui: Option<crate::ui::UiOptions>,
}

/// Where the protected-resource metadata is served (RFC 9728, MCP authorization).
const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// What `authenticate` needs: the credentials it accepts and the log refusals go to.
#[derive(Clone)]
struct Authenticator {
    keys: ApiKeys,
    jwt: Option<JwtValidator>,
    gateway: Arc<Gateway>,
    /// `resource_metadata="…"` for the `WWW-Authenticate` header, when JWTs are accepted.
    metadata_url: Option<String>,
}

/// A refused credential: what the caller is told and what the audit log records.
struct Refusal {
    auth: AuthMethod,
    reason: String,
    /// RFC 6750 `error` code, for a presented token that is not valid.
    invalid_token: bool,
}

impl Authenticator {
    async fn identify(
        &self,
        header: Option<Option<&str>>,
    ) -> Result<AuthenticatedPrincipal, Refusal> {
        let bearer = header
            .flatten()
            .and_then(|value| value.strip_prefix("Bearer "));
        if let (Some(jwt), Some(token)) = (&self.jwt, bearer.map(str::trim))
            && looks_like_jwt(token)
        {
            return jwt.validate(token).await.map_err(|error| Refusal {
                auth: AuthMethod::Jwt,
                reason: error.to_string(),
                invalid_token: true,
            });
        }
        self.keys.authenticate(header).map_err(|reason| Refusal {
            auth: if header.is_some() {
                AuthMethod::ApiKey
            } else {
                AuthMethod::None
            },
            reason: reason.to_owned(),
            invalid_token: header.is_some(),
        })
    }

    /// The web view's credential check: the same as `/mcp`'s, refusals recorded alike.
    fn for_ui(&self) -> crate::ui::Identify {
        let auth = self.clone();
        Arc::new(move |token: String| {
            let auth = auth.clone();
            Box::pin(async move {
                let header = format!("Bearer {token}");
                match auth.identify(Some(Some(&header))).await {
                    Ok(principal) => Ok(principal),
                    Err(refusal) => {
                        auth.record_refusal(&refusal).await;
                        Err(refusal.reason)
                    }
                }
            })
        })
    }

    /// Records a refused credential in the audit log (phase `auth`), never the credential.
    async fn record_refusal(&self, refusal: &Refusal) {
        tracing::warn!(reason = %refusal.reason, "HTTP request refused");
        let caller = Caller {
            principal: Caller::ANONYMOUS.to_owned(),
            authenticated: false,
            transport: Transport::Http,
            client: None,
            auth: refusal.auth,
            claims: serde_json::Map::new(),
        };
        if let Err(error) = self
            .gateway
            .record_refused_credential(&caller, &refusal.reason)
            .await
        {
            tracing::error!(%error, "recording a refused credential in the audit log failed");
        }
    }

    fn challenge(&self, refusal: &Refusal) -> http::HeaderValue {
        let mut challenge = String::from("Bearer");
        let mut params = Vec::new();
        if refusal.invalid_token {
            // The reason is one of our fixed texts: no quote or backslash to escape.
            params.push(format!(
                "error=\"invalid_token\", error_description=\"{}\"",
                refusal.reason
            ));
        }
        if let Some(url) = &self.metadata_url {
            params.push(format!("resource_metadata=\"{url}\""));
        }
        if !params.is_empty() {
            challenge.push(' ');
            challenge.push_str(&params.join(", "));
        }
        http::HeaderValue::from_str(&challenge)
            .unwrap_or_else(|_| http::HeaderValue::from_static("Bearer"))
    }
}

async fn authenticate(
    State(auth): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|value| value.to_str().ok());
    let refusal = match auth.identify(header).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            return next.run(request).await;
        }
        Err(refusal) => refusal,
    };
    auth.record_refusal(&refusal).await;
    let mut response = json_rpc_error(
        http::StatusCode::UNAUTHORIZED,
        -32001,
        refusal.reason.clone(),
    );
    response
        .headers_mut()
        .insert(http::header::WWW_AUTHENTICATE, auth.challenge(&refusal));
    response
}

/// The protected-resource metadata: this endpoint and the issuer that grants its tokens.
fn resource_metadata(resource: &str, issuer: &str) -> serde_json::Value {
    serde_json::json!({
        "resource": resource,
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
    })
}

/// Answers a POST whose body is not JSON-RPC with a JSON-RPC error (`-32700` parse error,
/// `-32600` invalid request) instead of the transport's plain-text 400, so every client gets
/// an error it can parse. Valid messages pass through unchanged.
async fn require_json_rpc(State(limit): State<usize>, request: Request, next: Next) -> Response {
    if request.method() != http::Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return json_rpc_error(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                crate::mcp::jsonrpc::INVALID_REQUEST,
                format!("request body is larger than {limit} bytes"),
            );
        }
    };
    if let Err(refusal) = crate::mcp::jsonrpc::parse_client_message(&bytes) {
        return json_rpc_error(http::StatusCode::BAD_REQUEST, refusal.code, refusal.message);
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

fn json_rpc_error(status: http::StatusCode, code: i32, message: String) -> Response {
    let body = crate::mcp::jsonrpc::error_response(code, &message);
    (status, axum::Json(body)).into_response()
}

/// The `Host` authorities and browser origins the listener at `addr` answers to.
fn own_authorities(addr: SocketAddr, extra_hosts: &[String]) -> (Vec<String>, Vec<String>) {
    let port = addr.port();
    let mut hosts = vec![match addr {
        SocketAddr::V4(v4) => format!("{}:{port}", v4.ip()),
        SocketAddr::V6(v6) => format!("[{}]:{port}", v6.ip()),
    }];
    if addr.ip().is_loopback() {
        hosts.push(format!("localhost:{port}"));
    }
    hosts.extend(extra_hosts.iter().cloned());
    let origins = hosts
        .iter()
        .flat_map(|host| [format!("http://{host}"), format!("https://{host}")])
        .collect();
    (hosts, origins)
}

/// DNS-rebinding protection for the routes rmcp does not guard (`/metrics`, `/ui/`): the
/// `Host` must be one the listener answers to, as for `/mcp`.
async fn known_host(
    State(hosts): State<Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok());
    if host.is_some_and(|host| hosts.iter().any(|known| known.eq_ignore_ascii_case(host))) {
        return next.run(request).await;
    }
    (
        http::StatusCode::FORBIDDEN,
        "forbidden: the Host header names no address this listener answers to",
    )
        .into_response()
}

/// Refuses a request `authenticate` let through as `anonymous` (`[metrics] auth`).
async fn require_credential(request: Request, next: Next) -> Response {
    let authenticated = request
        .extensions()
        .get::<AuthenticatedPrincipal>()
        .is_some_and(|principal| principal.authenticated);
    if authenticated {
        return next.run(request).await;
    }
    (
        http::StatusCode::UNAUTHORIZED,
        [(http::header::WWW_AUTHENTICATE, "Bearer")],
        "unauthorized: /metrics needs an API key or JWT ([metrics] auth = true)",
    )
        .into_response()
}

/// Answers the DELETE that ends a session with 204 No Content instead of rmcp's 202 Accepted.
/// The session is already closed when rmcp answers, and the official Python SDK takes only 200
/// and 204 as success: with 202, every SDK client that closed cleanly logged "Session
/// termination failed: 202".
async fn session_end_status(request: Request, next: Next) -> Response {
    let ends_session = request.method() == http::Method::DELETE;
    let mut response = next.run(request).await;
    if ends_session && response.status() == http::StatusCode::ACCEPTED {
        *response.status_mut() = http::StatusCode::NO_CONTENT;
    }
    response
}

/// Serves MCP on `listener` until `shutdown` is cancelled.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    options: HttpOptions,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let (hosts, origins) = own_authorities(addr, &options.extra_hosts);
    let own = format!("http://{}", hosts[0]);
    let max_body_bytes = options.max_argument_bytes + ENVELOPE_BYTES;
    let hosts_for_metrics = hosts.clone();
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .with_max_request_body_bytes(max_body_bytes)
        .with_cancellation_token(shutdown.child_token());
    let anonymous = AuthenticatedPrincipal::anonymous();
    let owners = Arc::new(SessionOwners::default());
    let service = StreamableHttpService::new(
        {
            let gateway = gateway.clone();
            move || {
                Ok(McpServer::new(
                    gateway.clone(),
                    Transport::Http,
                    anonymous.clone(),
                ))
            }
        },
        Arc::new(OwnedSessions::new(owners.clone())),
        config,
    );
    let authenticator = Authenticator {
        keys: ApiKeys::new(&options.api_keys, options.allow_anonymous),
        metadata_url: options
            .jwt
            .as_ref()
            .map(|_| format!("{own}{RESOURCE_METADATA_PATH}")),
        jwt: options.jwt.clone(),
        gateway,
    };
    let metrics_authenticator = authenticator.clone();
    let ui_identify = authenticator.for_ui();
    let mut router = Router::new()
        .route_service("/mcp", service)
        .layer(middleware::from_fn(session_end_status))
        .layer(middleware::from_fn_with_state(
            owners,
            sessions::bind_to_principal,
        ))
        .layer(middleware::from_fn_with_state(
            max_body_bytes,
            require_json_rpc,
        ))
        .layer(middleware::from_fn_with_state(authenticator, authenticate));
    // Public, before authentication: it tells a client where to get a token.
    if let Some(jwt) = &options.jwt {
        let metadata = resource_metadata(&format!("{own}/mcp"), jwt.issuer());
        let serve = axum::routing::get(move || async move { axum::Json(metadata) });
        // RFC 9728 also names the path under the resource's own path.
        router = router
            .route(RESOURCE_METADATA_PATH, serve.clone())
            .route(&format!("{RESOURCE_METADATA_PATH}/mcp"), serve);
    }
    if let Some(metrics) = &options.metrics {
        let mut metrics = crate::telemetry::endpoint::router(metrics.clone());
        if options.metrics_auth {
            metrics = metrics
                .layer(middleware::from_fn(require_credential))
                .layer(middleware::from_fn_with_state(
                    metrics_authenticator,
                    authenticate,
                ));
        }
        let metrics = metrics.layer(middleware::from_fn_with_state(
            Arc::new(hosts_for_metrics.clone()),
            known_host,
        ));
        router = router.merge(metrics);
    }
    if let Some(ui) = options.ui {
        let ui = crate::ui::router(ui, ui_identify, !addr.ip().is_loopback()).layer(
            middleware::from_fn_with_state(Arc::new(hosts_for_metrics), known_host),
        );
        router = router.merge(ui);
    }
    let router = router.fallback(|| async {
        (
            http::StatusCode::NOT_FOUND,
            "not found: the MCP endpoint is /mcp",
        )
    });
    // Without TCP_NODELAY the small writes of one SSE response (headers, priming event,
    // message, end of stream) meet Nagle's algorithm and the client's delayed ACK: measured
    // with `gatehouse bench`, every call then waited ~40 ms.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

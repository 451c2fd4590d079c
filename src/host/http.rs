//! Outgoing HTTP from a tool: every request passes through [`OutgoingHttpGuard`], our
//! implementation of wasmtime-wasi-http's `send_request` hook.
//!
//! For each request the gateway resolves the host itself, asks the call's guard (policy phase
//! `http`) with the request's facts and **every resolved address**, each with its class
//! ([`super::address`]: an IPv6 spelling of 127.0.0.1 is `loopback`), and then connects only to
//! those addresses — so a DNS answer that changes between the check and the connection, a
//! numeric host spelled in hex or decimal, or a name that points at loopback cannot reach what
//! the policy forbids. Redirects are not followed here: a 3xx goes back to the tool, and any
//! follow-up is a new request with a new decision. Responses are bounded in time (connect,
//! first byte, between bytes) and in size.
//!
//! A denied request never leaves the host: the tool receives wasi:http's
//! `HTTP-request-denied` error code.
//!
//! An allowed request may carry the decision's `inject` obligation: headers filled in from
//! brokered secrets ([`crate::secrets`]) after the decision, replacing any the tool set with
//! the same name, on this request only. Every response is then searched for the brokered
//! values — headers and body, across chunk boundaries — and any found are masked before the
//! tool reads them.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::guard::{HostGuard, HostRequest, HttpRequestFacts};
use crate::policy::Injection;
use crate::secrets::{Secrets, StreamMasker};

/// The `[http]` section: how outgoing requests are bounded. Which requests may go out at all is
/// the policy's `http` phase.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub connect_timeout_ms: u64,
    pub first_byte_timeout_ms: u64,
    pub between_bytes_timeout_ms: u64,
    /// Response body bytes a tool may receive per request.
    pub max_response_bytes: u64,
    /// Header names masked in what the policy, the log and the audit log see, besides the
    /// built-in credential names (`authorization`, `cookie`, anything with `key`, `token`, …).
    pub masked_headers: Vec<String>,
    /// Query parameters whose values are kept as sent; every other query value is masked
    /// (`page=***`), names kept.
    pub unmasked_query_parameters: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout_ms: 10_000,
            first_byte_timeout_ms: 30_000,
            between_bytes_timeout_ms: 30_000,
            max_response_bytes: 16 << 20,
            masked_headers: Vec::new(),
            unmasked_query_parameters: Vec::new(),
        }
    }
}

/// How outgoing requests are bounded, shared by all calls.
#[derive(Clone)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub between_bytes_timeout: Duration,
    /// The most response body bytes a tool may receive per request.
    pub max_response_bytes: u64,
    /// What of a request no policy input, log line or audit entry may hold.
    pub masking: RequestMasking,
    /// The brokered secrets: injected where a decision says, masked wherever they come back.
    pub secrets: Arc<Secrets>,
    tls: Arc<rustls::ClientConfig>,
}

/// Which parts of an outgoing request are masked before anything sees them (the policy
/// input, and so the log and the audit entry): credential headers, and query values.
#[derive(Debug, Clone, Default)]
pub struct RequestMasking {
    /// Header names (lower case) masked besides those [`SECRET_HEADER_FRAGMENTS`] catch.
    pub masked_headers: Vec<String>,
    /// Query parameter names whose values are kept as sent; every other value is masked.
    pub unmasked_query_parameters: Vec<String>,
}

impl RequestMasking {
    fn masks_header(&self, name: &str) -> bool {
        SECRET_HEADER_FRAGMENTS.iter().any(|f| name.contains(f))
            || self
                .masked_headers
                .iter()
                .any(|m| m.eq_ignore_ascii_case(name))
    }

    /// `query` with each parameter's value masked, names kept (`a=***&flag&b=***`), but for
    /// the parameters listed as unmasked.
    fn mask_query(&self, query: &str) -> String {
        query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value))
                    if !value.is_empty()
                        && !self
                            .unmasked_query_parameters
                            .iter()
                            .any(|kept| kept == name) =>
                {
                    format!("{name}={MASK}")
                }
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("connect_timeout", &self.connect_timeout)
            .field("first_byte_timeout", &self.first_byte_timeout)
            .field("between_bytes_timeout", &self.between_bytes_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings::from_config(&HttpConfig::default())
    }
}

impl HttpSettings {
    /// The settings an `[http]` section describes.
    pub fn from_config(config: &HttpConfig) -> Self {
        let millis = Duration::from_millis;
        HttpSettings::new(
            millis(config.connect_timeout_ms),
            millis(config.first_byte_timeout_ms),
            millis(config.between_bytes_timeout_ms),
            config.max_response_bytes,
        )
        .with_masking(RequestMasking {
            masked_headers: config.masked_headers.clone(),
            unmasked_query_parameters: config.unmasked_query_parameters.clone(),
        })
    }

    pub fn new(
        connect_timeout: Duration,
        first_byte_timeout: Duration,
        between_bytes_timeout: Duration,
        max_response_bytes: u64,
    ) -> Self {
        // The provider is named explicitly: with more than one rustls provider compiled into
        // the binary, relying on a process default would panic.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        })
        .with_no_client_auth();
        HttpSettings {
            connect_timeout,
            first_byte_timeout,
            between_bytes_timeout,
            max_response_bytes,
            masking: RequestMasking::default(),
            secrets: Arc::default(),
            tls: Arc::new(tls),
        }
    }

    pub fn with_masking(mut self, masking: RequestMasking) -> Self {
        self.masking = masking;
        self
    }

    pub fn with_secrets(mut self, secrets: Arc<Secrets>) -> Self {
        self.secrets = secrets;
        self
    }
}

/// Header-name fragments that mark a credential, masked before anything sees them:
/// `authorization`, `proxy-authorization`, `cookie`, `set-cookie`, `x-api-key`,
/// `x-auth-token`, `ocp-apim-subscription-key`, `x-functions-key`, `x-amz-signature`, …
/// (names are lower case). Masking a harmless header costs a policy little; missing a
/// credential puts it in the log.
const SECRET_HEADER_FRAGMENTS: &[&str] = &[
    "auth",
    "cookie",
    "token",
    "secret",
    "password",
    "key",
    "session",
    "signature",
    "credential",
];

const MASK: &str = "***";

/// The request as the policy sees it, before its host is resolved.
fn describe(
    request: &http::Request<WasiBody>,
    masking: &RequestMasking,
) -> Result<HttpRequestFacts, HttpError> {
    let uri = request.uri();
    let scheme = uri
        .scheme_str()
        .ok_or(HttpError::HttpRequestUriInvalid)?
        .to_ascii_lowercase();
    let host = uri
        .host()
        .ok_or(HttpError::HttpRequestUriInvalid)?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = match (uri.port_u16(), scheme.as_str()) {
        (Some(port), _) => port,
        (None, "http") => 80,
        (None, "https") => 443,
        (None, _) => return Err(HttpError::HttpRequestUriInvalid),
    };
    let mut headers = serde_json::Map::new();
    for name in request.headers().keys() {
        let name = name.as_str();
        let value = if masking.masks_header(name) {
            MASK.to_owned()
        } else {
            request
                .headers()
                .get_all(name)
                .iter()
                .map(|v| match v.to_str() {
                    Ok(text) => text.to_owned(),
                    Err(_) => format!("<{} bytes, not text>", v.len()),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        headers.insert(name.to_owned(), serde_json::Value::String(value));
    }
    let body_size = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .or_else(|| request.body().size_hint().exact());
    Ok(HttpRequestFacts {
        method: request.method().as_str().to_owned(),
        scheme,
        host,
        port,
        path: uri.path().to_owned(),
        query: masking.mask_query(uri.query().unwrap_or_default()),
        headers,
        resolved_ips: Vec::new(),
        addresses: Vec::new(),
        body_size,
    })
}

/// Every address `host` stands for. IP literals are taken as they are; names (including
/// numeric spellings such as `2130706433` or `0x7f000001`, which the system resolver accepts)
/// go through the system resolver, exactly as a connection by name would.
async fn resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let mut addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    addresses.dedup();
    Ok(addresses)
}

/// The wasi:http hook of one call's store.
pub struct OutgoingHttpGuard {
    guard: Arc<dyn HostGuard>,
    settings: Arc<HttpSettings>,
    /// Requests this call may still make (`max_requests`).
    remaining: u64,
    limit: u64,
}

impl OutgoingHttpGuard {
    pub fn new(guard: Arc<dyn HostGuard>, settings: Arc<HttpSettings>, max_requests: u64) -> Self {
        OutgoingHttpGuard {
            guard,
            settings,
            remaining: max_requests,
            limit: max_requests,
        }
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutgoingHttpGuard {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> ResponseFuture {
        let facts = match describe(&request, &self.settings.masking) {
            Ok(facts) => facts,
            Err(error) => return Box::new(async { Err(error) }),
        };
        if self.remaining == 0 {
            let reason = format!(
                "the call's limit of {} outgoing requests is reached",
                self.limit
            );
            self.guard.refuse(HostRequest::Http(facts), reason);
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        self.remaining -= 1;
        let guard = self.guard.clone();
        let settings = self.settings.clone();
        Box::new(async move {
            let mut facts = facts;
            let addresses = match resolve(&facts.host, facts.port).await {
                Ok(addresses) if !addresses.is_empty() => addresses,
                Ok(_) | Err(_) => {
                    let reason = format!("host {:?} could not be resolved", facts.host);
                    guard.refuse(HostRequest::Http(facts), reason);
                    return Err(HttpError::DnsError {
                        rcode: Some("no addresses".into()),
                        info_code: None,
                    });
                }
            };
            // The decision and the connection use this one list.
            facts.set_resolved(addresses.iter().map(SocketAddr::ip));
            let host = facts.host.clone();
            let use_tls = facts.scheme == "https";
            if facts.scheme != "http" && !use_tls {
                let reason = format!("scheme {:?} is not HTTP", facts.scheme);
                guard.refuse(HostRequest::Http(facts), reason);
                return Err(HttpError::HttpRequestUriInvalid);
            }
            let mut request = request;
            let verdict = guard.decide(HostRequest::Http(facts.clone()));
            if !verdict.allowed {
                return Err(HttpError::HttpRequestDenied);
            }
            if let Err(reason) = inject(&mut request, &verdict.inject, &settings.secrets) {
                guard.refuse(HostRequest::Http(facts), reason);
                return Err(HttpError::HttpRequestDenied);
            }
            send(request, &host, use_tls, &addresses, options, &settings).await
        })
    }
}

/// Sets the headers of the decision's `inject` obligation, each replacing whatever the tool
/// set under that name. `Err` says why the request must not be sent.
fn inject(
    request: &mut http::Request<WasiBody>,
    injection: &Injection,
    secrets: &Secrets,
) -> Result<(), String> {
    for (name, template) in &injection.headers {
        let bytes = secrets.render(template).map_err(|secret| {
            format!(
                "the policy injects secret `{secret}` into header {name}, but no [secrets.{secret}] is configured; the request is not sent"
            )
        })?;
        let header = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("the policy injects into {name:?}, which is not a header name"))?;
        let mut value = http::HeaderValue::from_bytes(&bytes)
            .map_err(|_| format!("the value injected into header {name} is not header text"))?;
        value.set_sensitive(true);
        request.headers_mut().insert(header, value);
    }
    Ok(())
}

/// Sends an allowed request over a connection to one of the checked `addresses`.
async fn send(
    mut request: http::Request<WasiBody>,
    host: &str,
    use_tls: bool,
    addresses: &[SocketAddr],
    options: Option<RequestOptions>,
    settings: &HttpSettings,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
> {
    let options = options.unwrap_or_default();
    // The tool may shorten our timeouts, never lengthen them.
    let tighter = |asked: Option<Duration>, ours: Duration| asked.map_or(ours, |a| a.min(ours));
    let connect_timeout = tighter(options.connect_timeout, settings.connect_timeout);
    let first_byte_timeout = tighter(options.first_byte_timeout, settings.first_byte_timeout);
    let between_bytes_timeout = tighter(
        options.between_bytes_timeout,
        settings.between_bytes_timeout,
    )
    .max(Duration::from_millis(1));

    let stream = connect(addresses, connect_timeout).await?;
    let io: Box<dyn IoStream> = if use_tls {
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::from(ip),
            Err(_) => ServerName::try_from(host.to_owned())
                .map_err(|_| HttpError::HttpRequestUriInvalid)?,
        };
        let connector = tokio_rustls::TlsConnector::from(settings.tls.clone());
        let tls = tokio::time::timeout(connect_timeout, connector.connect(name, stream))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)?
            .map_err(|_| HttpError::TlsProtocolError)?;
        Box::new(tls)
    } else {
        Box::new(stream)
    };
    let (mut sender, connection) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(TokioIo::new(io)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;

    // On the wire, the request line carries only the path and query (no proxy form).
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;

    // The connection task runs beside the request; its end is reported to wasmtime-wasi-http.
    let connection = tokio::spawn(connection);
    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| HttpError::ConnectionReadTimeout)?
        .map_err(HttpError::from)?;
    let max = settings.max_response_bytes;
    let mut response = response.map(|incoming| BoundedBody {
        incoming,
        received: 0,
        max,
        idle: tokio::time::sleep(between_bytes_timeout),
        idle_limit: between_bytes_timeout,
    });
    let response = if settings.secrets.is_empty() {
        response.map(|body| body.boxed_unsync())
    } else {
        mask_headers(response.headers_mut(), &settings.secrets, host);
        let secrets = settings.secrets.clone();
        let host = host.to_owned();
        response.map(|inner| {
            MaskedBody {
                inner,
                masker: StreamMasker::new(secrets),
                host,
                ended: false,
                trailers: None,
            }
            .boxed_unsync()
        })
    };
    let io_done = async move {
        match connection.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(HttpError::from(error)),
            Err(_) => Err(HttpError::HttpResponseIncomplete),
        }
    };
    Ok((response, Box::new(io_done)))
}

trait IoStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> IoStream for T {}

/// Connects to the first reachable address, in resolver order.
async fn connect(addresses: &[SocketAddr], timeout: Duration) -> Result<TcpStream, HttpError> {
    let mut last = HttpError::DestinationUnavailable;
    for address in addresses {
        match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = HttpError::ConnectionRefused;
            }
            Ok(Err(error)) => last = HttpError::Connect(error),
            Err(_) => last = HttpError::ConnectionTimeout,
        }
    }
    Err(last)
}

pin_project_lite::pin_project! {
    /// A response body cut off at `max` bytes and at `idle_limit` without data.
    struct BoundedBody {
        #[pin]
        incoming: hyper::body::Incoming,
        received: u64,
        max: u64,
        #[pin]
        idle: tokio::time::Sleep,
        idle_limit: Duration,
    }
}

impl Body for BoundedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let mut this = self.project();
        match this.incoming.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.received += data.len() as u64;
                    if *this.received > *this.max {
                        return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                            *this.max,
                        )))));
                    }
                }
                let deadline = tokio::time::Instant::now() + *this.idle_limit;
                this.idle.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(HttpError::from(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.idle.poll(cx));
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

/// Masks brokered values in response headers (a server echoing the request's headers).
fn mask_headers(headers: &mut http::HeaderMap, secrets: &Secrets, host: &str) {
    for (name, value) in headers.iter_mut() {
        let mut bytes = value.as_bytes().to_vec();
        let found = secrets.mask(&mut bytes);
        if !found.is_empty() {
            tracing::warn!(host, header = %name, secrets = ?found, "a response header echoed a brokered secret; masked before the tool reads it");
            if let Ok(masked) = http::HeaderValue::from_bytes(&bytes) {
                *value = masked;
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body with every brokered value masked, also when split between frames.
    struct MaskedBody {
        #[pin]
        inner: BoundedBody,
        masker: StreamMasker,
        host: String,
        ended: bool,
        trailers: Option<http::HeaderMap>,
    }
}

impl Body for MaskedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let mut this = self.project();
        loop {
            if *this.ended {
                let rest = this.masker.finish();
                if !rest.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))));
                }
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let ready = this.masker.push(&data);
                        if !ready.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(ready)))));
                        }
                    }
                    Err(frame) => {
                        if let Ok(mut trailers) = frame.into_trailers() {
                            mask_headers(&mut trailers, this.masker.secrets(), this.host);
                            *this.trailers = Some(trailers);
                        }
                        *this.ended = true;
                    }
                },
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => {
                    if !this.masker.found().is_empty() {
                        tracing::warn!(host = %this.host, secrets = ?this.masker.found(), "a response body echoed a brokered secret; masked before the tool reads it");
                    }
                    *this.ended = true;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.masker.held_len() == 0 && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Masking keeps lengths; what is held back is still to come.
        let held = self.masker.held_len() as u64;
        let inner = if self.ended {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        };
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> http::Request<WasiBody> {
        let mut builder = http::Request::builder().method("POST").uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = http_body_util::Full::new(Bytes::from_static(b"hello"))
            .map_err(|never| match never {})
            .boxed_unsync();
        builder.body(body).unwrap()
    }

    #[test]
    fn describes_the_request_with_secrets_masked() {
        let masking = RequestMasking {
            masked_headers: vec!["X-Tenant".into()],
            unmasked_query_parameters: vec!["page".into()],
        };
        let facts = describe(
            &request(
                "https://API.Example.com/v1/items?page=2&sig=s3cret&flag&empty=",
                &[
                    ("authorization", "Bearer s3cret"),
                    ("x-api-key", "k"),
                    ("ocp-apim-subscription-key", "s3cret"),
                    ("x-functions-key", "s3cret"),
                    ("x-tenant", "s3cret"),
                    ("accept", "application/json"),
                    ("cookie", "sid=1"),
                ],
            ),
            &masking,
        )
        .unwrap();
        assert_eq!(facts.scheme, "https");
        assert_eq!(facts.host, "api.example.com");
        assert_eq!(facts.port, 443);
        assert_eq!(facts.path, "/v1/items");
        assert_eq!(facts.query, "page=2&sig=***&flag&empty=");
        assert_eq!(facts.headers["authorization"], "***");
        for name in ["ocp-apim-subscription-key", "x-functions-key", "x-tenant"] {
            assert_eq!(facts.headers[name], "***", "{name}");
        }
        assert_eq!(facts.headers["x-api-key"], "***");
        assert_eq!(facts.headers["cookie"], "***");
        assert_eq!(facts.headers["accept"], "application/json");
        assert_eq!(facts.body_size, Some(5));
        assert!(!serde_json::to_string(&facts).unwrap().contains("s3cret"));
    }

    #[test]
    fn injection_replaces_the_tools_header_and_hides_the_value() {
        let token = "ghp_0123456789abcdef";
        let secrets = Secrets::from_values([("github", token)]).unwrap();
        let template = |text: &str| crate::secrets::Template::parse(text).unwrap();
        let mut sent = request(
            "https://api.github.com/user",
            &[("authorization", "Bearer tool-made"), ("accept", "*/*")],
        );
        sent.headers_mut()
            .append("authorization", http::HeaderValue::from_static("another"));
        let injection = Injection {
            headers: [(
                "authorization".to_owned(),
                template("Bearer {{secret.github}}"),
            )]
            .into(),
        };
        inject(&mut sent, &injection, &secrets).unwrap();
        let values: Vec<_> = sent.headers().get_all("authorization").iter().collect();
        assert_eq!(values, [&format!("Bearer {token}")], "replaced, not merged");
        assert!(values[0].is_sensitive());
        assert_eq!(sent.headers()["accept"], "*/*");

        let unknown = Injection {
            headers: [("x-api-key".to_owned(), template("{{secret.gitlab}}"))].into(),
        };
        let error = inject(&mut sent, &unknown, &secrets).unwrap_err();
        assert!(
            error.contains("no [secrets.gitlab] is configured"),
            "{error}"
        );
        assert!(sent.headers().get("x-api-key").is_none());
    }

    #[test]
    fn ports_default_by_scheme_and_ipv6_loses_brackets() {
        assert_eq!(
            describe(&request("http://h/", &[]), &RequestMasking::default())
                .unwrap()
                .port,
            80
        );
        let facts = describe(
            &request("http://[::1]:8080/x", &[]),
            &RequestMasking::default(),
        )
        .unwrap();
        assert_eq!((facts.host.as_str(), facts.port), ("::1", 8080));
    }

    #[test]
    fn resolved_addresses_are_classified_as_they_will_be_connected_to() {
        let mut facts = describe(&request("http://h/", &[]), &RequestMasking::default()).unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let nat64: IpAddr = "64:ff9b::a9fe:a9fe".parse().unwrap();
        facts.set_resolved([mapped, nat64]);
        let json = serde_json::to_value(&facts).unwrap();
        assert_eq!(
            json["resolved_ips"],
            serde_json::json!(["127.0.0.1", "64:ff9b::a9fe:a9fe"])
        );
        assert_eq!(
            json["addresses"],
            serde_json::json!([
                {"ip": "::ffff:127.0.0.1", "class": "loopback", "embedded_ipv4": "127.0.0.1", "embedding": "mapped"},
                {"ip": "64:ff9b::a9fe:a9fe", "class": "metadata", "embedded_ipv4": "169.254.169.254", "embedding": "nat64"}
            ])
        );
    }

    #[tokio::test]
    async fn numeric_spellings_resolve_to_the_address_they_mean() {
        for host in ["2130706433", "0x7f000001", "127.1", "localhost"] {
            let addresses = resolve(host, 80).await.unwrap();
            assert!(
                addresses
                    .iter()
                    .any(|a| a.ip().to_canonical().is_loopback()),
                "{host} resolved to {addresses:?}"
            );
        }
        let mapped = resolve("::ffff:127.0.0.1", 80).await.unwrap();
        assert_eq!(mapped[0].ip().to_canonical(), IpAddr::from([127, 0, 0, 1]));
    }
}

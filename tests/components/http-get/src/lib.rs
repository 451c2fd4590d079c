//! Outgoing HTTP GET through `wasi:http/outgoing-handler`, shared by the `fetch` and
//! `escape` test components so both exercise the gateway's HTTP interception the same way.
//!
//! Errors are rendered as text: the `wasi:http` error code in its debug form (for example
//! `ErrorCode::HttpRequestDenied` or `ErrorCode::DnsError(DnsErrorPayload { .. })`), so
//! tests can match on it.

use std::io::Read;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingRequest, Scheme};

/// The largest body read into memory; a test component has no use for more.
pub const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// A received response.
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Header names and values, in the order received; values decoded lossily as UTF-8.
    pub headers: Vec<(String, String)>,
    /// The body, decoded lossily as UTF-8.
    pub body: String,
}

/// The parts of an absolute `http` or `https` URL that `wasi:http` needs.
struct Target {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

/// Splits `url` into scheme, authority and path; the fragment, if any, is dropped.
fn parse_url(url: &str) -> Result<Target, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("invalid url {url:?}: expected scheme://authority/path"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return Err(format!("invalid url {url:?}: empty authority"));
    }
    let path_with_query = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Ok(Target {
        scheme,
        authority: authority.to_string(),
        path_with_query,
    })
}

/// Sends a GET request for `url` and reads the whole response.
pub fn get(url: &str) -> Result<Response, String> {
    let target = parse_url(url)?;
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(&Method::Get)
        .map_err(|()| "the host rejected method GET".to_string())?;
    request
        .set_scheme(Some(&target.scheme))
        .map_err(|()| format!("the host rejected the scheme of {url:?}"))?;
    request
        .set_authority(Some(&target.authority))
        .map_err(|()| format!("the host rejected authority {:?}", target.authority))?;
    request
        .set_path_with_query(Some(&target.path_with_query))
        .map_err(|()| format!("the host rejected path {:?}", target.path_with_query))?;

    let pending = outgoing_handler::handle(request, None).map_err(|code| format!("{code:?}"))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(format!("{code:?}")),
        Some(Err(())) => return Err("the response was already taken".to_string()),
        None => return Err("the response is not ready after waiting for it".to_string()),
    };

    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| "the response body was already taken".to_string())?;
    let mut stream = body
        .stream()
        .map_err(|()| "the response body stream was already taken".to_string())?;
    let mut bytes = Vec::new();
    (&mut stream)
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading the body: {e}"))?;
    if bytes.len() as u64 > MAX_BODY_BYTES {
        return Err(format!("the body is larger than {MAX_BODY_BYTES} bytes"));
    }
    // The stream is a child of the body: it must be dropped before the body is finished.
    drop(stream);
    drop(body);
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

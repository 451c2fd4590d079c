//! Outgoing HTTP from a tool: every request passes through [`OutgoingHttpGuard`].
//!
//! Until per-request policy decides (the `http` phase), the rule is deny-all with an operator
//! allowlist of `host` or `host:port` entries (`--allow-host`). A denied request never leaves
//! the host: the guest receives wasi:http's `HTTP-request-denied` error code.

use std::future::Future;
use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Timeouts applied when the guest sets none: a tool must not hold a call open forever.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);

/// Hosts (optionally with a port) that tools may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAllowlist {
    entries: Vec<(String, Option<u16>)>,
}

impl HostAllowlist {
    /// Parses `host` and `host:port` entries (`[::1]:8080` for IPv6).
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<HostAllowlist, String> {
        let entries = entries
            .iter()
            .map(|entry| parse_host_port(entry.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(HostAllowlist { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `host:port` may be reached. Host names compare case-insensitively.
    pub fn permits(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.entries.iter().any(|(allowed, allowed_port)| {
            allowed.eq_ignore_ascii_case(host) && allowed_port.is_none_or(|p| p == port)
        })
    }
}

fn parse_host_port(entry: &str) -> Result<(String, Option<u16>), String> {
    let invalid = || format!("--allow-host {entry:?}: expected HOST or HOST:PORT");
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(invalid)?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(invalid()),
        }
    } else {
        match entry.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => (entry, None), // a bare IPv6 address
            None => (entry, None),
        }
    };
    if host.is_empty() {
        return Err(invalid());
    }
    let port = port
        .map(|p| p.parse::<u16>().map_err(|_| invalid()))
        .transpose()?;
    Ok((host.to_ascii_lowercase(), port))
}

/// The wasi:http hook of one call's store.
pub struct OutgoingHttpGuard {
    allow: std::sync::Arc<HostAllowlist>,
}

impl OutgoingHttpGuard {
    pub fn new(allow: std::sync::Arc<HostAllowlist>) -> Self {
        OutgoingHttpGuard { allow }
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
        let uri = request.uri();
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("http") => 80,
            _ => 443,
        });
        if !self.allow.permits(&host, port) {
            tracing::warn!(
                method = %request.method(),
                %uri,
                "outgoing HTTP request denied: host not on the allowlist"
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        tracing::info!(method = %request.method(), %uri, "outgoing HTTP request allowed");
        let options = with_default_timeouts(options);
        Box::new(async move {
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

fn with_default_timeouts(options: Option<RequestOptions>) -> RequestOptions {
    let mut options = options.unwrap_or_default();
    options
        .connect_timeout
        .get_or_insert(DEFAULT_CONNECT_TIMEOUT);
    options
        .first_byte_timeout
        .get_or_insert(DEFAULT_FIRST_BYTE_TIMEOUT);
    options
        .between_bytes_timeout
        .get_or_insert(DEFAULT_BETWEEN_BYTES_TIMEOUT);
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_matches_host_and_optional_port() {
        let allow =
            HostAllowlist::new(&["Example.com", "127.0.0.1:8080", "[::1]:9000", "::1"]).unwrap();
        assert!(allow.permits("example.com", 443));
        assert!(allow.permits("EXAMPLE.COM", 80));
        assert!(allow.permits("127.0.0.1", 8080));
        assert!(!allow.permits("127.0.0.1", 8081));
        assert!(allow.permits("[::1]", 9000));
        assert!(allow.permits("::1", 1234));
        assert!(!allow.permits("example.org", 443));
        assert!(!HostAllowlist::default().permits("example.com", 443));
    }

    #[test]
    fn allowlist_rejects_malformed_entries() {
        assert!(HostAllowlist::new(&["host:notaport"]).is_err());
        assert!(HostAllowlist::new(&[":80"]).is_err());
        assert!(HostAllowlist::new(&["[::1"]).is_err());
    }
}

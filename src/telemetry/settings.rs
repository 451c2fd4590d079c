//! The `[metrics]` and `[telemetry]` sections of `gatehouse.toml`: whether and where
//! `GET /metrics` is served, and where traces are exported.

use std::net::SocketAddr;

use serde::Deserialize;

/// Prometheus metrics (`[metrics]`).
///
/// On by default and without a login, as Prometheus scrapes: the numbers carry tool names,
/// phases and verdicts, never a caller, an argument or anything a request named. `auth`
/// asks for a credential where the listener has callers to check (the MCP listener).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` at all.
    pub enabled: bool,
    /// A listener of its own for `/metrics` (e.g. `127.0.0.1:9464`), so that it need not share
    /// the agents' port; the MCP listener then does not serve it. Over stdio it is the only way
    /// to scrape the gateway.
    pub listen: Option<SocketAddr>,
    /// Require an API key or JWT (any principal but `anonymous`) for `/metrics` on the MCP
    /// listener, checked as for `/mcp`.
    pub auth: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            enabled: true,
            listen: None,
            auth: false,
        }
    }
}

impl MetricsSettings {
    /// Whether the MCP HTTP listener serves `/metrics`.
    pub fn on_mcp_listener(&self) -> bool {
        self.enabled && self.listen.is_none()
    }

    /// The separate listener's address, if one is to be opened. A setting that cannot take
    /// effect is an error rather than silently ignored.
    pub fn own_listener(&self) -> Result<Option<SocketAddr>, String> {
        match (self.enabled, self.listen) {
            (false, Some(addr)) => Err(format!(
                "[metrics] listen = \"{addr}\" is set but enabled = false; remove one of them"
            )),
            (true, Some(addr)) if self.auth => Err(format!(
                "[metrics] auth = true, but listen = \"{addr}\" has no callers to authenticate; \
                 remove listen to serve /metrics on the MCP listener with a credential, or \
                 remove auth and bind listen to an address only the scraper reaches"
            )),
            (true, listen) => Ok(listen),
            (false, None) => Ok(None),
        }
    }
}

/// OpenTelemetry traces (`[telemetry]`). Off unless `otlp_endpoint` is set.
///
/// The standard `OTEL_*` environment variables still apply where this section says nothing:
/// `OTEL_EXPORTER_OTLP_HEADERS` (a collector's credentials, kept out of this file),
/// `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_SCHEDULE_DELAY` (how often a
/// batch is sent, 5 s by default), `OTEL_EXPORTER_OTLP_TIMEOUT`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The OTLP/HTTP collector's base URL (`http://127.0.0.1:4318`): spans are sent as
    /// protobuf to `<otlp_endpoint>/v1/traces`.
    pub otlp_endpoint: Option<OtlpEndpoint>,
    /// Finished spans waiting for export, at most (1 to 1 048 576). While the collector is
    /// slow or down, spans beyond it are dropped, never waited for, and counted in
    /// `gatehouse_trace_spans_dropped_total`.
    pub max_queued_spans: usize,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            otlp_endpoint: None,
            max_queued_spans: 2048,
        }
    }
}

/// The largest `max_queued_spans`: a span holds its attributes, about a kilobyte, so this
/// bounds the queue to about a gigabyte.
pub const MAX_QUEUED_SPANS: usize = 1 << 20;

/// An `http://` or `https://` URL with a host and without credentials (a collector's token
/// goes in `OTEL_EXPORTER_OTLP_HEADERS`, so this file holds no secret and the banner can
/// print the URL).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct OtlpEndpoint(String);

impl OtlpEndpoint {
    /// Where spans are posted: the base URL with the OTLP traces path.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.0.trim_end_matches('/'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OtlpEndpoint {
    type Error = String;

    fn try_from(url: String) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("[telemetry] otlp_endpoint = \"{url}\": {why}"));
        let Some((scheme, rest)) = url.split_once("://") else {
            return bad("not a URL; write it like http://127.0.0.1:4318");
        };
        if !matches!(scheme, "http" | "https") {
            return bad("OTLP/HTTP needs an http:// or https:// URL");
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return bad(
                "credentials do not belong in the URL; give them in OTEL_EXPORTER_OTLP_HEADERS",
            );
        }
        if authority.is_empty() {
            return bad("the URL names no host");
        }
        if rest.contains(['?', '#']) {
            return bad("a query or fragment cannot be sent to; give the collector's base URL");
        }
        if url.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return bad("not a valid URL");
        }
        Ok(OtlpEndpoint(url))
    }
}

#[cfg(test)]
mod tests {
    use super::OtlpEndpoint;

    #[test]
    fn an_endpoint_is_a_plain_http_url() {
        let ok = OtlpEndpoint::try_from("http://127.0.0.1:4318/".to_owned()).unwrap();
        assert_eq!(ok.traces_url(), "http://127.0.0.1:4318/v1/traces");
        let prefixed = OtlpEndpoint::try_from("https://otel.example/ingest".to_owned()).unwrap();
        assert_eq!(
            prefixed.traces_url(),
            "https://otel.example/ingest/v1/traces"
        );
        for (url, why) in [
            ("127.0.0.1:4318", "not a URL"),
            ("grpc://127.0.0.1:4317", "http:// or https://"),
            (
                "http://user:token@collector:4318",
                "OTEL_EXPORTER_OTLP_HEADERS",
            ),
            ("http:///v1", "no host"),
            ("http://collector:4318/?x=1", "query"),
            ("http://coll ector:4318", "not a valid URL"),
        ] {
            let err = OtlpEndpoint::try_from(url.to_owned()).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
    }
}

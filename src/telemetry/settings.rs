//! The `[metrics]` section of `gatehouse.toml`: whether and where `GET /metrics` is served.

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

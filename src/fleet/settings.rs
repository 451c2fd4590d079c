//! The `[fleet]` section of `gatehouse.toml`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::secrets::SecretSource;

/// `[fleet]`: this gateway's name in the fleet and the PostgreSQL store it ships its audit log
/// to. Without `postgres`, nothing is shipped.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetSettings {
    /// This gateway's id in the store (`gw-1`): letters, digits, `.`, `_`, `-`; at most 64.
    pub gateway_id: Option<String>,
    /// A libpq connection string or URL without a password
    /// (`postgres://gw1@db.internal:5432/audit?sslmode=require`).
    pub postgres: Option<String>,
    /// Where the password is read from: `{ env = "VAR" }` or `{ file = "path" }` (mode 0600).
    pub password: Option<SecretSource>,
    /// PEM file of the CA that signed the server's certificate (default: the web PKI roots).
    pub ca_file: Option<PathBuf>,
    /// Fail closed: an allowed call runs only once its verdict is acknowledged by the store,
    /// and is refused when that takes longer than `ship_timeout_ms`.
    pub require_shipped: bool,
    /// How long an allowed call waits for its verdict to be shipped under `require_shipped`.
    pub ship_timeout_ms: u64,
    /// Entries per INSERT (and the most the shipper holds in memory at once).
    pub batch: u64,
    /// How often the shipper looks for new entries when it has caught up.
    pub poll_ms: u64,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings {
            gateway_id: None,
            postgres: None,
            password: None,
            ca_file: None,
            require_shipped: false,
            ship_timeout_ms: 2000,
            batch: 500,
            poll_ms: 200,
        }
    }
}

impl FleetSettings {
    /// Whether shipping is configured.
    pub fn enabled(&self) -> bool {
        self.postgres.is_some()
    }

    /// The configured gateway id, checked; an error tells what to change.
    pub fn gateway_id(&self) -> Result<&str, String> {
        let id = self
            .gateway_id
            .as_deref()
            .ok_or("gateway_id is required with postgres (for example gateway_id = \"gw-1\")")?;
        check_gateway_id(id)?;
        Ok(id)
    }

    pub fn ship_timeout(&self) -> Duration {
        Duration::from_millis(self.ship_timeout_ms)
    }

    /// Checks what can be checked without connecting.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled() {
            if self.require_shipped {
                return Err("require_shipped needs postgres".into());
            }
            return Ok(());
        }
        self.gateway_id()?;
        if !(1..=10_000).contains(&self.batch) {
            return Err(format!("batch = {} must be 1..=10000", self.batch));
        }
        if self.poll_ms == 0 || self.ship_timeout_ms == 0 {
            return Err("poll_ms and ship_timeout_ms must be positive".into());
        }
        Ok(())
    }
}

/// A gateway id: what `audit/postgres.sql` accepts.
pub fn check_gateway_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "gateway_id {id:?} must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ))
    }
}

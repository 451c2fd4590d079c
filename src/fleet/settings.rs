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
        let postgres = self.postgres.as_deref().unwrap_or_default();
        // Never echo the string: it may hold the very password this refuses.
        let parsed = postgres.parse::<tokio_postgres::Config>().map_err(|_| {
            "postgres is not a valid PostgreSQL connection string or URL (postgres://USER@HOST:PORT/DATABASE)".to_owned()
        })?;
        if parsed.get_password().is_some() {
            return Err(
                "postgres holds a password: a config file is no place for it; give password = { env = \"VAR\" } or { file = \"path\" } (mode 0600) instead".into(),
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with(postgres: &str) -> FleetSettings {
        FleetSettings {
            gateway_id: Some("gw-1".into()),
            postgres: Some(postgres.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_password_in_the_config_file_is_refused_without_echoing_it() {
        let err = with("postgres://gw1:hunter22secret@db/audit")
            .validate()
            .unwrap_err();
        assert!(err.contains("holds a password"), "{err}");
        assert!(!err.contains("hunter22secret"), "{err}");
        let err = with("host=db user=gw1 password=hunter22secret")
            .validate()
            .unwrap_err();
        assert!(!err.contains("hunter22secret"), "{err}");
        assert!(
            with("postgres://gw1@db:5432/audit?sslmode=require")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn gateway_ids_are_what_the_schema_accepts() {
        for good in ["gw-1", "a", "eu.west_2-gw"] {
            assert!(check_gateway_id(good).is_ok(), "{good}");
        }
        for bad in ["", "-gw", "gw 1", "gw/1", "ü", &"g".repeat(65)] {
            assert!(check_gateway_id(bad).is_err(), "{bad}");
        }
        let mut missing = with("postgres://gw1@db/audit");
        missing.gateway_id = None;
        assert!(
            missing
                .validate()
                .unwrap_err()
                .contains("gateway_id is required")
        );
    }

    #[test]
    fn require_shipped_needs_a_store() {
        let settings = FleetSettings {
            require_shipped: true,
            ..Default::default()
        };
        assert!(settings.validate().unwrap_err().contains("needs postgres"));
    }
}

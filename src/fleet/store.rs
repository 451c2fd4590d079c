//! The connection to the fleet's PostgreSQL store and its schema (`audit/postgres.sql`).

use std::path::Path;
use std::str::FromStr;

use tokio_postgres::Client;
use tokio_postgres::config::Host;

use super::FleetError;
use super::error::describe_pg_error;
use crate::secrets::SecretSource;

/// The schema applied to a new store.
pub const SCHEMA_SQL: &str = include_str!("../../audit/postgres.sql");
/// The schema version this build creates and reads (`gatehouse_schema.version`).
pub const SCHEMA_VERSION: i32 = 1;
/// Serializes concurrent first connections applying the schema (an arbitrary fixed key).
const SCHEMA_LOCK: i64 = 0x4748_4155_0001;

/// An open connection, and the name it is reported under.
pub struct Store {
    pub(crate) client: Client,
    name: String,
}

impl Store {
    /// Connects with a libpq connection string or URL. The password comes from `password` when
    /// given, else from the string itself, else from `PGPASSWORD` (as libpq does); TLS follows
    /// the string's `sslmode` (rustls, trusting `ca_file` or the WebPKI roots).
    pub async fn connect(
        conninfo: &str,
        password: Option<&SecretSource>,
        ca_file: Option<&Path>,
    ) -> Result<Store, FleetError> {
        // The string may hold a password: never put it, or the parser's echo of it, in an error.
        let mut config = tokio_postgres::Config::from_str(conninfo).map_err(|_| {
            FleetError::Config(
                "postgres: not a valid PostgreSQL connection string or URL (postgres://USER@HOST:PORT/DATABASE)".into(),
            )
        })?;
        if let Some(source) = password {
            config.password(source.read("fleet-password")?);
        } else if config.get_password().is_none()
            && let Ok(from_env) = std::env::var("PGPASSWORD")
        {
            config.password(from_env);
        }
        if config.get_user().is_none() {
            config.user(std::env::var("USER").unwrap_or_else(|_| "postgres".into()));
        }
        config.application_name(concat!("gatehouse/", env!("CARGO_PKG_VERSION")));
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        let name = describe(&config);
        let roots = crate::support::tls::roots(ca_file).map_err(|detail| {
            FleetError::Config(format!(
                "ca_file {}: {detail}",
                ca_file.unwrap_or(Path::new("(none)")).display()
            ))
        })?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(
            crate::support::tls::client_config(roots),
        );
        let (client, connection) = config.connect(tls).await.map_err(|e| FleetError::Connect {
            store: name.clone(),
            detail: describe_pg_error(&e),
        })?;
        let watched = name.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(store = %watched, error = %describe_pg_error(&e), "fleet store connection closed");
            }
        });
        Ok(Store { client, name })
    }

    /// `user@host:port/database`: how the store is named in logs and errors (no password).
    pub fn describe(&self) -> &str {
        &self.name
    }

    pub(crate) fn sql(
        &self,
        context: &'static str,
    ) -> impl Fn(tokio_postgres::Error) -> FleetError + '_ {
        move |e| FleetError::sql(&self.name, context, e)
    }

    /// Whether the connection is gone (the server closed it or the network failed).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The store's schema version, `None` when the schema was never applied.
    pub async fn schema_version(&self) -> Result<Option<i32>, FleetError> {
        let exists: bool = self
            .client
            .query_one("SELECT to_regclass('gatehouse_schema') IS NOT NULL", &[])
            .await
            .map_err(self.sql("reading the schema version"))?
            .get(0);
        if !exists {
            return Ok(None);
        }
        let row = self
            .client
            .query_one("SELECT max(version) FROM gatehouse_schema", &[])
            .await
            .map_err(self.sql("reading the schema version"))?;
        Ok(row.get(0))
    }

    /// Applies `audit/postgres.sql` unless it is there already; true when it was applied now.
    /// Concurrent callers wait for each other (an advisory lock), so one applies it.
    pub async fn ensure_schema(&mut self) -> Result<bool, FleetError> {
        let name = self.name.clone();
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| FleetError::sql(&name, "applying the schema", e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await
            .map_err(|e| FleetError::sql(&name, "applying the schema", e))?;
        let exists: bool = tx
            .query_one("SELECT to_regclass('gatehouse_schema') IS NOT NULL", &[])
            .await
            .map_err(|e| FleetError::sql(&name, "applying the schema", e))?
            .get(0);
        let applied = if exists {
            false
        } else {
            tx.batch_execute(SCHEMA_SQL)
                .await
                .map_err(|e| FleetError::NoSchema {
                    store: name.clone(),
                    detail: describe_pg_error(&e),
                })?;
            true
        };
        tx.commit()
            .await
            .map_err(|e| FleetError::sql(&name, "applying the schema", e))?;
        self.check_version().await?;
        Ok(applied)
    }

    /// Refuses a store without the schema or with a newer one.
    pub async fn check_version(&self) -> Result<(), FleetError> {
        match self.schema_version().await? {
            None => Err(FleetError::NoSchema {
                store: self.name.clone(),
                detail: "no gatehouse_schema table".into(),
            }),
            Some(found) if found > SCHEMA_VERSION => Err(FleetError::NewerSchema {
                store: self.name.clone(),
                found,
                supported: SCHEMA_VERSION,
            }),
            Some(_) => Ok(()),
        }
    }
}

/// How a connection string is named in logs and the banner: `postgres user@host:port/database`,
/// never its password.
pub fn describe_conninfo(conninfo: &str) -> String {
    conninfo.parse::<tokio_postgres::Config>().map_or_else(
        |_| "postgres (invalid connection string)".into(),
        |c| describe(&c),
    )
}

/// `user@host:port/database` of a connection configuration.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres {}@{host}:{port}/{}",
        config.get_user().unwrap_or("?"),
        config.get_dbname().unwrap_or("(default)")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_connection_string_is_refused_without_echoing_it() {
        let Err(e) = Store::connect("postgres://u:hunter22secret@[::1", None, None).await else {
            panic!("connected to nothing");
        };
        let text = e.to_string();
        assert!(!text.contains("hunter22secret"), "{text}");
        assert!(
            text.contains("not a valid PostgreSQL connection string"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_failed_connection_names_the_store_but_not_the_password() {
        // Port 9 on loopback: nothing listens there.
        let Err(e) = Store::connect(
            "postgres://gw1:hunter22secret@127.0.0.1:9/audit?connect_timeout=2",
            None,
            None,
        )
        .await
        else {
            panic!("connected to nothing");
        };
        let text = e.to_string();
        assert!(!text.contains("hunter22secret"), "{text}");
        assert!(text.contains("gw1@127.0.0.1:9/audit"), "{text}");
    }

    #[test]
    fn the_schema_keeps_the_columns_of_the_file() {
        // The canonical bytes are rebuilt from these columns: they must be the file's.
        for column in crate::audit::ENTRY_COLUMNS.split(", ") {
            assert!(
                SCHEMA_SQL.contains(&format!("\n    {column} ")),
                "audit/postgres.sql has no entries column {column}"
            );
        }
    }
}

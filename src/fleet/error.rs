//! What can go wrong between a gateway (or an auditor) and the fleet's store.

/// A failure of the fleet's store. Never holds the connection string or its password: the
/// store is named by [`crate::fleet::Store::describe`]'s host, port, database and user.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("[fleet] {0}")]
    Config(String),
    #[error("[fleet] password: {0}")]
    Password(#[from] crate::secrets::SecretsError),
    #[error("{store}: cannot connect: {detail}")]
    Connect { store: String, detail: String },
    #[error("{store}: {context}: {detail}")]
    Sql {
        store: String,
        context: &'static str,
        detail: String,
    },
    #[error(
        "{store}: the fleet's schema is missing and this role may not create it ({detail}); run `gatehouse fleet init --postgres URL` as the database's owner"
    )]
    NoSchema { store: String, detail: String },
    #[error(
        "{store}: schema version {found} is newer than this gatehouse supports ({supported}); upgrade gatehouse"
    )]
    NewerSchema {
        store: String,
        found: i32,
        supported: i32,
    },
    #[error("{store}: {detail}")]
    Conflict { store: String, detail: String },
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

impl FleetError {
    /// An SQL failure, with the server's message (which names no password).
    pub(crate) fn sql(store: &str, context: &'static str, e: tokio_postgres::Error) -> Self {
        FleetError::Sql {
            store: store.to_owned(),
            context,
            detail: describe_pg_error(&e),
        }
    }
}

/// The server's own message when there is one (tokio-postgres's `Display` says only "db error").
pub(crate) fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

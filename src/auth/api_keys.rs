//! API keys: `Authorization: Bearer KEY` on HTTP, looked up by the key's SHA-256.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use serde_json::Map;

use super::{AuthMethod, Caller};

/// An HTTP API key and the principal it authenticates (`[[api_keys]]`). Only the key's
/// SHA-256 is configured, so the config file holds no secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    pub principal: String,
    /// Hex SHA-256 of the key (`printf %s KEY | sha256sum`).
    pub key_sha256: String,
}

/// What a transport learned about the caller before the request reached MCP.
#[derive(Debug, Clone)]
pub struct AuthenticatedPrincipal {
    pub principal: String,
    pub authenticated: bool,
    pub auth: AuthMethod,
    /// A JWT's verified claims; empty otherwise.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl AuthenticatedPrincipal {
    /// The unauthenticated caller, for transports that allow one.
    pub fn anonymous() -> AuthenticatedPrincipal {
        AuthenticatedPrincipal {
            principal: Caller::ANONYMOUS.to_owned(),
            authenticated: false,
            auth: AuthMethod::None,
            claims: Map::new(),
        }
    }
}

/// API keys by the SHA-256 of the key: hashing before the lookup keeps the comparison free of
/// timing leaks about the key itself, and the config never holds the key.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    keys: Arc<HashMap<String, String>>,
    allow_anonymous: bool,
}

impl ApiKeys {
    pub fn new(keys: &[ApiKeyConfig], allow_anonymous: bool) -> ApiKeys {
        ApiKeys {
            keys: Arc::new(
                keys.iter()
                    .map(|k| (k.key_sha256.to_ascii_lowercase(), k.principal.clone()))
                    .collect(),
            ),
            allow_anonymous,
        }
    }

    /// Who sent a request whose `Authorization` header is `header` (`None`: no header;
    /// `Some(None)`: a header that is not visible ASCII). The error says what was wrong,
    /// never the key.
    pub fn authenticate(
        &self,
        header: Option<Option<&str>>,
    ) -> Result<AuthenticatedPrincipal, &'static str> {
        let Some(header) = header else {
            return if self.allow_anonymous {
                Ok(AuthenticatedPrincipal::anonymous())
            } else {
                Err("an API key is required: send `Authorization: Bearer <key>`")
            };
        };
        let key = header
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or("malformed Authorization header: expected `Bearer <key>`")?;
        let digest = hex::encode(Sha256::digest(key.trim().as_bytes()));
        self.keys
            .get(&digest)
            .map(|principal| AuthenticatedPrincipal {
                principal: principal.clone(),
                authenticated: true,
                auth: AuthMethod::ApiKey,
                claims: Map::new(),
            })
            .ok_or("unknown API key")
    }
}

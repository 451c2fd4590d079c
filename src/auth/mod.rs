//! Who is calling: the caller every decision and audit entry carries ([`Caller`]), and how a
//! request over HTTP proves it ([`ApiKeys`], and with `full` a bearer JWT: [`JwtValidator`],
//! checked against keys from a JWKS file or URL). Knows nothing of MCP or wasmtime: the transports
//! hand it what the request said and attach what it answers.

mod api_keys;
mod caller;
#[cfg(feature = "full")]
mod jwks;
#[cfg(feature = "full")]
mod jwks_url;
#[cfg(feature = "full")]
mod jwt;

pub use api_keys::{ApiKeyConfig, ApiKeys, AuthenticatedPrincipal};
pub use caller::{AuthMethod, Caller, ClientInfo, Transport};
#[cfg(feature = "full")]
pub use jwks_url::{
    DEFAULT_REFRESH_SECONDS, JwksUrl, MAX_JWKS_BYTES, REFRESH_SECONDS, UNKNOWN_KEY_COOLDOWN,
};
#[cfg(feature = "full")]
pub use jwt::{
    JwtConfigError, JwtSettings, JwtValidator, MAX_LEEWAY_SECONDS, TokenError, looks_like_jwt,
};

/// `[auth]`: how HTTP callers may prove who they are besides `[[api_keys]]`.
#[cfg(feature = "full")]
#[derive(Debug, Clone, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Bearer JWTs from an identity provider; off when absent.
    pub jwt: Option<JwtSettings>,
}

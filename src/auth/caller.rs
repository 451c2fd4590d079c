//! The caller every policy decision and audit entry carries.

use serde::Serialize;
use serde_json::{Map, Value};

/// The transport a caller reached us through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Stdio,
    Http,
    Cli,
}

/// How a caller proved who it is (`input.caller.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A bearer JWT verified against the identity provider's keys.
    Jwt,
    /// An API key of `[[api_keys]]`.
    ApiKey,
    /// Nothing: an anonymous HTTP caller.
    None,
    /// The process on the other end of stdio, named by configuration.
    Stdio,
    /// `gatehouse call`, the operator at the command line.
    Cli,
}

/// The MCP client implementation a caller announced in `initialize` (self-reported, so a
/// policy may log it but should not trust it for authorization).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientInfo {
    pub name: String,
    pub version: String,
}

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    /// The principal id: from an API key on HTTP, from configuration on stdio, `anonymous`
    /// for unauthenticated HTTP requests.
    pub principal: String,
    /// Whether the principal was proven (an API key or a JWT), rather than assumed.
    pub authenticated: bool,
    pub transport: Transport,
    pub client: Option<ClientInfo>,
    pub auth: AuthMethod,
    /// The verified claims of the caller's JWT, whole; empty for other callers. Never the
    /// token itself.
    pub claims: Map<String, Value>,
}

impl Caller {
    pub const ANONYMOUS: &'static str = "anonymous";

    /// The operator at the command line (`gatehouse call`), trusted as `principal`.
    pub fn operator(principal: impl Into<String>) -> Caller {
        Caller {
            principal: principal.into(),
            authenticated: true,
            transport: Transport::Cli,
            client: None,
            auth: AuthMethod::Cli,
            claims: Map::new(),
        }
    }
}

//! The caller every policy decision and audit entry carries.

use serde::Serialize;

/// The transport a caller reached us through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Stdio,
    Http,
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
    /// Whether the principal was proven (an API key), rather than assumed.
    pub authenticated: bool,
    pub transport: Transport,
    pub client: Option<ClientInfo>,
}

impl Caller {
    pub const ANONYMOUS: &'static str = "anonymous";
}

//! Who is calling: the caller every decision and audit entry carries ([`Caller`]), and how a
//! request over HTTP proves it ([`ApiKeys`]). Knows nothing of MCP or wasmtime: the transports
//! hand it what the request said and attach what it answers.

mod api_keys;
mod caller;

pub use api_keys::{ApiKeyConfig, ApiKeys, AuthenticatedPrincipal};
pub use caller::{Caller, ClientInfo, Transport};

//! The MCP face of the gateway: an rmcp `ServerHandler` that lists the gateway's tools and
//! hands every `tools/call` to [`Gateway::call`]. It knows callers and JSON, not wasmtime.
//!
//! Protocol errors (unknown method, malformed JSON-RPC, a request before `initialize`) are
//! answered by rmcp with JSON-RPC errors; unknown tools get `-32602`; everything that happens
//! to a known tool (bad arguments, a trap, a limit) is a tool result with `isError: true`, so
//! the agent can read it and correct itself.

pub mod jsonrpc;

#[cfg(feature = "full")]
mod elicit;
#[cfg(feature = "full")]
pub mod http;
#[cfg(feature = "full")]
pub mod logging;
#[cfg(feature = "full")]
mod server;
#[cfg(feature = "full")]
pub mod sessions;
#[cfg(feature = "full")]
pub mod stdio;

#[cfg(feature = "full")]
pub use server::{McpServer, describe_tool, to_mcp_result};

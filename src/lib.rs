//! Gatehouse: a policy-as-code security gateway that serves WebAssembly components to AI agents
//! as MCP tools.
//!
//! The modules follow the call path (see `README.md` and `../shared/ARCHITECTURE.md`):
//! `mcp` speaks the protocol, `gateway` sequences the pipeline, `runtime` and `host` run the
//! component inside the limits and doors we guard, `policy` decides, `wit_json` converts values
//! and schemas.
//!
//! Without the `full` feature (on by default) only the pure parts are built: `wit_json`,
//! `identity`, `audit`, `jsonrpc`, `policy_input` and `fuzzing`. That is what `fuzz/` links.

#[cfg(feature = "full")]
mod allocator;
pub mod audit;
#[cfg(feature = "full")]
pub mod cli;
#[cfg(feature = "full")]
pub mod config;
pub mod fs_trust;
pub mod fuzzing;
#[cfg(feature = "full")]
pub mod gateway;
#[cfg(feature = "full")]
pub mod host;
pub mod identity;
pub mod jsonrpc;
#[cfg(feature = "full")]
pub mod logging;
#[cfg(feature = "full")]
pub mod mcp;
#[cfg(feature = "full")]
pub mod policy;
pub mod policy_input;
#[cfg(feature = "full")]
pub mod runtime;
#[cfg(feature = "full")]
pub mod supply;
pub mod userinfo;
#[cfg(feature = "full")]
pub mod watch;
pub mod wit_json;

#[cfg(feature = "full")]
pub use allocator::Allocator;

//! Gatehouse: a policy-as-code security gateway that serves WebAssembly components to AI agents
//! as MCP tools.
//!
//! The modules follow the call path (see `README.md` and `../shared/ARCHITECTURE.md`):
//! `mcp` speaks the protocol, `gateway` sequences the pipeline, `runtime` and `host` run the
//! component inside the limits and doors we guard, `policy` decides, `wit_json` converts values
//! and schemas.

pub mod audit;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod host;
pub mod identity;
pub mod logging;
pub mod mcp;
pub mod policy;
pub mod runtime;
pub mod supply;
pub mod wit_json;

//! Gatehouse: a policy-as-code security gateway that serves WebAssembly components to AI agents
//! as MCP tools.
//!
//! The modules follow the call path (see `README.md` and `../shared/ARCHITECTURE.md`):
//! `mcp` speaks the protocol, `gateway` sequences policy → audit → runtime, `runtime` and `host`
//! run the component inside the limits and doors we guard, `policy` decides, `audit` records.

pub mod audit;
pub mod cli;

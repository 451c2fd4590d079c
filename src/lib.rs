//! Gatehouse: a policy-as-code security gateway that serves WebAssembly components to AI agents
//! as MCP tools.
//!
//! A tour in the order of a call (`README.md`, "The call path"):
//!
//! - [`cli`]: the `gatehouse` command and its subcommands (`serve`, `call`, `tools`, `policy`,
//!   `audit`, `component`, `bench`, `new`);
//! - [`mcp`]: the MCP protocol (rmcp) over stdio and streamable HTTP, sessions, and the first
//!   look at untrusted JSON-RPC ([`mcp::jsonrpc`]);
//! - [`auth`]: who is calling — the caller every decision and audit entry carries;
//! - [`secrets`]: credentials the gateway injects into a tool's allowed requests, never
//!   handing them to the tool;
//! - [`gateway`]: the tools being served ([`gateway::catalog`]) and the pipeline every call
//!   goes through ([`gateway::call`]): the only module that sequences policy, audit and runtime;
//! - [`config`]: `gatehouse.toml`, combining the settings each module owns;
//! - [`approval`]: a person in the loop — questions for `ask` decisions, their answers and the
//!   grants they leave, kept in a file the command line shares;
//! - [`runtime`]: wasmtime — engine, component loading, the compile cache, per-call stores;
//! - [`host`]: our WASI host implementations (HTTP, files, sockets) that ask the policy about
//!   every operation a tool makes, and the limits a store enforces;
//! - [`supply`]: where a component comes from, its digest pins, signatures, definition drift;
//! - [`policy`]: Rego decisions (regorus), the input documents of each phase, bundles, reload,
//!   the `policy test` runner and decision replay;
//! - [`fleet`]: the fleet's shared audit store (PostgreSQL): shipping each gateway's log
//!   there, verifying and querying every gateway's chain;
//! - [`audit`]: the append-only, signed, Merkle-tree audit log, its reader and verifier;
//! - [`wit_json`]: WIT types ↔ JSON Schema, JSON ↔ component values, WAVE text;
//! - [`support`]: plumbing several layers share (file trust, URL credential masking, file
//!   watching, logging, the allocator);
//! - [`ui`]: the auditor's web view at `/ui/` (timeline, a call's story, overview,
//!   integrity), read-only over the audit log, for the principals `[ui]` names;
//! - [`telemetry`]: Prometheus metrics, recorded by the layers and served at `/metrics`, and
//!   the OpenTelemetry spans of each call, exported over OTLP;
//! - [`fuzzing`]: the entry points of the fuzz targets in `fuzz/`.
//!
//! Each module imports only the modules below it in this table (`tests/layering.rs` fails the
//! build's tests otherwise; `fuzzing` may use any module but `cli`):
//!
//! | module | may import |
//! |---|---|
//! | `cli` | every module below |
//! | `mcp` | `gateway`, `config`, `approval`, `ui`, `auth`, `support`, `telemetry` |
//! | `gateway` | `config`, `approval`, `runtime`, `host`, `supply`, `policy`, `fleet`, `audit`, `wit_json`, `auth`, `secrets`, `support`, `telemetry` |
//! | `config` | `approval`, `ui`, `runtime`, `host`, `supply`, `policy`, `fleet`, `audit`, `auth`, `secrets`, `support`, `telemetry` |
//! | `ui` | `approval`, `audit`, `auth`, `support` |
//! | `approval` | `support` |
//! | `runtime` | `host`, `supply`, `wit_json`, `support` |
//! | `host` | `policy`, `audit`, `wit_json`, `secrets`, `support` |
//! | `supply` | `audit`, `wit_json`, `support` |
//! | `policy` | `auth`, `wit_json`, `secrets`, `support`, `telemetry` |
//! | `fleet` | `audit`, `secrets`, `support`, `telemetry` |
//! | `audit` | `support`, `telemetry` |
//! | `auth` | `support` |
//! | `secrets` | `support` |
//! | `wit_json`, `support`, `telemetry` | — |
//!
//! Without the `full` feature (on by default) only the pure parts are built: `wit_json`,
//! `auth`, `audit`, `mcp::jsonrpc`, `policy::input`, `support`'s file trust and masking,
//! `telemetry`'s metrics (without their endpoint and the traces), and `fuzzing`. That is what
//! `fuzz/` links.

#[cfg(feature = "full")]
pub mod approval;
pub mod audit;
pub mod auth;
#[cfg(feature = "full")]
pub mod cli;
#[cfg(feature = "full")]
pub mod config;
#[cfg(feature = "full")]
pub mod fleet;
pub mod fuzzing;
#[cfg(feature = "full")]
pub mod gateway;
#[cfg(feature = "full")]
pub mod host;
pub mod mcp;
pub mod policy;
#[cfg(feature = "full")]
pub mod runtime;
#[cfg(feature = "full")]
pub mod secrets;
#[cfg(feature = "full")]
pub mod supply;
pub mod support;
pub mod telemetry;
#[cfg(feature = "full")]
pub mod ui;
pub mod wit_json;

#[cfg(feature = "full")]
pub use support::allocator::Allocator;

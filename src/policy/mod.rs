//! Policy decisions: Rego (regorus, in-process) bundles with one package per phase under
//! `gatehouse`, OPA conventions (`allow`, `deny`, and the obligations `limits` and `redact`).
//!
//! The gateway builds an input document with [`input`] (the contract is `policies/README.md`;
//! pure functions, built without the `full` feature too, so the fuzz targets build the same
//! documents), asks
//! [`PolicyStore::decide`] and gets a [`Decision`] back; `decide` never fails: an undefined
//! package, an evaluation error, a timeout or an oversized input is a deny whose reason says
//! so. Bundles are loaded and reloaded whole ([`PolicyStore::reload`], [`PolicyStore::watch`],
//! [`reload_on_sighup`]): one that fails to parse, to compile or its own tests never serves.
//!
//! This module knows nothing of wasmtime, MCP or SQL. Evaluation cannot reach the network
//! (regorus is built without `http.send`) or read the clock (`time.now_ns` is disabled): time
//! and identity come in through the input.

pub mod input;

#[cfg(feature = "full")]
mod budget;
#[cfg(feature = "full")]
mod bundle;
#[cfg(feature = "full")]
mod compiled;
#[cfg(feature = "full")]
mod decision;
#[cfg(feature = "full")]
mod error;
#[cfg(feature = "full")]
mod nodes;
#[cfg(feature = "full")]
mod phase;
#[cfg(feature = "full")]
mod pool;
#[cfg(feature = "full")]
pub mod replay;
#[cfg(feature = "full")]
mod settings;
#[cfg(feature = "full")]
mod store;
#[cfg(feature = "full")]
pub mod test_runner;
#[cfg(feature = "full")]
mod watch;

#[cfg(all(feature = "full", test))]
mod tests;

#[cfg(feature = "full")]
pub use bundle::{BundleSource, RegoFile};
#[cfg(feature = "full")]
pub use decision::{Decision, Injection, Limits, POLICY_ERROR, Verdict};
#[cfg(feature = "full")]
pub use error::PolicyError;
#[cfg(feature = "full")]
pub use phase::{Phase, UnknownPhase};
#[cfg(feature = "full")]
pub use settings::{DEFAULT_POLICY_DIR, PolicyConfig};
#[cfg(feature = "full")]
pub use store::{Evaluator, Explanation, PolicyOptions, PolicyStore};
#[cfg(all(feature = "full", unix))]
pub use watch::reload_on_sighup;
#[cfg(feature = "full")]
pub use watch::{DEBOUNCE, PolicyWatcher, WatchError};

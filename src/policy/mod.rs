//! Policy decisions: Rego (regorus, in-process) bundles with one package per phase under
//! `gatehouse`, OPA conventions (`allow`, `deny`, and the obligations `limits` and `redact`).
//!
//! The gateway builds an input document (see `policies/README.md` for the contract), asks
//! [`PolicyStore::decide`] and gets a [`Decision`] back; `decide` never fails: an undefined
//! package, an evaluation error, a timeout or an oversized input is a deny whose reason says
//! so. Bundles are loaded and reloaded whole ([`PolicyStore::reload`], [`PolicyStore::watch`],
//! [`reload_on_sighup`]): one that fails to parse, to compile or its own tests never serves.
//!
//! This module knows nothing of wasmtime, MCP or SQL. Evaluation cannot reach the network
//! (regorus is built without `http.send`) or read the clock (`time.now_ns` is disabled): time
//! and identity come in through the input.

mod budget;
mod bundle;
mod compiled;
mod decision;
mod error;
mod nodes;
mod phase;
mod pool;
mod settings;
mod store;
pub mod test_runner;
mod watch;

#[cfg(test)]
mod tests;

// The runner's former name, which store.rs still imports; remove with that import.
use test_runner as testing;

pub use bundle::{BundleSource, RegoFile};
pub use decision::{Decision, Limits, POLICY_ERROR, Verdict};
pub use error::PolicyError;
pub use phase::{Phase, UnknownPhase};
pub use settings::{DEFAULT_POLICY_DIR, PolicyConfig};
pub use store::{Evaluator, Explanation, PolicyOptions, PolicyStore};
#[cfg(unix)]
pub use watch::reload_on_sighup;
pub use watch::{DEBOUNCE, PolicyWatcher, WatchError};

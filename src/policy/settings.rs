//! The `[policy]` section of `gatehouse.toml`: which bundle decides, with which data, by which
//! evaluator.

use std::path::PathBuf;

use serde::Deserialize;

use super::Evaluator;

/// The bundle shipped with Gatehouse, in the working directory.
pub const DEFAULT_POLICY_DIR: &str = "policies";

/// The Rego bundle that decides every call (`[policy]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Bundle directory (`.rego` files, `data.json`); default [`DEFAULT_POLICY_DIR`] in the
    /// working directory, the bundle shipped with Gatehouse.
    pub dir: Option<PathBuf>,
    /// Data files merged over the bundle's own data, in order (environment-specific settings).
    pub data: Vec<PathBuf>,
    /// `interpreter` (default: every evaluation error denies) or `compiled` (several times
    /// faster; an error inside a rule body fails that body instead, as in OPA).
    pub evaluator: Evaluator,
    /// Where the fleet's bundle is published (`https://…/bundle.tar.gz` or `oci://…`), made by
    /// `gatehouse policy build`. When set, `dir` is not read: the bundle is downloaded, its
    /// signature checked with `[supply_chain.signature]`, and polled for changes.
    pub bundle_url: Option<String>,
    /// Seconds between polls of `bundle_url` (default 60).
    pub bundle_poll_secs: Option<u64>,
    /// Extra PEM CA certificates trusted for an https `bundle_url` (a private server).
    pub bundle_ca: Option<PathBuf>,
    /// Where downloaded bundles are unpacked; one per gateway process (default
    /// `<cache dir>/policy-bundle`).
    pub bundle_state_dir: Option<PathBuf>,
}

/// How often `bundle_url` is polled unless `bundle_poll_secs` says otherwise.
pub const DEFAULT_BUNDLE_POLL_SECS: u64 = 60;

impl PolicyConfig {
    /// Seconds between polls of `bundle_url`.
    pub fn bundle_poll_secs(&self) -> u64 {
        self.bundle_poll_secs.unwrap_or(DEFAULT_BUNDLE_POLL_SECS)
    }

    /// The bundle directory: as configured, else [`DEFAULT_POLICY_DIR`].
    pub fn dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_POLICY_DIR))
    }
}

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
}

impl PolicyConfig {
    /// The bundle directory: as configured, else [`DEFAULT_POLICY_DIR`].
    pub fn dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_POLICY_DIR))
    }
}

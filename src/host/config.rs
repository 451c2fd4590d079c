//! `wasi:config/store`: the non-secret settings an operator gives a component in
//! `gatehouse.toml` (`config = { key = "value" }` in its `[[components]]` entry), the interface
//! Wassette and Spin offer too, so existing tools run unchanged. Every read is decided by the
//! policy (phase `config`, `input.config`) and recorded like any other host operation; the
//! values themselves are never in the policy input or the audit entry, only the key names.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::HasData;

use super::bindings::wasi::config::store::{Error, Host};
use super::guard::{ConfigRead, HostRequest, SharedGuard};

/// A component's settings: key → value, as configured.
pub type ComponentSettings = BTreeMap<String, String>;

/// One call's view of its component's settings.
pub struct ConfigStore {
    settings: Arc<ComponentSettings>,
    guard: SharedGuard,
}

/// The [`HasData`] marker under which [`ConfigStore`] is linked.
pub struct Config;

impl HasData for Config {
    type Data<'a> = &'a mut ConfigStore;
}

impl ConfigStore {
    pub fn new(settings: Arc<ComponentSettings>, guard: SharedGuard) -> ConfigStore {
        ConfigStore { settings, guard }
    }

    /// Asks the policy; a denial is the `upstream` error, with the policy's reasons.
    fn decide(&self, operation: &'static str, key: Option<String>) -> Result<(), Error> {
        let read = ConfigRead {
            operation,
            present: key.as_ref().map(|k| self.settings.contains_key(k)),
            key,
            keys: self.settings.keys().cloned().collect(),
        };
        let verdict = self.guard.decide(HostRequest::Config(read));
        if verdict.allowed {
            Ok(())
        } else {
            let why = if verdict.reasons.is_empty() {
                "no rule allowed it".to_owned()
            } else {
                verdict.reasons.join("; ")
            };
            Err(Error::Upstream(format!("denied by policy: {why}")))
        }
    }
}

impl Host for ConfigStore {
    fn get(&mut self, key: String) -> Result<Option<String>, Error> {
        self.decide("get", Some(key.clone()))?;
        Ok(self.settings.get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, Error> {
        self.decide("get-all", None)?;
        Ok(self
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

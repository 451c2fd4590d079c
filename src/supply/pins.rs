//! Tool-definition pins: what each tool looked like when it was first served.
//!
//! A tool's *definition* is exactly what an agent is shown for it (name, title, description,
//! input and output schemas); its hash is `sha256:` over the RFC 8785 form of that JSON. The
//! first time a tool name is served its hash is pinned. When a later load offers the same
//! name with another hash, that is *drift*: a tool that changed what it says it does, which is
//! how a "rug-pull" update looks. The changed definition is recorded as pending and, by
//! default, the tool is withheld until an operator runs `gatehouse component accept NAME`.
//!
//! The pins live in a small JSON file rather than the audit log, because the audit log has
//! one writer (the gateway) and `accept` is run by an operator next to a running gateway; the
//! gateway watches the file and records every pin, drift and acceptance in the audit log
//! (phase `supply`), so the log still holds the whole history.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Default pin file, in the working directory (beside the default audit log).
pub const DEFAULT_PINS_FILE: &str = "gatehouse-pins.json";

/// `sha256:` over the canonical (RFC 8785) JSON of a tool definition.
pub fn definition_hash(definition: &Value) -> String {
    let canonical = serde_json_canonicalizer::to_vec(definition)
        .unwrap_or_else(|_| definition.to_string().into_bytes());
    format!("sha256:{}", hex::encode(Sha256::digest(&canonical)))
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinFile {
    /// Accepted definitions, by tool name.
    #[serde(default)]
    pub tools: BTreeMap<String, Pin>,
    /// Changed definitions seen but not accepted yet, by tool name.
    #[serde(default)]
    pub pending: BTreeMap<String, Pin>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub definition: String,
    pub component_digest: String,
    pub time: String,
}

/// How a tool's current definition compares with its pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinCheck {
    /// Never seen: now pinned.
    New,
    /// Same as pinned.
    Same,
    /// Differs from the pin (recorded as pending).
    Drift { pinned: String },
}

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("pin file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("nothing pending for {name:?} in {path} (pending: {pending})")]
    NothingPending {
        name: String,
        path: PathBuf,
        pending: String,
    },
}

/// The pin file, read and written under an advisory lock so that the gateway and
/// `gatehouse component accept` never lose each other's updates.
#[derive(Debug, Clone)]
pub struct PinStore {
    path: PathBuf,
}

impl PinStore {
    pub fn new(path: PathBuf) -> PinStore {
        PinStore { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, message: impl std::fmt::Display) -> PinError {
        PinError::File {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }

    /// The current pins (empty when the file does not exist yet).
    pub fn read(&self) -> Result<PinFile, PinError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.error(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PinFile::default()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Runs `change` on the pins under the lock and writes the result atomically.
    fn update<T>(&self, change: impl FnOnce(&mut PinFile) -> T) -> Result<T, PinError> {
        let mut lock_name = self.path.as_os_str().to_owned();
        lock_name.push(".lock");
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| self.error(e))?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(PathBuf::from(lock_name))
            .map_err(|e| self.error(e))?;
        lock.lock().map_err(|e| self.error(e))?;
        let mut pins = self.read()?;
        let before = pins.clone();
        let result = change(&mut pins);
        if pins != before {
            let mut tmp = self.path.as_os_str().to_owned();
            tmp.push(format!(".{}.tmp", std::process::id()));
            let tmp = PathBuf::from(tmp);
            let text = serde_json::to_vec_pretty(&pins).map_err(|e| self.error(e))?;
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, &self.path))
                .map_err(|e| self.error(e))?;
        }
        Ok(result)
    }

    /// Compares each `(tool, definition hash, component digest)` with its pin, pinning new
    /// tools and recording changed ones as pending.
    pub fn check(&self, tools: &[(String, String, String)]) -> Result<Vec<PinCheck>, PinError> {
        let time = crate::audit::format_time(chrono::Utc::now());
        self.update(|pins| {
            tools
                .iter()
                .map(|(name, definition, component_digest)| {
                    let pin = Pin {
                        definition: definition.clone(),
                        component_digest: component_digest.clone(),
                        time: time.clone(),
                    };
                    match pins.tools.get(name) {
                        None => {
                            pins.tools.insert(name.clone(), pin);
                            PinCheck::New
                        }
                        Some(existing) if existing.definition == *definition => {
                            pins.pending.remove(name);
                            PinCheck::Same
                        }
                        Some(existing) => {
                            let pinned = existing.definition.clone();
                            if pins.pending.get(name).map(|p| &p.definition) != Some(definition) {
                                pins.pending.insert(name.clone(), pin);
                            }
                            PinCheck::Drift { pinned }
                        }
                    }
                })
                .collect()
        })
    }

    /// Accepts the pending definitions of a tool (`NAME`) or of every tool of a component
    /// (`NAME` is the component name): they become the pins. Returns the accepted tool names.
    pub fn accept(&self, name: &str) -> Result<Vec<(String, Pin)>, PinError> {
        let prefix = format!("{name}_");
        let accepted = self.update(|pins| {
            let names: Vec<String> = pins
                .pending
                .keys()
                .filter(|tool| *tool == name || tool.starts_with(&prefix))
                .cloned()
                .collect();
            names
                .into_iter()
                .filter_map(|tool| {
                    let pin = pins.pending.remove(&tool)?;
                    pins.tools.insert(tool.clone(), pin.clone());
                    Some((tool, pin))
                })
                .collect::<Vec<_>>()
        })?;
        if accepted.is_empty() {
            let pending = self.read()?.pending.into_keys().collect::<Vec<_>>();
            return Err(PinError::NothingPending {
                name: name.to_owned(),
                path: self.path.clone(),
                pending: if pending.is_empty() {
                    "none".into()
                } else {
                    pending.join(", ")
                },
            });
        }
        Ok(accepted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, definition: &str) -> (String, String, String) {
        (name.into(), definition.into(), "sha256:c".into())
    }

    #[test]
    fn first_sight_pins_then_change_is_drift_until_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let store = PinStore::new(dir.path().join("pins.json"));
        assert_eq!(store.check(&[tool("a_f", "h1")]).unwrap(), [PinCheck::New]);
        assert_eq!(store.check(&[tool("a_f", "h1")]).unwrap(), [PinCheck::Same]);
        assert_eq!(
            store.check(&[tool("a_f", "h2")]).unwrap(),
            [PinCheck::Drift {
                pinned: "h1".into()
            }]
        );
        assert_eq!(store.read().unwrap().pending["a_f"].definition, "h2");
        let accepted = store.accept("a").unwrap();
        assert_eq!(accepted[0].0, "a_f");
        assert_eq!(store.check(&[tool("a_f", "h2")]).unwrap(), [PinCheck::Same]);
        let err = store.accept("a_f").unwrap_err().to_string();
        assert!(err.contains("nothing pending"), "{err}");
    }

    #[test]
    fn definition_hash_ignores_member_order() {
        let a = serde_json::json!({"name": "x", "inputSchema": {"a": 1, "b": 2}});
        let b = serde_json::json!({"inputSchema": {"b": 2, "a": 1}, "name": "x"});
        assert_eq!(definition_hash(&a), definition_hash(&b));
        assert_ne!(
            definition_hash(&a),
            definition_hash(&serde_json::json!({"name": "y"}))
        );
    }
}

//! Redaction of policy-selected input values by keyed hashes.
//!
//! A redacted value is replaced by `{"redacted": "hmac-sha256:<hex>"}`, the HMAC-SHA-256 of the
//! value's RFC 8785 text under a secret key kept outside the database. Equal values give equal
//! hashes (an auditor can still link "the same token was used in these calls"), but without the
//! key nobody holding only the database can read them or test guesses against them.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::AuditError;
use super::canonical::canonical_value;

/// The secret redaction key (32 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct RedactionKey([u8; 32]);

impl std::fmt::Debug for RedactionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedactionKey(…)")
    }
}

impl RedactionKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    pub(crate) fn generate() -> Result<Self, String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a new key: {e}"))?;
        Ok(Self(bytes))
    }

    /// The key as 64 hex digits (its file format).
    pub(crate) fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Loads the key file (64 hex digits), or creates it with a random key and mode 0600 if it
    /// does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Self, AuditError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(text.trim()).map_err(|detail| AuditError::Key {
                path: path.to_owned(),
                detail,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(e) => Err(AuditError::io(path, "reading redaction key", e)),
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text)
            .map_err(|_| "redaction key is not hex (expected 64 hex digits)".to_string())?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|v: Vec<u8>| format!("redaction key has {} bytes, expected 32", v.len()))?;
        Ok(Self(bytes))
    }

    fn create(path: &Path) -> Result<Self, AuditError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| AuditError::Key {
            path: path.to_owned(),
            detail: format!("no randomness for a new key: {e}"),
        })?;
        let open = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        let mut file = match open {
            Ok(f) => f,
            // Another process created it between our read and our create: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Self::load_or_create(path);
            }
            Err(e) => {
                return Err(AuditError::Unwritable {
                    path: path.to_owned(),
                    detail: format!("creating the redaction key: {e}"),
                });
            }
        };
        file.write_all(format!("{}\n", hex::encode(bytes)).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| AuditError::io(path, "writing redaction key", e))?;
        Ok(Self(bytes))
    }

    /// `hmac-sha256:<hex>` of the value's canonical text.
    pub fn mac(&self, value: &Value) -> Result<String, AuditError> {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(canonical_value(value)?.as_bytes());
        Ok(format!(
            "hmac-sha256:{}",
            hex::encode(mac.finalize().into_bytes())
        ))
    }

    /// Replaces the value at each JSON pointer by its keyed hash. A pointer that selects nothing
    /// is skipped (there is nothing to hide); a malformed pointer is an error, so a redaction the
    /// policy asked for is never silently dropped.
    pub fn redact(&self, input: &mut Value, pointers: &[String]) -> Result<(), AuditError> {
        for pointer in pointers {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(AuditError::Redaction {
                    pointer: pointer.clone(),
                    detail: "a JSON pointer must be empty or start with '/'".into(),
                });
            }
            if let Some(slot) = input.pointer_mut(pointer) {
                if is_redacted(slot) {
                    continue;
                }
                *slot = json!({ "redacted": self.mac(slot)? });
            }
        }
        Ok(())
    }
}

/// Whether any value in `value` (itself, or at any depth) is a redaction marker: an input read
/// back from the log holds digests there, not what the policy saw.
pub fn holds_redacted(value: &Value) -> bool {
    is_redacted(value)
        || match value {
            Value::Array(items) => items.iter().any(holds_redacted),
            Value::Object(members) => members.values().any(holds_redacted),
            _ => false,
        }
}

/// Whether a value is already a redaction marker (redacting twice would hash the hash).
fn is_redacted(v: &Value) -> bool {
    v.as_object().is_some_and(|m| {
        m.len() == 1
            && m.get("redacted")
                .and_then(Value::as_str)
                .is_some_and(|s| s.starts_with("hmac-sha256:"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_pointers_and_links_equal_values() {
        let key = RedactionKey::from_bytes([1; 32]);
        let mut input = json!({"headers": {"authorization": "Bearer s3cr3t"}, "args": ["x", "Bearer s3cr3t"], "keep": 1});
        key.redact(
            &mut input,
            &[
                "/headers/authorization".into(),
                "/args/1".into(),
                "/missing".into(),
            ],
        )
        .unwrap();
        let a = &input["headers"]["authorization"]["redacted"];
        let b = &input["args"][1]["redacted"];
        assert!(a.as_str().unwrap().starts_with("hmac-sha256:"));
        assert_eq!(a, b);
        assert_eq!(input["keep"], 1);
        assert!(!input.to_string().contains("s3cr3t"));
        let other = RedactionKey::from_bytes([2; 32]);
        assert_ne!(
            other.mac(&json!("Bearer s3cr3t")).unwrap(),
            a.as_str().unwrap()
        );
        assert!(matches!(
            key.redact(&mut input, &["headers".into()]),
            Err(AuditError::Redaction { .. })
        ));
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("redaction.key");
        let k1 = RedactionKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = RedactionKey::load_or_create(&path).unwrap();
        assert_eq!(k1.0, k2.0);
        std::fs::write(&path, "zz").unwrap();
        assert!(matches!(
            RedactionKey::load_or_create(&path),
            Err(AuditError::Key { .. })
        ));
    }
}

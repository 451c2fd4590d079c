//! Secrets the gateway brokers: credentials a tool needs to reach a service but must never
//! hold.
//!
//! A secret is named in `gatehouse.toml` (`[secrets.github] env = "GITHUB_TOKEN"` or
//! `file = "secrets/github"`) and read once at start. No tool ever receives one: the `http`
//! phase's `inject` obligation names secrets in a header [`Template`]
//! (`"Bearer {{secret.github}}"`), and the host fills it in on the outgoing request after the
//! decision, where the tool cannot read it back. The audit log and the tracing log record the
//! template — which secret went into which header — never the value.
//!
//! As a last line of defence, a brokered value that comes back verbatim (a server echoing
//! headers into its response, a result quoting it) is masked by [`Secrets::mask`] and
//! [`StreamMasker`] before the tool, the agent or the log sees it: each byte becomes `*`, so a
//! response keeps its `content-length`.
//!
//! The rules on a value (at least [`MIN_SECRET_BYTES`] bytes, printable ASCII only) exist
//! because of those two uses: a header cannot carry a control character, and a short value
//! would mask ordinary text.

mod mask;
mod template;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use mask::StreamMasker;
pub use template::{Template, TemplateError};

/// The fewest bytes a secret may have: masking a shorter value would hide ordinary text, and a
/// credential that short is guessable anyway.
pub const MIN_SECRET_BYTES: usize = 8;

/// The most bytes a secret file may hold.
const MAX_SECRET_BYTES: u64 = 64 << 10;

/// One `[secrets.NAME]` table: where the value is read from. Exactly one of `env` and `file`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SecretSource {
    /// An environment variable of the gateway's process.
    pub env: Option<String>,
    /// A file readable by the gateway's user only (mode 0600 or 0400); a trailing line break is
    /// not part of the value.
    pub file: Option<PathBuf>,
}

impl SecretSource {
    /// The value, read the way every secret is (an environment variable, or a private file
    /// without its trailing line break); `name` says which setting it is in errors. Also used
    /// for credentials the gateway itself needs (the fleet's database password).
    pub fn read(&self, name: &str) -> Result<Vec<u8>, SecretsError> {
        let raw = match (&self.env, &self.file) {
            (Some(variable), None) => std::env::var(variable)
                .map_err(|_| SecretsError::MissingEnv {
                    name: name.to_owned(),
                    variable: variable.clone(),
                })?
                .into_bytes(),
            (None, Some(path)) => read_private_file(name, path)?,
            _ => return Err(SecretsError::Source(name.to_owned())),
        };
        Ok(trim_line_break(raw))
    }
}

/// The `[secrets]` section: secret names and their sources.
pub type SecretsConfig = BTreeMap<String, SecretSource>;

/// A secret cannot be loaded; the gateway refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("[secrets.{0}]: a secret name may hold only letters, digits, `_` and `-`; rename it")]
    Name(String),
    #[error("[secrets.{0}] needs exactly one of `env` and `file`")]
    Source(String),
    #[error(
        "[secrets.{name}]: environment variable {variable} is not set (or not valid UTF-8); export it before starting the gateway"
    )]
    MissingEnv { name: String, variable: String },
    #[error("[secrets.{name}]: cannot read {}: {detail}", path.display())]
    File {
        name: String,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "[secrets.{name}]: {} is not private: {detail}; run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Exposed {
        name: String,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "[secrets.{name}]: the value is shorter than {MIN_SECRET_BYTES} bytes, too short to be told apart from ordinary text"
    )]
    TooShort { name: String },
    #[error(
        "[secrets.{name}]: the value holds a character an HTTP header cannot carry (only printable ASCII is accepted)"
    )]
    NotHeaderText { name: String },
    #[error(
        "[env] {variable} holds the value of secret `{name}`: a brokered secret never reaches a tool; remove it from [env] and inject it with the policy's `inject` obligation"
    )]
    GrantedAsEnv { name: String, variable: String },
}

/// A secret's bytes. Its `Debug` shows only the length, so no `{:?}` can print it.
#[derive(Clone)]
struct SecretValue(Box<[u8]>);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} secret bytes>", self.0.len())
    }
}

/// The loaded secrets, shared by the HTTP host (injection, response masking) and the gateway
/// (result masking).
#[derive(Debug, Default)]
pub struct Secrets {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    name: String,
    value: SecretValue,
}

impl Entry {
    /// A secret that keeps the rules on names and values.
    fn new(name: &str, value: Vec<u8>) -> Result<Entry, SecretsError> {
        let name = name.to_owned();
        if !template::is_secret_name(&name) {
            return Err(SecretsError::Name(name));
        }
        if value.len() < MIN_SECRET_BYTES {
            return Err(SecretsError::TooShort { name });
        }
        if !value.iter().all(|b| (0x20..0x7f).contains(b)) {
            return Err(SecretsError::NotHeaderText { name });
        }
        Ok(Entry {
            name,
            value: SecretValue(value.into_boxed_slice()),
        })
    }
}

impl Secrets {
    /// Reads every configured secret; any one that cannot be read or breaks the rules refuses
    /// the whole set, naming it.
    pub fn load(config: &SecretsConfig) -> Result<Secrets, SecretsError> {
        let mut entries = Vec::with_capacity(config.len());
        for (name, source) in config {
            entries.push(Entry::new(name, source.read(name)?)?);
        }
        Ok(Secrets { entries })
    }

    /// Secrets given directly, for tests and benchmarks.
    pub fn from_values<'a>(
        values: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Secrets, SecretsError> {
        let entries = values
            .into_iter()
            .map(|(name, value)| Entry::new(name, value.as_bytes().to_vec()))
            .collect::<Result<_, _>>()?;
        Ok(Secrets { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The configured names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    fn value(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| &*e.value.0)
    }

    /// Refuses an `[env]` table that would hand a tool a brokered secret's value.
    pub fn check_not_in_env(&self, env: &BTreeMap<String, String>) -> Result<(), SecretsError> {
        for (variable, value) in env {
            if let Some(entry) = self
                .entries
                .iter()
                .find(|e| contains(value.as_bytes(), &e.value.0))
            {
                return Err(SecretsError::GrantedAsEnv {
                    name: entry.name.clone(),
                    variable: variable.clone(),
                });
            }
        }
        Ok(())
    }

    /// The bytes of `template` with its secrets filled in: only for the outgoing request the
    /// policy allowed. `Err` names the first secret that is not configured.
    pub fn render(&self, template: &Template) -> Result<Vec<u8>, String> {
        template.render(|name| self.value(name))
    }

    /// Masks, in place, every brokered value `bytes` holds; returns the names of those found.
    pub fn mask(&self, bytes: &mut [u8]) -> Vec<&str> {
        mask::mask_in_place(self, bytes)
    }

    /// `text` with every brokered value masked, or `None` when it holds none. Values are ASCII,
    /// so masking keeps the text valid UTF-8.
    pub fn mask_text(&self, text: &str) -> Option<(String, Vec<&str>)> {
        // Most text holds no secret: look before copying it.
        if !self
            .entries
            .iter()
            .any(|e| contains(text.as_bytes(), &e.value.0))
        {
            return None;
        }
        let mut bytes = text.as_bytes().to_vec();
        let found = self.mask(&mut bytes);
        if found.is_empty() {
            return None;
        }
        let masked = String::from_utf8(bytes).expect("masking replaces ASCII with ASCII");
        Some((masked, found))
    }

    /// The length of the longest value: how much of a stream must be held back to find a value
    /// split between two chunks.
    fn longest(&self) -> usize {
        self.entries
            .iter()
            .map(|e| e.value.0.len())
            .max()
            .unwrap_or(0)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

fn trim_line_break(mut value: Vec<u8>) -> Vec<u8> {
    if value.ends_with(b"\n") {
        value.pop();
        if value.ends_with(b"\r") {
            value.pop();
        }
    }
    value
}

/// Reads a secret file after checking, on the opened file itself, that nobody but the gateway's
/// user can read it. Symbolic links are followed (orchestrators mount secrets through them);
/// the check applies to the file they lead to.
fn read_private_file(name: &str, path: &Path) -> Result<Vec<u8>, SecretsError> {
    let file_error = |detail: String| SecretsError::File {
        name: name.to_owned(),
        path: path.to_owned(),
        detail,
    };
    let file = std::fs::File::open(path).map_err(|e| file_error(e.to_string()))?;
    let stat = rustix::fs::fstat(&file).map_err(|e| file_error(e.to_string()))?;
    crate::support::fs_trust::check_stat(&stat, crate::support::fs_trust::Expect::Key).map_err(
        |distrust| SecretsError::Exposed {
            name: name.to_owned(),
            path: path.to_owned(),
            detail: distrust.to_string(),
        },
    )?;
    let mut value = Vec::new();
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut value)
        .map_err(|e| file_error(e.to_string()))?;
    if value.len() as u64 > MAX_SECRET_BYTES {
        return Err(file_error(format!(
            "it is larger than {MAX_SECRET_BYTES} bytes"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests;

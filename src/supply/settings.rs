//! The supply chain's settings: the `[supply_chain]` section, signature requirements, and what
//! the supply chain needs of a `[[components]]` entry ([`ComponentSource`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::DEFAULT_PINS_FILE;

/// How signatures, downloads and tool-definition pins are handled (`[supply_chain]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupplyChainConfig {
    /// `permissive` (default): components without a valid signature load, marked unsigned for
    /// policy. `strict`: every component must verify against a requirement, or it never loads.
    pub mode: SupplyMode,
    /// The requirement for components that declare none of their own.
    pub signature: Option<SignatureConfig>,
    /// Tool-definition pins (JSON); default `gatehouse-pins.json` beside the audit log, whose
    /// history it belongs to (see [`SupplyChainConfig::pins_path`]).
    pub pins: Option<PathBuf>,
    /// What a changed tool definition does: `withhold` (default) until accepted, or `allow`
    /// (offered, with `input.tool.definition_changed` set for policy).
    pub on_drift: DriftAction,
    /// Largest component (or bundle) download, in bytes.
    pub max_download_bytes: u64,
    pub download_timeout_secs: u64,
    /// Extra PEM CA certificates trusted for component downloads (a private mirror).
    pub ca_file: Option<PathBuf>,
    /// OCI registries (`host:port`) reached over plain http although they are not on loopback
    /// (a registry inside a trusted network); every other `oci://` registry needs https.
    pub oci_http_registries: Vec<String>,
}

impl Default for SupplyChainConfig {
    fn default() -> Self {
        SupplyChainConfig {
            mode: SupplyMode::default(),
            signature: None,
            pins: None,
            on_drift: DriftAction::default(),
            max_download_bytes: 64 << 20,
            download_timeout_secs: 30,
            ca_file: None,
            oci_http_registries: Vec::new(),
        }
    }
}

impl SupplyChainConfig {
    /// The tool-definition pin file: as configured, else [`DEFAULT_PINS_FILE`] beside the
    /// audit log `audit_log`.
    pub fn pins_path(&self, audit_log: &Path) -> PathBuf {
        self.pins
            .clone()
            .unwrap_or_else(|| audit_log.with_file_name(DEFAULT_PINS_FILE))
    }
}

/// Whether an unsigned component may load (`[supply_chain] mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SupplyMode {
    #[default]
    Permissive,
    Strict,
}

/// What a changed tool definition does (`[supply_chain] on_drift`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftAction {
    #[default]
    Withhold,
    Allow,
}

/// A signature requirement: either a cosign public key, or a keyless (Fulcio certificate)
/// identity checked against a trust root file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureConfig {
    /// PEM public key (`cosign generate-key-pair` writes `cosign.pub`).
    pub key: Option<PathBuf>,
    /// Required certificate identity (SAN: e-mail or URI), for keyless signatures.
    pub identity: Option<String>,
    /// Required OIDC issuer of the certificate, for keyless signatures.
    pub issuer: Option<String>,
    /// A sigstore `trusted_root.json` (Fulcio CAs, CT log keys); read from disk, never fetched.
    pub trust_root: Option<PathBuf>,
}

/// What the supply chain needs of one declared component: where its bytes and its signature
/// bundle are, and what they must be. The declaration itself (`[[components]]`, the
/// `--component` flag) belongs to the config, which lends these parts of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ComponentSource<'a> {
    /// A local component file. Exactly one of `path` and `url` is given.
    pub path: Option<&'a Path>,
    /// An `https://` URL (`http://` only to a loopback address).
    pub url: Option<&'a str>,
    /// Expected `sha256:<hex>` digest; a mismatch refuses the load.
    pub sha256: Option<&'a str>,
    /// The signature this component must carry; overrides `[supply_chain.signature]`.
    pub signature: Option<&'a SignatureConfig>,
    /// The sigstore bundle (path or URL); default: the component's path or URL plus
    /// `.sigstore.json`.
    pub bundle: Option<&'a str>,
}

impl ComponentSource<'_> {
    /// Where the component comes from, as written (path or URL), for names and messages.
    pub fn location(&self) -> String {
        match (self.path, self.url) {
            (Some(path), _) => path.display().to_string(),
            (None, Some(url)) => url.to_owned(),
            (None, None) => "<no path or url>".to_owned(),
        }
    }
}

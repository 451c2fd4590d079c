//! Supply chain: where a component comes from, whether it is the file we expect, who signed it,
//! and whether the tools it offers are still the ones an operator saw.
//!
//! Loading a component goes through [`prepare`] before the runtime ever sees its bytes:
//! fetch (file, URL or OCI registry, size-capped) → digest check → signature check. The bytes that were
//! checked are the bytes that are compiled: nothing is re-read from disk in between.
//! What is and is not verified is documented in `docs/SUPPLY-CHAIN.md`. Policy bundles a fleet
//! pulls go through the same fetch and signature checks ([`policy_bundle`]).

pub mod inspect;
pub mod oci;
pub mod pins;
pub mod policy_bundle;
pub mod settings;
pub mod signature;
pub mod source;

use std::path::PathBuf;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use pins::{DEFAULT_PINS_FILE, PinCheck, PinStore};
pub use settings::{ComponentSource, DriftAction, SignatureConfig, SupplyChainConfig, SupplyMode};
pub use signature::{Requirement, SignatureError, Signer};
pub use source::{Fetched, Fetcher, SourceError};

/// `sha256:<hex>` of some bytes: the digest format used everywhere (config, policy, audit).
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// What the policy and the audit log are told about a component's origin
/// (`input.tool.component.{digest, source, signed, signer}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// `sha256:<hex>` of the bytes that were loaded.
    pub digest: String,
    /// The path or URL the component was declared with.
    pub source: String,
    /// Whether a signature was checked and held.
    pub signed: bool,
    /// Who signed it, when `signed`.
    pub signer: Option<Signer>,
}

/// A component whose bytes passed the digest and signature checks.
#[derive(Debug)]
pub struct Prepared {
    pub bytes: Vec<u8>,
    /// The local file the bytes came from (the download cache for URLs).
    pub local_path: PathBuf,
    pub provenance: Provenance,
    /// Why it is unsigned, when it is and the mode let it load anyway.
    pub unsigned_reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SupplyError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("component {location}: signature check failed: {error}")]
    Signature {
        location: String,
        error: SignatureError,
    },
    #[error(
        "component {location}: unsigned components are refused in strict mode ({reason}); declare a `signature` requirement or switch [supply_chain] mode to permissive"
    )]
    Unsigned { location: String, reason: String },
    #[error("component {location}: {message}")]
    Config { location: String, message: String },
}

/// Fetches, digest-checks and signature-checks one configured component.
///
/// In `strict` mode any missing or failing signature refuses the load. In `permissive` mode a
/// component with no requirement loads unsigned; one *with* a requirement that fails is still
/// refused (a declared requirement is never silently dropped).
pub fn prepare<'a>(
    component: impl Into<ComponentSource<'a>>,
    supply: &SupplyChainConfig,
    fetcher: &Fetcher,
) -> Result<Prepared, SupplyError> {
    let component = component.into();
    let location = component.location();
    let config_error = |message: String| SupplyError::Config {
        location: location.clone(),
        message,
    };
    let origin = source::Origin::of(&component).map_err(config_error)?;
    let fetched = fetcher.fetch(&origin, component.sha256)?;
    let requirement = component
        .signature
        .or(supply.signature.as_ref())
        .map(Requirement::from_config)
        .transpose()
        .map_err(|e| config_error(e.to_string()))?;
    let mut provenance = Provenance {
        digest: fetched.digest.clone(),
        source: location.clone(),
        signed: false,
        signer: None,
    };
    let unsigned_reason = match requirement {
        Some(requirement) => {
            let bundle_origin =
                source::Origin::bundle_of(component, &origin, fetched.resolved.as_deref());
            let signer = fetcher
                .fetch_bundles(&bundle_origin)
                .map_err(|error| SupplyError::Signature {
                    location: location.clone(),
                    error,
                })
                .and_then(|bundles| {
                    signature::verify_any(&fetched.bytes, &bundles, &requirement).map_err(|error| {
                        SupplyError::Signature {
                            location: location.clone(),
                            error,
                        }
                    })
                })?;
            provenance.signed = true;
            provenance.signer = Some(signer);
            None
        }
        None if supply.mode == SupplyMode::Strict => {
            return Err(SupplyError::Unsigned {
                location,
                reason: "no signature requirement is configured for it".into(),
            });
        }
        None => Some("no signature requirement configured".to_owned()),
    };
    Ok(Prepared {
        bytes: fetched.bytes,
        local_path: fetched.local_path,
        provenance,
        unsigned_reason,
    })
}

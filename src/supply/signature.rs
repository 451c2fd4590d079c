//! Signature checks with the `sigstore` crate, offline.
//!
//! - **Key-based** (cosign key pair): the bundle beside the component is a sigstore bundle with
//!   a `messageSignature`, or a legacy cosign bundle (`base64Signature`); the signature must
//!   verify over the component's bytes with the configured public key.
//! - **Keyless** (Fulcio certificate): the bundle is a sigstore bundle, verified by
//!   `sigstore::bundle::verify::Verifier` against a trust root read from a file, with the
//!   certificate's identity and issuer required to match.
//!
//! See `docs/SUPPLY-CHAIN.md` for what the crate checks and what it leaves undone (Rekor
//! inclusion proofs and signed entry timestamps are not verified).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sigstore::bundle::verify::policy::Identity;
use sigstore::bundle::verify::{
    BundleErrorKind, CertificateErrorKind, SignatureErrorKind, VerificationError, Verifier,
};
use sigstore::crypto::{CosignVerificationKey, Signature};
use sigstore::trust::sigstore::SigstoreTrustRoot;

use super::SignatureConfig;

/// What a component must be signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Key {
        key: PathBuf,
    },
    Keyless {
        trust_root: PathBuf,
        identity: String,
        issuer: String,
    },
}

/// Who signed a component, as policy sees it (`input.tool.component.signer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Signer {
    /// A cosign key: `sha256:<hex>` of its DER SubjectPublicKeyInfo.
    Key { key_id: String },
    /// A Fulcio certificate's identity (SAN) and OIDC issuer.
    Keyless { identity: String, issuer: String },
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Key { key_id } => write!(f, "key {key_id}"),
            Signer::Keyless { identity, issuer } => write!(f, "{identity} (issuer {issuer})"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "a signature requirement needs either `key`, or `identity` + `issuer` + `trust_root` ({0})"
    )]
    Requirement(String),
    #[error("no signature bundle at {location}")]
    MissingBundle { location: String },
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot fetch the signature bundle {location}: {message}")]
    Fetch { location: String, message: String },
    #[error("the signature bundle is malformed: {0}")]
    MalformedBundle(String),
    #[error("public key {path} is not a usable PEM public key: {message}")]
    BadKey { path: PathBuf, message: String },
    #[error(
        "the bundle signs {signed}, but the component is {actual}: the component changed after signing"
    )]
    DigestMismatch { signed: String, actual: String },
    #[error(
        "the signature does not verify with key {key_id}: it was made by another key, or over other bytes"
    )]
    WrongKey { key_id: String },
    #[error("trust root {path}: {message}")]
    TrustRoot { path: PathBuf, message: String },
    #[error("certificate identity does not match: {0}")]
    Identity(String),
    #[error("keyless verification failed: {0}")]
    Keyless(String),
    #[error("cannot sign with that key: {0}")]
    SigningKey(String),
}

impl Requirement {
    pub fn from_config(config: &SignatureConfig) -> Result<Requirement, SignatureError> {
        match config {
            SignatureConfig {
                key: Some(key),
                identity: None,
                issuer: None,
                trust_root: None,
            } => Ok(Requirement::Key { key: key.clone() }),
            SignatureConfig {
                key: None,
                identity: Some(identity),
                issuer: Some(issuer),
                trust_root: Some(trust_root),
            } => Ok(Requirement::Keyless {
                trust_root: trust_root.clone(),
                identity: identity.clone(),
                issuer: issuer.clone(),
            }),
            SignatureConfig { key: Some(_), .. } => Err(SignatureError::Requirement(
                "`key` cannot be combined with keyless settings".into(),
            )),
            _ => Err(SignatureError::Requirement(
                "keyless verification needs all of identity, issuer and trust_root".into(),
            )),
        }
    }
}

/// Checks `bundle` (the JSON file beside the component) over `component` against `requirement`.
pub fn verify(
    component: &[u8],
    bundle: &[u8],
    requirement: &Requirement,
) -> Result<Signer, SignatureError> {
    match requirement {
        Requirement::Key { key } => verify_with_key(component, bundle, key),
        Requirement::Keyless {
            trust_root,
            identity,
            issuer,
        } => verify_keyless(component, bundle, trust_root, identity, issuer),
    }
}

/// Signs `bytes` with a cosign private key (PEM: PKCS#8, or cosign's encrypted form with
/// `password`) and returns a sigstore bundle with a message signature, the shape
/// `cosign sign-blob --key … --new-bundle-format` writes and [`verify`] checks (no
/// transparency-log entry: a key-signed bundle is trusted because of the key).
pub fn sign_with_key(
    bytes: &[u8],
    private_pem: &[u8],
    password: Option<&[u8]>,
) -> Result<Vec<u8>, SignatureError> {
    use sigstore::crypto::SigningScheme;
    use sigstore::crypto::signing_key::SigStoreKeyPair;
    let bad = |message: String| SignatureError::SigningKey(message);
    let pair = match password {
        Some(password) => SigStoreKeyPair::from_encrypted_pem(private_pem, password),
        None => SigStoreKeyPair::from_pem(private_pem),
    }
    .map_err(|e| bad(e.to_string()))?;
    let signer = [
        SigningScheme::ECDSA_P256_SHA256_ASN1,
        SigningScheme::ECDSA_P384_SHA384_ASN1,
        SigningScheme::ED25519,
    ]
    .iter()
    .find_map(|scheme| pair.to_sigstore_signer(scheme).ok())
    .ok_or_else(|| bad("not an ECDSA P-256/P-384 or Ed25519 key".into()))?;
    let public = pair.public_key_to_pem().map_err(|e| bad(e.to_string()))?;
    let signature = signer.sign(bytes).map_err(|e| bad(e.to_string()))?;
    let bundle = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "publicKey": {"hint": key_id(&public).map_err(bad)?},
            "tlogEntries": [],
        },
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": BASE64.encode(Sha256::digest(bytes))},
            "signature": BASE64.encode(signature),
        },
    });
    Ok(bundle.to_string().into_bytes())
}

/// Checks the bundles found for a component (a registry may hold several): the first that
/// verifies names the signer; if none does, the first one's error is the answer.
pub fn verify_any(
    component: &[u8],
    bundles: &[Vec<u8>],
    requirement: &Requirement,
) -> Result<Signer, SignatureError> {
    let mut first_error = None;
    for bundle in bundles {
        match verify(component, bundle, requirement) {
            Ok(signer) => return Ok(signer),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| SignatureError::MalformedBundle("no bundle given".into())))
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, SignatureError> {
    std::fs::read(path).map_err(|source| SignatureError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// `sha256:<hex>` of the DER SubjectPublicKeyInfo inside a PEM public key: a stable key id.
pub fn key_id(pem: &str) -> Result<String, String> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = BASE64
        .decode(body.as_bytes())
        .map_err(|e| format!("PEM body is not base64: {e}"))?;
    if der.is_empty() {
        return Err("no PEM block found".into());
    }
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(&der))))
}

fn verify_with_key(component: &[u8], bundle: &[u8], key: &Path) -> Result<Signer, SignatureError> {
    let pem = read("public key", key)?;
    let pem_text = String::from_utf8_lossy(&pem);
    let bad_key = |message: String| SignatureError::BadKey {
        path: key.to_owned(),
        message,
    };
    let key_id = key_id(&pem_text).map_err(bad_key)?;
    let verification_key =
        CosignVerificationKey::try_from_pem(&pem).map_err(|e| bad_key(e.to_string()))?;
    let bundle: Value = serde_json::from_slice(bundle)
        .map_err(|e| SignatureError::MalformedBundle(format!("not JSON: {e}")))?;
    let (signature, signed_digest) = key_bundle_signature(&bundle)?;
    let actual = Sha256::digest(component);
    if let Some(signed) = signed_digest
        && signed != actual.as_slice()
    {
        return Err(SignatureError::DigestMismatch {
            signed: format!("sha256:{}", hex::encode(signed)),
            actual: format!("sha256:{}", hex::encode(actual)),
        });
    }
    verification_key
        .verify_signature(Signature::Raw(&signature), component)
        .map_err(|_| SignatureError::WrongKey {
            key_id: key_id.clone(),
        })?;
    Ok(Signer::Key { key_id })
}

/// The raw signature and, when the bundle states it, the SHA-256 it signs.
fn key_bundle_signature(bundle: &Value) -> Result<(Vec<u8>, Option<Vec<u8>>), SignatureError> {
    let decode = |field: &str, value: Option<&Value>| -> Result<Vec<u8>, SignatureError> {
        let text = value.and_then(Value::as_str).ok_or_else(|| {
            SignatureError::MalformedBundle(format!("`{field}` is missing or not a string"))
        })?;
        BASE64
            .decode(text)
            .map_err(|e| SignatureError::MalformedBundle(format!("`{field}` is not base64: {e}")))
    };
    if let Some(message) = bundle.get("messageSignature") {
        let signature = decode("messageSignature.signature", message.get("signature"))?;
        let digest = match message.get("messageDigest") {
            None => None,
            Some(digest) => {
                let algorithm = digest.get("algorithm").and_then(Value::as_str);
                if algorithm != Some("SHA2_256") {
                    return Err(SignatureError::MalformedBundle(format!(
                        "messageDigest.algorithm is {algorithm:?}; only SHA2_256 is supported"
                    )));
                }
                Some(decode(
                    "messageSignature.messageDigest.digest",
                    digest.get("digest"),
                )?)
            }
        };
        return Ok((signature, digest));
    }
    if bundle.get("base64Signature").is_some() {
        return Ok((
            decode("base64Signature", bundle.get("base64Signature"))?,
            None,
        ));
    }
    Err(SignatureError::MalformedBundle(
        "neither a sigstore bundle with a messageSignature nor a cosign bundle with base64Signature"
            .into(),
    ))
}

fn verify_keyless(
    component: &[u8],
    bundle: &[u8],
    trust_root: &Path,
    identity: &str,
    issuer: &str,
) -> Result<Signer, SignatureError> {
    let root_json = read("trust root", trust_root)?;
    let root_error = |message: String| SignatureError::TrustRoot {
        path: trust_root.to_owned(),
        message,
    };
    let root = SigstoreTrustRoot::from_trusted_root_json_unchecked(&root_json)
        .map_err(|e| root_error(e.to_string()))?;
    let verifier =
        Verifier::new(Default::default(), root).map_err(|e| root_error(e.to_string()))?;
    let bundle: sigstore::bundle::Bundle = serde_json::from_slice(bundle)
        .map_err(|e| SignatureError::MalformedBundle(format!("not a sigstore bundle: {e}")))?;
    let policy = Identity::new(identity, issuer);
    // `verify_digest` does no I/O when `offline` is set, so polling it to completion here is
    // fine in any context (a tokio worker included).
    let result = futures::executor::block_on(verifier.verify_digest(
        Sha256::new_with_prefix(component),
        bundle,
        &policy,
        true,
    ));
    result.map_err(describe_keyless_error)?;
    Ok(Signer::Keyless {
        identity: identity.to_owned(),
        issuer: issuer.to_owned(),
    })
}

/// One specific message per way keyless verification fails.
fn describe_keyless_error(error: VerificationError) -> SignatureError {
    match error {
        VerificationError::Policy(policy) => SignatureError::Identity(policy.to_string()),
        VerificationError::Bundle(BundleErrorKind::BundleProfile(profile)) => {
            SignatureError::MalformedBundle(profile.to_string())
        }
        VerificationError::Bundle(bundle) => SignatureError::MalformedBundle(bundle.to_string()),
        VerificationError::Certificate(CertificateErrorKind::VerificationFailed(e)) => {
            SignatureError::Keyless(format!(
                "the signing certificate does not chain to a CA of the trust root ({e})"
            ))
        }
        VerificationError::Certificate(CertificateErrorKind::Sct(e)) => SignatureError::Keyless(
            format!("the certificate's SCT does not verify with a CT log key of the trust root ({e})"),
        ),
        VerificationError::Certificate(CertificateErrorKind::Expired) => SignatureError::Keyless(
            "the certificate was not valid at the transparency log's integrated time".into(),
        ),
        VerificationError::Certificate(other) => SignatureError::Keyless(other.to_string()),
        VerificationError::Signature(SignatureErrorKind::VerificationFailed(_)) => {
            SignatureError::Keyless(
                "the signature does not match the component: it changed after signing, or the bundle is for another file"
                    .into(),
            )
        }
        VerificationError::Signature(SignatureErrorKind::Transparency) => SignatureError::Keyless(
            "the transparency log entry does not match the signature, certificate and digest".into(),
        ),
        VerificationError::Signature(other) => SignatureError::Keyless(other.to_string()),
        VerificationError::Input(e) => SignatureError::Keyless(e.to_string()),
    }
}

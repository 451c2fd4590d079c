//! Key-based signing as `cosign sign-blob --key … --bundle` does it (new bundle format): a
//! P-256 key pair made with the sigstore crate and a sigstore bundle with a message signature.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sigstore::crypto::{SigStoreSigner, SigningScheme};

pub struct CosignKey {
    pub signer: SigStoreSigner,
    pub public_pem: String,
    /// PKCS#8 PEM, as `gatehouse policy build --key` reads it.
    pub private_pem: String,
}

pub fn cosign_key() -> CosignKey {
    let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .expect("P-256 key generation");
    let pair = signer.to_sigstore_keypair().unwrap();
    let public_pem = pair.public_key_to_pem().unwrap();
    let private_pem = pair.private_key_to_pem().unwrap().to_string();
    CosignKey {
        signer,
        public_pem,
        private_pem,
    }
}

/// A sigstore bundle with a message signature over `bytes` (key-based bundles carry a
/// public-key hint).
pub fn key_bundle(key: &CosignKey, bytes: &[u8]) -> Value {
    let signature = key.signer.sign(bytes).unwrap();
    json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "test"}, "tlogEntries": []},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(Sha256::digest(bytes))},
            "signature": B64.encode(signature),
        },
    })
}

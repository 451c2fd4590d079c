//! TLS client settings the gateway's own clients share (the JWKS fetcher, the fleet's store):
//! the roots they trust and a rustls configuration on an explicitly named provider.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// The bundled WebPKI roots, or only the certificates of `ca_file`.
pub fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    match ca_file {
        None => Ok(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        }),
        Some(path) => pinned_roots(path),
    }
}

/// The CA certificates of a PEM file; an error says why the file is not usable.
pub fn pinned_roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|e| format!("not PEM certificates: {e}"))?;
        roots
            .add(certificate)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("it holds no PEM certificate".to_owned());
    }
    Ok(roots)
}

/// A client configuration trusting `roots`. The provider is named explicitly: with more than
/// one rustls provider compiled into the binary, relying on a process default would panic.
pub fn client_config(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

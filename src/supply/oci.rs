//! Components in OCI registries: `oci://REGISTRY/REPOSITORY:TAG` or `…@sha256:<hex>`.
//!
//! A component is a Wasm OCI artifact, the layout `wkg` and Wassette publish: an image manifest
//! whose config has the media type `application/vnd.wasm.config.v0+json` and whose one layer
//! is the component, `application/wasm`. A pull
//!
//! 1. fetches the manifest (a tag is resolved here; a digest reference must match the manifest
//!    bytes' SHA-256, or the pull is refused),
//! 2. finds exactly one `application/wasm` layer, no larger than the download limit,
//! 3. fetches that blob, bounded as it streams, and refuses it unless its SHA-256 is the
//!    layer's digest.
//!
//! The component's digest is then the layer's — the digest the gateway pins, audits and shows
//! for a component from any source — and the manifest digest the tag resolved to is reported
//! beside it. Registries are reached over https; plain http only on loopback or for a registry
//! `[supply_chain] oci_http_registries` names.
//!
//! oci-client is async; loading is synchronous and runs in and out of an async runtime, so each
//! operation runs on a thread of its own with a small runtime of its own (like the blocking
//! downloads in `source`).

use std::net::IpAddr;
use std::time::Duration;

use futures::TryStreamExt;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

/// The media type of a Wasm component layer.
pub const WASM_LAYER: &str = "application/wasm";
/// The media type of a Wasm artifact's config.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The most a manifest may be (they are a few hundred bytes).
const MAX_MANIFEST_BYTES: usize = 1 << 20;
const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A parsed `oci://` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciReference {
    reference: Reference,
}

impl std::fmt::Display for OciReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oci://{}", self.reference.whole())
    }
}

impl OciReference {
    /// `oci://REGISTRY/REPOSITORY(:TAG|@sha256:HEX)`. The registry must be named (no Docker
    /// Hub default: which registry a component comes from is a security decision).
    pub fn parse(text: &str) -> Result<OciReference, String> {
        let rest = text
            .strip_prefix("oci://")
            .ok_or_else(|| format!("{text}: an OCI reference starts with oci://"))?;
        let registry = rest.split('/').next().unwrap_or_default();
        let named = registry.contains('.') || registry.contains(':') || registry == "localhost";
        if !named || !rest.contains('/') {
            return Err(format!(
                "{text}: name the registry, e.g. oci://ghcr.io/acme/tool:1.0 (there is no default registry)"
            ));
        }
        // No implicit `latest`: which version runs is written down.
        let last = rest.rsplit('/').next().unwrap_or_default();
        if !last.contains(':') && !last.contains('@') {
            return Err(format!("{text}: give a tag (:1.0) or a digest (@sha256:…)"));
        }
        let reference: Reference = rest
            .parse()
            .map_err(|e| format!("{text}: not an OCI reference: {e}"))?;
        Ok(OciReference { reference })
    }

    /// The same repository at `digest` (what a tag resolved to).
    pub fn at_digest(&self, digest: &str) -> OciReference {
        OciReference {
            reference: Reference::with_digest(
                self.reference.registry().to_owned(),
                self.reference.repository().to_owned(),
                digest.to_owned(),
            ),
        }
    }

    /// Whether it names a digest (immutable), not a tag.
    pub fn is_digest(&self) -> bool {
        self.reference.digest().is_some()
    }

    fn registry(&self) -> &str {
        self.reference.registry()
    }
}

/// A component pulled and verified.
#[derive(Debug)]
pub struct Pulled {
    pub bytes: Vec<u8>,
    /// The manifest's digest: what the reference (a tag, maybe) resolved to.
    pub manifest_digest: String,
}

/// How the gateway talks to registries.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    /// Registries (`host:port`) reached over plain http although not on loopback.
    pub http: Vec<String>,
    /// PEM roots trusted besides the system's (`[supply_chain] ca_file`).
    pub ca_pem: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl Registries {
    fn client(&self, reference: &OciReference) -> Result<Client, String> {
        let registry = reference.registry().to_owned();
        let plain = self.http.contains(&registry) || is_loopback(&registry);
        let mut extra_root_certificates = Vec::new();
        if let Some(pem) = &self.ca_pem {
            extra_root_certificates.push(oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data: pem.clone(),
            });
        }
        let config = ClientConfig {
            protocol: if plain {
                ClientProtocol::HttpsExcept(vec![registry])
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates,
            read_timeout: Some(self.timeout),
            connect_timeout: Some(self.timeout.min(Duration::from_secs(10))),
            ..Default::default()
        };
        Client::try_from(config).map_err(|e| format!("cannot set up the registry client: {e}"))
    }

    /// Pulls the component `reference` names, no larger than `max_bytes`.
    pub fn pull(&self, reference: &OciReference, max_bytes: u64) -> Result<Pulled, String> {
        let client = self.client(reference)?;
        run(self.timeout, async {
            let image = &reference.reference;
            let auth = RegistryAuth::Anonymous;
            let (manifest_bytes, _) = client
                .pull_manifest_raw(image, &auth, &MANIFEST_TYPES)
                .await
                .map_err(|e| format!("cannot fetch its manifest: {e}"))?;
            if manifest_bytes.len() > MAX_MANIFEST_BYTES {
                return Err(format!(
                    "its manifest is {} bytes, over {MAX_MANIFEST_BYTES}",
                    manifest_bytes.len()
                ));
            }
            let manifest_digest = sha256(&manifest_bytes);
            if let Some(pinned) = image.digest()
                && pinned != manifest_digest
            {
                return Err(format!(
                    "the registry sent a manifest whose digest is {manifest_digest}, not {pinned}; refusing it"
                ));
            }
            let manifest: OciImageManifest = serde_json::from_slice(&manifest_bytes)
                .map_err(|e| format!("its manifest is not an OCI image manifest: {e}"))?;
            let layer = wasm_layer(&manifest)?;
            if u64::try_from(layer.size).map_or(true, |size| size > max_bytes) {
                return Err(format!(
                    "its component layer is {} bytes, over the limit of {max_bytes} (supply_chain.max_download_bytes)",
                    layer.size
                ));
            }
            let mut stream = client
                .pull_blob_stream(image, layer)
                .await
                .map_err(|e| format!("cannot fetch its component layer: {e}"))?;
            let mut bytes = Vec::new();
            while let Some(chunk) = stream
                .try_next()
                .await
                .map_err(|e| format!("cannot fetch its component layer: {e}"))?
            {
                bytes.extend_from_slice(&chunk);
                if bytes.len() as u64 > max_bytes {
                    return Err(format!(
                        "its component layer is over the limit of {max_bytes} bytes (supply_chain.max_download_bytes)"
                    ));
                }
            }
            let actual = sha256(&bytes);
            if actual != layer.digest {
                return Err(format!(
                    "its component layer's digest is {actual}, not the manifest's {}; refusing it",
                    layer.digest
                ));
            }
            Ok(Pulled {
                bytes,
                manifest_digest,
            })
        })
    }

    /// Publishes `component` at `reference` as a Wasm OCI artifact; returns the manifest's
    /// digest.
    pub fn push(&self, reference: &OciReference, component: &[u8]) -> Result<String, String> {
        let client = self.client(reference)?;
        let layers = [ImageLayer::new(
            component.to_vec(),
            WASM_LAYER.to_owned(),
            None,
        )];
        let config = Config::new(b"{}".to_vec(), WASM_CONFIG.to_owned(), None);
        let manifest = OciImageManifest::build(&layers, &config, None);
        run(self.timeout, async {
            client
                .push(
                    &reference.reference,
                    &layers,
                    config,
                    &RegistryAuth::Anonymous,
                    Some(manifest.clone()),
                )
                .await
                .map_err(|e| format!("cannot push: {e}"))?;
            // The digest of the manifest as the registry stores it, not as we would spell it.
            let (stored, _) = client
                .pull_manifest_raw(
                    &reference.reference,
                    &RegistryAuth::Anonymous,
                    &MANIFEST_TYPES,
                )
                .await
                .map_err(|e| format!("pushed, but cannot read the manifest back: {e}"))?;
            Ok(sha256(&stored))
        })
    }
}

/// The one `application/wasm` layer of a manifest.
fn wasm_layer(manifest: &OciImageManifest) -> Result<&OciDescriptor, String> {
    let mut wasm = manifest
        .layers
        .iter()
        .filter(|layer| layer.media_type == WASM_LAYER);
    match (wasm.next(), wasm.next()) {
        (Some(layer), None) => Ok(layer),
        (None, _) => Err(format!(
            "it is not a Wasm component artifact: no {WASM_LAYER} layer (layers: {})",
            manifest
                .layers
                .iter()
                .map(|l| l.media_type.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        (Some(_), Some(_)) => Err(format!(
            "it has more than one {WASM_LAYER} layer; which one is the component is ambiguous"
        )),
    }
}

/// Runs `work` on a thread of its own with a runtime of its own, within twice `timeout`.
fn run<T: Send>(
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, String>> + Send,
) -> Result<T, String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start a runtime for the registry: {e}"))?;
                runtime.block_on(async {
                    tokio::time::timeout(timeout * 2, work)
                        .await
                        .map_err(|_| format!("the registry did not answer within {timeout:?}"))?
                })
            })
            .join()
            .unwrap_or_else(|_| Err("the registry thread panicked".into()))
    })
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Whether `host:port` names a loopback address.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_their_registry_and_a_tag_or_digest() {
        let tagged = OciReference::parse("oci://127.0.0.1:5000/tools/echo:1.0").unwrap();
        assert_eq!(tagged.to_string(), "oci://127.0.0.1:5000/tools/echo:1.0");
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            tagged.at_digest(&digest).to_string(),
            format!("oci://127.0.0.1:5000/tools/echo@{digest}")
        );
        for (bad, why) in [
            ("oci://tools/echo:1.0", "name the registry"),
            ("oci://echo:1.0", "name the registry"),
            ("oci://ghcr.io/acme/tool", "give a tag"),
            ("https://ghcr.io/acme/tool:1", "starts with oci://"),
            ("oci://ghcr.io/Acme/tool:1", "not an OCI reference"),
        ] {
            let error = OciReference::parse(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn only_loopback_registries_are_plain_http_by_default() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("ghcr.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }
}

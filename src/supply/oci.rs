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
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{
    ImageIndexEntry, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciDescriptor,
    OciImageIndex, OciImageManifest,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use reqwest::header::HeaderValue;
use sha2::{Digest, Sha256};

use crate::support::progress;

/// The media type of a Wasm component layer.
pub const WASM_LAYER: &str = "application/wasm";
/// The media type of a Wasm artifact's config.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The artifact type of a sigstore bundle stored as an OCI referrer, and its layer's media type
/// (what `cosign` attaches with the new bundle format).
pub const SIGSTORE_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The config of an artifact that has none (OCI image spec "empty descriptor").
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// The most a signature bundle may be (they are a few kilobytes).
const MAX_BUNDLE_BYTES: u64 = 1 << 20;
/// The most signature bundles read for one component.
pub const MAX_BUNDLES: usize = 8;
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

    /// The tag under which a registry without the referrers API indexes this manifest's
    /// referrers (`sha256-<hex>`), for a digest reference.
    pub fn referrers_tag(&self) -> Option<String> {
        self.reference
            .digest()
            .map(|digest| digest.replace(':', "-"))
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
        self.pull_layer(reference, (WASM_LAYER, "component layer"), max_bytes, None)?
            .ok_or_else(|| "the registry sent no manifest".into())
    }

    /// Pulls the one layer of media type `layer.0` (described as `layer.1` in messages and
    /// progress) of the artifact `reference` names, no larger than `max_bytes`; `None` if its
    /// manifest digest is `unless_manifest` (nothing changed since, for what is polled).
    pub fn pull_layer(
        &self,
        reference: &OciReference,
        (media_type, what): (&str, &str),
        max_bytes: u64,
        unless_manifest: Option<&str>,
    ) -> Result<Option<Pulled>, String> {
        let client = self.client(reference)?;
        run(self.timeout, async {
            let image = &reference.reference;
            let (manifest_bytes, manifest_digest) = pull_manifest(&client, image).await?;
            if unless_manifest == Some(manifest_digest.as_str()) {
                return Ok(None);
            }
            let manifest: OciImageManifest = serde_json::from_slice(&manifest_bytes)
                .map_err(|e| format!("its manifest is not an OCI image manifest: {e}"))?;
            let layer = single_layer(&manifest, media_type)?;
            let bytes = pull_blob(&client, image, layer, max_bytes, what).await?;
            Ok(Some(Pulled {
                bytes,
                manifest_digest,
            }))
        })
    }

    /// The sigstore bundles stored beside the manifest `subject` (a digest reference): the
    /// referrers whose artifact type is [`SIGSTORE_BUNDLE`], found with the referrers API or,
    /// on a registry without it (distribution 2.x), the referrers tag `sha256-<hex>`. At most
    /// [`MAX_BUNDLES`] are read. Each referrer must name `subject` as its subject, whatever
    /// index listed it. The bundles are not verified here: the signature check vouches for them.
    pub fn signature_bundles(&self, subject: &OciReference) -> Result<Vec<Vec<u8>>, String> {
        let client = self.client(subject)?;
        let subject_digest = subject
            .reference
            .digest()
            .ok_or_else(|| format!("{subject}: referrers are looked up by digest, not by tag"))?
            .to_owned();
        run(self.timeout, async {
            let image = &subject.reference;
            client
                .store_auth_if_needed(image.resolve_registry(), &RegistryAuth::Anonymous)
                .await;
            let index = client
                .pull_referrers(image, Some(SIGSTORE_BUNDLE))
                .await
                .map_err(|e| format!("cannot list its referrers: {e}"))?;
            let mut bundles = Vec::new();
            for entry in index
                .manifests
                .iter()
                .filter(|entry| entry.artifact_type.as_deref() == Some(SIGSTORE_BUNDLE))
                .take(MAX_BUNDLES)
            {
                let at = subject.at_digest(&entry.digest);
                let (bytes, _) = pull_manifest(&client, &at.reference)
                    .await
                    .map_err(|e| format!("referrer {}: {e}", entry.digest))?;
                let manifest: OciImageManifest = serde_json::from_slice(&bytes).map_err(|e| {
                    format!(
                        "referrer {} is not an OCI image manifest: {e}",
                        entry.digest
                    )
                })?;
                if manifest.subject.as_ref().map(|s| s.digest.as_str())
                    != Some(subject_digest.as_str())
                {
                    tracing::warn!(referrer = %entry.digest, subject = %subject, "a listed referrer names another subject; ignored");
                    continue;
                }
                let Some(layer) = manifest
                    .layers
                    .iter()
                    .find(|layer| layer.media_type == SIGSTORE_BUNDLE)
                else {
                    continue;
                };
                bundles.push(
                    pull_blob(&client, image, layer, MAX_BUNDLE_BYTES, "signature bundle").await?,
                );
            }
            Ok(bundles)
        })
    }

    /// Publishes `component` at `reference` as a Wasm OCI artifact, with its signature bundle
    /// attached if given (see [`Registries::push_artifact`]).
    pub fn push(
        &self,
        reference: &OciReference,
        component: &[u8],
        signature: Option<&[u8]>,
    ) -> Result<Pushed, String> {
        self.push_artifact(reference, component, WASM_LAYER, WASM_CONFIG, signature)
    }

    /// Publishes `bytes` as an artifact of one `layer_type` layer and an empty (`{}`) config
    /// of `config_type`, at the tag `reference` names. In this order, so that whoever follows
    /// the tag never sees the artifact without its signature: the blobs, the manifest by its
    /// digest, the signature bundle as a referrer of it (`attach`), then the tag.
    pub fn push_artifact(
        &self,
        reference: &OciReference,
        bytes: &[u8],
        layer_type: &str,
        config_type: &str,
        signature: Option<&[u8]>,
    ) -> Result<Pushed, String> {
        if reference.is_digest() {
            return Err("push to a tag (…:1.0); the digest is the registry's to give".into());
        }
        let client = self.client(reference)?;
        let layer = ImageLayer::new(bytes.to_vec(), layer_type.to_owned(), None);
        let config = Config::new(b"{}".to_vec(), config_type.to_owned(), None);
        let manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
        let manifest_bytes = serde_json::to_vec(&manifest)
            .map_err(|e| format!("cannot encode the manifest: {e}"))?;
        let manifest_digest = sha256(&manifest_bytes);
        let at = reference.at_digest(&manifest_digest);
        run(self.timeout, async {
            client
                .store_auth_if_needed(at.reference.resolve_registry(), &RegistryAuth::Anonymous)
                .await;
            for (data, digest) in [
                (config.data.clone(), config.sha256_digest()),
                (layer.data.clone(), layer.sha256_digest()),
            ] {
                client
                    .push_blob(&at.reference, data, &digest)
                    .await
                    .map_err(|e| format!("cannot push: {e}"))?;
            }
            let manifest_type = HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE);
            client
                .push_manifest_raw(&at.reference, manifest_bytes.clone(), manifest_type.clone())
                .await
                .map_err(|e| format!("cannot push the manifest: {e}"))?;
            let signature_referrer = match signature {
                Some(bundle) => Some(attach(&client, &at, manifest_bytes.len(), bundle).await?),
                None => None,
            };
            client
                .push_manifest_raw(&reference.reference, manifest_bytes, manifest_type)
                .await
                .map_err(|e| format!("cannot tag the manifest: {e}"))?;
            Ok(Pushed {
                manifest_digest,
                signature_referrer,
            })
        })
    }
}

/// What a push published.
#[derive(Debug)]
pub struct Pushed {
    /// The manifest's digest: what a gateway pins.
    pub manifest_digest: String,
    /// The digest of the signature bundle's referrer manifest, if one was attached.
    pub signature_referrer: Option<String>,
}

/// Stores `bundle` as a referrer of the manifest `subject` (a digest reference, `subject_size`
/// bytes): an OCI artifact of type [`SIGSTORE_BUNDLE`] whose `subject` is that manifest, as
/// `cosign` attaches bundles. Registries with the referrers API index it themselves; for the
/// others (distribution 2.x) the referrers tag `sha256-<hex>` is updated too, an index the
/// gateway (and cosign) falls back to. Returns the referrer's manifest digest.
async fn attach(
    client: &Client,
    subject: &OciReference,
    subject_size: usize,
    bundle: &[u8],
) -> Result<String, String> {
    let image = &subject.reference;
    let subject_digest = image
        .digest()
        .ok_or_else(|| format!("{subject}: a bundle is attached to a digest, not a tag"))?
        .to_owned();
    let empty = b"{}".to_vec();
    let empty_digest = sha256(&empty);
    let bundle_digest = sha256(bundle);
    for (bytes, digest) in [(empty, &empty_digest), (bundle.to_vec(), &bundle_digest)] {
        client
            .push_blob(image, bytes, digest)
            .await
            .map_err(|e| format!("cannot push the signature bundle: {e}"))?;
    }
    let descriptor = |media_type: &str, digest: &str, size: usize| OciDescriptor {
        media_type: media_type.to_owned(),
        digest: digest.to_owned(),
        size: i64::try_from(size).unwrap_or(i64::MAX),
        ..Default::default()
    };
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_owned()),
        config: descriptor(EMPTY_CONFIG, &empty_digest, 2),
        layers: vec![descriptor(SIGSTORE_BUNDLE, &bundle_digest, bundle.len())],
        subject: Some(descriptor(
            OCI_IMAGE_MEDIA_TYPE,
            &subject_digest,
            subject_size,
        )),
        artifact_type: Some(SIGSTORE_BUNDLE.to_owned()),
        annotations: None,
    };
    let manifest_bytes = serde_json::to_vec(&manifest)
        .map_err(|e| format!("cannot encode the referrer manifest: {e}"))?;
    let manifest_digest = sha256(&manifest_bytes);
    client
        .push_manifest_raw(
            &subject.at_digest(&manifest_digest).reference,
            manifest_bytes.clone(),
            HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
        )
        .await
        .map_err(|e| format!("cannot push the signature bundle's manifest: {e}"))?;
    add_to_referrers_tag(
        client,
        subject,
        &subject_digest,
        ImageIndexEntry {
            media_type: OCI_IMAGE_MEDIA_TYPE.to_owned(),
            digest: manifest_digest.clone(),
            size: i64::try_from(manifest_bytes.len()).unwrap_or(i64::MAX),
            platform: None,
            annotations: None,
            artifact_type: Some(SIGSTORE_BUNDLE.to_owned()),
        },
    )
    .await?;
    Ok(manifest_digest)
}

/// The one `media_type` layer of a manifest.
fn single_layer<'a>(
    manifest: &'a OciImageManifest,
    media_type: &str,
) -> Result<&'a OciDescriptor, String> {
    let mut found = manifest
        .layers
        .iter()
        .filter(|layer| layer.media_type == media_type);
    match (found.next(), found.next()) {
        (Some(layer), None) => Ok(layer),
        (None, _) => Err(format!(
            "it is not the artifact expected: no {media_type} layer (layers: {})",
            manifest
                .layers
                .iter()
                .map(|l| l.media_type.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        (Some(_), Some(_)) => Err(format!(
            "it has more than one {media_type} layer; which one to take is ambiguous"
        )),
    }
}

/// Fetches a manifest, size-capped; a digest reference must be the manifest bytes' SHA-256.
/// Returns the bytes and their digest.
async fn pull_manifest(client: &Client, image: &Reference) -> Result<(Vec<u8>, String), String> {
    let (bytes, _) = client
        .pull_manifest_raw(image, &RegistryAuth::Anonymous, &MANIFEST_TYPES)
        .await
        .map_err(|e| format!("cannot fetch its manifest: {e}"))?;
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(format!(
            "its manifest is {} bytes, over {MAX_MANIFEST_BYTES}",
            bytes.len()
        ));
    }
    let digest = sha256(&bytes);
    if let Some(pinned) = image.digest()
        && pinned != digest
    {
        return Err(format!(
            "the registry sent a manifest whose digest is {digest}, not {pinned}; refusing it"
        ));
    }
    Ok((bytes.to_vec(), digest))
}

/// Fetches the blob `layer` describes, no larger than `max_bytes` (declared and while it
/// streams), refused unless its SHA-256 is the descriptor's digest.
async fn pull_blob(
    client: &Client,
    image: &Reference,
    layer: &OciDescriptor,
    max_bytes: u64,
    what: &str,
) -> Result<Vec<u8>, String> {
    if u64::try_from(layer.size).map_or(true, |size| size > max_bytes) {
        return Err(format!(
            "its {what} is {} bytes, over the limit of {max_bytes} (supply_chain.max_download_bytes)",
            layer.size
        ));
    }
    let mut stream = client
        .pull_blob_stream(image, layer)
        .await
        .map_err(|e| format!("cannot fetch its {what}: {e}"))?;
    let mut progress = progress::task(&format!("pulling {what}"), u64::try_from(layer.size).ok());
    let mut bytes = Vec::new();
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| format!("cannot fetch its {what}: {e}"))?
    {
        bytes.extend_from_slice(&chunk);
        progress.advance(chunk.len() as u64);
        if bytes.len() as u64 > max_bytes {
            return Err(format!(
                "its {what} is over the limit of {max_bytes} bytes (supply_chain.max_download_bytes)"
            ));
        }
    }
    let actual = sha256(&bytes);
    if actual != layer.digest {
        return Err(format!(
            "its {what}'s digest is {actual}, not the manifest's {}; refusing it",
            layer.digest
        ));
    }
    Ok(bytes)
}

/// Adds `entry` to the referrers index under the tag `sha256-<hex>` of `subject_digest` (the
/// OCI referrers tag schema), creating it if there is none.
async fn add_to_referrers_tag(
    client: &Client,
    subject: &OciReference,
    subject_digest: &str,
    entry: ImageIndexEntry,
) -> Result<(), String> {
    let tag = Reference::with_tag(
        subject.registry().to_owned(),
        subject.reference.repository().to_owned(),
        subject_digest.replace(':', "-"),
    );
    let mut index = match client
        .pull_manifest_raw(
            &tag,
            &RegistryAuth::Anonymous,
            &[OCI_IMAGE_INDEX_MEDIA_TYPE],
        )
        .await
    {
        Ok((bytes, _)) => serde_json::from_slice::<OciImageIndex>(&bytes)
            .map_err(|e| format!("the referrers tag {tag} is not an OCI image index: {e}"))?,
        Err(OciDistributionError::ImageManifestNotFoundError(_))
        | Err(OciDistributionError::RegistryError { .. })
        | Err(OciDistributionError::ServerError { code: 404, .. }) => OciImageIndex {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_INDEX_MEDIA_TYPE.to_owned()),
            manifests: Vec::new(),
            artifact_type: None,
            annotations: None,
        },
        Err(e) => return Err(format!("cannot read the referrers tag {tag}: {e}")),
    };
    if index.manifests.iter().any(|m| m.digest == entry.digest) {
        return Ok(());
    }
    index.manifests.push(entry);
    let bytes = serde_json::to_vec(&index)
        .map_err(|e| format!("cannot encode the referrers index: {e}"))?;
    client
        .push_manifest_raw(
            &tag,
            bytes,
            HeaderValue::from_static(OCI_IMAGE_INDEX_MEDIA_TYPE),
        )
        .await
        .map_err(|e| format!("cannot update the referrers tag {tag}: {e}"))?;
    Ok(())
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

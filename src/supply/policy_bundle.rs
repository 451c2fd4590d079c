//! Policy bundles as signed archives, so a fleet of gateways runs one policy.
//!
//! - [`pack`] makes the archive `gatehouse policy build` writes: a gzipped tar of the bundle's
//!   files in sorted order with fixed metadata (mtime 0, uid/gid 0, mode 0644), so the same
//!   files always make the same bytes and the same digest.
//! - [`Subscription`] is a gateway's `[policy] bundle_url`: an https:// URL polled with
//!   `If-None-Match`, or an `oci://` reference whose manifest digest plays the entity tag.
//!   A new archive's signature is checked — with the `[supply_chain]` requirement, exactly as
//!   for components, its bundle beside it (`URL.sigstore.json`, or a referrer in the
//!   registry) — *before* a byte of it is unpacked. It is then unpacked (regular files only,
//!   relative paths, bounded) into a directory of its own, and [`Subscription::activate`]
//!   points the serving directory at it and lets the caller's reload (the policy store's
//!   compile-and-test gate) decide; a refused bundle is pointed away from again.
//!
//! This module knows archives, signatures and directories, not Rego: the gate is the caller's.

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::oci::{OciReference, Pulled};
use super::sha256_digest;
use super::signature::{self, Requirement, SignatureError, Signer};
use super::source::{Download, Fetcher, Origin};
use crate::support::fs_trust;

/// The media type of a policy bundle's layer in a registry (OPA's bundle layer type).
pub const BUNDLE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The media type of a policy bundle artifact's (empty) config.
pub const BUNDLE_CONFIG: &str = "application/vnd.gatehouse.policy.config.v1+json";
/// Most files in an archive, and most bytes once unpacked: a bundle is a few Rego files.
const MAX_ENTRIES: usize = 10_000;
const MAX_UNPACKED_BYTES: u64 = 64 << 20;
/// The symbolic link the policy store reads, pointing at the bundle serving now.
const CURRENT: &str = "current";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot write the archive: {0}")]
    Pack(std::io::Error),
    #[error("the policy bundle archive is malformed: {0}")]
    Malformed(String),
    #[error("cannot fetch the policy bundle {location}: {message}")]
    Fetch { location: String, message: String },
    #[error("policy bundle {location}: signature check failed: {error}")]
    Signature {
        location: String,
        error: SignatureError,
    },
    #[error("policy bundle directory {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy bundle {digest} refused: {reason}")]
    Refused { digest: String, reason: String },
    #[error("[policy] bundle_url: {0}")]
    Config(String),
}

/// The reproducible archive of `files` (bundle-relative path, bytes).
pub fn pack(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, BundleError> {
    let mut sorted: Vec<_> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    // A fixed gzip header too: no name, mtime 0, the same OS byte everywhere.
    let gzip = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    let mut tar = tar::Builder::new(gzip);
    tar.mode(tar::HeaderMode::Deterministic);
    for (path, bytes) in sorted {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        tar.append_data(&mut header, path, bytes.as_slice())
            .map_err(BundleError::Pack)?;
    }
    let gzip: GzEncoder<Vec<u8>> = tar.into_inner().map_err(BundleError::Pack)?;
    gzip.finish().map_err(BundleError::Pack)
}

/// Unpacks `archive` into the new directory `into`: regular files at relative paths only
/// (no links, devices, absolute paths or `..`), at most 10,000 files and 64 MiB.
pub fn unpack(archive: &[u8], into: &Path) -> Result<(), BundleError> {
    let state = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BundleError::State { path, source }
    };
    std::fs::create_dir(into).map_err(state(into))?;
    let mut tar = tar::Archive::new(GzDecoder::new(archive));
    let malformed = |e: std::io::Error| BundleError::Malformed(e.to_string());
    let (mut count, mut total) = (0usize, 0u64);
    for entry in tar.entries().map_err(malformed)? {
        let mut entry = entry.map_err(malformed)?;
        let path = entry.path().map_err(malformed)?.into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Regular => {}
            tar::EntryType::Directory => continue,
            other => {
                return Err(BundleError::Malformed(format!(
                    "{} is a {other:?} entry; a bundle holds regular files only",
                    path.display()
                )));
            }
        }
        if path.as_os_str().is_empty()
            || !path.components().all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(BundleError::Malformed(format!(
                "{} is not a relative path inside the bundle",
                path.display()
            )));
        }
        count += 1;
        total = total.saturating_add(entry.size());
        if count > MAX_ENTRIES || total > MAX_UNPACKED_BYTES {
            return Err(BundleError::Malformed(format!(
                "it holds more than {MAX_ENTRIES} files or {MAX_UNPACKED_BYTES} bytes"
            )));
        }
        let target = into.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(state(parent))?;
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(MAX_UNPACKED_BYTES)
            .read_to_end(&mut bytes)
            .map_err(malformed)?;
        std::fs::write(&target, bytes).map_err(state(&target))?;
    }
    Ok(())
}

/// A verified archive, unpacked and ready to be activated.
#[derive(Debug)]
pub struct Unpacked {
    /// `sha256:<hex>` of the archive.
    pub digest: String,
    pub dir: PathBuf,
    pub signer: Signer,
}

/// Where a fleet's bundle is published.
#[derive(Debug)]
enum Remote {
    Url(reqwest::Url),
    Oci(OciReference),
}

/// A gateway's subscription to its fleet's policy bundle (`[policy] bundle_url`).
#[derive(Debug)]
pub struct Subscription {
    remote: Remote,
    location: String,
    requirement: Requirement,
    fetcher: Fetcher,
    state_dir: PathBuf,
    /// Held for the subscription's life: one gateway per state directory.
    _lock: File,
    /// The last archive seen: its entity tag (https) or manifest digest (oci), and digest.
    seen: Option<(Option<String>, String)>,
}

impl Subscription {
    /// Subscribes to `location` (https:// or oci://), verified with `requirement`, fetched
    /// with `fetcher`'s limits and roots, unpacked under `state_dir` (created mode 0700;
    /// refused if others may write in it; locked, so two gateways cannot swap one another's
    /// bundle).
    pub fn new(
        location: &str,
        requirement: Requirement,
        fetcher: Fetcher,
        state_dir: PathBuf,
    ) -> Result<Subscription, BundleError> {
        let remote = match Origin::parse(location).map_err(BundleError::Config)? {
            Origin::Url(url) => Remote::Url(url),
            Origin::Oci(reference) => Remote::Oci(reference),
            Origin::File(_) => {
                return Err(BundleError::Config(format!(
                    "{location}: give an https:// URL or an oci:// reference (a local bundle is `dir`)"
                )));
            }
        };
        let state = |source| BundleError::State {
            path: state_dir.clone(),
            source,
        };
        // Verified bundles are read back from here: only the gateway's user may write in it.
        fs_trust::open_dir(&state_dir, fs_trust::Expect::Directory).map_err(|error| {
            let why = match error {
                fs_trust::OpenError::Untrusted(distrust) => format!(
                    "it is not trusted: {distrust} (give [policy] bundle_state_dir a directory only the gateway's user can write)"
                ),
                fs_trust::OpenError::Io(message) => message,
            };
            BundleError::Config(format!("bundle_state_dir {}: {why}", state_dir.display()))
        })?;
        let lock = File::create(state_dir.join(".lock")).map_err(state)?;
        lock.try_lock().map_err(|_| {
            BundleError::Config(format!(
                "another gateway uses {}; give each gateway its own [policy] bundle_state_dir",
                state_dir.display()
            ))
        })?;
        Ok(Subscription {
            remote,
            location: location.to_owned(),
            requirement,
            fetcher,
            state_dir,
            _lock: lock,
            seen: None,
        })
    }

    /// The directory the policy store reads: a link to the bundle serving now.
    pub fn serving_dir(&self) -> PathBuf {
        self.state_dir.join(CURRENT)
    }

    /// Fetches the bundle unless it is unchanged since the last poll; a new one is verified
    /// and unpacked. `Ok(None)`: nothing new. An archive refused once is not fetched again
    /// until it changes (its entity tag is remembered); a network failure or a missing
    /// signature is retried.
    pub fn poll(&mut self) -> Result<Option<Unpacked>, BundleError> {
        let validator = self.seen.as_ref().and_then(|(tag, _)| tag.as_deref());
        let location = self.location.clone();
        let fetch_error = |message: String| BundleError::Fetch {
            location: location.clone(),
            message,
        };
        let (bytes, tag, signature_origin) = match &self.remote {
            Remote::Url(url) => match self
                .fetcher
                .download_if_changed(url, validator)
                .map_err(fetch_error)?
            {
                Download::NotModified => return Ok(None),
                Download::Body { bytes, etag } => {
                    let mut beside = url.clone();
                    beside.set_path(&format!("{}.sigstore.json", url.path()));
                    (bytes, etag, Origin::Url(beside))
                }
            },
            Remote::Oci(reference) => match self.pull(reference, validator).map_err(fetch_error)? {
                None => return Ok(None),
                Some(pulled) => {
                    let at = reference.at_digest(&pulled.manifest_digest);
                    (pulled.bytes, Some(pulled.manifest_digest), Origin::Oci(at))
                }
            },
        };
        let digest = sha256_digest(&bytes);
        if self.seen.as_ref().is_some_and(|(_, seen)| *seen == digest) {
            self.seen = Some((tag, digest));
            return Ok(None);
        }
        // Verified before anything reads the archive. A signature that cannot be fetched or
        // is not there yet (being published) is looked for again at the next poll; an archive
        // whose signature does not verify is not fetched again until it changes.
        let bundles = self
            .fetcher
            .fetch_bundles(&Ok(signature_origin))
            .map_err(|error| BundleError::Signature {
                location: location.clone(),
                error,
            });
        if let Err(BundleError::Signature {
            error: SignatureError::Fetch { .. } | SignatureError::MissingBundle { .. },
            ..
        }) = &bundles
        {
            return bundles.map(|_| None);
        }
        self.seen = Some((tag, digest.clone()));
        let signer =
            signature::verify_any(&bytes, &bundles?, &self.requirement).map_err(|error| {
                BundleError::Signature {
                    location: format!("{location} ({digest})"),
                    error,
                }
            })?;
        let dir = self.state_dir.join(format!(
            "{}.{}",
            digest.replace(':', "-"),
            std::process::id()
        ));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| BundleError::State {
                path: dir.clone(),
                source,
            })?;
        }
        unpack(&bytes, &dir)?;
        tracing::info!(bundle = %location, %digest, %signer, "policy bundle fetched and its signature verified");
        Ok(Some(Unpacked {
            digest,
            dir,
            signer,
        }))
    }

    fn pull(
        &self,
        reference: &OciReference,
        unless: Option<&str>,
    ) -> Result<Option<Pulled>, String> {
        self.fetcher.registries()?.pull_layer(
            reference,
            (BUNDLE_LAYER, "policy bundle"),
            self.fetcher.max_bytes(),
            unless,
        )
    }

    /// Points the serving directory at `new` and runs `reload` (the compile-and-test gate);
    /// if it refuses, the link is pointed back at the previous bundle (which the store never
    /// stopped serving) and `new` is removed. On success the previous bundle is removed.
    pub fn activate(
        &self,
        new: Unpacked,
        reload: impl FnOnce() -> Result<String, String>,
    ) -> Result<String, BundleError> {
        let link = self.serving_dir();
        let previous = std::fs::read_link(&link).ok();
        self.point_at(&new.dir)?;
        match reload() {
            Ok(revision) => {
                if let Some(previous) = previous.filter(|p| *p != new.dir) {
                    let _ = std::fs::remove_dir_all(previous);
                }
                Ok(revision)
            }
            Err(reason) => {
                if let Some(previous) = &previous {
                    self.point_at(previous)?;
                }
                let _ = std::fs::remove_dir_all(&new.dir);
                Err(BundleError::Refused {
                    digest: new.digest,
                    reason,
                })
            }
        }
    }

    /// Replaces the link atomically (a new link renamed over it).
    fn point_at(&self, dir: &Path) -> Result<(), BundleError> {
        let link = self.serving_dir();
        let next = self
            .state_dir
            .join(format!(".{CURRENT}.{}", std::process::id()));
        let _ = std::fs::remove_file(&next);
        std::os::unix::fs::symlink(dir, &next)
            .and_then(|()| std::fs::rename(&next, &link))
            .map_err(|source| BundleError::State { path: link, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<(String, Vec<u8>)> {
        vec![
            ("z/last.rego".into(), b"package z\n".to_vec()),
            ("data.json".into(), b"{}".to_vec()),
            ("call.rego".into(), b"package gatehouse.call\n".to_vec()),
        ]
    }

    #[test]
    fn the_same_files_make_the_same_archive_whatever_their_order() {
        let mut reversed = files();
        reversed.reverse();
        assert_eq!(pack(&files()).unwrap(), pack(&reversed).unwrap());
        let dir = tempfile::tempdir().unwrap();
        unpack(&pack(&files()).unwrap(), &dir.path().join("b")).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("b/z/last.rego")).unwrap(),
            b"package z\n"
        );
    }

    #[test]
    fn a_refused_bundle_is_pointed_away_from_and_one_gateway_holds_a_directory() {
        let state = tempfile::tempdir().unwrap();
        let subscribe = || {
            Subscription::new(
                "https://127.0.0.1:9/bundle.tar.gz",
                Requirement::Key {
                    key: "fleet.pub".into(),
                },
                Fetcher::new(&Default::default(), None),
                state.path().to_owned(),
            )
        };
        let subscription = subscribe().unwrap();
        let error = subscribe().unwrap_err().to_string();
        assert!(error.contains("another gateway uses"), "{error}");
        // A directory others may write in is not one to read verified bundles back from.
        let open = state.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let error = Subscription::new(
            "https://127.0.0.1:9/bundle.tar.gz",
            Requirement::Key {
                key: "fleet.pub".into(),
            },
            Fetcher::new(&Default::default(), None),
            open,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("writable by group or others"), "{error}");
        let unpacked = |name: &str| {
            let dir = state.path().join(name);
            unpack(&pack(&files()).unwrap(), &dir).unwrap();
            Unpacked {
                digest: format!("sha256:{name}"),
                dir,
                signer: Signer::Key { key_id: "k".into() },
            }
        };
        subscription
            .activate(unpacked("one"), || Ok("r1".into()))
            .unwrap();
        let refused = subscription
            .activate(unpacked("two"), || Err("bundle tests failed".into()))
            .unwrap_err();
        assert!(refused.to_string().contains("bundle tests failed"));
        let serving = subscription.serving_dir();
        assert_eq!(
            std::fs::read_link(&serving).unwrap(),
            state.path().join("one")
        );
        assert!(!state.path().join("two").exists());
        // Accepted: the link moves and the previous bundle is removed.
        subscription
            .activate(unpacked("three"), || Ok("r3".into()))
            .unwrap();
        assert_eq!(
            std::fs::read_link(&serving).unwrap(),
            state.path().join("three")
        );
        assert!(!state.path().join("one").exists());
    }

    #[test]
    fn links_and_escaping_paths_are_refused() {
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        tar.append_link(&mut header, "call.rego", "/etc/passwd")
            .unwrap();
        let archive = tar.into_inner().unwrap().finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let error = unpack(&archive, &dir.path().join("x")).unwrap_err();
        assert!(error.to_string().contains("regular files only"), "{error}");

        // `..` cannot be written with tar::Builder's checks, so the header is made by hand.
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..12].copy_from_slice(b"../escape.re");
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(1);
        header.set_cksum();
        let mut raw = header.as_bytes().to_vec();
        raw.extend_from_slice(&[b'x'; 512]);
        raw.extend_from_slice(&[0; 1024]);
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        let error = unpack(&gz.finish().unwrap(), &dir.path().join("y")).unwrap_err();
        assert!(error.to_string().contains("not a relative path"), "{error}");
        assert!(!dir.path().join("escape.re").exists());
    }
}

//! Getting a component's bytes: from a file, downloaded from a URL or pulled from an OCI
//! registry (`oci`) with a size cap and a timeout, its digest checked before anything else
//! looks at it, and cached by digest.
//!
//! `https://` is the only scheme for real downloads; `http://` is accepted only for loopback
//! addresses (tests, a local mirror).

use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::oci::{OciReference, Registries, SIGSTORE_BUNDLE};
use super::{ComponentSource, SignatureError, SupplyChainConfig, sha256_digest};

/// Where some bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Url(reqwest::Url),
    Oci(OciReference),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Url(url) => write!(f, "{url}"),
            Origin::Oci(reference) => write!(f, "{reference}"),
        }
    }
}

impl Origin {
    /// The component's own origin, from its `path` or `url`.
    pub fn of(component: &ComponentSource) -> Result<Origin, String> {
        match (component.path, component.url) {
            (Some(path), None) => Ok(Origin::File(path.to_owned())),
            (None, Some(url)) => Origin::parse_url(url),
            (Some(_), Some(_)) => Err("give either `path` or `url`, not both".into()),
            (None, None) => Err("a component needs a `path` or a `url`".into()),
        }
    }

    /// A path or URL as written in a config file or on the command line.
    pub fn parse(text: &str) -> Result<Origin, String> {
        if text.contains("://") {
            Origin::parse_url(text)
        } else {
            Ok(Origin::File(PathBuf::from(text)))
        }
    }

    fn parse_url(text: &str) -> Result<Origin, String> {
        if text.starts_with("oci://") {
            return OciReference::parse(text).map(Origin::Oci);
        }
        let url = reqwest::Url::parse(text).map_err(|e| format!("invalid URL {text:?}: {e}"))?;
        check_url(&url)?;
        Ok(Origin::Url(url))
    }

    /// Where the component's signature bundle is: as configured, else beside the component
    /// (`<path or URL>.sigstore.json`; for a registry, the bundles attached to the manifest
    /// it resolved to, `resolved`).
    pub fn bundle_of<'a>(
        component: impl Into<ComponentSource<'a>>,
        origin: &Origin,
        resolved: Option<&str>,
    ) -> Result<Origin, String> {
        if let Some(bundle) = component.into().bundle {
            return Origin::parse(bundle);
        }
        Ok(match origin {
            Origin::File(path) => {
                let mut name = path.as_os_str().to_owned();
                name.push(".sigstore.json");
                Origin::File(PathBuf::from(name))
            }
            Origin::Url(url) => {
                let mut url = url.clone();
                url.set_path(&format!("{}.sigstore.json", url.path()));
                Origin::Url(url)
            }
            Origin::Oci(reference) => match resolved {
                Some(resolved) => Origin::Oci(OciReference::parse(resolved)?),
                None if reference.is_digest() => origin.clone(),
                None => {
                    return Err(format!(
                        "{reference}: the tag was not resolved, so its signature cannot be looked up"
                    ));
                }
            },
        })
    }
}

/// `https` anywhere; `http` only to loopback; nothing else.
fn check_url(url: &reqwest::Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = url.host_str().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback =
                host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "{url}: plain http:// is only allowed to a loopback address; use https://"
                ))
            }
        }
        other => Err(format!("{url}: unsupported URL scheme {other:?}")),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read component {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot download component {url}: {message}")]
    Download { url: String, message: String },
    #[error("cannot pull component {reference}: {message}")]
    Pull { reference: String, message: String },
    #[error(
        "component {location}: digest mismatch: expected {expected}, got {actual}; refusing to load"
    )]
    DigestMismatch {
        location: String,
        expected: String,
        actual: String,
    },
}

/// Bytes that passed the digest check.
#[derive(Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub digest: String,
    /// The file they were read from, or the cache file a download was stored in.
    pub local_path: PathBuf,
    /// For a pull from a registry: the reference at the manifest digest it resolved to.
    pub resolved: Option<String>,
}

/// Reads files and downloads URLs within the configured limits.
#[derive(Debug, Clone)]
pub struct Fetcher {
    max_bytes: u64,
    timeout: Duration,
    ca_file: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    oci_http_registries: Vec<String>,
}

impl Fetcher {
    pub fn new(config: &SupplyChainConfig, cache_dir: Option<PathBuf>) -> Fetcher {
        Fetcher {
            max_bytes: config.max_download_bytes,
            timeout: Duration::from_secs(config.download_timeout_secs),
            ca_file: config.ca_file.clone(),
            cache_dir: cache_dir.map(|d| d.join("downloads")),
            oci_http_registries: config.oci_http_registries.clone(),
        }
    }

    /// The same limits, trusting the PEM roots in `ca_file` instead (`None`: the system's).
    pub fn with_ca_file(mut self, ca_file: Option<PathBuf>) -> Fetcher {
        self.ca_file = ca_file;
        self
    }

    /// The largest download it accepts, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// How this fetcher reaches OCI registries.
    pub fn registries(&self) -> Result<Registries, String> {
        let ca_pem = self
            .ca_file
            .as_ref()
            .map(|file| {
                std::fs::read(file)
                    .map_err(|e| format!("cannot read ca_file {}: {e}", file.display()))
            })
            .transpose()?;
        Ok(Registries {
            http: self.oci_http_registries.clone(),
            ca_pem,
            timeout: self.timeout,
        })
    }

    /// The component's bytes, refused unless they match `expected` (`sha256:<hex>`) if given.
    pub fn fetch(&self, origin: &Origin, expected: Option<&str>) -> Result<Fetched, SourceError> {
        let expected = expected.map(normalize_digest);
        // A tag is resolved on every load, even when its pinned bytes are cached: that is how a
        // tag moved to another component is noticed.
        let immutable = match origin {
            Origin::File(_) => false,
            Origin::Url(_) => true,
            Origin::Oci(reference) => reference.is_digest(),
        };
        if let (true, Some(expected)) = (immutable, &expected)
            && let Some(cached) = self.cached(expected)
        {
            return Ok(cached);
        }
        let mut resolved = None;
        let (bytes, local_path) = match origin {
            Origin::File(path) => {
                let bytes = std::fs::read(path).map_err(|error| SourceError::Read {
                    path: path.clone(),
                    error,
                })?;
                (bytes, path.clone())
            }
            Origin::Url(url) => {
                let bytes = self
                    .download(url)
                    .map_err(|message| SourceError::Download {
                        url: url.to_string(),
                        message,
                    })?;
                (bytes, PathBuf::new())
            }
            Origin::Oci(reference) => {
                let pulled = self
                    .registries()
                    .and_then(|registries| registries.pull(reference, self.max_bytes))
                    .map_err(|message| SourceError::Pull {
                        reference: reference.to_string(),
                        message,
                    })?;
                let at = reference.at_digest(&pulled.manifest_digest);
                tracing::info!(%reference, resolved = %at, "pulled a component from its registry");
                resolved = Some(at.to_string());
                (pulled.bytes, PathBuf::new())
            }
        };
        let digest = sha256_digest(&bytes);
        if let Some(expected) = expected
            && expected != digest
        {
            let location = match &resolved {
                Some(resolved) => format!("{origin} (which now resolves to {resolved})"),
                None => origin.to_string(),
            };
            return Err(SourceError::DigestMismatch {
                location,
                expected,
                actual: digest,
            });
        }
        let local_path = match origin {
            Origin::File(_) => local_path,
            Origin::Url(_) | Origin::Oci(_) => self.store(&digest, &bytes).unwrap_or_default(),
        };
        Ok(Fetched {
            bytes,
            digest,
            local_path,
            resolved,
        })
    }

    /// The signature bundles found at `origin` (no digest: the signature check is what vouches
    /// for them): the one file or URL, or for a registry manifest the sigstore bundles attached
    /// to it. None found is [`SignatureError::MissingBundle`], naming where it looked.
    pub fn fetch_bundles(
        &self,
        origin: &Result<Origin, String>,
    ) -> Result<Vec<Vec<u8>>, SignatureError> {
        let origin = origin
            .as_ref()
            .map_err(|message| SignatureError::MalformedBundle(message.clone()))?;
        match origin {
            Origin::File(path) => match std::fs::read(path) {
                Ok(bytes) => Ok(vec![bytes]),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(SignatureError::MissingBundle {
                        location: path.display().to_string(),
                    })
                }
                Err(source) => Err(SignatureError::Read {
                    what: "signature bundle",
                    path: path.clone(),
                    source,
                }),
            },
            Origin::Url(url) => match self.download(url) {
                Ok(bytes) => Ok(vec![bytes]),
                Err(message) if message.starts_with("HTTP 404") => {
                    Err(SignatureError::MissingBundle {
                        location: url.to_string(),
                    })
                }
                Err(message) => Err(SignatureError::Fetch {
                    location: url.to_string(),
                    message,
                }),
            },
            Origin::Oci(reference) => {
                let bundles = self
                    .registries()
                    .and_then(|registries| registries.signature_bundles(reference))
                    .map_err(|message| SignatureError::Fetch {
                        location: reference.to_string(),
                        message,
                    })?;
                if bundles.is_empty() {
                    return Err(SignatureError::MissingBundle {
                        location: format!(
                            "{reference}: no referrer of artifact type {SIGSTORE_BUNDLE} (looked up with the referrers API, then the referrers tag {})",
                            reference.referrers_tag().unwrap_or_default()
                        ),
                    });
                }
                Ok(bundles)
            }
        }
    }

    fn cached(&self, digest: &str) -> Option<Fetched> {
        let path = self.cache_path(digest)?;
        let bytes = std::fs::read(&path).ok()?;
        // The cache is only a shortcut: its content is checked like a fresh download.
        (sha256_digest(&bytes) == digest).then(|| Fetched {
            bytes,
            digest: digest.to_owned(),
            local_path: path,
            resolved: None,
        })
    }

    fn cache_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        Some(self.cache_dir.as_ref()?.join(format!("{hex}.wasm")))
    }

    fn store(&self, digest: &str, bytes: &[u8]) -> Option<PathBuf> {
        let path = self.cache_path(digest)?;
        let dir = path.parent()?;
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            let tmp = dir.join(format!(".{}.tmp", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &path)
        });
        match written {
            Ok(()) => Some(path),
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "cannot cache a downloaded component");
                None
            }
        }
    }

    /// Downloads on a thread of its own: reqwest's blocking client must not run (or be
    /// dropped) on an async executor's thread, and loading is called from both contexts.
    fn download(&self, url: &reqwest::Url) -> Result<Vec<u8>, String> {
        match self.download_if_changed(url, None)? {
            Download::Body { bytes, .. } => Ok(bytes),
            Download::NotModified => Err("HTTP 304 without a validator".into()),
        }
    }

    /// Downloads `url` unless it still has the entity tag `etag` (a conditional GET with
    /// `If-None-Match`, for what is polled), within the same limits as [`Fetcher::fetch`].
    pub fn download_if_changed(
        &self,
        url: &reqwest::Url,
        etag: Option<&str>,
    ) -> Result<Download, String> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| self.download_here(url, etag))
                .join()
                .unwrap_or_else(|_| Err("the download thread panicked".into()))
        })
    }

    fn download_here(&self, url: &reqwest::Url, etag: Option<&str>) -> Result<Download, String> {
        check_url(url)?;
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                // Follow a few redirects, never to a scheme or host we would refuse directly.
                if attempt.previous().len() >= 5 {
                    attempt.error("too many redirects")
                } else if let Err(message) = check_url(attempt.url()) {
                    attempt.error(message)
                } else {
                    attempt.follow()
                }
            }));
        if let Some(ca_file) = &self.ca_file {
            let pem = std::fs::read(ca_file)
                .map_err(|e| format!("cannot read ca_file {}: {e}", ca_file.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("ca_file {}: {e}", ca_file.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let mut request = client.get(url.clone());
        if let Some(etag) = etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let response = request.send().map_err(|e| with_causes(&e))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(Download::NotModified);
        }
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        if let Some(length) = response.content_length()
            && length > self.max_bytes
        {
            return Err(format!(
                "it is {length} bytes, over the limit of {} (supply_chain.max_download_bytes)",
                self.max_bytes
            ));
        }
        let mut bytes = Vec::new();
        response
            .take(self.max_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(format!(
                "it is over the limit of {} bytes (supply_chain.max_download_bytes)",
                self.max_bytes
            ));
        }
        Ok(Download::Body { bytes, etag })
    }
}

/// What a conditional download got.
#[derive(Debug)]
pub enum Download {
    /// The resource still has the entity tag that was given.
    NotModified,
    /// Its bytes, and its entity tag if the server sent one.
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
    },
}

/// An error and its causes on one line (reqwest's own message leaves out why a request failed).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let next_text = next.to_string();
        if !text.contains(&next_text) {
            text = format!("{text}: {next_text}");
        }
        cause = next.source();
    }
    text
}

/// `sha256:<lowercase hex>`, whether or not the prefix was written.
pub fn normalize_digest(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("sha256:{}", hex.to_ascii_lowercase())
}

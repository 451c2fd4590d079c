//! The identity provider's public keys by `kid`, and where they come from: a JWKS file, watched
//! and reloaded when it changes, or a JWKS https URL, fetched and refreshed
//! ([`super::jwks_url`]).
//!
//! Only keys a token can name and that cannot be confused with a shared secret are kept: each
//! needs a `kid`, and symmetric (`oct`) keys are dropped, so no JWKS can make an HMAC key out of
//! published material.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::jwks_url::{DEFAULT_REFRESH_SECONDS, JwksUrl, REFRESH_SECONDS, UrlKeys};
use super::jwt::{JwtConfigError, JwtSettings, asymmetric_algorithm};
use crate::support::watch::{FileWatcher, watch_files};

/// One usable public key of a JWKS.
pub(super) struct Key {
    pub decoding: DecodingKey,
    /// The JWK's own `alg`, when it pins one.
    pub algorithm: Option<Algorithm>,
}

/// The usable keys of one JWKS document, by `kid`.
pub(super) type KeySet = HashMap<String, Key>;

/// The key set in use. A new set replaces the old one whole, so a validation sees either.
#[derive(Default)]
pub(super) struct CurrentKeys(RwLock<Arc<KeySet>>);

impl CurrentKeys {
    pub fn get(&self) -> Arc<KeySet> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, keys: KeySet) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
    }
}

/// Where `[auth.jwt]` says the keys are, checked before anything is read or fetched.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum KeyLocation<'a> {
    File(&'a Path),
    Url {
        url: &'a JwksUrl,
        ca_file: Option<&'a Path>,
        refresh: Duration,
    },
}

impl<'a> KeyLocation<'a> {
    /// Exactly one of `jwks_file` and `jwks_url`; the fetch settings only with the URL, where
    /// they mean something.
    pub fn of(settings: &'a JwtSettings) -> Result<KeyLocation<'a>, JwtConfigError> {
        match (&settings.jwks_file, &settings.jwks_url) {
            (Some(path), None) => {
                if settings.jwks_ca_file.is_some() || settings.jwks_refresh_seconds.is_some() {
                    return Err(JwtConfigError::UrlOnly);
                }
                Ok(KeyLocation::File(path))
            }
            (None, Some(url)) => {
                let seconds = settings
                    .jwks_refresh_seconds
                    .unwrap_or(DEFAULT_REFRESH_SECONDS);
                if !REFRESH_SECONDS.contains(&seconds) {
                    return Err(JwtConfigError::Refresh(seconds));
                }
                Ok(KeyLocation::Url {
                    url,
                    ca_file: settings.jwks_ca_file.as_deref(),
                    refresh: Duration::from_secs(seconds),
                })
            }
            _ => Err(JwtConfigError::KeySource),
        }
    }
}

/// The keys tokens are checked against, kept current by a file watcher or a refresher.
pub(super) enum KeySource {
    File {
        keys: Arc<CurrentKeys>,
        _watcher: FileWatcher,
    },
    Url(UrlKeys),
}

impl KeySource {
    /// Reads (or fetches) the keys once, failing if that fails, and keeps them current from
    /// then on.
    pub async fn open(location: KeyLocation<'_>) -> Result<KeySource, JwtConfigError> {
        match location {
            KeyLocation::File(path) => open_file(path.to_owned()),
            KeyLocation::Url {
                url,
                ca_file,
                refresh,
            } => Ok(KeySource::Url(UrlKeys::start(url, ca_file, refresh).await?)),
        }
    }

    pub fn keys(&self) -> Arc<KeySet> {
        match self {
            KeySource::File { keys, .. } => keys.get(),
            KeySource::Url(url) => url.keys(),
        }
    }

    /// The keys after a token named a `kid` not among them: a URL source may fetch again (at
    /// a bounded rate); a file is already current.
    pub async fn after_unknown_key(&self) -> Arc<KeySet> {
        match self {
            KeySource::File { keys, .. } => keys.get(),
            KeySource::Url(url) => url.after_unknown_key().await,
        }
    }
}

/// A file that becomes unreadable or invalid empties the key set (every token is refused)
/// until it is fixed: the operator replaced it, so the old keys are not meant to live on.
fn open_file(path: PathBuf) -> Result<KeySource, JwtConfigError> {
    let load = |path: &Path| {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        parse_jwks(&bytes, &path.display().to_string())
    };
    let keys = Arc::new(CurrentKeys::default());
    keys.replace(load(&path).map_err(|detail| JwtConfigError::JwksFile {
        path: path.clone(),
        detail,
    })?);
    let watcher = watch_files("jwks-watch", vec![path.clone()], {
        let keys = keys.clone();
        move || {
            let loaded = load(&path).unwrap_or_else(|error| {
                tracing::error!(%error, path = %path.display(), "JWKS reload failed: refusing every JWT until the file is fixed");
                HashMap::new()
            });
            tracing::info!(keys = loaded.len(), path = %path.display(), "JWKS reloaded");
            keys.replace(loaded);
        }
    })?;
    Ok(KeySource::File {
        keys,
        _watcher: watcher,
    })
}

/// The usable keys of a JWKS document from `origin` (a path or URL, for the logs). Keys
/// without a `kid`, symmetric keys and keys `jsonwebtoken` cannot use are skipped (and
/// logged): a token can only name a key by its `kid`.
pub(super) fn parse_jwks(bytes: &[u8], origin: &str) -> Result<KeySet, String> {
    let set: JwkSet = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a JWKS document ({{\"keys\": [...]}}): {e}"))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            tracing::warn!(origin, "JWKS key without `kid` ignored");
            continue;
        };
        match usable_key(jwk) {
            Ok(key) => {
                keys.insert(kid, key);
            }
            Err(reason) => tracing::warn!(%kid, reason, origin, "JWKS key ignored"),
        }
    }
    Ok(keys)
}

fn usable_key(jwk: &Jwk) -> Result<Key, &'static str> {
    let decoding = DecodingKey::from_jwk(jwk).map_err(|_| "not a usable public key")?;
    if decoding.family() == jsonwebtoken::AlgorithmFamily::Hmac {
        return Err("symmetric keys are never accepted");
    }
    let algorithm = match jwk.common.key_algorithm {
        None => None,
        Some(pinned) => Some(
            // `KeyAlgorithm`'s Display is the JWA name (`RS256`, `EdDSA`).
            asymmetric_algorithm(&pinned.to_string()).ok_or("its `alg` is not accepted")?,
        ),
    };
    Ok(Key {
        decoding,
        algorithm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(file: bool, url: bool) -> JwtSettings {
        JwtSettings {
            jwks_file: file.then(|| PathBuf::from("jwks.json")),
            jwks_url: url
                .then(|| JwksUrl::try_from("https://idp.example/jwks.json".to_owned()).unwrap()),
            ..JwtSettings::default()
        }
    }

    #[test]
    fn exactly_one_key_location_is_required() {
        for (file, url) in [(false, false), (true, true)] {
            assert!(
                matches!(
                    KeyLocation::of(&settings(file, url)),
                    Err(JwtConfigError::KeySource)
                ),
                "file {file}, url {url}"
            );
        }
        assert!(matches!(
            KeyLocation::of(&settings(true, false)),
            Ok(KeyLocation::File(_))
        ));
        let url = settings(false, true);
        let Ok(KeyLocation::Url { refresh, .. }) = KeyLocation::of(&url) else {
            panic!("a URL location");
        };
        assert_eq!(refresh, Duration::from_secs(DEFAULT_REFRESH_SECONDS));
    }

    #[test]
    fn fetch_settings_need_a_url_and_a_bounded_interval() {
        let mut file = settings(true, false);
        file.jwks_refresh_seconds = Some(60);
        assert!(matches!(
            KeyLocation::of(&file),
            Err(JwtConfigError::UrlOnly)
        ));
        let mut url = settings(false, true);
        for seconds in [0, REFRESH_SECONDS.start() - 1, REFRESH_SECONDS.end() + 1] {
            url.jwks_refresh_seconds = Some(seconds);
            assert!(
                matches!(KeyLocation::of(&url), Err(JwtConfigError::Refresh(s)) if s == seconds),
                "{seconds}"
            );
        }
    }

    #[test]
    fn symmetric_and_unnamed_keys_are_dropped() {
        let jwks = br#"{"keys": [
            {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]}"#;
        let keys = parse_jwks(jwks, "test").unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["ed"]);
        let Err(error) = parse_jwks(b"[]", "test") else {
            panic!("an array is not a JWKS");
        };
        assert!(error.contains("not a JWKS"), "{error}");
    }
}

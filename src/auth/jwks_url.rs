//! Keys fetched from the identity provider's JWKS https URL: once at start (the gateway does
//! not start without them), again every `jwks_refresh_seconds`, and again when a token names a
//! `kid` the cached set lacks (a rotation at the provider), at most once per
//! [`UNKNOWN_KEY_COOLDOWN`] however many such tokens arrive, so tokens with made-up `kid`s
//! cannot make the gateway hammer its provider.
//!
//! A fetch that fails (network, status, size, not a JWKS) keeps the last good key set and is
//! logged: an unreachable provider must not lock every caller out. A fetched document is the
//! provider's word, so keys it no longer lists stop working. Trust for the TLS connection is
//! either the bundled WebPKI roots (as for tools' outgoing HTTPS) or, with `jwks_ca_file`,
//! only the roots in that file: whoever can answer for the URL decides every caller's
//! identity, so a private provider's CA is pinned rather than added to the public ones.

use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::tls;
#[cfg(test)]
use crate::support::tls::pinned_roots;

use super::jwks::{CurrentKeys, KeySet, parse_jwks};
use super::jwt::JwtConfigError;

/// `jwks_refresh_seconds` when unset.
pub const DEFAULT_REFRESH_SECONDS: u64 = 300;
/// The refresh intervals a configuration may set: not a busy loop, at least daily.
pub const REFRESH_SECONDS: RangeInclusive<u64> = 5..=86_400;
/// The least time between two fetches for unknown `kid`s.
pub const UNKNOWN_KEY_COOLDOWN: Duration = Duration::from_secs(10);
/// The largest JWKS document accepted; real ones are a few kilobytes.
pub const MAX_JWKS_BYTES: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// For the whole fetch, body included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// `jwks_url`: an `https://` URL without credentials (it is named in logs and errors).
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct JwksUrl(reqwest::Url);

impl TryFrom<String> for JwksUrl {
    type Error = String;

    fn try_from(text: String) -> Result<JwksUrl, String> {
        let url = reqwest::Url::parse(&text)
            .map_err(|e| format!("jwks_url {text:?} is not a URL: {e}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("jwks_url must not carry credentials (user:password@)".to_owned());
        }
        if url.scheme() != "https" {
            return Err(format!(
                "jwks_url {text:?} must be an https:// URL: the keys decide who every caller is"
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("jwks_url {text:?} names no host"));
        }
        Ok(JwksUrl(url))
    }
}

impl std::fmt::Display for JwksUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl std::fmt::Debug for JwksUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.0.as_str(), f)
    }
}

/// The fetched keys and the task refreshing them, which ends when this is dropped.
pub(super) struct UrlKeys {
    fetcher: Arc<Fetcher>,
    refresher: tokio::task::AbortHandle,
}

impl Drop for UrlKeys {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

struct Fetcher {
    url: JwksUrl,
    client: reqwest::Client,
    keys: CurrentKeys,
    /// Held for the length of a fetch, so fetches never overlap.
    fetches: tokio::sync::Mutex<FetchTimes>,
}

/// When fetches began.
#[derive(Default)]
struct FetchTimes {
    last: Option<Instant>,
    last_for_unknown_key: Option<Instant>,
}

impl UrlKeys {
    /// Fetches the keys, failing with the URL and the reason if that fails, and refreshes
    /// them every `refresh` from then on.
    pub async fn start(
        url: &JwksUrl,
        ca_file: Option<&Path>,
        refresh: Duration,
    ) -> Result<UrlKeys, JwtConfigError> {
        let fetcher = Arc::new(Fetcher {
            url: url.clone(),
            client: client(ca_file)?,
            keys: CurrentKeys::default(),
            fetches: tokio::sync::Mutex::new(FetchTimes {
                last: Some(Instant::now()),
                last_for_unknown_key: None,
            }),
        });
        let keys = fetcher
            .fetch()
            .await
            .map_err(|detail| JwtConfigError::JwksUrl {
                url: url.to_string(),
                detail,
            })?;
        tracing::info!(keys = keys.len(), %url, "JWKS fetched");
        fetcher.keys.replace(keys);
        let refresher = tokio::spawn({
            let fetcher = fetcher.clone();
            async move {
                let start = tokio::time::Instant::now() + refresh;
                let mut ticks = tokio::time::interval_at(start, refresh);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let mut times = fetcher.fetches.lock().await;
                    times.last = Some(Instant::now());
                    fetcher.fetch_and_keep("scheduled").await;
                }
            }
        })
        .abort_handle();
        Ok(UrlKeys { fetcher, refresher })
    }

    pub fn keys(&self) -> Arc<KeySet> {
        self.fetcher.keys.get()
    }

    /// Fetches again unless a fetch began since this was asked (tokens arriving together
    /// share one) or one for an unknown key began less than [`UNKNOWN_KEY_COOLDOWN`] ago.
    pub async fn after_unknown_key(&self) -> Arc<KeySet> {
        let asked = Instant::now();
        let fetcher = &*self.fetcher;
        let mut times = fetcher.fetches.lock().await;
        let shared = times.last.is_some_and(|began| began >= asked);
        let cooling = times
            .last_for_unknown_key
            .is_some_and(|began| began.elapsed() < UNKNOWN_KEY_COOLDOWN);
        if !shared && !cooling {
            let now = Instant::now();
            times.last = Some(now);
            times.last_for_unknown_key = Some(now);
            fetcher.fetch_and_keep("a token names an unknown key").await;
        }
        drop(times);
        fetcher.keys.get()
    }
}

impl Fetcher {
    /// The caller holds `fetches`. Never logs a token: only the URL, the count and the error.
    async fn fetch_and_keep(&self, reason: &'static str) {
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), url = %self.url, reason, "JWKS refreshed");
                self.keys.replace(keys);
            }
            Err(error) => tracing::warn!(
                url = %self.url, %error, reason,
                "JWKS refresh failed: keeping the last good keys"
            ),
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let describe = |error: reqwest::Error| error_chain(&error.without_url());
        let mut response = self
            .client
            .get(self.url.0.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(describe)?;
        let status = response.status();
        if status.is_redirection() {
            return Err(format!(
                "HTTP {} (redirects are not followed: configure the final URL)",
                status.as_u16()
            ));
        }
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        let too_large = || format!("the response is larger than {MAX_JWKS_BYTES} bytes");
        if response
            .content_length()
            .is_some_and(|length| length > MAX_JWKS_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body, self.url.0.as_str())
    }
}

/// An https-only client that follows no redirect, trusting the WebPKI roots or only the
/// certificates of `ca_file`.
fn client(ca_file: Option<&Path>) -> Result<reqwest::Client, JwtConfigError> {
    let roots = tls::roots(ca_file).map_err(|detail| JwtConfigError::CaFile {
        path: ca_file.unwrap_or(Path::new("(none)")).to_owned(),
        detail,
    })?;
    let tls = tls::client_config(roots);
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| JwtConfigError::CaFile {
            path: ca_file.unwrap_or(Path::new("(none)")).to_owned(),
            detail: error_chain(&e),
        })
}

/// An error and its causes, `: `-joined: reqwest's own text alone says only "error sending
/// request".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_without_credentials_are_accepted() {
        for (url, says) in [
            ("http://idp.example/jwks.json", "must be an https:// URL"),
            ("file:///etc/jwks.json", "must be an https:// URL"),
            ("idp.example/jwks.json", "is not a URL"),
            ("https://user:pw@idp.example/jwks.json", "credentials"),
        ] {
            let error = JwksUrl::try_from(url.to_owned()).unwrap_err();
            assert!(error.contains(says), "{url}: {error}");
            assert!(!error.contains("pw@"), "{url}: {error}");
        }
        let url = JwksUrl::try_from("https://idp.example/.well-known/jwks.json".to_owned());
        assert_eq!(
            url.unwrap().to_string(),
            "https://idp.example/.well-known/jwks.json"
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not pem").unwrap();
        assert!(
            pinned_roots(&path)
                .unwrap_err()
                .contains("no PEM certificate")
        );
        assert!(pinned_roots(&dir.path().join("missing.pem")).is_err());
    }
}

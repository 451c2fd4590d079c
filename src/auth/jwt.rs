//! JWT bearer tokens (OAuth 2.1 access tokens) from the organisation's identity provider,
//! checked against the provider's public keys: a JWKS file reloaded when it changes, or a JWKS
//! https URL fetched at start and refreshed (periodically, and on an unknown `kid` at a bounded
//! rate): [`super::jwks`].
//!
//! The JOSE work (signature, `exp`/`nbf`, `iss`, `aud`) is `jsonwebtoken`'s; this module
//! decides which key and which algorithm may be used, so that no token chooses them itself:
//! the key comes from the JWKS by the token's `kid`, the algorithm must be on the configured
//! allow-list AND of the key's family. Symmetric (`oct`) keys in a JWKS are ignored, and HMAC
//! and `none` cannot be configured, so a token signed with HS256 over a published public key
//! (key confusion) never verifies.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwks::{Key, KeyLocation, KeySource};
use super::jwks_url::{JwksUrl, REFRESH_SECONDS};
use super::{AuthMethod, AuthenticatedPrincipal};

/// `[auth.jwt]`: where the keys are and what a token must say.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// A JWKS document (`{"keys": [...]}`) holding the identity provider's public keys.
    pub jwks_file: Option<PathBuf>,
    /// Or the https URL the identity provider publishes it at.
    pub jwks_url: Option<JwksUrl>,
    /// With `jwks_url`: the only CA certificates (PEM) trusted for it, instead of the WebPKI
    /// roots; for a private identity provider.
    pub jwks_ca_file: Option<PathBuf>,
    /// With `jwks_url`: how often the keys are fetched again (default 300).
    pub jwks_refresh_seconds: Option<u64>,
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud` (one of the token's audiences).
    pub audience: String,
    /// The claim that names the principal (a string).
    pub principal_claim: String,
    /// Accepted signature algorithms. Only asymmetric ones can be configured.
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_seconds: u64,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            jwks_file: None,
            jwks_url: None,
            jwks_ca_file: None,
            jwks_refresh_seconds: None,
            issuer: String::new(),
            audience: String::new(),
            principal_claim: "sub".to_owned(),
            algorithms: ["RS256", "PS256", "ES256", "EdDSA"]
                .map(str::to_owned)
                .into(),
            leeway_seconds: 30,
        }
    }
}

/// The leeway a configuration may set at most: more would let expired tokens live on.
pub const MAX_LEEWAY_SECONDS: u64 = 300;

/// `[auth.jwt]` cannot be used as written.
#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    #[error("[auth.jwt] needs {0}")]
    Missing(&'static str),
    #[error(
        "[auth.jwt] algorithm {0:?} is not accepted: use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA (HMAC and `none` are never accepted)"
    )]
    Algorithm(String),
    #[error("[auth.jwt] leeway_seconds = {0} is more than the {MAX_LEEWAY_SECONDS} allowed")]
    Leeway(u64),
    #[error(
        "[auth.jwt] needs exactly one of jwks_file = \"path/to/jwks.json\" and jwks_url = \"https://…\""
    )]
    KeySource,
    #[error("[auth.jwt] jwks_ca_file and jwks_refresh_seconds only apply with jwks_url")]
    UrlOnly,
    #[error(
        "[auth.jwt] jwks_refresh_seconds = {0} is outside {min}..={max}",
        min = REFRESH_SECONDS.start(),
        max = REFRESH_SECONDS.end()
    )]
    Refresh(u64),
    #[error("cannot read the JWKS file {}: {detail}", path.display())]
    JwksFile { path: PathBuf, detail: String },
    #[error(
        "cannot fetch the JWKS from {url}: {detail} (the gateway does not start without its identity provider's keys: check the URL, the network and jwks_ca_file)"
    )]
    JwksUrl { url: String, detail: String },
    #[error("cannot use jwks_ca_file {}: {detail}", path.display())]
    CaFile { path: PathBuf, detail: String },
    #[error(transparent)]
    Watch(#[from] crate::support::watch::WatchError),
}

/// Why a token was refused. The text is safe to send back and to record: it never contains
/// the token or any of its claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not allowed")]
    AlgorithmNotAllowed,
    #[error("the token names no `kid` or an unknown key")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not yet valid")]
    NotYetValid,
    #[error("the token was issued in the future")]
    IssuedInFuture,
    #[error("the token has the wrong issuer")]
    WrongIssuer,
    #[error("the token has the wrong audience")]
    WrongAudience,
    #[error("the token lacks a required claim")]
    MissingClaim,
    #[error("the token's principal claim is missing or not a string")]
    NoPrincipal,
}

/// Validates bearer JWTs. Cheap to clone; clones share the key set and what keeps it current.
#[derive(Clone)]
pub struct JwtValidator {
    keys: Arc<KeySource>,
    settings: Arc<Checks>,
}

/// The parts of the settings each validation reads.
struct Checks {
    issuer: String,
    audience: String,
    principal_claim: String,
    algorithms: Vec<Algorithm>,
    leeway: u64,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

impl JwtValidator {
    /// Reads the JWKS file and watches it, or fetches the JWKS URL and refreshes it; fails if
    /// the settings are unusable or the first read or fetch fails. A file that becomes
    /// unreadable or invalid later empties the key set (every token is refused) until it is
    /// fixed; a URL whose refresh fails keeps the last good keys.
    pub async fn new(settings: &JwtSettings) -> Result<JwtValidator, JwtConfigError> {
        let checks = Checks::from_settings(settings)?;
        let keys = KeySource::open(KeyLocation::of(settings)?).await?;
        Ok(JwtValidator {
            keys: Arc::new(keys),
            settings: Arc::new(checks),
        })
    }

    /// The configured issuer, for the protected-resource metadata.
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// Verifies `token` and names its principal. The claims returned are the whole verified
    /// claim set. Awaits a refresh of the keys only for a `kid` not among them.
    pub async fn validate(&self, token: &str) -> Result<AuthenticatedPrincipal, TokenError> {
        let (algorithm, kid) = read_header(token)?;
        if !self.settings.algorithms.contains(&algorithm) {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        let kid = kid.ok_or(TokenError::UnknownKey)?;
        let mut keys = self.keys.keys();
        if !keys.contains_key(&kid) {
            keys = self.keys.after_unknown_key().await;
        }
        let key = keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        self.verify(token, algorithm, key)
    }

    fn verify(
        &self,
        token: &str,
        algorithm: Algorithm,
        key: &Key,
    ) -> Result<AuthenticatedPrincipal, TokenError> {
        let checks = &*self.settings;
        // The algorithm must suit the key: its family, and the JWK's own `alg` if it has one.
        if key.decoding.family() != algorithm.family()
            || key.algorithm.is_some_and(|pinned| pinned != algorithm)
        {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        let mut validation = Validation::new(algorithm);
        validation.leeway = checks.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[&checks.issuer]);
        validation.set_audience(&[&checks.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|error| token_error(error.kind()))?;
        let claims = data.claims;
        if let Some(iat) = claims.get("iat") {
            let iat = iat.as_u64().ok_or(TokenError::Malformed)?;
            if iat > jsonwebtoken::get_current_timestamp() + checks.leeway {
                return Err(TokenError::IssuedInFuture);
            }
        }
        let principal = claims
            .get(&checks.principal_claim)
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .ok_or(TokenError::NoPrincipal)?
            .to_owned();
        Ok(AuthenticatedPrincipal {
            principal,
            authenticated: true,
            auth: AuthMethod::Jwt,
            claims,
        })
    }
}

impl Checks {
    fn from_settings(settings: &JwtSettings) -> Result<Checks, JwtConfigError> {
        if settings.issuer.is_empty() {
            return Err(JwtConfigError::Missing("issuer = \"https://idp.example\""));
        }
        if settings.audience.is_empty() {
            return Err(JwtConfigError::Missing("audience = \"gatehouse\""));
        }
        if settings.algorithms.is_empty() {
            return Err(JwtConfigError::Missing(
                "at least one entry in `algorithms`",
            ));
        }
        if settings.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(JwtConfigError::Leeway(settings.leeway_seconds));
        }
        let algorithms = settings
            .algorithms
            .iter()
            .map(|name| {
                asymmetric_algorithm(name).ok_or_else(|| JwtConfigError::Algorithm(name.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Checks {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            principal_claim: settings.principal_claim.clone(),
            algorithms,
            leeway: settings.leeway_seconds,
        })
    }
}

/// `name` as an asymmetric signature algorithm; `None` for HMAC, `none` and unknown names.
pub(super) fn asymmetric_algorithm(name: &str) -> Option<Algorithm> {
    let algorithm: Algorithm = name.parse().ok()?;
    (algorithm.family() != jsonwebtoken::AlgorithmFamily::Hmac).then_some(algorithm)
}

/// Whether a bearer value has the shape of a JWS compact serialization (three base64url
/// segments), the rule that sends it to the JWT validator rather than to the API keys.
pub fn looks_like_jwt(value: &str) -> bool {
    let segments: Vec<&str> = value.split('.').collect();
    segments.len() == 3
        && segments[..2].iter().all(|s| !s.is_empty())
        && segments.iter().all(|s| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The header's `alg` as an accepted algorithm, and its `kid`. Read by hand, once, to name
/// the reason: a `none` or HMAC token is refused as "algorithm not allowed", not as "malformed".
fn read_header(token: &str) -> Result<(Algorithm, Option<String>), TokenError> {
    let header = token.split('.').next().ok_or(TokenError::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    let name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(TokenError::Malformed)?;
    let algorithm = asymmetric_algorithm(name).ok_or(TokenError::AlgorithmNotAllowed)?;
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(TokenError::Malformed),
    };
    Ok((algorithm, kid))
}

fn token_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(_) => TokenError::MissingClaim,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            TokenError::AlgorithmNotAllowed
        }
        _ => TokenError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(algorithms: &[&str]) -> JwtSettings {
        JwtSettings {
            issuer: "https://idp.example".into(),
            audience: "gatehouse".into(),
            algorithms: algorithms.iter().map(|a| (*a).to_owned()).collect(),
            ..JwtSettings::default()
        }
    }

    #[test]
    fn hmac_and_none_cannot_be_configured() {
        for algorithm in ["HS256", "HS512", "none", "rs256"] {
            let error = Checks::from_settings(&settings(&[algorithm])).err();
            assert!(
                matches!(&error, Some(JwtConfigError::Algorithm(a)) if a == algorithm),
                "{algorithm}: {error:?}"
            );
        }
        assert!(Checks::from_settings(&settings(&["RS256", "ES256", "EdDSA"])).is_ok());
    }

    #[test]
    fn issuer_audience_and_a_small_leeway_are_required() {
        let mut s = settings(&["RS256"]);
        s.leeway_seconds = MAX_LEEWAY_SECONDS + 1;
        assert!(matches!(
            Checks::from_settings(&s),
            Err(JwtConfigError::Leeway(_))
        ));
        s = settings(&["RS256"]);
        s.issuer.clear();
        assert!(matches!(
            Checks::from_settings(&s),
            Err(JwtConfigError::Missing(_))
        ));
    }

    #[test]
    fn only_three_base64url_segments_look_like_a_jwt() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(
            looks_like_jwt("eyJh.eyJz."),
            "an empty signature is still a JWT (alg none)"
        );
        for key in ["0123abcdef", "a.b", "a.b.c.d", ".b.c", "a b.c.d", "a.b+c.d"] {
            assert!(!looks_like_jwt(key), "{key}");
        }
    }
}

//! The JWT settings and their config-facing types, each checked when the
//! configuration is parsed.

use std::fmt;
use std::num::NonZeroU64;
use std::time::Instant;

use hyper::Uri;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

/// The URL of a JWKS document, `http://` or `https://` with a host; checked
/// when the configuration is parsed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct JwksUrl {
    pub(super) uri: Uri,
}

/// A `jwks_url` that is not an `http://` or `https://` URL.
#[derive(Debug, thiserror::Error)]
#[error(
    "jwks_url `{0}` must be an http:// or https:// URL with a host, e.g. https://login.tmprl.cloud/.well-known/jwks.json"
)]
pub struct InvalidJwksUrl(String);

impl JwksUrl {
    /// Parses and checks a JWKS URL.
    pub fn parse(text: &str) -> Result<Self, InvalidJwksUrl> {
        let invalid = || InvalidJwksUrl(text.to_owned());
        let uri: Uri = text.trim().parse().map_err(|_| invalid())?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        let host_ok = uri.host().is_some_and(|h| !h.is_empty());
        // Credentials in the URL would end up in logs and error details.
        let has_userinfo = uri.authority().is_some_and(|a| a.as_str().contains('@'));
        if !scheme_ok || !host_ok || has_userinfo {
            return Err(invalid());
        }
        Ok(Self { uri })
    }

    /// Whether the JWKS is fetched over plain HTTP (fine on loopback, a risk
    /// elsewhere: whoever can change the answer can mint tokens).
    pub fn is_plain_http(&self) -> bool {
        self.uri.scheme_str() == Some("http")
    }
}

impl TryFrom<String> for JwksUrl {
    type Error = InvalidJwksUrl;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl fmt::Display for JwksUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.uri, f)
    }
}

impl fmt::Debug for JwksUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JwksUrl({})", self.uri)
    }
}

/// An accepted token signature algorithm. Only asymmetric algorithms exist
/// here: a symmetric one would let anyone holding the (public) JWKS sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (Temporal Cloud, most providers).
    #[serde(rename = "RS256")]
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    #[serde(rename = "RS384")]
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    #[serde(rename = "RS512")]
    Rs512,
    /// RSASSA-PSS with SHA-256.
    #[serde(rename = "PS256")]
    Ps256,
    /// RSASSA-PSS with SHA-384.
    #[serde(rename = "PS384")]
    Ps384,
    /// RSASSA-PSS with SHA-512.
    #[serde(rename = "PS512")]
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    #[serde(rename = "ES256")]
    Es256,
    /// ECDSA on P-384 with SHA-384.
    #[serde(rename = "ES384")]
    Es384,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl JwtAlgorithm {
    pub(super) fn algorithm(self) -> Algorithm {
        match self {
            JwtAlgorithm::Rs256 => Algorithm::RS256,
            JwtAlgorithm::Rs384 => Algorithm::RS384,
            JwtAlgorithm::Rs512 => Algorithm::RS512,
            JwtAlgorithm::Ps256 => Algorithm::PS256,
            JwtAlgorithm::Ps384 => Algorithm::PS384,
            JwtAlgorithm::Ps512 => Algorithm::PS512,
            JwtAlgorithm::Es256 => Algorithm::ES256,
            JwtAlgorithm::Es384 => Algorithm::ES384,
            JwtAlgorithm::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// The accepted algorithms: at least one, default `["RS256", "ES256"]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<JwtAlgorithm>")]
pub struct JwtAlgorithms(Vec<JwtAlgorithm>);

/// An empty `algorithms` list.
#[derive(Debug, thiserror::Error)]
#[error(
    "algorithms must list at least one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
)]
pub struct NoAlgorithms;

impl JwtAlgorithms {
    /// The given algorithms; fails when there are none.
    pub fn new(algorithms: Vec<JwtAlgorithm>) -> Result<Self, NoAlgorithms> {
        if algorithms.is_empty() {
            Err(NoAlgorithms)
        } else {
            Ok(Self(algorithms))
        }
    }

    /// The algorithms, in configured order.
    pub fn as_slice(&self) -> &[JwtAlgorithm] {
        &self.0
    }
}

impl Default for JwtAlgorithms {
    fn default() -> Self {
        Self(vec![JwtAlgorithm::Rs256, JwtAlgorithm::Es256])
    }
}

impl TryFrom<Vec<JwtAlgorithm>> for JwtAlgorithms {
    type Error = NoAlgorithms;

    fn try_from(algorithms: Vec<JwtAlgorithm>) -> Result<Self, Self::Error> {
        Self::new(algorithms)
    }
}

/// The accepted audiences: `audience = "x"` or `audience = ["x", "y"]`; a
/// token must name at least one of them in `aud`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "OneOrMany")]
pub struct Audience(Vec<String>);

#[derive(Deserialize)]
#[serde(untagged, expecting = "a string or a list of strings")]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// An empty `audience` list.
#[derive(Debug, thiserror::Error)]
#[error("audience must name at least one audience, e.g. \"https://saas-api.tmprl.cloud\"")]
pub struct NoAudience;

impl Audience {
    /// The given audiences; fails when there are none.
    pub fn new(audiences: Vec<String>) -> Result<Self, NoAudience> {
        if audiences.is_empty() {
            Err(NoAudience)
        } else {
            Ok(Self(audiences))
        }
    }

    /// The audiences.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl TryFrom<OneOrMany> for Audience {
    type Error = NoAudience;

    fn try_from(value: OneOrMany) -> Result<Self, Self::Error> {
        match value {
            OneOrMany::One(one) => Self::new(vec![one]),
            OneOrMany::Many(many) => Self::new(many),
        }
    }
}

/// How [`JwtAuth`](super::JwtAuth) verifies and authorizes tokens: also the
/// `auth = { mode = "jwt", … }` section of the configuration, whose keys
/// are these fields. Temporal Cloud: `jwks_url =
/// "https://login.tmprl.cloud/.well-known/jwks.json"`, `audience =
/// "https://saas-api.tmprl.cloud"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// Where the signing keys are published (`http://` or `https://`).
    pub jwks_url: JwksUrl,
    /// The required `iss`; absent means any issuer.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The accepted `aud`, one string or a list; absent means any audience
    /// (tokens the provider issued for any of its applications).
    #[serde(default)]
    pub audience: Option<Audience>,
    /// The claim holding `<namespace>:<read|write|admin>` entries.
    #[serde(default = "default_permissions_claim")]
    pub permissions_claim: String,
    /// Accepted signature algorithms (asymmetric only).
    #[serde(default)]
    pub algorithms: JwtAlgorithms,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
    /// Let `*:<perm>` grant `<perm>` on every namespace.
    #[serde(default)]
    pub allow_wildcard_namespace: bool,
    /// Least time between two JWKS fetches caused by unknown key ids (or
    /// retries after a failed fetch), in seconds.
    #[serde(default = "default_min_refetch_secs")]
    pub min_refetch_secs: NonZeroU64,
    /// The clock that times refetches: the system's, unless a test sets
    /// one it moves itself. Not part of the configuration file.
    #[serde(skip)]
    pub clock: Clock,
}

/// What time it is, for the JWKS refetch intervals: the system's monotonic
/// clock by default, or a function (a test's clock that it advances).
#[derive(Clone, Default)]
pub struct Clock(Option<std::sync::Arc<dyn Fn() -> Instant + Send + Sync>>);

impl Clock {
    /// A clock that reads `now`.
    pub fn from_fn(now: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        Self(Some(std::sync::Arc::new(now)))
    }

    /// The time now.
    pub fn now(&self) -> Instant {
        self.0.as_ref().map_or_else(Instant::now, |now| now())
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Clock(given)"
        } else {
            "Clock(system)"
        })
    }
}

fn default_permissions_claim() -> String {
    "permissions".to_owned()
}

fn default_leeway_secs() -> u64 {
    30
}

fn default_min_refetch_secs() -> NonZeroU64 {
    NonZeroU64::MIN.saturating_add(29)
}

impl JwtSettings {
    /// Settings with the defaults: claim `permissions`, RS256 and ES256,
    /// 30 s leeway, no wildcard namespace, refetch at most every 30 s.
    pub fn new(jwks_url: JwksUrl) -> Self {
        Self {
            jwks_url,
            issuer: None,
            audience: None,
            permissions_claim: default_permissions_claim(),
            algorithms: JwtAlgorithms::default(),
            leeway_secs: default_leeway_secs(),
            allow_wildcard_namespace: false,
            min_refetch_secs: default_min_refetch_secs(),
            clock: Clock::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_urls_must_be_http_with_a_host() {
        assert!(JwksUrl::parse("https://login.tmprl.cloud/.well-known/jwks.json").is_ok());
        assert!(JwksUrl::parse("http://127.0.0.1:9/jwks").is_ok());
        for bad in [
            "",
            "ftp://x/jwks",
            "/jwks",
            "login.tmprl.cloud",
            "https://u:p@x/jwks",
        ] {
            let err = JwksUrl::parse(bad).unwrap_err().to_string();
            assert!(err.contains("http:// or https://"), "{bad}: {err}");
        }
    }
}

//! JWT access tokens verified against the identity provider's JWKS, and
//! authorized by a permissions claim (Temporal Cloud and the Go sample).
//!
//! A request sends `Authorization: Bearer <JWT>`. The token is accepted when
//! its header names an accepted algorithm and a key id (`kid`) found in the
//! JWKS, its signature verifies with that key, `exp` has not passed and `nbf`
//! has (both with `leeway_secs`), and its `iss` and `aud` match the
//! configured issuer and audience when those are set (a configured claim must
//! be present). Symmetric (HS*) algorithms are never accepted, and symmetric
//! keys in the JWKS are ignored.
//!
//! Authorization reads the permissions claim (default `permissions`): a list
//! of `<namespace>:<read|write|admin>` strings (a single space-separated
//! string is accepted too). `read` allows `/decode`; `write` and `admin`
//! allow `/encode` and `/decode`. `*:<perm>` applies to every namespace only
//! with `allow_wildcard_namespace = true`.
//!
//! The Web UI also sends the id token in `Authorization-Extras`; it is
//! ignored: only the access token in `Authorization` is checked.
//!
//! # Keys
//!
//! The JWKS is fetched lazily, on the first token to verify, so the server
//! starts even when the identity provider is down. Keys are cached in memory
//! and read without a lock. A token with an unknown `kid` triggers one
//! refetch, at most once per `min_refetch_secs` (default 30) however many
//! such tokens arrive, so a flood of made-up key ids cannot hammer the
//! provider; concurrent misses wait for the same fetch. Keys older than
//! 15 minutes are refreshed in the background while the cached ones keep
//! serving; when a refresh fails the previous keys stay in use.
//!
//! # Answers
//!
//! - Missing, malformed, expired or otherwise invalid token, or a key id the
//!   fresh JWKS does not have: 401 `unauthorized`, with the reason but never
//!   the token.
//! - Valid token without the needed permission: 403 `forbidden`, naming the
//!   permission needed.
//! - The JWKS cannot be fetched (provider down, bad answer) and the token's
//!   key is not cached: 503 `auth_unavailable`, since that is not the
//!   caller's fault; the detail names the JWKS URL and the reason. The next
//!   attempt happens after `min_refetch_secs`.
//!
//! A configuration reload (SIGHUP, keyring change) builds a new verifier, so
//! the JWKS is fetched again on the next request.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{ACCEPT, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::Access;
use crate::error::ApiError;

/// Cached keys older than this are refreshed in the background.
const REFRESH_AFTER: Duration = Duration::from_secs(15 * 60);
/// Longest a JWKS fetch may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Longest bearer token accepted; real access tokens are a few KiB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest key id quoted back in an error detail.
const MAX_QUOTED_KID: usize = 64;

/// The URL of a JWKS document, `http://` or `https://` with a host; checked
/// when the configuration is parsed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct JwksUrl {
    uri: Uri,
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
    fn algorithm(self) -> Algorithm {
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

/// How [`JwtAuth`] verifies and authorizes tokens.
#[derive(Clone, Debug)]
pub struct JwtSettings {
    /// Where the signing keys are published.
    pub jwks_url: JwksUrl,
    /// The required `iss`, if any.
    pub issuer: Option<String>,
    /// The accepted `aud` values, if any. Without one, tokens the provider
    /// issued for any application are accepted.
    pub audience: Option<Audience>,
    /// The claim holding `<namespace>:<read|write|admin>` entries.
    pub permissions_claim: String,
    /// The accepted signature algorithms.
    pub algorithms: JwtAlgorithms,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Whether `*:<perm>` grants `<perm>` on every namespace.
    pub allow_wildcard_namespace: bool,
    /// Least time between two JWKS fetches caused by unknown key ids (or
    /// retries after a failed fetch), in seconds.
    pub min_refetch_secs: NonZeroU64,
}

impl JwtSettings {
    /// Settings with the defaults: claim `permissions`, RS256 and ES256,
    /// 30 s leeway, no wildcard namespace, refetch at most every 30 s.
    pub fn new(jwks_url: JwksUrl) -> Self {
        Self {
            jwks_url,
            issuer: None,
            audience: None,
            permissions_claim: "permissions".to_owned(),
            algorithms: JwtAlgorithms::default(),
            leeway_secs: 30,
            allow_wildcard_namespace: false,
            min_refetch_secs: NonZeroU64::MIN.saturating_add(29),
        }
    }
}

/// Verifies JWT bearer tokens against a JWKS and authorizes them by their
/// permissions claim. Cheap to clone: clones share the key cache.
#[derive(Clone)]
pub struct JwtAuth {
    inner: Arc<Inner>,
}

impl fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("jwks_url", &self.inner.settings.jwks_url)
            .field("issuer", &self.inner.settings.issuer)
            .field("audience", &self.inner.settings.audience)
            .field("cached_keys", &self.inner.keys.load().keys.len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    settings: JwtSettings,
    /// One validation per accepted algorithm.
    validations: Vec<(Algorithm, Validation)>,
    keys: ArcSwap<KeySet>,
    /// Held while fetching, so concurrent misses share one fetch. Never
    /// taken when the token's key is cached.
    fetch_lock: Mutex<()>,
    /// A background refresh is under way.
    refreshing: AtomicBool,
}

/// The cached keys and the fetch history.
#[derive(Default)]
struct KeySet {
    keys: Arc<HashMap<String, Arc<VerifyingKey>>>,
    /// The last successful fetch.
    fetched_at: Option<Instant>,
    /// The last fetch, successful or not.
    attempted_at: Option<Instant>,
    /// Why the last fetch failed; `None` when it succeeded.
    last_error: Option<String>,
}

/// One public key of the JWKS.
struct VerifyingKey {
    key: DecodingKey,
    family: AlgorithmFamily,
    /// The JWK's `alg`, when it names one.
    alg: Option<Algorithm>,
}

impl JwtAuth {
    /// A verifier for `settings`. Nothing is fetched until the first token
    /// arrives.
    pub fn new(settings: JwtSettings) -> Self {
        let validations = settings
            .algorithms
            .as_slice()
            .iter()
            .map(|a| (a.algorithm(), validation_for(&settings, a.algorithm())))
            .collect();
        if settings.jwks_url.is_plain_http() {
            tracing::warn!(
                jwks_url = %settings.jwks_url,
                "the JWKS is fetched over plain http: whoever can alter it can mint tokens; use https outside tests"
            );
        }
        Self {
            inner: Arc::new(Inner {
                settings,
                validations,
                keys: ArcSwap::from_pointee(KeySet::default()),
                fetch_lock: Mutex::new(()),
                refreshing: AtomicBool::new(false),
            }),
        }
    }

    /// Verifies `token` and checks it grants `access` to `namespace`.
    pub(crate) async fn check(
        &self,
        token: &str,
        namespace: &str,
        access: Access,
    ) -> Result<(), ApiError> {
        let claims = self.verify(token).await?;
        let settings = &self.inner.settings;
        let claim = claims.get(&settings.permissions_claim);
        authorize(
            claim,
            &settings.permissions_claim,
            namespace,
            access,
            settings.allow_wildcard_namespace,
        )
        .map_err(ApiError::Forbidden)
    }

    /// The claims of `token` once its signature and standard claims verify.
    async fn verify(&self, token: &str) -> Result<Map<String, Value>, ApiError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid(format!(
                "the bearer token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            invalid(
                "the bearer token is not a JWT (three base64url parts, the first a JSON header)",
            )
        })?;
        let Some((alg, validation)) = self
            .inner
            .validations
            .iter()
            .find(|(alg, _)| *alg == header.alg)
        else {
            return Err(invalid(format!(
                "the token is signed with {:?}, which this namespace does not accept (accepted: {})",
                header.alg,
                self.accepted_algorithms()
            )));
        };
        let Some(kid) = header.kid.as_deref() else {
            return Err(invalid(
                "the token header has no `kid`, so its signing key cannot be chosen",
            ));
        };
        let key = self.key(kid).await?;
        let quoted = quote_kid(kid);
        if key.family != alg.family() || key.alg.is_some_and(|k| k != *alg) {
            return Err(invalid(format!(
                "key `{quoted}` in the JWKS cannot verify {alg:?} tokens"
            )));
        }
        jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
            .map(|data| data.claims)
            .map_err(|err| self.rejection(err.kind(), &quoted, *alg))
    }

    /// The key with id `kid`: from the cache, else after one (rate-limited)
    /// fetch of the JWKS.
    async fn key(&self, kid: &str) -> Result<Arc<VerifyingKey>, ApiError> {
        match self.lookup(kid) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Refused(err) => return Err(err),
            Lookup::Missing => {}
        }
        let _fetching = self.inner.fetch_lock.lock().await;
        // Another request may have fetched while this one waited.
        match self.lookup(kid) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Refused(err) => return Err(err),
            Lookup::Missing => {}
        }
        self.fetch_and_store().await;
        let keys = self.inner.keys.load_full();
        match keys.keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None => Err(self.miss(&keys, kid)),
        }
    }

    /// Looks `kid` up in the cache without waiting.
    fn lookup(&self, kid: &str) -> Lookup {
        let keys = self.inner.keys.load();
        if let Some(key) = keys.keys.get(kid) {
            if keys
                .fetched_at
                .is_some_and(|at| at.elapsed() >= REFRESH_AFTER)
                && !self.recently_attempted(&keys)
            {
                self.refresh_in_background();
            }
            return Lookup::Found(key.clone());
        }
        if self.recently_attempted(&keys) {
            Lookup::Refused(self.miss(&keys, kid))
        } else {
            Lookup::Missing
        }
    }

    fn recently_attempted(&self, keys: &KeySet) -> bool {
        let min = Duration::from_secs(self.inner.settings.min_refetch_secs.get());
        keys.attempted_at.is_some_and(|at| at.elapsed() < min)
    }

    /// The answer for a key id the JWKS does not have (or could not say).
    fn miss(&self, keys: &KeySet, kid: &str) -> ApiError {
        let url = &self.inner.settings.jwks_url;
        match &keys.last_error {
            Some(reason) => ApiError::AuthUnavailable(format!(
                "cannot verify the token: the JWKS at {url} is unavailable: {reason}; retry shortly"
            )),
            None => invalid(format!(
                "the token's key id `{}` is not in the JWKS at {url}",
                quote_kid(kid)
            )),
        }
    }

    /// Refreshes stale keys without delaying the request that noticed.
    fn refresh_in_background(&self) {
        if self.inner.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            {
                let _fetching = this.inner.fetch_lock.lock().await;
                let keys = this.inner.keys.load_full();
                let stale = keys
                    .fetched_at
                    .is_some_and(|at| at.elapsed() >= REFRESH_AFTER);
                if stale && !this.recently_attempted(&keys) {
                    this.fetch_and_store().await;
                }
            }
            this.inner.refreshing.store(false, Ordering::Release);
        });
    }

    /// Fetches the JWKS and records the outcome; a failure keeps the
    /// previous keys. Callers hold `fetch_lock`.
    async fn fetch_and_store(&self) {
        let url = &self.inner.settings.jwks_url;
        let result = fetch_jwks(&url.uri).await;
        let now = Instant::now();
        let previous = self.inner.keys.load_full();
        let next = match result {
            Ok(keys) => {
                tracing::info!(jwks_url = %url, keys = keys.len(), "fetched the JWKS");
                KeySet {
                    keys: Arc::new(keys),
                    fetched_at: Some(now),
                    attempted_at: Some(now),
                    last_error: None,
                }
            }
            Err(reason) => {
                tracing::warn!(jwks_url = %url, %reason, "cannot fetch the JWKS; keeping the previous keys");
                KeySet {
                    keys: previous.keys.clone(),
                    fetched_at: previous.fetched_at,
                    attempted_at: Some(now),
                    last_error: Some(reason),
                }
            }
        };
        self.inner.keys.store(Arc::new(next));
    }

    fn accepted_algorithms(&self) -> String {
        self.inner
            .validations
            .iter()
            .map(|(a, _)| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The 401 for a token that failed verification.
    fn rejection(&self, kind: &ErrorKind, kid: &str, alg: Algorithm) -> ApiError {
        let settings = &self.inner.settings;
        let reason = match kind {
            ErrorKind::ExpiredSignature => "the token has expired; get a new one".to_owned(),
            ErrorKind::ImmatureSignature => {
                "the token is not valid yet (its `nbf` is in the future)".to_owned()
            }
            ErrorKind::InvalidAudience => format!(
                "the token's audience (`aud`) is not {}",
                settings
                    .audience
                    .as_ref()
                    .map(|a| quote_list(a.as_slice()))
                    .unwrap_or_default()
            ),
            ErrorKind::InvalidIssuer => format!(
                "the token's issuer (`iss`) is not `{}`",
                settings.issuer.as_deref().unwrap_or_default()
            ),
            ErrorKind::InvalidSignature => {
                format!("the token's signature does not verify with key `{kid}`")
            }
            ErrorKind::MissingRequiredClaim(claim) => {
                format!("the token has no `{claim}` claim, which this namespace requires")
            }
            ErrorKind::InvalidClaimFormat(claim) => {
                format!("the token's `{claim}` claim is not a number")
            }
            ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::InvalidAlgorithm => {
                format!("key `{kid}` in the JWKS cannot verify {alg:?} tokens")
            }
            _ => "the bearer token is not a well-formed JWT".to_owned(),
        };
        invalid(reason)
    }
}

/// The outcome of a cache lookup.
enum Lookup {
    Found(Arc<VerifyingKey>),
    /// Not cached, and fetching again is not allowed yet.
    Refused(ApiError),
    /// Not cached; a fetch may tell.
    Missing,
}

/// A 401 for an invalid token.
fn invalid(reason: impl fmt::Display) -> ApiError {
    ApiError::Unauthorized(format!("invalid token: {reason}"))
}

/// A key id from a token, shortened for quoting in an error detail.
fn quote_kid(kid: &str) -> String {
    if kid.len() <= MAX_QUOTED_KID {
        return kid.to_owned();
    }
    let mut end = MAX_QUOTED_KID;
    while !kid.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &kid[..end])
}

fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        _ => format!("one of {}", quoted.join(", ")),
    }
}

/// The claim checks for tokens signed with `alg`.
fn validation_for(settings: &JwtSettings, alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = settings.leeway_secs;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    let mut required = vec!["exp"];
    if let Some(issuer) = &settings.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    match &settings.audience {
        Some(audience) => {
            validation.set_audience(audience.as_slice());
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// Fetches and parses the JWKS at `uri`; the error is a reason to show.
async fn fetch_jwks(uri: &Uri) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let request = Request::get(uri.clone())
        .header(ACCEPT, "application/json")
        .header(
            USER_AGENT,
            concat!("payloadkit-codec-server/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::new())
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let fetch = async {
        let response = client.request(request).await.map_err(|e| error_chain(&e))?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(format!("it answered HTTP {status}"));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| {
                format!("reading the answer failed ({e}); the limit is {MAX_JWKS_BYTES} bytes")
            })?
            .to_bytes();
        parse_jwks(&body)
    };
    tokio::time::timeout(FETCH_TIMEOUT, fetch)
        .await
        .map_err(|_| format!("no answer within {} s", FETCH_TIMEOUT.as_secs()))?
}

/// An error and its causes, joined: hyper's own message alone is terse.
fn error_chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The usable signature keys of a JWKS document, by key id. Keys without an
/// id, for encryption, symmetric, of unknown type or malformed are skipped.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<Value>,
    }
    let raw: RawSet = serde_json::from_slice(body)
        .map_err(|e| format!("the answer is not a JWKS document ({e})"))?;
    let total = raw.keys.len();
    let mut keys = HashMap::new();
    for value in raw.keys {
        if let Some((kid, key)) = usable_key(value) {
            keys.insert(kid, Arc::new(key));
        }
    }
    if keys.is_empty() {
        return Err(format!(
            "the JWKS has no usable signature keys ({total} keys, none with a `kid` and an RSA, EC or OKP public key)"
        ));
    }
    Ok(keys)
}

fn usable_key(value: Value) -> Option<(String, VerifyingKey)> {
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    let kid = jwk.common.key_id.clone()?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
        AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
        AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
        // Symmetric keys must never verify tokens: the JWKS is public.
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        // A key meant for something else (e.g. RSA-OAEP) is skipped.
        Some(named) => Some(named.to_string().parse::<Algorithm>().ok()?),
        None => None,
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((kid, VerifyingKey { key, family, alg }))
}

/// Whether the permissions `claim` grants `access` to `namespace`; the error
/// is the 403 detail.
fn authorize(
    claim: Option<&Value>,
    claim_name: &str,
    namespace: &str,
    access: Access,
    allow_wildcard: bool,
) -> Result<(), String> {
    let (needed, alternatives, action) = match access {
        Access::Read => ("read", &["write", "admin"][..], "decode"),
        Access::Write => ("write", &["admin"][..], "encode"),
    };
    if namespace.is_empty() {
        return Err(format!(
            "the request names no namespace (send `X-Namespace`), so the token's `{claim_name}` \
             cannot grant {needed} access needed to {action}"
        ));
    }
    let granted = permissions(claim).any(|entry| grants(entry, namespace, access, allow_wildcard));
    if granted {
        return Ok(());
    }
    let presence = if claim.is_none() {
        format!("the token has no `{claim_name}` claim; ")
    } else {
        String::new()
    };
    let alternatives: Vec<String> = alternatives
        .iter()
        .map(|perm| format!("`{namespace}:{perm}`"))
        .collect();
    Err(format!(
        "{presence}token lacks `{namespace}:{needed}` (or {}) in its `{claim_name}` claim, needed to {action}",
        alternatives.join(", ")
    ))
}

/// The entries of a permissions claim: a list of strings, or one string of
/// space-separated entries. Anything else grants nothing.
fn permissions(claim: Option<&Value>) -> Box<dyn Iterator<Item = &str> + '_> {
    match claim {
        Some(Value::Array(items)) => Box::new(items.iter().filter_map(Value::as_str)),
        Some(Value::String(text)) => Box::new(text.split_whitespace()),
        _ => Box::new(std::iter::empty()),
    }
}

/// Whether one `<namespace>:<perm>` entry grants `access` to `namespace`.
fn grants(entry: &str, namespace: &str, access: Access, allow_wildcard: bool) -> bool {
    let Some((scope, perm)) = entry.rsplit_once(':') else {
        return false;
    };
    let in_scope = scope == namespace || (allow_wildcard && scope == "*");
    in_scope
        && match perm {
            "admin" | "write" => true,
            "read" => access == Access::Read,
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(claim: Value, ns: &str, access: Access, wildcard: bool) -> Result<(), String> {
        authorize(Some(&claim), "permissions", ns, access, wildcard)
    }

    #[test]
    fn read_decodes_write_and_admin_do_both() {
        let read = json!(["payments:read"]);
        assert!(check(read.clone(), "payments", Access::Read, false).is_ok());
        let err = check(read, "payments", Access::Write, false).unwrap_err();
        assert!(err.contains("lacks `payments:write`"), "{err}");
        assert!(err.contains("needed to encode"), "{err}");
        assert!(err.contains("(or `payments:admin`)"), "{err}");
        for perm in ["write", "admin"] {
            let claim = json!([format!("payments:{perm}")]);
            assert!(check(claim.clone(), "payments", Access::Read, false).is_ok());
            assert!(check(claim, "payments", Access::Write, false).is_ok());
        }
    }

    #[test]
    fn only_the_named_namespace_is_granted() {
        let claim = json!(["orders:admin", "payments.acct:read"]);
        let err = check(claim.clone(), "payments", Access::Read, false).unwrap_err();
        assert!(err.contains("lacks `payments:read`"), "{err}");
        assert!(check(claim.clone(), "payments.acct", Access::Read, false).is_ok());
        assert!(check(claim, "order", Access::Read, false).is_err());
        // The permission is the last segment, so namespaces may hold `:`.
        assert!(check(json!(["a:b:write"]), "a:b", Access::Write, false).is_ok());
    }

    #[test]
    fn wildcard_namespaces_need_opting_in() {
        let claim = json!(["*:write"]);
        assert!(check(claim.clone(), "payments", Access::Write, false).is_err());
        assert!(check(claim, "payments", Access::Write, true).is_ok());
    }

    #[test]
    fn odd_claims_grant_nothing() {
        assert!(
            check(
                json!("payments:read orders:write"),
                "orders",
                Access::Write,
                false
            )
            .is_ok()
        );
        for claim in [
            json!([]),
            json!(["payments"]),
            json!(["payments:READ"]),
            json!(["payments:"]),
            json!([":read"]),
            json!([42, {"payments": "read"}]),
            json!({"payments": "read"}),
            json!(true),
        ] {
            assert!(
                check(claim.clone(), "payments", Access::Read, false).is_err(),
                "{claim}"
            );
        }
        let err = authorize(None, "perms", "payments", Access::Read, false).unwrap_err();
        assert!(err.contains("no `perms` claim"), "{err}");
        let err = check(json!(["payments:read"]), "", Access::Read, false).unwrap_err();
        assert!(err.contains("X-Namespace"), "{err}");
    }

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

    #[test]
    fn jwks_keeps_only_usable_signature_keys() {
        let body = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "XYZ", "kid": "future"},
        ]});
        let keys = parse_jwks(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["ec"]);
        assert_eq!(keys["ec"].family, AlgorithmFamily::Ec);
        let err = parse_jwks(br#"{"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}"#)
            .err()
            .unwrap();
        assert!(err.contains("no usable signature keys"), "{err}");
        assert!(parse_jwks(b"<html>").is_err());
    }

    #[test]
    fn long_key_ids_are_shortened() {
        assert_eq!(quote_kid("abc"), "abc");
        let long = "é".repeat(100);
        assert!(quote_kid(&long).chars().count() <= MAX_QUOTED_KID);
    }
}

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

mod jwks;
mod permissions;
mod settings;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use self::jwks::{VerifyingKey, fetch_jwks};
use self::permissions::authorize;
pub use self::settings::{
    Audience, Clock, InvalidJwksUrl, JwksUrl, JwtAlgorithm, JwtAlgorithms, JwtSettings,
    NoAlgorithms, NoAudience,
};
use super::Access;
use crate::error::ApiError;

/// Cached keys older than this are refreshed in the background.
const REFRESH_AFTER: Duration = Duration::from_secs(15 * 60);
/// Longest bearer token accepted; real access tokens are a few KiB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest key id quoted back in an error detail.
const MAX_QUOTED_KID: usize = 64;

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

impl JwtAuth {
    /// The settings' clock, now.
    fn now(&self) -> Instant {
        self.inner.settings.clock.now()
    }

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
                .is_some_and(|at| self.now().saturating_duration_since(at) >= REFRESH_AFTER)
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
        keys.attempted_at
            .is_some_and(|at| self.now().saturating_duration_since(at) < min)
    }

    /// The answer for a key id the JWKS does not have (or could not say).
    fn miss(&self, keys: &KeySet, kid: &str) -> ApiError {
        let url = &self.inner.settings.jwks_url;
        match &keys.last_error {
            // The reason (a connection error, an HTTP status) is in the
            // log, where the fetch failed; the caller learns only that it
            // is not their fault.
            Some(_) => ApiError::AuthUnavailable(
                "cannot verify the token now: the identity provider's signing keys (JWKS) \
                 cannot be fetched; retry shortly (the server log has the cause)"
                    .to_owned(),
            ),
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
                    .is_some_and(|at| this.now().saturating_duration_since(at) >= REFRESH_AFTER);
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
        let now = self.now();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_key_ids_are_shortened() {
        assert_eq!(quote_kid("abc"), "abc");
        let long = "é".repeat(100);
        assert!(quote_kid(&long).chars().count() <= MAX_QUOTED_KID);
    }
}

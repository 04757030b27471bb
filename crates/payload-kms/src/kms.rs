//! [`Kms`]: the KEKs a process uses, the calls to them (with retries and
//! backoff, counted) and the cache of unwrapped data keys.
//!
//! The cache is an LRU of [`DEFAULT_CACHE_SIZE`] data keys, each kept for
//! at most its time to live, keyed by the KEK's id and the wrapped key.
//! Concurrent requests for one wrapped key wait for one KMS call: a cold
//! cache costs one call per data key, not one per payload.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable as _};
use lru::LruCache;
use payload_codecs::{DataKey, SecretKey};
use tokio::sync::OnceCell;

use crate::error::{KekError, KmsError};
use crate::kek::{KeyEncryptionKey, KeyringKek, SecretboxKek};
use crate::options::KmsOptions;
use crate::uri::{KekKind, KekUri};

/// A KEK ready to use: its URI and its provider.
#[derive(Debug, Clone)]
pub struct Kek {
    uri: KekUri,
    provider: Arc<dyn KeyEncryptionKey>,
}

impl Kek {
    /// Its URI.
    pub fn uri(&self) -> &KekUri {
        &self.uri
    }
}

/// Counts of KMS calls and cache lookups since the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KmsStats {
    /// Wrap calls that succeeded.
    pub wraps: u64,
    /// Unwrap calls that succeeded.
    pub unwraps: u64,
    /// Calls (either kind, retries included) that failed.
    pub failures: u64,
    /// Data keys found unwrapped in the cache.
    pub cache_hits: u64,
    /// Data keys not in the cache (each costs one unwrap, shared by
    /// concurrent requests for it).
    pub cache_misses: u64,
}

#[derive(Default)]
struct Counters {
    wraps: AtomicU64,
    unwraps: AtomicU64,
    failures: AtomicU64,
    /// Counted by every decode: striped, so that requests on different
    /// cores do not write the same cache line.
    cache_hits: Striped,
    cache_misses: AtomicU64,
}

/// A counter in cache-line-sized stripes, one picked per thread.
#[derive(Default)]
struct Striped([Stripe; STRIPES]);

const STRIPES: usize = 16;

#[derive(Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

impl Striped {
    fn add(&self, n: u64) {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        thread_local! {
            static STRIPE: usize = (NEXT.fetch_add(1, Ordering::Relaxed) as usize) % STRIPES;
        }
        let stripe = STRIPE.with(|s| *s);
        self.0[stripe].0.fetch_add(n, Ordering::Relaxed);
    }

    fn sum(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// An unwrapped data key and when it was unwrapped.
type Cached = (Arc<DataKey>, Instant);

/// An unwrap in flight: its waiters share its key or its failure.
#[derive(Default)]
struct Pending {
    key: OnceCell<(Arc<DataKey>, Instant)>,
    failure: Mutex<Option<Failure>>,
}

/// A failed unwrap, told again to those who waited for it.
struct Failure {
    kek: String,
    transient: bool,
    rejected: bool,
    cause: String,
}

impl Failure {
    fn of(err: &KmsError) -> Self {
        Self {
            kek: err.kek().unwrap_or("?").to_owned(),
            transient: matches!(err, KmsError::Unavailable { .. }),
            rejected: matches!(
                err,
                KmsError::Rejected { .. } | KmsError::WrongKeyLength { .. }
            ),
            cause: err.to_string(),
        }
    }

    fn again(&self) -> KmsError {
        let kek = self.kek.clone();
        let cause = format!("a concurrent call just failed: {}", self.cause);
        if self.transient {
            KmsError::Unavailable {
                kek,
                op: "unwrap",
                cause,
            }
        } else if self.rejected {
            KmsError::Rejected { kek, cause }
        } else {
            KmsError::Refused {
                kek,
                op: "unwrap",
                cause,
            }
        }
    }
}

/// The KEKs of a process and the cache of unwrapped data keys they share.
pub struct Kms {
    options: KmsOptions,
    keks: Mutex<HashMap<String, Kek>>,
    /// Unwrapped data keys and when they were unwrapped: only keys a KMS
    /// (or this process) made, so bad input cannot push good keys out.
    cache: Mutex<LruCache<Vec<u8>, Cached>>,
    pending: Mutex<HashMap<Vec<u8>, Arc<Pending>>>,
    counters: Counters,
    #[cfg(feature = "vault")]
    client: std::sync::OnceLock<crate::http::JsonClient>,
}

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kms")
            .field("options", &self.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Kms {
    /// A KMS hub with `options`.
    pub fn new(options: KmsOptions) -> Self {
        let size = NonZeroUsize::new(options.cache_size).unwrap_or(NonZeroUsize::MIN);
        Self {
            options,
            keks: Mutex::new(HashMap::new()),
            cache: Mutex::new(LruCache::new(size)),
            pending: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            #[cfg(feature = "vault")]
            client: std::sync::OnceLock::new(),
        }
    }

    /// The KEK for `uri`, set up on first use. Fails when the URI is
    /// malformed or its KMS is not configured.
    pub fn kek(&self, uri: &str) -> Result<Kek, KmsError> {
        if let Some(kek) = lock(&self.keks).get(uri) {
            return Ok(kek.clone());
        }
        let parsed = KekUri::parse(uri)?;
        let provider = self.provider(&parsed)?;
        let kek = Kek {
            uri: parsed,
            provider,
        };
        lock(&self.keks).insert(uri.to_owned(), kek.clone());
        Ok(kek)
    }

    /// Registers a KEK of the program's own (another KMS, an HSM) under
    /// `id`, the text written into `encryption-key-id`. Replaces a KEK of
    /// the same id.
    pub fn register(&self, id: &str, provider: Arc<dyn KeyEncryptionKey>) -> Kek {
        let kek = Kek {
            uri: KekUri::custom(id),
            provider,
        };
        lock(&self.keks).insert(id.to_owned(), kek.clone());
        kek
    }

    fn provider(&self, uri: &KekUri) -> Result<Arc<dyn KeyEncryptionKey>, KmsError> {
        let missing = |what: &str| KmsError::NotConfigured {
            kek: uri.to_string(),
            missing: what.to_owned(),
        };
        match uri.kind() {
            KekKind::Testing { key } => Ok(Arc::new(SecretboxKek::new(key))),
            KekKind::Keyring { key_id } => {
                let keyring = self.options.keyring.clone().ok_or_else(|| {
                    missing("keyring:// KEKs need a keyring file ([kms] keyring)")
                })?;
                let kek = KeyringKek::new(keyring, key_id)
                    .ok_or_else(|| missing(&format!("the KEK keyring has no key `{key_id}`")))?;
                Ok(Arc::new(kek))
            }
            KekKind::Vault { .. } => self.vault(uri),
            KekKind::AwsKms { .. } => self.aws(uri),
            KekKind::Custom => Err(missing("register it first with Kms::register")),
        }
    }

    #[cfg(feature = "vault")]
    fn client(&self) -> Result<crate::http::JsonClient, KmsError> {
        if let Some(client) = self.client.get() {
            return Ok(client.clone());
        }
        let client =
            crate::http::JsonClient::new(self.options.call_timeout).map_err(|missing| {
                KmsError::NotConfigured {
                    kek: "*".to_owned(),
                    missing,
                }
            })?;
        Ok(self.client.get_or_init(|| client).clone())
    }

    #[cfg(feature = "vault")]
    fn vault(&self, uri: &KekUri) -> Result<Arc<dyn KeyEncryptionKey>, KmsError> {
        let KekKind::Vault { mount, key } = uri.kind() else {
            unreachable!("called for vault URIs only")
        };
        let access = self
            .options
            .vault
            .as_ref()
            .ok_or_else(|| KmsError::NotConfigured {
                kek: uri.to_string(),
                missing: "Vault KEKs need [kms.vault] address and a token".to_owned(),
            })?;
        Ok(Arc::new(crate::vault::VaultKek {
            client: self.client()?,
            address: access.address.trim_end_matches('/').to_owned(),
            mount: mount.trim_matches('/').to_owned(),
            key: key.clone(),
            token: access.token.clone(),
        }))
    }

    #[cfg(not(feature = "vault"))]
    fn vault(&self, uri: &KekUri) -> Result<Arc<dyn KeyEncryptionKey>, KmsError> {
        Err(KmsError::NotConfigured {
            kek: uri.to_string(),
            missing: "this build has no Vault support (cargo feature `vault`)".to_owned(),
        })
    }

    #[cfg(feature = "aws")]
    fn aws(&self, uri: &KekUri) -> Result<Arc<dyn KeyEncryptionKey>, KmsError> {
        let KekKind::AwsKms { key_id, region } = uri.kind() else {
            unreachable!("called for awskms URIs only")
        };
        let access = self
            .options
            .aws
            .as_ref()
            .ok_or_else(|| KmsError::NotConfigured {
                kek: uri.to_string(),
                missing: "AWS KMS KEKs need credentials (AWS_ACCESS_KEY_ID and \
                      AWS_SECRET_ACCESS_KEY)"
                    .to_owned(),
            })?;
        // object_store's signer panics on a credential that is not a valid
        // header value: check them here, where it is a configuration error.
        let header_safe = |value: &str| http::HeaderValue::from_str(value).is_ok();
        let token_ok = access.session_token.as_ref().is_none_or(|t| header_safe(t));
        if !header_safe(&access.access_key_id) || !token_ok {
            return Err(KmsError::NotConfigured {
                kek: uri.to_string(),
                missing: "AWS_ACCESS_KEY_ID or AWS_SESSION_TOKEN holds characters a header \
                          cannot (a line break?); set it to the credential alone"
                    .to_owned(),
            });
        }
        let region = region.clone().unwrap_or_else(|| access.region.clone());
        let endpoint = access
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://kms.{region}.amazonaws.com"));
        Ok(Arc::new(crate::aws::AwsKmsKek {
            client: self.client()?,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region,
            key_id: key_id.clone(),
            credential: object_store::aws::AwsCredential {
                key_id: access.access_key_id.clone(),
                secret_key: access.secret_access_key.to_string(),
                token: access.session_token.as_ref().map(|t| t.to_string()),
            },
        }))
    }

    #[cfg(not(feature = "aws"))]
    fn aws(&self, uri: &KekUri) -> Result<Arc<dyn KeyEncryptionKey>, KmsError> {
        Err(KmsError::NotConfigured {
            kek: uri.to_string(),
            missing: "this build has no AWS KMS support (cargo feature `aws`)".to_owned(),
        })
    }

    /// `key` wrapped by `kek`, retrying transient failures with backoff.
    pub async fn wrap(&self, kek: &Kek, key: &SecretKey) -> Result<Vec<u8>, KmsError> {
        let result = self
            .with_retries(|| kek.provider.wrap(key))
            .await
            .map_err(|e| KmsError::from_kek(&kek.uri, "wrap", e));
        if result.is_ok() {
            self.counters.wraps.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// The data key `wrapped` by `kek`: from the cache, or unwrapped by the
    /// KMS (once, however many callers ask at the same time).
    pub async fn data_key(&self, kek: &Kek, wrapped: &[u8]) -> Result<Arc<DataKey>, KmsError> {
        self.data_key_since(kek, wrapped).await.map(|(key, _)| key)
    }

    /// [`data_key`](Self::data_key), and when it entered the cache (its
    /// time to live counts from then).
    pub(crate) async fn data_key_since(
        &self,
        kek: &Kek,
        wrapped: &[u8],
    ) -> Result<(Arc<DataKey>, Instant), KmsError> {
        let key = cache_key(kek, wrapped);
        if let Some(cached) = self.cached(&key) {
            self.counters.cache_hits.add(1);
            return Ok(cached);
        }
        self.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
        // One unwrap per wrapped key at a time: later callers wait for it
        // and share its key, or its failure.
        let pending = lock(&self.pending)
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Pending::default()))
            .clone();
        let result = pending
            .key
            .get_or_try_init(|| async {
                if let Some(failure) = lock(&pending.failure).as_ref() {
                    return Err(failure.again());
                }
                let unwrapped = self.unwrap_now(kek, wrapped).await;
                match unwrapped {
                    Ok(unwrapped) => {
                        lock(&self.cache).put(key.clone(), unwrapped.clone());
                        Ok(unwrapped)
                    }
                    Err(err) => {
                        *lock(&pending.failure) = Some(Failure::of(&err));
                        Err(err)
                    }
                }
            })
            .await
            .cloned();
        // The next caller (not a waiter of this one) tries anew.
        let mut in_flight = lock(&self.pending);
        if in_flight
            .get(&key)
            .is_some_and(|p| Arc::ptr_eq(p, &pending))
        {
            in_flight.remove(&key);
        }
        result
    }

    /// A live cache entry.
    fn cached(&self, key: &[u8]) -> Option<(Arc<DataKey>, Instant)> {
        let mut cache = lock(&self.cache);
        match cache.get(key) {
            Some((data_key, made)) if made.elapsed() < self.options.cache_ttl => {
                Some((data_key.clone(), *made))
            }
            Some(_) => {
                // Past its time: gone, key bytes and all.
                cache.pop(key);
                None
            }
            None => None,
        }
    }

    /// One unwrap through the KMS, with retries.
    async fn unwrap_now(
        &self,
        kek: &Kek,
        wrapped: &[u8],
    ) -> Result<(Arc<DataKey>, Instant), KmsError> {
        let plain = self
            .with_retries(|| kek.provider.unwrap(wrapped))
            .await
            .map_err(|e| KmsError::from_kek(&kek.uri, "unwrap", e))?;
        self.counters.unwraps.fetch_add(1, Ordering::Relaxed);
        let secret =
            SecretKey::from_bytes(&plain).ok_or(KmsError::WrongKeyLength { len: plain.len() })?;
        Ok((Arc::new(DataKey::new(&secret)), Instant::now()))
    }

    /// Counts `n` data keys found in a codec's own recent keys (cache hits
    /// that did not need the shared cache).
    pub(crate) fn count_hits(&self, n: u64) {
        if n > 0 {
            self.counters.cache_hits.add(n);
        }
    }

    /// How long an unwrapped data key may be used.
    pub(crate) fn cache_ttl(&self) -> Duration {
        self.options.cache_ttl
    }

    /// Puts a data key this process made into the cache, so payloads it
    /// encrypts decode without a KMS call.
    pub fn remember(&self, kek: &Kek, wrapped: &[u8], key: Arc<DataKey>) {
        lock(&self.cache).put(cache_key(kek, wrapped), (key, Instant::now()));
    }

    async fn with_retries<T, F, Fut>(&self, call: F) -> Result<T, KekError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, KekError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.options.first_backoff)
            .with_max_delay(self.options.first_backoff * 16)
            .with_max_times(self.options.attempts.saturating_sub(1))
            .with_jitter();
        call.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, KekError::Transient(_)))
            .notify(|e, wait| {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, retry_in = ?wait, "KMS call failed; retrying");
            })
            .await
            .inspect_err(|_| {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
            })
    }

    /// Counts since the start.
    pub fn stats(&self) -> KmsStats {
        let c = &self.counters;
        KmsStats {
            wraps: c.wraps.load(Ordering::Relaxed),
            unwraps: c.unwraps.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.sum(),
            cache_misses: c.cache_misses.load(Ordering::Relaxed),
        }
    }

    /// Checks that `kek` works: wraps a fresh random key and unwraps it
    /// again (bypassing the cache). Returns how long the two calls took.
    pub async fn probe(&self, kek: &Kek) -> Result<Duration, KmsError> {
        let started = Instant::now();
        let key = SecretKey::generate().map_err(|_| KmsError::Unavailable {
            kek: kek.uri.to_string(),
            op: "wrap",
            cause: "the system random number generator failed".to_owned(),
        })?;
        let wrapped = self.wrap(kek, &key).await?;
        let plain = self
            .with_retries(|| kek.provider.unwrap(&wrapped))
            .await
            .map_err(|e| KmsError::from_kek(&kek.uri, "unwrap", e))?;
        if plain[..] != key.as_bytes()[..] {
            return Err(KmsError::Rejected {
                kek: kek.uri.to_string(),
                cause: "the unwrapped key differs from the wrapped one".to_owned(),
            });
        }
        Ok(started.elapsed())
    }
}

fn cache_key(kek: &Kek, wrapped: &[u8]) -> Vec<u8> {
    let id = kek.uri.id().as_bytes();
    let mut key = Vec::with_capacity(id.len() + 1 + wrapped.len());
    key.extend_from_slice(id);
    key.push(0);
    key.extend_from_slice(wrapped);
    key
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while these locks are held; a poisoned one still
    // holds consistent data.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

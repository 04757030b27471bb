//! [`EnvelopeCodec`]: `binary/encrypted` in the Temporal Proxy's envelope
//! format, with the keyring format read from the same chain.
//!
//! An envelope payload is
//! `{encoding: binary/encrypted, encryption-key-id: <KEK URI>,
//! encryption-dek: base64(wrapped data key)}` with data = 12-byte nonce ‖
//! AES-256-GCM(serialized whole payload) ‖ 16-byte tag, no associated data.
//! A `binary/encrypted` payload without `encryption-dek` is the keyring
//! format: it goes to the keyring codec, if one is given.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use payload_codecs::{
    AesGcmCodec, CodecError, DataKey, ENCODING_ENCRYPTED, METADATA_ENCRYPTION_DEK,
    METADATA_ENCRYPTION_KEY_ID, NONCE_BYTES, SecretKey,
};
use payload_converter::codec::CodecResult;
use payload_converter::encoding::METADATA_ENCODING;
use payload_converter::{BoxFuture, Budget, PayloadCodec, PayloadCodecError};
use payload_proto::temporal::api::common::v1::Payload;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::KmsError;
use crate::kms::{Kek, Kms};
use crate::uri::shown;

/// How long one data key encrypts, by default (then a new one is made).
pub const DEFAULT_DATA_KEY_TTL: Duration = Duration::from_secs(3600);
/// How long before its end a data key is renewed, by default.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(900);

/// The data key that encrypts now.
struct ActiveKey {
    key: Arc<DataKey>,
    /// `encryption-dek`: base64 of the wrapped key.
    dek: Bytes,
    made: Instant,
}

/// Envelope encryption for one namespace: encrypts with a data key wrapped
/// by the active KEK (one data key, reused until it is due for renewal);
/// decrypts payloads under the active KEK or a decrypt-only one, and
/// keyring-format payloads with the keyring codec.
pub struct EnvelopeCodec {
    kms: Arc<Kms>,
    active: Kek,
    /// The active KEK's id as metadata bytes.
    active_id: Bytes,
    decrypt_only: Vec<Kek>,
    keyring: Option<AesGcmCodec>,
    ttl: Duration,
    renew_before: Duration,
    current: ArcSwapOption<ActiveKey>,
    recent: ArcSwap<Vec<Recent>>,
    renewing: tokio::sync::Mutex<()>,
    /// When renewing the data key last failed (reset by a success).
    renew_failed: std::sync::Mutex<Option<Instant>>,
    rng: SystemRandom,
}

impl std::fmt::Debug for EnvelopeCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeCodec")
            .field("active", self.active.uri())
            .field(
                "decrypt_only",
                &self.decrypt_only.iter().map(Kek::uri).collect::<Vec<_>>(),
            )
            .field("keyring", &self.keyring)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Builds an [`EnvelopeCodec`].
#[derive(Debug)]
pub struct EnvelopeBuilder {
    kms: Arc<Kms>,
    active: String,
    decrypt_only: Vec<String>,
    keyring: Option<AesGcmCodec>,
    ttl: Duration,
    renew_before: Duration,
}

impl EnvelopeBuilder {
    /// Encrypt under the KEK `active` (a URI) of `kms`.
    pub fn new(kms: Arc<Kms>, active: impl Into<String>) -> Self {
        Self {
            kms,
            active: active.into(),
            decrypt_only: Vec::new(),
            keyring: None,
            ttl: DEFAULT_DATA_KEY_TTL,
            renew_before: DEFAULT_RENEW_BEFORE,
        }
    }

    /// Also decrypt payloads whose data keys `kek` wrapped (a KEK being
    /// retired).
    #[must_use]
    pub fn decrypt_only(mut self, kek: impl Into<String>) -> Self {
        self.decrypt_only.push(kek.into());
        self
    }

    /// Decrypt keyring-format payloads (no `encryption-dek`) with `codec`.
    #[must_use]
    pub fn keyring(mut self, codec: AesGcmCodec) -> Self {
        self.keyring = Some(codec);
        self
    }

    /// Use one data key for `ttl`, renewing it `renew_before` its end.
    /// `renew_before` is capped 1 ms below `ttl`.
    #[must_use]
    pub fn data_key_ttl(mut self, ttl: Duration, renew_before: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(2));
        self.renew_before = renew_before.min(self.ttl - Duration::from_millis(1));
        self
    }

    /// The codec; fails when a KEK URI is malformed or its KMS is not
    /// configured.
    pub fn build(self) -> Result<EnvelopeCodec, KmsError> {
        let active = self.kms.kek(&self.active)?;
        let decrypt_only = self
            .decrypt_only
            .iter()
            .map(|uri| self.kms.kek(uri))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EnvelopeCodec {
            active_id: Bytes::copy_from_slice(active.uri().id().as_bytes()),
            kms: self.kms,
            active,
            decrypt_only,
            keyring: self.keyring,
            ttl: self.ttl,
            renew_before: self.renew_before,
            current: ArcSwapOption::empty(),
            recent: ArcSwap::from_pointee(Vec::new()),
            renewing: tokio::sync::Mutex::new(()),
            renew_failed: std::sync::Mutex::new(None),
            rng: SystemRandom::new(),
        })
    }
}

impl EnvelopeCodec {
    /// The KEK new data keys are wrapped with.
    pub fn active_kek(&self) -> &Kek {
        &self.active
    }

    fn is_fresh(&self, key: &ActiveKey) -> bool {
        key.made.elapsed() < self.ttl - self.renew_before
    }

    /// A new data key, once the current one is due for renewal (one KMS
    /// call, whoever asks at the time). If the KMS fails while the current
    /// key is still within its time, the current key goes on.
    async fn renew(&self) -> Result<Arc<ActiveKey>, KmsError> {
        let old = self.current.load_full();
        // While the current key is within its time, nobody waits for a
        // renewal: one encoder renews, the others go on with the current
        // key, and after a failure the KMS is left alone for a while.
        let usable = old.as_ref().filter(|key| key.made.elapsed() < self.ttl);
        if let Some(key) = usable {
            let failed_recently =
                lock(&self.renew_failed).is_some_and(|at| at.elapsed() < RENEW_RETRY_AFTER);
            if failed_recently {
                return Ok(key.clone());
            }
        }
        let _renewing = match (self.renewing.try_lock(), usable) {
            (Ok(guard), _) => guard,
            (Err(_), Some(key)) => return Ok(key.clone()),
            (Err(_), None) => self.renewing.lock().await,
        };
        let old = self.current.load_full();
        if let Some(key) = &old
            && self.is_fresh(key)
        {
            return Ok(key.clone());
        }
        match self.new_data_key().await {
            Ok(key) => {
                self.current.store(Some(key.clone()));
                *lock(&self.renew_failed) = None;
                Ok(key)
            }
            Err(err) => match old {
                Some(key) if key.made.elapsed() < self.ttl => {
                    *lock(&self.renew_failed) = Some(Instant::now());
                    tracing::warn!(error = %err, "cannot renew the data key; the current one goes on until it ends");
                    Ok(key)
                }
                _ => Err(err),
            },
        }
    }

    async fn new_data_key(&self) -> Result<Arc<ActiveKey>, KmsError> {
        let secret = SecretKey::generate().map_err(|_| CodecError::Random)?;
        let wrapped = self.kms.wrap(&self.active, &secret).await?;
        let key = Arc::new(DataKey::new(&secret));
        self.kms.remember(&self.active, &wrapped, key.clone());
        Ok(Arc::new(ActiveKey {
            key,
            dek: Bytes::from(STANDARD.encode(&wrapped)),
            made: Instant::now(),
        }))
    }

    async fn encrypt_batch(&self, payloads: &[Payload], budget: &Budget) -> CodecResult {
        {
            // The common case touches no memory other requests write.
            let current = self.current.load();
            if let Some(active) = current.as_deref()
                && self.is_fresh(active)
            {
                return self.seal_all(active, payloads, budget);
            }
        }
        let active = self.renew().await.map_err(PayloadCodecError::from)?;
        self.seal_all(&active, payloads, budget)
    }

    fn seal_all(&self, active: &ActiveKey, payloads: &[Payload], budget: &Budget) -> CodecResult {
        let mut nonces = vec![0u8; NONCE_BYTES * payloads.len()];
        self.rng
            .fill(&mut nonces)
            .map_err(|_| PayloadCodecError::from(CodecError::Random))?;
        payloads
            .iter()
            .zip(nonces.chunks_exact(NONCE_BYTES))
            .enumerate()
            .map(|(i, (payload, nonce))| {
                let sealed = active
                    .key
                    .seal_payload(payload, nonce, budget)
                    .map_err(|e| PayloadCodecError::from(e).at_index(i))?;
                Ok(Payload {
                    metadata: [
                        (
                            METADATA_ENCODING.to_owned(),
                            Bytes::from_static(ENCODING_ENCRYPTED.as_bytes()),
                        ),
                        (
                            METADATA_ENCRYPTION_KEY_ID.to_owned(),
                            self.active_id.clone(),
                        ),
                        (METADATA_ENCRYPTION_DEK.to_owned(), active.dek.clone()),
                    ]
                    .into(),
                    data: Bytes::from(sealed),
                    external_payloads: Vec::new(),
                })
            })
            .collect()
    }

    /// The KEK a payload names, if this codec may use it.
    fn kek_for(&self, id: &[u8]) -> Result<&Kek, KmsError> {
        std::iter::once(&self.active)
            .chain(&self.decrypt_only)
            .find(|kek| kek.uri().id().as_bytes() == id)
            .ok_or_else(|| KmsError::UnknownKek {
                kek: shown(&String::from_utf8_lossy(id)),
            })
    }

    /// The distinct data keys of a batch, and for each payload the index of
    /// its data key (`None`: not an envelope payload). A KEK the codec may
    /// not use is an error at the first payload naming it.
    fn scan(
        &self,
        payloads: &[Payload],
    ) -> Result<(Vec<Option<usize>>, Vec<Wrapped>), PayloadCodecError> {
        let mut pairs: Vec<Wrapped> = Vec::new();
        let mut of_payload = Vec::with_capacity(payloads.len());
        for (i, payload) in payloads.iter().enumerate() {
            let Some((kek_id, dek)) = envelope_fields(payload) else {
                of_payload.push(None);
                continue;
            };
            let at = pairs
                .iter()
                .position(|p| p.dek == dek && p.kek_id == kek_id);
            let at = match at {
                Some(at) => at,
                None if dek.len() > MAX_WRAPPED_KEY_TEXT => {
                    return Err(PayloadCodecError::from(KmsError::BadWrappedKey).at_index(i));
                }
                None if pairs.len() == MAX_DATA_KEYS_PER_BATCH => {
                    return Err(PayloadCodecError::from(KmsError::TooManyDataKeys {
                        limit: MAX_DATA_KEYS_PER_BATCH,
                    })
                    .at_index(i));
                }
                None => {
                    let kek = self
                        .kek_for(&kek_id)
                        .map_err(|e| PayloadCodecError::from(e).at_index(i))?
                        .clone();
                    pairs.push(Wrapped {
                        kek,
                        kek_id,
                        dek,
                        first: i,
                    });
                    pairs.len() - 1
                }
            };
            of_payload.push(Some(at));
        }
        Ok((of_payload, pairs))
    }

    /// Unwraps one data key through the KMS hub (its cache, else the KMS).
    async fn fetch(&self, pair: &Wrapped) -> Result<(Arc<DataKey>, Instant), PayloadCodecError> {
        let at = |e: KmsError| PayloadCodecError::from(e).at_index(pair.first);
        let wrapped = STANDARD
            .decode(&pair.dek)
            .ok()
            .filter(|w| !w.is_empty())
            .ok_or(KmsError::BadWrappedKey)
            .map_err(at)?;
        self.kms
            .data_key_since(&pair.kek, &wrapped)
            .await
            .map_err(at)
    }

    /// Keeps fetched data keys among the codec's recent ones (the newest
    /// [`RECENT_KEYS`], none past the cache's time to live).
    fn remember_recent(&self, pairs: &[Wrapped], fetched: &[Option<(Arc<DataKey>, Instant)>]) {
        let ttl = self.kms.cache_ttl();
        self.recent.rcu(|old| {
            let mut keys: Vec<Recent> = pairs
                .iter()
                .zip(fetched)
                .filter_map(|(pair, key)| {
                    let (key, made) = key.clone()?;
                    Some(Recent {
                        kek_id: pair.kek_id.clone(),
                        dek: pair.dek.clone(),
                        key,
                        made,
                    })
                })
                .collect();
            let kept: Vec<Recent> = old
                .iter()
                .filter(|r| {
                    r.made.elapsed() < ttl
                        && !keys.iter().any(|k| k.dek == r.dek && k.kek_id == r.kek_id)
                })
                .cloned()
                .collect();
            keys.extend(kept);
            keys.truncate(RECENT_KEYS);
            keys
        });
    }

    async fn decrypt_batch(&self, payloads: Vec<Payload>, budget: &Budget) -> CodecResult {
        // Each distinct data key is unwrapped once, before any payload is
        // opened; a batch of one data key costs at most one KMS call. Keys
        // the codec used recently are read without a lock or a shared write.
        let (of_payload, pairs) = self.scan(&payloads)?;
        let ttl = self.kms.cache_ttl();
        let mut fetched: Vec<Option<(Arc<DataKey>, Instant)>> = vec![None; pairs.len()];
        loop {
            let recent = self.recent.load();
            let mut hits = 0;
            let keys: Vec<Option<&DataKey>> = pairs
                .iter()
                .zip(&fetched)
                .map(|(pair, fetched)| match fetched {
                    Some((key, _)) => Some(&**key),
                    None => {
                        let hit = recent
                            .iter()
                            .find(|r| {
                                r.dek == pair.dek
                                    && r.kek_id == pair.kek_id
                                    && r.made.elapsed() < ttl
                            })
                            .map(|r| &*r.key);
                        hits += usize::from(hit.is_some());
                        hit
                    }
                })
                .collect();
            if keys.iter().all(Option::is_some) {
                self.kms.count_hits(hits as u64);
                return self.open_all(payloads, &of_payload, &keys, &pairs, budget);
            }
            let missing: Vec<usize> = (0..pairs.len()).filter(|&i| keys[i].is_none()).collect();
            drop(keys);
            drop(recent);
            let unwrapped =
                futures::future::try_join_all(missing.iter().map(|&i| self.fetch(&pairs[i])))
                    .await?;
            for (i, key) in missing.into_iter().zip(unwrapped) {
                fetched[i] = Some(key);
            }
            self.remember_recent(&pairs, &fetched);
        }
    }

    fn open_all(
        &self,
        payloads: Vec<Payload>,
        of_payload: &[Option<usize>],
        keys: &[Option<&DataKey>],
        pairs: &[Wrapped],
        budget: &Budget,
    ) -> CodecResult {
        payloads
            .into_iter()
            .zip(of_payload)
            .enumerate()
            .map(|(i, (payload, at))| {
                if let Some(at) = *at {
                    let key = keys[at]
                        .ok_or(KmsError::BadWrappedKey)
                        .map_err(|e| PayloadCodecError::from(e).at_index(i))?;
                    return key
                        .open_payload(payload.data, budget, || CodecError::DecryptEnvelope {
                            kek: pairs[at].kek.uri().to_string(),
                        })
                        .map_err(|e| PayloadCodecError::from(e).at_index(i));
                }
                if !has_encrypted_encoding(&payload) {
                    return Ok(payload);
                }
                match &self.keyring {
                    Some(codec) => codec
                        .decrypt_one(payload, budget)
                        .map_err(|e| PayloadCodecError::from(e).at_index(i)),
                    None => Err(PayloadCodecError::from(KmsError::NoKeyring {
                        // A keyring key id: no secret, but the payload's text.
                        key_id: payload_codecs::shown_key_id(&String::from_utf8_lossy(
                            payload
                                .metadata
                                .get(METADATA_ENCRYPTION_KEY_ID)
                                .map(|b| &b[..])
                                .unwrap_or_default(),
                        )),
                    })
                    .at_index(i)),
                }
            })
            .collect()
    }
}

/// A data key named by payloads of a batch.
struct Wrapped {
    kek: Kek,
    kek_id: Bytes,
    /// `encryption-dek`, as written (base64).
    dek: Bytes,
    /// The first payload naming it (for errors).
    first: usize,
}

/// A data key a codec unwrapped recently.
#[derive(Clone)]
struct Recent {
    kek_id: Bytes,
    dek: Bytes,
    key: Arc<DataKey>,
    made: Instant,
}

/// Recent data keys a codec keeps for lock-free lookups.
const RECENT_KEYS: usize = 16;

/// The longest `encryption-dek` read: KMS ciphertexts of a 32-byte key are
/// a few hundred bytes.
const MAX_WRAPPED_KEY_TEXT: usize = 8 * 1024;

/// Distinct data keys one batch may make the codec unwrap (each may cost a
/// KMS call).
pub const MAX_DATA_KEYS_PER_BATCH: usize = 256;

/// After a failed renewal, how long encoders go on with the current key
/// before one of them tries the KMS again.
const RENEW_RETRY_AFTER: Duration = Duration::from_secs(5);

fn has_encrypted_encoding(payload: &Payload) -> bool {
    payload
        .metadata
        .get(METADATA_ENCODING)
        .is_some_and(|e| e[..] == *ENCODING_ENCRYPTED.as_bytes())
}

/// The KEK id and wrapped key of an envelope payload (`None` for any other
/// payload, including the keyring format).
fn envelope_fields(payload: &Payload) -> Option<(Bytes, Bytes)> {
    if !has_encrypted_encoding(payload) {
        return None;
    }
    let dek = payload.metadata.get(METADATA_ENCRYPTION_DEK)?;
    let kek = payload
        .metadata
        .get(METADATA_ENCRYPTION_KEY_ID)
        .cloned()
        .unwrap_or_default();
    Some((kek, dek.clone()))
}

impl PayloadCodec for EnvelopeCodec {
    fn name(&self) -> &str {
        "envelope-aes-256-gcm"
    }

    fn encode(&self, payloads: Vec<Payload>) -> BoxFuture<'_, CodecResult> {
        Box::pin(async move { self.encrypt_batch(&payloads, &Budget::unlimited()).await })
    }

    fn decode(&self, payloads: Vec<Payload>) -> BoxFuture<'_, CodecResult> {
        Box::pin(async move { self.decrypt_batch(payloads, &Budget::unlimited()).await })
    }

    fn encode_within<'a>(
        &'a self,
        payloads: Vec<Payload>,
        budget: &'a Budget,
    ) -> BoxFuture<'a, CodecResult> {
        Box::pin(async move { self.encrypt_batch(&payloads, budget).await })
    }

    fn decode_within<'a>(
        &'a self,
        payloads: Vec<Payload>,
        budget: &'a Budget,
    ) -> BoxFuture<'a, CodecResult> {
        Box::pin(async move { self.decrypt_batch(payloads, budget).await })
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while these locks are held.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

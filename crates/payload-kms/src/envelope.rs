//! [`EnvelopeCodec`]: `binary/encrypted` in the Temporal Proxy's envelope
//! format, with the keyring format read from the same chain.
//!
//! An envelope payload is
//! `{encoding: binary/encrypted, encryption-key-id: <KEK URI>,
//! encryption-dek: base64(wrapped data key)}` with data = 12-byte nonce ‖
//! AES-256-GCM(serialized whole payload) ‖ 16-byte tag, no associated data.
//! A `binary/encrypted` payload without `encryption-dek` is the keyring
//! format: it goes to the keyring codec, if one is given.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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
    current: RwLock<Option<Arc<ActiveKey>>>,
    renewing: tokio::sync::Mutex<()>,
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
    /// `renew_before` is capped below `ttl`.
    #[must_use]
    pub fn data_key_ttl(mut self, ttl: Duration, renew_before: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(1));
        self.renew_before = renew_before.min(self.ttl / 2);
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
            current: RwLock::new(None),
            renewing: tokio::sync::Mutex::new(()),
            rng: SystemRandom::new(),
        })
    }
}

impl EnvelopeCodec {
    /// The KEK new data keys are wrapped with.
    pub fn active_kek(&self) -> &Kek {
        &self.active
    }

    fn current(&self) -> Option<Arc<ActiveKey>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The data key to encrypt with: the current one until it is due for
    /// renewal; then a new one (one KMS call, whoever asks at the time). If
    /// the KMS fails while the current key is still within its time, the
    /// current key goes on.
    async fn data_key(&self) -> Result<Arc<ActiveKey>, KmsError> {
        let renew_at = self.ttl - self.renew_before;
        if let Some(key) = self.current()
            && key.made.elapsed() < renew_at
        {
            return Ok(key);
        }
        let _renewing = self.renewing.lock().await;
        let old = self.current();
        if let Some(key) = &old
            && key.made.elapsed() < renew_at
        {
            return Ok(key.clone());
        }
        match self.new_data_key().await {
            Ok(key) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(key.clone());
                Ok(key)
            }
            Err(err) => match old {
                Some(key) if key.made.elapsed() < self.ttl => {
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
        let active = self.data_key().await.map_err(PayloadCodecError::from)?;
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

    async fn decrypt_batch(&self, payloads: Vec<Payload>, budget: &Budget) -> CodecResult {
        // Each distinct data key is unwrapped once, before any payload is
        // opened; a batch of one data key costs at most one KMS call.
        let mut keys: Vec<(Bytes, Bytes, Arc<DataKey>)> = Vec::new();
        for (i, payload) in payloads.iter().enumerate() {
            let Some((kek_id, dek)) = envelope_fields(payload) else {
                continue;
            };
            if keys.iter().any(|(k, d, _)| *k == kek_id && *d == dek) {
                continue;
            }
            let at = |e: KmsError| PayloadCodecError::from(e).at_index(i);
            let kek = self.kek_for(&kek_id).map_err(at)?;
            let wrapped = STANDARD
                .decode(&dek)
                .ok()
                .filter(|w| !w.is_empty())
                .ok_or(KmsError::BadWrappedKey)
                .map_err(at)?;
            let key = self.kms.data_key(kek, &wrapped).await.map_err(at)?;
            keys.push((kek_id, dek, key));
        }
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                let at = |e: KmsError| PayloadCodecError::from(e).at_index(i);
                if !has_encrypted_encoding(&payload) {
                    return Ok(payload);
                }
                match envelope_fields(&payload) {
                    Some((kek_id, dek)) => {
                        let key = keys
                            .iter()
                            .find(|(k, d, _)| *k == kek_id && *d == dek)
                            .map(|(_, _, key)| key.clone())
                            .ok_or(KmsError::BadWrappedKey)
                            .map_err(at)?;
                        key.open_payload(payload.data, budget, || CodecError::DecryptEnvelope {
                            kek: shown(&String::from_utf8_lossy(&kek_id)),
                        })
                        .map_err(|e| PayloadCodecError::from(e).at_index(i))
                    }
                    None => match &self.keyring {
                        Some(codec) => codec
                            .decrypt_one(payload, budget)
                            .map_err(|e| PayloadCodecError::from(e).at_index(i)),
                        None => Err(at(KmsError::NoKeyring {
                            key_id: shown(&String::from_utf8_lossy(
                                payload
                                    .metadata
                                    .get(METADATA_ENCRYPTION_KEY_ID)
                                    .map(|b| &b[..])
                                    .unwrap_or_default(),
                            )),
                        })),
                    },
                }
            })
            .collect()
    }
}

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

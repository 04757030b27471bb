//! [`AesGcmCodec`]: AES-256-GCM encryption in the wire format of the
//! official Temporal samples (Go, Python, TypeScript), with key rotation.
//!
//! An encrypted payload is
//! `Payload { metadata: {"encoding": "binary/encrypted", "encryption-key-id": <id>}, data }`
//! where `data` = 12-byte random nonce ‖ AES-256-GCM ciphertext ‖ 16-byte
//! tag, the plaintext being the whole serialized inner `Payload` (metadata
//! included), with no associated data.

use std::sync::Arc;

use bytes::Bytes;
use payload_converter::codec::CodecResult;
use payload_converter::encoding::METADATA_ENCODING;
use payload_converter::{BoxFuture, Budget, PayloadCodec, PayloadCodecError};
use payload_proto::temporal::api::common::v1::Payload;
use ring::aead::NONCE_LEN;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::CodecError;
use crate::keyring::Keyring;

/// The encoding of encrypted payloads.
pub const ENCODING_ENCRYPTED: &str = "binary/encrypted";
/// The metadata key naming the key that encrypted a payload.
pub const METADATA_ENCRYPTION_KEY_ID: &str = "encryption-key-id";
/// The metadata key holding the wrapped data key of an envelope-encrypted
/// payload (the Temporal Proxy's format): its presence tells the two
/// `binary/encrypted` formats apart.
pub const METADATA_ENCRYPTION_DEK: &str = "encryption-dek";

/// Encrypts every payload with the keyring's active key; decrypts
/// `binary/encrypted` payloads with the key they name and passes any other
/// payload through unchanged.
///
/// Each payload gets a fresh random nonce from [`SystemRandom`]. The codec
/// holds an `Arc<Keyring>`: to rotate or reload keys, build a new keyring
/// and a new codec and swap it in where the old one was used.
#[derive(Debug)]
pub struct AesGcmCodec {
    keyring: Arc<Keyring>,
    rng: SystemRandom,
}

impl AesGcmCodec {
    /// A codec using `keyring`.
    pub fn new(keyring: Arc<Keyring>) -> Self {
        Self {
            keyring,
            rng: SystemRandom::new(),
        }
    }

    /// The keyring this codec uses.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// Encrypts one payload with the active key; `nonce` is 12 fresh
    /// random bytes.
    fn encrypt(
        &self,
        payload: &Payload,
        nonce: &[u8],
        budget: &Budget,
    ) -> Result<Payload, CodecError> {
        let key = self.keyring.active_key();
        let sealed = key.aead.seal_payload(payload, nonce, budget)?;
        Ok(Payload {
            metadata: [
                (
                    METADATA_ENCODING.to_owned(),
                    Bytes::from_static(ENCODING_ENCRYPTED.as_bytes()),
                ),
                (METADATA_ENCRYPTION_KEY_ID.to_owned(), key.id_bytes.clone()),
            ]
            .into(),
            data: Bytes::from(sealed),
            external_payloads: Vec::new(),
        })
    }

    /// Decrypts one `binary/encrypted` payload of the keyring format,
    /// under `budget` (for codecs that route payloads to this one).
    pub fn decrypt_one(&self, payload: Payload, budget: &Budget) -> Result<Payload, CodecError> {
        self.decrypt(payload, budget)
    }

    /// Decrypts one `binary/encrypted` payload of the keyring format.
    fn decrypt(&self, payload: Payload, budget: &Budget) -> Result<Payload, CodecError> {
        let key_id = payload
            .metadata
            .get(METADATA_ENCRYPTION_KEY_ID)
            .ok_or(CodecError::MissingKeyId)?;
        let key_id = std::str::from_utf8(key_id).map_err(|_| CodecError::KeyIdNotUtf8)?;
        if payload.metadata.contains_key(METADATA_ENCRYPTION_DEK) {
            // The Temporal Proxy's envelope format: its key is a KMS's.
            return Err(CodecError::EnvelopeNeedsKek {
                kek: key_id.to_owned(),
            });
        }
        let key = self
            .keyring
            .get(key_id)
            .ok_or_else(|| CodecError::UnknownKeyId {
                key_id: key_id.to_owned(),
            })?;
        key.aead
            .open_payload(payload.data, budget, || CodecError::Decrypt {
                key_id: key.id.clone(),
            })
    }
}

/// Whether `payload`'s encoding is exactly `encoding` (compared as bytes, so
/// a non-UTF-8 encoding is simply someone else's).
pub(crate) fn has_encoding(payload: &Payload, encoding: &str) -> bool {
    payload
        .metadata
        .get(METADATA_ENCODING)
        .is_some_and(|e| e[..] == *encoding.as_bytes())
}

impl AesGcmCodec {
    /// Encrypts every payload with the active key, under `budget`.
    fn encrypt_batch(&self, payloads: &[Payload], budget: &Budget) -> CodecResult {
        // One call to the system generator for the whole batch.
        let mut nonces = vec![0u8; NONCE_LEN * payloads.len()];
        self.rng
            .fill(&mut nonces)
            .map_err(|_| PayloadCodecError::from(CodecError::Random))?;
        crate::batch::encode_each(
            payloads.iter().zip(nonces.chunks_exact(NONCE_LEN)),
            |(p, nonce)| self.encrypt(p, nonce, budget),
        )
    }

    /// Decrypts the `binary/encrypted` payloads, under `budget`.
    fn decrypt_batch(&self, payloads: Vec<Payload>, budget: &Budget) -> CodecResult {
        crate::batch::decode_matching(payloads, ENCODING_ENCRYPTED, |p| self.decrypt(p, budget))
    }
}

impl PayloadCodec for AesGcmCodec {
    fn name(&self) -> &str {
        "aes-256-gcm"
    }

    /// Encrypts every payload (whatever its encoding) with the active key.
    fn encode(&self, payloads: Vec<Payload>) -> BoxFuture<'_, CodecResult> {
        Box::pin(async move { self.encrypt_batch(&payloads, &Budget::unlimited()) })
    }

    /// Decrypts `binary/encrypted` payloads; passes others through.
    fn decode(&self, payloads: Vec<Payload>) -> BoxFuture<'_, CodecResult> {
        Box::pin(async move { self.decrypt_batch(payloads, &Budget::unlimited()) })
    }

    fn encode_within<'a>(
        &'a self,
        payloads: Vec<Payload>,
        budget: &'a Budget,
    ) -> BoxFuture<'a, CodecResult> {
        Box::pin(async move { self.encrypt_batch(&payloads, budget) })
    }

    fn decode_within<'a>(
        &'a self,
        payloads: Vec<Payload>,
        budget: &'a Budget,
    ) -> BoxFuture<'a, CodecResult> {
        Box::pin(async move { self.decrypt_batch(payloads, budget) })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use payload_converter::{CodecErrorKind, PayloadExt};
    use proptest::prelude::*;
    use prost::Message;
    use ring::aead::{Aad, Nonce};

    use super::*;
    use crate::data_key::TAG_LEN;
    use crate::test_support::{batch, decode, encode, id, key, keyring_ab};

    fn codec(active: &str) -> AesGcmCodec {
        AesGcmCodec::new(keyring_ab(active))
    }

    fn sample() -> Payload {
        Payload::with_encoding("json/plain", &br#""hello""#[..])
    }

    fn encrypted(active: &str) -> Payload {
        encode(&codec(active), vec![sample()]).remove(0)
    }

    /// Decodes one payload and returns the error.
    fn decode_err(payload: Payload) -> PayloadCodecError {
        decode(&codec("a"), vec![sample(), payload]).unwrap_err()
    }

    fn inner(err: &PayloadCodecError) -> &CodecError {
        err.inner().downcast_ref::<CodecError>().unwrap()
    }

    #[test]
    fn wire_format_is_nonce_ciphertext_tag_of_the_whole_payload() {
        let out = encrypted("a");
        assert_eq!(out.encoding(), Some(ENCODING_ENCRYPTED));
        assert_eq!(out.metadata_str(METADATA_ENCRYPTION_KEY_ID), Some("a"));
        assert_eq!(out.metadata.len(), 2);
        let inner = sample().encode_to_vec();
        assert_eq!(out.data.len(), NONCE_LEN + inner.len() + TAG_LEN);

        // Decrypt by hand with ring, as another SDK would.
        let key = ring::aead::LessSafeKey::new(
            ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &[0x0a; 32]).unwrap(),
        );
        let nonce = Nonce::try_assume_unique_for_key(&out.data[..NONCE_LEN]).unwrap();
        let mut buf = out.data[NONCE_LEN..].to_vec();
        let plain = key.open_in_place(nonce, Aad::empty(), &mut buf).unwrap();
        assert_eq!(plain, &inner[..]);
    }

    #[test]
    fn an_envelope_payload_asks_for_its_kek_not_a_keyring_key() {
        let mut payload = encrypted("a");
        payload.metadata.insert(
            METADATA_ENCRYPTION_KEY_ID.to_owned(),
            Bytes::from_static(b"awskms:///alias/temporal"),
        );
        payload.metadata.insert(
            METADATA_ENCRYPTION_DEK.to_owned(),
            Bytes::from_static(b"AAAA"),
        );
        let err = decode_err(payload);
        assert_eq!(err.kind(), CodecErrorKind::UnknownKey);
        assert!(
            matches!(inner(&err), CodecError::EnvelopeNeedsKek { kek } if kek == "awskms:///alias/temporal")
        );
        assert!(
            err.to_string()
                .contains("configure that key encryption key"),
            "{err}"
        );
    }

    #[test]
    fn nonces_are_random() {
        let payloads = encode(&codec("a"), vec![sample(); 64]);
        let mut nonces: Vec<_> = payloads.iter().map(|p| p.data.slice(..NONCE_LEN)).collect();
        nonces.push(encrypted("a").data.slice(..NONCE_LEN));
        nonces.sort();
        nonces.dedup();
        assert_eq!(nonces.len(), 65);
        assert!(nonces.iter().all(|n| n[..] != [0; NONCE_LEN]));
    }

    #[test]
    fn encode_encrypts_everything_even_encrypted_payloads() {
        let twice = encode(&codec("a"), vec![encrypted("a"), Payload::default()]);
        assert!(
            twice
                .iter()
                .all(|p| p.encoding() == Some(ENCODING_ENCRYPTED))
        );
        let once = decode(&codec("a"), twice).unwrap();
        assert_eq!(once[0].encoding(), Some(ENCODING_ENCRYPTED));
        assert_eq!(once[1], Payload::default());
    }

    #[test]
    fn foreign_encodings_pass_through_decode() {
        let foreign = vec![
            sample(),
            Payload::with_encoding("binary/zstd", &b"\x00not zstd"[..]),
            Payload::default(),
            Payload {
                metadata: [("encoding".to_owned(), Bytes::from_static(b"\xff\xfe"))].into(),
                data: Bytes::from_static(b"x"),
                external_payloads: Vec::new(),
            },
        ];
        assert_eq!(decode(&codec("a"), foreign.clone()).unwrap(), foreign);
    }

    #[test]
    fn truncated_data_is_invalid_payload() {
        for len in [0, 1, NONCE_LEN, NONCE_LEN + TAG_LEN - 1] {
            let mut p = encrypted("a");
            p.data = p.data.slice(..len);
            let err = decode_err(p);
            assert_eq!(err.kind(), CodecErrorKind::InvalidPayload);
            assert_eq!(err.index(), Some(1));
            assert!(matches!(inner(&err), CodecError::Truncated { len: l } if *l == len));
            assert!(err.to_string().contains("truncated"), "{err}");
        }
    }

    #[test]
    fn wrong_tag_and_flipped_bits_fail_authentication() {
        let good = encrypted("a");
        for position in [0, NONCE_LEN, good.data.len() / 2, good.data.len() - 1] {
            let mut data = good.data.to_vec();
            data[position] ^= 0x01;
            let mut p = good.clone();
            p.data = data.into();
            let err = decode_err(p);
            assert_eq!(err.kind(), CodecErrorKind::InvalidPayload);
            assert!(matches!(inner(&err), CodecError::Decrypt { .. }), "{err}");
            assert_eq!(
                err.to_string(),
                "payload 1: cannot decrypt payload with key `a`: authentication failed; the \
                 payload was corrupted or encrypted with a different key that has the same id"
            );
        }
    }

    #[test]
    fn a_different_key_under_the_same_id_fails_authentication() {
        let other = AesGcmCodec::new(Arc::new(Keyring::single(id("a"), key(0x99))));
        let err = decode(&other, vec![encrypted("a")]).unwrap_err();
        assert!(matches!(inner(&err), CodecError::Decrypt { .. }));
    }

    #[test]
    fn unknown_key_id_names_the_id_and_no_key_bytes() {
        let mut p = encrypted("a");
        p.metadata.insert(
            METADATA_ENCRYPTION_KEY_ID.to_owned(),
            Bytes::from_static(b"key-2025-01"),
        );
        let err = decode_err(p);
        assert_eq!(err.kind(), CodecErrorKind::UnknownKey);
        let text = format!("{err} {err:?}");
        assert_eq!(
            err.to_string(),
            "payload 1: unknown encryption key id `key-2025-01`: add the key with this id to \
             the keyring to decode the payload"
        );
        for secret in [[0x0a; 32], [0x0b; 32]] {
            assert!(!text.contains(&hex::encode(secret)));
            assert!(!text.contains(&base64::engine::general_purpose::STANDARD.encode(secret)));
        }
    }

    #[test]
    fn hostile_key_ids_are_escaped_and_shortened_in_messages() {
        let mut p = encrypted("a");
        let hostile = format!("evil\n{}", "x".repeat(1000));
        p.metadata.insert(
            METADATA_ENCRYPTION_KEY_ID.to_owned(),
            Bytes::from(hostile.clone()),
        );
        let err = decode_err(p);
        let text = err.to_string();
        assert!(text.contains("`evil\\nxxx"), "{text}");
        assert!(text.len() < 400, "{text}");
        assert!(matches!(inner(&err), CodecError::UnknownKeyId { key_id } if *key_id == hostile));
    }

    #[test]
    fn missing_or_non_utf8_key_id_is_invalid_payload() {
        let mut p = encrypted("a");
        p.metadata.remove(METADATA_ENCRYPTION_KEY_ID);
        let err = decode_err(p);
        assert_eq!(err.kind(), CodecErrorKind::InvalidPayload);
        assert!(matches!(inner(&err), CodecError::MissingKeyId));
        assert!(err.to_string().contains("no `encryption-key-id` metadata"));

        let mut p = encrypted("a");
        p.metadata.insert(
            METADATA_ENCRYPTION_KEY_ID.to_owned(),
            Bytes::from_static(b"\xffa"),
        );
        let err = decode_err(p);
        assert_eq!(err.kind(), CodecErrorKind::InvalidPayload);
        assert!(matches!(inner(&err), CodecError::KeyIdNotUtf8));
    }

    #[test]
    fn decrypted_bytes_that_are_not_a_payload_are_invalid_payload() {
        // Encrypt bytes that are not a serialized Payload (a truncated varint).
        let ring = keyring_ab("a");
        let buf = ring.active_key().aead.seal_bytes(b"\x0a\xff", b"").unwrap();
        let mut p = encrypted("a");
        p.data = buf.into();
        let err = decode_err(p);
        assert_eq!(err.kind(), CodecErrorKind::InvalidPayload);
        assert!(
            matches!(inner(&err), CodecError::InvalidInnerPayload { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("does not contain a valid serialized Payload")
        );
    }

    #[test]
    fn decrypts_owned_data_in_place_and_shared_data_by_copy() {
        let big = Payload::with_encoding("binary/plain", vec![5u8; 100_000]);
        let encrypted = encode(&codec("a"), vec![big.clone()]).remove(0);

        // Shared: the caller keeps its ciphertext intact.
        let kept = encrypted.clone();
        let out = decode(&codec("a"), vec![encrypted.clone()]).unwrap();
        assert_eq!(out, std::slice::from_ref(&big));
        assert_eq!(kept, encrypted);

        // Owned: decrypted in place, the inner data points into that buffer.
        let mut owned = encrypted.clone();
        owned.data = Bytes::from(encrypted.data.to_vec());
        let start = owned.data.as_ptr() as usize;
        let end = start + owned.data.len();
        let out = decode(&codec("a"), vec![owned]).unwrap();
        assert_eq!(out, [big]);
        let inner = out[0].data.as_ptr() as usize;
        assert!((start..end).contains(&inner));
    }

    #[test]
    fn owned_data_that_fails_authentication_is_an_error() {
        let mut p = encrypted("a");
        let mut data = p.data.to_vec();
        data[NONCE_LEN] ^= 1;
        p.data = Bytes::from(data);
        let err = decode(&codec("a"), vec![p]).unwrap_err();
        assert!(matches!(inner(&err), CodecError::Decrypt { .. }));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn decode_inverts_encode(payloads in batch()) {
            let codec = codec("a");
            let encrypted = encode(&codec, payloads.clone());
            prop_assert_eq!(encrypted.len(), payloads.len());
            prop_assert_eq!(decode(&codec, encrypted).unwrap(), payloads);
        }

        #[test]
        fn rotation_keeps_old_payloads_decodable(payloads in batch()) {
            let under_a = encode(&codec("a"), payloads.clone());
            // Key b becomes active; a stays in the keyring.
            let rotated = codec("b");
            let under_b = encode(&rotated, payloads.clone());
            for p in &under_b {
                prop_assert_eq!(p.metadata_str(METADATA_ENCRYPTION_KEY_ID), Some("b"));
            }
            prop_assert_eq!(decode(&rotated, under_a).unwrap(), payloads.clone());
            prop_assert_eq!(decode(&rotated, under_b).unwrap(), payloads);
        }

        #[test]
        fn arbitrary_encrypted_data_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..256),
            key_id in prop_oneof![Just(b"a".to_vec()), proptest::collection::vec(any::<u8>(), 0..8)],
        ) {
            let mut p = Payload::with_encoding(ENCODING_ENCRYPTED, data);
            p.metadata.insert(METADATA_ENCRYPTION_KEY_ID.to_owned(), key_id.into());
            let result = decode(&codec("a"), vec![p]);
            prop_assert!(result.is_err());
        }
    }
}
